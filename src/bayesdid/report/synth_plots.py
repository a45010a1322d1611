"""Plots for synthetic control and the regression control method.

* :func:`synth_path_plot` -- treated vs synthetic (counterfactual) path, optionally with a
  posterior band and posterior mean of the counterfactual beside the classical path;
* :func:`synth_gap_plot` -- the gap (actual - counterfactual), with an optional band;
* :func:`donor_weights_plot` -- donor weights as bars, optionally with posterior intervals;
* :func:`placebo_space_plot` -- placebo-in-space spaghetti plot.

Each takes a result exposing ``.path`` (a long frame ``unit, time, actual, counterfactual,
gap, post``: :class:`~bayesdid.synthetic.synth.SynthResult`,
:class:`~bayesdid.synthetic.regression_control.RegressionControlResult`) or the frame itself,
and returns a :class:`matplotlib.figure.Figure` built without pyplot (``ax=`` draws into an
existing Axes).

>>> import numpy as np, pandas as pd
>>> path = pd.DataFrame(dict(unit="A", time=np.arange(2000, 2010), actual=np.arange(10.0),
...                          counterfactual=np.arange(10.0) - (np.arange(10) >= 6),
...                          post=np.arange(10) >= 6))
>>> fig = synth_path_plot(path.assign(gap=path.actual - path.counterfactual))
>>> [line.get_label() for line in fig.axes[0].get_lines()][:2]
['A', 'synthetic A']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..errors import ComparisonError

__all__ = ["donor_weights_plot", "placebo_space_plot", "synth_gap_plot", "synth_path_plot"]


def _new_axes(ax: Axes | None, figsize=(7.0, 4.0)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.get_figure(root=True), ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _path(result: Any, unit) -> tuple[pd.DataFrame, Any]:
    path = result if isinstance(result, pd.DataFrame) else getattr(result, "path", None)
    need = {"unit", "time", "actual", "counterfactual", "gap", "post"}
    if not isinstance(path, pd.DataFrame) or not need <= set(path.columns):
        raise ComparisonError("expected a synthetic/regression control result (with .path) or "
                              f"a frame with columns {sorted(need)}")
    units = list(dict.fromkeys(path["unit"]))
    if unit is None:
        unit = units[0]
    if unit not in units:
        raise ComparisonError(f"unit {unit!r} is not a treated unit of the result ({units})",
                              column="unit")
    return path[path["unit"] == unit].sort_values("time"), unit


def _band(ax: Axes, times, band, label: str, colour: str) -> None:
    if band is None:
        return
    lower, upper = (np.asarray(b, float) for b in band)
    if lower.shape != (len(times),) or upper.shape != (len(times),):
        raise ComparisonError(f"band arrays must have one value per period ({len(times)})")
    ax.fill_between(times, lower, upper, color=colour, alpha=0.25, linewidth=0, label=label)


def _start_line(ax: Axes, sub: pd.DataFrame) -> None:
    post = sub.loc[sub["post"].astype(bool), "time"]
    if len(post):
        ax.axvline(post.min() - 0.5, color="grey", linestyle=":", linewidth=1)


def synth_path_plot(result: Any, *, unit=None, band: Sequence | None = None,
                    band_mean: Sequence | None = None, band_label: str = "posterior 95%",
                    ax: Axes | None = None, label: str = "synthetic") -> Figure:
    """Actual vs counterfactual path of one treated unit.

    band : ``(lower, upper)`` arrays (one value per period), e.g. a posterior interval of
        the counterfactual; band_mean : its centre line (e.g. the posterior mean).
    label : legend prefix of the counterfactual line (``"synthetic A"``).
    """
    sub, unit = _path(result, unit)
    fig, ax = _new_axes(ax)
    t = sub["time"].to_numpy()
    _band(ax, t, band, band_label, "C1")
    ax.plot(t, sub["actual"], color="black", linewidth=2, label=str(unit))
    ax.plot(t, sub["counterfactual"], color="C0", linestyle="--", linewidth=2,
            label=f"{label} {unit}")
    if band_mean is not None:
        ax.plot(t, np.asarray(band_mean, float), color="C1", linewidth=1.5,
                label="posterior mean")
    _start_line(ax, sub)
    ax.set_xlabel("time")
    ax.set_ylabel("outcome")
    ax.legend(frameon=False)
    return fig


def synth_gap_plot(result: Any, *, unit=None, band: Sequence | None = None,
                   band_label: str = "95% band", ax: Axes | None = None) -> Figure:
    """Gap (actual - counterfactual) of one treated unit, with an optional band."""
    sub, unit = _path(result, unit)
    fig, ax = _new_axes(ax)
    t = sub["time"].to_numpy()
    _band(ax, t, band, band_label, "C1")
    ax.plot(t, sub["gap"], color="black", linewidth=2, label=f"gap {unit}")
    ax.axhline(0, color="grey", linewidth=1)
    _start_line(ax, sub)
    ax.set_xlabel("time")
    ax.set_ylabel("gap (actual - synthetic)")
    ax.legend(frameon=False)
    return fig


def donor_weights_plot(weights: Any, *, unit=None, intervals: pd.DataFrame | None = None,
                       top: int | None = 15, ax: Axes | None = None) -> Figure:
    """Donor weights as horizontal bars, largest first.

    weights : a result with ``.weights`` (donor x unit frame), a frame, or a Series.
    intervals : frame indexed by donor with ``lower``, ``upper`` (and optionally ``mean``)
        columns, e.g. posterior weight intervals, drawn as error bars beside the bars.
    """
    w = getattr(weights, "weights", weights)
    if isinstance(w, pd.DataFrame):
        if w.empty:
            raise ComparisonError("no weights to plot")
        w = w[unit] if unit is not None else w.iloc[:, 0]
    if not isinstance(w, pd.Series):
        raise ComparisonError("weights must be a result with .weights, a DataFrame or a Series")
    order = w.sort_values(ascending=False)
    if intervals is not None:
        missing = set(intervals.index) - set(w.index)
        if missing or not {"lower", "upper"} <= set(intervals.columns):
            raise ComparisonError("intervals must be indexed by the donors and have 'lower' "
                                  "and 'upper' columns")
        centre = (intervals["mean"] if "mean" in intervals
                  else (intervals["lower"] + intervals["upper"]) / 2)
        key = np.maximum(w, centre.reindex(w.index).fillna(0.0))
        order = w.loc[key.sort_values(ascending=False).index]
    if top is not None:
        order = order.iloc[:top]
    fig, ax = _new_axes(ax, figsize=(6.0, 0.3 * len(order) + 1.2))
    y = np.arange(len(order))[::-1]
    ax.barh(y, order.to_numpy(), color="C0", alpha=0.8, label="classical")
    if intervals is not None:
        iv = intervals.reindex(order.index)
        centre = iv["mean"] if "mean" in iv else (iv["lower"] + iv["upper"]) / 2
        ax.errorbar(centre, y, xerr=[centre - iv["lower"], iv["upper"] - centre], fmt="o",
                    color="C1", capsize=2, label="posterior")
    ax.set_yticks(y, [str(i) for i in order.index])
    ax.set_xlabel("weight")
    ax.legend(frameon=False)
    return fig


def placebo_space_plot(result: Any, *, unit=None, max_pre_rmspe_ratio: float | None = None,
                       ax: Axes | None = None) -> Figure:
    """Placebo-in-space spaghetti plot: every donor's placebo gap (grey) and the treated gap.

    ``max_pre_rmspe_ratio`` hides placebos whose pre-RMSPE exceeds that multiple of the
    treated unit's (ADH's figures 5-7).
    """
    sub, unit = _path(result, unit)
    gaps = getattr(result, "placebo_gaps", None)
    if not isinstance(gaps, pd.DataFrame) or gaps.empty:
        raise ComparisonError("the result has no placebo gaps; fit with placebo=True")
    gaps = gaps[gaps["unit"] == unit]
    if max_pre_rmspe_ratio is not None:
        info = result.placebos[result.placebos["unit"] == unit]
        keep = info.loc[info["pre_rmspe"] <= max_pre_rmspe_ratio * result.pre_rmspe[unit],
                        "placebo"]
        gaps = gaps[gaps["placebo"].isin(keep)]
    fig, ax = _new_axes(ax)
    for i, (_, g) in enumerate(gaps.groupby("placebo", sort=False)):
        ax.plot(g["time"], g["gap"], color="grey", alpha=0.5, linewidth=0.8,
                label="placebos" if i == 0 else "_nolegend_")
    ax.plot(sub["time"], sub["gap"], color="black", linewidth=2, label=str(unit))
    ax.axhline(0, color="grey", linestyle="--", linewidth=1)
    _start_line(ax, sub)
    ax.set_xlabel("time")
    ax.set_ylabel("gap (actual - synthetic)")
    ax.legend(frameon=False)
    return fig
