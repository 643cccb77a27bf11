"""Source tree -> a deterministic, streamed list of work.

Nothing here holds the whole tree: `walk` yields one entry at a time in sorted order (the
same on every machine for the same names), `shard_of` splits it into N disjoint parts by a
hash of the relative path, and `batches` cuts the stream into small lists for the workers.
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import InstafiltersError
from ..io import TEMP_PREFIX, is_image_path
from ..paths import clean_rel

META_DIR = ".instafilters"  # manifest, failures and logs; never a filter name (names are slugs)


@dataclass(frozen=True)
class Entry:
    rel: str  # path relative to the source root, '/'-separated
    is_image: bool
    size: int = 0


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> "Shard":
        if not text:
            return cls()
        try:
            i, n = (int(x) for x in text.split("/"))
        except ValueError:
            raise InstafiltersError(f"--shard expects I/N such as 0/8, got {text!r}") from None
        if n < 1 or not 0 <= i < n:
            raise InstafiltersError(f"--shard {text}: expected 0 <= I < N (I counts from 0, "
                                    f"like SLURM_ARRAY_TASK_ID with --array=0-{max(n - 1, 0)})")
        return cls(i, n)

    def __contains__(self, rel: str) -> bool:
        return self.count == 1 or shard_of(rel, self.count) == self.index

    def __str__(self):  # the --shard syntax
        return f"{self.index}/{self.count}"

    @property
    def tag(self) -> str:
        """The shard's name on disk: running-<tag>, *.<tag>.tmp, <run> = <stamp>-<tag>-..."""
        return f"s{self.index}of{self.count}"


def shard_of(rel: str, count: int) -> int:
    """Stable across machines, Python versions and runs (unlike hash())."""
    return zlib.crc32(rel.encode("utf-8", "surrogateescape")) % count


def split_roots(src: Path, split: str | None) -> list[str]:
    """The sub-folders of `src` to walk: '' (all of it) or each name of a comma list."""
    if not split:
        return [""]
    roots = []
    for name in (clean_rel(s.strip(), "--split") for s in split.split(",") if s.strip()):
        if not name:
            return [""]  # '.': all of it
        if not (src / name).is_dir():
            present = sorted(p.name for p in src.iterdir() if p.is_dir()) if src.is_dir() else []
            raise InstafiltersError(f"--split {name}: no folder {src / name} (found: "
                                    f"{', '.join(present) or 'none'})")
        roots.append(name)
    return roots


def walk(src, split: str | None = None, limit_per_class: int | None = None,
         exclude: Iterable = (), sizes: bool = False) -> Iterator[Entry]:
    """Every file under `src` (or its --split folders), depth first, names sorted.

    Hidden names (starting with '.') are skipped, so are `exclude` folders (an --out inside
    --src). Directory symlinks are followed once (ImageNet trees are often symlink farms);
    an image name that is not a regular file (a dangling link) is still yielded, so it is
    reported as a failure rather than silently dropped. With `limit_per_class`, only the first
    K images (sorted by name) of each folder are kept. `sizes` fills Entry.size (one stat
    per file, so only when wanted).
    """
    src = Path(src)
    excluded = {os.path.realpath(p) for p in exclude}
    seen: set = set()
    for root in split_roots(src, split):
        yield from _walk_dir(src / root if root else src, root, limit_per_class, excluded, seen,
                             sizes)


def _walk_dir(path: Path, rel: str, limit, excluded, seen, sizes) -> Iterator[Entry]:
    try:
        st = path.stat()
        key = (st.st_dev, st.st_ino)
        if key in seen or os.path.realpath(path) in excluded:
            return
        seen.add(key)
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as e:
        raise InstafiltersError(f"cannot list {path}: {e.strerror or e}") from None
    subdirs = []
    images = 0
    for e in entries:
        if e.name.startswith("."):
            continue
        child = f"{rel}/{e.name}" if rel else e.name
        try:
            is_dir = e.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            subdirs.append((e, child))
            continue
        if is_image_path(e.name):
            if not _is_regular_or_dangling(e):
                continue  # a FIFO or device named .JPEG: never opened
            if limit is not None and images >= limit:
                continue
            images += 1
            yield Entry(child, True, _size(e) if sizes else 0)
        else:
            yield Entry(child, False)
    for e, child in subdirs:
        yield from _walk_dir(Path(e.path), child, limit, excluded, seen, sizes)


def _is_regular_or_dangling(e: os.DirEntry) -> bool:
    try:
        return e.is_file() or (e.is_symlink() and not os.path.exists(e.path))
    except OSError:
        return True


def _size(e: os.DirEntry) -> int:
    try:
        return e.stat().st_size
    except OSError:
        return 0


def batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def iter_temporaries(out: Path) -> Iterator[Path]:
    """Temporary files (io.TEMP_PREFIX) anywhere under --out."""
    for dirpath, dirnames, filenames in os.walk(out):
        for name in filenames:
            if name.startswith(TEMP_PREFIX):
                yield Path(dirpath) / name
