"""Evaluate classifiers on ImageNet-Instagram: per-filter Top-1/Top-5, drop vs clean,
agreement with the clean prediction, IBN-Net feature divergence, and a report.

    >>> from instafilters.evaluate import evaluate
    >>> summary = evaluate("efficientnet_lite0", data="build/sample-ig",
    ...                    clean="instafilters/data/sample", filters="toaster,gotham")
    >>> summary["filters"]["toaster"]["top1"]

Modules: models (model table), weights (weight files), preprocessing (the model's transform
split between workers and device), labels (wnids, accepted classes), pairing (what to
score), loader (torch dataset), metrics (pure numpy), runner (inference), report
(md/csv/json/png), command (CLI).
Importing this package does not import torch; calling `evaluate` does.
"""
from __future__ import annotations


def evaluate(model: str, data, clean, filters="paper", *, split="auto", strength=None,
             limit_per_class=None,
             labels_csv=None, weights_path=None, weights_tag=None, offline=False,
             divergence=(), device="auto", batch_size=64, workers=None, amp=True,
             report_dir=None, progress=False, registry=None) -> dict:
    """Evaluate `model` on `data` (a build output) against `clean`; returns the report.json
    summary and writes the report files when `report_dir` is given. `registry` (default:
    the bundled filters) resolves filter names and aliases."""
    from ..registry import load_filters
    from .pairing import plan_evaluation
    from .models import load_model
    from .report import summarize, write_report
    from .runner import run

    registry = registry or load_filters()
    plan = plan_evaluation(clean, data, registry.select(filters), registry, split=split,
                           limit_per_class=limit_per_class, labels_csv=labels_csv,
                           strength=strength)
    loaded = load_model(model, weights_tag=weights_tag, weights_path=weights_path,
                        offline=offline)
    result = run(plan, loaded, device=device, batch_size=batch_size, workers=workers, amp=amp,
                 divergence_layers=list(divergence), progress=progress)
    summary = summarize(result)
    if report_dir is not None:
        write_report(result, summary, report_dir)
    return summary


__all__ = ["evaluate"]
