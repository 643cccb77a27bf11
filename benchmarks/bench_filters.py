"""Filter-only cost per megapixel for every bundled filter (one core, cv2.setNumThreads(1)),
against one Pillow JPEG decode + Pillow encode (q90) of the same image.

    python benchmarks/bench_filters.py [--repeat 40]

Goals (issue 10): median paper filter <= 0.35 of (Pillow decode + encode), every paper
filter <= 0.6. instafilters' own codec (io.decode, io.encode_bytes) is printed beside it.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import make_tree, median_time  # noqa: E402

from instafilters import io, load_filters  # noqa: E402

QUALITY = io.DEFAULT_JPEG_QUALITY


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)

    with tempfile.TemporaryDirectory() as tmp:
        rel = make_tree(Path(tmp), 1)[0]
        path = Path(tmp) / rel
        rgb = io.decode(path).rgb
        h, w = rgb.shape[:2]
        mp = h * w / 1e6
        t_decode = median_time(lambda: pillow_decode(path), args.repeat)
        t_encode = median_time(lambda: pillow_encode(rgb), args.repeat)
        t_own_decode = median_time(lambda: io.decode(path), args.repeat)
        t_own_encode = median_time(lambda: io.encode_bytes(rgb, "JPEG", QUALITY), args.repeat)
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
    print(f"Pillow JPEG decode {t_decode * 1e3:.3f} ms + encode (q{QUALITY}) "
          f"{t_encode * 1e3:.3f} ms = {t_codec * 1e3:.3f} ms ({t_codec * 1e3 / mp:.2f} ms/MP); "
          f"instafilters' codec: decode {t_own_decode * 1e3:.3f} ms + encode "
          f"{t_own_encode * 1e3:.3f} ms")
    print(f"slowest {worst[0]} {worst[1] * 1e3:.3f} ms")
    paper = [t for n, t, _ in rows if n in set(registry.select("paper"))]
    med, slowest = float(np.median(paper)) / t_codec, max(paper) / t_codec
    print(f"RATIO median paper filter / Pillow (decode+encode) = {med:.2f} (goal <= 0.35: "
          f"{'met' if med <= 0.35 else 'NOT met'})")
    print(f"RATIO slowest paper filter / Pillow (decode+encode) = {slowest:.2f} (goal <= 0.6: "
          f"{'met' if slowest <= 0.6 else 'NOT met'})")
    print(f"median of all {len(rows)} filters / Pillow (decode+encode) = "
          f"{float(np.median([t for _, t, _ in rows])) / t_codec:.2f}")


def pillow_decode(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def pillow_encode(rgb):
    buffer = BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=QUALITY, subsampling=2)
    return buffer.getvalue()


if __name__ == "__main__":
    main()
