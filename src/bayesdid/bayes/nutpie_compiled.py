"""What every compiled density run by nutpie shares: the C signatures of its callbacks, the
error a density raises for a model it does not implement, and the sampling call.

Each model's density (``did/nutpie_density.py``, ``efficiency/sfa_nutpie_density.py``,
``synthetic/bayes_factor_nutpie.py``, ``synthetic/bayes_synth_nutpie.py``) writes its own
numba ``cfunc`` pair against :data:`LOGP_SIG` / :data:`EXPAND_SIG` (a cfunc must name its
own kernel to be disk-cached, so the thin wrappers stay per module) and its own
``CompiledPyMCModel`` layout; :func:`sample_compiled` runs any of them. A ``numba.cfunc``
decorator compiles its whole call tree at import; :func:`lazy_cfunc` instead compiles a
plain module-level wrapper on first use (the DID density has one per likelihood kernel).

>>> from bayesdid.did.nutpie_density import EXPAND
>>> lazy_cfunc(EXPAND, EXPAND_SIG) is lazy_cfunc(EXPAND, EXPAND_SIG)  # compiled once
True
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache

import numba
import pymc as pm
from threadpoolctl import threadpool_limits

__all__ = ["EXPAND_SIG", "LOGP_SIG", "UnsupportedModel", "lazy_cfunc", "sample_compiled"]

#: nutpie's logp callback: (dim, x, grad out, logp out, user data) -> status
LOGP_SIG = numba.types.int64(numba.types.uint64, numba.types.CPointer(numba.types.double),
                             numba.types.CPointer(numba.types.double),
                             numba.types.CPointer(numba.types.double), numba.types.voidptr)
#: nutpie's expand callback: (dim, expanded dim, x, out, user data) -> status
EXPAND_SIG = numba.types.int64(numba.types.uint64, numba.types.uint64,
                               numba.types.CPointer(numba.types.double),
                               numba.types.CPointer(numba.types.double), numba.types.voidptr)


@cache
def lazy_cfunc(py_func: Callable, signature):
    """``numba.cfunc(signature, cache=True, error_model="numpy")(py_func)``, compiled on the
    first call in a process (loaded from numba's disk cache when it holds it) and kept.
    ``py_func`` must be a module-level function for the disk cache to find it again."""
    return numba.cfunc(signature, cache=True, error_model="numpy")(py_func)


class UnsupportedModel(ValueError):
    """The PyMC model is not the one a compiled density implements (use ``pm.sample``)."""


def sample_compiled(model: pm.Model, compile_model: Callable[[], object], *, draws: int,
                    tune: int, chains: int, cores: int, random_seed: int, progress: bool,
                    target_accept: float):
    """nutpie NUTS on the compiled model ``compile_model()`` returns: a DataTree in the form
    ``pm.sample(nuts_sampler="nutpie")`` returns, with ``sample_call_time`` (compile +
    sampling) and ``nuts_sampler`` in the posterior's attrs. BLAS runs single-threaded
    (the chains already use the cores)."""
    import nutpie
    from pymc.backends.arviz import patch_nutpie_idata

    call_start = time.perf_counter()
    compiled = compile_model()
    start = time.time()
    with threadpool_limits(1):
        idata = nutpie.sample(compiled, draws=draws, tune=max(tune, 1), chains=chains,
                              cores=cores, seed=int(random_seed), target_accept=target_accept,
                              progress_bar=progress)
    patch_nutpie_idata(idata, model, sampling_time=time.time() - start)
    idata.posterior.attrs["sample_call_time"] = time.perf_counter() - call_start
    idata.posterior.attrs["nuts_sampler"] = "nutpie"
    return idata
