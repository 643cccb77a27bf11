"""Filter-only cost per megapixel for every bundled filter (one core, cv2.setNumThreads(1)),
against one JPEG decode + encode of the same image.

    python benchmarks/bench_filters.py [--repeat 40]

Goal: median filter / (decode + encode) <= 0.5, so filtering never dominates a build.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import make_tree, median_time  # noqa: E402

from instafilters import io, load_filters  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)

    with tempfile.TemporaryDirectory() as tmp:
        rel = make_tree(Path(tmp), 1)[0]
        path = Path(tmp) / rel
        decoded = io.decode(path)
        rgb = decoded.rgb
        h, w = rgb.shape[:2]
        mp = h * w / 1e6
        t_decode = median_time(lambda: io.decode(path), args.repeat)
        t_encode = median_time(lambda: io.encode_bytes(rgb, "JPEG", io.DEFAULT_JPEG_QUALITY),
                               args.repeat)
    t_codec = t_decode + t_encode

    registry = load_filters()
    rows = []
    for name in registry.select("all"):
        f = registry[name]
        rows.append((name, median_time(lambda: f(rgb), args.repeat), repr(f)))

    print(f"filter cost, one core, {w}x{h} ({mp:.4f} MP) ImageNet-like JPEG, "
          f"median of {args.repeat}")
    print(f"{'filter':14s} {'ms/image':>9s} {'ms/MP':>7s} {'/codec':>7s}  compiled steps")
    for name, t, desc in rows:
        steps = desc.split(": ", 1)[-1].rstrip(">")
        print(f"{name:14s} {t * 1e3:9.3f} {t * 1e3 / mp:7.2f} {t / t_codec:7.2f}  {steps}")
    worst = max(rows, key=lambda r: r[1])
    print(f"JPEG decode {t_decode * 1e3:.3f} ms + encode (q{io.DEFAULT_JPEG_QUALITY}) "
          f"{t_encode * 1e3:.3f} ms = {t_codec * 1e3:.3f} ms ({t_codec * 1e3 / mp:.2f} ms/MP)")
    print(f"slowest {worst[0]} {worst[1] * 1e3:.3f} ms")
    paper = set(registry.select("paper"))
    for label, subset in (("the 20 paper filters", [t for n, t, _ in rows if n in paper]),
                          (f"all {len(rows)} filters", [t for _, t, _ in rows])):
        med = float(np.median(subset))
        ratio = med / t_codec
        print(f"RATIO median filter of {label} / (decode+encode) = {med * 1e3:.3f} ms / "
              f"{t_codec * 1e3:.3f} ms = {ratio:.2f} (goal <= 0.5: "
              f"{'met' if ratio <= 0.5 else 'NOT met'})")

if __name__ == "__main__":
    main()
