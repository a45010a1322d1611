"""BayesianSFA after NUTS on the LCCP-shaped panel (278 x 19): the block-wise efficiency
draws against the whole-array NumPy code they replaced, in this process.

Per form (cross-section, BC92), two compiled-path fits at the issue-15 setting (4 chains x
1000 draws after 1000 tuning, same seed, so the same NUTS draws): one with the current code
(:mod:`bayesdid.efficiency._efficiency_draws`, ``_row_std``), one with the previous
whole-array expressions patched back in (the baseline, like for like). Printed: wall, NUTS
(``sample_call_time``: set-up + sampling) and the time after NUTS (the exact efficiency
draws of 4,000 x 5,282 values, their summaries and diagnostics), the ratio of the latter,
and the largest relative difference between the two ``effects()`` tables.

    .venv/bin/python benchmarks/bench_sfa_draws.py [--draws 1000] [--chains 4]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import time
import warnings
from contextlib import contextmanager

import numpy as np

import bayesdid.bayes.result as result_mod
import bayesdid.efficiency.bayes_sfa as bayes_sfa
from bayesdid.datasets.simulate_efficiency import simulate_efficiency
from bayesdid.efficiency import _sfa_math as m
from bayesdid.efficiency.bayes_sfa import BayesianSFA


def _whole_array_cross(y, X, sign, beta, sv, su, mu, distribution, rng):
    """The code before the change (cross-section): every step an (S, N) temporary."""
    e = sign * (y[None, :] - beta @ X.T)
    mu_s, s_s = m.conditional_cross(e, sv[:, None], su[:, None], distribution, mu[:, None])
    eff = np.exp(-m.draw_u(mu_s, s_s, rng))
    return np.concatenate([eff.mean(axis=1, keepdims=True), eff], axis=1)


def _whole_array_panel(y, X, sign, unit_idx, n_units, dt, beta, sv, su, mu, eta, rng):
    """The code before the change (BC92): dense one-hot products for the unit sums."""
    e = sign * (y[None, :] - beta @ X.T)
    sv, su, mu = sv[:, None], su[:, None], mu[:, None]
    scale = np.exp(-eta[:, None] * dt[None, :])
    onehot = np.zeros((len(unit_idx), n_units))
    onehot[np.arange(len(unit_idx)), unit_idx] = 1.0
    s_he = (scale * e) @ onehot
    s_hh = np.broadcast_to(scale**2, e.shape) @ onehot
    den = sv**2 + su**2 * s_hh
    mu_u = (mu * sv**2 - su**2 * s_he) / den
    s_u = np.broadcast_to(su * sv / np.sqrt(den), mu_u.shape)
    eff = np.exp(-(scale * m.draw_u(mu_u, s_u, rng)[:, unit_idx]))
    return np.concatenate([eff.mean(axis=1, keepdims=True), eff], axis=1)


@contextmanager
def _previous_code():
    """BayesianSFA's post-NUTS code as it was: whole-array draws, whole-array sd."""
    saved = (bayes_sfa.cross_section_draws, bayes_sfa.panel_draws, result_mod._row_std)
    bayes_sfa.cross_section_draws, bayes_sfa.panel_draws = _whole_array_cross, _whole_array_panel
    result_mod._row_std = lambda flat: flat.std(axis=1, ddof=1)
    try:
        yield
    finally:
        bayes_sfa.cross_section_draws, bayes_sfa.panel_draws, result_mod._row_std = saved


def _fit(cfg, data, args):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = cfg.fit(data, draws=args.draws, tune=args.draws, chains=args.chains,
                      random_seed=1, progress=False, sampler="nutpie")
    wall = time.perf_counter() - t0
    return res, wall, float(res.idata.posterior.attrs["sample_call_time"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    args = parser.parse_args()
    logging.getLogger("pymc").setLevel(logging.WARNING)
    sim = simulate_efficiency(random_seed=0)
    kw = sim.params["sfa_kwargs"]
    small = simulate_efficiency(n_units=20, years=(2005, 2010), batches={2007: 4},
                                random_seed=2)
    for form in ("cross_section", "bc92"):  # warm-up: numba caches, imports
        BayesianSFA(**kw, inefficiency=form).fit(small.data, draws=20, tune=20, chains=1,
                                                 progress=False, sampler="nutpie")
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"uptime at start: {load}")
    print("| form | code | fit wall s | NUTS s | after NUTS s | after-NUTS ratio "
          "previous / now | max rel diff of effects() |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for form in ("cross_section", "bc92"):
        cfg = BayesianSFA(**kw, inefficiency=form)
        new, wall_new, nuts_new = _fit(cfg, sim.data, args)
        with _previous_code():
            old, wall_old, nuts_old = _fit(cfg, sim.data, args)
        a, b = new.effects(), old.effects()
        diff = max(float(np.max(np.abs(a[c] - b[c]) / np.abs(b[c])))
                   for c in ("estimate", "se_or_sd", "lower", "upper"))
        np.testing.assert_array_equal(new.idata.posterior["beta"].values,
                                      old.idata.posterior["beta"].values)  # same NUTS draws
        ratio = (wall_old - nuts_old) / (wall_new - nuts_new)
        for code, wall, nuts in (("previous", wall_old, nuts_old), ("now", wall_new, nuts_new)):
            print(f"| {form} | {code} | {wall:.2f} | {nuts:.2f} | {wall - nuts:.2f} | "
                  f"{ratio:.1f} | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
