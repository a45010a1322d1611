"""Replications (placebo draws, bootstrap, calibration fits) on local processes.

Each replication is a picklable function of one argument tuple; results come back in input
order, so the same seeds give the same numbers whatever the number of workers.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


def run_replications(fn: Callable[..., Any], args: Iterable[Sequence[Any]], *,
                     workers: int | None = None, progress: bool = True,
                     desc: str = "replications") -> list[Any]:
    """``[fn(*a) for a in args]``, on ``workers`` local processes (default: all cores).

    Examples
    --------
    >>> run_replications(pow, [(2, 3), (3, 2)], workers=1, progress=False)
    [8, 9]
    """
    args = [tuple(a) for a in args]
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
