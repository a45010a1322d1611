"""Few-treated-unit estimators on Prop 99 and a pilot-zone-shaped panel: wall times and ratios.

Timed (classical, in this process):

* ADH synthetic control on Prop 99 plus its 38 placebo-in-space refits -- with the default
  predictors (all pre-period outcomes) and with a V search (lags 1975/1980/1988 + the
  1980-88 mean, nested Nelder-Mead);
* synthetic DID on Prop 99 with 200 *placebo* draws: Prop 99 has one treated unit, so the
  bootstrap (which resamples units and needs more than one treated unit) is not defined;
  200 bootstrap draws are timed on the pilot-zone-shaped panel (3 treated of 29) instead;
* HCW regression control with AICc over 26 donors (pilot-zone-shaped panel, 13 pre-years),
  with the default cross-validated SE (the subset search redone 13 times per unit) and with
  the in-sample prediction SE.

Baseline: one synthetic-control fit on Prop 99 (the default predictors) in the same run;
every figure is also printed as a multiple of it (machines are noisy: ratios travel).
The Bayesian SC timing (4 chains x 1000 draws) is a hook, run when
``bayesdid.synthetic.bayes_synth.BayesianSyntheticControl`` imports.

    .venv/bin/python benchmarks/bench_synth.py [--reps 3] [--skip-bayes]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from bayesdid import Panel
from bayesdid.synthetic.regression_control import regression_control
from bayesdid.synthetic.sdid import synthdid
from bayesdid.synthetic.synth import synth
from bayesdid.datasets import info, load

OUT = Path(__file__).parent / "results" / "bench_synth.md"


def best_of(fn, reps: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def pilot_panel() -> Panel:
    """The pilot-zone simulator when present, else an equivalent 3-factor panel."""
    try:
        from bayesdid.datasets.simulate_pilot import simulate_pilot_zones
    except ImportError:
        rng = np.random.default_rng(0)
        import pandas as pd
        T, n = 17, 29
        f = np.cumsum(rng.normal(0, 0.3, (T, 3)), axis=0)
        y = rng.normal(0, 1, n) + f @ rng.normal(1, 0.5, (n, 3)).T + rng.normal(0, 0.1, (T, n))
        d = np.zeros((T, n), int)
        d[13:, :3] = 1
        df = pd.DataFrame({"unit": np.repeat([f"p{i}" for i in range(n)], T),
                               "year": np.tile(np.arange(2004, 2021), n),
                               "y": (y + d).T.ravel(), "d": d.T.ravel()})
        return Panel.from_frame(df, unit="unit", time="year", outcome="y", treat="d")
    sim = simulate_pilot_zones(random_seed=0)
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


# ------------------------------------------------------------------ Bayesian hook
def bench_bayesian_sc(panel: Panel, draws: int = 1000, chains: int = 4):
    """BAYESIAN SC HOOK (wired by the lead): 4 chains x 1000 draws on Prop 99.

    Returns ``(seconds, result)`` or ``None`` when the Bayesian module is not available.
    """
    try:
        from bayesdid.synthetic.bayes_synth import BayesianSyntheticControl
    except ImportError:
        return None
    model = BayesianSyntheticControl()
    model.fit(panel, draws=50, tune=50, chains=1, random_seed=0, progress=False)  # compile
    t0 = time.perf_counter()
    res = model.fit(panel, draws=draws, tune=1000, chains=chains, random_seed=1, progress=False)
    return time.perf_counter() - t0, res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="best of this many runs")
    parser.add_argument("--skip-bayes", action="store_true")
    args = parser.parse_args()
    logging.getLogger("pymc").setLevel(logging.WARNING)
    prop99 = Panel.from_frame(load("prop99"), **info("prop99")["panel_kwargs"])
    pilot = pilot_panel()
    synthdid(prop99, se=None)  # JIT-compile (or load) the Frank-Wolfe kernel first
    r = args.reps
    rows: list[tuple[str, float, str]] = []

    base, fit = best_of(lambda: synth(prop99, placebo=False, progress=False), r)
    rows.append(("SC, one fit (baseline)", base,
                 f"ATT {fit.effect()['estimate']:.2f}"))
    t, res = best_of(lambda: synth(prop99, progress=False), r)
    rows.append(("SC + 38 placebo refits (default predictors)", t,
                 f"ATT {res.effect()['estimate']:.2f}, p = {res.p_value['California']:.3f}"))
    vkw = {"lags": [1975, 1980, 1988], "outcome_means": [(1980, 1988)], "progress": False}
    t, res = best_of(lambda: synth(prop99, **vkw), 1)
    rows.append(("SC + 38 placebo refits (V search, 4 predictors)", t,
                 f"ATT {res.effect()['estimate']:.2f}, p = {res.p_value['California']:.3f}"))
    t, res = best_of(lambda: synthdid(prop99, se=None), r)
    rows.append(("SDID, point estimate", t, f"{res.estimate:.3f}"))
    t, res = best_of(lambda: synthdid(prop99, se="placebo", replications=200,
                                      progress=False), r)
    rows.append(("SDID + 200 placebo draws (Prop 99)", t,
                 f"{res.estimate:.3f} (se {res.se:.2f})"))
    t, res = best_of(lambda: synthdid(pilot, se="bootstrap", replications=200,
                                      progress=False), r)
    rows.append(("SDID + 200 bootstrap draws (pilot panel, 3 treated)", t,
                 f"{res.estimate:.3f} (se {res.se:.3f})"))
    t, res = best_of(lambda: regression_control(pilot, progress=False), 1)
    rows.append(("HCW, AICc over 26 donors, 3 units, cv SE", t,
                 (f"ATT {res.effect()['estimate']:.3f}, sizes "
                  f"{[len(c) - 1 for c in res.coefficients.values()]}")))
    t, res = best_of(lambda: regression_control(pilot, se="prediction", progress=False), r)
    rows.append(("HCW, AICc over 26 donors, 3 units, prediction SE", t,
                 f"ATT {res.effect()['estimate']:.3f}"))

    if not args.skip_bayes:
        out = bench_bayesian_sc(prop99)
        if out is not None:
            t, res = out
            rows.append(("Bayesian SC, 4 chains x 1000 draws (Prop 99)", t,
                         f"ATT {res.effect()['estimate']:.2f}"))

    lines = ["| task | seconds | x baseline | result |", "|---|---:|---:|---|"]
    for name, secs, note in rows:
        lines.append(f"| {name} | {secs:.3f} | {secs / base:.1f} | {note} |")
    text = (f"# bench_synth\n\nBest of {r} run(s) per row (V search and cv-SE rows: 1 run); "
            "baseline = one SC fit on Prop 99. Measured on a shared 2-core machine under load: "
            "absolute seconds are inflated, ratios are what travel.\n\n"
            + "\n".join(lines) + "\n")
    print(text)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(text)


if __name__ == "__main__":
    main()
