"""Walking an image tree: the one walk that build (its --src) and eval (clean and filtered
trees) share, so both see the same files in the same order.

`walk` yields one entry at a time, names sorted (the same on every machine for the same
names, whatever bytes they hold), and never holds the whole tree.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from .errors import InstafiltersError
from .io import is_image_path
from .paths import split_list

META_DIR = ".instafilters"  # marks an output tree (manifest, failures, logs); never a filter
                            # name, since names are slugs


@dataclass(frozen=True)
class Entry:
    rel: str  # path relative to the source root, '/'-separated
    is_image: bool
    size: int = 0


def split_roots(src: Path, split: str | None) -> list[str]:
    """The sub-folders of `src` to walk: '' (all of it) or each name of a comma list.

    Each is a relative path with no '..' (checked by name, so a linked split folder still
    works): outputs go to <out>/<filter>/<split>/..., and '--split ../../src' once wrote
    over the sources."""
    if not split:
        return [""]
    roots = []
    for name in split_list(split):
        if not name:
            return [""]  # '.': all of it
        if not (src / name).is_dir():
            present = sorted(p.name for p in src.iterdir() if p.is_dir()) if src.is_dir() else []
            raise InstafiltersError(f"--split {name!r}: no folder {src / name} (found: "
                                    f"{', '.join(present) or 'none'})")
        roots.append(name)
    return roots


def output_tree_of(path, memo: dict | None = None) -> str | None:
    """The nearest folder at or above `path` that is a build output (holds META_DIR), if
    any: build refuses one as --src, eval and InstagramImageNet as the clean tree (its
    images would be filtered a second time). `memo` (folder -> answer) lets the walk ask
    for every folder it lists while checking each folder of the tree only once."""
    path = os.fspath(path)
    memo = {} if memo is None else memo
    climbed = []
    while path not in memo:
        climbed.append(path)
        if os.path.isdir(os.path.join(path, META_DIR)):
            memo[path] = path
            break
        parent = os.path.dirname(path)
        if parent == path:
            memo[path] = None
            break
        path = parent
    found = memo[path]
    for folder in climbed:
        memo[folder] = found
    return found


def walk(src, split: str | None = None, limit_per_class: int | None = None,
         exclude: Iterable = (), sizes: bool = False) -> Iterator[Entry]:
    """Every regular file under `src` (or its --split folders), depth first, names sorted.

    Skipped: hidden names (starting with '.'); `exclude` folders and anything inside them
    (an --out inside --src, or reached through a symlink); every instafilters output tree
    (a folder holding META_DIR) other than the one `src` itself lies in, so a build's output
    inside --src, or linked from it, is never filtered again; FIFOs, devices and sockets,
    which are never opened. Directory symlinks are followed once (ImageNet trees are often
    symlink farms). An image name that is a dangling link or a symlink loop is still
    yielded, so it is reported as a failure rather than silently dropped. With
    `limit_per_class`, only the first K images (sorted by name) of each folder are kept.
    `sizes` fills Entry.size (one stat per file, so only when wanted).
    """
    src = Path(src)
    walker = _Walker(exclude, limit_per_class, sizes)
    walker.home = output_tree_of(os.path.realpath(src), walker.trees)
    for root in split_roots(src, split):
        yield from walker.walk_dir(src / root if root else src, root)


class _Walker:
    def __init__(self, exclude, limit, sizes):
        self.excluded = [os.path.realpath(p) for p in exclude]
        self.limit, self.sizes = limit, sizes
        self.seen: set = set()
        self.trees: dict = {}  # resolved folder -> the output tree it lies in, or None
        self.home = None

    def skipped(self, path: str) -> bool:
        real = os.path.realpath(path)
        if any(real == ex or real.startswith(ex + os.sep) for ex in self.excluded):
            return True
        return output_tree_of(real, self.trees) not in (None, self.home)

    def walk_dir(self, path: Path, rel: str) -> Iterator[Entry]:
        """Depth first, names sorted, with a stack of its own: a recursive walk ended in a
        RecursionError traceback on a tree 1,000 folders deep."""
        stack = [(path, rel)]
        while stack:
            path, rel = stack.pop()
            try:
                st = path.stat()
                key = (st.st_dev, st.st_ino)
                if key in self.seen or self.skipped(str(path)):
                    continue
                self.seen.add(key)
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
                kind = _kind(e)
                if kind == "dir":
                    subdirs.append((Path(e.path), child))
                elif is_image_path(e.name):
                    if kind == "other":
                        continue  # a FIFO or device named .JPEG: never opened
                    if self.limit is not None and images >= self.limit:
                        continue
                    images += 1
                    yield Entry(child, True, _size(e) if self.sizes else 0)
                elif kind == "file":
                    yield Entry(child, False)
            stack.extend(reversed(subdirs))  # the first folder is walked next, all of it


def _kind(e: os.DirEntry) -> str:
    """'dir', 'file', 'broken' (a dangling link or a symlink loop) or 'other' (FIFO, ...)."""
    try:
        if e.is_dir():
            return "dir"
        if e.is_file():
            return "file"
    except OSError:  # ELOOP and the like
        return "broken"
    return "broken" if e.is_symlink() and not os.path.exists(e.path) else "other"


def _size(e: os.DirEntry) -> int:
    try:
        return e.stat().st_size
    except OSError:
        return 0
