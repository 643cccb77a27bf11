"""What to score: the clean tree and its filtered copies, paired image by image, with labels.

A build output holds `<data>/<filter>/<path relative to the clean tree>`. An image is keyed
by that relative path without its extension (so a build that re-encodes JPEG as PNG still
pairs); labels come from `labels` (the ImageNet-1k index of the wnid folder). No torch here.
"""
from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from .. import io
from ..paths import split_list
from ..tree import output_tree_of, split_roots, walk
from ..errors import InstafiltersError
from .labels import image_key, label_matrix, read_accepted_labels

log = logging.getLogger(__name__)

CLEAN = "clean"


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


@dataclass
class EvalPlan:
    """The images to score (sorted keys), their labels, and the file of each key per set.
    On the fly (`data_root` None) every set lists the clean files and `filtering` says how
    to filter them in the loader: strength, jpeg_quality, recipes, recipes_only."""
    clean_root: Path
    data_root: Path | None
    split: str | None
    keys: list[str]
    labels: np.ndarray                      # (N, L) class indices, -1 padded / unlabelled
    sets: dict[str, list[Path]]             # 'clean' then each filter, paths in key order
    skipped_clean: int = 0                  # clean images with no copy in some filter folder
    options: dict = field(default_factory=dict)  # strength, limit_per_class, labels: for the report
    filtering: dict | None = None

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
    -> the whole tree; any other name must be one folder of the clean tree, checked as the
    build checks its --split (tree.split_roots: a relative path without '..', a folder).
    A clean tree that is a build output is refused: its images would be filtered twice."""
    tree = output_tree_of(os.path.realpath(clean_root))
    if tree is not None:
        raise InstafiltersError(f"{clean_root} is inside the build output {tree}: give the "
                                f"clean tree it was built from")
    if split in (None, "", "."):
        return None
    if split == "auto":
        return "val" if (clean_root / "val").is_dir() else None
    names = split_list(split)
    if len(names) != 1:
        raise InstafiltersError(f"--split {split!r}: one folder expected, got {len(names)} "
                                f"(eval scores one split at a time)")
    return split_roots(clean_root, split)[0] or None


def clean_images(root: Path, split: str | None, what: str = "") -> tuple[str | None, dict]:
    """(the split resolve_split makes of `split`, key -> path of every image under it, keys
    relative to the split folder): the clean tree as eval and InstagramImageNet read it.
    `what` starts the errors ('--clean ' for eval)."""
    if not root.is_dir():
        raise InstafiltersError(f"{what}{root}: no such folder")
    split = resolve_split(root, split)
    folder = root / split if split else root
    found = scan_images(folder)
    if not found:
        raise InstafiltersError(f"{what}{folder}: no images found "
                                f"({', '.join(sorted(io.IMAGE_EXTENSIONS))})")
    return split, found


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
                    strength: float | None = None,
                    jpeg_quality: int | None = io.DEFAULT_JPEG_QUALITY, recipes=None,
                    recipes_only: bool = False) -> EvalPlan:
    """Pair every clean image with its copy under each filter folder and label it; with
    `data_root` None, plan to filter the clean images on the fly instead (at `strength`,
    default 1, through the build's encoder at `jpeg_quality` unless None).

    Images are the clean ones (under --split) that have a copy in every selected filter
    folder, sorted by path, then at most `limit_per_class` per class folder (the first by
    name, so two runs score the same images).
    """
    clean_root = Path(clean_root)
    split, found = clean_images(clean_root, split, "--clean ")
    sub = Path(split) if split else Path()
    clean = {image_key(sub / k): p for k, p in found.items()}
    if data_root is None:
        filtering = {"strength": 1.0 if strength is None else float(strength),
                     "jpeg_quality": jpeg_quality, "recipes": recipes,
                     "recipes_only": recipes_only}
        keys = _limit(sorted(clean), limit_per_class)
        sets = {CLEAN: [clean[k] for k in keys], **{f: [clean[k] for k in keys] for f in filters}}
        return EvalPlan(clean_root, None, split, keys, _labels(keys, labels_csv), sets,
                        options=_options(strength, limit_per_class, labels_csv),
                        filtering=filtering)

    data_root = Path(data_root)
    filter_dirs = find_filter_dirs(data_root, filters, registry, strength)
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

    ordered = _limit(sorted(keys), limit_per_class)
    sets = {CLEAN: [clean[k] for k in ordered]}
    for name in filter_dirs:
        sets[name] = [copies[name][k] for k in ordered]
    return EvalPlan(clean_root, data_root, split, ordered, _labels(ordered, labels_csv), sets,
                    skipped, _options(strength, limit_per_class, labels_csv))


def _limit(keys: list[str], limit_per_class: int | None) -> list[str]:
    """At most `limit_per_class` keys per class folder, the first by name."""
    if limit_per_class is None:
        return keys
    per_class: dict[str, int] = defaultdict(int)
    kept = []
    for k in keys:
        cls = PurePosixPath(k).parent.as_posix()
        if per_class[cls] < limit_per_class:
            per_class[cls] += 1
            kept.append(k)
    return kept


def _labels(keys, labels_csv) -> np.ndarray:
    return label_matrix(keys, read_accepted_labels(labels_csv) if labels_csv else None)


def _options(strength, limit_per_class, labels_csv) -> dict:
    return {"strength": strength, "limit_per_class": limit_per_class,
            "labels": str(labels_csv) if labels_csv else "wnid folders"}
