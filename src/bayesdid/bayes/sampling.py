"""NUTS with the settings every bayesdid model uses, and seeds that are always recorded.

>>> seed = resolve_seed(None)
>>> 0 <= seed < 2**31 and resolve_seed(7) == 7
True
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pymc as pm
import pytensor
from threadpoolctl import threadpool_limits

__all__ = ["sample", "resolve_seed"]


def resolve_seed(random_seed: int | None) -> int:
    """``random_seed``, or a fresh one (to be recorded in the result) when it is None."""
    if random_seed is None:
        return int(np.random.SeedSequence().entropy % (2**31))
    return int(random_seed)


def sample(model: pm.Model, *, draws: int, tune: int, chains: int, cores: int | None,
           random_seed: int, progress: bool, target_accept: float, **kwargs: Any):
    """``pm.sample`` inside ``model`` with one BLAS thread per chain (small dense solves
    oversubscribe the cores otherwise) and PyTensor's C linker (its compiled pieces are
    cached on disk; numba would recompile every model). ``kwargs`` go to ``pm.sample``."""
    cores = cores or min(chains, os.cpu_count() or 1)
    with model, threadpool_limits(1), pytensor.config.change_flags(linker="cvm"):
        return pm.sample(draws=draws, tune=tune, chains=chains, cores=cores,
                         random_seed=random_seed, progressbar=progress,
                         target_accept=target_accept, compute_convergence_checks=False,
                         **kwargs)
