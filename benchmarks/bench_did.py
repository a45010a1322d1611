"""HierarchicalDiD vs two PyMC baselines on the LCCP-shaped panel (278 cities x 19 years).

All sampled with 4 chains x 1000 draws after tuning, in this process:

* ``HierarchicalDiD()``: the default (marginal likelihood, AR(1), compiled nutpie path);
* the like-for-like baseline ``HierarchicalDiD(likelihood="dense")``: the same model with
  every coefficient (unit and year effects, covariates, cell effects) sampled by NUTS;
* a naive dummy-variable PyMC TWFE (one ATT, iid errors): what a user would write first;
* the Bayesian event study ``HierarchicalDiD(leads=6)`` (placebo leads -6..-2), default path.

Printed: wall times, bulk ESS of the overall ATT, ESS per second, and the ratios (machines
are noisy: only the ratios travel). pyfixest's TWFE on the same data is timed as a
reference. ``uptime`` is printed: other jobs inflate absolute times.

    .venv/bin/python benchmarks/bench_did.py [--tune 1000] [--draws 1000]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import time
import warnings

import arviz_stats as azs
import numpy as np
import pymc as pm
import pytensor
from threadpoolctl import threadpool_limits

from bayesdid import Panel
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.classical import twfe
from bayesdid.datasets import simulate_staggered


def naive_twfe_model(panel: Panel) -> pm.Model:
    """The model a user would write first: one dummy column per unit and per year."""
    df = panel.data
    units = pd_codes(df[panel.unit])
    years = pd_codes(df[panel.time])
    dummies = np.hstack([np.eye(units.max() + 1)[units], np.eye(years.max() + 1)[years][:, 1:]])
    X = df[list(panel.covariates)].to_numpy(float)
    with pm.Model() as model:
        fe = pm.Normal("fixed_effects", 0.0, 1.0, shape=dummies.shape[1])
        beta = pm.Normal("beta", 0.0, 1.0, shape=X.shape[1])
        att = pm.Normal("att", 0.0, 1.0)
        sigma = pm.HalfNormal("sigma", 1.0)
        mu = pm.math.dot(dummies, fe) + pm.math.dot(X, beta) + att * df["treated"].to_numpy(float)
        pm.Normal("y", mu, sigma, observed=df[panel.outcome].to_numpy(float))
    return model


def pd_codes(series) -> np.ndarray:
    return series.astype("category").cat.codes.to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args()
    logging.getLogger("pymc").setLevel(logging.WARNING)
    sim = simulate_staggered(random_seed=0)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    kw = dict(draws=args.draws, tune=args.tune, chains=4, random_seed=1, progress=False)

    t0 = time.perf_counter()
    twfe(panel)
    t_fixest = time.perf_counter() - t0

    def fit_hier(**cfg):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = HierarchicalDiD(**cfg).fit(panel, **kw)
        wall = time.perf_counter() - t0
        ess = float(res.diagnostics(warn=False).set_index("parameter")
                    .loc["att|overall", "ess_bulk"])
        return dict(wall=wall, ess=ess, nuts=float(res.idata.posterior.attrs.get(
            "sampling_time", np.nan)), sampler=res.info["sampler"],
            att=float(res.effect()["estimate"]))

    print("uptime at start:", subprocess.run(["uptime"], capture_output=True,
                                             text=True).stdout.strip(), flush=True)
    HierarchicalDiD().fit(panel, draws=20, tune=20, chains=1, progress=False)  # warm caches
    rows = {"HierarchicalDiD (marginal, AR(1))": fit_hier()}
    print({k: {a: (round(b, 2) if isinstance(b, float) else b) for a, b in v.items()} for k, v in rows.items()}, flush=True)
    rows["HierarchicalDiD likelihood='dense' (same model, all coefficients sampled)"] = \
        fit_hier(likelihood="dense")
    print({k: {a: (round(b, 2) if isinstance(b, float) else b) for a, b in v.items()} for k, v in rows.items()}, flush=True)

    model = naive_twfe_model(panel)
    t0 = time.perf_counter()
    with model, threadpool_limits(1), pytensor.config.change_flags(linker="cvm"):
        idata = pm.sample(draws=args.draws, tune=args.tune, chains=4, random_seed=1,
                          progressbar=False, compute_convergence_checks=False)
    t_naive = time.perf_counter() - t0
    rows["naive PyMC TWFE (dummies, iid)"] = dict(
        wall=t_naive, ess=float(azs.ess(idata.posterior["att"], method="bulk")),
        nuts=float(idata.posterior.attrs.get("sampling_time", np.nan)), sampler="pymc",
        att=float(idata.posterior["att"].mean()))
    rows["HierarchicalDiD(leads=6) event study (AR(1))"] = fit_hier(leads=6)

    print(f"panel: {panel.n_obs} rows ({len(panel.units)} units x {len(panel.times)} years); "
          f"4 chains x {args.draws} draws after {args.tune} tuning steps")
    print("| model | sampler | wall s | NUTS s | bulk ESS(ATT) | ESS/s (wall) | ATT |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['sampler']} | {r['wall']:.1f} | {r['nuts']:.1f} | {r['ess']:.0f} | "
              f"{r['ess'] / r['wall']:.1f} | {r['att']:.4f} |")
    print(f"| pyfixest TWFE | - | {t_fixest:.2f} | - | - | - | - |")
    hier, dense, naive = (list(rows.values())[i] for i in range(3))
    speed = lambda r: r["ess"] / r["wall"]
    print(f"ratio ESS/s HierarchicalDiD / dense (like-for-like): {speed(hier) / speed(dense):.1f}x")
    print(f"ratio ESS/s HierarchicalDiD / naive: {speed(hier) / speed(naive):.1f}x")
    print(f"ratio wall naive / HierarchicalDiD: {naive['wall'] / hier['wall']:.2f}")
    print(f"ratio wall dense / HierarchicalDiD: {dense['wall'] / hier['wall']:.2f}")
    print(f"ratio wall HierarchicalDiD / pyfixest TWFE: {hier['wall'] / t_fixest:.0f}")


if __name__ == "__main__":
    main()
