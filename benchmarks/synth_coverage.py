"""Coverage of 95% intervals for the ATT on simulated pilot-zone panels (slow; not a test).

On ``--panels`` panels from :func:`simulate_pilot_zones` (29 provinces, 2004-2020, three
treated from 2017, per-unit effects 0.25 / 0.15 / 0.10, seeds 0..n-1) compare

* the Bayesian synthetic control's 95% HDI (:class:`BayesianSyntheticControl`, partial
  pooling), per unit and pooled, and
* the classical placebo-based interval of :func:`bayesdid.synthetic.synth.synth`
  (ATT +/- 1.96 sd of the placebo-in-space ATTs), per unit and pooled,

against the true ATT. Replications run on local processes through
:func:`bayesdid.parallel.run_replications`.

    .venv/bin/python benchmarks/synth_coverage.py [--panels 50] [--workers 2]

Writes benchmarks/results/synth_coverage.md.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayesdid import Panel
from bayesdid.parallel import run_replications

RESULTS = Path(__file__).parent / "results" / "synth_coverage.md"


def one_panel(seed: int, draws: int, tune: int, noise_rho: float,
              pooling: str = "partial", noise: str = "ar1",
              rho_concentration: float | None = None) -> list[dict]:
    """Fit both methods on one simulated panel; rows of (method, group, truth, interval)."""
    warnings.filterwarnings("ignore")
    logging.getLogger("pymc").setLevel(logging.ERROR)
    from bayesdid.synthetic.bayes_synth import BayesianSyntheticControl, SynthPriors
    from bayesdid.synthetic.synth import synth
    from bayesdid.datasets.simulate_pilot import simulate_pilot_zones

    sim = simulate_pilot_zones(random_seed=seed, noise_rho=noise_rho)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    truth = sim.truth.query("estimand == 'att'").set_index("group")["value"]
    rows = []
    t0 = time.perf_counter()
    priors = (SynthPriors() if rho_concentration is None
              else SynthPriors(rho_concentration=rho_concentration))
    bayes = BayesianSyntheticControl(pooling=pooling, noise=noise, priors=priors).fit(
        panel, draws=draws, tune=tune, chains=2, cores=1, random_seed=seed, progress=False)
    t_bayes = time.perf_counter() - t0
    t0 = time.perf_counter()
    classical = synth(panel, progress=False, random_seed=seed)
    t_classical = time.perf_counter() - t0
    n_div = int(np.asarray(bayes.idata.sample_stats["diverging"].values).sum())
    for method, res, secs in (("bayes_synth", bayes, t_bayes), ("synth", classical, t_classical)):
        table = res.effects().query("estimand == 'att'").set_index("group")
        for group, value in truth.items():
            row = table.loc[group]
            rows.append(dict(seed=seed, method=method, group=group, truth=value,
                             estimate=row["estimate"], lower=row["lower"], upper=row["upper"],
                             seconds=secs, divergences=n_div if method == "bayes_synth" else 0))
    return rows


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(
        kind=np.where(frame["group"] == "overall", "pooled ATT", "per-unit ATT"),
        covered=(frame["lower"] <= frame["truth"]) & (frame["truth"] <= frame["upper"]),
        width=frame["upper"] - frame["lower"], error=frame["estimate"] - frame["truth"])
    return (frame.groupby(["method", "kind"])
            .agg(intervals=("covered", "size"), coverage=("covered", "mean"),
                 mean_width=("width", "mean"), bias=("error", "mean"),
                 rmse=("error", lambda e: float(np.sqrt(np.mean(e**2)))))
            .reset_index())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed .. first-seed + panels - 1 (more seeds to add "
                             "to an earlier run's CSV)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--noise-rho", type=float, default=0.0)
    parser.add_argument("--pooling", choices=["partial", "none"], default="partial")
    parser.add_argument("--noise", choices=["ar1", "iid"], default="ar1",
                        help="the Bayesian model's noise (the simulator's is --noise-rho)")
    parser.add_argument("--rho-concentration", type=float, default=None,
                        help="SynthPriors.rho_concentration (default: the model's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--csv", type=Path, default=None, help="also write every interval")
    args = parser.parse_args()
    t0 = time.perf_counter()
    out = run_replications(one_panel, [(s, args.draws, args.tune, args.noise_rho, args.pooling,
                                        args.noise, args.rho_concentration)
                                       for s in range(args.first_seed,
                                                      args.first_seed + args.panels)],
                           workers=args.workers, desc="panels")
    wall = time.perf_counter() - t0
    frame = pd.DataFrame([r for rows in out for r in rows])
    table = summarise(frame)
    bayes = frame.query("method == 'bayes_synth'")
    per_fit = frame.drop_duplicates(["seed", "method"]).groupby("method")["seconds"].mean()
    text = "\n".join([
        f"Coverage of 95% ATT intervals on {args.panels} simulated pilot-zone panels "
        f"(simulate_pilot_zones seeds {args.first_seed}.."
        f"{args.first_seed + args.panels - 1}: 29 provinces, 2004-2020, 3 "
        f"treated from 2017, effects 0.25/0.15/0.10, noise sd 0.03, noise_rho "
        f"{args.noise_rho}).",
        "",
        f"Bayesian SC: BayesianSyntheticControl(pooling={args.pooling!r}, "
        f"noise={args.noise!r}) (concentration 0.3, rho_concentration "
        f"{args.rho_concentration or 'default'}), 2 chains x {args.draws} draws after {args.tune} tuning, 95% HDI. "
        f"Classical: bayesdid.synthetic.synth.synth (ADH weights on all pre-period "
        f"outcomes), interval ATT +/- 1.96 sd(placebo-in-space ATTs).",
        "",
        table.to_markdown(index=False, floatfmt=".3f"),
        "",
        f"Bayesian fits with any divergence: {int((bayes.drop_duplicates('seed')['divergences'] > 0).sum())}"
        f" of {args.panels}. Mean seconds per fit: "
        + ", ".join(f"{m} {s:.1f}" for m, s in per_fit.items())
        + f"; wall {wall:.0f} s with {args.workers} workers on a shared 2-core machine "
        "(timings inflated by other jobs).",
        "",
        "Run: `.venv/bin/python benchmarks/synth_coverage.py --panels "
        f"{args.panels} --first-seed {args.first_seed} --workers {args.workers} "
        f"--noise-rho {args.noise_rho} "
        f"--noise {args.noise} --pooling {args.pooling}"
        + (f" --rho-concentration {args.rho_concentration}" if args.rho_concentration else "")
        + "`",
    ])
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    if args.csv is not None:
        frame.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
