"""Where batches run: in this process, in loky worker processes, or on a Dask cluster.

joblib is the one interface (`Parallel(return_as="generator_unordered")`), so the run sees
the same stream of results whatever the backend.
"""
from __future__ import annotations

from typing import Iterator

from ..errors import InstafiltersError
from .worker import Job, process_batch


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
