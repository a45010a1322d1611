"""1000 TWFE placebo refits (random timing) on the LCCP-shaped panel: bayesdid's fast
Frisch-Waugh-Lovell path vs one pyfixest ``feols`` call per placebo.

The fast path partials the unit/time fixed effects and covariates out once and demeans each
batch of placebo treatment columns in one call. The baseline is what a placebo loop
usually does: refit ``y ~ D + X | unit + time`` (CRV1 by unit, as ``twfe``) once per draw.
pyfixest is timed on the first ``--pyfixest-calls`` draws (default 100) and extrapolated
linearly to 1000 -- said so in the output; pass ``--pyfixest-calls 1000`` to time them all.
Both see identical placebo assignments (``placebo_assignments``, same seed); the maximum
absolute difference of the estimates is printed. Only ratios travel between machines.

    .venv/bin/python benchmarks/bench_placebo.py [--pyfixest-calls 100]
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np
import pandas as pd

from bayesdid import Panel
from bayesdid.did._fixest import pf
from bayesdid.checks.placebo import placebo, placebo_assignments
from bayesdid.datasets.simulate import simulate_staggered

N_DRAWS = 1000
OUT = pathlib.Path(__file__).parent / "results" / "bench_placebo.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyfixest-calls", type=int, default=100)
    args = parser.parse_args()
    m = min(args.pyfixest_calls, N_DRAWS)

    sim = simulate_staggered(random_seed=0)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    f = panel.frame
    placebo(panel, "random_timing", n_draws=50, random_seed=0, workers=1, progress=False)  # warm

    t0 = time.perf_counter()
    res = placebo(panel, "random_timing", n_draws=N_DRAWS, random_seed=0, workers=1,
                  progress=False)
    fast = time.perf_counter() - t0

    assign = placebo_assignments(panel, "random_timing", range(m), random_seed=0)
    work = pd.DataFrame({"y": f[panel.outcome], "d": 0.0, "u": f[panel.unit],
                         "t": f[panel.time], **{c: f[c] for c in panel.covariates}})
    fml = f"y ~ d + {' + '.join(panel.covariates)} | u + t"
    coefs = np.empty(m)
    t0 = time.perf_counter()
    for r in range(m):
        work["d"] = (f[panel.time] >= f[panel.unit].map(assign[r]).astype(float)).astype(float)
        coefs[r] = pf.feols(fml, data=work, vcov={"CRV1": "u"}).coef()["d"]
    slow_m = time.perf_counter() - t0
    slow = slow_m * N_DRAWS / m
    diff = float(np.max(np.abs(coefs - res.draws[:m])))

    lines = [
        (f"panel: {panel.n_obs} rows ({len(panel.units)} units x {len(panel.times)} years), "
         f"covariates {', '.join(panel.covariates)}; placebo kind random_timing, "
         f"{N_DRAWS} draws, seed 0"),
        "",
        "| method | wall s for 1000 refits | per refit ms |",
        "|---|---:|---:|",
        (f"| bayesdid fast path (placebo(), in-process, incl. real fit) | {fast:.3f} | "
         f"{1e3 * fast / N_DRAWS:.3f} |"),
        (f"| pyfixest feols per draw ({m} timed"
         f"{', extrapolated to 1000' if m < N_DRAWS else ''}) | {slow:.2f} | "
         f"{1e3 * slow_m / m:.2f} |"),
        "",
        (f"pyfixest timed on {m} of {N_DRAWS} draws"
         + (f" ({slow_m:.2f} s) and extrapolated linearly to {N_DRAWS}" if m < N_DRAWS else "")),
        f"max |fast - pyfixest| over those {m} draws: {diff:.2e}",
        f"ratio pyfixest / fast: {slow / fast:.0f}x (target >= 20x)",
    ]
    text = "\n".join(lines)
    print(text)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(f"Run on the shared 2-core development machine, {time.strftime('%Y-%m-%d')} "
                   "(`.venv/bin/python benchmarks/bench_placebo.py`); other jobs were running, "
                   "so absolute times are inflated, the ratio less so:\n\n" + text + "\n")


if __name__ == "__main__":
    main()
