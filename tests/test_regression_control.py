"""Hsiao-Ching-Wan regression control: subset search, inference, pilot-zone-like recovery."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from bayesdid import Panel
from bayesdid.synthetic.regression_control import (
    RegressionControlResult,
    best_subsets,
    regression_control,
    regression_control_placebo_time,
)
from bayesdid.datasets import info, load

EFFECT = 1.0


def pilot_like(seed: int, *, n: int = 29, T: int = 17, T0: int = 13, r: int = 3,
               noise: float = 0.1) -> Panel:
    """29 provinces 2004-2020, 3 treated from 2017, r-factor model, effect EFFECT."""
    rng = np.random.default_rng(seed)
    f = np.cumsum(rng.normal(0, 0.3, (T, r)), axis=0) + rng.normal(0, 1, (T, r))
    lam = rng.normal(1, 0.5, (n, r))
    y = rng.normal(0, 1, n) + f @ lam.T + rng.normal(0, noise, (T, n))
    d = np.zeros((T, n), int)
    d[T0:, :3] = 1
    y = y + EFFECT * d
    names = ["Fujian", "Jiangxi", "Guizhou"] + [f"prov{i:02d}" for i in range(n - 3)]
    df = pd.DataFrame({"province": np.repeat(names, T),
                           "year": np.tile(np.arange(2004, 2004 + T), n),
                           "y": y.T.ravel(), "d": d.T.ravel()})
    return Panel.from_frame(df, unit="province", time="year", outcome="y", treat="d")


@pytest.fixture(scope="module")
def pilot_fit():
    return regression_control(pilot_like(11), progress=False)


@pytest.mark.unit
def test_best_subsets_exhaustive_matches_brute_force():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(15, 8))
    y = X[:, 2] - 0.5 * X[:, 5] + X[:, 7] + rng.normal(0, 0.3, 15)
    found = best_subsets(y, X, 4)
    for k, (subset, rss, how) in enumerate(found, start=1):
        brute = min(itertools.combinations(range(8), k),
                    key=lambda s: sm.OLS(y, sm.add_constant(X[:, list(s)])).fit().ssr)
        assert subset == brute and how == "exhaustive"
        assert rss == pytest.approx(sm.OLS(y, sm.add_constant(X[:, list(subset)])).fit().ssr)
    greedy = best_subsets(y, X, 4, max_exhaustive=30)
    assert [h for *_, h in greedy] == ["exhaustive", "exhaustive", "greedy", "greedy"]
    assert greedy[2][0] == found[2][0]  # the swap search finds the true best here


@pytest.mark.unit
def test_pilot_like_recovery(pilot_fit):
    res = pilot_fit
    assert isinstance(res, RegressionControlResult)
    tab = res.effects()
    units = tab[(tab["estimand"] == "att") & (tab["group"] != "overall")]
    assert list(units["group"]) == ["unit=Fujian", "unit=Guizhou", "unit=Jiangxi"]
    assert np.abs(units["estimate"] - EFFECT).max() < 0.5
    # AICc picks a sensible subset: a few donors (3 factors), never near the 9 allowed
    sizes = [len(c) - 1 for c in res.coefficients.values()]
    assert all(2 <= k <= 7 for k in sizes), sizes
    sel = res.selection.query("selected")
    assert list(sel["size"]) == sizes
    overall = res.effect()
    assert overall["estimate"] == pytest.approx(units["estimate"].mean())
    assert overall["se_or_sd"] == pytest.approx(np.sqrt((units["se_or_sd"] ** 2).sum()) / 3)
    assert overall["lower"] < EFFECT < overall["upper"]
    np.testing.assert_allclose(units["t_stat"], units["estimate"] / units["se_or_sd"])


@pytest.mark.slow
def test_pilot_like_coverage_per_unit():
    """The true effect inside each unit's 95% interval: 6 panels x 3 treated provinces."""
    covered, pooled, n = 0, 0, 0
    for seed in range(6):
        res = regression_control(pilot_like(100 + seed), progress=False)
        tab = res.effects()
        units = tab[(tab["estimand"] == "att") & (tab["group"] != "overall")]
        covered += int(((units["lower"] < EFFECT) & (units["upper"] > EFFECT)).sum())
        n += len(units)
        pooled += res.effect()["lower"] < EFFECT < res.effect()["upper"]
    # measured 15/18 here; over 40 such panels 113/120 = 94% (pooled 38/40)
    assert covered >= 15, f"{covered}/{n} unit intervals cover"
    assert pooled >= 5


@pytest.mark.unit
def test_counterfactual_is_the_selected_ols(pilot_fit):
    coefs = pilot_fit.coefficients["Fujian"]
    panel = pilot_like(11)
    wide = panel.frame.pivot(index="year", columns="province", values="y")
    pre = wide.index < 2017
    fit = sm.OLS(wide.loc[pre, "Fujian"], sm.add_constant(wide.loc[pre, coefs.index[1:]])).fit()
    np.testing.assert_allclose(fit.params.to_numpy(), coefs.to_numpy(), rtol=1e-8)
    path = pilot_fit.path.query("unit == 'Fujian'").set_index("time")
    pred = sm.add_constant(wide[coefs.index[1:]]) @ fit.params.to_numpy()
    np.testing.assert_allclose(path["counterfactual"], pred.to_numpy(), rtol=1e-8)
    att = pilot_fit.effect("att", "unit=Fujian")["estimate"]
    assert att == pytest.approx(path.loc[2017:, "gap"].mean())


@pytest.mark.unit
def test_se_options_and_criteria():
    panel = pilot_like(3)
    cv = regression_control(panel, treated=["Fujian"], progress=False)
    pred = regression_control(panel, treated=["Fujian"], se="prediction", progress=False)
    simple = regression_control(panel, treated=["Fujian"], se="simple", progress=False)
    hac = regression_control(panel, treated=["Fujian"], se="hac", progress=False)
    assert cv.effect()["estimate"] == pred.effect()["estimate"] == hac.effect()["estimate"]
    # cross-validation of the whole subset search is wider than the in-sample s^2
    assert cv.effect()["se_or_sd"] > pred.effect()["se_or_sd"]
    gaps = simple.path.query("post")["gap"]
    assert simple.effect()["se_or_sd"] == pytest.approx(gaps.std(ddof=1) / 2)
    assert np.isfinite(hac.effect()["se_or_sd"])
    assert cv.info["df"] == 12 and "unit=Fujian" not in set(cv.effects()["group"])
    sizes = {c: len(regression_control(panel, treated=["Fujian"], criterion=c, se="prediction",
                                       progress=False).coefficients["Fujian"]) - 1
             for c in ("aicc", "aic", "bic")}
    assert sizes["aicc"] <= sizes["aic"]  # AICc penalises size hardest at T1 = 13


@pytest.mark.reference
def test_prop99_and_time_placebo():
    panel = Panel.from_frame(load("prop99"), **info("prop99")["panel_kwargs"])
    res = regression_control(panel, se="prediction", progress=False)
    assert res.effect()["estimate"] < -10  # cigarette sales fell after Prop 99
    sel = res.selection
    assert set(sel["search"]) == {"exhaustive", "greedy"} and sel["selected"].sum() == 1
    assert (np.diff(sel["rss"]) <= 1e-9).all()  # best RSS falls with size
    placebo = regression_control_placebo_time(panel, 1982, se="cv", progress=False)
    row = placebo.effect()
    assert placebo.info["fake_start"] == 1982 and row["lower"] < 0 < row["upper"]


@pytest.mark.slow
def test_pilot_zone_simulator_truth_inside_each_unit_interval():
    """On the project's pilot-zone simulator (3 of 29 provinces treated from 2017)."""
    from bayesdid.datasets import simulate_pilot as sim_mod
    covered, n, sizes = 0, 0, []
    for seed in range(5):
        sim = sim_mod.simulate_pilot_zones(random_seed=seed)
        res = regression_control(Panel.from_frame(sim.data, **sim.panel_kwargs), progress=False)
        truth = sim.truth.query("estimand == 'att'").set_index("group")["value"]
        tab = res.effects().query("estimand == 'att'").set_index("group")
        for group, row in tab.iterrows():
            covered += row["lower"] < truth[group] < row["upper"]
            n += 1
        sizes += [len(c) - 1 for c in res.coefficients.values()]
    assert covered >= n - 1, f"{covered}/{n}"  # measured 20/20 (10 seeds: 29/30 unit rows)
    assert 2 <= np.mean(sizes) <= 6 and max(sizes) <= 8
