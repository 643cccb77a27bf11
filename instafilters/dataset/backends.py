"""Where batches run: in this process, in loky worker processes, or on a Dask cluster.

joblib is the one interface (`Parallel(return_as="generator_unordered")`), so the run sees
the same stream of results whatever the backend.
"""
from __future__ import annotations

import os
import re
import shutil
from typing import Iterator

from ..errors import InstafiltersError
from .worker import OWNER_ENV, Job, process_batch

SHM = "/dev/shm"
# what loky and joblib leave in shared memory when their process is killed: <pid> is the
# process that made it (semaphores of the executor, joblib's per-run memmapping folders)
_SHM_ENTRY = re.compile(r"^(?:sem\.loky-|joblib_memmapping_folder_)(\d+)[-_]")


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
    os.environ[OWNER_ENV] = str(os.getpid())  # the workers' guard: see worker.guard_worker
    from joblib.externals.loky.process_executor import TerminatedWorkerError
    try:
        # max_nbytes=None: tasks carry no large arrays, so nothing is memory-mapped
        yield from Parallel(n_jobs=jobs, backend="loky", batch_size=1, pre_dispatch="2*n_jobs",
                            max_nbytes=None, return_as="generator_unordered")(tasks)
    except TerminatedWorkerError as e:  # the OOM killer, a kill -9: not one source's fault
        codes = re.search(r"exit codes of the workers are (\{[^}]*\})", str(e))
        raise InstafiltersError(
            f"a worker process died{' (exit ' + codes[1] + ')' if codes else ''}, often the "
            f"out-of-memory killer (fewer --jobs use less memory); what was written is kept: "
            f"rerun the same command to resume") from None


def clean_stale_shm(directory: str = SHM) -> int:
    """Remove loky semaphores and joblib folders in /dev/shm made by processes of this user
    that no longer exist (a kill -9 leaves about ten per run); returns how many."""
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        match = _SHM_ENTRY.match(name)
        path = os.path.join(directory, name)
        try:
            if not match or os.lstat(path).st_uid != os.getuid() or _alive(int(match[1])):
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed += 1
        except OSError:
            continue  # gone meanwhile, or not ours to remove
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


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
