"""The DID kernels in C (``did/marginal_density.c``) against their numba twins, like for like
in one process: the same model, data, seed and work, only the callback differs.

For the LCCP-shaped panel (278 x 19; event time, and with six leads) and region x year
effects (block-arrow kernel), and castle (50 x 11, event time, population weights: the
per-unit scaled kernel), printed:

* microseconds per log-density + gradient call, as nutpie calls it (through the C
  pointer; best of 7 alternating repeats, OpenBLAS one thread);
* 4 chains x 1000 draws after 1000 tuning on nutpie with each callback (seed 1): wall
  seconds, NUTS seconds, ESS/s of the overall ATT, and the conditional draws of the
  coefficients after NUTS with each kernel; ratios C / numba;
* how long each takes to build from an empty cache (C: the system compiler; numba: every
  function the callback calls), in a fresh subprocess each.

    .venv/bin/python benchmarks/bench_native_kernel.py [--draws 1000] [--tune 1000]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
import tempfile
import time
import timeit
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from bayesdid import Panel
from bayesdid.bayes.native import DOUBLE_P, LOGP_PROTOTYPE
from bayesdid.bayes.nutpie_compiled import LOGP_SIG, lazy_cfunc, sample_compiled
from bayesdid.datasets import info, load, simulate_staggered
from bayesdid.did.block_marginal import draw_phi_block, draw_phi_scaled
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.did.hierarchical_model import prior_precision_draws, unit_precision
from bayesdid.did.nutpie_density import (
    KERNELS,
    compile_did_nutpie,
    kernel_of,
    native_callbacks,
    pack_user_data,
)

_P, _LOGP = DOUBLE_P, LOGP_PROTOTYPE
#: name -> (panel, model options)
DESIGNS = {"event time": ("lccp", dict(event_time=True)), "leads=6": ("lccp", dict(leads=6)),
           "region^year": ("lccp", dict(random_effects="region^year")),
           "castle (scaled)": ("castle", dict(event_time=True))}


def per_call_us(design, priors) -> tuple[float, float]:
    buf = pack_user_data(design, priors, True)
    kernel = kernel_of(buf)
    n_classes = design.scaled["n_classes"] if design.scaled is not None else 1
    n = 2 + len(design.random_blocks) + n_classes - 1
    x = np.r_[np.log(0.35), 1.1, np.full(n - 2, np.log(0.04))]
    out, logp = np.empty(n), np.empty(1)
    args = (n, x.ctypes.data_as(_P), out.ctypes.data_as(_P), logp.ctypes.data_as(_P),
            buf.ctypes.data_as(ctypes.c_void_p))
    fns = [_LOGP(native_callbacks()[0].address),
           _LOGP(lazy_cfunc(KERNELS[kernel], LOGP_SIG).address)]
    best = [np.inf, np.inf]
    with threadpool_limits(1):
        for _ in range(7):
            for i, fn in enumerate(fns):
                best[i] = min(best[i], min(timeit.repeat(lambda: fn(*args), number=300,
                                                         repeat=1)) / 300 * 1e6)
    return best[0], best[1]


def fit(model_, design, use_native: bool, draws: int, tune: int) -> dict:
    model = model_._build(design)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        idata = sample_compiled(
            model, lambda: compile_did_nutpie(model, design, model_.priors, "ar1",
                                              use_native=use_native),
            draws=draws, tune=tune, chains=4, cores=4, random_seed=1, progress=False,
            target_accept=0.9)
        wall = time.perf_counter() - t0
    flat = idata.posterior.to_dataset().stack(sample=("chain", "draw"))
    lam = prior_precision_draws(design, model_.priors, {b.name: flat[f"sd_{b.name}"].values
                                                        for b in design.random_blocks})
    t0 = time.perf_counter()
    if design.scaled is None:
        draw_phi_block(design, flat["sigma"].values, flat["rho"].values,
                       unit_precision(design), lam, np.random.default_rng(0),
                       use_native=use_native)
    else:
        draw_phi_scaled(design.scaled, flat["sigma"].values, flat["rho"].values,
                        unit_precision(design), lam, model_._class_precision_draws(flat, design),
                        np.random.default_rng(0), use_native=use_native)
    import arviz_stats as azs

    return {"wall": wall, "nuts": float(idata.posterior.attrs["sampling_time"]),
            "draws": time.perf_counter() - t0,
            "ess_sigma": float(azs.ess(idata.posterior["sigma"]))}


def build_seconds() -> tuple[float, float]:
    """(C build wall s, numba compile CPU s) of the block callback from empty caches."""
    code = ("import time\n"
            "from bayesdid.did import nutpie_density as nd\n"
            "from bayesdid.bayes.nutpie_compiled import LOGP_SIG, lazy_cfunc\n"
            "t = time.perf_counter(); assert nd.native_callbacks() is not None\n"
            "c = time.perf_counter() - t\n"
            "t = time.thread_time(); lazy_cfunc(nd.KERNELS['block'], LOGP_SIG)\n"
            "print(c, time.thread_time() - t)\n")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=f"{tmp}/numba", BAYESDID_CACHE_DIR=f"{tmp}/c")
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                             capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    args = parser.parse_args()
    print(f"load average at the start: {os.getloadavg()[0]:.1f}\n")
    assert native_callbacks() is not None, "no C compiler: nothing to compare"
    c_build, nb_build = build_seconds()
    print(f"build from an empty cache: C {c_build:.2f} s wall, numba {nb_build:.2f} s CPU "
          f"({nb_build / c_build:.0f}x)\n")
    sim = simulate_staggered(random_seed=0)
    panels = {"lccp": Panel.from_frame(sim.data, **sim.panel_kwargs),
              "castle": Panel.from_frame(load("castle"), **info("castle")["panel_kwargs"])}
    print("| design | p | us per call C | numba | C / numba | wall s C | numba | C / numba "
          "| NUTS s C | numba | draws s C | numba | ESS(sigma)/s C | numba |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, (panel, kw) in DESIGNS.items():
        model_ = HierarchicalDiD(**{"random_effects": None, **kw})
        design = model_.prepare(panels[panel])
        c_us, nb_us = per_call_us(design, model_.priors)
        fit(model_, design, True, 20, 20)  # warm both paths
        fit(model_, design, False, 20, 20)
        c, nb = (fit(model_, design, use, args.draws, args.tune) for use in (True, False))
        print(f"| {name} | {design.n_phi} | {c_us:.1f} | {nb_us:.1f} | {c_us / nb_us:.2f}x | "
              f"{c['wall']:.2f} | {nb['wall']:.2f} | {c['wall'] / nb['wall']:.2f}x | "
              f"{c['nuts']:.2f} | {nb['nuts']:.2f} | {c['draws']:.3f} | {nb['draws']:.3f} | "
              f"{c['ess_sigma'] / c['wall']:.0f} | {nb['ess_sigma'] / nb['wall']:.0f} |",
              flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
