"""Placebo plots: the placebo distribution with the real estimate marked (LCCP Figures 4-6).

:func:`placebo_plot` draws, for a random placebo (random timing, fictional group, both
random), a histogram and kernel density of the placebo estimates, a vertical line at the
real estimate and the randomization p-value in the legend; for shifted timing, the
estimate and confidence interval at each shift beside the real one at shift 0.
Built without pyplot (no global state); pass ``ax=`` to draw into an existing Axes.

>>> import numpy as np
>>> from bayesdid.checks.placebo import PlaceboResult
>>> from bayesdid.results import EffectResult
>>> real = EffectResult.from_rows([dict(estimand="att", group="overall", estimate=0.3,
...     se_or_sd=0.1, lower=0.1, upper=0.5, level=0.95, interval="confidence", n_obs=100)],
...     method="twfe")
>>> res = PlaceboResult(kind="fictional_group", real=0.3, real_result=real, method="twfe",
...                     draws=np.random.default_rng(0).normal(0, 0.1, 300))
>>> fig = placebo_plot(res)
>>> fig.axes[0].get_xlabel()
'placebo estimate'
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import stats

from ..errors import BayesDidError


class PlaceboResult(Protocol):
    """What :func:`placebo_plot` reads from a :class:`bayesdid.checks.placebo.PlaceboResult`
    (a protocol, so that this module does not import the estimator that imports it)."""

    kind: str
    real: float
    draws: np.ndarray
    p_value: float

    def effects(self, *args, **kwargs): ...


__all__ = ["placebo_plot"]

_TITLES = {"random_timing": "Random timing", "fictional_group": "Fictional treated group",
           "both_random": "Random group and timing", "shifted_timing": "Shifted timing"}


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.get_figure(root=True), ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def placebo_plot(result: PlaceboResult, *, ax: Axes | None = None, bins: int | str = "auto",
                 kde: bool = True, title: str | None = None,
                 figsize: tuple[float, float] = (6.0, 4.0)) -> Figure:
    """Plot a placebo test (see module docstring); returns the Figure.

    Parameters
    ----------
    result : a :class:`~bayesdid.checks.placebo.PlaceboResult`.
    bins : histogram bins (random kinds). kde : overlay a Gaussian kernel density.
    """
    if not hasattr(result, "kind") or not hasattr(result, "draws"):
        raise BayesDidError(f"placebo_plot needs a PlaceboResult, got {type(result).__name__}")
    fig, ax = _new_axes(ax, figsize)
    if result.kind == "shifted_timing":
        _shifted(ax, result)
    else:
        _density(ax, result, bins, kde)
    ax.set_title(title if title is not None else f"Placebo test: {_TITLES[result.kind]}")
    return fig


def _density(ax: Axes, result: PlaceboResult, bins, kde: bool) -> None:
    d = result.draws[np.isfinite(result.draws)]
    ax.hist(d, bins=bins, density=True, color="C0", alpha=0.35, edgecolor="white",
            label=f"placebo estimates (n={d.size})")
    if kde and d.size > 1 and np.ptp(d) > 0:
        lo, hi = min(d.min(), result.real), max(d.max(), result.real)
        pad = 0.05 * (hi - lo)
        grid = np.linspace(lo - pad, hi + pad, 400)
        ax.plot(grid, stats.gaussian_kde(d)(grid), color="C0", lw=1.5, label="kernel density")
    ax.axvline(result.real, color="C3", lw=2, ls="--",
               label=f"real estimate {result.real:.4g} (p = {result.p_value:.3f})")
    ax.axvline(0.0, color="0.5", lw=0.8)
    ax.set_xlabel("placebo estimate")
    ax.set_ylabel("density")
    ax.legend(frameon=False, fontsize="small")


def _shifted(ax: Axes, result: PlaceboResult) -> None:
    table = result.effects()
    shifted = table[table["estimand"] == "att_shifted"]
    ks = np.array([int(g.split("=")[1]) for g in shifted["group"]])
    est = shifted["estimate"].to_numpy()
    err = np.vstack([est - shifted["lower"].to_numpy(), shifted["upper"].to_numpy() - est])
    ax.errorbar(ks, est, yerr=err, fmt="o", color="C0", capsize=3, label="shifted start")
    real = table[table["estimand"] == "att"].iloc[0]
    ax.errorbar([0], [real["estimate"]], yerr=[[real["estimate"] - real["lower"]],
                                               [real["upper"] - real["estimate"]]],
                fmt="D", color="C3", capsize=3, label="real start")
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xlabel("shift of the policy start (periods; negative = advanced)")
    ax.set_ylabel("estimate")
    ax.set_xticks(sorted({0, *ks.tolist()}))
    ax.legend(frameon=False, fontsize="small")
