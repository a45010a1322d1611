"""Efficiency plots: the Malmquist-Luenberger decomposition over time, and efficiency
distributions by year and group.

Both return a :class:`matplotlib.figure.Figure` built without pyplot (no global state,
works headless). Pass ``ax=`` to draw into an existing Axes; its figure is returned.

>>> import pandas as pd
>>> t = pd.DataFrame({"unit": [1, 2, 1, 2], "time": [2, 2, 3, 3], "ml": [1.1, 0.9, 1.2, 1.0],
...                   "ec": [1.0, 0.9, 1.1, 1.0], "tc": [1.1, 1.0, 1.0909, 1.0]})
>>> fig = plot_ml_decomposition(t)
>>> [line.get_label() for line in fig.axes[0].get_lines()[:3]]
['ML', 'EC', 'TC']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..errors import BayesDidError, ColumnError

__all__ = ["plot_efficiency_distribution", "plot_ml_decomposition"]

_PARTS = (("ml", "ML"), ("ec", "EC"), ("tc", "TC"))


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.get_figure(root=True), ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _centre(values: pd.Series, stat: str) -> float:
    v = values.dropna().to_numpy(float)
    if len(v) == 0:
        return np.nan
    if stat == "geomean":
        return float(np.exp(np.log(v).mean()))
    return float(v.mean() if stat == "mean" else np.median(v))


def plot_ml_decomposition(result: Any, *, stat: Literal["geomean", "mean", "median"] = "geomean",
                          band: tuple[float, float] | None = (0.25, 0.75),
                          cumulative: bool = False, ax: Axes | None = None,
                          title: str | None = None) -> Figure:
    """ML, EC and TC by period: a line for the cross-unit ``stat`` and a shaded band between
    the ``band`` quantiles across units (``None``: no band). A dashed line marks 1 (no change).

    ``result`` is a :class:`~bayesdid.efficiency.malmquist.MalmquistResult` or its ``table`` (columns
    ``time``, ``ml``, ``ec``, ``tc``). ``cumulative=True`` plots the running products
    (per unit) instead of the period-on-period indices.
    """
    table = getattr(result, "table", result)
    if not isinstance(table, pd.DataFrame):
        raise BayesDidError(f"expected a MalmquistResult or a DataFrame, got {type(result).__name__}")
    missing = [c for c in ("time", "ml", "ec", "tc") if c not in table.columns]
    if missing:
        raise ColumnError(f"the ML table lacks column {missing[0]!r}", column=missing[0])
    if stat not in ("geomean", "mean", "median"):
        raise BayesDidError(f"stat must be 'geomean', 'mean' or 'median', got {stat!r}")
    if band is not None and not 0 <= band[0] < band[1] <= 1:
        raise BayesDidError(f"band must be two quantiles 0 <= lo < hi <= 1, got {band!r}")
    data = table.sort_values([c for c in ("unit", "time") if c in table.columns])
    if cumulative:
        if "unit" not in data.columns:
            raise ColumnError("cumulative=True needs a 'unit' column", column="unit")
        data = data.assign(**{k: data.groupby("unit")[k].cumprod() for k, _ in _PARTS})
    fig, ax = _new_axes(ax, (7.0, 4.0))
    grouped = data.groupby("time")
    times = np.array(sorted(grouped.groups))
    for i, (col, label) in enumerate(_PARTS):
        centre = [_centre(grouped.get_group(t)[col], stat) for t in times]
        ax.plot(times, centre, marker="o", color=f"C{i}", label=label, zorder=3)
        if band is not None:
            q = grouped[col].quantile(list(band)).unstack().reindex(times)
            ax.fill_between(times, q[band[0]], q[band[1]], color=f"C{i}", alpha=0.18,
                            linewidth=0, label=f"{label} {band[0]:.0%}-{band[1]:.0%}")
    ax.axhline(1.0, color="0.4", linestyle="--", linewidth=0.8)
    ax.set_xlabel("period")
    ax.set_ylabel(("cumulative " if cumulative else "") + f"index ({stat} across units)")
    ax.set_title(title or "Malmquist-Luenberger index: ML = EC x TC")
    ax.legend(loc="best", fontsize="small", ncols=2)
    return fig


def plot_efficiency_distribution(data: pd.DataFrame, *, time: str, value: str,
                                 group: str | None = None, kind: Literal["box", "violin"] = "box",
                                 order: Sequence | None = None, ax: Axes | None = None,
                                 title: str | None = None) -> Figure:
    """Distribution of ``value`` (e.g. an efficiency score) per period, one box or violin per
    period and level of ``group`` (side by side, coloured by group, with a legend)."""
    if not isinstance(data, pd.DataFrame):
        raise BayesDidError(f"data must be a DataFrame, got {type(data).__name__}")
    for role, col in (("time", time), ("value", value), ("group", group)):
        if col is not None and col not in data.columns:
            raise ColumnError(f"unknown column {col!r} (passed as {role}=)", column=col)
    if kind not in ("box", "violin"):
        raise BayesDidError(f"kind must be 'box' or 'violin', got {kind!r}")
    d = data[[c for c in (time, value, group) if c is not None]].dropna(subset=[value])
    times = np.array(sorted(d[time].unique()))
    levels = list(order) if order is not None else (
        sorted(d[group].dropna().unique(), key=str) if group is not None else [None])
    fig, ax = _new_axes(ax, (max(6.0, 0.6 * len(times) * max(1, len(levels))), 4.0))
    width = 0.8 / len(levels)
    handles = []
    for j, lev in enumerate(levels):
        sub = d if lev is None else d[d[group] == lev]
        pos, vals = [], []
        for i, t in enumerate(times):
            v = sub.loc[sub[time] == t, value].to_numpy(float)
            if len(v):
                pos.append(i - 0.4 + width * (j + 0.5))
                vals.append(v)
        if not vals:
            continue
        colour = f"C{j}"
        if kind == "box":
            bp = ax.boxplot(vals, positions=pos, widths=width * 0.9, patch_artist=True,
                            manage_ticks=False, flierprops={"markersize": 2})
            for patch in bp["boxes"]:
                patch.set_facecolor(colour)
                patch.set_alpha(0.6)
        else:
            vp = ax.violinplot(vals, positions=pos, widths=width * 0.9, showmedians=True)
            for body in vp["bodies"]:
                body.set_facecolor(colour)
                body.set_alpha(0.6)
        handles.append(Patch(facecolor=colour, alpha=0.6, label=str(lev)))
    ax.set_xticks(range(len(times)), [str(t) for t in times],
                  rotation=45 if len(times) > 10 else 0)
    ax.set_xlabel(time)
    ax.set_ylabel(value)
    ax.set_title(title or f"{value} by {time}" + (f" and {group}" if group else ""))
    if group is not None and handles:
        ax.legend(handles=handles, title=group, fontsize="small")
    return fig
