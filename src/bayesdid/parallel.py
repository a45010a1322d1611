"""Replications (placebo draws, bootstrap, calibration fits) on local processes or Dask.

Each replication is a picklable, importable function of one argument tuple; results come
back in input order, so the same seeds give the same numbers whatever the backend and the
number of workers.

Local processes (default)::

    run_replications(fn, [(seed,) for seed in range(100)], workers=2)

An existing Dask cluster, through a client or a scheduler address::

    from dask.distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1)
    run_replications(fn, args, client=Client(cluster))
    run_replications(fn, args, client="tcp://scheduler-host:8786")
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tqdm.auto import tqdm

from .errors import BayesDidError

logger = logging.getLogger(__name__)


def run_replications(fn: Callable[..., Any], args: Iterable[Sequence[Any]], *,
                     workers: int | None = None, client: Any = None, progress: bool = True,
                     desc: str = "replications") -> list[Any]:
    """``[fn(*a) for a in args]`` on local processes, or on Dask when ``client`` is given.

    Parameters
    ----------
    workers : local processes (default: all cores; 1 runs in this process).
    client : a ``dask.distributed.Client`` or a scheduler address such as
        ``"tcp://10.0.0.5:8786"`` (a client is opened and closed for the call). ``fn`` must
        be importable on the workers (a module-level function of an installed package).

    Examples
    --------
    >>> run_replications(pow, [(2, 3), (3, 2)], workers=1, progress=False)
    [8, 9]
    """
    args = [tuple(a) for a in args]
    if client is not None:
        return _run_dask(fn, args, client, progress, desc)
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(args), desc=desc, disable=not progress)
    try:
        if workers == 1:
            out = []
            for a in args:
                out.append(fn(*a))
                bar.update()
            return out
        # "spawn": forking a process that already runs BLAS/compiler threads can deadlock
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(fn, *a) for a in args]
            for f in futures:
                f.add_done_callback(lambda _: bar.update())
            return [f.result() for f in futures]
    finally:
        bar.close()


def _run_dask(fn, args: list[tuple], client: Any, progress: bool, desc: str) -> list[Any]:
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise BayesDidError("running on Dask needs dask.distributed: "
                            "pip install 'bayesdid[dask]'") from None
    own = isinstance(client, str)
    if not own and not isinstance(client, Client):
        raise BayesDidError(f"client must be a dask.distributed.Client or a scheduler address, "
                            f"got {type(client).__name__}")
    if not args:
        return []
    dask_client = Client(client) if own else client
    try:
        futures = dask_client.map(fn, *zip(*args), pure=False)
        for _ in tqdm(as_completed(futures), total=len(futures), desc=desc,
                      disable=not progress):
            pass
        return dask_client.gather(futures)
    finally:
        if own:
            dask_client.close()
