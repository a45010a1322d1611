"""Callaway & Sant'Anna (2021) ATT(g, t) and aggregations (bayesdid.staggered.callaway_santanna)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesdid import Panel
from bayesdid.staggered.callaway_santanna import callaway_santanna
from bayesdid.datasets import load, simulate_staggered
from bayesdid.errors import BayesDidError, DesignError
from bayesdid.panel import LogEntry

REF = Path(__file__).parent / "reference" / "callaway_santanna"
SIM = {"n_units": 200, "years": (2005, 2016), "batches": {2008: 30, 2011: 30}, "random_seed": 3}


def _panel(**kw):
    sim = simulate_staggered(**{**SIM, **kw})
    return sim, Panel.from_frame(sim.data, **sim.panel_kwargs)


def _true_att_gt(sim) -> pd.Series:
    """Mean true tau per (cohort, year), keyed by the result's group label."""
    tau = sim.tau.merge(sim.data[["city", "year", "cohort"]], on=["city", "year"])
    cell = tau.groupby(["cohort", "year"])["tau"].mean()
    return pd.Series(cell.to_numpy(),
                     index=[f"cohort={int(g)}, t={int(t)}" for g, t in cell.index])


@pytest.fixture(scope="module")
def noise_free():
    # n_covariates=0: the simulator's covariates trend with pilot status, so without them
    # parallel trends would fail; with none, unconditional parallel trends hold exactly.
    return _panel(sigma=0.0, n_covariates=0)


@pytest.mark.unit
@pytest.mark.parametrize("method", ["reg", "ipw", "dr"])
def test_noise_free_recovers_att_gt(noise_free, method):
    sim, panel = noise_free
    tab = callaway_santanna(panel, method=method).effects()
    gt = tab[tab["estimand"] == "att_gt"].set_index("group")["estimate"]
    truth = _true_att_gt(sim)
    post = gt.loc[truth.index]
    assert len(truth) == 8 + 5  # cohort 2009: 2009..2016; cohort 2012: 2012..2016
    np.testing.assert_allclose(post.to_numpy(), truth.to_numpy(), atol=1e-10)
    pre = gt.drop(truth.index)
    np.testing.assert_allclose(pre.to_numpy(), 0.0, atol=1e-10)  # pre-trend pseudo-ATTs
    assert (tab["method"] == "callaway_santanna").all()


@pytest.mark.unit
def test_noise_free_dynamic_and_group(noise_free):
    sim, panel = noise_free
    res = callaway_santanna(panel, method="reg")
    tab = res.effects()
    truth = sim.truth.set_index(["estimand", "group"])["value"]
    # dynamic: cohort-size weights over cohorts at each e = the observation-weighted mean of
    # tau at event time e (balanced panel), i.e. sim.truth's event-time rows
    ev = tab[tab["estimand"] == "event_time"].set_index("group")["estimate"]
    ks = [g for (e, g) in truth.index if e == "event_time" and g.startswith("k=")]
    np.testing.assert_allclose(ev.loc[ks].to_numpy(), truth.loc["event_time"].loc[ks].to_numpy(),
                               atol=1e-10)
    # by cohort: equal weights over the cohort's post periods = observation-weighted mean
    for g in (2009, 2012):
        assert res.effect("att", f"cohort={g}")["estimate"] == pytest.approx(
            truth["att", f"cohort={g}"], abs=1e-10)
    # simple: post ATT(g, t) weighted by cohort size = mean of tau over treated unit-years,
    # which is exactly sim.truth's observation-weighted overall ATT (balanced panel)
    assert res.effect("att", "overall")["estimate"] == pytest.approx(truth["att", "overall"],
                                                                     abs=1e-10)
    # calendar t: cohort-size weighted mean of ATT(g, t) over cohorts treated by t
    att_gt = _true_att_gt(sim)
    sizes = sim.data.dropna(subset=["cohort"]).groupby("cohort")["city"].nunique()
    t = 2013
    num = sum(att_gt[f"cohort={g}, t={t}"] * sizes[g] for g in (2009, 2012))
    assert res.effect("calendar", f"t={t}")["estimate"] == pytest.approx(
        num / (sizes[2009] + sizes[2012]), abs=1e-10)


@pytest.mark.unit
def test_noisy_truth_inside_dynamic_intervals():
    # fixed seed 3, sigma=0.05 (default), no covariates in the DGP: every true event-time
    # effect k=0..7 lies inside its 95% interval for this seed (not a coverage test)
    sim, panel = _panel(n_covariates=0)
    tab = callaway_santanna(panel, method="dr").effects()
    truth = sim.truth[sim.truth["group"].str.startswith("k=")].set_index("group")["value"]
    ev = tab[tab["estimand"] == "event_time"].set_index("group").loc[truth.index]
    assert ((ev["lower"] <= truth) & (truth <= ev["upper"])).all()
    assert (ev["se_or_sd"] > 0).all()


@pytest.mark.unit
def test_options_and_errors(noise_free):
    _sim, panel = noise_free
    with pytest.raises(BayesDidError, match="too few"):
        callaway_santanna(panel, bootstrap=10)
    with pytest.raises(BayesDidError, match="method"):
        callaway_santanna(panel, method="ols")
    with pytest.raises(BayesDidError, match="control"):
        callaway_santanna(panel, control="last")
    with pytest.raises(BayesDidError, match="aggregation"):
        callaway_santanna(panel, aggregate=("weird",))
    unbalanced = panel.with_frame(panel.frame.iloc[1:], note=LogEntry("test", "drop a row"))
    with pytest.raises(DesignError, match="balanced"):
        callaway_santanna(unbalanced)
    only = callaway_santanna(panel, aggregate=("dynamic",)).effects()
    assert set(only["estimand"]) == {"att_gt", "event_time"}
    # universal base period: ATT(g, g-1) = 0 reported, post ATT(g, t) unchanged
    uni = callaway_santanna(panel, method="reg", base_period="universal")
    var = callaway_santanna(panel, method="reg")
    assert uni.effect("att_gt", "cohort=2012, t=2011")["estimate"] == 0.0
    assert uni.effect("att_gt", "cohort=2012, t=2014")["estimate"] == pytest.approx(
        var.effect("att_gt", "cohort=2012, t=2014")["estimate"], abs=1e-12)


# ---------------------------------------------------------------------- reference: csdid
def _compare(ref: dict, panel_for) -> int:
    n_checked = 0
    for case in ref["cases"]:
        res = callaway_santanna(panel_for(case), control=case["control"], method=case["method"],
                                covariates=case["covariates"])
        ours = res.effects().set_index(["estimand", "group"])
        theirs = pd.DataFrame(case["rows"]).set_index(["estimand", "group"])
        assert set(theirs.index) == set(ours.index), case["call"]
        got = ours.loc[theirs.index]
        np.testing.assert_allclose(got["estimate"], theirs["estimate"], atol=1e-6, rtol=0,
                                   err_msg=case["call"])
        np.testing.assert_allclose(got["se_or_sd"], theirs["se"], atol=1e-6, rtol=1e-6,
                                   err_msg=case["call"])
        for typ in ("group", "dynamic", "calendar"):
            est, se = res.info["summaries"][typ]
            assert est == pytest.approx(case["summaries"][typ]["estimate"], abs=1e-6)
            assert se == pytest.approx(case["summaries"][typ]["se"], abs=1e-6)
        n_checked += len(theirs)
    return n_checked


@pytest.mark.reference
def test_matches_csdid_on_simulated_panel():
    ref = json.loads((REF / "csdid_sim.json").read_text())
    df = pd.read_csv(REF / "sim.csv")
    df["cohort"] = df["gvar"].where(df["gvar"] > 0).astype("Int64")
    panel = Panel.from_frame(df, unit="id", time="time", outcome="y", cohort="cohort",
                             covariates=["x1", "x2"])
    assert len(ref["cases"]) == 12  # 2 controls x 3 methods x (no covariates, x1 + x2)
    assert _compare(ref, lambda case: panel) > 12 * 40


@pytest.mark.reference
def test_matches_csdid_on_castle():
    ref = json.loads((REF / "csdid_castle.json").read_text())
    castle = load("castle")
    panel = Panel.from_frame(castle, unit="sid", time="year", outcome="l_homicide",
                             cohort="cohort")
    assert len(ref["cases"]) == 6
    assert _compare(ref, lambda case: panel) > 6 * 40
