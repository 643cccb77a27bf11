"""Who is building into one --out right now: POSIX record locks, held by live processes only.

    .instafilters/lock            byte 0: the gate. Held (exclusive) only while a run compares
                                  and records settings and cleans up after dead runs, so those
                                  steps never interleave between runs.
    .instafilters/running-<tag>   one per live run (its shard tag): byte 0 locked by the run's
                                  main process, byte 1 (shared) by each of its local workers.

A lock dies with its process, so "is that run alive?" has an exact answer even after kill -9:
a marker nobody locks belongs to a dead run, and one whose byte 1 is still locked has workers
still alive (they exit within a fraction of a second, see worker.watch_parent). POSIX locks
(fcntl) rather than flock, because they also work over NFS.
"""
from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from ..errors import OutputError

try:
    import fcntl
except ImportError:  # not POSIX: no locks; runs behave as on a file system without them
    fcntl = None

LOCK_FILE = "lock"
MARKER_PREFIX = "running-"
GATE_WAIT_S = 120.0  # the gate is held for seconds at most; longer means something is stuck
ORPHAN_WAIT_S = 10.0  # workers of a killed run notice within 0.1 s; allow a loaded machine
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


def try_lock(fd: int, exclusive: bool, start: int, length: int = 1) -> bool:
    """Lock a byte range without waiting; False if another process holds it."""
    if fcntl is None:
        raise OSError(errno.ENOSYS, "no file locks on this platform")
    try:
        fcntl.lockf(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB,
                    length, start)
        return True
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise


def wait_lock(fd: int, exclusive: bool, start: int, length: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not try_lock(fd, exclusive, start, length):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class OutLock:
    """The locks of one run on one --out; `supported` is False where the file system has no
    locks (then other runs are assumed alive, and only old temporaries count as orphans)."""

    def __init__(self, meta: Path, tag: str):
        self.meta, self.tag = Path(meta), tag
        self.marker = self.meta / f"{MARKER_PREFIX}{tag}"
        self.supported = True
        self._gate = self._marker = None

    # ------------------------------------------------------------ the gate
    def __enter__(self):
        self.meta.mkdir(parents=True, exist_ok=True)
        self._gate = os.open(self.meta / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            if not wait_lock(self._gate, True, 0, 1, GATE_WAIT_S):
                raise OutputError(f"{self.meta / LOCK_FILE}: another instafilters build has "
                                  f"held this lock for over {GATE_WAIT_S:.0f} s")
        except OSError as e:
            if e.errno not in _UNSUPPORTED:
                raise
            self.supported = False
        return self

    def __exit__(self, *exc):
        os.close(self._gate)  # releases the gate
        self._gate = None

    # ------------------------------------------------------------ runs
    def others(self) -> dict:
        """tag -> alive? for every other run's marker; waits briefly for dying workers."""
        found = {}
        for path in sorted(self.meta.glob(f"{MARKER_PREFIX}*")):
            tag = path.name[len(MARKER_PREFIX):]
            found[tag] = self._alive(path) if tag != self.tag else False
        return found

    def _alive(self, path: Path) -> bool:
        if not self.supported:
            return True
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            if try_lock(fd, True, 0, 2):
                return False
            if not try_lock(fd, True, 0, 1):
                return True  # its main process is alive
            return not wait_lock(fd, True, 1, 1, ORPHAN_WAIT_S)  # only workers left: dying
        finally:
            os.close(fd)  # also drops the test locks taken above

    def hold(self, rid: str) -> None:
        """Take this run's marker; refuses if a live run of the same shard holds it."""
        if self._alive(self.marker) and self.supported:
            try:
                owner = self.marker.read_text(errors="replace").strip()[:200]
            except OSError:
                owner = "?"
            raise OutputError(f"{self.meta.parent}: shard {self.tag} is being built by another "
                              f"run right now ({owner}); wait for it, or give this run "
                              f"another --out or --shard")
        fd = os.open(self.marker, os.O_RDWR | os.O_CREAT, 0o666)
        if self.supported and not try_lock(fd, True, 0, 1):
            os.close(fd)
            raise OutputError(f"{self.marker}: taken by another run just now")
        os.ftruncate(fd, 0)
        os.write(fd, (rid + "\n").encode())
        self._marker = fd

    def release(self, finished: bool) -> None:
        """End of run: a finished run removes its marker; an interrupted one leaves it, so
        the next run knows to look for its temporaries."""
        if self._marker is None:
            return
        try:
            if finished:
                self.marker.unlink(missing_ok=True)
        except OSError:
            pass  # a leftover marker only makes the next run look for temporaries
        os.close(self._marker)
        self._marker = None
