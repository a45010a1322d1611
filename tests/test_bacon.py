"""Goodman-Bacon (2021) decomposition of the TWFE coefficient."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyfixest as pf
import pytest

from bayesdid import Panel
from bayesdid.classical import twfe
from bayesdid.staggered.bacon import BaconResult, bacon_decomposition
from bayesdid.datasets import load, simulate_staggered
from bayesdid.errors import BayesDidError, DesignError, WeightsError
from bayesdid.panel import LogEntry
from bayesdid.results import EFFECT_COLUMNS

TYPES = {"earlier_vs_later", "later_vs_earlier", "treated_vs_never"}


@pytest.fixture(scope="module")
def castle_panel():
    return Panel.from_frame(load("castle"), unit="sid", time="year", outcome="l_homicide",
                            cohort="cohort", groups=["region"])


@pytest.fixture(scope="module")
def castle_bacon(castle_panel):
    return bacon_decomposition(castle_panel)


def _sim_panel(**kw):
    sim = simulate_staggered(**kw)
    kwargs = {k: v for k, v in sim.panel_kwargs.items() if k not in ("covariates", "weights")}
    return Panel.from_frame(sim.data, **kwargs)


def _drop_never(panel: Panel) -> Panel:
    f = panel.frame
    return panel.with_frame(f[~f["never_treated"]], LogEntry("test", "drop never-treated"))


def _check_identity(res: BaconResult):
    assert res.table["weight"].sum() == pytest.approx(1.0, abs=1e-12)
    assert (res.table["weight"] >= 0).all()
    assert res.weighted_sum == pytest.approx(res.twfe, abs=1e-10)


def _hand_did(panel: Panel, treated_cohort, control_cohort, window) -> float:
    """2x2 DID from group-period means on the subsample, written from scratch:
    (treated post - treated pre) - (control post - control pre), post = t >= treated cohort."""
    f = panel.data
    t = f[panel.time]
    in_window = (t >= window[0]) & (t <= window[1])
    is_treat = f["cohort"] == treated_cohort
    is_ctrl = f["never_treated"] if control_cohort == "never" else f["cohort"] == control_cohort
    sub = f[in_window & (is_treat.fillna(False) | is_ctrl.fillna(False))].copy()
    sub["g"] = np.where((sub["cohort"] == treated_cohort).fillna(False), "T", "C")
    sub["post"] = sub[panel.time] >= treated_cohort
    m = sub.groupby(["g", "post"])[panel.outcome].mean()
    return (m["T", True] - m["T", False]) - (m["C", True] - m["C", False])


def _subsample_twfe(panel: Panel, treated_cohort, control_cohort, window) -> float:
    """The same 2x2 as a TWFE regression on the subsample (pyfixest)."""
    f = panel.data
    t = f[panel.time]
    is_ctrl = f["never_treated"] if control_cohort == "never" else f["cohort"] == control_cohort
    is_treat = (f["cohort"] == treated_cohort).fillna(False)
    sub = f[(t >= window[0]) & (t <= window[1]) & (is_treat | is_ctrl.fillna(False))].copy()
    sub["d"] = ((sub["cohort"] == treated_cohort).fillna(False)
                & (sub[panel.time] >= treated_cohort)).astype(float)
    fit = pf.feols(f"{panel.outcome} ~ d | {panel.unit} + {panel.time}", data=sub)
    return float(fit.coef()["d"])


# ------------------------------------------------------------------ the identity
@pytest.mark.unit
def test_castle_weights_sum_to_one_and_reproduce_twfe(castle_panel, castle_bacon):
    res = castle_bacon
    _check_identity(res)
    direct = pf.feols("l_homicide ~ treated | sid + year", data=castle_panel.data)
    assert res.twfe == pytest.approx(float(direct.coef()["treated"]), abs=1e-12)
    assert res.twfe == pytest.approx(
        float(twfe(castle_panel, covariates=(), weights="").effect()["estimate"]), abs=1e-12)
    # 5 cohorts and never-treated units: 5 treated-vs-never + 2 * C(5, 2) timing comparisons
    assert len(res.table) == 25
    assert set(res.table["type"]) == TYPES
    assert list(res.table.columns[:5]) == ["treated_cohort", "control_cohort", "type",
                                           "estimate", "weight"]


@pytest.mark.unit
@pytest.mark.parametrize("kw", [
    {"n_units": 40, "years": (2005, 2014), "batches": {2008: 5, 2010: 6}, "random_seed": 1},
    {"n_units": 60, "years": (2003, 2015), "batches": {2005: 4, 2008: 9, 2011: 7, 2013: 3},
     "random_seed": 7},
    {"n_units": 30, "years": (2001, 2010), "batches": {2004: 10}, "random_seed": 3},
])
def test_simulated_identity(kw):
    panel = _sim_panel(**kw)
    res = bacon_decomposition(panel)
    _check_identity(res)
    n_cohorts = len(panel.cohorts)
    assert len(res.table) == n_cohorts + n_cohorts * (n_cohorts - 1)


@pytest.mark.unit
def test_panel_without_never_treated_units():
    panel = _drop_never(_sim_panel(n_units=50, years=(2004, 2014),
                                   batches={2006: 8, 2009: 10, 2011: 6}, random_seed=5))
    assert not panel.frame["never_treated"].any()
    res = bacon_decomposition(panel)
    _check_identity(res)
    assert set(res.table["type"]) == {"earlier_vs_later", "later_vs_earlier"}
    assert (res.table["control_cohort"] != "never").all()


# ------------------------------------------------------------------ each 2x2 by hand
@pytest.mark.unit
@pytest.mark.parametrize("source", ["castle", "sim"])
def test_each_type_matches_a_hand_2x2(source, castle_panel, castle_bacon):
    if source == "castle":
        panel, res = castle_panel, castle_bacon
    else:
        panel = _sim_panel(n_units=60, years=(2003, 2015),
                           batches={2005: 4, 2008: 9, 2011: 7}, random_seed=11)
        res = bacon_decomposition(panel)
    t0, t1 = int(panel.times.min()), int(panel.times.max())
    checked = set()
    for r in res.table.itertuples(index=False):
        if r.type == "treated_vs_never":
            window = (t0, t1)
        elif r.type == "earlier_vs_later":  # before the later (control) cohort is treated
            window = (t0, int(r.control_cohort) - 1)
        else:  # from the earlier (control) cohort's first treated period on
            window = (int(r.control_cohort), t1)
        hand = _hand_did(panel, r.treated_cohort, r.control_cohort, window)
        assert r.estimate == pytest.approx(hand, abs=1e-12), (r, hand)
        if r.type not in checked:  # one of each type also as a subsample TWFE regression
            assert r.estimate == pytest.approx(
                _subsample_twfe(panel, r.treated_cohort, r.control_cohort, window), abs=1e-10)
            checked.add(r.type)
    assert checked == TYPES


# ------------------------------------------------------------------ outputs
@pytest.mark.unit
def test_effects_summary_plot(castle_bacon):
    res = castle_bacon
    eff = res.effects()
    assert list(eff.columns[:len(EFFECT_COLUMNS)]) == EFFECT_COLUMNS
    assert len(eff) == len(res.table) + 1
    assert not eff.duplicated(["estimand", "group"]).any()
    att = eff[(eff["estimand"] == "att") & (eff["group"] == "overall")].iloc[0]
    assert att["estimate"] == pytest.approx(res.twfe, abs=1e-10)
    assert att["n_obs"] == 550
    two = eff[eff["estimand"] == "bacon_2x2"]
    assert "cohort=2007 vs never" in set(two["group"])
    assert "cohort=2009 vs cohort=2007" in set(two["group"])
    assert two["se_or_sd"].isna().all() and two["lower"].isna().all()
    assert (eff["method"] == "bacon").all() and (eff["level"] == 0.95).all()

    summ = res.summary()
    assert set(summ["type"]) == TYPES
    assert summ["weight"].sum() == pytest.approx(1.0, abs=1e-12)
    assert (summ["weight"] * summ["estimate"]).sum() == pytest.approx(res.twfe, abs=1e-10)
    assert summ["n_comparisons"].sum() == len(res.table)

    from matplotlib.figure import Figure
    fig = res.plot()
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.collections) == 3  # one scatter per type
    assert ax.lines[0].get_ydata()[0] == pytest.approx(res.twfe)


@pytest.mark.unit
def test_result_is_not_changed_through_its_outputs(castle_bacon):
    before = castle_bacon.table.copy()
    eff, summ = castle_bacon.effects(), castle_bacon.summary()
    eff.loc[0, "estimate"] = 99.0
    summ.loc[0, "weight"] = 99.0
    pd.testing.assert_frame_equal(castle_bacon.table, before)


# ------------------------------------------------------------------ bad inputs
@pytest.mark.unit
def test_unbalanced_panel_raises(castle_panel):
    f = castle_panel.frame
    unbalanced = castle_panel.with_frame(f.drop(index=[3, 40]), LogEntry("test", "drop rows"))
    with pytest.raises(DesignError, match="balanced") as err:
        bacon_decomposition(unbalanced)
    assert err.value.column == "sid" and len(err.value.rows) == 2


@pytest.mark.unit
def test_weights_and_covariates_raise_unless_switched_off():
    castle = load("castle")
    weighted = Panel.from_frame(castle, unit="sid", time="year", outcome="l_homicide",
                                cohort="cohort", weights="popwt", covariates=["l_police"])
    with pytest.raises(DesignError, match="covariates") as err:
        bacon_decomposition(weighted)
    assert err.value.column == "l_police"
    with pytest.raises(WeightsError, match="unweighted") as err:
        bacon_decomposition(weighted, covariates=())
    assert err.value.column == "popwt"
    with pytest.raises(DesignError, match="covariates"):
        bacon_decomposition(weighted, covariates=["l_police"], weights="")
    res = bacon_decomposition(weighted, covariates=(), weights="")
    _check_identity(res)


@pytest.mark.unit
def test_not_a_panel_and_no_comparison_raise(castle_panel):
    with pytest.raises(BayesDidError, match="Panel"):
        bacon_decomposition(castle_panel.data)
    f = castle_panel.frame
    one = castle_panel.with_frame(f[f["cohort"] == 2007], LogEntry("test", "one cohort"))
    with pytest.raises(DesignError, match="single treatment cohort"):
        bacon_decomposition(one)
