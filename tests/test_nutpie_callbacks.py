"""The DID density's nutpie C callbacks: one per likelihood kernel, compiled on first use.

* importing bayesdid (and the density module, and the CLI) compiles nothing with numba
  (checked in a fresh process with an empty numba cache);
* :func:`kernel_of` names the kernel a packed buffer is for (dense for a small design,
  block-arrow for the LCCP event study, scaled with variance classes), and
  :func:`compile_did_nutpie` hands nutpie that kernel's callback;
* each callback, called through its C pointer as nutpie calls it, returns the value and
  gradient of :func:`did_logp_grad` on the same buffer, and its status codes.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest

from bayesdid import Panel
from bayesdid.bayes.nutpie_compiled import LOGP_SIG, lazy_cfunc
from bayesdid.datasets import simulate_staggered
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.did.nutpie_density import (
    KERNELS,
    callbacks_for,
    compile_did_nutpie,
    did_logp_grad,
    kernel_of,
    pack_user_data,
)

_P = ctypes.POINTER(ctypes.c_double)


def _small() -> Panel:
    sim = simulate_staggered(n_units=30, years=(2005, 2013), batches={2008: 6, 2010: 6},
                             n_covariates=1, random_seed=4)
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


def _lccp() -> Panel:
    sim = simulate_staggered(random_seed=0)
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


CASES = {  # kernel: (model, panel factory)
    "dense": (HierarchicalDiD(errors="ar1"), _small),
    "block": (HierarchicalDiD(errors="ar1", event_time=True), _lccp),
    "scaled": (HierarchicalDiD(errors="ar1", unit_variance="classes"), _small),
}


def _call(cfunc, x: np.ndarray, buf: np.ndarray):
    out, logp = np.empty(len(x)), np.empty(1)
    status = cfunc.ctypes(len(x), x.ctypes.data_as(_P), out.ctypes.data_as(_P),
                          logp.ctypes.data_as(_P), buf.ctypes.data_as(ctypes.c_void_p))
    return status, logp[0], out


@pytest.mark.unit
def test_importing_bayesdid_compiles_nothing(tmp_path):
    code = ("from numba.core import event\n"
            "rec = event.RecordingListener()\n"
            "event.register('numba:compile', rec)\n"
            "import bayesdid, bayesdid.cli, bayesdid.did.hierarchical\n"
            "import bayesdid.did.nutpie_density, bayesdid.did.block_marginal\n"
            "print(len(rec.buffer))\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "0", done.stderr[-2000:]
    assert not list(tmp_path.rglob("*.nb[ic]"))  # nothing compiled, nothing cached


@pytest.mark.model
@pytest.mark.parametrize("kernel", list(CASES))
def test_each_kernel_has_its_own_callback_equal_to_did_logp_grad(kernel):
    model_, panel_of = CASES[kernel]
    panel = panel_of()
    design = model_.prepare(panel)
    buf = pack_user_data(design, model_.priors, True)
    assert kernel_of(buf) == kernel
    cfunc = lazy_cfunc(KERNELS[kernel], LOGP_SIG)
    assert lazy_cfunc(KERNELS[kernel], LOGP_SIG) is cfunc  # compiled once per process
    compiled = compile_did_nutpie(model_.build(panel), design, model_.priors, "ar1")
    # the fit samples with this kernel's callback (the block kernel's C one where it builds)
    assert compiled.compiled_logp_func is callbacks_for(kernel)[0]
    fallback = compile_did_nutpie(model_.build(panel), design, model_.priors, "ar1",
                                  use_native=False)
    assert fallback.compiled_logp_func is cfunc
    n_dim = compiled.n_dim
    rng = np.random.default_rng(7)
    for _ in range(3):
        x = rng.normal(0.0, 0.5, n_dim)
        x[0] += np.log(0.5)
        status, value, grad = _call(cfunc, x, buf)
        ref_value, ref_grad = did_logp_grad(x, buf)
        assert status == 0
        assert value == ref_value
        np.testing.assert_array_equal(grad, ref_grad)
    # a point outside the support: the value is -inf (status 4), as did_logp_grad says
    x = np.zeros(n_dim)
    x[1] = 800.0  # rho = 1 in floating point
    status, value, _ = _call(cfunc, x, buf)
    assert value == did_logp_grad(x, buf)[0] == -np.inf
    assert status == 4
