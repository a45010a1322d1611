"""BayesianFactorDiD: exact marginal likelihood (with and without covariates), recovery where
TWFE is biased, a covariate confounder, one treated unit, staggered adoption with groups, bad
input."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesdid
from bayesdid import Panel
from bayesdid.classical import twfe
from bayesdid.datasets import simulate_factor_panel
from bayesdid.errors import (BayesDidError, ConvergenceWarning, DesignError,
                             DesignIgnoredWarning, MissingValueError)
from bayesdid.synthetic.bayes_factor import BayesianFactorDiD, FactorPriors, counterfactual_paths
from bayesdid.synthetic.bayes_factor_design import dense_loglik_np, marginal_loglik_np

FAST = dict(draws=250, tune=250, chains=2, progress=False)


def _panel(**kw) -> tuple[Panel, object]:
    sim = simulate_factor_panel(**kw)
    return Panel.from_frame(sim.data, **sim.panel_kwargs), sim


def _fit(model, panel, seed, **kw):
    with warnings.catch_warnings():  # short chains: convergence is not what is tested
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(panel, random_seed=seed, **{**FAST, **kw})


def _covariate_panel(covariates=("x", "x2"), **kw) -> tuple[Panel, object]:
    """A factor panel with the confounding covariate ``x`` and a pure-noise ``x2``."""
    sim = simulate_factor_panel(covariate_effect=1.0, **kw)
    data = sim.data.assign(x2=np.random.default_rng(9).normal(size=len(sim.data)))
    return Panel.from_frame(data, **sim.panel_kwargs, covariates=list(covariates)), sim


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
    cov_panel, _ = _covariate_panel(n_units=7, n_periods=5, n_treated=3, cohorts=(3, 4), seed=2)
    design = model.prepare(cov_panel)
    assert design.covariates.X.shape == (7, 5, 2)
    for cov_sd in (0.5, 2.0):
        L = rng.normal(size=(5, 3))
        dense = dense_loglik_np(design.Y, design.fm.start, L, 0.8, 2.0, 3.0,
                                X=design.covariates.X, covariate_sd=cov_sd)
        assert marginal_loglik_np(design.groups, L, 0.8, 2.0, 3.0, cov_sd) == \
            pytest.approx(dense, abs=1e-9)


def test_pooled_marginal_likelihood_is_exact_against_dense_mvn():
    from bayesdid.synthetic.bayes_factor_pooled import effect_prior_sd

    panel, _ = _covariate_panel(("x",), n_units=9, n_periods=6, n_treated=4, cohorts=(4, 5),
                                seed=3)
    model = BayesianFactorDiD(max_factors=2, effects="pooled")
    design = model.prepare(panel)
    fm, ed = design.fm, design.pooled
    assert ed.n_cells == len(design.cell_table) and all(g.length == 6 for g in design.groups)
    rows = np.zeros((*fm.Y.shape, len(ed.names)))  # each treated (unit, period) -> its cell
    for j, t, c in zip(design.cells["unit_row"], design.cells["t"], design.cell_of):
        rows[j, t] = ed.M[c]
    rng = np.random.default_rng(4)
    for cell_sd in (0.2, 1.3):
        L, sd = rng.normal(size=(6, 3)), effect_prior_sd(ed, 1.0, cell_sd)
        dense = dense_loglik_np(design.Y, fm.start, L, 0.8, 2.0, 3.0, X=design.covariates.X,
                                covariate_sd=1.5, effect_rows=rows, effect_sd=sd)
        assert marginal_loglik_np(design.groups, L, 0.8, 2.0, 3.0, 1.5, sd) == \
            pytest.approx(dense, abs=1e-9)


@pytest.mark.parametrize("covariates,effects", [((), "imputation"), (("x", "x2"), "imputation"),
                                                (("x",), "pooled")])
def test_compiled_density_matches_pymc(covariates, effects):
    from pymc.blocking import DictToArrayBijection

    from bayesdid.synthetic.bayes_factor_nutpie import factor_logp_grad, pack_user_data

    panel, _ = _covariate_panel(covariates, n_units=9, n_periods=6, n_treated=3,
                                cohorts=(4, 5), seed=3)
    model = BayesianFactorDiD(max_factors=2, effects=effects)
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


def test_covariate_confounder_is_adjusted_for():
    # x shifts by 2 in treated cells (a confounder, not an effect): ignoring it biases by ~2
    sim = simulate_factor_panel(n_units=30, n_periods=14, n_treated=6, cohorts=(10,), seed=6,
                                covariate_effect=1.0, covariate_shift=2.0)
    with_x = Panel.from_frame(sim.data, **sim.panel_kwargs, covariates=["x"])
    without = Panel.from_frame(sim.data, **sim.panel_kwargs)
    model = BayesianFactorDiD(max_factors=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DesignIgnoredWarning)  # covariates are modelled now
        res = _fit(model, with_x, seed=1)
    naive = _fit(model, without, seed=1).effect()
    row = res.effect()
    assert row["lower"] <= sim.att <= row["upper"]
    assert abs(row["estimate"] - sim.att) < 0.7
    assert naive["estimate"] - sim.att > 1.2 and naive["lower"] > sim.att
    beta = res.idata.posterior["beta"].sel(covariate="x").values.ravel()
    assert abs(beta.mean() - 1.0) < 3 * beta.std()  # original units: y per unit of x
    assert res.info["covariates"] == ["x"] and "beta" in res.info["sampled_vars"]


@pytest.mark.slow  # two full fits, one on PyMC's own NUTS: about 50 s
def test_samplers_agree_with_covariates():
    # the numba density (nutpie) and PyMC's own graph give the same posterior, x' beta
    # included in the counterfactuals
    panel, _ = _covariate_panel(("x",), n_units=14, n_periods=8, n_treated=3, cohorts=(6,),
                                seed=4)
    model = BayesianFactorDiD(max_factors=2)
    fits = [_fit(model, panel, seed=1), _fit(model, panel, seed=2, sampler="pymc")]
    for get in (lambda r: r.draws(), lambda r: r.idata.posterior["beta"].values.ravel()):
        a, b = (get(r) for r in fits)
        assert abs(a.mean() - b.mean()) < 0.35 * a.std()
        assert a.std() == pytest.approx(b.std(), rel=0.25)


def test_pooled_cell_effects():
    sim = simulate_factor_panel(n_units=24, n_periods=10, n_treated=6, cohorts=(6, 8),
                                effect_slope=0.3, seed=6)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    res = _fit(BayesianFactorDiD(max_factors=2, effects="pooled"), panel, seed=3)
    assert res.info["effects"] == "pooled" and "cell_sd" in res.info["sampled_vars"]
    table = res.effects().set_index("group")
    row = table.loc["overall"]
    assert row["lower"] <= sim.att <= row["upper"]
    # the reported cells are the pooled theta_cell: units of one cell share its draws
    units = [g for g in table.index if str(g).startswith("unit=")]
    cohort6 = [u for u in units if sim.data.loc[sim.data["unit"] == u[5:], "cohort"].iloc[0] == 6]
    np.testing.assert_allclose(res.draws("att", cohort6[0]), res.draws("att", cohort6[1]))
    k0 = table.loc["cohort=6, k=0"]
    assert k0["lower"] <= 3.0 <= k0["upper"]  # its true effect: 3 + 0.3 * 0
    paths = counterfactual_paths(res)
    assert np.isfinite(paths["counterfactual"]).all()
    with pytest.raises(BayesDidError, match="effects"):
        BayesianFactorDiD(effects="partial")


def test_bad_covariates_get_typed_errors():
    panel, sim = _covariate_panel(n_units=8, n_periods=6, n_treated=2, cohorts=(4,), seed=1)
    data = panel.frame
    model = BayesianFactorDiD()
    untreated = data["treated"] == 0

    def with_column(values, name="x3"):
        frame = data.assign(**{name: values})
        return Panel.from_frame(frame, **sim.panel_kwargs, covariates=["x", "x2", name])

    with pytest.raises(DesignError, match="'x3' is constant") as err:
        model.prepare(with_column(np.where(untreated, 1.5, data["x"])))  # varies only treated
    assert err.value.column == "x3" and len(err.value.rows)
    with pytest.raises(DesignError, match="linearly dependent") as err:
        model.prepare(with_column(2 * data["x"] - 0.5 * data["x2"] + 1))
    assert "x3" in str(err.value) and "'x'" in str(err.value) and len(err.value.rows)
    nan = dataclasses.replace(panel, frame=data.assign(x2=data["x2"].mask(data.index == 7)))
    with pytest.raises(MissingValueError, match="'x2' is missing") as err:
        model.prepare(nan)
    assert err.value.column == "x2" and len(err.value.rows) == 1
    before = panel.frame.copy()
    model.prepare(panel)
    pd.testing.assert_frame_equal(panel.frame, before)


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


def test_study_step_passes_covariates(tmp_path):
    from bayesdid.study import loads_study, run_study

    sim = simulate_factor_panel(n_units=12, n_periods=8, n_treated=3, cohorts=(6,), seed=3,
                                covariate_effect=1.0)
    sim.data.to_csv(tmp_path / "panel.csv", index=False)
    study = loads_study(f"""
[study]
name = "factor_covariates"
[data]
csv = "{tmp_path / 'panel.csv'}"
[panel]
unit = "unit"
time = "time"
outcome = "y"
cohort = "cohort"
[[steps]]
kind = "bayes_factor"
name = "pooled"
effects = "pooled"
max_factors = 2
draws = 100
tune = 100
chains = 2
random_seed = 1
[[steps]]
kind = "bayes_factor"
covariates = ["x"]
covariate_sd = 1.0
max_factors = 2
draws = 100
tune = 100
chains = 2
random_seed = 1
""")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("error", DesignIgnoredWarning)
        res = run_study(study, tmp_path / "out", progress=False)
    fit = res.results["bayes_factor"]
    assert fit.info["covariates"] == ["x"]
    assert fit.idata.posterior["beta"].sizes["covariate"] == 1
    assert (res.effects["group"] == "overall").sum() == 2
    assert res.results["pooled"].info["effects"] == "pooled"
