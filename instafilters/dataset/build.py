"""The run: count the sources, record the settings, recover from a killed run, stream the
work through a backend, record each source, summarise. `--dry-run` counts and estimates.

The worker (one source -> its outputs) is worker.py, the backends backends.py, progress
and summary progress.py, the settings record and per-run files manifest.py.
"""
from __future__ import annotations

import math
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import io
from ..errors import InstafiltersError, writing
from ..files import display, nearest_existing
from ..paths import clean_rel, escape_name, inside, strength_folder
from . import manifest as mf
from .backends import clean_stale_shm, dask_client, run_batches
from .lock import MARKER_PREFIX, OutLock
from .plan import Shard, batches, iter_temporaries
from ..tree import output_tree_of, walk
from .progress import Progress, Summary
from .worker import DONE, FAILED, SKIPPED, TEMP_SUFFIX, Job, Target, resize_short, valid

SHARED_TEMP_AGE_S = 600  # without file locks: only temporaries this old count as orphans
MAX_BATCH = 32  # sources per task: ~2 s of work at 20 filters: per-task overhead is noise
ESTIMATE_SAMPLE = 12  # sources encoded by --dry-run to estimate the output size


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


def targets_for(filters, strengths, record=None) -> tuple:
    """The output folders, each with its filter's valid_since in `record` (a filter the
    record lacks: math.inf, nothing there yet counts as made with these settings)."""
    several = len(strengths) > 1
    out = []
    for name in filters:
        entry = record["filters"].get(name) if record else {"valid_since": 0.0}
        since = entry["valid_since"] if entry else math.inf
        for s in strengths:
            key = f"{name}/{strength_folder(s)}" if several else name
            out.append(Target(clean_rel(key, "output folder"), name, float(s), since))
    return tuple(out)


def record_options(cfg: BuildConfig) -> dict:
    return {"quality": cfg.quality, "resize": cfg.resize,
            "strength": [float(s) for s in cfg.strengths]}


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
    targets_for(cfg.filters, cfg.strengths)  # output folder names checked before any work
    if cfg.dry_run:
        return _dry_run(cfg, recipes, mf.make_record(record_options(cfg), hashes), summary)
    _count(cfg, summary)
    rid = mf.run_id(cfg.shard)
    lock, record, diff, removed = _start(cfg, hashes, rid)
    finished = False
    try:
        with writing(cfg.out, "write to --out"):
            files = mf.RunFiles(cfg.out, rid)
    except BaseException:
        lock.release(finished)
        raise
    summary.manifest_path, summary.log_path = files.manifest_path, files.log_path

    def say(line):
        with writing(files.log_path):  # the log cannot be written: same as a full disk
            files.log(line)
        report(line)

    try:
        if diff:
            say(f"--overwrite: rebuilding with new settings ({'; '.join(diff)})")
        if removed:
            say(f"removed {removed} temporary file(s) left by an interrupted run")
        if cfg.backend == "loky" and cfg.jobs > 1 and clean_stale_shm():
            say("removed shared-memory entries (/dev/shm) left by killed runs")
        targets = targets_for(cfg.filters, cfg.strengths, record)
        # absolute paths: Dask workers run elsewhere, with another working directory
        job = Job(os.path.abspath(cfg.src), os.path.abspath(cfg.out), recipes, targets,
                  cfg.quality, cfg.resize, cfg.overwrite, token=mf.recipe_hash_all(hashes),
                  temp_suffix=f".{cfg.shard.tag}{TEMP_SUFFIX}",
                  marker=os.path.abspath(lock.marker), owner=os.getpid(),
                  run=f"{rid}-{uuid.uuid4().hex}")
        with writing(files.manifest_path):
            files.header({"run": rid, "argv": sys.argv,
                          "src": str(Path(cfg.src).resolve()),
                          "out": str(Path(cfg.out).resolve()), "layout": "<key>/<src>",
                          "keys": [t.key for t in targets], "filters": hashes,
                          "options": record_options(cfg), "split": cfg.split,
                          "limit_per_class": cfg.limit_per_class, "shard": str(cfg.shard),
                          "sources": summary.sources})
        _run(cfg, job, client, files, summary, say, progress_factory)
        finished = True  # nothing of this run is in flight any more
    finally:  # also after a fatal error: must not raise again and hide the first message
        lock.release(finished)
        if summary.failed:
            summary.failures_path = files.failures_path
        try:
            files.log(summary.line())  # flushed, as every line is
        except OSError:
            pass
        files.close()
    return summary


def _start(cfg: BuildConfig, hashes: dict, rid: str):
    """Under the gate lock (one run at a time): take this run's marker, check and record
    the settings, clean up after dead runs. (lock, record, differences, temporaries removed)."""
    lock = OutLock(mf.meta_dir(cfg.out), cfg.shard.tag)
    with writing(cfg.out, "write to --out"), lock:
        others = lock.others()
        lock.hold(rid)
        try:
            record, diff = _record_settings(cfg, hashes, others)
            removed = recover_interrupted(cfg, others, lock.supported)
        except BaseException:  # refused or failed before any output: no temporaries of
            lock.release(finished=cfg.shard.tag not in others)  # ours, unless left before
            raise
    return lock, record, diff, removed


def _check_paths(cfg: BuildConfig):
    """Never build out of or into an output tree (a folder holding .instafilters): its
    outputs would be filtered again, and the tree would grow on every run. --out inside
    --src is fine when it is new, empty or an output tree: the walk skips it, so sources in
    it (--out src/val, or a link to it) would silently never be built."""
    if not cfg.src.is_dir():
        raise InstafiltersError(f"--src {cfg.src}: not a folder")
    src, out = os.path.realpath(cfg.src), os.path.realpath(cfg.out)
    if src == out or src.startswith(out + os.sep):
        raise InstafiltersError(f"--out {cfg.out} must not be --src or contain it")
    if (out.startswith(src + os.sep) and os.path.isdir(out) and os.listdir(out)
            and not os.path.isdir(os.path.join(out, mf.META_DIR))):
        raise InstafiltersError(f"--out {cfg.out} is a folder of --src that already holds "
                                f"files: they would never be built (the walk skips --out); "
                                f"give a new or empty folder")
    tree = output_tree_of(src)
    if tree is not None:
        raise InstafiltersError(f"--src {cfg.src} is inside the build output {tree}: give the "
                                f"clean tree it was built from")
    tree = output_tree_of(os.path.dirname(out))
    if tree is not None:
        raise InstafiltersError(f"--out {cfg.out} is inside the build output {tree}: give a "
                                f"folder outside it")


def _sources(cfg: BuildConfig, sizes: bool = False):
    """The walk's entries (images and other files) that fall in this run's --shard."""
    for entry in walk(cfg.src, cfg.split, cfg.limit_per_class, exclude=[cfg.out], sizes=sizes):
        if entry.rel in cfg.shard:
            yield entry


def _count(cfg: BuildConfig, summary: Summary, existing: tuple = ()) -> list:
    """Pass 1 (streamed): count, so the progress bar has a total and --dry-run its numbers
    (with `existing` targets, also their outputs already there and valid); returns the
    first few sources, for --dry-run's size estimate."""
    sample = []
    for entry in _sources(cfg, sizes=cfg.dry_run):
        if entry.is_image:
            summary.sources += 1
            summary.source_bytes += entry.size
            if existing:
                summary.existing_outputs += sum(valid(inside(cfg.out, f"{t.key}/{entry.rel}"),
                                                      t.valid_since) for t in existing)
            if len(sample) < ESTIMATE_SAMPLE:
                sample.append(entry.rel)
        else:
            summary.others += 1
    return sample


def _record_settings(cfg: BuildConfig, hashes: dict, others: dict) -> tuple[dict, list]:
    """Compare this run's settings with run.json and record them (under the gate lock);
    (record, differences). New settings are recorded only when no other run (nor a worker
    of a killed one) can still be writing, and valid_since is read after that, so nothing
    written under the old settings can pass for new."""
    with writing(cfg.out, "write to --out"):
        now = mf.filesystem_now(mf.meta_dir(cfg.out))  # also: is --out writable at all?
    record = mf.make_record(record_options(cfg), hashes, now=now)
    old = mf.read_record(cfg.out)
    merged, diff = mf.check_record(cfg.out, record, cfg.overwrite, old)
    live = sorted(tag for tag, alive in others.items() if alive)
    if diff and live:
        raise InstafiltersError(
            f"{cfg.out}: other runs are building with the recorded settings right now "
            f"({', '.join('running-' + t for t in live)}); --overwrite with new settings "
            f"must wait until they end")
    if merged == old:
        return old, diff
    with writing(cfg.out, "write to --out"):
        mf.write_record(cfg.out, merged, old_exists=old is not None)
        return mf.read_record(cfg.out), diff  # read back: another shard may have been first


def _run(cfg: BuildConfig, job: Job, client, files, summary: Summary, say, progress_factory):
    """Pass 2: stream the sources through the backend; one manifest line per source."""
    jobs = cfg.jobs
    size = cfg.batch_size or max(1, min(MAX_BATCH, summary.sources // max(1, jobs * 8)))
    say(f"building {summary.sources} sources x {len(job.targets)} outputs "
        f"({', '.join(t.key for t in job.targets)}) into {display(cfg.out)} with "
        f"{'dask ' + str(cfg.scheduler) if cfg.backend == 'dask' else f'{jobs} job(s)'}, "
        f"batches of {size}")
    work = batches((e.rel for e in _sources(cfg) if e.is_image), size)
    progress = Progress(summary.sources, say, progress_factory)
    start = time.monotonic()
    try:
        for results in run_batches(job, work, jobs, cfg.backend, client):
            for rel, status, written, reason in results:
                with writing(files.manifest_path):
                    files.source(rel, status, len(job.targets) if status != FAILED else written,
                                 written, reason)
                summary.written += written
                if status == DONE:
                    summary.done += 1
                elif status == SKIPPED:
                    summary.skipped += 1
                else:
                    summary.failed += 1
                    say(f"failed: {escape_name(rel)}: {escape_name(reason or '')}")
                    if cfg.strict:
                        raise InstafiltersError(
                            f"--strict: stopped at the first failure: {escape_name(rel)}: "
                            f"{escape_name(reason or '')} (see {files.failures_path})")
            progress.update(len(results), summary)
    finally:
        summary.seconds = time.monotonic() - start
        progress.close()


def recover_interrupted(cfg: BuildConfig, others: dict, locks: bool = True) -> int:
    """Remove what killed runs left (their temporaries and markers); returns how many
    temporaries. `others`: shard tag -> alive, from lock.OutLock.others (this run's own tag,
    when its marker was left by a killed attempt, counts as dead).

    Every run holds `.instafilters/running-<tag>` while it works and names its temporaries
    `*.<tag>.tmp`, so --out is only scanned after a run died, and a temporary is removed
    only when no live run can own it. Without locks on the file system, other runs count as
    alive and only their temporaries older than 10 minutes are taken for orphans."""
    dead = {tag for tag, alive in others.items() if not alive}
    if not dead:
        return 0
    live = {tag for tag, alive in others.items() if alive}
    cutoff = time.time() - SHARED_TEMP_AGE_S
    removed = 0
    for path in iter_temporaries(Path(cfg.out)):
        tag = temp_tag(path.name)
        with writing(path, "remove"):
            try:
                if (tag in live or (tag is None and live)) and (
                        locks or path.stat().st_mtime > cutoff):
                    continue
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
    meta = mf.meta_dir(cfg.out)
    for tag in dead - {cfg.shard.tag}:  # this run's own marker is held by it now
        with writing(meta, "remove a marker in"):
            (meta / f"{MARKER_PREFIX}{tag}").unlink(missing_ok=True)
    return removed


def temp_tag(name: str) -> str | None:
    """The shard tag in a temporary's name (`...<random>.<tag>.tmp`), if any."""
    if not name.endswith(TEMP_SUFFIX):
        return None
    tag = name[: -len(TEMP_SUFFIX)].rpartition(".")[2]
    return tag if re.fullmatch(r"s\d+of\d+", tag) else None


def _dry_run(cfg, recipes, record, summary: Summary) -> Summary:
    """Counts, outputs already there, and an output size estimate from a few real encodes."""
    from ..compile import CompiledFilter
    old = mf.read_record(cfg.out) if cfg.out.is_dir() else None
    if old is not None:
        mf.check_record(cfg.out, record, cfg.overwrite, old)  # refuse now, not later
    summary.existing_outputs = 0
    # --overwrite remakes them all: none counts as done
    existing = targets_for(cfg.filters, cfg.strengths, old) if old and not cfg.overwrite else ()
    sample = _count(cfg, summary, existing)
    ratios_src = ratios_out = 0
    f = CompiledFilter(recipes[0])
    for rel in sample:
        path = inside(cfg.src, rel)
        try:
            decoded = io.decode(path)
            rgb = decoded.rgb if cfg.resize is None else resize_short(decoded.rgb, cfg.resize)
            data = io.encode_filtered(f, rgb, cfg.strengths[0], io.format_for(rel), cfg.quality,
                                      decoded.orientation)
            ratios_src += os.path.getsize(path)
            ratios_out += len(data)
        except Exception:  # noqa: BLE001 - an estimate; the run reports what fails
            continue
    ratio = ratios_out / ratios_src if ratios_src else 1.0
    todo = summary.sources * summary.outputs_per_source - summary.existing_outputs
    per_output = summary.source_bytes / summary.sources * ratio if summary.sources else 0
    summary.estimate_bytes = int(todo * per_output)
    probe = nearest_existing(cfg.out)
    try:
        import shutil
        summary.free_bytes = shutil.disk_usage(probe).free
    except OSError:
        summary.free_bytes = None
    return summary
