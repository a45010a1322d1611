"""Calibration of the randomization placebo tests: on 100 simulated panels with no effect,
each random placebo kind rejects at 5% in about 5% of panels."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy import stats

from bayesdid import Panel
from bayesdid.checks.placebo import placebo
from bayesdid.did.twfe import twfe
from bayesdid.datasets.simulate import REGIONS, simulate_staggered

N_PANELS, N_DRAWS = 100, 199  # with 199 draws P(p <= 0.05) = 10/200 exactly if exchangeable
NULL = dict(n_units=80, years=(2005, 2015), batches={2008: 8, 2010: 8, 2012: 8},
            cohort_effects={2008: 0.0, 2010: 0.0, 2012: 0.0},
            region_effects={r: 0.0 for r in REGIONS}, slope=0.0)
KINDS = {"random_timing (advance)": dict(kind="random_timing"),
         "random_timing (any)": dict(kind="random_timing", timing="any"),
         "fictional_group": dict(kind="fictional_group"),
         "both_random": dict(kind="both_random")}


@pytest.mark.slow
def test_null_rejection_rates_are_nominal():
    pvals = {name: [] for name in KINDS}
    for s in range(N_PANELS):
        sim = simulate_staggered(**NULL, random_seed=10_000 + s)
        panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
        base = twfe(panel)  # one real fit shared by the four placebo kinds
        for name, kw in KINDS.items():
            res = placebo(panel, n_draws=N_DRAWS, random_seed=s, real_result=base,
                          progress=False, **kw)
            pvals[name].append(res.p_value)
    # binomial tolerance: reject only if the count is outside the central 99.9% of Bin(100, .05)
    lo, hi = stats.binom.ppf([0.0005, 0.9995], N_PANELS, 0.05)
    for name, p in pvals.items():
        p = np.asarray(p)
        rate = float(np.mean(p <= 0.05))
        logging.getLogger(__name__).warning("placebo %s: rejection rate at 5%% = %.2f, at "
                                            "10%% = %.2f", name, rate, np.mean(p <= 0.10))
        assert lo <= rate * N_PANELS <= hi, (name, rate)
        # roughly uniform: no decile of the p-values holds more than a quarter of panels
        assert np.histogram(p, bins=10, range=(0, 1))[0].max() <= 25, name
