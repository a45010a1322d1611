"""Heterogeneity by group, cohort, median split; Bayesian posterior contrasts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesdid import Panel
from bayesdid.did.contrasts import contrast_table, posterior_contrasts
from bayesdid.did._fixest import pf
from bayesdid.checks.heterogeneity import heterogeneity, with_median_split
from bayesdid.datasets import simulate_staggered
from bayesdid.errors import BayesDidError, ColumnError, DesignError

REGION_EFFECTS = {"East": 0.04, "Central": 0.0, "West": -0.03, "Northeast": 0.02}


@pytest.fixture(scope="module")
def sim():
    # constant effect over exposure time (slope=0) and across batches: TWFE is unbiased, so
    # the region contrasts are the only heterogeneity
    return simulate_staggered(n_units=200, years=(2005, 2016), batches={2008: 30, 2011: 40},
                              cohort_effects={2008: 0.05, 2011: 0.05},
                              region_effects=REGION_EFFECTS, slope=0.0, sigma=0.02, rho=0.3,
                              random_seed=11)


@pytest.fixture(scope="module")
def panel(sim):
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


def _truth(sim, group):
    t = sim.truth
    return float(t.loc[(t["estimand"] == "att") & (t["group"] == group), "value"].iloc[0])


@pytest.mark.unit
@pytest.mark.parametrize("kind", ["interaction", "subsample"])
def test_region_effects_cover_truth_and_differ(sim, panel, kind):
    res = heterogeneity(panel, "region", kind=kind)
    table = res.effects().set_index("group")
    assert sorted(table.index) == [f"region={r}" for r in sorted(REGION_EFFECTS)]
    for group, row in table.iterrows():
        truth = _truth(sim, group)
        assert row["lower"] <= truth <= row["upper"], (group, row["estimate"], truth)
    test = res.info["equality_test"]
    assert test["df"] == 3
    assert test["p_value"] < 1e-3  # East 0.09 vs West 0.02: clearly unequal


@pytest.mark.unit
def test_equal_effects_are_not_rejected():
    sim = simulate_staggered(n_units=200, years=(2005, 2016), batches={2008: 30, 2011: 40},
                             cohort_effects={2008: 0.05, 2011: 0.05},
                             region_effects=dict.fromkeys(REGION_EFFECTS, 0.0), slope=0.0,
                             sigma=0.02, rho=0.3, random_seed=12)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    for kind in ("interaction", "subsample"):
        assert heterogeneity(panel, "region", kind=kind).info["equality_test"]["p_value"] > 0.05


@pytest.mark.unit
def test_subsample_matches_direct_pyfixest(sim, panel):
    res = heterogeneity(panel, "region", kind="subsample", covariates=())
    sub = sim.data[sim.data["region"] == "West"].copy()
    fit = pf.feols("eco_eff ~ treated | city + year", data=sub, vcov={"CRV1": "city"})
    row = res.effect("att", "region=West")
    assert row["estimate"] == pytest.approx(float(fit.coef()["treated"]), abs=1e-10)
    assert row["se_or_sd"] == pytest.approx(float(fit.se()["treated"]), rel=1e-8)


@pytest.mark.unit
def test_interaction_matches_direct_pyfixest(sim, panel):
    res = heterogeneity(panel, "cohort", covariates=())
    data = sim.data.copy()
    for c in (2009, 2012):
        data[f"d{c}"] = data["treated"] * data["cohort"].eq(c).fillna(False).astype(int)
    fit = pf.feols("eco_eff ~ d2009 + d2012 | city + year", data=data, vcov={"CRV1": "city"})
    assert res.effect("att", "cohort=2009")["estimate"] == pytest.approx(
        float(fit.coef()["d2009"]), abs=1e-10)
    assert res.effect("att", "cohort=2012")["estimate"] == pytest.approx(
        float(fit.coef()["d2012"]), abs=1e-10)


@pytest.mark.unit
def test_median_split_is_unit_level_balanced_and_logged(panel):
    before = panel.frame.copy()
    split = with_median_split(panel, "x1")
    pd.testing.assert_frame_equal(panel.frame, before)  # the input panel is untouched
    per_unit = split.frame.groupby(panel.unit)["x1_split"].agg(["nunique", "first"])
    assert (per_unit["nunique"] == 1).all()
    assert per_unit["first"].value_counts().to_dict() == {"above": 100, "below": 100}
    assert split.log[-1].step == "median_split"
    res = heterogeneity(split, "x1_split")
    assert set(res.effects()["group"]) == {"x1_split=above", "x1_split=below"}


@pytest.mark.unit
def test_bad_inputs(panel):
    with pytest.raises(ColumnError, match="not in the panel"):
        heterogeneity(panel, "province")
    with pytest.raises(ColumnError, match="varies within unit") as err:
        heterogeneity(panel, "x1")
    assert err.value.rows is not None and len(err.value.rows) > 0
    with pytest.raises(DesignError, match="kind"):
        heterogeneity(panel, "region", kind="pooled")
    one_level = with_median_split(panel, "x2")
    frame = one_level.frame.assign(x2_split="all")
    with pytest.raises(DesignError, match="at least two levels"):
        heterogeneity(one_level.with_frame(frame, one_level.log[-1]), "x2_split")


@pytest.mark.unit
def test_contrast_table_probabilities():
    rng = np.random.default_rng(3)
    draws = {"a": rng.normal(0.2, 0.1, 20000), "b": rng.normal(0.0, 0.1, 20000)}
    row = contrast_table(draws).iloc[0]
    # P(a - b > 0) with a - b ~ N(0.2, 0.1 * sqrt 2)
    assert row["prob_greater"] == pytest.approx(0.9214, abs=0.01)
    assert row["difference"] == pytest.approx(0.2, abs=0.005)
    with pytest.raises(BayesDidError, match="equal lengths"):
        contrast_table({"a": np.zeros(3), "b": np.zeros(4)})


@pytest.mark.sampling
def test_bayesian_region_contrasts(sim, panel):
    from bayesdid.did.hierarchical import HierarchicalDiD

    res = HierarchicalDiD(pool=["region"]).fit(panel, draws=300, tune=300, chains=2,
                                               random_seed=5, progress=False)
    table = posterior_contrasts(res, prefix="region=")
    assert len(table) == 6
    pair = table[(table["group_a"].isin(["region=East", "region=West"]))
                 & (table["group_b"].isin(["region=East", "region=West"]))].iloc[0]
    east_minus_west = pair["difference"] * (1 if pair["group_a"] == "region=East" else -1)
    truth = _truth(sim, "region=East") - _truth(sim, "region=West")
    assert pair["lower"] <= truth * (1 if pair["group_a"] == "region=East" else -1) <= pair["upper"]
    assert east_minus_west > 0
    p_east = pair["prob_greater"] if pair["group_a"] == "region=East" else 1 - pair["prob_greater"]
    assert p_east > 0.99
    with pytest.raises(BayesDidError, match="no 'att' effect"):
        posterior_contrasts(res, groups=["region=Mars", "region=East"])
