"""Calendar time: building a Panel whose time (and cohort) column holds monthly Periods,
datetimes or ``"2010-01"`` strings, against the same panel with integer time.

A simulated 5,000-unit x 120-month panel (600,000 rows) with three cohorts and never
treated units; the cohort column holds periods in the time column's terms (0 / NaT /
None for never treated). Baseline: ``Panel.from_frame`` on integer time in this process.
Each run also checks that event time (``rel_time``) is the same as with integer time.
Each timing is the best of ``--repeat`` runs; machines are noisy, only the ratios travel.

    .venv/bin/python benchmarks/bench_calendar_time.py [--repeat 3] [--units 5000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from bayesdid import Panel


def frames(n_units: int, n_periods: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    first = rng.choice([0, 30, 50, 70], n_units)  # period offsets; 0 = never treated
    base = pd.DataFrame({
        "u": np.repeat([f"u{i}" for i in range(n_units)], n_periods),
        "t": np.tile(np.arange(n_periods), n_units),
        "y": rng.normal(size=n_units * n_periods),
        "g": np.repeat(first, n_periods)})
    months = pd.period_range("2010-01", periods=n_periods, freq="M")
    as_month = pd.PeriodIndex(months.take(base["t"].to_numpy()))
    cohort = pd.PeriodIndex([months[g] if g else pd.NaT for g in base["g"]], freq="M")
    integer = base.assign(t=base["t"] + 2000, g=np.where(base["g"] > 0, base["g"] + 2000, 0))
    period = base.assign(t=as_month, g=cohort)
    return {
        "integer": integer,
        "Period[M]": period,
        "datetime64 monthly": period.assign(t=period["t"].dt.to_timestamp(),
                                            g=period["g"].dt.to_timestamp()),
        "'2010-01' strings": period.assign(t=period["t"].astype(str),
                                           g=[str(x) if pd.notna(x) else None
                                              for x in period["g"]]),
    }


def best_of(frame: pd.DataFrame, repeat: int) -> tuple[float, Panel]:
    best, panel = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        panel = Panel.from_frame(frame, unit="u", time="t", outcome="y", cohort="g")
        best = min(best, time.perf_counter() - t0)
    return best, panel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--units", type=int, default=5000)
    parser.add_argument("--periods", type=int, default=120)
    args = parser.parse_args()
    data = frames(args.units, args.periods)
    base, ref = best_of(data.pop("integer"), args.repeat)
    print(f"{len(ref.frame):,} rows; Panel.from_frame with integer time: {base:.3f} s")
    for name, frame in data.items():
        seconds, panel = best_of(frame, args.repeat)
        assert panel.data["rel_time"].equals(ref.data["rel_time"]), name
        print(f"{name:>20}: {seconds:.3f} s   ratio to integer time {seconds / base:.2f}")
    t0 = time.perf_counter()
    panel.time_labels()
    print(f"{'time_labels()':>20}: {time.perf_counter() - t0:.3f} s (every row)")


if __name__ == "__main__":
    main()
