"""Coverage of 95% intervals for the overall ATT over many simulated panels.

Fits the hierarchical DID with AR(1) (the default) and iid errors, and TWFE with CRV1
standard errors, on panels with staggered, heterogeneous, dynamic effects and AR(1)
errors (rho = 0.5), and prints the share of intervals that contain the true ATT.

    .venv/bin/python benchmarks/calibration.py --panels 200 --workers 2
"""

from __future__ import annotations

import argparse
import logging
import time

from bayesdid.calibration import CALIBRATION_PANEL, coverage_table, run_calibration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--tune", type=int, default=300)
    parser.add_argument("--out", default=None, help="CSV file for the per-panel records")
    args = parser.parse_args()
    logging.getLogger("pymc").setLevel(logging.WARNING)
    start = time.perf_counter()
    records = run_calibration(args.panels, workers=args.workers, draws=args.draws,
                              tune=args.tune)
    elapsed = time.perf_counter() - start
    if args.out:
        records.to_csv(args.out, index=False)
    print(f"panel: {CALIBRATION_PANEL}; {args.panels} panels; 2 chains x {args.draws} draws "
          f"(+{args.tune} tune); {elapsed:.0f} s")
    print(coverage_table(records).to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    main()
