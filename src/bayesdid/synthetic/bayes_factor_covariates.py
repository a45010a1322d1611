"""Covariates of :class:`~.bayes_factor.BayesianFactorDiD`: checked, standardised, summarised.

The factor model's untreated outcomes get a term ``x_it' beta``. ``beta`` is integrated out
exactly with the period effects (see :mod:`.bayes_factor_design`), so what the likelihood needs
per adoption pattern (units whose first ``s`` periods are untreated) are, besides the
outcomes' mean and scatter, the covariates' mean ``Xbar`` (s x k), their cross-scatter with
the outcomes ``XY[j] = sum_i (x_ij - xbar_j)(y_i - ybar)'`` and with each other
``XX[j, l] = sum_i (x_ij - xbar_j)(x_il - xbar_l)'`` (s x s each): N-free sufficient statistics.

Covariates are standardised by the mean and sd of the untreated cells (the only cells that
inform ``beta``); :func:`covariate_cube` refuses a covariate that is not finite anywhere
(treated rows' values enter the counterfactuals), constant over the untreated cells, or
linearly dependent on the others there.

>>> import numpy as np, pandas as pd
>>> from bayesdid.datasets import simulate_factor_panel
>>> from bayesdid import Panel
>>> from bayesdid.synthetic.factor_panel import factor_matrix
>>> sim = simulate_factor_panel(n_units=8, n_periods=6, n_treated=2, cohorts=(4,), seed=1,
...                             covariate_effect=1.0)
>>> panel = Panel.from_frame(sim.data, **sim.panel_kwargs, covariates=["x"])
>>> cube = covariate_cube(panel, factor_matrix(panel), ("x",))
>>> cube.X.shape, cube.names
((8, 6, 1), ('x',))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ColumnError, DesignError, MissingValueError, NonFiniteValueError
from ..panel import Panel
from .factor_panel import FactorMatrix

__all__ = ["CovariateCube", "covariate_cube", "pattern_covariate_stats"]


@dataclass(frozen=True)
class CovariateCube:
    """``X`` (N x T x k, standardised, rows in ``fm.units`` order), the untreated cells'
    means ``loc`` and sds ``scale`` (k,) and the column ``names``."""

    X: np.ndarray
    loc: np.ndarray
    scale: np.ndarray
    names: tuple[str, ...]


def covariate_cube(panel: Panel, fm: FactorMatrix, names: tuple[str, ...]) -> CovariateCube:
    """The panel's columns ``names`` as a balanced, standardised covariate cube.

    Raises
    ------
    MissingValueError / NonFiniteValueError : a covariate is missing or infinite somewhere.
    ColumnError : a name is not a column of the panel, or not numeric.
    DesignError : a covariate is constant over the untreated cells, or the covariates are
        linearly dependent there (rank deficient); the message names the columns.
    """
    names = tuple(names)
    N, T = fm.Y.shape
    if not names:
        return CovariateCube(np.zeros((N, T, 0)), np.zeros(0), np.ones(0), ())
    frame = panel.frame
    for col in names:
        if col not in frame.columns:
            raise ColumnError(f"covariate {col!r} is not a column of the panel", column=col,
                              hint=f"covariates of this panel: {list(panel.covariates)}")
        if not pd.api.types.is_numeric_dtype(frame[col]):
            raise ColumnError(f"covariate {col!r} is not numeric ({frame[col].dtype})",
                              column=col, rows=frame[[panel.unit, panel.time, col]].head(5))
    if len(set(names)) < len(names):
        raise DesignError(f"covariates {list(names)} name a column twice",
                          column=next(c for c in names if names.count(c) > 1))
    cube = np.empty((N, T, len(names)))
    for j, col in enumerate(names):
        wide = (frame.pivot(index=panel.unit, columns=panel.time, values=col)
                .reindex(index=fm.units, columns=fm.times))
        values = wide.to_numpy(float)
        bad = ~np.isfinite(values)
        if bad.any():
            u, t = np.nonzero(bad)
            rows = pd.DataFrame({panel.unit: fm.units[u], panel.time: fm.times[t],
                                 col: values[u, t]})
            kind = MissingValueError if np.isnan(values).any() else NonFiniteValueError
            raise kind(f"covariate {col!r} is missing or not finite in {int(bad.sum())} "
                       "(unit, period) cell(s); the factor model needs it in every cell "
                       "(treated cells' values enter the counterfactuals)", column=col,
                       rows=rows)
        cube[:, :, j] = values
    cells = cube[fm.untreated]  # (untreated cells, k)
    loc, scale = cells.mean(axis=0), cells.std(axis=0)
    unit_of, time_of = np.nonzero(fm.untreated)
    for j, col in enumerate(names):
        if not scale[j] > 1e-12 * max(1.0, abs(loc[j])):
            raise DesignError(
                f"covariate {col!r} is constant ({loc[j]:g}) over the untreated cells, "
                "which alone inform its coefficient", column=col,
                rows=_cells(fm, unit_of, time_of, cells[:, j], col).head(5),
                hint="drop it: the period effects absorb a constant")
    Z = (cells - loc) / scale
    _, sv, vt = np.linalg.svd(Z / np.sqrt(len(Z)), full_matrices=False)
    if sv[-1] < 1e-8 * sv[0]:
        null = vt[-1]
        involved = [names[j] for j in np.flatnonzero(np.abs(null) > 1e-6)]
        rows = pd.DataFrame({"unit": fm.units[unit_of], "time": fm.times[time_of],
                             **{c: cells[:, names.index(c)] for c in involved}}).head(5)
        raise DesignError(
            f"covariates {involved} are linearly dependent over the untreated cells "
            "(rank deficient): their coefficients are not identified",
            column=involved[0], rows=rows, hint=f"drop one of {involved}")
    return CovariateCube((cube - loc) / scale, loc, scale, names)


def _cells(fm, unit_of, time_of, values, col) -> pd.DataFrame:
    return pd.DataFrame({"unit": fm.units[unit_of], "time": fm.times[time_of], col: values})


def pattern_covariate_stats(X: np.ndarray, Y: np.ndarray, rows: np.ndarray, s: int):
    """``(Xbar (s, k), XY (k, s, s), XX (k, k, s, s))`` of units ``rows`` over their first
    ``s`` periods (see the module docstring)."""
    Xs = X[rows, :s]  # (n, s, k)
    Ys = Y[rows, :s]
    xbar = Xs.mean(axis=0)
    xd = Xs - xbar
    yd = Ys - Ys.mean(axis=0)
    xy = np.einsum("nak,nb->kab", xd, yd)
    xx = np.einsum("naj,nbl->jlab", xd, xd)
    return xbar, xy, xx
