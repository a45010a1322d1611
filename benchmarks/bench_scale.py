"""Bayesian DID at scale: 50,000 units x 20 years (1,000,000 rows) and its growth.

For each size (10k, 100k, 1M rows; 20 years, 6 covariates, AR(1) errors, three staggered
cohorts) a fresh subprocess times: building the Panel, HierarchicalDiD (AR(1) errors,
4 chains x 1000 draws after 1000 tuning steps, the marginal likelihood) and pyfixest's TWFE
on the same data, and reads its peak RSS. Printed: wall times, time per row, RSS, and the
ratio HierarchicalDiD / pyfixest measured in the same process.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 500 5000 50000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, logging, resource, sys, time
logging.getLogger("pymc").setLevel(logging.WARNING)
from bayesdid import Panel
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.classical import twfe
from bayesdid.datasets import simulate_staggered

n = int(sys.argv[1])
sim = simulate_staggered(n_units=n, years=(2001, 2020), n_covariates=6, random_seed=0,
                         batches={2008: n // 12, 2011: n // 10, 2015: n // 8})
t0 = time.perf_counter()
panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
t_panel = time.perf_counter() - t0
t0 = time.perf_counter()
twfe(panel)
t_fixest = time.perf_counter() - t0
t0 = time.perf_counter()
res = HierarchicalDiD().fit(panel, draws=1000, tune=1000, chains=4, random_seed=1, progress=False)
t_bayes = time.perf_counter() - t0
sampling = float(res.idata.posterior.attrs["sampling_time"])
att = res.effect()
truth = float(sim.truth.query("group == 'overall'")["value"].iloc[0])
print(json.dumps(dict(rows=panel.n_obs, units=n, panel_s=t_panel, fixest_s=t_fixest,
                      bayes_s=t_bayes, sampling_s=sampling, n_phi=res.info["n_cells"],
                      att=float(att["estimate"]), lower=float(att["lower"]),
                      upper=float(att["upper"]), truth=truth, sampler=res.info["sampler"],
                      rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000, 50000],
                        help="numbers of units (20 years each)")
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        out = subprocess.run([sys.executable, "-c", CHILD, str(n)], capture_output=True,
                             text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print("| rows | sampler | Panel s | pyfixest TWFE s | HierarchicalDiD s | sampling s | "
          "us/row (HierarchicalDiD) | ratio to pyfixest | peak RSS GB | ATT [95% HDI] | truth |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in rows:
        print(f"| {r['rows']:,} | {r['sampler']} | {r['panel_s']:.1f} | {r['fixest_s']:.2f} | {r['bayes_s']:.1f} | "
              f"{r['sampling_s']:.1f} | {1e6 * r['bayes_s'] / r['rows']:.1f} | "
              f"{r['bayes_s'] / r['fixest_s']:.0f} | {r['rss_gb']:.2f} | "
              f"{r['att']:.4f} [{r['lower']:.4f}, {r['upper']:.4f}] | {r['truth']:.4f} |")
    base = rows[0]
    for r in rows[1:]:
        print(f"{r['rows']:,} rows vs {base['rows']:,}: {r['rows'] / base['rows']:.0f}x rows, "
              f"{r['sampling_s'] / base['sampling_s']:.2f}x sampling time, "
              f"{r['bayes_s'] / base['bayes_s']:.2f}x HierarchicalDiD wall time")


if __name__ == "__main__":
    main()
