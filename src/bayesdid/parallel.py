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

When the cluster cannot be used
-------------------------------
* A scheduler address that does not answer within ``timeout`` seconds (default 10):
  with ``fallback=False`` (default) a :class:`~bayesdid.errors.ClusterError` says so and
  nothing has run; with ``fallback=True`` a warning is logged and every replication runs
  on local processes instead.
* The cluster fails during the run (lost scheduler connection, workers killed): the
  replications that finished are kept. With ``fallback=True`` the unfinished ones run on
  local processes (same arguments, so the same numbers); with ``fallback=False`` a
  :class:`~bayesdid.errors.ClusterError` is raised whose ``completed`` attribute maps the
  input position of every finished replication to its result.

An exception raised by ``fn`` itself is not a cluster failure: it propagates unchanged.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tqdm.auto import tqdm

from .errors import BayesDidError, ClusterError

logger = logging.getLogger(__name__)

__all__ = ["run_replications"]


def run_replications(fn: Callable[..., Any], args: Iterable[Sequence[Any]], *,
                     workers: int | None = None, client: Any = None, progress: bool = True,
                     desc: str = "replications", timeout: float = 10.0,
                     fallback: bool = False, sizes: Sequence[int] | None = None) -> list[Any]:
    """``[fn(*a) for a in args]`` on local processes, or on Dask when ``client`` is given.

    Parameters
    ----------
    workers : local processes (default: all cores; 1 runs in this process). Also used
        for the local fallback.
    client : a ``dask.distributed.Client`` or a scheduler address such as
        ``"tcp://10.0.0.5:8786"`` (a client is opened and closed for the call). ``fn`` must
        be importable on the workers (a module-level function of an installed package).
    timeout : seconds to wait for a scheduler address to answer.
    fallback : when the Dask cluster cannot be reached or fails, run the unfinished
        replications on local processes (with a logged warning) instead of raising
        :class:`~bayesdid.errors.ClusterError`. See the module docstring.
    sizes : work items per task (e.g. placebo draws per chunk), so the progress bar
        counts items rather than tasks; default 1 per task.

    Examples
    --------
    >>> run_replications(pow, [(2, 3), (3, 2)], workers=1, progress=False)
    [8, 9]
    """
    args = [tuple(a) for a in args]
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise BayesDidError(f"workers must be a positive integer or None, got {workers!r}")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise BayesDidError(f"timeout must be a positive number of seconds, got {timeout!r}")
    sizes = [1] * len(args) if sizes is None else [int(s) for s in sizes]
    if len(sizes) != len(args):
        raise BayesDidError(f"sizes has {len(sizes)} entries for {len(args)} tasks")
    if client is not None:
        return _run_dask(fn, args, client, progress, desc, timeout, fallback, workers, sizes)
    return _run_local(fn, args, workers, progress, desc, sizes)


def _run_local(fn, args: list[tuple], workers: int | None, progress: bool, desc: str,
               sizes: list[int]) -> list[Any]:
    workers = min(workers or os.cpu_count() or 1, max(len(args), 1))
    bar = tqdm(total=sum(sizes), desc=desc, disable=not progress)
    try:
        if workers == 1:
            out = []
            for a, n in zip(args, sizes):
                out.append(fn(*a))
                bar.update(n)
            return out
        # "spawn": forking a process that already runs BLAS/compiler threads can deadlock
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(fn, *a) for a in args]
            for f, n in zip(futures, sizes):
                f.add_done_callback(lambda _, n=n: bar.update(n))
            return [f.result() for f in futures]
    finally:
        bar.close()


def _cluster_failures() -> tuple[type[BaseException], ...]:
    """Exception types that mean the cluster, not ``fn``, failed."""
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    return (CommClosedError, KilledWorker, OSError, TimeoutError)


def _connect(client: Any, timeout: float):
    try:
        from dask.distributed import Client
    except ImportError:
        raise BayesDidError("running on Dask needs dask.distributed: "
                            "pip install 'bayesdid[dask]'") from None
    if isinstance(client, Client):
        return client, False
    if not isinstance(client, str):
        raise BayesDidError(f"client must be a dask.distributed.Client or a scheduler address, "
                            f"got {type(client).__name__}")
    try:
        return Client(client, timeout=timeout, set_as_default=False), True
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"the Dask scheduler at {client!r} did not answer within {timeout:g} s ({exc})",
            hint="check the address and that the scheduler is running; pass timeout= to wait "
                 "longer, or fallback=True to run on local processes instead") from exc


def _run_dask(fn, args: list[tuple], client: Any, progress: bool, desc: str, timeout: float,
              fallback: bool, workers: int | None, sizes: list[int]) -> list[Any]:
    try:
        dask_client, own = _connect(client, timeout)
    except ClusterError as exc:
        if not fallback:
            raise
        logger.warning("%s; falling back to local processes for %d task(s)",
                       str(exc).splitlines()[0], len(args))
        return _run_local(fn, args, workers, progress, desc, sizes)
    if not args:
        if own:
            dask_client.close()
        return []
    from dask.distributed import as_completed
    from distributed.scheduler import KilledWorker

    failures = _cluster_failures()
    futures: list = []
    completed: dict[int, Any] = {}
    user_error: BaseException | None = None
    bar = tqdm(total=sum(sizes), desc=desc, disable=not progress)
    try:
        futures = dask_client.map(fn, *zip(*args), pure=False)
        position = {f.key: i for i, f in enumerate(futures)}
        for fut in as_completed(futures, loop=dask_client.loop):
            if fut.status == "error":
                exc = fut.exception()
                if isinstance(exc, KilledWorker):
                    raise exc
                # fn's own exception: re-raised unchanged below, outside the cluster handler
                user_error = exc.with_traceback(fut.traceback())
                break
            i = position[fut.key]
            completed[i] = fut.result()  # fetched as they finish: kept if the cluster fails
            bar.update(sizes[i])
        if user_error is None:
            return [completed[i] for i in range(len(args))]
    except failures as exc:
        todo = [i for i in range(len(args)) if i not in completed]
        message = (f"the Dask cluster failed after {len(completed)} of {len(args)} task(s) "
                   f"finished ({type(exc).__name__}: {exc})")
        if not fallback:
            err = ClusterError(message, hint="the finished results are in the error's "
                               "`completed` attribute; pass fallback=True to finish the rest "
                               "on local processes")
            err.completed = completed
            raise err from exc
        logger.warning("%s; running the remaining %d task(s) on local processes",
                       message, len(todo))
        rest = _run_local(fn, [args[i] for i in todo], workers, progress, desc,
                          [sizes[i] for i in todo])
        completed.update(zip(todo, rest))
        return [completed[i] for i in range(len(args))]
    finally:
        bar.close()
        if own:
            dask_client.close()
    raise user_error
