"""Plots of propensity-score matching: the standardised-bias dot plot (before/after).

Built without pyplot (no global state, works headless); pass ``ax=`` to draw into an
existing Axes. The figure is returned.

>>> import pandas as pd
>>> bal = pd.DataFrame({"period": "all", "covariate": ["x1", "x1", "x2", "x2"],
...                     "sample": ["unmatched", "matched"] * 2,
...                     "pct_bias": [45.0, 3.0, -30.0, -2.0]})
>>> fig = balance_plot(bal)
>>> fig.axes[0].get_xlabel()
'standardised % bias'
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..errors import BayesDidError

__all__ = ["balance_plot"]


def balance_plot(balance: pd.DataFrame, *, period: Any = "all", threshold: float = 10.0,
                 ax: Axes | None = None, title: str | None = None) -> Figure:
    """Dot plot of each covariate's standardised % bias before (hollow) and after (filled)
    matching, with reference lines at 0 and ``+/- threshold`` (10%, the usual rule).

    ``balance`` is :attr:`bayesdid.checks.psm.PSMResult.balance`; ``period`` selects a
    period (default ``"all"``, the periods stacked).
    """
    needed = {"period", "covariate", "sample", "pct_bias"}
    if not isinstance(balance, pd.DataFrame) or not needed <= set(balance.columns):
        raise BayesDidError(f"balance must be a PSM balance table with columns {sorted(needed)}")
    sub = balance[balance["period"].astype(str) == str(period)]
    if sub.empty:
        raise BayesDidError(f"no balance rows for period {period!r}; available: "
                            f"{list(dict.fromkeys(balance['period'].astype(str)))[:20]}",
                            column="period")
    wide = sub.pivot(index="covariate", columns="sample", values="pct_bias")
    wide = wide.reindex(sub["covariate"].drop_duplicates())
    if ax is None:
        fig = Figure(figsize=(6.0, 1.0 + 0.45 * len(wide)), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.get_figure(root=True)
    y = np.arange(len(wide))[::-1]
    if "unmatched" in wide:
        ax.scatter(wide["unmatched"], y, facecolors="none", edgecolors="C0", s=40,
                   label="unmatched", zorder=3)
    if "matched" in wide:
        ax.scatter(wide["matched"], y, color="C1", marker="x", s=40, label="matched", zorder=3)
    ax.axvline(0, color="0.3", lw=0.8)
    for sign in (-1, 1):
        ax.axvline(sign * threshold, color="0.6", lw=0.8, ls="--")
    ax.set_yticks(y, [str(c) for c in wide.index])
    ax.set_xlabel("standardised % bias")
    ax.set_title(title or f"Covariate balance ({'all periods' if str(period) == 'all' else period})")
    ax.legend(loc="best", frameon=False)
    return fig
