"""Work unit -> outputs, and the run around it (joblib/loky or Dask, progress, manifest).

Per source the worker does the least it can: stat the outputs (all present and valid ->
skipped, nothing decoded), decode once, optionally resize, then for each selected filter
and strength apply, encode by the source's extension and write atomically (temporary in
the destination folder, then rename). Only `OutputError` (disk full, read-only, no
permission on --out) stops a run; a bad source is a `failed` line with its reason.
"""
from __future__ import annotations

import errno
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from .. import io
from ..errors import ImageError, InstafiltersError
from . import manifest as mf
from ..tree import walk
from .plan import Shard, batches, iter_temporaries

DONE, SKIPPED, FAILED = "done", "skipped", "failed"
TEMP_SUFFIX = ".tmp"  # a temporary is never named like an image (ImageFolder would load it)
FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
SHARED_TEMP_AGE_S = 600  # with --shard, other shards may be writing: only older temps are orphans
MAX_BATCH = 32  # sources per task: ~2 s of work at 20 filters: per-task overhead is noise
ESTIMATE_SAMPLE = 12  # sources encoded by --dry-run to estimate the output size


class OutputError(InstafiltersError):
    """--out cannot be written (disk full, read-only, permissions): the run must stop."""


@dataclass(frozen=True)
class Target:
    """One output folder: <out>/<key>/..., key = filter or filter/strength."""
    key: str
    filter: str
    strength: float
    valid_since: float = 0.0


@dataclass(frozen=True)
class Job:
    """Everything a worker needs, small and picklable; the recipes travel with it, so a
    recipe file edited during the run cannot change what this run makes."""
    src: str
    out: str
    recipes: tuple
    targets: tuple
    quality: int
    resize: int | None
    overwrite: bool
    token: str
    temp_suffix: str = TEMP_SUFFIX


@dataclass
class BuildConfig:
    src: Path
    out: Path
    registry: object  # FilterRegistry
    filters: list  # canonical names
    strengths: tuple = (1.0,)
    quality: int = io.DEFAULT_JPEG_QUALITY
    resize: int | None = None
    split: str | None = None
    limit_per_class: int | None = None
    shard: Shard = field(default_factory=Shard)
    jobs: int = 1
    backend: str = "loky"
    scheduler: str | None = None
    dry_run: bool = False
    overwrite: bool = False
    strict: bool = False
    batch_size: int | None = None


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
                f"non-image files left alone) in {_duration(self.seconds)}: "
                f"{rate:.1f} images/s, {out_rate:.0f} outputs/s")


# ---------------------------------------------------------------- worker side
_COMPILED: dict = {}


def _filters_for(job: Job) -> dict:
    compiled = _COMPILED.get(job.token)
    if compiled is None:
        from ..compile import CompiledFilter
        cv2.setNumThreads(1)  # one process per core; OpenCV's own threads would oversubscribe
        compiled = {r.name: CompiledFilter(r) for r in job.recipes}
        _COMPILED.clear()
        _COMPILED[job.token] = compiled
    return compiled


def process_batch(job: Job, rels: list) -> list:
    """Run one batch of sources; returns (rel, status, written, reason) per source."""
    filters = _filters_for(job)
    return [process_source(job, filters, rel) for rel in rels]


def output_paths(job: Job, rel: str) -> list:
    return [os.path.join(job.out, t.key, rel) for t in job.targets]


def _valid(path: str, since: float) -> bool:
    """The output exists and was written after its filter's settings were recorded (strictly
    after: a file from the same clock tick is remade rather than risk keeping a stale one)."""
    try:
        return os.stat(path).st_mtime > since
    except OSError:
        return False


def process_source(job: Job, filters: dict, rel: str) -> tuple:
    outs = output_paths(job, rel)
    if job.overwrite:
        todo = list(range(len(outs)))
    else:
        todo = [i for i, p in enumerate(outs) if not _valid(p, job.targets[i].valid_since)]
        if not todo:
            return rel, SKIPPED, 0, None
    src = os.path.join(job.src, rel)
    try:
        fmt = io.format_for(rel)
        decoded = io.decode(src)
    except ImageError as e:
        return rel, FAILED, 0, _reason(e, src)
    rgb = decoded.rgb if job.resize is None else resize_short(decoded.rgb, job.resize)
    written = 0
    filtered = np.empty_like(rgb)  # one buffer for every filter: each is encoded at once
    for i in todo:
        target = job.targets[i]
        try:
            data = io.encode_bytes(filters[target.filter](rgb, target.strength, out=filtered),
                                   fmt, job.quality, decoded.orientation)
        except (OSError, ValueError) as e:  # e.g. a JPEG side over 65,535 pixels
            return rel, FAILED, written, f"cannot encode {fmt} for {target.key}: {e}"
        try:
            io.atomic_write_bytes(outs[i], data, temp_suffix=job.temp_suffix)
        except OSError as e:
            if e.errno in FATAL_ERRNOS:
                raise OutputError(f"cannot write {outs[i]}: {e.strerror or e}") from None
            return rel, FAILED, written, f"cannot write {target.key}/{rel}: {e.strerror or e}"
        written += 1
    return rel, DONE, written, None


def _reason(e: Exception, src: str) -> str:
    text = str(e)
    return text[len(src) + 2:] if text.startswith(src + ": ") else text


def resize_short(rgb, short: int):
    """Shorter side -> `short`, aspect kept (torchvision's Resize(int) rounding); area
    averaging when shrinking, bilinear when enlarging."""
    h, w = rgb.shape[:2]
    if min(h, w) == short:
        return rgb
    if h <= w:
        size = (max(1, int(short * w / h)), short)
    else:
        size = (short, max(1, int(short * h / w)))
    interpolation = cv2.INTER_AREA if short < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(rgb, size, interpolation=interpolation)


# ---------------------------------------------------------------- backends
def run_batches(job: Job, work: Iterator[list], jobs: int, backend: str = "loky",
                client=None) -> Iterator[list]:
    """Results of process_batch over `work`, in completion order. The work iterator is
    consumed lazily (joblib's pre_dispatch), so memory does not grow with the tree.
    `client`: a dask.distributed Client for backend "dask" (see dask_client)."""
    if backend == "loky" and jobs == 1:
        for batch in work:
            yield process_batch(job, batch)
        return
    from joblib import Parallel, delayed, parallel_config
    tasks = (delayed(process_batch)(job, batch) for batch in work)
    if backend == "dask":
        with parallel_config(backend="dask", client=client):
            yield from Parallel(n_jobs=-1, batch_size=1, pre_dispatch="2*n_jobs",
                                return_as="generator_unordered")(tasks)
        return
    yield from Parallel(n_jobs=jobs, backend="loky", batch_size=1, pre_dispatch="2*n_jobs",
                        return_as="generator_unordered")(tasks)


def dask_client(scheduler: str | None):
    try:
        from dask.distributed import Client
    except ImportError:
        raise InstafiltersError(
            "--backend dask needs dask.distributed on this machine and on every worker: "
            "pip install 'instafilters[dask]' (or pip install 'dask[distributed]')") from None
    if not scheduler:
        raise InstafiltersError("--backend dask needs --scheduler tcp://HOST:8786 (the address "
                                "of a running Dask scheduler)")
    try:
        return Client(scheduler, timeout="30s")
    except (OSError, TimeoutError) as e:
        raise InstafiltersError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None


# ---------------------------------------------------------------- the run
def targets_for(filters, strengths, record=None) -> tuple:
    several = len(strengths) > 1
    out = []
    for name in filters:
        since = record["filters"][name]["valid_since"] if record else 0.0
        for s in strengths:
            key = f"{name}/{s:g}" if several else name
            out.append(Target(key, name, float(s), since))
    return tuple(out)


def record_options(cfg: BuildConfig) -> dict:
    return {"quality": cfg.quality, "resize": cfg.resize,
            "strength": [float(s) for s in cfg.strengths]}


def _check_paths(cfg: BuildConfig):
    if not cfg.src.is_dir():
        raise InstafiltersError(f"--src {cfg.src}: not a folder")
    src, out = os.path.realpath(cfg.src), os.path.realpath(cfg.out)
    if src == out or src.startswith(out + os.sep):
        raise InstafiltersError(f"--out {cfg.out} must not be --src or contain it")


def _sources(cfg: BuildConfig, sizes: bool = False):
    """The walk's entries (images and other files) that fall in this run's --shard."""
    for entry in walk(cfg.src, cfg.split, cfg.limit_per_class, exclude=[cfg.out], sizes=sizes):
        if entry.rel in cfg.shard:
            yield entry


def build(cfg: BuildConfig, report: Callable[[str], None] = lambda line: None,
          progress_factory=None) -> Summary:
    """Run (or with dry_run, count) a build. `report` receives log lines; `progress_factory`
    (total) -> a tqdm-like object (update(n), set_postfix, close) for a terminal bar."""
    _check_paths(cfg)
    client = dask_client(cfg.scheduler) if cfg.backend == "dask" and not cfg.dry_run else None
    try:
        return _build(cfg, report, progress_factory, client)
    finally:
        if client is not None:
            client.close()


def _build(cfg: BuildConfig, report, progress_factory, client) -> Summary:
    recipes = tuple(cfg.registry.recipes[n] for n in cfg.filters)
    hashes = {r.name: mf.recipe_hash(r) for r in recipes}
    summary = Summary(outputs_per_source=len(cfg.filters) * len(cfg.strengths))

    # pass 1: count (streamed), so the progress bar has a total and --dry-run its numbers
    sample = []
    for entry in _sources(cfg, sizes=cfg.dry_run):
        if entry.is_image:
            summary.sources += 1
            summary.source_bytes += entry.size
            if len(sample) < ESTIMATE_SAMPLE:
                sample.append(entry.rel)
        else:
            summary.others += 1

    if cfg.dry_run:
        return _dry_run(cfg, recipes, mf.make_record(record_options(cfg), hashes), sample,
                        summary)

    try:
        now = mf.filesystem_now(mf.meta_dir(cfg.out))  # also: is --out writable at all?
    except OSError as e:
        raise OutputError(f"cannot write to --out {cfg.out}: {e.strerror or e}") from None
    record = mf.make_record(record_options(cfg), hashes, now=now)
    try:
        merged, diff = mf.check_record(cfg.out, record, cfg.overwrite)
        old = mf.read_record(cfg.out)
        if old is None or merged != old:
            mf.write_record(cfg.out, merged, old_exists=old is not None)
        record = mf.read_record(cfg.out)  # a concurrent shard may have created it first
        rid = mf.run_id(cfg.shard)
        files = mf.RunFiles(cfg.out, rid)
    except OSError as e:
        raise OutputError(f"cannot write to --out {cfg.out}: {e.strerror or e}") from None
    summary.manifest_path, summary.log_path = files.manifest_path, files.log_path

    def say(line):
        try:
            files.log(line)
        except OSError as e:  # the log or manifest cannot be written: same as a full disk
            raise OutputError(f"cannot write {files.log_path}: {e.strerror or e}") from None
        report(line)

    def record_source(rel, status, outputs, written, reason):
        try:
            files.source(rel, status, outputs, written, reason)
        except OSError as e:
            raise OutputError(f"cannot write {files.manifest_path}: {e.strerror or e}") from None

    if diff:
        say(f"--overwrite: rebuilding with new settings ({'; '.join(diff)})")
    targets = targets_for(cfg.filters, cfg.strengths, record)
    meta = mf.meta_dir(cfg.out)
    try:
        removed = recover_interrupted(cfg, meta)
        running = meta / f"running-{shard_tag(cfg.shard)}"
        running.write_text(rid + "\n")
    except OSError as e:
        raise OutputError(f"cannot write to --out {cfg.out}: {e.strerror or e}") from None
    if removed:
        say(f"removed {removed} temporary file(s) left by an interrupted run")
    # absolute paths: Dask workers run elsewhere, with another working directory
    job = Job(os.path.abspath(cfg.src), os.path.abspath(cfg.out), recipes, targets, cfg.quality,
              cfg.resize, cfg.overwrite, token=mf.recipe_hash_all(hashes),
              temp_suffix=f".{shard_tag(cfg.shard)}{TEMP_SUFFIX}")
    files.header({"run": rid, "argv": sys.argv, "src": str(Path(cfg.src).resolve()),
                  "out": str(Path(cfg.out).resolve()), "layout": "<key>/<src>",
                  "keys": [t.key for t in targets], "filters": hashes,
                  "options": record_options(cfg), "split": cfg.split,
                  "limit_per_class": cfg.limit_per_class, "shard": str(cfg.shard),
                  "sources": summary.sources})

    jobs = cfg.jobs
    size = cfg.batch_size or max(1, min(MAX_BATCH, summary.sources // max(1, jobs * 8)))
    say(f"building {summary.sources} sources x {len(targets)} outputs "
        f"({', '.join(t.key for t in targets)}) into {cfg.out} with "
        f"{'dask ' + str(cfg.scheduler) if cfg.backend == 'dask' else f'{jobs} job(s)'}, "
        f"batches of {size}")
    work = batches((e.rel for e in _sources(cfg) if e.is_image), size)
    progress = Progress(summary.sources, say, progress_factory)
    start = time.monotonic()
    try:
        for results in run_batches(job, work, jobs, cfg.backend, client):
            for rel, status, written, reason in results:
                record_source(rel, status, len(targets) if status != FAILED else written,
                              written, reason)
                summary.written += written
                if status == DONE:
                    summary.done += 1
                elif status == SKIPPED:
                    summary.skipped += 1
                else:
                    summary.failed += 1
                    say(f"failed: {rel}: {reason}")
                    if cfg.strict:
                        raise InstafiltersError(f"--strict: stopped at the first failure: "
                                                f"{rel}: {reason} (see {files.failures_path})")
            progress.update(len(results), summary)
        running.unlink(missing_ok=True)  # ended normally: nothing of this run is in flight
    finally:  # also after a fatal error: must not raise again and hide the first message
        summary.seconds = time.monotonic() - start
        progress.close()
        if summary.failed:
            summary.failures_path = files.failures_path
        try:
            files.log(summary.line())
            files.flush()
        except OSError:
            pass
        files.close()
    return summary


def shard_tag(shard: Shard) -> str:
    return f"s{shard.index}of{shard.count}"


def recover_interrupted(cfg: BuildConfig, meta: Path) -> int:
    """Remove temporaries left by a killed run; returns how many.

    Every run leaves `.instafilters/running-<shard tag>` while it works and removes it when it
    ends normally, and names its temporaries `*.<shard tag>.tmp`. So the output tree is only
    scanned when a run was interrupted: an unsharded run then removes every temporary; a
    shard removes its own (its previous attempt is dead, since it is being rerun) and other
    ones older than 10 minutes (other shards may be writing right now)."""
    markers = sorted(meta.glob("running-*"))
    if not markers:
        return 0
    sharded = cfg.shard.count > 1
    mine_suffix = f".{shard_tag(cfg.shard)}{TEMP_SUFFIX}"
    cutoff = time.time() - SHARED_TEMP_AGE_S
    removed = 0
    for path in iter_temporaries(Path(cfg.out)):
        try:
            if sharded and not path.name.endswith(mine_suffix) and path.stat().st_mtime > cutoff:
                continue
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as e:
            raise OutputError(f"cannot remove {path}: {e.strerror or e}") from None
    for marker in markers:
        if not sharded or marker.name == f"running-{shard_tag(cfg.shard)}":
            marker.unlink(missing_ok=True)
    return removed


def _dry_run(cfg, recipes, record, sample, summary: Summary) -> Summary:
    """Counts, outputs already there, and an output size estimate from a few real encodes."""
    from ..compile import CompiledFilter
    old = mf.read_record(cfg.out) if cfg.out.is_dir() else None
    if old is not None:
        mf.check_record(cfg.out, record, cfg.overwrite)  # refuse now rather than later
        since = {n: e["valid_since"] for n, e in old.get("filters", {}).items()}
        targets = [t for t in targets_for(cfg.filters, cfg.strengths)]
        existing = 0
        for entry in _sources(cfg):
            if entry.is_image:
                existing += sum(
                    _valid(os.path.join(cfg.out, t.key, entry.rel), since.get(t.filter, 1e30))
                    for t in targets)
        summary.existing_outputs = 0 if cfg.overwrite else existing
    else:
        summary.existing_outputs = 0
    ratios_src = ratios_out = 0
    f = CompiledFilter(recipes[0])
    for rel in sample:
        path = os.path.join(cfg.src, rel)
        try:
            decoded = io.decode(path)
            rgb = decoded.rgb if cfg.resize is None else resize_short(decoded.rgb, cfg.resize)
            data = io.encode_bytes(f(rgb, cfg.strengths[0]), io.format_for(rel), cfg.quality,
                                   decoded.orientation)
            ratios_src += os.path.getsize(path)
            ratios_out += len(data)
        except (ImageError, OSError, ValueError):
            continue
    ratio = ratios_out / ratios_src if ratios_src else 1.0
    todo = summary.sources * summary.outputs_per_source - summary.existing_outputs
    per_output = summary.source_bytes / summary.sources * ratio if summary.sources else 0
    summary.estimate_bytes = int(todo * per_output)
    probe = Path(cfg.out)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        import shutil
        summary.free_bytes = shutil.disk_usage(probe).free
    except OSError:
        summary.free_bytes = None
    return summary


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
                     f"outputs/s, {summary.failed} failed, ETA {_duration(eta)}")

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _duration(seconds: float) -> str:
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
