"""fe= in pyfixest syntax: classical estimators against pyfixest called directly, validation,
pf.etable on bayesdid results, the pyfixest private-attribute contract, and
HierarchicalDiD with region x year effects on a panel with known truth."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesdid import Panel
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.did.marginal_likelihood import marginal_loglik_np
from bayesdid.did._fixest import fit_df, fit_nobs, fit_vcov, pf
from bayesdid.did.event_study import event_study
from bayesdid.checks.placebo import placebo
from bayesdid.staggered.estimators import imputation, sun_abraham
from bayesdid.did.twfe import twfe
from bayesdid.datasets import simulate_staggered
from bayesdid.errors import BayesDidError, ColumnError, MissingValueError

TOL = 1e-8


@pytest.fixture(scope="module")
def sim():
    return simulate_staggered(n_units=60, years=(2005, 2014), batches={2008: 10, 2011: 10},
                              random_seed=11)


@pytest.fixture(scope="module")
def frame(sim):
    df = sim.data.copy()
    df["plan_period"] = np.where(df["year"] <= 2010, "11th", "12th")
    return df


@pytest.fixture(scope="module")
def panel(sim):
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


def _direct(frame, panel, rhs, fe):
    df = frame.assign(treated=panel.frame["treated"].to_numpy(float))
    fml = f"eco_eff ~ {rhs}" + (f" | {fe}" if fe else "")
    return pf.feols(fml, data=df, vcov={"CRV1": "city"})


# ---------------------------------------------------------------------- classical vs pyfixest
FORMS = [("unit + time", "city + year"), ("city + region^year", "city + region^year"),
         ("city + plan_period", "city + plan_period"), ("year", "year"), ("city", "city"),
         (None, None)]


@pytest.mark.unit
@pytest.mark.parametrize("fe, direct", FORMS)
def test_twfe_equals_pyfixest_for_every_fe_form(frame, panel, fe, direct):
    res = twfe(panel, fe=fe, data=frame)
    ref = _direct(frame, panel, "treated + x1 + x2 + x3", direct)
    row = res.effect()
    assert row["estimate"] == pytest.approx(ref.coef()["treated"], abs=TOL)
    assert row["se_or_sd"] == pytest.approx(ref.se()["treated"], abs=TOL)
    ci = ref.confint().loc["treated"]
    assert row["lower"] == pytest.approx(ci.iloc[0], abs=TOL)
    # the fit is kept and is pyfixest's own
    assert res.fit.coef()["treated"] == pytest.approx(row["estimate"], abs=0)
    assert res.info["fe"] == (None if fe is None else
                              direct.replace("city + year", "city + year"))


@pytest.mark.unit
def test_fe_forms_give_different_estimates(frame, panel):
    est = {str(fe): twfe(panel, fe=fe, data=frame).effect()["estimate"] for fe, _ in FORMS}
    assert len({round(v, 10) for v in est.values()}) == len(FORMS)


@pytest.mark.unit
def test_covariates_as_a_formula_string(frame, panel):
    res = twfe(panel, fe="city + region^year", covariates="x1 + I(x2**2) + np.exp(x3)")
    ref = _direct(frame, panel, "treated + x1 + I(x2**2) + np.exp(x3)", "city + region^year")
    assert res.effect()["estimate"] == pytest.approx(ref.coef()["treated"], abs=TOL)
    assert res.effect()["se_or_sd"] == pytest.approx(ref.se()["treated"], abs=TOL)
    list_form = twfe(panel, covariates=["x1", "x2"]).effect()["estimate"]
    text_form = twfe(panel, covariates="x1 + x2").effect()["estimate"]
    assert list_form == pytest.approx(text_form, abs=1e-12)


@pytest.mark.unit
@pytest.mark.parametrize("fe, direct", [("city + region^year", "city + region^year"),
                                        ("year", "year"), (None, None)])
def test_event_study_equals_pyfixest(frame, panel, fe, direct):
    rel = panel.frame["rel_time"].astype(float).to_numpy()
    leads, lags = int(-np.nanmin(rel)), int(np.nanmax(rel))  # whole range: no binning
    res = event_study(panel, leads=leads, lags=lags, fe=fe, covariates=["x1"])
    df = frame.copy()
    names = []
    for k in range(-leads, lags + 1):
        if k != -1:
            names.append(f"e{k + 100}")
            df[names[-1]] = (rel == k).astype(float)
    fml = f"eco_eff ~ {' + '.join(names)} + x1" + (f" | {direct}" if direct else "")
    ref = pf.feols(fml, data=df, vcov={"CRV1": "city"})
    got = res.effects().set_index("group")
    for name in names:
        k = int(name[1:]) - 100
        assert got.loc[f"k={k}", "estimate"] == pytest.approx(ref.coef()[name], abs=TOL)
        assert got.loc[f"k={k}", "se_or_sd"] == pytest.approx(ref.se()[name], abs=TOL)


@pytest.mark.unit
def test_sun_abraham_cells_equal_pyfixest(frame, panel):
    fe = "city + region^year"
    res = sun_abraham(panel, leads=2, lags=2, fe=fe, covariates=())
    f = panel.frame
    cohort, rel = f["cohort"].astype(float).to_numpy(), f["rel_time"].astype(float).to_numpy()
    df = frame.copy()
    cells = res.info["cell_estimates"]
    names = []
    for g, k in zip(cells["cohort"], cells["k"]):
        names.append(f"c{g}_{k + 100}")
        df[names[-1]] = ((cohort == g) & (rel == k)).astype(float)
    ref = pf.feols(f"eco_eff ~ {' + '.join(names)} | {fe}", data=df, vcov={"CRV1": "city"})
    np.testing.assert_allclose(cells["estimate"], ref.coef()[names].to_numpy(), atol=TOL)
    np.testing.assert_allclose(cells["se"], ref.se()[names].to_numpy(), atol=TOL)


@pytest.mark.unit
@pytest.mark.parametrize("fe, direct", [("city + region^year", "city + region_year"),
                                        ("city + plan_period", "city + plan_period")])
def test_imputation_first_stage_follows_fe(frame, panel, fe, direct):
    """The imputed effects equal a pyfixest first stage on the untreated rows with the same
    fixed effects, predicted for the treated rows (to pyfixest's demeaning tolerance;
    pyfixest cannot predict with '^' effects, so region x year is one column there)."""
    res = imputation(panel, fe=fe, covariates=["x1"], data=frame, event_time=False)
    d = panel.frame["treated"].to_numpy(bool)
    df = frame.assign(region_year=frame["region"] + frame["year"].astype(str))
    first = pf.feols(f"eco_eff ~ x1 | {direct}", data=df.loc[~d].reset_index(drop=True),
                     fixef_rm="none")
    tau = df.loc[d, "eco_eff"].to_numpy() - first.predict(newdata=df.loc[d])
    assert res.effect()["estimate"] == pytest.approx(tau.mean(), abs=1e-6)
    assert res.info["fe"] == fe


@pytest.mark.unit
def test_placebo_fast_path_follows_fe(panel):
    res = placebo(panel, "fictional_group", n_draws=20, fe="city + region^year",
                  random_seed=2, progress=False)
    assert res.real == pytest.approx(twfe(panel, fe="city + region^year").effect()["estimate"],
                                     abs=1e-6)


# ---------------------------------------------------------------------- validation
@pytest.mark.unit
def test_unknown_fe_column_is_a_column_error(panel):
    with pytest.raises(ColumnError, match="'province'") as err:
        twfe(panel, fe="city + province^year")
    assert err.value.column == "province"
    for fn in (event_study, sun_abraham, imputation):
        with pytest.raises(ColumnError, match="'province'"):
            fn(panel, fe="city + province")
    with pytest.raises(ColumnError, match="'province'"):
        HierarchicalDiD(fe="unit + province^time").prepare(panel)


@pytest.mark.unit
def test_bad_fe_values_are_typed_errors(panel, frame):
    with pytest.raises(BayesDidError, match="pyfixest-style string"):
        twfe(panel, fe=["city", "year"])
    with pytest.raises(BayesDidError, match="empty term"):
        twfe(panel, fe="city + ")
    with pytest.raises(BayesDidError, match="twice"):
        twfe(panel, fe="city + year + unit")
    with pytest.raises(BayesDidError, match="not a column name"):
        twfe(panel, fe="city + x1[year]")
    with pytest.raises(BayesDidError, match="pyfixest-style string"):
        HierarchicalDiD(fe=("unit", "time"))
    gappy = frame.assign(plan_period=frame["plan_period"].where(frame["year"] != 2006))
    with pytest.raises(MissingValueError, match="plan_period") as err:
        twfe(panel, fe="city + plan_period", data=gappy)
    assert len(err.value.rows) == 60


@pytest.mark.unit
def test_bad_covariate_formula_is_a_typed_error(panel):
    with pytest.raises(ColumnError, match="gdp"):
        twfe(panel, covariates="x1 + log(gdp)")
    with pytest.raises(BayesDidError, match="not finite"):
        twfe(panel, covariates="np.log(x1)")  # x1 takes negative values


@pytest.mark.unit
def test_inputs_are_not_mutated(panel, frame):
    before, cols = frame.copy(), list(panel.frame.columns)
    twfe(panel, fe="city + plan_period", data=frame, covariates="x1 + np.exp(x2)")
    pd.testing.assert_frame_equal(frame, before)
    assert list(panel.frame.columns) == cols


# ---------------------------------------------------------------------- pyfixest interplay
@pytest.mark.unit
def test_etable_and_iplot_run_on_bayesdid_results(panel, frame):
    import matplotlib
    matplotlib.use("Agg")
    results = [twfe(panel, fe=None), twfe(panel, fe="year"), twfe(panel, fe="city"),
               twfe(panel)]
    table = pf.etable([r.fit for r in results], type="df")
    assert "treated" in " ".join(map(str, table.index))
    assert table.shape[1] == 4
    es = event_study(panel, leads=3, lags=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pf.iplot([es.fit], plot_backend="matplotlib")


@pytest.mark.unit
def test_private_pyfixest_attributes_still_mean_what_we_read(panel):
    """classical/_fixest.py reads pyfixest's _vcov and _df_t (no public accessor in 0.60)
    under an upper pin; this fails if a pyfixest release renames or redefines them."""
    from scipy import stats

    fit = twfe(panel, fe="city + region^year").fit
    v = fit_vcov(fit)
    np.testing.assert_allclose(np.sqrt(np.diag(v)), fit.se().to_numpy(), rtol=1e-12)
    q = stats.t.ppf(0.975, fit_df(fit))
    ci = fit.confint(alpha=0.05)
    np.testing.assert_allclose(ci.iloc[:, 1].to_numpy(),
                               fit.coef().to_numpy() + q * fit.se().to_numpy(), rtol=1e-10)
    assert fit_nobs(fit) == fit._N == panel.n_obs


# ---------------------------------------------------------------------- HierarchicalDiD
def _region_shock_panel(seed=5, effect=0.3):
    """Units in four regions, region x year shocks (sd 0.4) that are larger in the regions
    where most treated units are, and a constant effect: unit + time is biased."""
    rng = np.random.default_rng(seed)
    years = np.arange(2005, 2015)
    regions = np.repeat(["A", "B", "C", "D"], 15)
    cohort = np.full(60, np.nan)
    cohort[:10], cohort[15:22] = 2009, 2011  # treated units in regions A and B only
    shock = {(r, t): rng.normal(0, 0.4) + (0.08 * (t - 2005) if r in "AB" else 0.0)
             for r in "ABCD" for t in years}
    rows = []
    for i in range(60):
        a = rng.normal(0, 0.5)
        for t in years:
            d = float(not np.isnan(cohort[i]) and t >= cohort[i])
            rows.append(dict(unit=f"u{i:02d}", year=int(t), region=regions[i],
                             cohort=cohort[i], y=a + shock[(regions[i], t)] + effect * d
                             + rng.normal(0, 0.1)))
    df = pd.DataFrame(rows)
    return Panel.from_frame(df, unit="unit", time="year", outcome="y", cohort="cohort",
                            groups=["region"])


@pytest.mark.model
def test_hierarchical_design_for_fe_forms():
    p = _region_shock_panel()
    default = HierarchicalDiD().prepare(p)
    assert default.block("time").size == 9 and default.unit_effect
    rt = HierarchicalDiD(fe="unit + region^time").prepare(p)
    # 4 regions x 10 years, the first year of each region spanned by the unit effects
    assert rt.block("fe").size == 36 and rt.unit_effect
    assert rt.coords["fe"][0] == "region=A, year=2006"
    none = HierarchicalDiD(fe=None).prepare(p)
    assert not none.unit_effect and none.block("fe").size == 1  # the constant
    year_only = HierarchicalDiD(fe="year").prepare(p)
    assert year_only.block("fe").size == 10 and not year_only.unit_effect


@pytest.mark.model
@pytest.mark.parametrize("fe", [None, "year", "unit + region^time"])
def test_marginal_loglik_equals_dense_mvn_for_fe_forms(fe):
    """The integrated likelihood (unit effects switched off without the unit term) equals
    the multivariate normal of y with every coefficient integrated out by hand."""
    from scipy import stats as st

    from bayesdid.did.hierarchical_design import _phi_matrix
    from bayesdid.did.hierarchical_model import unit_precision
    import scipy.sparse as sp

    p = _region_shock_panel()
    design = HierarchicalDiD(fe=fe, errors="iid").prepare(p)
    rng = np.random.default_rng(0)
    lam_phi = rng.uniform(0.1, 3.0, design.n_phi)
    sigma, lam_a = 0.8, unit_precision(design)
    Z = _phi_matrix(design.fe_cols, design.X, design.cell_idx,
                    sp.csr_matrix(design.cell_loadings), design.blocks, design.n_obs).toarray()
    cov = sigma**2 * np.eye(design.n_obs) + Z @ np.diag(1 / lam_phi) @ Z.T
    if design.unit_effect:
        U = np.eye(design.n_units)[design.unit_idx]
        cov += U @ U.T / lam_a
    ref = st.multivariate_normal(np.zeros(design.n_obs), cov).logpdf(design.y)
    got = marginal_loglik_np(design.stats, design.n_obs, sigma, 0.0, lam_a, lam_phi)
    assert got == pytest.approx(ref, rel=1e-10, abs=1e-8)


@pytest.mark.sampling
def test_hierarchical_region_by_year_recovers_the_effect():
    p = _region_shock_panel()
    truth = 0.3
    matching = twfe(p, fe="unit + region^time").effect()
    biased = twfe(p).effect()
    assert abs(matching["estimate"] - truth) < 2.5 * matching["se_or_sd"]
    assert abs(biased["estimate"] - truth) > 0.1  # region x year shocks bias unit + time
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = HierarchicalDiD(fe="unit + region^time", errors="iid", pool=()).fit(
            p, draws=400, tune=400, chains=2, random_seed=3, progress=False)
    eff = res.effect()
    assert eff["lower"] < truth < eff["upper"]
    assert abs(eff["estimate"] - truth) < 0.05
    assert abs(eff["estimate"] - matching["estimate"]) < 0.5 * matching["se_or_sd"]
    assert res.info["fixed_effects"] == "unit, region^year"
    assert "fe_effect" in res.idata.posterior


# ---------------------------------------------------------------------- study step
@pytest.mark.pipeline
def test_fe_ladder_step_reproduces_the_seed_table_layout(frame, panel, tmp_path):
    """A study step with the seed paper's columns OLS / time FE / unit FE / two-way (and the
    five-year-plan variant, a study-data column); each column is the direct TWFE."""
    import textwrap

    from bayesdid.study import loads_study, run_study

    csv = tmp_path / "panel.csv"
    frame.to_csv(csv, index=False)
    text = textwrap.dedent(f"""
        [study]
        name = "ladder"
        [data]
        csv = "{csv}"
        [panel]
        unit = "city"
        time = "year"
        outcome = "eco_eff"
        cohort = "cohort"
        groups = ["region"]
        covariates = ["x1", "x2", "x3"]
        [[steps]]
        kind = "fe_ladder"
        [[steps]]
        kind = "fe_ladder"
        name = "plan"
        specs = ["none", "plan_period", "unit", "unit + plan_period"]
        labels = ["OLS", "plan FE", "city FE", "city + plan FE"]
        [[steps]]
        kind = "twfe"
        fe = "city + region^year"
    """)
    run = run_study(loads_study(text), tmp_path / "out", progress=False)

    def extra(step):
        return pd.read_csv(run.paths[f"table_{step}_fe_ladder"], dtype=str,
                           keep_default_na=False).set_index("term")

    table = extra("fe_ladder")
    ladder = run.results["fe_ladder"].effects()
    assert list(table.columns) == ["OLS (no FE)", "time FE", "unit FE", "two-way FE"]
    assert table.loc["city FE"].tolist() == ["No", "No", "Yes", "Yes"]
    assert table.loc["year FE"].tolist() == ["No", "Yes", "No", "Yes"]
    for label, fe in zip(table.columns, [None, "year", "city", "city + year"]):
        want = twfe(panel, fe=fe).effect()["estimate"]
        assert float(table.loc["treated", label]) == pytest.approx(want, abs=5e-5)
        got = ladder.set_index("group").loc[f"fe={label}", "estimate"]
        assert got == pytest.approx(want, abs=1e-10)
    plan = extra("plan")
    assert list(plan.columns) == ["OLS", "plan FE", "city FE", "city + plan FE"]
    assert plan.loc["plan_period FE"].tolist() == ["No", "Yes", "No", "Yes"]
    want = twfe(panel, fe="city + plan_period", data=frame).effect()["estimate"]
    got = run.results["plan"].effects().set_index("group").loc["fe=city + plan FE", "estimate"]
    assert got == pytest.approx(want, abs=1e-10)
    assert len(run.results["fe_ladder"].fit) == 4  # the pyfixest fits, for pf.etable
    pf.etable(run.results["fe_ladder"].fit, type="df")
    rt = run.results["twfe"].effects()
    assert rt["estimate"].iloc[0] == pytest.approx(
        twfe(panel, fe="city + region^year").effect()["estimate"], abs=1e-10)
    assert (tmp_path / "out").is_dir()
