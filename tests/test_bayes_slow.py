"""Slow statistical tests: recovery on the LCCP-shaped panel and frequentist calibration."""

from __future__ import annotations

import logging

import pyfixest as pf
import pytest

from bayesdid import Panel
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.calibration import coverage_table, run_calibration
from bayesdid.classical import twfe
from bayesdid.datasets import simulate_staggered


def _imputation_estimates(panel: Panel) -> dict:
    """Borusyak-Jaravel-Spiess imputation: fixed effects fitted on untreated cells only."""
    df = panel.data
    covs = " + ".join(panel.covariates)
    fit = pf.feols(f"{panel.outcome} ~ {covs} | {panel.unit} + {panel.time}",
                   data=df[df["treated"] == 0])
    fe = fit.fixef()
    treated = df[df["treated"] == 1]
    y0 = (treated[panel.unit].astype(str).map(fe[f"C({panel.unit})"])
          + treated[panel.time].astype(str).map(fe[f"C({panel.time})"])
          + treated[list(panel.covariates)].to_numpy() @ fit.coef().to_numpy())
    effect = treated[panel.outcome] - y0
    out = {("att", "overall"): effect.mean()}
    for c, e in effect.groupby(treated["cohort"]):
        out[("att", f"cohort={c}")] = e.mean()
    return out


@pytest.mark.slow
def test_lccp_shaped_panel_recovery_and_twfe_bias():
    """278 cities x 2003-2021, cohorts 2011/2013/2018 (lists of 2010/2012/2017, next-year
    start), effects differing by cohort, region and event time, AR(1) errors (rho=0.5).

    Seed choice: with four intervals checked on one panel, a calibrated method misses one
    in roughly one panel out of six. The seed is the first (from 0) whose data are typical
    by a criterion that does not look at the Bayesian fit: the unbiased imputation (BJS)
    estimator is within 0.012 (about 1.3 se) of the truth for the ATT and every cohort.
    Seeds 0-2 fail it (seed 0: BJS puts cohort 2018 at 0.100, truth 0.078). Coverage over
    many panels is tested in test_calibration_of_the_default_error_model.

    TWFE's bias is exact to compute because TWFE is linear in the outcome: its expectation
    over the errors is TWFE on the noise-free outcome (same seed, sigma=0, same design).
    Seen on seed 3: TWFE noise-free 0.0805 vs true ATT 0.0866 (bias -0.0061, -7%: the
    2011 cohort's long-exposure, larger effects are under-weighted and early adopters serve
    as controls for later ones); on the noisy panel TWFE gives 0.0766.
    """
    seed = 3
    sim = simulate_staggered(random_seed=seed)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    truth = sim.truth.set_index(["estimand", "group"])["value"]
    typical = {k: abs(v - truth[k]) for k, v in _imputation_estimates(panel).items()}
    assert max(typical.values()) < 0.012, typical  # the seed-choice criterion above

    noise_free = simulate_staggered(random_seed=seed, sigma=0.0)
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


@pytest.mark.slow
def test_fast_likelihood_matches_dense_model_on_a_thousand_rows():
    """Exactness at a larger size than the sampling test: 100 units x 10 years, AR(1)."""
    sim = simulate_staggered(n_units=100, years=(2005, 2014), batches={2008: 12, 2011: 12},
                             random_seed=8)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    assert panel.n_obs == 1000
    kw = dict(draws=1000, tune=1000, chains=2, random_seed=3, progress=False)
    fast = HierarchicalDiD(errors="ar1").fit(panel, **kw)
    dense = HierarchicalDiD(errors="ar1", likelihood="dense").fit(panel, **kw)
    a, b = fast.draws(), dense.draws()
    ess = min(r.diagnostics(warn=False).set_index("parameter").loc["att|overall", "ess_bulk"]
              for r in (fast, dense))
    mcse = (a.var() / ess + b.var() / ess) ** 0.5
    assert abs(a.mean() - b.mean()) < 4 * mcse
    assert b.std() == pytest.approx(a.std(), rel=0.15)
