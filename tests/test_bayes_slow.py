"""Slow statistical tests: recovery on the LCCP-shaped panel and frequentist calibration."""

from __future__ import annotations

import logging

import pytest

from bayesdid import Panel
from bayesdid.bayes.did import HierarchicalDiD
from bayesdid.calibration import coverage_table, run_calibration
from bayesdid.classical import twfe
from bayesdid.datasets import simulate_staggered


@pytest.mark.slow
def test_lccp_shaped_panel_recovery_and_twfe_bias():
    """278 cities x 2003-2021, cohorts 2011/2013/2018 (lists of 2010/2012/2017, next-year
    start), effects differing by cohort, region and event time, AR(1) errors (rho=0.5).

    TWFE's bias is exact to compute because TWFE is linear in the outcome: its expectation
    over the errors is TWFE on the noise-free outcome (same seed, sigma=0, same design).
    Seen on seed 0: TWFE noise-free 0.0801 vs true ATT 0.0858 (bias -0.0057, -7%: the
    2011 cohort's long-exposure, larger effects are under-weighted and early adopters serve
    as controls for later ones); on the noisy panel TWFE gives 0.0882.
    """
    sim = simulate_staggered(random_seed=0)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    truth = sim.truth.set_index(["estimand", "group"])["value"]

    noise_free = simulate_staggered(random_seed=0, sigma=0.0)
    expected_twfe = twfe(Panel.from_frame(noise_free.data, **noise_free.panel_kwargs)).effect()
    bias = expected_twfe["estimate"] - truth[("att", "overall")]
    assert bias < -0.004, f"TWFE bias {bias:.4f} no longer visible"

    res = HierarchicalDiD().fit(panel, draws=1000, tune=500, chains=2, random_seed=7,
                                progress=False)
    eff = res.effects().set_index(["estimand", "group"])
    for key in [("att", "overall"), *[("att", f"cohort={c}") for c in panel.cohorts]]:
        lo, hi = eff.loc[key, ["lower", "upper"]]
        assert lo <= truth[key] <= hi, f"{key}: truth {truth[key]:.4f} outside [{lo:.4f}, {hi:.4f}]"
    assert res.diagnostics(warn=False)["r_hat"].max() < 1.02


@pytest.mark.slow
def test_calibration_of_the_default_error_model():
    """Coverage of the 95% HDI for the overall ATT over 30 simulated panels (AR(1) errors,
    heterogeneous dynamic effects). benchmarks/calibration.py runs 200+ panels."""
    logging.getLogger("pymc").setLevel(logging.WARNING)
    records = run_calibration(30, errors=("ar1",), workers=2, progress=False)
    table = coverage_table(records).set_index("method")
    coverage = table.loc["hierarchical_did[ar1]", "coverage"]
    assert coverage >= 0.85, table.to_string()
