"""On-the-fly filtering in a DataLoader worker against the clean path, per image, one core.

    python benchmarks/bench_onthefly.py [--images 64] [--repeat 3]

Both paths are what one eval/training worker does per item (evaluate.loader.ImageDataset):
clean = decode + the model's CPU transform (resize 256, centre crop 224, uint8 tensor);
on the fly = decode + filter (cycling through the 20 paper filters) + the build's JPEG
round trip (q90 encode and decode) + the same transform. Goal: on the fly / clean <= 1.5.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import make_tree  # noqa: E402

from instafilters import io  # noqa: E402
from instafilters.evaluate.loader import ImageDataset  # noqa: E402
from instafilters.evaluate.preprocessing import split_transform  # noqa: E402
from instafilters.transforms import InstaFilterCallable, filter_registry  # noqa: E402


def rates(datasets: list, repeat: int) -> list[float]:
    """Best-of-`repeat` items/s of each dataset, measured in turn within every round so a
    busy machine slows all of them alike (the first pass warms caches and compiles)."""
    best = [float("inf")] * len(datasets)
    for r in range(repeat + 1):
        for k, dataset in enumerate(datasets):
            t = time.perf_counter()
            for i in range(len(dataset)):
                dataset[i]
            if r:
                best[k] = min(best[k], time.perf_counter() - t)
    return [len(d) / b for d, b in zip(datasets, best)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)  # one DataLoader worker = one core
    import torch
    import torchvision.models as tvm
    torch.set_num_threads(1)
    transform = split_transform(tvm.ResNet50_Weights.IMAGENET1K_V1.transforms()).cpu

    paper = filter_registry().select("paper")
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / rel for rel in make_tree(Path(tmp), args.images)]
        items = [(1 + i % len(paper), p) for i, p in enumerate(paths)]
        labels = ["clean: decode + transform", "on the fly, raw filter",
                  f"on the fly + JPEG q{io.DEFAULT_JPEG_QUALITY} round trip"]
        datasets = [ImageDataset([(0, p) for p in paths], transform)]
        for quality in (None, io.DEFAULT_JPEG_QUALITY):
            filters = {1 + k: InstaFilterCallable(name, 1.0, quality)
                       for k, name in enumerate(paper)}
            datasets.append(ImageDataset(items, transform, filters))
        rows = list(zip(labels, rates(datasets, args.repeat)))

    print(f"per worker (one core), {args.images} ImageNet-like 500x375 JPEGs, best of "
          f"{args.repeat}; transform: resize 256, crop 224, uint8 tensor")
    for label, r in rows:
        print(f"{label:42s} {r:8.1f} images/s  {1e3 / r:6.2f} ms/image")
    ratio = rows[0][1] / rows[-1][1]
    print(f"RATIO on the fly (with JPEG round trip) / clean = {ratio:.2f} per image "
          f"(goal <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
