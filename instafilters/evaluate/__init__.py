"""Evaluate classifiers on ImageNet-Instagram: per-filter Top-1/Top-5, drop vs clean,
agreement with the clean prediction, IBN-Net feature divergence, and a report.

    >>> from instafilters.evaluate import evaluate
    >>> summary = evaluate("efficientnet_lite0", data="build/sample-ig",
    ...                    clean="instafilters/data/sample", filters="toaster,gotham")
    >>> summary["filters"]["toaster"]["top1"]
    >>> evaluate("efficientnet_lite0", data=None, clean="instafilters/data/sample")  # no build

Modules: models (model table), weights (weight files), preprocessing (the model's transform
split between workers and device), labels (wnids, accepted classes), pairing (what to
score), loader (torch dataset), metrics (pure numpy), runner (inference), report
(md/csv/json/png), compare (several models, results files), adapt (test-time
BatchNorm adaptation), command (CLI).
Importing this package does not import torch; calling `evaluate` does.
"""
from __future__ import annotations

from pathlib import Path

from ..io import DEFAULT_JPEG_QUALITY


def evaluate(model: str, data, clean, filters="paper", **kwargs) -> dict:
    """Evaluate `model` on `data` (a build output; None: filter `clean` on the fly) against
    `clean`; returns the report.json summary and writes the report files when `report_dir`
    is given. Options as `evaluate_many`."""
    return evaluate_many([model], data, clean, filters, **kwargs)[0]


def evaluate_many(models, data, clean, filters="paper", *, split="auto", strength=None,
                  limit_per_class=None, labels_csv=None, weights_path=None, weights_tag=None,
                  offline=False, divergence=(), device="auto", batch_size=64, workers=None,
                  amp=True, report_dir=None, progress=False, registry=None,
                  jpeg_quality=DEFAULT_JPEG_QUALITY, recipes=None, recipes_only=False,
                  adapt=None, results_file=None) -> list[dict]:
    """Score each of `models` (names; `NAME=WEIGHTS_FILE` for a local checkpoint) on the
    same images, sharing decoding between models with the same preprocessing; returns one
    summary per model. With `data` None the clean images are filtered on the fly in the
    loader workers: the pixels `instafilters build --quality jpeg_quality` would write
    (jpeg_quality None: the raw filter output). `recipes`/`recipes_only`: user recipes as
    `--recipes` (`registry`, if given, only resolves names). `adapt="bn"`: also score each
    filter after test-time BatchNorm adaptation. Several models write a comparison report
    (compare.py) with each model's own report in a subfolder."""
    from ..transforms import filter_registry
    from .compare import write_comparison, write_results_file
    from .models import load_model
    from .pairing import plan_evaluation
    from .report import summarize, write_report
    from .runner import run_models

    registry = registry or filter_registry(recipes, recipes_only)
    plan = plan_evaluation(clean, data, registry.select(filters), registry, split=split,
                           limit_per_class=limit_per_class, labels_csv=labels_csv,
                           strength=strength, jpeg_quality=jpeg_quality, recipes=recipes,
                           recipes_only=recipes_only)
    loaded = [_load(spec, weights_path, weights_tag, offline, load_model) for spec in models]
    results = run_models(plan, loaded, device=device, batch_size=batch_size, workers=workers,
                         amp=amp, divergence_layers=list(divergence), progress=progress,
                         adapt=adapt)
    summaries = [summarize(r) for r in results]
    if report_dir is not None:
        if len(results) == 1:
            write_report(results[0], summaries[0], report_dir)
        else:
            write_comparison(results, summaries, report_dir)
    if results_file is not None:
        write_results_file(summaries, results_file)
    return summaries


def _load(spec: str, weights_path, weights_tag, offline, load_model):
    name, _, path = spec.partition("=")
    model = load_model(name, weights_tag=weights_tag, weights_path=path or weights_path,
                       offline=offline)
    if path:
        model.name = f"{name}={Path(path).name}"
    return model


__all__ = ["evaluate", "evaluate_many"]
