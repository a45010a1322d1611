"""Plots of effects: a forest plot of several methods side by side (and one of the overall
and group effects only, a panel per family of methods), and an event-study plot.

Both return a :class:`matplotlib.figure.Figure` built without pyplot (no global state, works
headless). Pass ``ax=`` to draw into an existing Axes; the figure holding it is returned.

>>> from bayesdid.results import EffectResult
>>> rows = [dict(estimand="event_time", group=f"k={k}", estimate=0.1 * max(k, 0),
...              se_or_sd=0.05, lower=0.1 * max(k, 0) - 0.1, upper=0.1 * max(k, 0) + 0.1,
...              level=0.95, interval="confidence", n_obs=50) for k in range(-3, 4)]
>>> fig = event_study_plot(EffectResult.from_rows(rows, method="event_study"))
>>> fig.axes[0].get_xlabel()
'event time (k)'
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from ..errors import ComparisonError
from .align import align_results
from .tables import group_sort_key, interval_label

if TYPE_CHECKING:
    from ..results import EffectResult

__all__ = ["forest_plot", "group_forest_plot", "group_effect_rows", "event_study_plot",
           "event_time"]

logger = logging.getLogger(__name__)

_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*", "h", "<", ">")
_K = re.compile(r"^\s*k\s*=\s*(-?\d+(?:\.\d+)?)\s*$")
_NEEDED = ("estimand", "group", "method", "estimate", "lower", "upper", "interval", "level")


def _colour(i: int) -> str:
    return f"C{i % 10}"


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.get_figure(root=True), ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _kind_text(sub: pd.DataFrame) -> str:
    pairs = sub[["interval", "level"]].drop_duplicates()
    texts = [interval_label(k, lv, short=True) for k, lv in zip(pairs["interval"], pairs["level"])]
    return " / ".join(dict.fromkeys(texts))


def event_time(group: str) -> float | None:
    """The event time ``k`` of a group label ``"k=-3"`` (None for other labels).

    >>> event_time("k=-3"), event_time("overall")
    (-3.0, None)
    """
    match = _K.match(str(group))
    return float(match.group(1)) if match else None


# -- forest plot ----------------------------------------------------------------------
def forest_plot(table: pd.DataFrame, *, estimand: str | Iterable[str] | None = None,
                groups: Iterable[str] | None = None, methods: Sequence[str] | None = None,
                ax: Axes | None = None, title: str | None = None,
                legend: str = "above") -> Figure:
    """Forest plot of a long effects table, one row per (estimand, group).

    Each method is a differently coloured and markered point with its interval, offset
    vertically so methods sit side by side. Rows: estimands in order of appearance, groups
    overall, cohort, region, cohort x region, then event time (numerically). A vertical line
    marks zero; the legend names each method and its interval kind.

    Parameters
    ----------
    table : long table with columns estimand, group, method, estimate, lower, upper,
        interval, level (``Comparison.table`` or one result's ``effects()``).
    estimand : keep only this estimand (or these). ``groups``: keep only these group labels.
    methods : the methods to draw, in this order (default: order of appearance).
    legend : ``"above"`` the axes (default) or to the ``"right"`` of them (one column).

    >>> import pandas as pd
    >>> t = pd.DataFrame(dict(estimand="att", group=["overall", "overall"],
    ...     method=["twfe", "bayes"], estimate=[0.1, 0.12], lower=[0.0, 0.05],
    ...     upper=[0.2, 0.2], level=0.95, interval=["confidence", "hdi"]))
    >>> len(forest_plot(t).axes[0].get_legend().get_texts())
    2
    """
    missing = [c for c in _NEEDED if c not in table.columns]
    if missing:
        raise ComparisonError(f"forest_plot needs columns {missing}", column=missing[0])
    data = table
    if estimand is not None:
        wanted = [estimand] if isinstance(estimand, str) else list(estimand)
        unknown = sorted(set(wanted) - set(data["estimand"]))
        if unknown:
            raise ComparisonError(
                f"unknown estimand(s) {unknown}; available: {sorted(set(data['estimand']))}",
                column="estimand")
        data = data[data["estimand"].isin(wanted)]
    if groups is not None:
        wanted_groups = [groups] if isinstance(groups, str) else list(groups)
        unknown = sorted(set(wanted_groups) - set(data["group"]))
        if unknown:
            raise ComparisonError(
                f"unknown group(s) {unknown}; available: {sorted(set(data['group']))[:30]}",
                column="group")
        data = data[data["group"].isin(wanted_groups)]
    data = data[data["estimate"].notna()]
    if data.empty:
        raise ComparisonError("nothing to plot: no rows with an estimate after filtering")

    estimand_rank = {e: i for i, e in enumerate(pd.unique(data["estimand"]))}
    rows = sorted({(e, g) for e, g in zip(data["estimand"], data["group"])},
                  key=lambda eg: (estimand_rank[eg[0]], group_sort_key(eg[1])))
    row_pos = {eg: i for i, eg in enumerate(rows)}
    several = len(estimand_rank) > 1
    ticklabels = [f"{e}: {g}" if several else g for e, g in rows]

    methods = list(methods) if methods is not None else list(pd.unique(data["method"]))
    m = len(methods)
    step = min(0.8 / max(m, 1), 0.25)
    fig, ax = _new_axes(ax, (7.0, 1.4 + 0.32 * len(rows) * max(1.0, m / 2.5)))
    handles, names = [], []
    for i, method in enumerate(methods):
        sub = data[data["method"] == method]
        if sub.empty:
            continue
        y = np.array([row_pos[(e, g)] for e, g in zip(sub["estimand"], sub["group"])], float)
        y += (i - (m - 1) / 2) * step
        colour, marker = _colour(i), _MARKERS[i % len(_MARKERS)]
        lo, hi = sub["lower"].to_numpy(float), sub["upper"].to_numpy(float)
        has = ~(np.isnan(lo) | np.isnan(hi))
        ax.hlines(y[has], lo[has], hi[has], colors=colour, linewidth=1.6,
                  label=f"_interval {method}")
        ax.plot(sub["estimate"].to_numpy(float), y, linestyle="none", marker=marker,
                color=colour, markersize=6, label=method)
        handles.append(Line2D([], [], color=colour, marker=marker, linewidth=1.6))
        names.append(f"{method} ({_kind_text(sub)})")
    ax.axvline(0.0, color="0.35", linewidth=0.9, linestyle="--", zorder=0)
    ax.set_yticks(range(len(rows)), ticklabels)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first row on top
    ax.set_xlabel("effect")
    ax.grid(axis="x", alpha=0.3)
    # outside the axes: inside, "best" still hides the top rows of a long forest
    if legend == "right":
        ax.legend(handles, names, loc="center left", bbox_to_anchor=(1.01, 0.5),
                  fontsize="small", frameon=False)
        if title:
            ax.set_title(title, loc="left")
    else:
        ax.legend(handles, names, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                  ncol=min(len(names), 3), fontsize="small", frameon=False)
        if title:
            ax.set_title(title, pad=28)
    return fig


# -- overall and group effects, one panel per family ------------------------------------
_NOT_GROUPS = ("k", "t")  # event time and calendar period are not groups of units


def group_effect_rows(table: pd.DataFrame, estimand: str = "att") -> pd.DataFrame:
    """The rows of ``estimand`` that are an overall or a group effect: ``overall`` and one
    ``column=value`` group of units (``cohort=2011``, ``region=East``, ``sample=matched``).
    Event-time (``k=``) and period (``t=``) rows are left to :func:`event_study_plot` and
    the tables, and so are cells of two groups (``cohort=2011, region=East``).

    >>> t = pd.DataFrame(dict(estimand=["att", "att", "event_time", "att", "att"],
    ...                       group=["overall", "region=East", "k=0", "cohort=2011, t=2012",
    ...                              "cohort=2011, region=East"]))
    >>> group_effect_rows(t)["group"].tolist()
    ['overall', 'region=East']
    """
    def is_group(label: str) -> bool:
        if str(label) == "overall":
            return True
        key, sep, _ = str(label).partition("=")
        return bool(sep) and "," not in str(label) and key.strip() not in _NOT_GROUPS

    keep = (table["estimand"] == estimand) & table["group"].map(is_group)
    return table[keep]


def group_forest_plot(panels: Sequence[tuple[str, pd.DataFrame, Sequence[str]]], *,
                      estimand: str = "att", title: str | None = None,
                      width: float = 9.0) -> Figure:
    """Forest plot of the overall and group effects (:func:`group_effect_rows`), one panel
    per ``(title, long table, method labels)``, e.g. one per family of methods, each with
    its own legend on the right. Panels with no such rows are left out.

    >>> t = pd.DataFrame(dict(estimand=["att", "att", "event_time"],
    ...     group=["overall", "region=East", "k=0"], method="twfe", estimate=0.1,
    ...     lower=0.0, upper=0.2, level=0.95, interval="confidence"))
    >>> fig = group_forest_plot([("DID", t, ["twfe"])])
    >>> [tick.get_text() for tick in fig.axes[0].get_yticklabels()]
    ['overall', 'region=East']
    """
    kept = []
    for name, table, labels in panels:
        rows = group_effect_rows(table, estimand)
        rows = rows[rows["estimate"].notna()]
        if len(rows):
            drawn = [lb for lb in labels if (rows["method"] == lb).any()]
            kept.append((name, rows, drawn))
    if not kept:
        raise ComparisonError(f"no overall or group rows of estimand {estimand!r} to plot")
    # a row's methods share its height: the busiest row sets the spacing of a panel
    heights = [1.0 + 0.28 * rows[["estimand", "group"]].drop_duplicates().shape[0]
               * max(1.0, rows.groupby(["estimand", "group"]).size().max() / 4)
               for _, rows, _ in kept]
    fig = Figure(figsize=(width, sum(heights) + 0.6), layout="constrained")
    axes = fig.subplots(len(kept), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (name, rows, labels) in zip(axes, kept):
        forest_plot(rows, methods=labels, ax=ax, title=name, legend="right")
    if title:
        fig.suptitle(title)
    return fig


# -- event-study plot -----------------------------------------------------------------
def _event_rows(table: pd.DataFrame) -> pd.DataFrame:
    rows = table[table["estimand"] == "event_time"].copy()
    rows["k"] = [event_time(g) for g in rows["group"]]
    dropped = rows["k"].isna().sum()
    if dropped:
        logger.debug("event_study_plot: skipped %d event_time rows with non-'k=' groups", dropped)
    return rows[rows["k"].notna() & rows["estimate"].notna()].sort_values("k")


def event_study_plot(*results: EffectResult, labels: Sequence[str] | None = None,
                     level: float | None = 0.95, ax: Axes | None = None,
                     title: str | None = None) -> Figure:
    """Overlay the event-time effects (``estimand == "event_time"``, groups ``k=...``) of
    several results.

    Classical results (``interval == "confidence"``) are points with error bars, offset a
    little in k so they do not hide each other; Bayesian ones (``hdi``/``eti``) are a shaded
    band with a line. A dashed vertical line at k = -0.5 separates leads from lags; a
    horizontal line marks zero. ``labels`` and ``level`` work as in
    :func:`bayesdid.compare.compare`.

    >>> from bayesdid.results import EffectResult
    >>> rows = [dict(estimand="event_time", group=f"k={k}", estimate=0.0, se_or_sd=0.1,
    ...              lower=-0.2, upper=0.2, level=0.95, interval="hdi", n_obs=10)
    ...         for k in (-2, 0, 1)]
    >>> fig = event_study_plot(EffectResult.from_rows(rows, method="bayes_es"))
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['bayes_es (95% HDI)']
    """
    table, names = align_results(results, labels, level)
    rows = _event_rows(table)
    if rows.empty:
        raise ComparisonError(
            "none of the results reports estimand 'event_time' with groups 'k=<number>'",
            hint="run an event-study estimator; its effects() rows look like "
                 "estimand='event_time', group='k=-3'")
    fig, ax = _new_axes(ax, (8.0, 4.5))
    series = [(label, kind, sub) for label in names
              for kind, sub in rows[rows["method"] == label].groupby("interval", sort=False)]
    skipped = [lb for lb in names if lb not in set(rows["method"])]
    if skipped:
        logger.warning("event_study_plot: no event-time rows in %s; not drawn", skipped)
    n_points = sum(kind == "confidence" for _, kind, _ in series)
    handles: list[Any] = []
    names: list[str] = []
    j = 0
    for i, (label, kind, sub) in enumerate(series):
        colour = _colour(i)
        k = sub["k"].to_numpy(float)
        est = sub["estimate"].to_numpy(float)
        lo, hi = sub["lower"].to_numpy(float), sub["upper"].to_numpy(float)
        name = f"{label} ({_kind_text(sub)})"
        if kind == "confidence":
            x = k + (j - (n_points - 1) / 2) * min(0.12, 0.6 / max(n_points, 1))
            j += 1
            below, above = np.nan_to_num(est - lo), np.nan_to_num(hi - est)
            marker = _MARKERS[i % len(_MARKERS)]
            if (below < 0).any() or (above < 0).any():
                logger.warning("event_study_plot: %s has estimates outside their interval; "
                               "drawing the intervals as lines", label)
                ax.vlines(x, lo, hi, colors=colour, linewidth=1.4)
                handle = ax.plot(x, est, linestyle="none", marker=marker, color=colour,
                                 label=name)[0]
            else:
                handle = ax.errorbar(x, est, yerr=np.vstack([below, above]), fmt=marker,
                                     color=colour, capsize=3, markersize=5, label=name)
        else:
            band = ax.fill_between(k, lo, hi, color=colour, alpha=0.22, linewidth=0)
            line = ax.plot(k, est, color=colour, marker=".", linewidth=1.6, label=name)[0]
            band.set_label(f"_band {label}")
            handle = (Patch(facecolor=colour, alpha=0.22), line)
        handles.append(handle)
        names.append(name)
    ax.axvline(-0.5, color="0.35", linestyle="--", linewidth=0.9, zorder=0)
    ax.axhline(0.0, color="0.35", linewidth=0.9, zorder=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("event time (k)")
    ax.set_ylabel("effect")
    ax.grid(alpha=0.3)
    ax.legend(handles, names, loc="best", fontsize="small")
    if title:
        ax.set_title(title)
    return fig
