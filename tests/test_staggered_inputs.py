"""Bad inputs for the staggered estimators (issue 4): an event window wider than the data,
no never-treated units when they are requested, a cohort with a single unit, and all
units treated at once. Each is a typed error or a documented, logged fallback."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from bayesdid import Panel
from bayesdid.staggered.callaway_santanna import callaway_santanna
from bayesdid.did.event_study import event_study
from bayesdid.staggered.estimators import fit_window, imputation, sun_abraham
from bayesdid.did.twfe import twfe
from bayesdid.datasets import simulate_staggered
from bayesdid.errors import BayesDidError, DesignError
from bayesdid.panel import LogEntry

SIM = {"n_units": 60, "years": (2005, 2012), "batches": {2007: 10, 2009: 10},
       "n_covariates": 0, "random_seed": 3}
NO_REGION = {"East": 0.0, "Central": 0.0, "West": 0.0, "Northeast": 0.0}


def _panel(**kw):
    sim = simulate_staggered(**{**SIM, **kw})
    return sim, Panel.from_frame(sim.data, **sim.panel_kwargs)


def _warned(caplog, text):
    return any(r.levelno == logging.WARNING and text in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ event window
@pytest.mark.unit
def test_window_wider_than_data_is_narrowed_and_logged(caplog):
    _sim, panel = _panel()  # cohorts 2008, 2010 in 2005..2012: relative periods -5..4
    assert fit_window(panel, 30, 30, "t") == (5, 4)
    for fn in (event_study, sun_abraham):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            wide = fn(panel, leads=30, lags=30)
        assert _warned(caplog, "wider than the data"), fn.__name__
        assert (wide.info["leads"], wide.info["lags"]) == (5, 4)
        assert wide.info["window_asked"] == (30, 30)
        exact = fn(panel, leads=5, lags=4)
        pd.testing.assert_frame_equal(wide.effects(), exact.effects())
        groups = wide.effects().query("estimand == 'event_time'")["group"].tolist()
        assert groups == ["k=-5", "k=-4", "k=-3", "k=-2", "k=0", "k=1", "k=2", "k=3", "k=4"]
    # binned ends inside the data still bin: k=-5..-3 pooled into k=-3
    binned = event_study(panel, leads=3, lags=4)
    assert binned.effect("event_time", "k=-3")["n_obs"] == 10 * 3 + 10 * 1
    assert binned.info["window_asked"] == (3, 4)


@pytest.mark.unit
def test_window_type_and_reference_errors():
    _sim, panel = _panel()
    for bad in ({"leads": 0}, {"lags": -1}, {"leads": 2.5}, {"lags": True}):
        with pytest.raises(BayesDidError, match="leads|lags"):
            event_study(panel, **bad)
        with pytest.raises(BayesDidError, match="leads|lags"):
            sun_abraham(panel, **bad)
    # ref inside the asked window but outside the data
    with pytest.raises(BayesDidError, match="observed in the data") as err:
        event_study(panel, leads=30, lags=30, ref=-8)
    assert err.value.column == "rel_time"


# ------------------------------------------------------------------ never-treated units
@pytest.mark.unit
def test_no_never_treated_units(caplog):
    sim, panel = _panel()
    df = sim.data[sim.data["cohort"].notna()]
    # every unit treated by 2010: the panel itself refuses (no untreated cells 2010-2012)
    with pytest.raises(DesignError, match="no untreated comparison cells") as err:
        Panel.from_frame(df, **sim.panel_kwargs)
    assert err.value.column == "year" and len(err.value.rows) > 0
    assert "never-treated" in str(err.value)
    # the documented way out: cut the sample before the last cohort adopts; that cohort
    # is then coded never-treated and serves as the control
    cut = Panel.from_frame(df[df["year"] < 2010], **sim.panel_kwargs)
    assert cut.cohorts == [2008] and cut.frame["never_treated"].any()
    assert np.isfinite(callaway_santanna(cut).effect()["estimate"])
    # estimators guard panels without never-treated units (a row subset, as internal
    # code makes with Panel.with_frame)
    treated_only = panel.with_frame(panel.frame[~panel.frame["never_treated"]],
                                    LogEntry("test", "drop never-treated units"))
    with pytest.raises(DesignError, match="no never-treated units") as err:
        callaway_santanna(treated_only, control="never_treated")
    assert "not_yet_treated" in str(err.value) and err.value.column == "cohort"
    assert err.value.rows["n_units"].tolist() == [10, 10]
    with pytest.raises(DesignError, match="never-treated") as err:
        sun_abraham(treated_only)
    assert "imputation" in str(err.value)
    # not-yet-treated controls run out in 2010-2012: those ATT(g, t) are skipped, logged
    with caplog.at_level(logging.WARNING):
        res = callaway_santanna(treated_only, control="not_yet_treated", method="reg")
    assert _warned(caplog, "no control units")
    # cohort 2010's pre-periods 2008-2009 lose their controls too (cohort 2008 is treated)
    assert res.info["skipped_att_gt"] == [f"cohort=2008, t={t}" for t in (2010, 2011, 2012)] \
        + [f"cohort=2010, t={t}" for t in range(2008, 2013)]
    assert set(res.effects().query("estimand == 'event_time'")["group"]) == {
        "k=-4", "k=-3", "k=-2", "k=-1", "k=0", "k=1"}


# ------------------------------------------------------------------ tiny cohorts
@pytest.mark.unit
def test_single_unit_cohort_is_estimated_and_flagged(caplog):
    # noise-free: a one-unit cohort's effects are still exactly recovered
    sim, panel = _panel(batches={2007: 10, 2009: 1}, sigma=0.0, region_effects=NO_REGION)
    truth = sim.truth.set_index(["estimand", "group"])["value"]
    with caplog.at_level(logging.WARNING):
        cs = callaway_santanna(panel, method="reg")
        sa = sun_abraham(panel, leads=3, lags=2)
        bjs = imputation(panel)
    assert _warned(caplog, "small cohort")
    for res in (cs, sa, bjs):
        assert res.info["small_cohorts"] == {2010: 1}
        assert res.effect("att", "cohort=2010")["estimate"] == pytest.approx(
            truth["att", "cohort=2010"], abs=1e-10)
        assert res.effect("att", "cohort=2010")["n_obs"] == 3
    # R did's rule counts covariates: 10 units with 6 covariates is "small" too
    _, panel6 = _panel(batches={2007: 10, 2009: 10}, n_covariates=6)
    res = callaway_santanna(panel6, method="dr")
    assert res.info["small_cohorts"] == {2008: 10, 2010: 10}
    # noisy: DR with covariates still runs on a one-unit cohort and its estimate is finite
    _, panel1 = _panel(batches={2007: 10, 2009: 1}, n_covariates=2)
    dr = callaway_santanna(panel1, method="dr").effects()
    one = dr[dr["group"].str.startswith("cohort=2010")]
    assert len(one) == 7 + 1 and np.isfinite(one["estimate"]).all()  # ATT(g, t) + cohort ATT


# ------------------------------------------------------------------ all treated at once
@pytest.mark.unit
def test_all_units_treated_at_once():
    sim = _panel()[0]
    df = sim.data.assign(cohort=2009)
    with pytest.raises(DesignError, match="no untreated comparison cells") as err:
        Panel.from_frame(df, **sim.panel_kwargs)
    assert "2009" in str(err.value)


@pytest.mark.unit
def test_single_adoption_date_with_never_treated_is_plain_did():
    """All treated units adopting together (no staggering) is the classic DID: CS, SA and
    BJS recover the truth exactly on noise-free data, and so does TWFE (no forbidden
    comparisons without staggering), although effects grow with event time."""
    sim, panel = _panel(batches={2008: 20}, sigma=0.0, slope=0.03)
    truth = sim.truth.set_index(["estimand", "group"])["value"]
    for fn in (callaway_santanna, sun_abraham, imputation, twfe):
        res = fn(panel)
        assert res.effect()["estimate"] == pytest.approx(truth["att", "overall"], abs=1e-10), \
            fn.__name__
    cs = callaway_santanna(panel, method="dr").effects().query("estimand == 'event_time'")
    post = cs[cs["group"].isin(["k=0", "k=1", "k=2", "k=3"])].set_index("group")["estimate"]
    for k in range(4):
        assert post[f"k={k}"] == pytest.approx(truth["event_time", f"k={k}"], abs=1e-10)
