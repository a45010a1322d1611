"""Calibration zoo: 95% interval coverage of the overall ATT on LCCP-shaped panels whose errors
break the default model's assumptions one way at a time (see ``bayesdid.calibration``).

Per DGP and method: coverage (with its binomial se), mean width, bias, RMSE, and for the
Bayesian fits how often the posterior predictive checks flagged the panel. Replications go
through ``bayesdid.parallel.run_replications`` (local processes, or ``--scheduler`` for Dask).

    .venv/bin/python benchmarks/calibration_zoo.py --panels 100 --workers 2
    .venv/bin/python benchmarks/calibration_zoo.py --panels 8 --dgps ar1 ar2 --out zoo.csv
    .venv/bin/python benchmarks/calibration_zoo.py --panels 20 --methods hierarchical_did[ar1] \
        hierarchical_did[ar1,cluster] twfe[CRV1] --out zoo_robust.csv
    .venv/bin/python benchmarks/calibration_zoo.py --from-csv ar1.csv ar2.csv   # table only
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bayesdid.calibration import ZOO_DGPS, ZOO_METHODS, coverage_table, run_zoo

RESULTS = Path(__file__).parent / "results" / "calibration_zoo.md"


def zoo_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (DGP, method): coverage_table's columns plus the share of PPC flags."""
    rows = []
    for (dgp, method), sub in records.groupby(["dgp", "method"], sort=False):
        row = coverage_table(sub).iloc[0].drop("divergences")
        failed = sub["failure"].astype("string").fillna("").ne("")
        row["failed"] = int(failed.sum())  # counted as not covering
        row["ppc_flagged"] = sub["ppc_flags"].astype("string").fillna("").ne("").mean() \
            if method.startswith("hierarchical") else np.nan
        rows.append({"dgp": dgp, **row.to_dict()})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", type=int, default=100)
    parser.add_argument("--dgps", nargs="+", default=list(ZOO_DGPS), choices=ZOO_DGPS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scheduler", default=None, help="Dask scheduler address")
    parser.add_argument("--methods", nargs="+", default=list(ZOO_METHODS), choices=ZOO_METHODS)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--out", default=None, help="CSV file for the per-panel records")
    parser.add_argument("--write", action="store_true", help=f"write the table to {RESULTS}")
    parser.add_argument("--from-csv", nargs="+", default=None, metavar="CSV",
                        help="print the table of saved per-panel records (runs nothing)")
    args = parser.parse_args()
    if args.from_csv:
        records = pd.concat([pd.read_csv(f) for f in args.from_csv], ignore_index=True)
        print(zoo_table(records).to_markdown(index=False, floatfmt=".4f"))
        return
    logging.getLogger("pymc").setLevel(logging.ERROR)
    start = time.perf_counter()
    records = run_zoo(args.panels, args.dgps, workers=args.workers, client=args.scheduler,
                      draws=args.draws, tune=args.tune, methods=args.methods)
    elapsed = time.perf_counter() - start
    if args.out:
        records.to_csv(args.out, index=False)
    table = zoo_table(records).to_markdown(index=False, floatfmt=".4f")
    head = (f"LCCP shape (278 x 19, batches 2010/2012/2017, four regions); {args.panels} "
            f"panels per DGP (seeds 0..{args.panels - 1}); Bayesian fits 2 chains x "
            f"{args.draws} draws (+{args.tune} tune); {elapsed:.0f} s on {args.workers} "
            "workers.")
    print(head)
    print(table)
    if args.write:
        RESULTS.write_text(f"# Calibration zoo\n\n{head}\n\n{table}\n", encoding="utf-8")


if __name__ == "__main__":
    main()
