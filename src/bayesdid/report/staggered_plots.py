"""Plots for staggered adoption: event study (classical vs posterior), parallel trends by
cohort, and sensitivity of the post-period ATT to parallel-trend violations.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot.

* :func:`event_study_overlay` -- classical event-study coefficients as points with error
  bars and posterior event-time effects as shaded bands (via
  :func:`bayesdid.report.plots.event_study_plot`), with the reference period ``k = -1``
  drawn at zero and marked, and lines at zero and at the start of treatment.
* :func:`parallel_trends_plot` -- mean outcome by cohort and for never-treated units over
  time (raw), and the same after removing unit and period effects fitted on untreated
  observations only (residualised); :func:`cohort_trends` returns the numbers.
* :func:`sensitivity_plot` -- confidence / credible interval of the post-period ATT against
  the violation bound ``M`` (``att_sensitivity`` rows of
  :func:`~bayesdid.did.honest_did.honest_did` and
  :func:`~bayesdid.did.bayes_sensitivity.bayes_sensitivity`), relative-magnitude bounds and
  smoothness bounds in separate panels.

>>> from bayesdid.results import EffectResult
>>> rows = [dict(estimand="event_time", group=f"k={k}", estimate=0.1 * max(k, 0),
...              se_or_sd=0.05, lower=0.1 * max(k, 0) - 0.1, upper=0.1 * max(k, 0) + 0.1,
...              level=0.95, interval=kind, n_obs=50)
...         for kind in ("confidence", "hdi") for k in (-3, -2, 0, 1, 2)]
>>> fig = event_study_overlay(EffectResult.from_rows(rows[:5], method="sun_abraham"),
...                           EffectResult.from_rows(rows[5:], method="bayes"))
>>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
['sun_abraham (95% CI)', 'bayes (95% HDI)']
>>> [t.get_text() for t in fig.axes[0].texts]
['reference (k=-1)']
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..errors import ComparisonError
from ..panel import Panel
from ..results import EffectResult, group_label
from .plots import (
    _MARKERS,
    _colour,
    _kind_text,
    event_study_plot,
    event_time,
)

__all__ = ["cohort_trends", "event_study_overlay", "parallel_trends_plot", "sensitivity_plot"]

logger = logging.getLogger(__name__)

NEVER = "never treated"


# -- event study ----------------------------------------------------------------------
def _table(result: Any, level: float | None) -> pd.DataFrame:
    if isinstance(result, pd.DataFrame):
        return result.copy()
    if not isinstance(result, EffectResult):
        raise ComparisonError(f"expected an EffectResult or effects table, got "
                              f"{type(result).__name__}")
    return result.effects() if level is None else result.effects(level)


def _name(result: Any, i: int) -> str:
    if isinstance(result, EffectResult):
        return result.method
    if isinstance(result, pd.DataFrame) and "method" in result and len(result):
        return str(result["method"].iloc[0])
    return f"result {i + 1}"


def event_study_overlay(*results: EffectResult, labels: Sequence[str] | None = None,
                        level: float | None = 0.95, reference: int = -1,
                        ax: Axes | None = None, title: str | None = None) -> Figure:
    """Event-time effects of several results in one figure: classical ones
    (``interval == "confidence"``, e.g. :func:`~bayesdid.did.event_study`,
    :func:`~bayesdid.classical.sun_abraham`) as points with error bars, Bayesian ones
    (``HierarchicalDiD(leads=L)``) as posterior bands, leads and lags.

    Results with leads get a point at zero at the ``reference`` period (normalised, not
    estimated), marked by a dotted vertical line; the dashed line at ``k = -0.5`` marks the
    start of treatment and the horizontal line zero. Cohort x event-time rows
    (``cohort=g, k=...``) are not drawn: only the pooled ``k=...`` rows. ``level``
    recomputes each result's intervals (``None`` keeps them as they are).
    """
    if not results:
        raise ComparisonError("event_study_overlay() needs at least one result")
    labels = list(labels) if labels is not None else [_name(r, i) for i, r in enumerate(results)]
    if len(labels) != len(results):
        raise ComparisonError(f"got {len(labels)} labels for {len(results)} results")
    views = []
    for label, result in zip(labels, results):
        table = _table(result, level)
        ks = np.array([event_time(g) if e == "event_time" else None
                       for e, g in zip(table["estimand"], table["group"])], dtype=float)
        if (ks < reference).any() and not (ks == reference).any():
            ref = table.loc[~np.isnan(ks)].iloc[0].copy()
            ref[["estimate", "se_or_sd", "lower", "upper"]] = 0.0
            ref["group"], ref["n_obs"] = group_label(k=reference), pd.NA
            table = pd.concat([table, ref.to_frame().T], ignore_index=True)
        views.append(EffectResult(table=table, method=label))
    fig = event_study_plot(*views, labels=labels, level=None, ax=ax, title=title)
    ax = ax if ax is not None else fig.axes[0]
    line = ax.axvline(reference, color="0.45", linestyle=":", linewidth=1.2, zorder=0)
    line.set_label(f"_reference k={reference}")
    ax.annotate(f"reference (k={reference})", xy=(reference, 1.0),
                xycoords=("data", "axes fraction"), xytext=(0, -4), textcoords="offset points", ha="right", va="top",
                rotation=90, fontsize="small", color="0.35")
    return fig


# -- parallel trends ------------------------------------------------------------------
def cohort_trends(panel: Panel) -> pd.DataFrame:
    """Mean outcome by cohort (``never treated`` for never-treated units) and period: raw
    and residualised.

    The residual is ``y - a_i - g_t`` with unit and period effects fitted (pyfixest,
    ``y ~ 1 | unit + period``) on the untreated observations only -- never-treated units
    and treated units before adoption, i.e. the imputation estimator's first stage -- so
    before adoption a cohort's residual mean is zero up to noise when trends are parallel,
    a drift is a pre-trend, and after adoption it is the average effect. Unweighted means.

    Columns: ``cohort`` (label), ``cohort_start`` (first treated period, NaN for never
    treated), ``time``, ``n``, ``raw``, ``residual``.
    """
    from ..did._fixest import pf  # lazy: pyfixest is slow to import

    if not isinstance(panel, Panel):
        raise ComparisonError(f"expected a bayesdid Panel, got {type(panel).__name__}")
    f = panel.frame
    work = pd.DataFrame({"y": f[panel.outcome].to_numpy(float),
                         "unit": pd.factorize(f[panel.unit])[0],
                         "time": f[panel.time].to_numpy()})
    untreated = f["treated"].to_numpy() == 0
    fit = pf.feols("y ~ 1 | unit + time", data=work.loc[untreated])
    work["residual"] = work["y"] - np.asarray(fit.predict(newdata=work), float)
    start = f["cohort"].astype("float").to_numpy()
    work["cohort_start"] = start
    work["cohort"] = [NEVER if np.isnan(c) else group_label(cohort=panel.time_axis.name(c))
                      for c in start]
    out = (work.groupby(["cohort", "time"], sort=False)
           .agg(cohort_start=("cohort_start", "first"), n=("y", "size"), raw=("y", "mean"),
                residual=("residual", "mean")).reset_index())
    order = {c: (np.inf if np.isnan(s) else s) for c, s in zip(out["cohort"], out["cohort_start"])}
    out["_o"] = out["cohort"].map(order)
    return (out.sort_values(["_o", "time"]).drop(columns="_o").reset_index(drop=True)
            [["cohort", "cohort_start", "time", "n", "raw", "residual"]])


def parallel_trends_plot(panel: Panel, *, title: str | None = None,
                         figsize: tuple[float, float] = (11.0, 4.2)) -> Figure:
    """Two panels: raw mean outcome by cohort and for never-treated units over time, and
    the residualised means of :func:`cohort_trends` (outcome minus unit and period effects
    fitted on untreated observations). A dashed vertical line in each cohort's colour
    marks its adoption (half a period before its first treated period).

    >>> from bayesdid.datasets import simulate_staggered
    >>> sim = simulate_staggered(n_units=30, years=(2005, 2012), batches={2007: 5, 2009: 5},
    ...                          random_seed=1)
    >>> fig = parallel_trends_plot(Panel.from_frame(sim.data, **sim.panel_kwargs))
    >>> [ax.get_title() for ax in fig.axes]
    ['raw outcome', 'residualised (unit + period effects from untreated cells)']
    """
    trends = cohort_trends(panel)
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    cohorts = list(dict.fromkeys(trends["cohort"]))
    for ax, column, name in ((axes[0], "raw", "raw outcome"),
                             (axes[1], "residual",
                              "residualised (unit + period effects from untreated cells)")):
        i = 0
        for label in cohorts:
            sub = trends[trends["cohort"] == label]
            never = label == NEVER
            colour = "black" if never else _colour(i)
            n_units = panel.frame.loc[
                panel.frame["never_treated"] if never else
                panel.frame["cohort"].astype("float") == sub["cohort_start"].iloc[0],
                panel.unit].nunique()
            ax.plot(sub["time"], sub[column], color=colour, marker="." if not never else None,
                    linewidth=2.0 if never else 1.4, label=f"{label} ({n_units} units)")
            if not never:
                ax.axvline(sub["cohort_start"].iloc[0] - 0.5, color=colour, linestyle="--",
                           linewidth=0.9, label=f"_start {label}")
                i += 1
        if column == "residual":
            ax.axhline(0.0, color="0.35", linewidth=0.9, zorder=0)
        ax.set_title(name)
        ax.set_xlabel(panel.time)
        if panel.time_axis.calendar:  # ticks at whole periods, named as the user's labels
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.xaxis.set_major_formatter(FuncFormatter(
                lambda x, _: panel.time_axis.name(int(round(x))) if abs(x - round(x)) < 1e-9
                else ""))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"mean {panel.outcome}")
    axes[1].set_ylabel("mean residual")
    axes[0].legend(loc="best", fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


# -- sensitivity ----------------------------------------------------------------------
_RELATIVE = ("rm", "bayes_rm")
_PANEL_TITLE = {"relative": "relative magnitudes (M x largest pre-period deviation)",
                "smoothness": "smoothness (M = bound on second differences)"}


def _sensitivity_rows(results, labels) -> pd.DataFrame:
    frames = []
    for label, result in zip(labels, results):
        t = _table(result, None)
        t = t[t["estimand"] == "att_sensitivity"].copy()
        if t.empty:
            logger.warning("sensitivity_plot: %s has no att_sensitivity rows; not drawn", label)
            continue
        if "M" not in t.columns:
            t["M"] = pd.to_numeric(t["group"].str.extract(r"M=([-\d.eE+]+)")[0], errors="coerce")
        if "restriction" not in t.columns:
            t["restriction"] = "rm"
        t["label"] = label
        frames.append(t)
    if not frames:
        raise ComparisonError("none of the results has estimand 'att_sensitivity' rows",
                              hint="use honest_did(...) or bayes_sensitivity(...)")
    rows = pd.concat(frames, ignore_index=True)
    rows["panel"] = np.where(rows["restriction"].isin(_RELATIVE), "relative", "smoothness")
    return rows


def sensitivity_plot(*results: EffectResult, labels: Sequence[str] | None = None,
                     ax: Axes | None = None, title: str | None = None) -> Figure:
    """Interval of the post-period ATT against the violation bound ``M``.

    Classical confidence sets (``interval == "confidence"``) are vertical intervals with a
    marker at their centre, offset a little in ``M``; where the rows carry the identified
    set at the estimates (``id_lower``/``id_upper``) it is a thick translucent bar.
    Bayesian ones are a shaded band with the posterior mean. Relative-magnitude bounds
    (``restriction`` ``rm``/``bayes_rm``) and smoothness bounds (``sd``) are on different
    scales, so each gets its own panel, side by side (one panel if ``ax`` is given).

    >>> from bayesdid.did.honest_did import honest_did
    >>> import numpy as np
    >>> cl = honest_did(np.array([0.0, 0.01, 0.1, 0.12]), np.eye(4) * 1e-4, [-3, -2, 0, 1])
    >>> fig = sensitivity_plot(cl)
    >>> fig.axes[0].get_xlabel()
    'M'
    """
    if not results:
        raise ComparisonError("sensitivity_plot() needs at least one result")
    labels = list(labels) if labels is not None else [_name(r, i) for i, r in enumerate(results)]
    rows = _sensitivity_rows(results, labels)
    panels = [p for p in ("relative", "smoothness") if (rows["panel"] == p).any()]
    if ax is not None:
        fig, axes = ax.get_figure(root=True), {p: ax for p in panels}
    else:
        fig = Figure(figsize=(5.5 * len(panels), 4.2), layout="constrained")
        made = np.atleast_1d(fig.subplots(1, len(panels)))
        axes = dict(zip(panels, made))
    colour_of = {lab: _colour(i) for i, lab in enumerate(dict.fromkeys(rows["label"]))}
    for panel in panels:
        a = axes[panel]
        sub_all = rows[rows["panel"] == panel]
        series = list(dict.fromkeys(sub_all["label"]))
        n_cls = sum((sub_all.loc[sub_all["label"] == s, "interval"] == "confidence").all()
                    for s in series)
        spread = float(np.ptp(sub_all["M"])) or 1.0
        j = 0
        handles, names = [], []
        for i, label in enumerate(series):
            sub = sub_all[sub_all["label"] == label].sort_values("M")
            colour = colour_of[label]
            m = sub["M"].to_numpy(float)
            est = sub["estimate"].to_numpy(float)
            lo, hi = sub["lower"].to_numpy(float), sub["upper"].to_numpy(float)
            name = f"{label} ({_kind_text(sub)})"
            if (sub["interval"] == "confidence").all():
                x = m + (j - (n_cls - 1) / 2) * 0.04 * spread
                j += 1
                marker = _MARKERS[i % len(_MARKERS)]
                a.vlines(x, lo, hi, colors=colour, linewidth=1.8)
                a.plot(x, est, linestyle="none", marker=marker, color=colour, label=name)
                if {"id_lower", "id_upper"} <= set(sub.columns):
                    il = sub["id_lower"].to_numpy(float)
                    iu = sub["id_upper"].to_numpy(float)
                    ok = ~(np.isnan(il) | np.isnan(iu))
                    a.vlines(x[ok], il[ok], iu[ok], colors=colour, linewidth=6, alpha=0.3,
                             label=f"_identified set {label}")
                handles.append(Line2D([], [], color=colour, marker=marker, linewidth=1.8))
            else:
                band = a.fill_between(m, lo, hi, color=colour, alpha=0.22, linewidth=0)
                band.set_label(f"_band {label}")
                a.plot(m, est, color=colour, marker="o", markersize=4, linewidth=1.4,
                       label=name)
                handles.append((Patch(facecolor=colour, alpha=0.22),
                                Line2D([], [], color=colour, marker="o")))
            names.append(name)
        a.axhline(0.0, color="0.35", linewidth=0.9, zorder=0)
        a.set_xlabel("M")
        a.set_ylabel("post-period ATT")
        a.set_title(_PANEL_TITLE[panel] if ax is None else "")
        a.grid(alpha=0.3)
        a.legend(handles, names, loc="best", fontsize="small")
    if title:
        fig.suptitle(title)
    return fig
