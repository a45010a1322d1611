"""Calibration of HierarchicalDiD's model terms on zoo panels (``bayesdid.calibration``).

On LCCP-shaped zoo panels (278 x 19, :func:`bayesdid.calibration.zoo_panel`) fits, per panel,
the methods asked for (``--methods``, default: all):

* ``hierarchical_did[ar1]``: the default model (``random_effects="auto"``);
* ``hierarchical_did[ar1,none]``: ``random_effects=None``, the default before 2026-12-04;
* ``hierarchical_did[ar1,classes]``: ``unit_variance="classes"`` (variance classes of units);
* ``hierarchical_did[ar1,region^year]``: ``random_effects="region^year"`` (Gaussian
  region x year effects with their own sd, integrated out);
* ``hierarchical_did[ar1,auto]``: ``random_effects="auto"`` named (region x year effects
  only where the first fit's region x period residual check flags; the records'
  ``random_effects`` column says which term the returned fit used);

and prints coverage of the 95% interval of the overall ATT (binomial se), mean width, bias,
RMSE and the share of panels whose posterior predictive checks flagged something, per DGP
and method. Replications through ``bayesdid.parallel.run_replications``.

    .venv/bin/python benchmarks/model_options_zoo.py --panels 20 --dgps hetero_units weights \
        --methods "hierarchical_did[ar1]" "hierarchical_did[ar1,classes]"
    .venv/bin/python benchmarks/model_options_zoo.py --panels 20 --dgps region_shocks ar1 \
        --methods "hierarchical_did[ar1]" "hierarchical_did[ar1,region^year]"
    .venv/bin/python benchmarks/model_options_zoo.py --panels 100 --dgps ar2 \
        --methods "hierarchical_did[ar1,auto]" --out ar2.csv     # one CSV per DGP
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayesdid.calibration import ZOO_DGPS, coverage_table, zoo_panel
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.parallel import run_replications

# the default is random_effects="auto" (since 2026-12-04): [ar1] and [ar1,auto] are the same
# model; [ar1,none] is the default before then
METHODS = {"hierarchical_did[ar1]": {},
           "hierarchical_did[ar1,none]": {"random_effects": None},
           "hierarchical_did[ar1,classes]": {"unit_variance": "classes"},
           "hierarchical_did[ar1,region^year]": {"random_effects": "region^year"},
           "hierarchical_did[ar1,auto]": {"random_effects": "auto"}}


def replicate(seed: int, dgp: str, draws: int, tune: int,
              methods: tuple[str, ...] = tuple(METHODS)) -> list[dict]:
    panel, truth = zoo_panel(dgp, seed)
    out = []
    for method in methods:
        kw = METHODS[method]
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = HierarchicalDiD(**kw).fit(panel, draws=draws, tune=tune, chains=2, cores=1,
                                            random_seed=seed, progress=False)
        row = res.effect("att", "overall")
        flags = [r["check"] for r in (res.info.get("ppc") or ()) if r["flagged"]]
        out.append(dict(seed=seed, dgp=dgp, method=method, estimate=float(row["estimate"]),
                        lower=float(row["lower"]), upper=float(row["upper"]), truth=truth,
                        divergences=0, ppc_flags=";".join(flags), failure="",
                        seconds=time.perf_counter() - t0,
                        converged=bool(res.info["convergence"]["ok"]),
                        random_effects=(res.info.get("random_effects") or {}).get(
                            "used", kw.get("random_effects"))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", type=int, default=20)
    parser.add_argument("--dgps", nargs="+", default=["hetero_units", "region_shocks"],
                        choices=ZOO_DGPS)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--out", type=Path, default=None, help="CSV of per-panel records")
    args = parser.parse_args()
    logging.getLogger("pymc").setLevel(logging.ERROR)
    start = time.perf_counter()
    jobs = [(s, dgp, args.draws, args.tune, tuple(args.methods)) for dgp in args.dgps
            for s in range(args.first_seed, args.first_seed + args.panels)]
    recs = pd.DataFrame([r for rs in run_replications(replicate, jobs, workers=args.workers,
                                                      desc="panels") for r in rs])
    if args.out:
        recs.to_csv(args.out, index=False)
    rows = []
    for (dgp, method), sub in recs.groupby(["dgp", "method"], sort=False):
        row = coverage_table(sub).iloc[0].drop("divergences").to_dict()
        rows.append({"dgp": dgp, **row, "ppc_flagged": (sub["ppc_flags"] != "").mean(),
                     "converged": sub["converged"].mean(),
                     "seconds_per_fit": sub["seconds"].mean()})
    print(f"{args.panels} panels per DGP (seeds {args.first_seed}..{args.first_seed + args.panels - 1}), 2 chains x {args.draws}"
          f" draws (+{args.tune} tune), {time.perf_counter() - start:.0f} s on "
          f"{args.workers} workers")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    main()
