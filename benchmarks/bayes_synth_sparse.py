"""Bayesian synthetic control with few pre-periods, many donors and a 1e4-scale outcome.

Simulated panels (:func:`bayesdid.datasets.simulate_synth.simulate_sparse_synth`): 50
donors from a factor model, 9 pre-periods, 5 post-periods, outcome ~1e4, the treated unit
a convex combination of 3 donors plus noise. For each seed, ``BayesianSyntheticControl()``
at its defaults (4 chains x 1000 draws after 1000 tuning) against the classical SC with
default predictors (every pre-period outcome; no V search):

* ``corr``: correlation of the posterior-mean weights with the true weights (classical
  SC's in ``corr_cl``);
* ``rmspe ratio``: pre-period RMSPE of the posterior-mean synthetic path over the
  classical SC's (the classical fit minimises it, so >= 1 is expected; the true weights
  score ``truth ratio``);
* ``R-hat``, ``ESS``: max rank-normalised R-hat and min bulk ESS over the ATT and every
  weight with posterior mean > 0.05 (arviz-stats); ``all`` columns over every weight,
  sigma and every reported effect (the package's own check is stricter still);
* divergences, wall seconds, ATT (truth -500) and whether its 95% HDI covers the truth.

Prop 99 (38 donors, 19 pre-periods) at the defaults, several seeds: min bulk ESS and max
R-hat over weights, sigma and every effect, divergences, time, ATT and 95% HDI, and the
correlation of the posterior-mean weights with ADH's published weights.

Run with the current code, and with the code before the change for a baseline (same
script, PYTHONPATH pointing at a checkout of the old ``src``)::

    .venv/bin/python benchmarks/bayes_synth_sparse.py [--seeds 10] [--prop99 3]

Writes benchmarks/results/bayes_synth_sparse[_<label>].md.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import arviz_stats as azs
import numpy as np
import pandas as pd

from bayesdid import Panel
from bayesdid.synthetic.bayes_synth import BayesianSyntheticControl
from bayesdid.synthetic.synth import synth
from bayesdid.datasets import info, load
from bayesdid.datasets.simulate_synth import simulate_sparse_synth

RESULTS = Path(__file__).parent / "results"
ADH_WEIGHTS = {"Utah": 0.334, "Nevada": 0.235, "Montana": 0.202, "Colorado": 0.161,
               "Connecticut": 0.068}


def _diag(res, big: np.ndarray) -> dict:
    post = res.idata.posterior
    w = post["weight"].isel(unit=0)
    att = post["effect"].sel(effect_id="att|overall")
    rh_w, ess_w = azs.rhat(w).values, azs.ess(w, method="bulk").values
    rh_att, ess_att = float(azs.rhat(att)), float(azs.ess(att, method="bulk"))
    eff, sig = post["effect"], post["sigma"]
    rh_all = max(np.nanmax(rh_w), np.nanmax(azs.rhat(eff).values), float(azs.rhat(sig).max()))
    ess_all = min(np.nanmin(ess_w), np.nanmin(azs.ess(eff, method="bulk").values),
                  float(azs.ess(sig, method="bulk").min()))
    stats = res.idata.sample_stats
    return dict(rhat=max(rh_att, np.nanmax(rh_w[big])), ess=min(ess_att, np.nanmin(ess_w[big])),
                rhat_att=rh_att, ess_att=ess_att, rhat_all=rh_all, ess_all=ess_all,
                div=int(stats["diverging"].sum()), steps=float(stats["n_steps"].mean()))


def _rmspe(path: pd.DataFrame) -> float:
    """Pre-period RMSPE of the posterior-mean synthetic path (``SynthResult.path()``)."""
    pre = path[path["pre_period"]]
    return float(np.sqrt(((pre["observed"] - pre["synthetic"]) ** 2).mean()))


def simulated(seed: int, design: str) -> dict:
    sim = simulate_sparse_synth(true_donors=design, random_seed=seed)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    truth = sim.params["true_weights"]
    cl = synth(panel, placebo=False)
    w_cl = cl.weights["treated"].reindex(truth.index)
    rm_cl = float(cl.pre_rmspe.iloc[0])
    t0 = time.perf_counter()
    res = BayesianSyntheticControl().fit(panel, random_seed=seed, progress=False)
    wall = time.perf_counter() - t0
    wb = res.weights().set_index("donor")["mean"].reindex(truth.index)
    rm_b = _rmspe(res.path())
    y = sim.data.pivot(index="year", columns="unit", values="y")
    n_pre = int((y.index < sim.params["start"]).sum())
    rm_truth = float(np.sqrt(((y["treated"] - y[truth.index] @ truth)[:n_pre] ** 2).mean()))
    att = res.effect("att", "overall")
    big = (res.weights().set_index("donor")["mean"].reindex(
        [str(d) for d in res.idata.posterior["donor"].values]) > 0.05).to_numpy()
    true_att = float(sim.truth["value"].iloc[0])
    return dict(seed=seed, corr=float(np.corrcoef(wb, truth)[0, 1]),
                corr_cl=float(np.corrcoef(w_cl, truth)[0, 1]),
                ratio=rm_b / rm_cl if rm_cl > 1e-6 else np.inf,
                truth_ratio=rm_truth / rm_cl if rm_cl > 1e-6 else np.inf,
                rmspe=rm_b, rmspe_cl=rm_cl, n_big=int(big.sum()), wall=wall,
                att=float(att["estimate"]), covered=bool(att["lower"] <= true_att <= att["upper"]),
                **_diag(res, big))


def prop99(seed: int) -> dict:
    panel = Panel.from_frame(load("prop99"), **info("prop99")["panel_kwargs"])
    t0 = time.perf_counter()
    res = BayesianSyntheticControl().fit(panel, random_seed=seed, progress=False)
    wall = time.perf_counter() - t0
    w = res.weights().set_index("donor")["mean"]
    adh = pd.Series(ADH_WEIGHTS).reindex(w.index, fill_value=0.0)
    big = (w.reindex([str(d) for d in res.idata.posterior["donor"].values]) > 0.05).to_numpy()
    att = res.effect("att", "overall")
    top = ", ".join(f"{d} {m:.2f}" for d, m in w.head(5).items())
    return dict(seed=seed, wall=wall, att=float(att["estimate"]), lower=float(att["lower"]),
                upper=float(att["upper"]), corr_adh=float(np.corrcoef(w, adh)[0, 1]),
                top=top, **_diag(res, big))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--random-seeds", type=int, default=5,
                        help="seeds of the 'random' design (true donors anywhere)")
    parser.add_argument("--prop99", type=int, default=3)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pymc").setLevel(logging.ERROR)
    lines = [f"`BayesianSyntheticControl()` defaults: {BayesianSyntheticControl()!r}; "
             "4 chains x 1000 draws after 1000 tuning; wall time includes compile and "
             "post-processing, on a shared 2-core machine.", ""]
    for design, n in (("edge", args.seeds), ("random", args.random_seeds)):
        if n == 0:
            continue
        rows = []
        for seed in range(n):
            rows.append(simulated(seed, design))
            print(rows[-1], flush=True)
        df = pd.DataFrame(rows)
        lines += [f"### Simulated: 50 donors, 9 pre-periods, 3 true donors, scale 1e4, "
                  f"true donors '{design}'", "",
                  "| seed | corr | corr_cl | rmspe ratio | truth ratio | R-hat | ESS | "
                  "R-hat all | ESS all | div | wall s | ATT | HDI covers -500 |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            lines.append(
                f"| {r['seed']} | {r['corr']:.3f} | {r['corr_cl']:.3f} | {r['ratio']:.2f} | "
                f"{r['truth_ratio']:.2f} | {r['rhat']:.3f} | {r['ess']:.0f} | "
                f"{r['rhat_all']:.3f} | {r['ess_all']:.0f} | {r['div']} | {r['wall']:.0f} | "
                f"{r['att']:.0f} | {r['covered']} |")
        finite = df["ratio"].replace(np.inf, np.nan)
        lines += ["", f"Targets (corr > 0.8, rmspe ratio <= 1.3, R-hat <= 1.01, ESS >= 400) "
                  f"met in {int((df['corr'] > 0.8).sum())}, "
                  f"{int((finite <= 1.3).sum())} (of {int(finite.notna().sum())} with a "
                  f"non-zero classical RMSPE), {int((df['rhat'] <= 1.01).sum())}, "
                  f"{int((df['ess'] >= 400).sum())} of {len(df)} panels; median corr "
                  f"{df['corr'].median():.3f} (classical {df['corr_cl'].median():.3f}), median "
                  f"rmspe ratio {finite.median():.2f}, median wall {df['wall'].median():.0f} s; "
                  f"HDI covers the true ATT in {int(df['covered'].sum())} of {len(df)}.", ""]
    if args.prop99:
        rows = []
        for seed in range(1, args.prop99 + 1):
            rows.append(prop99(seed))
            print(rows[-1], flush=True)
        lines += ["### Prop 99 (California; 38 donors, 19 pre-periods), defaults", "",
                  "| seed | min bulk ESS (all) | max R-hat (all) | min ESS (ATT, w > .05) | "
                  "max R-hat (ATT, w > .05) | div | wall s | ATT | 95% HDI | corr ADH | "
                  "top weights |", "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"]
        for r in rows:
            lines.append(
                f"| {r['seed']} | {r['ess_all']:.0f} | {r['rhat_all']:.3f} | {r['ess']:.0f} | "
                f"{r['rhat']:.3f} | {r['div']} | {r['wall']:.0f} | {r['att']:.1f} | "
                f"[{r['lower']:.1f}, {r['upper']:.1f}] | {r['corr_adh']:.2f} | {r['top']} |")
    text = "\n".join(lines)
    print(text)
    out = RESULTS / f"bayes_synth_sparse{'_' + args.label if args.label else ''}.md"
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
