"""Partially pooled cell effects for :class:`~.bayes_factor.BayesianFactorDiD` (``effects="pooled"``).

A cell is a cohort x pooling groups x event time (the rows of ``FactorDesign.cell_table``).
Its effect is additive structure plus a pooled deviation, as in HierarchicalDiD::

    theta_cell = mu + a_cohort + sum_g a_g[level] + a_k + dev_cell
    mu, a_* ~ N(0, effect_mean_sd^2),   dev_cell ~ N(0, cell_sd^2),
    cell_sd ~ Gamma(2, 2 / effect_sd)

(all in the standardised outcome's sds). Treated units' post rows then enter the likelihood
as ``y - theta_cell``: every row of a treated unit is modelled, so treated units are
grouped by (cohort, pooling groups) - units sharing those share every cell - and each such
group's mean row is ``b + Xbar beta + effect_map eta`` with ``eta`` the coefficients above.
``eta`` is linear-Gaussian given ``cell_sd``, so it joins ``(b, beta)`` in the block
integrated out exactly (:mod:`.bayes_factor_design`); NUTS sees one more scale,
``cell_sd``.

>>> import pandas as pd
>>> table = pd.DataFrame({"cohort": [5, 5, 6], "k": [0, 1, 0]})
>>> ed = effect_design(table, ())
>>> ed.names, ed.n_additive
(['mu', 'cohort=5', 'cohort=6', 'k=0', 'k=1', 'cell[0]', 'cell[1]', 'cell[2]'], 5)
>>> ed.M[2].tolist()  # cohort 6, k = 0
[1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["EffectDesign", "effect_design", "effect_prior_sd"]


@dataclass(frozen=True)
class EffectDesign:
    """``M`` (cells x E): each cell-table row's effect as a sum of coefficients ``eta``;
    the first ``n_additive`` are the additive terms, the rest one deviation per cell."""

    names: list[str]
    n_additive: int
    M: np.ndarray

    @property
    def n_cells(self) -> int:
        return self.M.shape[0]


def effect_design(cell_table: pd.DataFrame, group_names: tuple[str, ...]) -> EffectDesign:
    """The additive + deviation coding of ``cell_table`` (columns cohort, groups, k)."""
    names = ["mu"]
    columns = [np.ones((len(cell_table), 1))]
    for col in ("cohort", *group_names, "k"):
        levels = sorted(pd.unique(cell_table[col]))
        codes = pd.Categorical(cell_table[col], categories=levels).codes
        columns.append(np.eye(len(levels))[codes])
        names += [f"{col}={v}" for v in levels]
    n_additive = len(names)
    columns.append(np.eye(len(cell_table)))
    names += [f"cell[{i}]" for i in range(len(cell_table))]
    return EffectDesign(names=names, n_additive=n_additive, M=np.hstack(columns))


def effect_prior_sd(ed: EffectDesign, effect_mean_sd: float, cell_sd) -> np.ndarray:
    """(..., E) prior sds of ``eta`` for ``cell_sd`` (scalar or (S,))."""
    cell_sd = np.asarray(cell_sd, float)
    out = np.empty((*cell_sd.shape, len(ed.names)))
    out[..., : ed.n_additive] = effect_mean_sd
    out[..., ed.n_additive:] = cell_sd[..., None]
    return out
