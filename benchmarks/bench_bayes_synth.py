"""Bayesian synthetic control on Prop 99: wall time of 4 chains x 1000 draws.

Baseline, in the same process: the same estimator with 1 chain x 1000 draws on PyMC's NUTS
(compile, tune, sample and post-processing included in all runs); then 4 chains on PyMC's
NUTS (``sampler="pymc"``) and on the compiled path (``sampler="nutpie"``, the default when
nutpie is installed: :mod:`bayesdid.synthetic.bayes_synth_nutpie`). Also timed: the
default Dirichlet (stick-breaking simplex, sigma sampled) that the estimator avoids, as a
reference for the reparametrisation (normalised Gammas, sigma integrated out,
gradient-based mass matrix). Printed: wall seconds, bulk ESS of the ATT, ESS per second
and ratios (machines are noisy: only ratios travel). Issue 15's target: at most 8 s for
4 x 1000 on Prop 99.

    .venv/bin/python benchmarks/bench_bayes_synth.py [--draws 1000] [--skip-naive]

Writes benchmarks/results/bench_bayes_synth.md.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import arviz_stats as azs
import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr
from threadpoolctl import threadpool_limits

from bayesdid import Panel
from bayesdid.synthetic.bayes_synth import BayesianSyntheticControl
from bayesdid.datasets import info, load
from bayesdid.synthetic.donors import donor_pool

RESULTS = Path(__file__).parent / "results" / "bench_bayes_synth.md"


def time_bayes_synth(panel: Panel, *, chains: int, draws: int, seed: int = 1,
                     sampler: str = "pymc") -> dict:
    """Wall time, ATT and bulk ESS of one BayesianSyntheticControl fit."""
    t0 = time.perf_counter()
    res = BayesianSyntheticControl().fit(panel, draws=draws, tune=draws, chains=chains,
                                         random_seed=seed, progress=False, sampler=sampler)
    wall = time.perf_counter() - t0
    draws_att = res.idata.posterior["effect"].sel(effect_id="att|overall")
    ess = float(azs.ess(draws_att, method="bulk")) if chains > 1 else float("nan")
    return dict(wall=wall, att=float(draws_att.mean()), ess=ess,
                steps=float(res.idata.sample_stats["n_steps"].mean()),
                divergences=int(res.idata.sample_stats["diverging"].sum()))


def time_naive(panel: Panel, *, chains: int, draws: int, seed: int = 1) -> dict:
    """The model a user would write first: pm.Dirichlet(1) and a sampled sigma."""
    pool = donor_pool(panel)
    pre = pool.pre_periods(0)
    X, y = pool.y_donors[pre], pool.y_treated[pre, 0]
    m, s = X.mean(), X.std()
    t0 = time.perf_counter()
    with pm.Model() as model:
        w = pm.Dirichlet("w", a=np.full(X.shape[1], 0.3))
        sigma = pm.HalfNormal("sigma", 0.5)
        pm.Normal("y", pt.dot((X - m) / s, w), sigma, observed=(y - m) / s)
    with model, threadpool_limits(1), pytensor.config.change_flags(linker="cvm"):
        idata = pm.sample(draws=draws, tune=draws, chains=chains, random_seed=seed,
                          progressbar=False, compute_convergence_checks=False)
    wall = time.perf_counter() - t0
    post = ~pre
    w_draws = idata.posterior["w"].values  # (chain, draw, donor)
    att = (pool.y_treated[post, 0].mean()
           - np.einsum("cdk,k->cd", w_draws, pool.y_donors[post].mean(axis=0)))
    ess = float(azs.ess(xr.DataArray(att, dims=("chain", "draw")), method="bulk"))
    return dict(wall=wall, att=float(att.mean()), ess=ess,
                steps=float(idata.sample_stats["n_steps"].mean()),
                divergences=int(idata.sample_stats["diverging"].sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pymc").setLevel(logging.ERROR)
    panel = Panel.from_frame(load("prop99"), **info("prop99")["panel_kwargs"])
    time_bayes_synth(panel, chains=1, draws=50)  # warm the on-disk C cache
    time_bayes_synth(panel, chains=1, draws=50, sampler="nutpie")  # and numba's
    base = time_bayes_synth(panel, chains=1, draws=args.draws)
    pymc4 = time_bayes_synth(panel, chains=4, draws=args.draws)
    full = time_bayes_synth(panel, chains=4, draws=args.draws, sampler="nutpie")
    rows = [("BayesianSyntheticControl, PyMC NUTS, 1 chain (baseline)", base),
            ("BayesianSyntheticControl, PyMC NUTS, 4 chains", pymc4),
            ("BayesianSyntheticControl, nutpie (compiled), 4 chains", full)]
    if not args.skip_naive:
        rows.append(("naive pm.Dirichlet(0.3) + sampled sigma, 4 chains",
                     time_naive(panel, chains=4, draws=args.draws)))
    lines = [f"Prop 99 (California, 38 donors, 19 pre-periods); {args.draws} tuning + "
             f"{args.draws} draws per chain; wall time includes compile and post-processing.",
             "", "| run | wall s | ratio to baseline | ATT | bulk ESS(ATT) | ESS/s | "
             "leapfrog steps/draw | divergences |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows:
        lines.append(f"| {name} | {r['wall']:.1f} | {r['wall'] / base['wall']:.2f} | "
                     f"{r['att']:.2f} | {r['ess']:.0f} | {r['ess'] / r['wall']:.1f} | "
                     f"{r['steps']:.0f} | {r['divergences']} |")
    lines += ["", f"compiled vs PyMC NUTS, 4 chains: {pymc4['wall'] / full['wall']:.1f}x faster "
              f"wall, {(full['ess'] / full['wall']) / (pymc4['ess'] / pymc4['wall']):.1f}x "
              "the ESS/s of the ATT",
              f"target: 4 chains x 1000 draws in at most 8 s -> "
              f"{'met' if full['wall'] <= 8 else 'not met'} in this run "
              f"({full['wall']:.1f} s; timings on a shared machine are inflated by other jobs)"]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
