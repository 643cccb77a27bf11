"""How close the bundled filters come to real Instagram output: the `fidelity` command.

Every recipe whose `calibration` names a reference in <calibration>/instagram is run on the
app's input (Normal.jpg) and compared with that reference by CIEDE2000 (instafilters.fidelity).
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from .errors import InstafiltersError
from .fidelity import Fidelity, ciede2000, rgb_to_lab
from .settings import SHARED_ENV, calibration_dir


def apply_in_frame(compiled_filter, image, frame=None):
    """Run a filter on `image` as the top-left part of a `frame` (height, width): the image
    is padded to the frame with its edge pixels, filtered and cropped back. Every op but the
    vignettes is point-wise and vignettes depend on position only, so this is exactly the
    filter's output on the frame, restricted to the image."""
    if frame is None or tuple(frame) == tuple(image.shape[:2]):
        return compiled_filter(image)
    fh, fw = (int(v) for v in frame)
    h, w = image.shape[:2]
    if fh < h or fw < w:
        raise ValueError(f"frame {fw}x{fh} is smaller than the image ({w}x{h})")
    padded = np.pad(image, ((0, fh - h), (0, fw - w), (0, 0)), mode="edge")
    return compiled_filter(padded)[:h, :w]


def calibration_report(calibration, registry=None):
    """Rows (name, set, reference, mean, p95, do-nothing mean) for every filter of
    `registry` (default: the bundled ones) whose recipe records a calibration reference
    present in `calibration/instagram`.

    A recipe's `calibration.frame` [height, width] says the reference is the top-left part
    of the frame the app filtered (the references are crops of its square output): the
    filter then runs in that frame, so its vignettes sit where the app's did.
    """
    from .io import load_rgb
    from .registry import load_filters

    folder = Path(calibration) / "instagram"
    if not (folder / "Normal.jpg").is_file():
        raise InstafiltersError(f"{folder / 'Normal.jpg'}: no such file (the calibration "
                                f"pairs; set {SHARED_ENV} or --calibration)")
    registry = registry or load_filters()
    normal = load_rgb(folder / "Normal.jpg")
    normal_lab = rgb_to_lab(normal)  # each image to Lab once: 0.1 s at 1080x885
    rows = []
    for name in registry.names("all"):
        recipe = registry.recipes[name]
        reference = recipe.calibration.get("reference")
        if not reference or not (folder / reference).exists():
            continue
        target = load_rgb(folder / reference)
        if target.shape != normal.shape:
            raise InstafiltersError(f"{folder / reference}: {target.shape[1]}x{target.shape[0]}"
                                    f", not the size of Normal.jpg "
                                    f"({normal.shape[1]}x{normal.shape[0]})")
        target_lab = rgb_to_lab(target)
        filtered = apply_in_frame(registry[name], normal, recipe.calibration.get("frame"))
        f = Fidelity.of(ciede2000(rgb_to_lab(filtered), target_lab))
        baseline = float(ciede2000(normal_lab, target_lab).mean())
        rows.append((name, recipe.set, reference, f.mean, f.p95, baseline))
    return rows


def format_report(rows) -> str:
    """Markdown table of `calibration_report` rows, with the average over each set."""
    lines = ["| filter | set | reference | dE00 mean | dE00 p95 | do nothing (mean) |",
             "|---|---|---|---:|---:|---:|"]
    lines += [f"| {n} | {s} | {ref} | {m:.2f} | {p:.2f} | {b:.2f} |"
              for n, s, ref, m, p, b in rows]
    for which in ("paper", "extra"):
        chosen = [r for r in rows if r[1] == which]
        if chosen:
            lines.append(f"| **average, {len(chosen)} {which}** | | | "
                         f"**{np.mean([r[3] for r in chosen]):.2f}** | "
                         f"**{np.mean([r[4] for r in chosen]):.2f}** | "
                         f"**{np.mean([r[5] for r in chosen]):.2f}** |")
    return "\n".join(lines)


@click.command("fidelity")
@click.option("--calibration", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Calibration folder holding instagram/Normal.jpg and the references "
                   f"[default: ${SHARED_ENV}/calibration, else shared/calibration beside "
                   f"the source checkout].")
def fidelity_command(calibration):
    """CIEDE2000 of every calibrated bundled filter against real Instagram output, as a
    Markdown table (mean and 95th percentile per filter, and doing nothing for scale).

    \b
    Examples:
      instafilters fidelity
      instafilters fidelity --calibration ../shared/calibration
      INSTAFILTERS_SHARED=/data/shared instafilters fidelity > fidelity.md
    """
    click.echo(format_report(calibration_report(calibration or calibration_dir())))
