"""Colour fidelity: CIEDE2000 between two RGB images, in numpy only.

sRGB (D65) -> CIE Lab -> CIEDE2000 (Sharma, Wu and Dalal 2005), vectorised, so the core
install needs no scikit-image; tests/test_fidelity.py checks it against
`skimage.color.deltaE_ciede2000` and against the published test pairs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# sRGB -> XYZ (D65), and the D65 white point of the 2 degree observer, as scikit-image uses.
_RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]])
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def srgb_to_linear(rgb):
    """sRGB values in [0, 1] -> linear light."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def rgb_to_lab(rgb):
    """sRGB in [0, 1] (any shape ending in 3) -> CIE Lab (D65), float64.

    uint8 input is scaled by 1/255 first.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        rgb = rgb / 255.0
    xyz = srgb_to_linear(rgb) @ (_RGB_TO_XYZ / _WHITE_D65[:, None]).T
    eps = (6.0 / 29.0) ** 3
    f = np.where(xyz > eps, np.cbrt(np.maximum(xyz, eps)), xyz / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    return np.stack([116.0 * f[..., 1] - 16.0,
                     500.0 * (f[..., 0] - f[..., 1]),
                     200.0 * (f[..., 1] - f[..., 2])], axis=-1)


def ciede2000(lab1, lab2, kl=1.0, kc=1.0, kh=1.0):
    """CIEDE2000 colour difference of Lab arrays (last axis L, a, b), element-wise."""
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    l1, a1, b1 = np.moveaxis(lab1, -1, 0)
    l2, a2, b2 = np.moveaxis(lab2, -1, 0)
    c_bar7 = ((np.hypot(a1, b1) + np.hypot(a2, b2)) / 2.0) ** 7
    g = 0.5 * (1.0 - np.sqrt(c_bar7 / (c_bar7 + 25.0 ** 7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0
    h1p = np.where(c1p == 0, 0.0, h1p)
    h2p = np.where(c2p == 0, 0.0, h2p)

    dl = l2 - l1
    dc = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180.0, dh - 360.0, np.where(dh < -180.0, dh + 360.0, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dhh = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2.0)

    l_bar = (l1 + l2) / 2.0
    c_bar_p = (c1p + c2p) / 2.0
    h_sum = h1p + h2p
    h_bar = np.where(np.abs(h1p - h2p) > 180.0,
                     np.where(h_sum < 360.0, (h_sum + 360.0) / 2.0, (h_sum - 360.0) / 2.0),
                     h_sum / 2.0)
    h_bar = np.where(c1p * c2p == 0, h_sum, h_bar)
    t = (1.0 - 0.17 * np.cos(np.radians(h_bar - 30.0)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6.0)) - 0.20 * np.cos(np.radians(4 * h_bar - 63.0)))
    d_theta = 30.0 * np.exp(-(((h_bar - 275.0) / 25.0) ** 2))
    c_bar_p7 = c_bar_p ** 7
    rc = 2.0 * np.sqrt(c_bar_p7 / (c_bar_p7 + 25.0 ** 7))
    sl = 1.0 + 0.015 * (l_bar - 50.0) ** 2 / np.sqrt(20.0 + (l_bar - 50.0) ** 2)
    sc = 1.0 + 0.045 * c_bar_p
    sh = 1.0 + 0.015 * c_bar_p * t
    rt = -np.sin(np.radians(2.0 * d_theta)) * rc
    tl, tc, th = dl / (kl * sl), dc / (kc * sc), dhh / (kh * sh)
    return np.sqrt(tl ** 2 + tc ** 2 + th ** 2 + rt * tc * th)


def delta_e(image1, image2):
    """Per-pixel CIEDE2000 between two same-shape RGB uint8 images (HxW float64)."""
    a, b = np.asarray(image1), np.asarray(image2)
    if a.shape != b.shape or a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"expected two HxWx3 images of the same size, got {a.shape} and {b.shape}")
    return ciede2000(rgb_to_lab(a), rgb_to_lab(b))


@dataclass(frozen=True)
class Fidelity:
    """Mean and 95th percentile CIEDE2000 of one image pair."""
    mean: float
    p95: float

    def __str__(self):
        return f"dE00 mean {self.mean:.2f}, p95 {self.p95:.2f}"


def fidelity(image1, image2) -> Fidelity:
    """Mean and 95th percentile CIEDE2000 between two RGB uint8 images."""
    d = delta_e(image1, image2)
    return Fidelity(float(d.mean()), float(np.percentile(d, 95)))


# ---------------------------------------------------------------- calibration report
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


def calibration_report(calibration_dir, registry=None):
    """Rows (name, set, reference, mean, p95, do-nothing mean) for every bundled filter
    whose recipe records a calibration reference present in `calibration_dir/instagram`.

    A recipe's `calibration.frame` [height, width] says the reference is the top-left part
    of the frame the app filtered (the references are crops of its square output): the
    filter then runs in that frame, so its vignettes sit where the app's did.
    """
    from pathlib import Path

    from .io import load_rgb
    from .registry import load_filters

    folder = Path(calibration_dir) / "instagram"
    registry = registry or load_filters()
    normal = load_rgb(folder / "Normal.jpg")
    rows = []
    for name in registry.names("all"):
        reference = registry.recipes[name].calibration.get("reference")
        if not reference or not (folder / reference).exists():
            continue
        target = load_rgb(folder / reference)
        f = fidelity(apply_in_frame(registry[name], normal,
                                    registry.recipes[name].calibration.get("frame")), target)
        rows.append((name, registry.recipes[name].set, reference, f.mean, f.p95,
                     fidelity(normal, target).mean))
    return rows


def format_report(rows) -> str:
    """Markdown table of `calibration_report` rows, with the average over the paper set."""
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


def main(argv=None):
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(
        prog="python -m instafilters.fidelity",
        description="CIEDE2000 of every calibrated bundled filter against real Instagram output.")
    parser.add_argument("--shared", type=Path, default=Path("../shared/calibration"),
                        help="calibration folder (default: ../shared/calibration)")
    args = parser.parse_args(argv)
    if not (args.shared / "instagram" / "Normal.jpg").exists():
        parser.error(f"{args.shared / 'instagram' / 'Normal.jpg'}: no such file")
    print(format_report(calibration_report(args.shared)))


if __name__ == "__main__":
    main()
