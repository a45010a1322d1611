"""Staggered adoption: Callaway-Sant'Anna with a 999-draw multiplier bootstrap against
``csdid`` on the same data, and the Bayesian event study on the LCCP-shaped panel.

1. CS (doubly robust, never-treated controls, ATT(g, t) + simple/group/dynamic/calendar
   aggregations, 999 Rademacher draws, uniform bands) on a simulated 1,000-unit x
   20-period panel with four cohorts, without and with two covariates. Baseline: csdid
   (``ATTgt(...).fit(bstrap=True, biters=999)`` plus the four ``aggte(bstrap=True)``
   calls) in this process; if csdid is not importable, a plain loop of (g, t) 2x2 OLS
   regressions (statsmodels, no aggregation, no bootstrap) is the baseline instead.
2. ``HierarchicalDiD(event_time=True, leads=6)`` on ``simulate_staggered()`` (278 cities x
   19 years) with its default draws (4 chains x 1000 after 1000 tuning steps).

Each timing is the best of ``--repeat`` runs; machines are noisy, only the ratios travel.

    .venv/bin/python benchmarks/bench_staggered.py [--repeat 2] [--skip-bayes]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import resource
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm

from bayesdid import Panel
from bayesdid.staggered.callaway_santanna import callaway_santanna
from bayesdid.datasets import simulate_staggered

BATCHES = {2005: 150, 2009: 150, 2013: 150, 2017: 150}  # 600 treated, 400 never treated
OUT = Path(__file__).parent / "results" / "bench_staggered.md"

try:  # csdid is not a bayesdid dependency: the baseline falls back when it is absent
    from csdid.att_gt import ATTgt
except ImportError:  # pragma: no cover - depends on the environment
    ATTgt = None


def best_of(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def run_csdid(df: pd.DataFrame, covs: tuple[str, ...]):
    xformla = f"y ~ {' + '.join(covs)}" if covs else None
    np.random.seed(1)  # csdid draws from the global NumPy RNG
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # it prints
        warnings.simplefilter("ignore")
        fit = ATTgt(yname="y", tname="time", idname="id", gname="gvar", data=df,
                    control_group=["nevertreated"], xformla=xformla, cband=True, biters=999)
        fit = fit.fit(est_method="dr", base_period="varying", bstrap=True)
        aggs = {typ: fit.aggte(typec=typ, bstrap=True, biters=999, cband=True).atte
                for typ in ("simple", "group", "dynamic", "calendar")}
    return fit, aggs


def run_loop(df: pd.DataFrame) -> int:
    """Plain baseline: one 2x2 OLS DID per (g, t) with never-treated controls."""
    times = np.sort(df["time"].unique())
    n = 0
    for g in sorted(df.loc[df["gvar"] > 0, "gvar"].unique()):
        for t in times[1:]:
            base = g - 1 if t >= g else t - 1
            sub = df[df["time"].isin([base, t]) & df["gvar"].isin([0, g])]
            x = np.column_stack([np.ones(len(sub)), sub["gvar"] == g, sub["time"] == t,
                                 (sub["gvar"] == g) & (sub["time"] == t)]).astype(float)
            sm.OLS(sub["y"].to_numpy(), x).fit(cov_type="cluster",
                                               cov_kwds={"groups": sub["id"].to_numpy()})
            n += 1
    return n


def bench_cs(repeat: int, lines: list[str]) -> None:
    sim = simulate_staggered(n_units=1000, years=(2002, 2021), batches=BATCHES,
                             n_covariates=2, random_seed=7)
    d = sim.data
    df = pd.DataFrame({"id": pd.factorize(d["city"])[0] + 1, "time": d["year"],
                       "gvar": d["cohort"].fillna(0).astype(int), "y": d["eco_eff"],
                       "x1": d["x1"], "x2": d["x2"]}).astype(float)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    # warm-up (imports, first-call caches) on a small slice, not timed
    small = Panel.from_frame(d[d["city"].isin(d["city"].unique()[:200])], **sim.panel_kwargs)
    callaway_santanna(small, covariates=(), bootstrap=99, random_seed=0)
    baseline = (f"csdid {version('csdid')}" if ATTgt is not None
                else "loop of (g, t) 2x2 OLS (csdid absent)")
    lines += [(f"panel: {len(panel.units)} units x {len(panel.times)} periods, cohorts "
               f"{panel.cohorts}; CS method='dr', never-treated controls, ATT(g, t) + 4 "
               "aggregations, 999 Rademacher multiplier draws, uniform bands; baseline: "
               f"{baseline}"), "",
              ("| covariates | bayesdid CS s | baseline s | ratio baseline / bayesdid | "
               "bayesdid analytic SEs s | max abs diff ATT(g,t) vs csdid |"),
              "|---|---:|---:|---:|---:|---:|"]
    notes = []
    for covs in ((), ("x1", "x2")):
        t_ours, res = best_of(lambda covs=covs: callaway_santanna(
            panel, covariates=covs, bootstrap=999, uniform=True, random_seed=1), repeat)
        t_an, _ = best_of(lambda covs=covs: callaway_santanna(panel, covariates=covs), repeat)
        if ATTgt is not None:
            t_base, (fit, _aggs) = best_of(lambda covs=covs: run_csdid(df, covs), repeat)
            r = fit.results
            theirs = pd.Series(np.asarray(r["att"], float),
                               index=[f"cohort={int(g)}, t={int(t)}"
                                      for g, t in zip(r["group"], r["year"])])
            ours = res.effects().query("estimand == 'att_gt'").set_index("group")["estimate"]
            diff = f"{float((ours.loc[theirs.index] - theirs).abs().max()):.1e}"
        else:  # pragma: no cover
            t_base, _ = best_of(lambda: run_loop(df), repeat)
            diff = "-"
        lines.append(f"| {' + '.join(covs) or 'none'} | {t_ours:.2f} | {t_base:.2f} | "
                     f"{t_base / t_ours:.1f}x | {t_an:.2f} | {diff} |")
        crit = res.info["bootstrap"]["crit"]
        notes.append(f"covariates {' + '.join(covs) or 'none'}: uniform critical values "
                     + ", ".join(f"{k} {v:.2f}" for k, v in crit.items()))
    lines += ["", *notes]


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children (PyMC's chain processes): less
    sensitive than wall time to other jobs on a shared machine."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bench_bayes(lines: list[str]) -> None:
    from bayesdid.did.hierarchical import HierarchicalDiD

    logging.getLogger("pymc").setLevel(logging.WARNING)
    sim = simulate_staggered(random_seed=0)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    truth = sim.truth.set_index(["estimand", "group"])["value"]
    lines += ["", (f"Bayesian event study on {panel.n_obs} rows ({len(panel.units)} units x "
                   f"{len(panel.times)} years), fit defaults (4 chains x 1000 draws after 1000 "
                   "tuning steps, chains in parallel processes); baseline: the same model "
                   "without leads (HierarchicalDiD(event_time=True)), same run"), "",
              ("| model | wall s | sampling s | CPU s | max R-hat | min bulk ESS | event times "
               "| truth inside 95% band |"), "|---|---:|---:|---:|---:|---:|---:|---:|"]
    walls = {}
    for leads in (6, 0):
        model = HierarchicalDiD(event_time=True, leads=leads)
        t0, c0 = time.perf_counter(), cpu_seconds()
        res = model.fit(panel, random_seed=1, progress=False)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        walls[leads] = wall
        sampling = float(res.idata.posterior.attrs.get("sampling_time", np.nan))
        diag = res.diagnostics(warn=False)
        ev = res.effects()
        ev = ev[(ev["estimand"] == "event_time") & ev["group"].str.fullmatch(r"k=-?\d+")]
        tr = np.array([truth.get(("event_time", g), 0.0) for g in ev["group"]])
        covered = float(np.mean((ev["lower"] <= tr) & (tr <= ev["upper"])))
        lines.append(f"| HierarchicalDiD(event_time=True, leads={leads}) | {wall:.1f} | "
                     f"{sampling:.1f} | {cpu:.1f} | {diag['r_hat'].max():.3f} | "
                     f"{diag['ess_bulk'].min():.0f} | {len(ev)} | {covered:.0%} |")
    lines += [f"ratio wall time event study (leads=6) / no leads: {walls[6] / walls[0]:.2f}",
              (f"target < 30 s for the event study: {'met' if walls[6] < 30 else 'NOT met'} "
               "on this run")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-bayes", action="store_true")
    args = parser.parse_args()
    lines: list[str] = []
    bench_cs(args.repeat, lines)
    if not args.skip_bayes:
        bench_bayes(lines)
    text = "\n".join(lines)
    print(text)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(f"`.venv/bin/python benchmarks/bench_staggered.py --repeat {args.repeat}` "
                   f"({time.strftime('%Y-%m-%d')}):\n\n{text}\n")


if __name__ == "__main__":
    main()
