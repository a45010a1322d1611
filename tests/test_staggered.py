"""Sun-Abraham and BJS imputation estimators (bayesdid.staggered.estimators)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesdid import Panel
from bayesdid.classical import twfe
from bayesdid.did._fixest import pf
from bayesdid.staggered.estimators import imputation, sun_abraham
from bayesdid.datasets import simulate_staggered
from bayesdid.errors import BayesDidError

SIM = {"n_units": 200, "years": (2005, 2016), "batches": {2008: 30, 2011: 30}, "random_seed": 11}
NO_REGION = {"East": 0.0, "Central": 0.0, "West": 0.0, "Northeast": 0.0}


def _panel(**kw):
    sim = simulate_staggered(**{**SIM, **kw})
    return sim, Panel.from_frame(sim.data, **sim.panel_kwargs)


def _with_truth(res, sim):
    table = res.effects()
    truth = sim.truth.set_index(["estimand", "group"])["value"]
    table["truth"] = [truth.get((e, g), np.nan) for e, g in zip(table["estimand"], table["group"])]
    return table


def _max_err(table):
    hit = table.dropna(subset=["truth"])
    return float((hit["estimate"] - hit["truth"]).abs().max()), len(hit)


@pytest.fixture(scope="module")
def noise_free():
    return _panel(sigma=0.0)


# ------------------------------------------------------------------ imputation
@pytest.mark.unit
def test_imputation_recovers_truth_noise_free(noise_free):
    # full DGP: unit + year FE, covariates, effects by cohort, region and event time
    sim, panel = noise_free
    res = imputation(panel)
    table = _with_truth(res, sim)
    err, n = _max_err(table)
    assert err < 1e-8
    # overall + 2 cohorts + every post event time of the truth
    n_k = (sim.truth["group"].str.fullmatch(r"k=-?\d+")).sum()
    assert n == 3 + n_k
    assert res.method == "imputation" and (table["method"] == "imputation").all()
    assert res.effect()["n_obs"] == int(panel.frame["treated"].sum())


@pytest.mark.unit
def test_imputation_equals_by_hand_feols_imputation():
    """The BJS imputation estimates equal a by-hand imputation with pyfixest (feols on
    untreated rows, predict Y0 for treated rows)."""
    _sim, panel = _panel()  # noisy default sigma
    res = imputation(panel)
    df = panel.data
    fit0 = pf.feols("eco_eff ~ x1 + x2 + x3 | city + year", data=df[df["treated"] == 0])
    treated = df[df["treated"] == 1].copy()
    treated["gap"] = treated["eco_eff"] - fit0.predict(newdata=treated)
    treated["k"] = (treated["year"] - treated["cohort"]).astype(int)
    expected = {("att", "overall"): treated["gap"].mean()}
    expected |= {("att", f"cohort={int(g)}"): v for g, v in treated.groupby("cohort")["gap"].mean().items()}
    expected |= {("event_time", f"k={k}"): v for k, v in treated.groupby("k")["gap"].mean().items()}
    got = res.effects().set_index(["estimand", "group"])["estimate"]
    assert set(got.index) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-10)
    assert (res.effects()["se_or_sd"] > 0).all()


# ------------------------------------------------------------------ Sun-Abraham
@pytest.mark.unit
def test_sun_abraham_recovers_truth_when_cells_homogeneous():
    # effects by cohort and event time (no region shift): every cohort x k cell is constant
    sim, panel = _panel(sigma=0.0, region_effects=NO_REGION)
    res = sun_abraham(panel)
    table = _with_truth(res, sim)
    err, n = _max_err(table)
    assert err < 1e-8
    assert n == 3 + (sim.truth["group"].str.fullmatch(r"k=-?\d+")).sum()
    pre = table[(table["estimand"] == "event_time") & table["truth"].isna()]
    assert len(pre) and pre["estimate"].abs().max() < 1e-8  # leads are exactly zero
    assert "k=-1" not in set(table["group"])


@pytest.mark.unit
def test_sun_abraham_noise_free_full_dgp(noise_free):
    """With region heterogeneity inside cohort x k cells AND covariates, the saturated
    regression's covariate slope absorbs a little of that heterogeneity (it is correlated
    with x), so SA is close but not exact; without covariates in the DGP it is exact."""
    sim, panel = noise_free
    err, _ = _max_err(_with_truth(sun_abraham(panel), sim))
    assert 1e-8 < err < 1e-3
    sim0, panel0 = _panel(sigma=0.0, n_covariates=0)
    err0, n0 = _max_err(_with_truth(sun_abraham(panel0), sim0))
    assert err0 < 1e-8 and n0 > 3


@pytest.mark.unit
def test_twfe_farther_from_truth_than_both(noise_free):
    sim, panel = noise_free
    truth = sim.truth.query("estimand == 'att' and group == 'overall'")["value"].item()
    err = {name: abs(fn(panel).effect()["estimate"] - truth)
           for name, fn in (("twfe", twfe), ("sa", sun_abraham), ("bjs", imputation))}
    assert err["twfe"] > 1e-3
    assert err["twfe"] > 10 * err["sa"] and err["twfe"] > 10 * err["bjs"]


@pytest.mark.unit
def test_sun_abraham_equals_pyfixest_saturated():
    # pyfixest's saturated event study (no covariates) aggregated by relative time
    _sim, panel = _panel()
    res = sun_abraham(panel, covariates=(), leads=20, lags=20)
    ours = res.effects().query("estimand == 'event_time'")
    df = panel.data
    df["g"] = df["cohort"].fillna(0).astype(int)
    df["uid"] = pd.factorize(df["city"])[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = pf.event_study(df, yname="eco_eff", idname="uid", tname="year", gname="g",
                             estimator="saturated", cluster="uid")
        agg = fit.aggregate()
    theirs = agg.rename(index=lambda k: f"k={int(k)}")
    assert list(ours["group"]) == list(theirs.index)
    np.testing.assert_allclose(ours["estimate"], theirs["Estimate"].astype(float), atol=1e-10)
    np.testing.assert_allclose(ours["se_or_sd"], theirs["Std. Error"].astype(float), rtol=1e-8)


@pytest.mark.unit
def test_sun_abraham_covers_truth_noisy():
    # one fixed seed (11) of the default noisy DGP (sigma=0.05, AR(1) rho=0.5)
    sim, panel = _panel()
    table = _with_truth(sun_abraham(panel), sim)
    hit = table.dropna(subset=["truth"])
    assert len(hit) == 3 + (sim.truth["group"].str.fullmatch(r"k=-?\d+")).sum()
    assert ((hit["lower"] <= hit["truth"]) & (hit["truth"] <= hit["upper"])).all()
    bjs = _with_truth(imputation(panel), sim)
    att = bjs[(bjs["estimand"] == "att") & (bjs["group"] == "overall")].iloc[0]
    assert att["lower"] <= att["truth"] <= att["upper"]


@pytest.mark.unit
def test_last_treated_cohort_as_control():
    # no never-treated units: cutting the data before the last cohort adopts (2011) makes
    # it the control (Panel codes it never-treated), SA's last-treated-control design
    sim = simulate_staggered(n_units=40, years=(2005, 2014), batches={2007: 20, 2010: 19},
                             sigma=0.0, region_effects=NO_REGION, random_seed=1)
    df = sim.data[sim.data["cohort"].notna() & (sim.data["year"] < 2011)]
    panel = Panel.from_frame(df, **sim.panel_kwargs)
    assert panel.cohorts == [2008]
    slope, c_eff = sim.params["slope"], sim.params["cohort_effects"][2007]
    for fn in (sun_abraham, imputation):
        table = fn(panel).effects()
        post = table.query("estimand == 'event_time'").set_index("group")["estimate"]
        for k in (0, 1, 2):
            assert post[f"k={k}"] == pytest.approx(c_eff + slope * k, abs=1e-8)
        assert "k=3" not in post.index
        assert set(table.query("estimand == 'att'")["group"]) == {"overall", "cohort=2008"}


@pytest.mark.unit
def test_sun_abraham_rejects_bad_window(noise_free):
    _, panel = noise_free
    with pytest.raises(BayesDidError):
        sun_abraham(panel, leads=0)
