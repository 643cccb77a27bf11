"""ImageNet-1k labels: the wnid index list, image keys, and accepted-classes CSVs.

An image's label is the ImageNet-1k index of its wnid folder (`val/n02123045/x.JPEG` ->
281, tabby) from the shipped list `instafilters/data/imagenet_wnids.txt`, never the
alphabetical position among the folders present (ImageFolder's index, wrong on a subset).
A folder that is not one of the 1000 wnids leaves its images unlabelled (-1).
No torch here.
"""
from __future__ import annotations

import csv
import io
from functools import lru_cache
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import InstafiltersError
from ..files import display, read_text, why
from .metrics import UNLABELLED

WNIDS_FILE = Path(__file__).resolve().parent.parent / "data" / "imagenet_wnids.txt"


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


MAX_LABELS_BYTES = 256 * 2**20  # ImageNet's train split, one row per image, is ~60 MB


def read_accepted_labels(path) -> dict[str, list[int]]:
    """A labels CSV (`path`, `accepted_classes` = space-separated indices 0-999) -> key -> list.
    Read as every user file is (files.read_text: regular, bounded, UTF-8; a FIFO hung here),
    a leading BOM (Excel's CSV) dropped; a short row or a path given twice is an error."""
    path = Path(path)
    try:
        text = read_text(path, MAX_LABELS_BYTES)
    except OSError as e:
        raise InstafiltersError(f"{display(path)}: cannot read labels ({why(e)})") from None
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    rows = list(reader)
    missing = {"path", "accepted_classes"} - set(reader.fieldnames or [])
    if missing:
        raise InstafiltersError(f"{display(path)}: expected columns 'path' and "
                                f"'accepted_classes', missing {', '.join(sorted(missing))}")
    accepted = {}
    for line, row in enumerate(rows, start=2):
        value = row["accepted_classes"] or ""
        try:
            classes = [int(c) for c in value.split()]
        except ValueError:
            classes = [-1]
        if not classes or not all(0 <= c < 1000 for c in classes):
            raise InstafiltersError(f"{display(path)}, line {line}: accepted_classes must be "
                                    f"space-separated class indices 0-999, got {value!r}")
        key = image_key(row["path"] or "")
        if key in accepted:
            raise InstafiltersError(f"{display(path)}, line {line}: {row['path']!r} is listed "
                                    f"twice")
        accepted[key] = classes
    return accepted


def wnid_label(key: str) -> int:
    """The class index of a key's wnid folder, -1 if the folder is not an ImageNet-1k wnid."""
    return wnid_to_index().get(PurePosixPath(key).parent.name, UNLABELLED)


def label_matrix(keys: list[str], accepted: dict[str, list[int]] | None = None) -> np.ndarray:
    """(N, L) accepted classes per key: from `accepted` where it names the key, else the
    class of the key's wnid folder; -1 where neither is known."""
    rows = []
    for k in keys:
        if accepted and k in accepted:
            rows.append(accepted[k])
        else:
            rows.append([wnid_label(k)])
    width = max((len(r) for r in rows), default=1)
    out = np.full((len(rows), width), UNLABELLED, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out

