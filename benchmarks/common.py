"""Shared by the benchmarks: the ImageNet-like benchmark tree cut from the reference photos
(<INSTAFILTERS_SHARED or ../shared>/photos)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from instafilters.settings import shared_dir

REPO = Path(__file__).resolve().parents[1]
PHOTOS = shared_dir() / "photos"
FALLBACK = REPO / "instafilters" / "data" / "sample"  # same photos, bundled
# tmpfs where there is one: on an ext4 mounted with discard, the deletes of one phase slow
# the writes of the next by up to 30 %, which would decide the ratios more than the code
BENCH_OUT = Path(os.environ.get("INSTAFILTERS_BENCH_OUT") or (
    "/dev/shm/instafilters-bench" if os.path.isdir("/dev/shm") else REPO / "bench-out"))


def photos() -> list:
    root = PHOTOS if PHOTOS.is_dir() else FALLBACK
    found = sorted(root.glob("val/*/*.JPEG"))
    if not found:
        raise SystemExit(f"no photos under {root}")
    return found


def make_tree(root: Path, count: int, seed: int = 0) -> list:
    """`count` JPEGs of ImageNet's typical size (500x375, a quarter portrait 375x500) at
    quality 90, cut at random scales and positions from the real photos, in
    val/<wnid>/<name>.JPEG folders. Reuses the tree if it is already complete."""
    root = Path(root)
    marker = root / f".complete-{count}-{seed}"
    if marker.exists():
        return sorted(str(p.relative_to(root)) for p in root.glob("val/*/*.JPEG"))
    rng = np.random.default_rng(seed)
    sources = [(p.parent.name, Image.open(p).convert("RGB")) for p in photos()]
    rels = []
    for i in range(count):
        wnid, im = sources[i % len(sources)]
        w, h = (375, 500) if i % 4 == 3 else (500, 375)
        scale = rng.uniform(0.6, 1.0)
        cw, ch = int(im.width * scale), int(im.width * scale * h / w)
        if ch > im.height:
            ch, cw = im.height, int(im.height * w / h)
        x, y = int(rng.integers(0, im.width - cw + 1)), int(rng.integers(0, im.height - ch + 1))
        crop = im.crop((x, y, x + cw, y + ch)).resize((w, h), Image.BICUBIC)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        rel = f"val/{wnid}/ILSVRC2012_val_{i + 1:08d}.JPEG"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        crop.save(root / rel, "JPEG", quality=90)
        rels.append(rel)
    marker.touch()
    return sorted(rels)


def median_time(fn, repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def cores() -> int:
    """As `instafilters build` counts them (joblib: affinity and cgroup limits)."""
    from joblib import cpu_count
    return max(1, cpu_count())
