"""What a build tells its user: the counts (`Summary`), progress lines or a bar, and sizes."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Summary:
    sources: int = 0  # image files in this run (after --split, --limit-per-class, --shard)
    others: int = 0  # files left alone (not images)
    done: int = 0
    skipped: int = 0
    failed: int = 0
    written: int = 0  # output files written
    outputs_per_source: int = 0
    seconds: float = 0.0
    source_bytes: int = 0
    estimate_bytes: int | None = None
    existing_outputs: int | None = None
    free_bytes: int | None = None
    failures_path: Path | None = None
    manifest_path: Path | None = None
    log_path: Path | None = None

    @property
    def processed(self):
        return self.done + self.skipped + self.failed

    def line(self) -> str:
        rate = self.processed / self.seconds if self.seconds else 0.0
        out_rate = self.written / self.seconds if self.seconds else 0.0
        return (f"done {self.done}, skipped {self.skipped}, failed {self.failed} of "
                f"{self.sources} sources ({self.written} files written, {self.others} "
                f"non-image files left alone) in {duration(self.seconds)}: "
                f"{rate:.1f} images/s, {out_rate:.0f} outputs/s")


class Progress:
    """A tqdm bar on a terminal (via `factory`), else a plain line every `interval` seconds."""

    def __init__(self, total, say, factory=None, interval: float | None = None):
        self.total, self.say = total, say
        self.bar = factory(total) if factory else None
        self.interval = interval if interval is not None else float(
            os.environ.get("INSTAFILTERS_LOG_INTERVAL", 30))
        self.start = self.last = time.monotonic()

    def update(self, n, summary: Summary):
        if self.bar is not None:
            self.bar.update(n)
            if summary.failed:
                self.bar.set_postfix(failed=summary.failed, refresh=False)
            return
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            done = summary.processed
            rate = done / (now - self.start)
            eta = (self.total - done) / rate if rate else 0
            self.say(f"{done}/{self.total} sources ({100 * done / max(1, self.total):.1f}%), "
                     f"{rate:.1f} images/s, {summary.written / (now - self.start):.0f} "
                     f"outputs/s, {summary.failed} failed, ETA {duration(eta)}")

    def close(self):
        if self.bar is not None:
            self.bar.close()


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"
