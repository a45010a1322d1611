"""HierarchicalDiD vs a naive PyMC TWFE on the LCCP-shaped panel (278 cities x 19 years).

Both are sampled with 4 chains x 1000 draws after tuning, in this process. Printed: wall
times, bulk ESS of the overall ATT, ESS per second, and their ratios (machines are noisy:
only the ratios travel). pyfixest's TWFE on the same data is timed as a reference.

    .venv/bin/python benchmarks/bench_did.py [--tune 1000]
"""

from __future__ import annotations

import argparse
import logging
import time

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

    t0 = time.perf_counter()
    res = HierarchicalDiD().fit(panel, **kw)
    t_hier = time.perf_counter() - t0
    ess_hier = float(res.diagnostics(warn=False).set_index("parameter")
                     .loc["att|overall", "ess_bulk"])
    sampling_hier = float(res.idata.posterior.attrs.get("sampling_time", np.nan))

    model = naive_twfe_model(panel)
    t0 = time.perf_counter()
    with model, threadpool_limits(1), pytensor.config.change_flags(linker="cvm"):
        idata = pm.sample(draws=args.draws, tune=args.tune, chains=4, random_seed=1,
                          progressbar=False, compute_convergence_checks=False)
    t_naive = time.perf_counter() - t0
    ess_naive = float(azs.ess(idata.posterior["att"], method="bulk"))
    sampling_naive = float(idata.posterior.attrs.get("sampling_time", np.nan))

    print(f"panel: {panel.n_obs} rows ({len(panel.units)} units x {len(panel.times)} years); "
          f"4 chains x {args.draws} draws after {args.tune} tuning steps")
    print("| model | wall s | sampling s | bulk ESS(ATT) | ESS/s (wall) |")
    print("|---|---:|---:|---:|---:|")
    print(f"| HierarchicalDiD (marginal, AR(1)) | {t_hier:.1f} | {sampling_hier:.1f} | "
          f"{ess_hier:.0f} | {ess_hier / t_hier:.1f} |")
    print(f"| naive PyMC TWFE (dummies, iid) | {t_naive:.1f} | {sampling_naive:.1f} | "
          f"{ess_naive:.0f} | {ess_naive / t_naive:.1f} |")
    print(f"| pyfixest TWFE | {t_fixest:.2f} | - | - | - |")
    print(f"ratio ESS/s HierarchicalDiD / naive: {(ess_hier / t_hier) / (ess_naive / t_naive):.1f}x")
    print(f"ratio wall time HierarchicalDiD / naive: {t_hier / t_naive:.2f}")
    print(f"ratio wall time HierarchicalDiD / pyfixest TWFE: {t_hier / t_fixest:.0f}")


if __name__ == "__main__":
    main()
