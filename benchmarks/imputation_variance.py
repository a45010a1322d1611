"""BJS imputation: coverage of the 95% intervals from the BJS leave-out and the Gardner SEs.

Two designs, each simulated ``--reps`` times (seeds 0..reps-1), unit + year effects, iid
N(0, 0.5^2) noise, heterogeneous effects ``tau_it = 1 + 0.1 k + 0.05 (g - 2003) + eta_i``
(``eta_i`` ~ N(0, 0.2^2) per treated unit, drawn afresh each replication):

* ``standard``: 100 units x 2000-2010, cohorts 2004/2006/2008 of 25 units, 25 never treated;
* ``one_left``: 50 units x 2000-2010, cohorts 2003-2009 at random, one unit adopting in 2010
  and one never treated, so 2010 has a single untreated unit (the shape of issue 13, on which
  pyfixest's did2s crashed);
* ``one_left_cut``: the same panels ending in 2009 (two untreated units in the last year).

The target of each interval is the realised average of ``tau`` over the estimand's treated
observations. Printed and written to benchmarks/results/imputation_variance.md: coverage
(share of intervals holding the target), mean SE / empirical SD of (estimate - target) for
the overall ATT, the mean over event-time rows, and rows leaning on the single-unit year.

Also timed, in the same process: ``imputation()`` (all rows, both SEs) against one
``pyfixest.did2s`` call (overall ATT only; the former implementation made three) on the
default LCCP-like simulated panels of 278 and 2000 cities x 19 years, where did2s runs.

    .venv/bin/python benchmarks/imputation_variance.py [--reps 400]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bayesdid import Panel
from bayesdid.classical import imputation
from bayesdid.did._fixest import pf
from bayesdid.datasets import simulate_staggered

RESULTS = Path(__file__).parent / "results" / "imputation_variance.md"
YEARS = np.arange(2000, 2011)


def simulate(design: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A panel and the true effect of every treated row."""
    rng = np.random.default_rng(seed)
    if design == "one_left_cut":
        df, truth = simulate("one_left", seed)
        return df[df["year"] <= 2009], truth[truth["year"] <= 2009]
    if design == "standard":
        cohorts = np.r_[np.repeat([2004.0, 2006.0, 2008.0], 25), np.full(25, np.nan)]
    else:
        cohorts = np.r_[rng.choice(np.arange(2003, 2010), 48).astype(float), 2010.0, np.nan]
    n = cohorts.size
    alpha, lam, eta = rng.normal(size=n), rng.normal(size=YEARS.size), rng.normal(0, 0.2, n)
    unit, year = np.repeat(np.arange(n), YEARS.size), np.tile(YEARS, n)
    g = cohorts[unit]
    treated = year >= g  # False for NaN cohorts
    tau = np.where(treated, 1.0 + 0.1 * (year - g) + 0.05 * (g - 2003) + eta[unit], 0.0)
    y = alpha[unit] + lam[year - YEARS[0]] + tau + rng.normal(0, 0.5, unit.size)
    df = pd.DataFrame({"unit": unit, "year": year, "y": y, "g": g})
    truth = df.loc[treated, ["year", "g"]].assign(tau=tau[treated], k=lambda d: d.year - d.g)
    return df, truth


def targets(truth: pd.DataFrame) -> dict[tuple[str, str], float]:
    out = {("att", "overall"): truth["tau"].mean()}
    out |= {("att", f"cohort={int(c)}"): v for c, v in truth.groupby("g")["tau"].mean().items()}
    out |= {("event_time", f"k={int(k)}"): v for k, v in truth.groupby("k")["tau"].mean().items()}
    return out


def run(design: str, reps: int) -> pd.DataFrame:
    rows = []
    for seed in range(reps):
        df, truth = simulate(design, seed)
        panel = Panel.from_frame(df, unit="unit", time="year", outcome="y", cohort="g")
        tab = imputation(panel).effects().set_index(["estimand", "group"])
        q = (tab["upper"] - tab["estimate"]) / tab["se_or_sd"]
        for key, target in targets(truth).items():
            if key not in tab.index:
                continue
            r = tab.loc[key]
            for kind in ("bjs", "gardner"):
                se = r[f"se_{kind}"]
                rows.append({"design": design, "estimand": key[0], "group": key[1],
                             "vcov": kind, "err": r["estimate"] - target, "se": se,
                             "covered": abs(r["estimate"] - target) <= q[key] * se})
    return pd.DataFrame(rows)


def summarise(res: pd.DataFrame) -> pd.DataFrame:
    res = res.dropna(subset=["se"])
    out = []
    for (design, vcov), d in res.groupby(["design", "vcov"]):
        def stats(sub):
            by = sub.groupby("group")
            return (float(sub["covered"].mean()),
                    float((by["se"].mean() / by["err"].std()).mean()))

        ov = d[(d.estimand == "att") & (d.group == "overall")]
        ev = d[d.estimand == "event_time"]
        last_k = max(ev["group"], key=lambda g: int(g[2:]))
        late = ev[ev.group == last_k]
        for name, sub in (("att overall", ov), ("event time (mean over k)", ev),
                          ("event time, last k", late)):
            cov, ratio = stats(sub)
            name = name.replace("last k", last_k)
            out.append({"design": design, "vcov": vcov, "rows": name, "coverage": cov,
                        "SE / SD": ratio, "n": len(sub)})
    return pd.DataFrame(out)


def timing() -> pd.DataFrame:
    rows = []
    for n in (278, 2000):
        sim = simulate_staggered(n_units=n, random_seed=1)
        panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
        df = panel.data.assign(d=lambda x: x["treated"].astype(bool),
                               uid=lambda x: pd.factorize(x["city"])[0])
        runs = {"imputation()": lambda: imputation(panel),
                "pf.did2s (overall only)": lambda: pf.did2s(
                    df, yname="eco_eff", first_stage="~ x1 + x2 + x3 | uid + year",
                    second_stage="~ d", treatment="d", cluster="uid")}
        secs = {}
        for name, fn in runs.items():
            fn()  # warm-up (numba compilation in pyfixest)
            t0 = time.perf_counter()
            fn()
            secs[name] = time.perf_counter() - t0
        base = secs["pf.did2s (overall only)"]
        rows += [{"rows": panel.n_obs, "run": k, "seconds": v, "ratio to did2s": v / base}
                 for k, v in secs.items()]
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=400)
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # small-cohort and single-cluster warnings every fit
    t0 = time.perf_counter()
    res = pd.concat([run(d, args.reps) for d in ("standard", "one_left", "one_left_cut")])
    table = summarise(res)
    wall = time.perf_counter() - t0
    text = (f"# BJS imputation: interval coverage, BJS leave-out vs Gardner SE\n\n"
            f"{args.reps} replications per design, nominal 95% (t, clusters - 1 df); "
            f"wall {wall:.0f} s.\n`one_left`: k=7 is cohort 2003 in 2010, imputed from the "
            "single untreated unit; `one_left_cut` drops 2010.\n\n"
            + table.to_markdown(index=False, floatfmt=".3f") + "\n\n## Wall time\n\n"
            + timing().to_markdown(index=False, floatfmt=".3f") + "\n")
    print(text)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
