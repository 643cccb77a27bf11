"""Several models in one report: a filter x model table (Top-1, drop, agreement), the mean
and worst filter per model, a heatmap of Top-1 drop (models by filters), and each model's
rows in timm's validate.py results format (`--results-file FILE.csv|.json`).

Works on the summaries of report.summarize; no torch. Accuracies are fractions in the
summaries and percentages in the tables and the results file (as timm writes them).
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from ..errors import InstafiltersError
from .pairing import CLEAN
from .report import _pct, aligned, markdown_table, write_report

HEATMAP = "drop_heatmap.png"
RESULT_FIELDS = ["model", "top1", "top1_err", "top5", "top5_err", "param_count", "img_size",
                 "crop_pct", "interpolation"]
ROBUSTNESS_FIELDS = ["set", "top1_diff", "top5_diff"]  # as timm's robustness tables add


# -- timm validate.py format ---------------------------------------------------------------

def preprocessing_fields(pre: dict) -> dict:
    """img_size, crop_pct, interpolation from a torchvision or timm preprocessing record."""
    if "input_size" in pre:  # timm data config
        return {"img_size": pre["input_size"][-1], "crop_pct": pre.get("crop_pct"),
                "interpolation": pre.get("interpolation")}
    crop, resize = (pre.get("crop") or [None])[0], (pre.get("resize") or [None])[0]
    return {"img_size": crop, "crop_pct": round(crop / resize, 4) if crop and resize else None,
            "interpolation": pre.get("interpolation")}


def _percent(x):
    return None if x is None else round(100 * x, 3)


def results_rows(summaries: list[dict]) -> list[dict]:
    """One row per model and set (clean first, then each filter, then each BN-adapted
    filter as '<filter>+bn'): timm's columns, then set, top1_diff and top5_diff (filter
    minus clean, in points)."""
    rows = []
    for s in summaries:
        base = {"model": s["model"], "param_count": s.get("param_count"),
                **preprocessing_fields(s.get("preprocessing") or {})}
        clean = s["clean"]
        sets = [(CLEAN, clean)] + list(s["filters"].items()) + [
            (f"{name}+bn", r["bn_adapted"]) for name, r in s["filters"].items()
            if "bn_adapted" in r]
        for name, r in sets:
            top1, top5 = _percent(r.get("top1")), _percent(r.get("top5"))
            rows.append({**base, "top1": top1, "top5": top5,
                         "top1_err": None if top1 is None else round(100 - top1, 3),
                         "top5_err": None if top5 is None else round(100 - top5, 3),
                         "set": name,
                         "top1_diff": _diff(top1, _percent(clean["top1"]), name),
                         "top5_diff": _diff(top5, _percent(clean["top5"]), name)})
    return [{k: row[k] for k in RESULT_FIELDS + ROBUSTNESS_FIELDS} for row in rows]


def _diff(value, clean, name):
    if name == CLEAN or value is None or clean is None:
        return None
    return round(value - clean, 3)


def write_results_file(summaries: list[dict], path) -> Path:
    path = Path(path)
    rows = results_rows(summaries)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # as --report does
        if path.suffix.lower() == ".json":
            path.write_text(json.dumps(rows, indent=2) + "\n")
        else:
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=RESULT_FIELDS + ROBUSTNESS_FIELDS)
                w.writeheader()
                w.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    except OSError as e:
        raise InstafiltersError(f"--results-file {path}: cannot write ({e.strerror or e})"
                                ) from None
    return path


# -- the comparison table ------------------------------------------------------------------

def comparison_rows(summaries: list[dict], short: bool = False):
    """Rows: clean, each filter, mean, worst; per model three columns: Top-1, drop, agree
    (headed by the model's name, or `short`: by its number [1], [2], ...)."""
    header = ["set"] + [f"{f'[{i + 1}]' if short else s['model']} {c}"
                        for i, s in enumerate(summaries) for c in ("Top-1", "drop", "agree")]
    names = list(summaries[0]["filters"])
    rows = [["clean"] + [x for s in summaries for x in (_pct(s["clean"]["top1"]), "", "")]]
    for name in names + ["mean"]:
        cells = [name]
        for s in summaries:
            r = s["mean"] if name == "mean" else s["filters"][name]
            cells += [_pct(r["top1"]), _pct(r["top1_drop"]), _pct(r["agreement"])]
        rows.append(cells)
    worst = ["worst"]
    for s in summaries:
        w = s["worst"] or {}
        worst += [w.get("filter", "-"), "", ""]
    rows.append(worst)
    return header, rows


def format_comparison(summaries: list[dict]) -> str:
    n = summaries[0]["data"]["n_images"]
    lines = [f"{len(summaries)} models on {n} images x {1 + len(summaries[0]['filters'])} sets "
             f"(Top-1 %, drop in points, agreement with the clean prediction %): "
             + ", ".join(f"[{i + 1}] {s['model']}" for i, s in enumerate(summaries))]
    return "\n".join(lines + aligned(*comparison_rows(summaries, short=True)))


def comparison_markdown(summaries: list[dict], folders: list[str]) -> str:
    header, rows = comparison_rows(summaries)
    out = ["# Robustness to Instagram filters: model comparison", "",
           f"{summaries[0]['data']['n_images']} images per set; data "
           f"`{summaries[0]['data']['data']}`, clean `{summaries[0]['data']['clean']}`.",
           "Top-1 in %, drop = clean Top-1 minus filtered Top-1 (points), agree = share of "
           "images whose top-1 class is the clean one's.", ""] + markdown_table(header, rows)
    out += ["", f"![Top-1 drop, models by filters]({HEATMAP})", "",
            "Per model: " + ", ".join(f"[{s['model']}]({f}/report.md)"
                                      for s, f in zip(summaries, folders))]
    return "\n".join(out) + "\n"


def plot_drop_heatmap(summaries: list[dict], path) -> None:
    """Top-1 drop in points, models (rows) by filters (columns); 100 - agreement % where
    the images are unlabelled."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(summaries[0]["filters"])
    labelled = summaries[0]["clean"]["top1"] is not None
    key = "top1_drop" if labelled else "agreement"
    values = np.array([[100 * (s["filters"][f][key] or 0) for f in names] for s in summaries])
    if not labelled:
        values = 100 - values
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(names) + 3),
                                    1.0 + 0.5 * len(summaries)), dpi=120)
    image = ax.imshow(values, cmap="Reds", aspect="auto", vmin=min(0, values.min()))
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(summaries)), [s["model"] for s in summaries])
    for (i, j), v in np.ndenumerate(values):
        dark = v > (values.max() + values.min()) / 2
        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7,
                color="white" if dark else "black")
    fig.colorbar(image, ax=ax, label="Top-1 drop (points)" if labelled
                 else "changed predictions (%)")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def model_folders(summaries: list[dict]) -> list[str]:
    """A distinct, file-safe folder name per model."""
    out = []
    for s in summaries:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", s["model"]).strip("-") or "model"
        name, k = slug, 2
        while name in out:
            name, k = f"{slug}-{k}", k + 1
        out.append(name)
    return out


def write_comparison(results, summaries: list[dict], out_dir) -> None:
    """Each model's own report in a subfolder, and the comparison at the top."""
    out = Path(out_dir)
    folders = model_folders(summaries)
    for result, summary, folder in zip(results, summaries, folders):
        write_report(result, summary, out / folder)
    try:
        (out / "report.json").write_text(json.dumps(
            {"models": summaries, "folders": folders}, indent=2) + "\n")
        write_results_file(summaries, out / "report.csv")
        plot_drop_heatmap(summaries, out / HEATMAP)
        (out / "report.md").write_text(comparison_markdown(summaries, folders))
    except OSError as e:
        raise InstafiltersError(f"--report {out}: cannot write ({e.strerror or e})") from None
