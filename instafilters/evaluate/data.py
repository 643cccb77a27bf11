"""What to score: the clean tree and its filtered copies, paired image by image, with labels.

A build output holds `<data>/<filter>/<path relative to the clean tree>`. An image is keyed
by that relative path without its extension (so a build that re-encodes JPEG as PNG still
pairs). Its label is the ImageNet-1k index of its wnid folder (`val/n02123045/x.JPEG` ->
281, tabby) from the shipped list `instafilters/data/imagenet_wnids.txt`, never the
alphabetical position among the folders present (ImageFolder's index, wrong on a subset).
A folder that is not one of the 1000 wnids leaves its images unlabelled: they still count
for agreement with the clean prediction.

torch is imported only inside `make_loader`, so planning and its tests need none.
"""
from __future__ import annotations

import csv
import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath

import numpy as np

from .. import io
from ..tree import walk
from ..errors import ImageError, InstafiltersError
from .metrics import UNLABELLED

log = logging.getLogger(__name__)

WNIDS_FILE = Path(__file__).resolve().parent.parent / "data" / "imagenet_wnids.txt"
CLEAN = "clean"


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k wnids in the standard class-index order (0 = n01440764 tench)."""
    wnids = tuple(w.strip() for w in WNIDS_FILE.read_text().split() if w.strip())
    if len(wnids) != 1000 or len(set(wnids)) != 1000:
        raise InstafiltersError(f"{WNIDS_FILE}: expected 1000 distinct wnids, got {len(wnids)}")
    return wnids


@lru_cache(maxsize=1)
def wnid_to_index() -> dict[str, int]:
    return {w: i for i, w in enumerate(imagenet_wnids())}


def image_key(relpath) -> str:
    """'val/n01/x.JPEG' -> 'val/n01/x' (posix, extension dropped)."""
    p = PurePosixPath(Path(relpath).as_posix())
    return str(p.with_suffix("")) if p.suffix else str(p)


def scan_images(root: Path) -> dict[str, Path]:
    """key -> path of every image file under `root`, walked as the build walks its source
    (instafilters.tree.walk: sorted, hidden and temporary files skipped, linked folders once)."""
    found: dict[str, Path] = {}
    root = Path(root)
    for entry in walk(root):
        if not entry.is_image:
            continue
        path = root / entry.rel
        key = image_key(entry.rel)
        if key in found:
            raise InstafiltersError(f"{root}: two images with the same name but different "
                                    f"extensions: {found[key].name} and {path.name} in "
                                    f"{path.parent}")
        found[key] = path
    return found


def read_accepted_labels(path) -> dict[str, list[int]]:
    """A labels CSV (`path`, `accepted_classes` = space-separated indices 0-999) -> key -> list."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
            columns = rows[0].keys() if rows else []
    except OSError as e:
        raise InstafiltersError(f"{path}: cannot read labels ({e.strerror or e})") from None
    missing = {"path", "accepted_classes"} - set(columns)
    if missing:
        raise InstafiltersError(f"{path}: expected columns 'path' and 'accepted_classes', "
                                f"missing {', '.join(sorted(missing))}")
    accepted = {}
    for line, row in enumerate(rows, start=2):
        try:
            classes = [int(c) for c in row["accepted_classes"].split()]
        except ValueError:
            classes = [-1]
        if not classes or not all(0 <= c < 1000 for c in classes):
            raise InstafiltersError(f"{path}, line {line}: accepted_classes must be "
                                    f"space-separated class indices 0-999, got "
                                    f"{row['accepted_classes']!r}")
        accepted[image_key(row["path"])] = classes
    return accepted


@dataclass
class EvalPlan:
    """The images to score (sorted keys), their labels, and the file of each key per set."""
    clean_root: Path
    data_root: Path
    split: str | None
    keys: list[str]
    labels: np.ndarray                      # (N, L) class indices, -1 padded / unlabelled
    sets: dict[str, list[Path]]             # 'clean' then each filter, paths in key order
    filter_dirs: dict[str, Path] = field(default_factory=dict)
    skipped_clean: int = 0                  # clean images with no copy in some filter folder
    options: dict = field(default_factory=dict)  # strength, limit_per_class, labels: for the report

    @property
    def n(self) -> int:
        return len(self.keys)

    def relpath(self, i: int) -> str:
        return self.sets[CLEAN][i].relative_to(self.clean_root).as_posix()

    def items(self) -> list[tuple[int, Path]]:
        """(set index, path) of every image to run, set by set."""
        return [(s, p) for s, paths in enumerate(self.sets.values()) for p in paths]


def resolve_split(clean_root: Path, split: str | None) -> str | None:
    """'auto' -> 'val' when the clean tree has a val folder, else the whole tree; '.' or ''
    -> the whole tree; any other name must be a folder of the clean tree."""
    if split in (None, "", "."):
        return None
    if split == "auto":
        return "val" if (clean_root / "val").is_dir() else None
    if not (clean_root / split).is_dir():
        raise InstafiltersError(f"--split {split!r}: {clean_root / split} is not a folder")
    return split


def find_filter_dirs(data_root: Path, filters: list[str], registry,
                     strength: float | None = None) -> dict[str, Path]:
    """Canonical filter name -> its folder in the build output. Folder names match by name or
    alias, case-insensitively (`Lo-Fi/` serves `lofi`). With `strength`, the folder is
    `<filter>/<strength>/`, as `instafilters build --strength 0.5,1` writes them."""
    if not data_root.is_dir():
        raise InstafiltersError(f"--data {data_root}: no such folder")
    folders = sorted(d for d in data_root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not folders:
        raise InstafiltersError(
            f"--data {data_root} is empty: expected one folder per filter "
            f"(make it with: instafilters build --src CLEAN --out {data_root})")
    present = {}
    for d in folders:
        if d.name in registry:
            present.setdefault(registry.canonical(d.name), d)
    missing = [f for f in filters if f not in present]
    if missing:
        have = ", ".join(sorted(present)) or "none"
        raise InstafiltersError(
            f"--data {data_root} has no folder for filter(s) {', '.join(missing)} "
            f"(filter folders present: {have}); build them with "
            f"`instafilters build --filters {','.join(missing)}` or choose --filters among those present")
    if strength is None:
        return {f: present[f] for f in filters}
    out = {}
    for f in filters:
        folder = present[f] / f"{strength:g}"
        if not folder.is_dir():
            have = sorted(d.name for d in present[f].iterdir() if d.is_dir())
            raise InstafiltersError(f"--strength {strength:g}: no folder {folder} (found: "
                                    f"{', '.join(have) or 'none'})")
        out[f] = folder
    return out


def plan_evaluation(clean_root, data_root, filters: list[str], registry, split="auto",
                    limit_per_class: int | None = None, labels_csv=None,
                    strength: float | None = None) -> EvalPlan:
    """Pair every clean image with its copy under each filter folder and label it.

    Images are the clean ones (under --split) that have a copy in every selected filter
    folder, sorted by path, then at most `limit_per_class` per class folder (the first by
    name, so two runs score the same images).
    """
    clean_root, data_root = Path(clean_root), Path(data_root)
    if not clean_root.is_dir():
        raise InstafiltersError(f"--clean {clean_root}: no such folder")
    split = resolve_split(clean_root, split)
    filter_dirs = find_filter_dirs(data_root, filters, registry, strength)

    sub = Path(split) if split else Path()
    clean = {image_key(sub / k): p for k, p in scan_images(clean_root / sub).items()}
    if not clean:
        raise InstafiltersError(f"--clean {clean_root / sub}: no images found "
                                f"({', '.join(sorted(io.IMAGE_EXTENSIONS))})")
    keys = set(clean)
    copies = {}
    for name, folder in filter_dirs.items():
        found = {image_key(sub / k): p for k, p in scan_images(folder / sub).items()}
        common = keys & found.keys()
        if not common:
            hint = "is --clean the tree that --data was built from?"
            if not split and (folder / clean_root.resolve().name).is_dir():
                hint = (f"--data was built from {clean_root.resolve().parent}: pass that as "
                        f"--clean with --split {clean_root.resolve().name}")
            raise InstafiltersError(
                f"{folder / sub}: none of the {len(clean)} images of {clean_root / sub} has a "
                f"filtered copy here; {hint}")
        copies[name] = found
        keys = common
    skipped = len(clean) - len(keys)
    if skipped:
        log.warning("%d of %d clean images have no copy in every filter folder; scoring the "
                    "%d that do", skipped, len(clean), len(keys))

    ordered = sorted(keys)
    if limit_per_class is not None:
        per_class: dict[str, int] = defaultdict(int)
        kept = []
        for k in ordered:
            cls = PurePosixPath(k).parent.as_posix()
            if per_class[cls] < limit_per_class:
                per_class[cls] += 1
                kept.append(k)
        ordered = kept

    labels = label_matrix(ordered, read_accepted_labels(labels_csv) if labels_csv else None)
    sets = {CLEAN: [clean[k] for k in ordered]}
    for name in filter_dirs:
        sets[name] = [copies[name][k] for k in ordered]
    options = {"strength": strength, "limit_per_class": limit_per_class,
               "labels": str(labels_csv) if labels_csv else "wnid folders"}
    return EvalPlan(clean_root, data_root, split, ordered, labels, sets, filter_dirs, skipped,
                    options)


def label_matrix(keys: list[str], accepted: dict[str, list[int]] | None = None) -> np.ndarray:
    """(N, L) accepted classes per key: from `accepted` where it names the key, else the
    class of the key's wnid folder; -1 where neither is known."""
    index = wnid_to_index()
    rows = []
    for k in keys:
        if accepted and k in accepted:
            rows.append(accepted[k])
        else:
            rows.append([index.get(PurePosixPath(k).parent.name, UNLABELLED)])
    width = max((len(r) for r in rows), default=1)
    out = np.full((len(rows), width), UNLABELLED, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


# -- loading (torch from here on, imported lazily) ------------------------------------------

class ImageDataset:
    """Map-style dataset over (set index, path): decodes with instafilters.io (as the build
    does) and applies `transform`, the CPU part of the model's own preprocessing (PIL resize
    and crop to a uint8 tensor; see models.split_transform). A file that cannot be read
    comes back as its error message, so the main process can raise a one-line error (a
    worker's exception would arrive wrapped in a traceback)."""

    def __init__(self, items: list[tuple[int, Path]], transform):
        self.items = items
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        from PIL import Image
        _, path = self.items[i]
        try:
            image = Image.fromarray(io.decode(path).rgb, "RGB")
        except ImageError as e:
            return None, i, str(e)
        return self.transform(image), i, None


def collate(batch):
    import torch
    errors = [e for _, _, e in batch if e is not None]
    if errors:
        return None, None, errors
    images = torch.stack([x for x, _, _ in batch])
    return images, torch.tensor([i for _, i, _ in batch], dtype=torch.long), None


def default_workers(device_type: str) -> int:
    """Decoding feeds a GPU only with many processes; on CPU the model needs the cores."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cpus = os.cpu_count() or 1
    return min(16, cpus) if device_type == "cuda" else max(1, min(4, cpus // 4))


def make_loader(dataset: ImageDataset, batch_size: int, workers: int, pin_memory: bool):
    from torch.utils.data import DataLoader
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                      collate_fn=collate, pin_memory=pin_memory,
                      prefetch_factor=4 if workers > 0 else None,
                      persistent_workers=False)
