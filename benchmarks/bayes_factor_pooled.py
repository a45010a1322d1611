"""BayesianFactorDiD cell effects: partially pooled (``effects="pooled"``) vs unpooled imputation.

Panels: :func:`bayesdid.datasets.simulate_factor_panel` defaults (40 units x 20 periods, 8
treated in cohorts 13 / 15 / 17, two factors whose loadings are +1 sd for treated units)
with ``effect_slope=0.2``: the known effect of cell (cohort, event time k) is
``3 + 0.2 k``, the same for every unit, so each cohort x event-time cell (2-3 units) has a
known truth. Both estimators fit each panel (``--chains`` x ``--draws``, 95% HDI); per cell:
coverage, width, error; per panel: the overall ATT. The pooled interval width over the
unpooled one is taken cell by cell.

    PYTHONPATH=src python benchmarks/bayes_factor_pooled.py --n 20 \
        --out benchmarks/results/bayes_factor_pooled.md
"""

from __future__ import annotations

import argparse
import re
import time
import warnings

import numpy as np
import pandas as pd

from bayesdid import BayesianFactorDiD, Panel
from bayesdid.datasets import simulate_factor_panel

SLOPE = 0.2


def one_panel(seed: int, args) -> list[dict]:
    sim = simulate_factor_panel(effect_slope=SLOPE, seed=seed)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    rows = []
    for effects in ("imputation", "pooled"):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = BayesianFactorDiD(effects=effects).fit(
                panel, draws=args.draws, tune=args.draws, chains=args.chains,
                random_seed=seed, progress=False)
        seconds = time.perf_counter() - t0
        table = res.effects()
        for _, r in table.iterrows():
            cell = re.fullmatch(r"cohort=(\d+), k=(\d+)", str(r["group"]))
            if r["estimand"] == "event_time" and cell:
                truth = 3.0 + SLOPE * int(cell.group(2))
                kind = "cell"
            elif r["group"] == "overall":
                truth, kind = sim.att, "overall"
            else:
                continue
            rows.append({"seed": seed, "effects": effects, "kind": kind, "group": r["group"],
                         "n_obs": r["n_obs"], "truth": truth, "estimate": r["estimate"],
                         "lower": r["lower"], "upper": r["upper"],
                         "converged": res.info["convergence"]["ok"], "seconds": seconds})
    return rows


def summarise(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = raw.assign(error=raw["estimate"] - raw["truth"],
                     covered=(raw["lower"] <= raw["truth"]) & (raw["truth"] <= raw["upper"]),
                     width=raw["upper"] - raw["lower"])
    g = raw.groupby(["kind", "effects"], sort=False)
    table = pd.DataFrame({
        "estimates": g.size(), "bias": g["error"].mean(),
        "rmse": g["error"].apply(lambda e: float(np.sqrt(np.mean(e ** 2)))),
        "coverage_95": g["covered"].mean(), "mean_width": g["width"].mean(),
        "converged": g["converged"].mean(), "seconds_per_fit": g["seconds"].mean(),
    }).reset_index()
    cells = raw[raw["kind"] == "cell"].pivot_table(index=["seed", "group"], columns="effects",
                                                    values="width")
    ratio = cells["pooled"] / cells["imputation"]
    ratios = pd.DataFrame([{"cells": len(ratio), "median_width_ratio": ratio.median(),
                            "mean_width_ratio": ratio.mean(),
                            "share_narrower": (ratio < 1).mean()}])
    return table, ratios


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    start = time.perf_counter()
    rows = []
    for seed in range(args.n):
        rows += one_panel(3000 + seed, args)
        print(seed, flush=True)
    raw = pd.DataFrame(rows)
    table, ratios = summarise(raw)
    text = (table.to_markdown(index=False, floatfmt=".3f") + "\n\nPooled / unpooled 95% "
            "interval width, cell by cell:\n\n" + ratios.to_markdown(index=False, floatfmt=".3f"))
    print(text)
    if args.out:
        raw.to_csv(args.out.replace(".md", "_raw.csv"), index=False)
        with open(args.out, "w") as fh:
            fh.write("# BayesianFactorDiD: partially pooled vs unpooled cell effects\n\n"
                     f"N = {args.n} panels (seeds 3000-{2999 + args.n}); see the module "
                     "docstring of `benchmarks/bayes_factor_pooled.py` for the design. "
                     f"{args.chains} chains x {args.draws} draws ({args.draws} tune), 95% "
                     f"HDI. Wall time {time.perf_counter() - start:.0f} s on the shared "
                     "machine. Produced by `PYTHONPATH=src python "
                     f"benchmarks/bayes_factor_pooled.py --n {args.n} --chains {args.chains} "
                     f"--draws {args.draws} --out {args.out}` (raw rows beside it).\n\n"
                     "`cell`: cohort x event-time effects (truth 3 + 0.2 k); `overall`: "
                     "the ATT over treated cells.\n\n" + text + "\n")


if __name__ == "__main__":
    main()
