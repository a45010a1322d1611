"""Arrays and the exact marginal likelihood of :class:`~bayesdid.synthetic.bayes_factor.BayesianFactorDiD`.

Untreated outcomes (standardised by the mean and sd of the untreated cells)::

    y_it(0) = b_t + a_i + lambda_i' f_t + e_it,   a_i ~ N(0, s_a^2), lambda_ik ~ N(0, 1),
    e_it ~ N(0, sigma^2),   b_t ~ N(0, time_sd^2)

(for treated units ``a_i`` and ``lambda_i`` have ``treated_scale`` times wider priors: their
loadings are not assumed exchangeable with the controls', see ``BayesianFactorDiD``).

With ``L = [s_a 1, tau_1 f_1, ..., tau_K f_K]`` (T x (K+1)) the unit effect and loadings
integrate out: a unit whose first ``s`` periods are untreated has
``y_i[:s] ~ N(b[:s], L[:s] L[:s]' + sigma^2 I)``. Units sharing ``s`` (the never-treated,
``s = T``, and each treated cohort) share that covariance, so their contribution needs only
their count, mean and within-group scatter. The period effects ``b ~ N(0, time_sd^2 I)``
are integrated out too (a T x T Gaussian given the group means): the likelihood costs one
s x s factorisation per group and one T x T for ``b`` per gradient, whatever the number of
units, and NUTS sees only the factors and three kinds of scales.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> Y = rng.normal(size=(6, 4)); start = np.array([4, 4, 4, 4, 2, 3])
>>> groups = pattern_groups(Y, start)
>>> [(g.length, g.n) for g in groups]
[(2, 1), (3, 1), (4, 4)]
>>> L = rng.normal(size=(4, 2))
>>> ours = marginal_loglik_np(groups, L, 0.7, 2.0, treated_scale=3.0)
>>> round(ours - dense_loglik_np(Y, start, L, 0.7, 2.0, treated_scale=3.0), 10)
0.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DesignError
from ..panel import Panel
from .factor_panel import FactorMatrix, factor_matrix

__all__ = ["FactorDesign", "PatternGroup", "prepare_factor", "pattern_groups",
           "marginal_loglik_np", "dense_loglik_np", "time_effect_posterior"]


@dataclass(frozen=True)
class PatternGroup:
    """Units whose untreated rows are the first ``length`` periods: their count, mean
    vector (length,) and within-group scatter (length x length); ``treated``: a treated
    cohort (``length`` < T), whose loadings get the wider prior."""

    length: int
    n: int
    mean: np.ndarray
    scatter: np.ndarray
    treated: bool = False


def pattern_groups(Y: np.ndarray, start: np.ndarray) -> list[PatternGroup]:
    """Sufficient statistics of every untreated-prefix pattern (units with ``start > 0``)."""
    out = []
    for s in np.unique(start):
        if s == 0:
            continue
        rows = Y[start == s, :s]
        mean = rows.mean(axis=0)
        dev = rows - mean
        out.append(PatternGroup(length=int(s), n=len(rows), mean=mean, scatter=dev.T @ dev,
                                treated=bool(s < Y.shape[1])))
    return out


@dataclass(frozen=True)
class FactorDesign:
    """A panel as the factor model sees it.

    ``fm``: the balanced matrix (original scale); ``Y``: standardised outcomes;
    ``groups``: pattern sufficient statistics; ``cells``: one row per treated
    (unit, period) cell with its unit, time, cohort, k (event time) and pooled groups;
    ``cell_table``: one row per cohort x groups x event time with ``n_obs``/``weight``
    (the layout :func:`bayesdid.did.aggregate.aggregation` takes) and ``cell_of``
    mapping each treated (unit, period) cell to its row.
    """

    fm: FactorMatrix
    Y: np.ndarray
    y_loc: float
    y_scale: float
    groups: list[PatternGroup]
    cells: pd.DataFrame
    cell_table: pd.DataFrame
    cell_of: np.ndarray
    group_names: tuple[str, ...]

    @property
    def n_periods(self) -> int:
        return self.Y.shape[1]


def prepare_factor(panel: Panel, groups: tuple[str, ...]) -> FactorDesign:
    """Balanced, standardised arrays and the treated-cell layout of ``panel``.

    Raises :class:`~bayesdid.errors.DesignError` when a pooling group varies within a unit
    (the factor model pools whole units) or names no panel column.
    """
    fm = factor_matrix(panel, min_pre=1)
    frame = panel.frame
    unit_groups = {}
    for g in groups:
        if g not in frame.columns:
            raise DesignError(f"pooling group {g!r} is not a column of the panel",
                              column=g, hint=f"groups of this panel: {list(panel.groups)}")
        per_unit = frame.groupby(panel.unit)[g].nunique(dropna=False)
        bad = per_unit[per_unit > 1]
        if len(bad):
            raise DesignError(f"group {g!r} varies within {len(bad)} unit(s); the factor "
                              "model reports effects by unit-level groups only", column=g,
                              rows=bad.rename("distinct values").reset_index())
        unit_groups[g] = frame.groupby(panel.unit)[g].first().reindex(fm.units).to_numpy()
    Y = fm.Y
    loc = float(Y[fm.untreated].mean())
    scale = float(Y[fm.untreated].std())
    if not scale > 0:
        raise DesignError(f"outcome {panel.outcome!r} is constant over the untreated cells",
                          column=panel.outcome)
    Ys = (Y - loc) / scale
    T = Y.shape[1]
    rows = []
    for j in fm.treated_rows:
        for t in range(fm.start[j], T):
            rows.append({"unit_row": j, "unit": fm.units[j], "time": fm.times[t], "t": t,
                         "cohort": fm.times[fm.start[j]], "k": t - fm.start[j],
                         **{g: unit_groups[g][j] for g in groups}})
    cells = pd.DataFrame(rows)
    keys = ["cohort", *groups, "k"]
    table = (cells.groupby(keys, sort=True, observed=True).size().rename("n_obs")
             .reset_index())
    table["weight"] = table["n_obs"].astype(float)
    cell_of = cells.merge(table.reset_index()[[*keys, "index"]], on=keys, how="left")["index"]
    return FactorDesign(fm=fm, Y=Ys, y_loc=loc, y_scale=scale,
                        groups=pattern_groups(Ys, fm.start), cells=cells, cell_table=table,
                        cell_of=cell_of.to_numpy(), group_names=tuple(groups))


# ---------------------------------------------------------------------- likelihood (NumPy)
def time_effect_posterior(groups: list[PatternGroup], L: np.ndarray, sigma: np.ndarray,
                          time_sd: float, treated_scale: float = 1.0):
    """Batched over draws (leading axis of ``L`` (S, T, r) and ``sigma`` (S,)): the
    Gaussian posterior of the period effects ``b ~ N(0, time_sd^2 I)`` given the group
    means, as its mean ``m`` (S, T), covariance ``V`` (S, T, T), precision ``P`` and the
    groups' inverse covariances. Treated cohorts' loadings (and unit effects) have their
    prior sd multiplied by ``treated_scale``."""
    S, T, _ = L.shape
    P = np.broadcast_to(np.eye(T) / time_sd ** 2, (S, T, T)).copy()
    h = np.zeros((S, T))
    inverses = []
    for g in groups:
        Ls = L[:, : g.length] * (treated_scale if g.treated else 1.0)
        cov = Ls @ np.swapaxes(Ls, 1, 2) + sigma[:, None, None] ** 2 * np.eye(g.length)
        Si = np.linalg.inv(cov)
        inverses.append((Si, cov))
        P[:, : g.length, : g.length] += g.n * Si
        h[:, : g.length] += g.n * (Si @ g.mean)
    V = np.linalg.inv(P)
    m = np.einsum("sij,sj->si", V, h)
    return m, V, P, inverses


def marginal_loglik_np(groups: list[PatternGroup], L: np.ndarray, sigma: float,
                       time_sd: float, treated_scale: float = 1.0) -> float:
    """Log-likelihood of every unit's untreated rows with unit effects, loadings and period
    effects integrated out (what the PyMC graph and the numba density compute)."""
    m, V, P, inverses = time_effect_posterior(groups, L[None], np.array([sigma]), time_sd,
                                              treated_scale)
    m, P = m[0], P[0]
    T = L.shape[0]
    total = -0.5 * (m @ m) / time_sd ** 2 - 0.5 * np.linalg.slogdet(P)[1] - T * np.log(time_sd)
    for g, (Si, cov) in zip(groups, inverses):
        Si, cov = Si[0], cov[0]
        d = g.mean - m[: g.length]
        total -= 0.5 * (g.n * (g.length * np.log(2 * np.pi) + np.linalg.slogdet(cov)[1])
                        + np.trace(Si @ g.scatter) + g.n * d @ Si @ d)
    return float(total)


def dense_loglik_np(Y: np.ndarray, start: np.ndarray, L: np.ndarray, sigma: float,
                    time_sd: float, treated_scale: float = 1.0) -> float:
    """Reference: all units' untreated rows stacked as one dense multivariate normal
    (SciPy), covariance block-diagonal per unit plus ``time_sd^2`` for shared periods."""
    rows = [(i, t) for i, s in enumerate(start) for t in range(s)]
    unit = np.array([i for i, _ in rows])
    t = np.array([t for _, t in rows])
    scale = np.where(start[unit] < Y.shape[1], treated_scale, 1.0)
    cov = (L[t] @ L[t].T) * (unit[:, None] == unit[None, :]) * np.outer(scale, scale)
    cov += sigma ** 2 * np.eye(len(rows)) + time_sd ** 2 * (t[:, None] == t[None, :])
    return float(stats.multivariate_normal(np.zeros(len(rows)), cov).logpdf(Y[unit, t]))
