"""NUTS with the settings every bayesdid model uses, and seeds that are always recorded.

Two samplers: PyMC's own NUTS (Python per leapfrog step, PyTensor's C linker) and nutpie
(Rust NUTS calling a numba-compiled log-density: no Python per step). ``"auto"`` picks
nutpie when it is installed and the model is on the compiled path (its Ops have numba
implementations), else PyMC. Each path gives the same draws for the same seed.

>>> seed = resolve_seed(None)
>>> 0 <= seed < 2**31 and resolve_seed(7) == 7
True
>>> choose_sampler("pymc", compiled=True)
'pymc'
"""

from __future__ import annotations

import importlib.util
import os
import time
from typing import Any

import numpy as np
import pymc as pm
import pytensor
from threadpoolctl import threadpool_limits

from ..errors import BayesDidError

__all__ = ["sample", "resolve_seed", "choose_sampler", "SAMPLERS"]

SAMPLERS = ("auto", "nutpie", "pymc")


def nutpie_installed() -> bool:
    return importlib.util.find_spec("nutpie") is not None


def choose_sampler(sampler: str, *, compiled: bool) -> str:
    """The NUTS implementation to run: ``"nutpie"`` or ``"pymc"``.

    ``compiled``: whether every Op of the model has a numba implementation."""
    if sampler not in SAMPLERS:
        raise BayesDidError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if sampler == "auto":
        return "nutpie" if compiled and nutpie_installed() else "pymc"
    if sampler == "nutpie" and not nutpie_installed():
        raise BayesDidError("sampler='nutpie' needs the nutpie package: pip install nutpie "
                            "(or use sampler='pymc')")
    return sampler


def resolve_seed(random_seed: int | None) -> int:
    """``random_seed``, or a fresh one (to be recorded in the result) when it is None."""
    if random_seed is None:
        return int(np.random.SeedSequence().entropy % (2**31))
    return int(random_seed)


def sample(model: pm.Model, *, draws: int, tune: int, chains: int, cores: int | None,
           random_seed: int, progress: bool, target_accept: float, sampler: str = "pymc",
           **kwargs: Any):
    """``pm.sample`` inside ``model`` with one BLAS thread per chain (small dense solves
    oversubscribe the cores otherwise).

    ``sampler="pymc"``: PyMC's NUTS with PyTensor's C linker (its compiled pieces are cached
    on disk). ``sampler="nutpie"``: nutpie on the numba backend. The wall time of the call
    is stored in ``posterior.attrs["sample_call_time"]`` beside PyMC's ``sampling_time``
    (their difference is compilation and start-up). ``kwargs`` go to ``pm.sample``."""
    cores = cores or min(chains, os.cpu_count() or 1)
    common = dict(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=random_seed,
                  progressbar=progress, target_accept=target_accept,
                  compute_convergence_checks=False, **kwargs)
    start = time.perf_counter()
    if sampler == "nutpie":
        with model, threadpool_limits(1):
            idata = pm.sample(nuts_sampler="nutpie", **common)
    elif sampler == "pymc":
        with model, threadpool_limits(1), pytensor.config.change_flags(linker="cvm"):
            idata = pm.sample(nuts_sampler="pymc", **common)
    else:
        raise BayesDidError(f"sampler must be 'nutpie' or 'pymc' here, got {sampler!r}")
    idata.posterior.attrs["sample_call_time"] = time.perf_counter() - start
    idata.posterior.attrs["nuts_sampler"] = sampler
    return idata
