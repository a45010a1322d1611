"""Bayesian SFA vs SFA maximum likelihood on the LCCP-shaped efficiency panel (278 x 19).

The frontier is the simulator's output distance function (2 desirable outputs, AQI as an
input; see bayesdid.datasets.simulate_efficiency). Timed in this process: the MLE
(cross-section and BC92 panel) and BayesianSFA (2 chains x 500 draws after 500 tuning
steps, same two forms), including the exact efficiency draws per city-year. Printed: wall
times, the ratio Bayesian / MLE, bulk ESS of sigma_u, and the Spearman correlation of
posterior-mean efficiency with the true efficiency. The first Bayesian fit includes
PyTensor's C compilation unless it is cached; the second of each form is timed warm.

    .venv/bin/python benchmarks/bench_sfa.py [--draws 500] [--tune 500]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import arviz_stats as azs
from scipy import stats

from bayesdid.efficiency.bayes_sfa import BayesianSFA
from bayesdid.efficiency.sfa import sfa
from bayesdid.datasets.simulate_efficiency import simulate_efficiency

OUT = Path(__file__).parent / "results" / "bench_sfa.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    args = parser.parse_args()
    logging.getLogger("pymc").setLevel(logging.WARNING)
    sim = simulate_efficiency(random_seed=0)
    kw = sim.params["sfa_kwargs"]
    true_eff = sim.data["efficiency"].to_numpy()
    lines = [(f"panel: {len(sim.data)} rows (278 cities x 19 years); Bayesian: 2 chains x "
             f"{args.draws} draws after {args.tune} tuning steps"),
             "| model | form | wall s | ratio vs MLE | ESS bulk(sigma_u) | Spearman(eff) |",
             "|---|---|---:|---:|---:|---:|"]
    for form, mle_model in (("cross_section", "cross_section"), ("bc92", "bc92")):
        t0 = time.perf_counter()
        mle = sfa(sim.data, **kw, model=mle_model)
        t_mle = time.perf_counter() - t0
        rho_mle = stats.spearmanr(mle.efficiency["te_bc"], true_eff)[0]
        lines.append(f"| SFA MLE | {form} | {t_mle:.2f} | 1.0 | - | {rho_mle:.3f} |")
        for run in ("cold", "warm"):
            t0 = time.perf_counter()
            res = BayesianSFA(**kw, inefficiency=form).fit(
                sim.data, draws=args.draws, tune=args.tune, chains=2, random_seed=1,
                progress=False)
            t_b = time.perf_counter() - t0
            ess = float(azs.ess(res.idata.posterior["sigma_u"].to_dataset(), method="bulk")
                        ["sigma_u"].values)
            rho = stats.spearmanr(res.efficiency_draws().mean(axis=1), true_eff)[0]
            lines.append(f"| BayesianSFA ({run}) | {form} | {t_b:.2f} | {t_b / t_mle:.1f} | "
                         f"{ess:.0f} | {rho:.3f} |")
        print("\n".join(lines[-3:]), flush=True)
    text = "\n".join(lines)
    print(text)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("Run on the shared 2-core development machine (`.venv/bin/python "
                   "benchmarks/bench_sfa.py`); other jobs were running, so absolute times "
                   "are inflated; the ratios travel better.\n\n" + text + "\n")


if __name__ == "__main__":
    main()
