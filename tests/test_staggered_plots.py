"""Staggered-adoption plots: event-study overlay, parallel trends by cohort, sensitivity."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.container import ErrorbarContainer

from bayesdid import Panel
from bayesdid.bayes.result import BayesResult
from bayesdid.did.bayes_sensitivity import bayes_sensitivity
from bayesdid.did.event_study import event_study
from bayesdid.did.honest_did import honest_did
from bayesdid.staggered.estimators import sun_abraham
from bayesdid.datasets import simulate_staggered
from bayesdid.errors import ComparisonError
from bayesdid.report.staggered_plots import (
    cohort_trends,
    event_study_overlay,
    parallel_trends_plot,
    sensitivity_plot,
)


@pytest.fixture(scope="module")
def sim():
    return simulate_staggered(n_units=50, years=(2005, 2014), batches={2007: 8, 2010: 8},
                              n_covariates=0, sigma=0.0, random_seed=4)


@pytest.fixture(scope="module")
def panel(sim):
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


def _posterior_result(ks, rng) -> BayesResult:
    """A BayesResult with given event-time draws (mock posterior: plotting only)."""
    keys = [("att", "overall")] + [("event_time", f"k={k}") for k in ks]
    centre = np.r_[0.08, [0.0 if k < 0 else 0.05 + 0.01 * k for k in ks]]
    data = rng.normal(centre, 0.01, size=(2, 300, len(keys)))
    post = xr.Dataset({"effect": (("chain", "draw", "effect_id"), data)}, coords={
        "effect_id": [f"{e}|{g}" for e, g in keys],
        "estimand": ("effect_id", [e for e, _ in keys]),
        "group": ("effect_id", [g for _, g in keys])})
    const = xr.Dataset({"effect_n_obs": ("effect_id", [20] * len(keys))})
    return BayesResult.from_idata(xr.DataTree.from_dict({"posterior": post,
                                                         "constant_data": const}),
                                  method="hierarchical_did")


@pytest.mark.unit
def test_event_study_overlay_draws_bands_and_error_bars(panel):
    es = event_study(panel, leads=3, lags=3)
    sa = sun_abraham(panel, leads=3, lags=3)
    bayes = _posterior_result([-3, -2, 0, 1, 2, 3], np.random.default_rng(0))
    fig = event_study_overlay(es, sa, bayes)
    try:
        ax = fig.axes[0]
        errorbars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert len(errorbars) == 2  # the two classical estimators
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(bands) == 1  # one posterior band
        # the band runs through the reference period, pinned at zero there
        band_line = [ln for ln in ax.lines if ln.get_label().startswith("hierarchical_did")]
        x, y = band_line[0].get_data()
        assert list(x) == [-3, -2, -1, 0, 1, 2, 3] and y[2] == 0.0
        # each classical series also has k = -1 at zero: 6 estimates + the reference
        for c in errorbars:
            assert len(c.lines[0].get_xdata()) == 7
        vertical = sorted(ln.get_xdata()[0] for ln in ax.lines
                          if len(set(ln.get_xdata())) == 1 and len(ln.get_xdata()) == 2)
        assert -1 in vertical and -0.5 in vertical
        assert any(ln.get_ydata()[0] == 0 and len(set(ln.get_ydata())) == 1 for ln in ax.lines)
        names = [t.get_text() for t in ax.get_legend().get_texts()]
        assert names == ["event_study (95% CI)", "sun_abraham (95% CI)",
                         "hierarchical_did (95% HDI)"]
        assert [t.get_text() for t in ax.texts] == ["reference (k=-1)"]
    finally:
        fig.clf()
    with pytest.raises(ComparisonError, match="labels"):
        event_study_overlay(es, labels=["a", "b"])


@pytest.mark.unit
def test_cohort_trends_residuals_are_zero_before_and_the_effect_after(panel, sim):
    trends = cohort_trends(panel)
    assert list(dict.fromkeys(trends["cohort"])) == ["cohort=2008", "cohort=2011",
                                                     "never treated"]
    raw = sim.data.assign(c=sim.data["cohort"].astype("float")).groupby(
        ["c", "year"], dropna=False)["eco_eff"].mean()
    row = trends.query("cohort == 'cohort=2008' and time == 2009").iloc[0]
    assert row["raw"] == pytest.approx(raw[(2008.0, 2009)])
    # noise-free parallel trends: unit + year effects fitted on untreated cells are exact
    pre = trends[trends["cohort_start"].notna() & (trends["time"] < trends["cohort_start"])]
    np.testing.assert_allclose(pre["residual"], 0.0, atol=1e-8)
    never = trends[trends["cohort"] == "never treated"]
    np.testing.assert_allclose(never["residual"], 0.0, atol=1e-8)
    # after adoption the residual mean is the mean true effect of that cohort and year
    tau = sim.tau.merge(sim.data[["city", "year", "cohort"]], on=["city", "year"])
    truth = tau.groupby(["cohort", "year"])["tau"].mean()
    post = trends[trends["time"] >= trends["cohort_start"]]
    assert len(post) == 7 + 4
    for _, r in post.iterrows():
        assert r["residual"] == pytest.approx(truth[(int(r["cohort_start"]), r["time"])],
                                              abs=1e-8)


@pytest.mark.unit
def test_parallel_trends_plot_artists(panel):
    fig = parallel_trends_plot(panel, title="trends")
    try:
        raw_ax, res_ax = fig.axes
        for ax in (raw_ax, res_ax):
            data_lines = [ln for ln in ax.lines if len(ln.get_xdata()) == 10]
            assert len(data_lines) == 3  # two cohorts + never treated
            starts = sorted(ln.get_xdata()[0] for ln in ax.lines
                            if ln.get_label().startswith("_start"))
            assert starts == [2007.5, 2010.5]
        assert any(ln.get_ydata()[0] == 0 and len(set(ln.get_ydata())) == 1
                   for ln in res_ax.lines)
        names = [t.get_text() for t in raw_ax.get_legend().get_texts()]
        assert names == ["cohort=2008 (8 units)", "cohort=2011 (8 units)",
                         "never treated (34 units)"]
        assert fig.get_suptitle() == "trends"
    finally:
        fig.clf()


@pytest.mark.unit
def test_sensitivity_plot_classical_and_bayesian_side_by_side():
    ks = [-3, -2, 0, 1, 2]
    beta = np.array([0.004, 0.002, 0.06, 0.07, 0.08])
    sigma = np.diag(np.full(5, 0.01)) ** 2
    rm = honest_did(beta, sigma, ks, restriction="rm")
    sd = honest_did(beta, sigma, ks, restriction="sd", M=[0, 0.002, 0.004])
    bayes = bayes_sensitivity(_posterior_result(ks, np.random.default_rng(1)),
                              event_times=[0, 1, 2])
    fig = sensitivity_plot(rm, bayes, sd)
    try:
        rel, smooth = fig.axes
        assert "relative" in rel.get_title() and "smoothness" in smooth.get_title()
        assert len([c for c in rel.collections if isinstance(c, PolyCollection)]) == 1
        # rm: the intervals and the identified sets (two LineCollections)
        assert len([c for c in rel.collections if isinstance(c, LineCollection)]) == 2
        segs = next(c for c in rel.collections if isinstance(c, LineCollection)).get_segments()
        tab = rm.effects()
        assert [s[1][1] - s[0][1] for s in segs] == pytest.approx(
            (tab["upper"] - tab["lower"]).tolist())
        assert [t.get_text() for t in rel.get_legend().get_texts()] == [
            "honest_did_rm (95% CI)", "bayes_sensitivity (95% ETI)"]
        assert [t.get_text() for t in smooth.get_legend().get_texts()] == [
            "honest_did_sd (95% CI)"]
        assert not [c for c in smooth.collections if isinstance(c, PolyCollection)]
    finally:
        fig.clf()
    fig = sensitivity_plot(rm, bayes, labels=["classical", "bayes"], title="M")
    try:
        assert len(fig.axes) == 1 and fig.get_suptitle() == "M"
    finally:
        fig.clf()
    plain = pd.DataFrame([dict(estimand="att", group="overall", estimate=0.1, lower=0.0,
                               upper=0.2, level=0.95, interval="confidence", method="x")])
    with pytest.raises(ComparisonError, match="att_sensitivity"):
        sensitivity_plot(plain)
