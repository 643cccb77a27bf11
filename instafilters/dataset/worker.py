"""One source -> its outputs: what a worker process (or Dask task) does.

Per source the worker does the least it can: stat the outputs (all present and valid ->
skipped, nothing decoded), decode once, optionally resize, then for each selected filter
and strength apply, encode by the source's extension and write atomically (temporary in
the destination folder, then rename). Only `OutputError` (disk full, read-only, no
permission on --out) stops a run; a bad source is a `failed` result with its reason.
"""
from __future__ import annotations

import errno
import os
import signal
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from .. import io
from ..errors import ImageError, OutputError
from ..files import display
from ..paths import inside

DONE, SKIPPED, FAILED = "done", "skipped", "failed"
TEMP_SUFFIX = ".tmp"  # a temporary is never named like an image (ImageFolder would load it)
FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


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
    marker: str = ""  # the run's .instafilters/running-<tag> (see lock.py)
    owner: int = 0  # pid of the run's main process
    run: str = ""  # unique per build: what a worker caches is for this run only


OWNER_ENV = "INSTAFILTERS_BUILD_OWNER"  # set by the run; inherited by its loky workers only
WATCH_INTERVAL_S = 0.1


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


_GUARDED: dict = {}


def guard_worker(job: Job) -> None:
    """In a worker process the run started on this machine: hold its marker's byte 1 while
    alive (so no other run records new settings or removes our temporaries meanwhile), and
    exit at once when the run's main process dies (kill -9 leaves workers orphaned: they
    must not go on writing). Dask workers and the main process itself are left alone."""
    if (not job.marker or _GUARDED.get("marker") == job.marker or os.getpid() == job.owner
            or os.environ.get(OWNER_ENV) != str(job.owner)):
        return
    from .lock import try_lock
    try:
        fd = os.open(job.marker, os.O_RDWR)
        try_lock(fd, False, 1)
        _GUARDED["fd"] = fd  # kept open: closing would drop the lock
    except OSError:
        pass  # no locks on this file system: the watchdog below still stops us
    if os.getppid() != job.owner:
        os._exit(1)  # the run died before this worker started its first batch
    _GUARDED["marker"] = job.marker
    threading.Thread(target=_watch_parent, args=(job.owner,), daemon=True).start()


def _watch_parent(owner: int) -> None:
    while os.getppid() == owner:
        time.sleep(WATCH_INTERVAL_S)
    os._exit(1)


def process_batch(job: Job, rels: list) -> list:
    """Run one batch of sources; returns (rel, status, written, reason) per source."""
    guard_worker(job)
    filters = _filters_for(job)
    return [process_source(job, filters, rel) for rel in rels]


def output_paths(job: Job, rel: str) -> list:
    outs = [inside(job.out, f"{t.key}/{rel}", "output") for t in job.targets]
    for path in outs:
        _check_folder(job, os.path.dirname(path))
    return outs


_CHECKED: list = [None]  # (run, real roots, folders checked): this run's only


def _check_folder(job: Job, folder: str) -> None:
    """`inside` checks names; this checks where an output folder really is. A symlink
    made in --out (<out>/toaster -> the source tree) led every write over the sources,
    exit 0. A folder that resolves into --src (and not into --out, which may lie in --src)
    stops the run. Each folder is resolved once per run and process: a Dask worker outlives
    the run, and a folder checked by an earlier run may be a symlink by now. The state is
    one tuple, swapped whole: a Dask worker's threads may serve two runs at once."""
    run = (job.run, job.src, job.out)
    state = _CHECKED[0]
    if state is None or state[0] != run:
        roots = (os.path.realpath(job.src) + os.sep, os.path.realpath(job.out) + os.sep)
        state = _CHECKED[0] = (run, roots, set())
    _, (src_root, out_root), folders = state
    if folder in folders:
        return
    if len(folders) > 100_000:
        folders.clear()
    real = os.path.realpath(folder) + os.sep
    if real.startswith(src_root) and not real.startswith(out_root):
        raise OutputError(f"{display(folder)} leads into --src ({display(real[:-1])}) through "
                          f"a symbolic link: refusing to write over the sources")
    folders.add(folder)


def valid(path: str, since: float) -> bool:
    """The output exists and was written after its filter's settings were recorded (strictly
    after: a file from the same clock tick is remade rather than risk keeping a stale one)."""
    try:
        return os.stat(path).st_mtime > since
    except OSError:
        return False


def process_source(job: Job, filters: dict, rel: str) -> tuple:
    """(rel, status, written, reason). Raises only OutputError: anything else that goes
    wrong with one source (its metadata, a library error) is that source's failure."""
    written = []  # target indices written so far, still counted if a later one fails
    try:
        return _process(job, filters, rel, written)
    except OutputError:
        raise
    except Exception as e:  # noqa: BLE001 - one bad source must never end a run
        text = (str(e).splitlines() or [""])[0]
        return rel, FAILED, len(written), f"unexpected error: {type(e).__name__}: {text}"


def _process(job: Job, filters: dict, rel: str, written: list) -> tuple:
    outs = output_paths(job, rel)
    if job.overwrite:
        todo = list(range(len(outs)))
    else:
        todo = [i for i, p in enumerate(outs) if not valid(p, job.targets[i].valid_since)]
        if not todo:
            return rel, SKIPPED, 0, None
    src = inside(job.src, rel, "source")
    try:
        fmt = io.format_for(rel)
        decoded = io.decode(src)
        rgb = decoded.rgb if job.resize is None else resize_short(decoded.rgb, job.resize)
    except ImageError as e:
        return rel, FAILED, 0, _reason(e, src)
    filtered = np.empty_like(rgb)  # one buffer for every filter: each is encoded at once
    for i in todo:
        target = job.targets[i]
        try:
            data = io.encode_filtered(filters[target.filter], rgb, target.strength, fmt,
                                      job.quality, decoded.orientation, out=filtered)
        except (OSError, ValueError) as e:  # e.g. a JPEG side over 65,535 pixels
            return rel, FAILED, len(written), f"cannot encode {fmt} for {target.key}: {e}"
        _crash_hook(job, outs[i], data)
        try:
            io.atomic_write_bytes(outs[i], data, temp_suffix=job.temp_suffix)
        except OSError as e:
            if e.errno in FATAL_ERRNOS:
                raise OutputError(f"cannot write {outs[i]}: {e.strerror or e}") from None
            return (rel, FAILED, len(written),
                    f"cannot write {target.key}/{rel}: {e.strerror or e}")
        written.append(i)
    return rel, DONE, len(written), None


_CRASH_AFTER = int(os.environ.get("INSTAFILTERS_TEST_CRASH_AFTER", "0") or 0)
_written_here = [0]


def _crash_hook(job: Job, path: str, data: bytes) -> None:
    """Test hook (INSTAFILTERS_TEST_CRASH_AFTER=N): after N outputs of this process, die as a
    kill -9 or power cut mid-write would, deterministically: half of the next output in a
    temporary named as the real ones, then SIGKILL to the run's main process and this one."""
    if not _CRASH_AFTER:
        return
    _written_here[0] += 1
    if _written_here[0] <= _CRASH_AFTER:
        return
    import tempfile
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, _ = tempfile.mkstemp(prefix=io.TEMP_PREFIX, suffix=job.temp_suffix,
                             dir=os.path.dirname(path))
    os.write(fd, data[: len(data) // 2])
    if job.owner and job.owner != os.getpid():
        os.kill(job.owner, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _reason(e: Exception, src: str) -> str:
    """The message without the source's name in front (the manifest line names it), as
    io.decode writes that name: files.display, quoted and escaped when not printable."""
    text, name = str(e), display(src) + ": "
    return text[len(name):] if text.startswith(name) else text


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
    if size[0] * size[1] > io.MAX_PIXELS:
        raise ImageError(f"--resize {short} would make {size[0]}x{size[1]} pixels, over the "
                         f"limit of {io.MAX_PIXELS}")
    interpolation = cv2.INTER_AREA if short < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(rgb, size, interpolation=interpolation)
