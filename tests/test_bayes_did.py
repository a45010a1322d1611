"""HierarchicalDiD: design units, model structure, exact log-density, aggregation, sampling."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
import scipy.sparse as sp
import xarray as xr
from scipy import stats

from bayesdid import Panel
from bayesdid.did.aggregate import aggregation
from bayesdid.did.hierarchical_design import _phi_matrix
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.did.marginal_likelihood import (
    marginal_loglik_grad_np,
    marginal_loglik_np,
    marginal_loglik_pt,
)
from bayesdid.bayes.result import BayesResult, ConvergenceWarning
from bayesdid.datasets import simulate_staggered
from bayesdid.errors import BayesDidError, DesignError, ModelMismatchError

SMALL = dict(n_units=40, years=(2005, 2014), batches={2008: 6, 2010: 6})


@pytest.fixture(scope="module")
def small_sim():
    return simulate_staggered(**SMALL, random_seed=3)


@pytest.fixture(scope="module")
def small_panel(small_sim):
    return Panel.from_frame(small_sim.data, **small_sim.panel_kwargs)


def _dense_covariance(design, sigma, rho, lam_a, lam_phi):
    """Covariance of y implied by the model with every coefficient integrated out."""
    Z = _phi_matrix(design.time_idx, design.X, design.cell_idx,
                    sp.csr_matrix(design.cell_loadings), design.blocks, design.n_obs).toarray()
    U = np.eye(design.n_units)[design.unit_idx]
    T = np.bincount(design.unit_idx)[0]
    lags = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
    ar = rho**lags / (1 - rho**2)
    return (sigma**2 * np.kron(np.eye(design.n_units), ar) + U @ U.T / lam_a
            + Z @ np.diag(1 / lam_phi) @ Z.T)


# ---------------------------------------------------------------------- design units
@pytest.mark.unit
def test_design_blocks_and_cells(small_panel, small_sim):
    design = HierarchicalDiD().prepare(small_panel)
    names = [b.name for b in design.blocks]
    assert names == ["time", "beta", "event", "cohort", "region", "cell"]
    assert design.block("time").size == 9  # 10 years, first dropped
    assert design.block("beta").size == 3
    # every treated row sits in exactly one cell; cell counts add up to the treated rows
    treated = small_panel.data["treated"].to_numpy() == 1
    assert (design.cell_idx[treated] >= 0).all() and (design.cell_idx[~treated] == -1).all()
    assert design.cells["n_obs"].sum() == treated.sum()
    # each cell is (cohort, region, k) and its rows agree
    rows = small_panel.data.loc[treated]
    for idx, cell in design.cells.iterrows():
        sel = rows.loc[design.cell_idx[treated] == idx]
        assert (sel["cohort"] == cell["cohort"]).all()
        assert (sel["region"] == cell["region"]).all()
        assert (sel["rel_time"] == cell["k"]).all()


@pytest.mark.unit
def test_design_rejects_unknown_pool_and_gappy_ar1(small_panel, small_sim):
    with pytest.raises(DesignError, match="not group columns") as e:
        HierarchicalDiD(pool=("cohort", "province")).prepare(small_panel)
    assert e.value.column == "province" and "panel groups: ['region']" in str(e.value)
    df = small_sim.data
    first, second = df["city"].unique()[:2]
    gone = (((df["city"] == first) & df["year"].isin([2008, 2009]))
            | ((df["city"] == second) & (df["year"] == 2012)))
    panel = Panel.from_frame(df.loc[~gone], **small_sim.panel_kwargs)
    with pytest.raises(DesignError, match="consecutive") as e:
        HierarchicalDiD(errors="ar1").prepare(panel)
    # the error shows which units miss which periods, and a hint that works
    assert e.value.rows.to_dict("list") == {"city": [first, second],
                                           "missing periods": ["2008, 2009", "2012"]}
    assert "2 unit(s)" in str(e.value) and "miss 3 period(s)" in str(e.value)
    assert "interpolate=True" in str(e.value)
    HierarchicalDiD(errors="iid").prepare(panel)  # fine without serial correlation
    filled = Panel.from_frame(df.loc[~gone], **small_sim.panel_kwargs, interpolate=True)
    assert filled.missing_periods().empty and filled.n_obs == len(df)
    assert HierarchicalDiD(errors="ar1").prepare(filled).contiguous


@pytest.mark.unit
def test_pool_names_are_checked_before_any_data():
    with pytest.raises(BayesDidError, match="repeated"):
        HierarchicalDiD(pool=("region", "region"))
    with pytest.raises(BayesDidError, match="not strings"):
        HierarchicalDiD(pool=("cohort", 3))


@pytest.mark.unit
def test_empty_pool_design(small_panel):
    """pool=(): one cell per cohort x event time, pooled toward its event-time mean only."""
    design = HierarchicalDiD(pool=()).prepare(small_panel)
    assert [b.name for b in design.blocks] == ["time", "beta", "event", "cell"]
    assert list(design.cells.columns[:2]) == ["cohort", "k"]
    assert not design.cells.duplicated(["cohort", "k"]).any()


@pytest.mark.unit
def test_bad_configuration_is_a_typed_error():
    with pytest.raises(BayesDidError):
        HierarchicalDiD(errors="gaussian")
    with pytest.raises(BayesDidError):
        HierarchicalDiD(errors="student_t", likelihood="marginal")
    with pytest.raises(BayesDidError, match="tuple"):
        HierarchicalDiD(pool="cohort")
    with pytest.raises(BayesDidError, match="Panel"):
        HierarchicalDiD().prepare(pd.DataFrame({"a": [1]}))


# ---------------------------------------------------------------------- model structure
@pytest.mark.model
def test_marginal_model_samples_only_hyperparameters(small_panel):
    model = HierarchicalDiD(errors="ar1").build(small_panel)
    names = {rv.name for rv in model.free_RVs}
    assert names == {"sigma", "rho", "sd_cell"}
    assert np.isfinite(model.compile_logp()(model.initial_point()))
    iid = HierarchicalDiD(errors="iid").build(small_panel)
    assert "rho" not in {rv.name for rv in iid.free_RVs}


@pytest.mark.model
def test_dense_model_has_every_coefficient(small_panel):
    h = HierarchicalDiD(errors="student_t")
    assert h.form() == "dense"
    model = h.build(small_panel)
    design = h.prepare(small_panel)
    assert model.named_vars["unit_effect"].eval().shape == (design.n_units,)
    assert "nu" in model.named_vars and "z_cell" in model.named_vars
    assert len(model.coords["cell"]) == len(design.cells)
    assert np.isfinite(model.compile_logp()(model.initial_point()))


# ---------------------------------------------------------------------- exact log-density
@pytest.mark.model
@pytest.mark.parametrize("rho", [0.0, 0.45, -0.3])
def test_marginal_loglik_equals_dense_multivariate_normal(small_panel, rho):
    design = HierarchicalDiD().prepare(small_panel)
    rng = np.random.default_rng(0)
    sigma, lam_a = 0.8, 0.05
    lam_phi = rng.uniform(0.1, 3.0, design.n_phi)
    cov = _dense_covariance(design, sigma, rho, lam_a, lam_phi)
    ref = stats.multivariate_normal(np.zeros(design.n_obs), cov).logpdf(design.y)
    got = marginal_loglik_np(design.stats, design.n_obs, sigma, rho, lam_a, lam_phi)
    assert got == pytest.approx(ref, rel=1e-10, abs=1e-8)
    s, r, lam = pt.dscalar(), pt.dscalar(), pt.dvector()
    f = pytensor.function([s, r, lam], marginal_loglik_pt(design.stats, design.n_obs, s, r,
                                                          lam_a, lam), mode="FAST_RUN")
    assert float(f(sigma, rho, lam_phi)) == pytest.approx(ref, rel=1e-10, abs=1e-8)


@pytest.mark.model
def test_marginal_gradient_matches_finite_differences(small_panel):
    design = HierarchicalDiD().prepare(small_panel)
    rng = np.random.default_rng(1)
    lam_phi = rng.uniform(0.1, 3.0, design.n_phi)
    sigma, rho, lam_a, eps = 0.7, 0.35, 0.01, 1e-6

    def f(s, r, lam):
        return marginal_loglik_np(design.stats, design.n_obs, s, r, lam_a, lam)

    _, g_s, g_r, g_lam = marginal_loglik_grad_np(design.stats, design.n_obs, sigma, rho,
                                                 lam_a, lam_phi)
    assert g_s == pytest.approx((f(sigma + eps, rho, lam_phi) - f(sigma - eps, rho, lam_phi))
                                / (2 * eps), rel=1e-5)
    assert g_r == pytest.approx((f(sigma, rho + eps, lam_phi) - f(sigma, rho - eps, lam_phi))
                                / (2 * eps), rel=1e-5)
    for j in rng.choice(design.n_phi, 5, replace=False):
        e = np.zeros(design.n_phi)
        e[j] = eps
        fd = (f(sigma, rho, lam_phi + e) - f(sigma, rho, lam_phi - e)) / (2 * eps)
        assert g_lam[j] == pytest.approx(fd, rel=1e-4, abs=1e-7)
    # the symbolic gradient of the model graph is the analytic one
    s, r, lam = pt.dscalar(), pt.dscalar(), pt.dvector()
    out = marginal_loglik_pt(design.stats, design.n_obs, s, r, lam_a, lam)
    grad = pytensor.function([s, r, lam], pytensor.grad(out, [s, r]), mode="FAST_RUN")
    np.testing.assert_allclose(grad(sigma, rho, lam_phi), [g_s, g_r], rtol=1e-10)


# ---------------------------------------------------------------------- aggregation
@pytest.mark.unit
def test_aggregation_from_a_constant_posterior(small_panel):
    design = HierarchicalDiD().prepare(small_panel)
    agg = aggregation(design.cells, ["region"], event_time=True)
    np.testing.assert_allclose(agg.matrix.sum(axis=1), 1.0)
    tau = np.arange(len(design.cells), dtype=float)  # a "posterior" with one constant draw
    eff = dict(zip(agg.labels, agg.matrix @ tau))
    cells = design.cells.assign(tau=tau)
    w = cells["n_obs"]
    assert eff["att|overall"] == pytest.approx((cells["tau"] * w).sum() / w.sum())
    for c, sub in cells.groupby("cohort"):
        assert eff[f"att|cohort={c}"] == pytest.approx(np.average(sub["tau"], weights=sub["n_obs"]))
    for k, sub in cells.groupby("k"):
        assert eff[f"event_time|k={k}"] == pytest.approx(np.average(sub["tau"], weights=sub["n_obs"]))
    assert {"att|region=East", "att|cohort=2009, region=East"} <= set(eff)


# ---------------------------------------------------------------------- sampling
@pytest.fixture(scope="module")
def small_fit(small_panel):
    return HierarchicalDiD(event_time=True).fit(small_panel, draws=400, tune=400, chains=2,
                                                random_seed=11, progress=False)


@pytest.mark.sampling
def test_fit_recovers_truth_on_a_small_panel(small_fit, small_sim):
    eff = small_fit.effects().merge(small_sim.truth, on=["estimand", "group"])
    overall = eff.query("group == 'overall'").iloc[0]
    assert overall["lower"] <= overall["value"] <= overall["upper"]
    # the posterior is informative: the interval is far narrower than the outcome's spread
    assert overall["upper"] - overall["lower"] < small_sim.data["eco_eff"].std()
    assert set(eff["interval"]) == {"hdi"}
    eti = small_fit.effects(interval="eti", level=0.9)
    assert set(eti["interval"]) == {"eti"} and np.allclose(eti["level"], 0.9)
    assert (eti["upper"] - eti["lower"]).mean() < (eff["upper"] - eff["lower"]).mean()


@pytest.mark.sampling
def test_same_seed_same_posterior(small_panel, small_fit):
    again = HierarchicalDiD(event_time=True).fit(small_panel, draws=400, tune=400, chains=2,
                                                 random_seed=11, progress=False)
    pd.testing.assert_frame_equal(again.effects(), small_fit.effects())
    np.testing.assert_array_equal(again.idata.posterior["tau_cell"].values,
                                  small_fit.idata.posterior["tau_cell"].values)


@pytest.mark.sampling
def test_save_load_round_trip(small_fit, small_panel, tmp_path):
    path = small_fit.save(tmp_path / "fit.nc")
    back = BayesResult.load(path, model=HierarchicalDiD(event_time=True))
    pd.testing.assert_frame_equal(back.effects(), small_fit.effects())
    pd.testing.assert_frame_equal(back.effects(interval="eti"), small_fit.effects(interval="eti"))
    assert back.info["config_hash"] == small_fit.info["config_hash"]
    with pytest.raises(ModelMismatchError):
        BayesResult.load(path, model=HierarchicalDiD(errors="iid"))


@pytest.mark.sampling
def test_diagnostics_table(small_fit):
    diag = small_fit.diagnostics(warn=False)
    assert {"parameter", "r_hat", "ess_bulk", "ess_tail"} <= set(diag.columns)
    assert "sigma" in set(diag["parameter"]) and "att|overall" in set(diag["parameter"])
    assert diag["r_hat"].max() < 1.05
    # the count is the sum of the per-draw flags; this well-behaved panel has none
    flags = small_fit.idata.sample_stats["diverging"].values
    assert flags.shape == (2, 400)
    assert diag.attrs["divergences"] == int(flags.sum()) == 0


@pytest.mark.sampling
def test_diagnostics_count_and_warn_about_divergences(small_fit):
    """Divergent draws (set by hand in a copy of a real fit) are counted and warned about."""
    idata = small_fit.idata.copy(deep=True)
    flags = np.zeros((2, 400), dtype=bool)
    flags[0, [3, 50]] = flags[1, 7] = True
    stats_ds = idata["sample_stats"].to_dataset().assign(diverging=(("chain", "draw"), flags))
    idata["sample_stats"] = xr.DataTree(stats_ds)
    # a new result from changed draws: the fit's recorded convergence summary does not apply
    info = {k: v for k, v in small_fit.info.items() if k != "convergence"}
    hurt = BayesResult.from_idata(idata, method="hierarchical_did", info=info)
    with pytest.warns(ConvergenceWarning, match="3 divergent transition"):
        diag = hurt.diagnostics()
    assert diag.attrs["divergences"] == 3


@pytest.mark.sampling
def test_empty_pool_fits_and_reports_by_cohort(small_panel):
    """pool=() used to fail after sampling (KeyError 'region' in the aggregation)."""
    with warnings.catch_warnings():  # a short smoke fit: its convergence is not the point
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = HierarchicalDiD(pool=()).fit(small_panel, draws=150, tune=150, chains=1,
                                           random_seed=3, progress=False)
    assert res.effects()["group"].tolist() == ["overall", "cohort=2009", "cohort=2011"]
    assert res.info["config"]["pool"] == ()


@pytest.mark.sampling
@pytest.mark.parametrize("errors", ["iid", "ar1"])
def test_marginal_and_dense_forms_give_the_same_posterior(errors):
    """Exactness of the fast likelihood: same ATT posterior as the dense model, within
    Monte Carlo error (a few hundred rows; both with fixed seeds)."""
    sim = simulate_staggered(n_units=24, years=(2005, 2012), batches={2008: 5, 2010: 5},
                             n_covariates=1, random_seed=5)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    kw = dict(draws=1000, tune=1000, chains=2, random_seed=2, progress=False)
    fast = HierarchicalDiD(errors=errors).fit(panel, **kw)
    dense = HierarchicalDiD(errors=errors, likelihood="dense").fit(panel, **kw)
    a, b = fast.draws(), dense.draws()
    ess = min(fast.diagnostics(warn=False).set_index("parameter").loc["att|overall", "ess_bulk"],
              dense.diagnostics(warn=False).set_index("parameter").loc["att|overall", "ess_bulk"])
    mcse = np.sqrt(a.var() / ess + b.var() / ess)
    assert abs(a.mean() - b.mean()) < 4 * mcse
    assert b.std() == pytest.approx(a.std(), rel=0.15)


@pytest.mark.sampling
def test_student_t_errors_use_the_dense_model():
    sim = simulate_staggered(n_units=24, years=(2005, 2012), batches={2008: 5, 2010: 5},
                             n_covariates=1, random_seed=5)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    res = HierarchicalDiD(errors="student_t").fit(panel, draws=400, tune=400, chains=2,
                                                  random_seed=4, progress=False)
    assert res.info["form"] == "dense"
    assert "nu" in res.idata.posterior and "nu_minus_2" in res.info["sampled_vars"]
    truth = sim.truth.set_index(["estimand", "group"])["value"][("att", "overall")]
    row = res.effect("att", "overall")
    assert row["lower"] <= truth <= row["upper"]


# ---------------------------------------------------------------------- event study (leads)
@pytest.mark.model
def test_leads_design_and_exact_loglik(small_panel):
    design = HierarchicalDiD(leads=3).prepare(small_panel)
    leads = design.cells.loc[~design.cells["post"]]
    assert sorted(leads["k"].unique()) == [-3, -2]
    # lead cells load on their event-time effect and interaction only (no cohort/region)
    cohort = design.block("cohort")
    assert not design.cell_loadings[leads.index][:, cohort.slice].any()
    rng = np.random.default_rng(2)
    lam_phi = rng.uniform(0.1, 3.0, design.n_phi)
    cov = _dense_covariance(design, 0.7, 0.3, 0.05, lam_phi)
    ref = stats.multivariate_normal(np.zeros(design.n_obs), cov).logpdf(design.y)
    got = marginal_loglik_np(design.stats, design.n_obs, 0.7, 0.3, 0.05, lam_phi)
    assert got == pytest.approx(ref, rel=1e-10, abs=1e-8)
    with pytest.raises(BayesDidError, match="leads"):
        HierarchicalDiD(leads=1)


@pytest.mark.sampling
def test_bayesian_event_study_pretrend_check(small_sim):
    kw = dict(draws=500, tune=500, chains=2, random_seed=5, progress=False)
    panel = Panel.from_frame(small_sim.data, **small_sim.panel_kwargs)
    clean = HierarchicalDiD(leads=3).fit(panel, **kw)
    eff = clean.effects().set_index(["estimand", "group"])
    for k in (-3, -2):  # no anticipation in the simulator: leads cover zero
        lo, hi = eff.loc[("event_time", f"k={k}"), ["lower", "upper"]]
        assert lo <= 0 <= hi
    truth = small_sim.truth.set_index(["estimand", "group"])["value"][("att", "overall")]
    lo, hi = eff.loc[("att", "overall"), ["lower", "upper"]]
    assert lo <= truth <= hi
    p_clean = clean.pretrend_probability(tolerance=0.05)
    assert p_clean > 0.5

    # anticipation: treated units move 0.08 (about 1.5 error sds) one period early
    df = small_sim.data.copy()
    early = (df["year"] - df["cohort"].astype("float")) == -2
    df.loc[early.fillna(False).to_numpy(), "eco_eff"] += 0.08
    shifted = HierarchicalDiD(leads=3).fit(Panel.from_frame(df, **small_sim.panel_kwargs), **kw)
    lead = shifted.effects().set_index(["estimand", "group"]).loc[("event_time", "k=-2")]
    assert lead["lower"] > 0
    p_shifted = shifted.pretrend_probability(tolerance=0.05)
    assert p_shifted < 0.25 and p_shifted < p_clean / 3, (p_shifted, p_clean)
    with pytest.raises(BayesDidError, match="leads"):
        HierarchicalDiD().fit(panel, **kw).pretrend_probability(0.05)
