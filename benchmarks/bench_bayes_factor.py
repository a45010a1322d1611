"""BayesianFactorDiD vs HierarchicalDiD fit time, in the same process, on two shapes.

* ``lccp``: 278 units x 19 periods (the LCCP shape), 90 treated in cohorts 8 / 11 / 14,
  two factors (``simulate_factor_panel``, seed 0);
* ``prop99``: the Proposition 99 data (39 states x 31 years, one treated unit).

Each model is fitted with 4 chains x ``--draws`` draws (``--draws`` tune) via ``fit``
(compile, sampling and the post-processing of effects/PPC included); a warm-up fit on a
tiny panel first loads the disk-cached numba densities of both models so that neither pays
a one-off compile in the timed fits. Printed: wall time, bulk ESS of the overall ATT,
ESS/s and the ratios factor / hierarchical (only the ratios travel between machines).

    PYTHONPATH=src python benchmarks/bench_bayes_factor.py --out benchmarks/results/bench_bayes_factor.md

``--covariates K`` times BayesianFactorDiD alone on the LCCP shape with no covariates and
with K of them (the simulator's confounder ``x`` plus K - 1 pure-noise columns), in the same
process, and reports wall and process CPU seconds (nutpie's chains run as threads of this
process) and their ratios:

    PYTHONPATH=src python benchmarks/bench_bayes_factor.py --covariates 3 \
        --out benchmarks/results/bench_bayes_factor_covariates.md
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd

from bayesdid import BayesianFactorDiD, HierarchicalDiD, Panel
from bayesdid.bayes.convergence import rhat_ess
from bayesdid.datasets import info, load, simulate_factor_panel


def panels() -> dict[str, Panel]:
    sim = simulate_factor_panel(n_units=278, n_periods=19, n_treated=90, cohorts=(8, 11, 14),
                                seed=0)
    return {"lccp (278 x 19)": Panel.from_frame(sim.data, **sim.panel_kwargs),
            "prop99 (39 x 31)": Panel.from_frame(load("prop99"),
                                                 **info("prop99")["panel_kwargs"])}


def timed(model, panel, draws: int, seed: int = 1) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0, c0 = time.perf_counter(), time.process_time()
        res = model.fit(panel, draws=draws, tune=draws, chains=4, random_seed=seed,
                        progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    eff = res.idata.posterior["effect"].values[:, :, 0]  # att|overall comes first
    ess = float(rhat_ess(eff[:, :, None])[1][0])
    row = res.effect()
    return {"seconds": wall, "cpu_seconds": cpu, "ess_att": ess, "ess_per_s": ess / wall,
            "att": row["estimate"], "lower": row["lower"], "upper": row["upper"],
            "converged": res.info["convergence"]["ok"],
            "sampler": res.info.get("sampler")}


def covariate_timing(args) -> str:
    """BayesianFactorDiD on the LCCP shape with 0 and ``args.covariates`` covariates."""
    sim = simulate_factor_panel(n_units=278, n_periods=19, n_treated=90, cohorts=(8, 11, 14),
                                seed=0, covariate_effect=1.0)
    rng = np.random.default_rng(5)
    names = ["x", *[f"noise{j}" for j in range(1, args.covariates)]]
    data = sim.data.assign(**{n: rng.normal(size=len(sim.data)) for n in names[1:]})
    warm = simulate_factor_panel(n_units=10, n_periods=6, n_treated=2, cohorts=(4,), seed=0,
                                 covariate_effect=1.0)
    with warnings.catch_warnings():  # load the disk-cached numba density first
        warnings.simplefilter("ignore")
        BayesianFactorDiD().fit(Panel.from_frame(warm.data, **warm.panel_kwargs,
                                                 covariates=["x"]),
                                draws=20, tune=20, chains=1, random_seed=0, progress=False)
    rows = []
    for k in (0, args.covariates):
        panel = Panel.from_frame(data, **sim.panel_kwargs, covariates=names[:k])
        rows.append({"covariates": ", ".join(names[:k]) or "none",
                     **timed(BayesianFactorDiD(), panel, args.draws)})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    ratio = pd.DataFrame([{
        "wall_ratio (with / without)": table["seconds"].iloc[1] / table["seconds"].iloc[0],
        "cpu_ratio (with / without)": table["cpu_seconds"].iloc[1] / table["cpu_seconds"].iloc[0],
        "ess_per_s_ratio": table["ess_per_s"].iloc[1] / table["ess_per_s"].iloc[0]}])
    return (table.to_markdown(index=False, floatfmt=".2f") + "\n\n"
            + ratio.to_markdown(index=False, floatfmt=".2f"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--covariates", type=int, default=0,
                    help="time BayesianFactorDiD with this many covariates vs none instead")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    warm = simulate_factor_panel(n_units=10, n_periods=6, n_treated=2, cohorts=(4,), seed=0)
    warm_panel = Panel.from_frame(warm.data, **warm.panel_kwargs)
    if args.covariates:
        text = covariate_timing(args)
        print(text)
        if args.out:
            with open(args.out, "w") as fh:
                fh.write("# BayesianFactorDiD with and without covariates: fit time (same "
                         "process)\n\nLCCP shape (278 units x 19 periods, 90 treated in "
                         "cohorts 8 / 11 / 14, two factors, `simulate_factor_panel(seed=0, "
                         "covariate_effect=1)`); covariates: the confounder `x` plus pure "
                         f"noise columns. 4 chains x {args.draws} draws ({args.draws} tune), "
                         "`fit` wall and process CPU time (sampling + effects + PPC), nutpie "
                         "on the disk-cached numba density (warmed first). Machine shared "
                         f"(1-min load {os.getloadavg()[0]:.1f} at the end): the ratios are the "
                         "result. Produced by `PYTHONPATH=src python "
                         f"benchmarks/bench_bayes_factor.py --covariates {args.covariates} "
                         f"--draws {args.draws} --out {args.out}`.\n\n" + text + "\n")
        return
    for model in (BayesianFactorDiD(), HierarchicalDiD()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(warm_panel, draws=20, tune=20, chains=1, random_seed=0, progress=False)
    rows = []
    for shape, panel in panels().items():
        for name, model in (("HierarchicalDiD", HierarchicalDiD()),
                            ("BayesianFactorDiD", BayesianFactorDiD())):
            rows.append({"shape": shape, "model": name, **timed(model, panel, args.draws)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    ratios = []
    for shape, sub in table.groupby("shape", sort=False):
        h = sub.set_index("model").loc["HierarchicalDiD"]
        f = sub.set_index("model").loc["BayesianFactorDiD"]
        ratios.append({"shape": shape, "time_ratio (factor / hierarchical)":
                       f["seconds"] / h["seconds"],
                       "ess_per_s_ratio": f["ess_per_s"] / h["ess_per_s"]})
    text = (table.to_markdown(index=False, floatfmt=".2f") + "\n\n"
            + pd.DataFrame(ratios).to_markdown(index=False, floatfmt=".2f"))
    print(text)
    if args.out:
        load_avg = os.getloadavg()[0]
        with open(args.out, "w") as fh:
            fh.write("# BayesianFactorDiD vs HierarchicalDiD: fit time (same process)\n\n"
                     f"4 chains x {args.draws} draws ({args.draws} tune), `fit` wall time "
                     "(sampling + effects + PPC), both on nutpie with their disk-cached "
                     "numba densities (warmed first). Machine: 2 cores shared with other "
                     f"sessions (1-min load average {load_avg:.1f} at the end), so absolute "
                     "seconds are inflated; the ratios are the result. Produced by "
                     "`PYTHONPATH=src python benchmarks/bench_bayes_factor.py "
                     f"--draws {args.draws} --out {args.out}`.\n\n" + text + "\n")


if __name__ == "__main__":
    main()
