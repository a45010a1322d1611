"""Bayesian SFA on the LCCP-shaped efficiency panel (278 x 19): compiled path vs PyMC NUTS vs MLE.

The frontier is the simulator's output distance function (2 desirable outputs, AQI as an
input; see bayesdid.datasets.simulate_efficiency). Timed in this process, per form
(cross-section and BC92 panel): the MLE, then BayesianSFA on PyMC's NUTS
(``sampler="pymc"``) and on the compiled path (``sampler="nutpie"``: disk-cached numba
density, no per-model compile), each 4 chains x 1000 draws after 1000 tuning steps (the
issue-15 target setting), including the exact efficiency draws per city-year. One tiny
fit per sampler first warms caches (not counted). Printed: wall times, ratios PyMC /
compiled (wall and ESS/s of sigma_u), bulk ESS, posterior mean of sigma_u on both paths,
and the Spearman correlation of posterior-mean efficiency with the true efficiency.

    .venv/bin/python benchmarks/bench_sfa.py [--draws 1000] [--tune 1000] [--chains 4]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import time
import warnings
from pathlib import Path

import arviz_stats as azs
from scipy import stats

from bayesdid.efficiency.bayes_sfa import BayesianSFA
from bayesdid.efficiency.sfa import sfa
from bayesdid.datasets.simulate_efficiency import simulate_efficiency

OUT = Path(__file__).parent / "results" / "bench_sfa.md"


def _fit(kw, data, form, sampler, args, **extra):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = BayesianSFA(**kw, inefficiency=form).fit(
            data, draws=args.draws, tune=args.tune, chains=args.chains, random_seed=1,
            progress=False, sampler=sampler, **extra)
    return res, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    args = parser.parse_args()
    logging.getLogger("pymc").setLevel(logging.WARNING)
    sim = simulate_efficiency(random_seed=0)
    kw = sim.params["sfa_kwargs"]
    true_eff = sim.data["efficiency"].to_numpy()
    small = simulate_efficiency(n_units=20, years=(2005, 2010), batches={2007: 4},
                                random_seed=2)
    for sampler in ("pymc", "nutpie"):  # warm-up: compile caches, imports
        for form in ("cross_section", "bc92"):
            BayesianSFA(**kw, inefficiency=form).fit(small.data, draws=20, tune=20, chains=1,
                                                     progress=False, sampler=sampler)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    lines = [(f"panel: {len(sim.data)} rows (278 cities x 19 years); Bayesian: {args.chains} "
              f"chains x {args.draws} draws after {args.tune} tuning steps; "
              f"uptime at start: {load}"),
             "| model | form | sampler | wall s | NUTS s | ESS bulk(sigma_u) | ESS/s | "
             "mean sigma_u | Spearman(eff) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    ratios = ["| form | wall MLE s | wall PyMC / compiled | ESS/s compiled / PyMC |",
              "|---|---:|---:|---:|"]
    for form, mle_model in (("cross_section", "cross_section"), ("bc92", "bc92")):
        t0 = time.perf_counter()
        mle = sfa(sim.data, **kw, model=mle_model)
        t_mle = time.perf_counter() - t0
        rho_mle = stats.spearmanr(mle.efficiency["te_bc"], true_eff)[0]
        lines.append(f"| SFA MLE | {form} | - | {t_mle:.2f} | - | - | - | "
                     f"{float(mle.coef.set_index('term').loc['sigma_u', 'estimate']):.4f} | "
                     f"{rho_mle:.3f} |")
        got = {}
        for sampler in ("pymc", "nutpie"):
            res, wall = _fit(kw, sim.data, form, sampler, args)
            post = res.idata.posterior
            ess = float(azs.ess(post["sigma_u"].to_dataset(), method="bulk")["sigma_u"].values)
            rho = stats.spearmanr(res.efficiency_draws().mean(axis=1), true_eff)[0]
            nuts = float(post.attrs.get("sampling_time", float("nan")))
            got[sampler] = (wall, ess / wall)
            lines.append(f"| BayesianSFA | {form} | {sampler} | {wall:.2f} | {nuts:.2f} | "
                         f"{ess:.0f} | {ess / wall:.0f} | {float(post['sigma_u'].mean()):.4f} | "
                         f"{rho:.3f} |")
            print(lines[-1], flush=True)
        ratios.append(f"| {form} | {t_mle:.2f} | {got['pymc'][0] / got['nutpie'][0]:.1f} | "
                      f"{got['nutpie'][1] / got['pymc'][1]:.1f} |")
    text = "\n".join(lines + [""] + ratios)
    print(text)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("Run on the shared 2-core development machine (`.venv/bin/python "
                   "benchmarks/bench_sfa.py`); other sessions were running (load above), so "
                   "absolute times are inflated; the in-run ratios travel better.\n\n"
                   + text + "\n")


if __name__ == "__main__":
    main()
