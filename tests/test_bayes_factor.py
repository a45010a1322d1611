"""BayesianFactorDiD: exact marginal likelihood, recovery where TWFE is biased, one treated
unit, staggered adoption with groups, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesdid
from bayesdid import Panel
from bayesdid.classical import twfe
from bayesdid.datasets import simulate_factor_panel
from bayesdid.errors import BayesDidError, ConvergenceWarning, DesignError, MissingValueError
from bayesdid.synthetic.bayes_factor import BayesianFactorDiD, FactorPriors, counterfactual_paths
from bayesdid.synthetic.bayes_factor_design import dense_loglik_np, marginal_loglik_np

FAST = dict(draws=250, tune=250, chains=2, progress=False)


def _panel(**kw) -> tuple[Panel, object]:
    sim = simulate_factor_panel(**kw)
    return Panel.from_frame(sim.data, **sim.panel_kwargs), sim


def _fit(model, panel, seed):
    with warnings.catch_warnings():  # short chains: convergence is not what is tested
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(panel, random_seed=seed, **FAST)


def test_marginal_likelihood_is_exact_against_dense_mvn():
    panel, _ = _panel(n_units=7, n_periods=5, n_treated=3, cohorts=(3, 4), seed=2)
    model = BayesianFactorDiD(max_factors=2)
    design = model.prepare(panel)
    rng = np.random.default_rng(1)
    for _ in range(3):
        L = rng.normal(size=(5, 3))
        sigma = float(rng.uniform(0.3, 1.5))
        for scale in (1.0, model.priors.treated_scale):
            dense = dense_loglik_np(design.Y, design.fm.start, L, sigma, model.priors.time_sd, scale)
            assert marginal_loglik_np(design.groups, L, sigma, model.priors.time_sd, scale) == \
                pytest.approx(dense, abs=1e-9)


def test_compiled_density_matches_pymc():
    from pymc.blocking import DictToArrayBijection

    from bayesdid.synthetic.bayes_factor_nutpie import factor_logp_grad, pack_user_data

    panel, _ = _panel(n_units=9, n_periods=6, n_treated=3, cohorts=(4, 5), seed=3)
    model = BayesianFactorDiD(max_factors=2)
    design = model.prepare(panel)
    pm_model = model._build(design)
    logp, dlogp = pm_model.compile_logp(), pm_model.compile_dlogp()
    buf = pack_user_data(design, model)
    rng = np.random.default_rng(0)
    offsets = []
    for _ in range(3):
        point = {k: v + rng.normal(size=np.shape(v)) * 0.5
                 for k, v in pm_model.initial_point().items()}
        value, grad = factor_logp_grad(DictToArrayBijection.map(point).data, buf)
        offsets.append(value - logp(point))  # PyMC adds the priors' normalising constants
        np.testing.assert_allclose(grad, dlogp(point), atol=1e-8)
    assert np.ptp(offsets) < 1e-8


def test_recovers_att_where_twfe_is_biased():
    panel, sim = _panel(n_units=30, n_periods=14, n_treated=6, cohorts=(10,), seed=6)
    res = _fit(BayesianFactorDiD(max_factors=3), panel, seed=1)
    row = res.effect()
    assert row["lower"] <= sim.att <= row["upper"]
    assert abs(row["estimate"] - sim.att) < 0.6
    classical = twfe(panel).effect()
    assert abs(classical["estimate"] - sim.att) > 1.5  # the factors bias TWFE
    assert not classical["lower"] <= sim.att <= classical["upper"]
    assert res.method == "bayes_factor" and res.info["sampled_vars"] == [
        "sigma", "sd_unit", "time_effect"]


def test_one_treated_unit_gives_paths_and_no_unit_rows():
    panel, sim = _panel(n_units=16, n_periods=10, n_treated=1, cohorts=(7,), seed=4)
    res = _fit(BayesianFactorDiD(max_factors=2), panel, seed=2)
    table = res.effects()
    assert set(table["estimand"]) == {"att", "event_time"}
    assert not table["group"].str.startswith("unit=").any()
    assert table.loc[table["group"] == "k=0", "n_obs"].item() == 1
    paths = counterfactual_paths(res)
    assert len(paths) == 10 and paths["post"].sum() == 4
    assert (paths["lower"] <= paths["upper"]).all()
    assert np.isfinite(res.draws()).all()
    assert {r["check"] for r in res.info["ppc"]} >= {"autocorr_lag1", "kurtosis"}


def test_staggered_with_groups_reports_every_level():
    sim = simulate_factor_panel(n_units=24, n_periods=10, n_treated=6, cohorts=(6, 8),
                                seed=6)
    data = sim.data.assign(region=np.where(sim.data["unit"] < "u012", "East", "West"))
    panel = Panel.from_frame(data, **sim.panel_kwargs, groups=["region"])
    res = _fit(BayesianFactorDiD(max_factors=2), panel, seed=3)
    groups = set(res.effects()["group"])
    assert {"overall", "cohort=6", "cohort=8", "region=East", "k=0", "unit=u000"} <= groups
    eff = res.idata.posterior["effect"]
    # the overall ATT is the observation-weighted mean of the per-unit ATTs
    units = [g for g in eff["group"].values if str(g).startswith("unit=")]
    n = res.effects().set_index("group").loc[units, "n_obs"].to_numpy(float)
    per_unit = np.stack([res.draws("att", u) for u in units])
    np.testing.assert_allclose(res.draws(), (n[:, None] * per_unit).sum(0) / n.sum())


def test_bad_input_errors():
    panel, sim = _panel(n_units=8, n_periods=6, n_treated=2, cohorts=(4,), seed=1)
    with pytest.raises(BayesDidError, match="max_factors"):
        BayesianFactorDiD(max_factors=0)
    with pytest.raises(BayesDidError, match="shrink"):
        FactorPriors(shrink=1.5)
    with pytest.raises(BayesDidError, match="FactorPriors"):
        BayesianFactorDiD(priors={"shrink": 0.5})
    with pytest.raises(BayesDidError, match="tuple"):
        BayesianFactorDiD(pool="region")
    with pytest.raises(BayesDidError, match="Panel"):
        BayesianFactorDiD().prepare(sim.data)
    unbalanced = sim.data.drop(index=[3])
    with pytest.raises(MissingValueError, match="balanced"):
        BayesianFactorDiD().prepare(Panel.from_frame(unbalanced, **sim.panel_kwargs))
    all_treated = sim.data.assign(cohort=np.where(sim.data["unit"] < "u004", 4.0, 5.0))
    with pytest.raises(DesignError, match="never-treated"):
        BayesianFactorDiD().prepare(Panel.from_frame(all_treated, **sim.panel_kwargs))
    with pytest.raises(DesignError, match="'nope' is not a column"):
        BayesianFactorDiD(pool=("nope",)).prepare(panel)
    frame_before = panel.frame.copy()
    BayesianFactorDiD().prepare(panel)
    pd.testing.assert_frame_equal(panel.frame, frame_before)


def test_exported():
    from bayesdid.bayes import BayesianFactorDiD as from_bayes

    assert bayesdid.BayesianFactorDiD is BayesianFactorDiD is from_bayes
