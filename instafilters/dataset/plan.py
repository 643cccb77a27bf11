"""The walk's entries (instafilters.tree) -> a deterministic, streamed list of work.

Nothing here holds the whole tree: `shard_of` splits the walk into N disjoint parts by a
hash of the relative path, and `batches` cuts the stream into small lists for the workers.
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import InstafiltersError
from ..io import TEMP_PREFIX


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
