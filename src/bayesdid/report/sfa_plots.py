"""Plots of a fitted stochastic frontier: the frontier through the data, and efficiency
intervals per unit (caterpillar). Both take a classical :class:`SFAResult` or a
:class:`BayesSFAResult` and return a matplotlib ``Figure``.

>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import numpy as np, pandas as pd
>>> from bayesdid.efficiency.sfa import sfa
>>> rng = np.random.default_rng(1)
>>> k = rng.lognormal(size=200)
>>> q = np.exp(1 + 0.6 * np.log(k) + rng.normal(0, .1, 200) - np.abs(rng.normal(0, .3, 200)))
>>> df = pd.DataFrame({"q": q, "k": k})
>>> res = sfa(df, y="q", x=["k"])
>>> fig = plot_frontier(res, df)
>>> fig.axes[0].get_xlabel()
'ln_k'
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..efficiency.frontier import frontier_design
from ..errors import BayesDidError
from .plots import _new_axes

__all__ = ["plot_efficiency_intervals", "plot_frontier"]


def _classical(result) -> bool:
    """A classical SFA result (it records its spec), not a Bayesian one (its config)."""
    return "spec" in (getattr(result, "info", None) or {})


def _spec(result) -> dict:
    if _classical(result):
        return dict(result.info["spec"])
    config = getattr(result, "info", {}).get("config")
    if not config or "frontier" not in config:
        raise BayesDidError(f"expected an SFAResult or BayesSFAResult, got "
                            f"{type(result).__name__}")
    return {k: config[k] for k in ("y", "x", "undesirable", "frontier", "log", "unit", "time")}


def _coef_and_eff(result) -> tuple[pd.Series, np.ndarray]:
    if _classical(result):
        return result.coef.set_index("term")["estimate"], result.efficiency["te_bc"].to_numpy()
    coef = result.coef_table().set_index("term")["mean"]
    return coef, result.efficiency_draws().mean(axis=1).to_numpy()


def plot_frontier(result, data: pd.DataFrame, regressor: str | None = None, *, ax=None,
                  cmap: str = "viridis"):
    """Dependent variable against one regressor, with the fitted frontier (other
    regressors at their means) and points coloured by efficiency E[exp(-u)].

    ``regressor``: a term of the frontier (e.g. ``"ln_output"``); default the first.
    """
    spec = _spec(result)
    design = frontier_design(data, **spec)
    coef, eff = _coef_and_eff(result)
    names = list(design.names)
    regressor = regressor or names[1]
    if regressor not in names[1:]:
        raise BayesDidError(f"regressor {regressor!r} is not a frontier term; "
                            f"terms: {names[1:]}")
    j = names.index(regressor)
    beta = coef.reindex(names).to_numpy(float)
    x = design.X[:, j]
    grid = np.linspace(x.min(), x.max(), 100)
    base = design.X.mean(axis=0) @ beta - beta[j] * design.X[:, j].mean()
    fig, ax = _new_axes(ax, (6.5, 4.5))
    pts = ax.scatter(x, design.y, c=eff, cmap=cmap, s=14, vmin=min(eff.min(), 1.0), vmax=1.0)
    ax.plot(grid, base + beta[j] * grid, color="black", lw=1.5,
            label="frontier (others at means)")
    fig.colorbar(pts, ax=ax, label="efficiency E[exp(-u)]")
    ax.set_xlabel(regressor)
    ylab = {"distance": "-ln " + (spec["y"][0] if not isinstance(spec["y"], str) else spec["y"]),
            "production": "ln " + str(spec["y"]), "cost": "ln " + str(spec["y"])}
    ax.set_ylabel(ylab.get(design.kind, "y") if spec.get("log", True) else "y")
    ax.set_title(f"{design.kind} frontier")
    ax.legend(loc="best", fontsize=8)
    return fig


def plot_efficiency_intervals(result, *, level: float = 0.95, max_points: int = 60, ax=None):
    """Caterpillar plot: efficiency estimate and interval per observation (posterior HDI
    for Bayesian results, Horrace-Schmidt bounds for the MLE, none for DEA), sorted; at most
    ``max_points`` rows, evenly spaced over the ranking."""
    table = result.effects(level=level)
    table = table[table["group"] != "overall"].sort_values("estimate").reset_index(drop=True)
    if len(table) > max_points:
        table = table.iloc[np.linspace(0, len(table) - 1, max_points).round().astype(int)]
    fig, ax = _new_axes(ax, (6.5, max(3.0, 0.12 * len(table))))
    pos = np.arange(len(table))
    ax.hlines(pos, table["lower"], table["upper"], color="grey", lw=1)
    ax.plot(table["estimate"], pos, "o", ms=3, color="C0")
    ax.set_yticks(pos, table["group"], fontsize=6)
    if table["lower"].notna().any():
        ax.set_xlabel(f"efficiency ({table['interval'].iloc[0]}, {level:.0%})")
    else:  # point scores (DEA): no interval to name
        ax.set_xlabel("efficiency score")
    ax.set_xlim(0, max(1.02, float(np.nanmax(table["estimate"], initial=0)) + 0.02))
    ax.set_title(f"efficiency by unit: {table['method'].iloc[0]}")
    return fig
