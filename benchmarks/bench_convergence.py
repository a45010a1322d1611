"""Convergence checks on every fit: bayesdid's vectorised R-hat / bulk ESS / tail ESS
(bayesdid.bayes.convergence.rhat_ess) against arviz-stats' rhat + ess (bulk, tail at the
5%/95% quantiles), same draws, same process; the numbers agree to 1e-9.

Usage: python benchmarks/bench_convergence.py [--repeat 3]
Prints a Markdown table: quantities K (a DiD fit: ~60-300; an SFA fit with one efficiency
per city-year: ~5,000), seconds for each implementation (best of --repeat), the ratio.
"""

from __future__ import annotations

import argparse
import time
import warnings

import arviz_stats as azs
import numpy as np
import xarray as xr

from bayesdid.bayes.convergence import rhat_ess


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for chains, draws, k in [(2, 500, 60), (4, 1000, 300), (2, 2000, 5300), (4, 1000, 5300)]:
        x = rng.normal(size=(chains, draws, k))
        x[:, :, : k // 2] = np.cumsum(x[:, :, : k // 2], axis=1) * 0.05 + x[:, :, : k // 2]
        ds = xr.Dataset({"x": (("chain", "draw", "k"), x)})

        def ref():
            azs.rhat(ds)
            azs.ess(ds, method="bulk")
            azs.ess(ds, method="tail", prob=0.95)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ours = rhat_ess(x)
            theirs = (azs.rhat(ds)["x"].values, azs.ess(ds, method="bulk")["x"].values,
                      azs.ess(ds, method="tail", prob=0.95)["x"].values)
            for a, b in zip(ours, theirs):
                np.testing.assert_allclose(a, b, rtol=1e-9)
            t_ref = best(ref, args.repeat)
            t_new = best(lambda: rhat_ess(x), args.repeat)
        rows.append((chains, draws, k, t_ref, t_new))
    print("| chains x draws | quantities | arviz-stats (s) | bayesdid vectorised (s) | ratio |")
    print("|---|---:|---:|---:|---:|")
    for chains, draws, k, t_ref, t_new in rows:
        print(f"| {chains} x {draws} | {k} | {t_ref:.2f} | {t_new:.2f} | {t_ref / t_new:.1f}x |")


if __name__ == "__main__":
    main()
