"""Synthetic-control plots: the artists carry the numbers of the result."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from bayesdid import Panel
from bayesdid.synthetic.regression_control import regression_control
from bayesdid.synthetic.synth import synth
from bayesdid.datasets import info, load
from bayesdid.errors import ComparisonError
from bayesdid.report.synth_plots import (
    donor_weights_plot,
    placebo_space_plot,
    synth_gap_plot,
    synth_path_plot,
)


@pytest.fixture(scope="module")
def fit():
    panel = Panel.from_frame(load("prop99"), **info("prop99")["panel_kwargs"])
    return synth(panel, progress=False)


def _lines(fig):
    return {ln.get_label(): ln for ln in fig.axes[0].get_lines()}


@pytest.mark.unit
def test_path_plot_with_posterior_band(fit):
    cf = fit.path["counterfactual"].to_numpy()
    fig = synth_path_plot(fit, band=(cf - 5, cf + 5), band_mean=cf + 1)
    assert isinstance(fig, Figure)
    lines = _lines(fig)
    np.testing.assert_allclose(lines["California"].get_ydata(), fit.path["actual"])
    np.testing.assert_allclose(lines["synthetic California"].get_ydata(), cf)
    np.testing.assert_allclose(lines["posterior mean"].get_ydata(), cf + 1)
    bands = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1 and bands[0].get_label() == "posterior 95%"
    start = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == ":"]
    assert start[0].get_xdata()[0] == pytest.approx(1988.5)
    with pytest.raises(ComparisonError, match="one value per period"):
        synth_path_plot(fit, band=(cf[:3], cf[:3]))
    with pytest.raises(ComparisonError, match="not a treated unit"):
        synth_path_plot(fit, unit="Utah")


@pytest.mark.unit
def test_gap_plot_and_regression_control_path(fit):
    fig = synth_gap_plot(fit)
    np.testing.assert_allclose(_lines(fig)["gap California"].get_ydata(), fit.path["gap"])
    panel = Panel.from_frame(load("prop99"), **info("prop99")["panel_kwargs"])
    hcw = regression_control(panel, se="prediction", progress=False)
    fig2 = synth_path_plot(hcw)
    np.testing.assert_allclose(_lines(fig2)["synthetic California"].get_ydata(),
                               hcw.path["counterfactual"])
    with pytest.raises(ComparisonError, match="with .path"):
        synth_gap_plot(object())


@pytest.mark.unit
def test_donor_weights_plot(fit):
    fig = donor_weights_plot(fit, top=5)
    ax = fig.axes[0]
    heights = sorted((p.get_width() for p in ax.patches), reverse=True)
    np.testing.assert_allclose(heights, fit.weights["California"].nlargest(5).to_numpy())
    assert ax.get_yticklabels()[0].get_text() == "Utah"
    w = fit.weights["California"]
    iv = pd.DataFrame({"lower": w * 0.5, "upper": w * 1.5 + 0.01, "mean": w + 0.005})
    fig2 = donor_weights_plot(w, intervals=iv, top=6)
    labels = [t.get_text() for t in fig2.axes[0].get_legend().get_texts()]
    assert labels == ["classical", "posterior"]
    assert len(fig2.axes[0].patches) == 6
    with pytest.raises(ComparisonError, match="lower"):
        donor_weights_plot(w, intervals=iv.drop(columns="lower"))


@pytest.mark.unit
def test_placebo_spaghetti(fit):
    fig = placebo_space_plot(fit)
    grey = [ln for ln in fig.axes[0].get_lines() if ln.get_color() == "grey"
            and ln.get_linestyle() == "-"]
    assert len(grey) == 38
    fig2 = placebo_space_plot(fit, max_pre_rmspe_ratio=2)
    grey2 = [ln for ln in fig2.axes[0].get_lines() if ln.get_color() == "grey"
             and ln.get_linestyle() == "-"]
    kept = (fit.placebos["pre_rmspe"] <= 2 * fit.pre_rmspe["California"]).sum()
    assert len(grey2) == kept < 38
    np.testing.assert_allclose(_lines(fig)["California"].get_ydata(), fit.path["gap"])
    nofit = synth(Panel.from_frame(load("prop99"), **info("prop99")["panel_kwargs"]),
                  placebo=False, progress=False)
    with pytest.raises(ComparisonError, match="placebo"):
        placebo_space_plot(nofit)
