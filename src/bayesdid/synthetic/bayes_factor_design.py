"""Arrays and the exact marginal likelihood of :class:`~bayesdid.synthetic.bayes_factor.BayesianFactorDiD`.

Untreated outcomes (standardised by the mean and sd of the untreated cells; covariates
``x_it`` (k) likewise, :mod:`.bayes_factor_covariates`)::

    y_it(0) = b_t + x_it' beta + a_i + lambda_i' f_t + e_it,   a_i ~ N(0, s_a^2),
    lambda_ik ~ N(0, 1),   e_it ~ N(0, sigma^2),   b_t ~ N(0, time_sd^2),
    beta_j ~ N(0, covariate_sd^2)

(for treated units ``a_i`` and ``lambda_i`` have ``treated_scale`` times wider priors: their
loadings are not assumed exchangeable with the controls', see ``BayesianFactorDiD``).

With ``L = [s_a 1, tau_1 f_1, ..., tau_K f_K]`` (T x (K+1)) the unit effect and loadings
integrate out: a unit whose first ``s`` periods are untreated has
``y_i[:s] ~ N(b[:s], L[:s] L[:s]' + sigma^2 I)``. Units sharing ``s`` (the never-treated,
``s = T``, and each treated cohort) share that covariance, so their contribution needs only
their count, mean and within-group scatter. The period effects ``b ~ N(0, time_sd^2 I)``
and the covariate coefficients ``beta`` are integrated out too, as one Gaussian block
``theta = (b, beta)`` of size T + k whose precision and linear term are sums over groups of
N-free statistics (``Xbar``, ``XY``, ``XX`` per group): the likelihood costs one s x s
factorisation per group and one (T + k) x (T + k) for ``theta`` per gradient, whatever the
number of units, and NUTS sees only the factors and three kinds of scales. (Integrating
``beta`` out rather than sampling it: it is linear-Gaussian given the rest, so it joins the
block already integrated out and leaves NUTS's dimension and geometry unchanged.)

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> Y = rng.normal(size=(6, 4)); start = np.array([4, 4, 4, 4, 2, 3])
>>> groups = pattern_groups(Y, start)
>>> [(g.length, g.n) for g in groups]
[(2, 1), (3, 1), (4, 4)]
>>> L = rng.normal(size=(4, 2))
>>> ours = marginal_loglik_np(groups, L, 0.7, 2.0, treated_scale=3.0)
>>> bool(abs(ours - dense_loglik_np(Y, start, L, 0.7, 2.0, treated_scale=3.0)) < 1e-10)
True
>>> X = rng.normal(size=(6, 4, 2))  # two covariates
>>> ours = marginal_loglik_np(pattern_groups(Y, start, X), L, 0.7, 2.0, 3.0, covariate_sd=1.5)
>>> bool(abs(ours - dense_loglik_np(Y, start, L, 0.7, 2.0, 3.0, X=X, covariate_sd=1.5)) < 1e-10)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DesignError
from ..panel import Panel
from .bayes_factor_covariates import CovariateCube, covariate_cube, pattern_covariate_stats
from .bayes_factor_pooled import EffectDesign, effect_design
from .factor_panel import FactorMatrix, factor_matrix

__all__ = ["FactorDesign", "PatternGroup", "prepare_factor", "pattern_groups", "pooled_groups",
           "marginal_loglik_np", "dense_loglik_np", "time_effect_posterior",
           "covariate_scatter"]


@dataclass(frozen=True)
class PatternGroup:
    """Units whose untreated rows are the first ``length`` periods: their count, mean
    vector (length,) and within-group scatter (length x length); ``treated``: a treated
    cohort (``length`` < T), whose loadings get the wider prior; ``xmean`` (length x k),
    ``xy`` (k x length x length), ``xx`` (k x k x length x length): the covariates' mean
    and scatters (:func:`~.bayes_factor_covariates.pattern_covariate_stats`; k = 0 without
    covariates)."""

    length: int
    n: int
    mean: np.ndarray
    scatter: np.ndarray
    treated: bool = False
    xmean: np.ndarray | None = None
    xy: np.ndarray | None = None
    xx: np.ndarray | None = None
    effect_map: np.ndarray | None = None

    @property
    def n_cov(self) -> int:
        return 0 if self.xmean is None else self.xmean.shape[1]

    @property
    def n_eff(self) -> int:
        """Pooled cell-effect coefficients (``effects="pooled"``; 0 otherwise): row ``t``
        of ``effect_map`` (length x n_eff) maps them to the effect in period ``t``."""
        return 0 if self.effect_map is None else self.effect_map.shape[1]

    def design_rows(self, T: int) -> np.ndarray:
        """``A`` (length x (T + k + n_eff)): the group's mean row is ``A theta`` with
        ``theta = (b, beta, effect coefficients)``."""
        A = np.zeros((self.length, T + self.n_cov + self.n_eff))
        A[:, : self.length] = np.eye(self.length)
        A[:, T: T + self.n_cov] = self.xmean
        if self.n_eff:
            A[:, T + self.n_cov:] = self.effect_map
        return A


def _pattern_group(Y: np.ndarray, X: np.ndarray, rows: np.ndarray, length: int,
                   treated: bool, effect_map: np.ndarray | None = None) -> PatternGroup:
    """The :class:`PatternGroup` of units ``rows`` over their first ``length`` periods."""
    data = Y[rows, :length]
    mean = data.mean(axis=0)
    dev = data - mean
    xmean, xy, xx = pattern_covariate_stats(X, Y, rows, length)
    return PatternGroup(length=length, n=len(rows), mean=mean, scatter=dev.T @ dev,
                        treated=treated, xmean=xmean, xy=xy, xx=xx, effect_map=effect_map)


def pattern_groups(Y: np.ndarray, start: np.ndarray,
                   X: np.ndarray | None = None) -> list[PatternGroup]:
    """Sufficient statistics of every untreated-prefix pattern (units with ``start > 0``);
    ``X`` (N x T x k): covariates."""
    if X is None:
        X = np.zeros((*Y.shape, 0))
    return [_pattern_group(Y, X, np.flatnonzero(start == s), int(s), bool(s < Y.shape[1]))
            for s in np.unique(start) if s > 0]


def pooled_groups(Y: np.ndarray, X: np.ndarray, start: np.ndarray, unit_keys: list[tuple],
                  cell_index: dict[tuple, int], ed: EffectDesign) -> list[PatternGroup]:
    """Pattern groups when every row is modelled (``effects="pooled"``,
    :mod:`.bayes_factor_pooled`): the never-treated (one group), then one group per
    (cohort, pooling-group levels) of treated units (``unit_keys[i]``: unit i's levels),
    each of length T with its ``effect_map`` (T x E; zero before adoption)."""
    N, T = Y.shape
    keys = {}
    for i in range(N):
        keys.setdefault((int(start[i]), *unit_keys[i]) if start[i] < T else ("never",),
                        []).append(i)
    out = []
    for key, rows in sorted(keys.items(), key=lambda kv: (kv[0][0] != "never", str(kv[0]))):
        emap = np.zeros((T, len(ed.names)))
        treated = key[0] != "never"
        if treated:
            s = key[0]
            for t in range(s, T):
                emap[t] = ed.M[cell_index[(s, *key[1:], t - s)]]
        out.append(_pattern_group(Y, X, np.asarray(rows), T, treated, emap))
    return out


@dataclass(frozen=True)
class FactorDesign:
    """A panel as the factor model sees it.

    ``fm``: the balanced matrix (original scale); ``Y``: standardised outcomes;
    ``covariates``: the standardised covariate cube (k = 0 without covariates);
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
    covariates: CovariateCube | None = None
    pooled: EffectDesign | None = None

    @property
    def n_periods(self) -> int:
        return self.Y.shape[1]

    @property
    def n_cov(self) -> int:
        return 0 if self.covariates is None else len(self.covariates.names)


def prepare_factor(panel: Panel, groups: tuple[str, ...],
                   covariates: tuple[str, ...] = (), pooled: bool = False) -> FactorDesign:
    """Balanced, standardised arrays (outcome and ``covariates``) and the treated-cell
    layout of ``panel``; ``pooled``: every row is modelled, with partially pooled cell
    effects (:mod:`.bayes_factor_pooled`).

    Raises :class:`~bayesdid.errors.DesignError` when a pooling group varies within a unit
    (the factor model pools whole units) or names no panel column, and the errors of
    :func:`~.bayes_factor_covariates.covariate_cube` for bad covariates.
    """
    fm = factor_matrix(panel, min_pre=1)
    cube = covariate_cube(panel, fm, covariates)
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
    cell_of = cell_of.to_numpy()
    effects = None
    if pooled:
        effects = effect_design(table, tuple(groups))
        unit_keys = [tuple(unit_groups[g][i] for g in groups) for i in range(len(fm.units))]
        index = {(int(fm.start[j]), *unit_keys[j], int(k)): int(c)
                 for j, k, c in zip(cells["unit_row"], cells["k"], cell_of)}
        pattern = pooled_groups(Ys, cube.X, fm.start, unit_keys, index, effects)
    else:
        pattern = pattern_groups(Ys, fm.start, cube.X)
    return FactorDesign(fm=fm, Y=Ys, y_loc=loc, y_scale=scale, groups=pattern, cells=cells,
                        cell_table=table, cell_of=cell_of, group_names=tuple(groups),
                        covariates=cube, pooled=effects)


# ---------------------------------------------------------------------- likelihood (NumPy)
def covariate_scatter(g: PatternGroup, beta: np.ndarray) -> np.ndarray:
    """Within-group scatter of ``y_i - X_i beta`` (``beta`` (..., k); returns (..., s, s))."""
    lin = np.einsum("...j,jab->...ab", beta, g.xy)
    return (g.scatter - lin - np.swapaxes(lin, -1, -2)
            + np.einsum("...j,...l,jlab->...ab", beta, beta, g.xx))


def time_effect_posterior(groups: list[PatternGroup], L: np.ndarray, sigma: np.ndarray,
                          time_sd: float, treated_scale: float = 1.0,
                          covariate_sd: float = 1.0, effect_sd: np.ndarray | None = None):
    """Batched over draws (leading axis of ``L`` (S, T, r) and ``sigma`` (S,)): the
    Gaussian posterior of ``theta = (b, beta, eta)`` (period effects ``b ~ N(0, time_sd^2
    I)``, the k covariate coefficients ``beta ~ N(0, covariate_sd^2 I)`` and, with pooled
    cell effects, their coefficients ``eta ~ N(0, diag(effect_sd^2))``, ``effect_sd``
    (S, E)) given the group statistics, as its mean ``m`` (S, T + k + E), covariance ``V``,
    precision ``P`` and the groups' (inverse covariance, covariance). Treated cohorts'
    loadings (and unit effects) have their prior sd multiplied by ``treated_scale``."""
    S, T, _ = L.shape
    k = groups[0].n_cov if groups else 0
    E = groups[0].n_eff if groups else 0
    D = T + k + E
    P = np.zeros((S, D, D))
    idx = np.arange(D)
    P[:, idx[:T], idx[:T]] = time_sd ** -2.0
    P[:, idx[T:T + k], idx[T:T + k]] = covariate_sd ** -2.0
    if E:
        P[:, idx[T + k:], idx[T + k:]] = np.broadcast_to(effect_sd, (S, E)) ** -2.0
    h = np.zeros((S, D))
    inverses = []
    for g in groups:
        s = g.length
        Ls = L[:, :s] * (treated_scale if g.treated else 1.0)
        cov = Ls @ np.swapaxes(Ls, 1, 2) + sigma[:, None, None] ** 2 * np.eye(s)
        Si = np.linalg.inv(cov)
        inverses.append((Si, cov))
        A = g.design_rows(T)
        P += g.n * A.T[None] @ (Si @ A)
        h += g.n * np.einsum("ad,sa->sd", A, Si @ g.mean)
        if k:
            P[:, T:T + k, T:T + k] += np.einsum("sab,jlab->sjl", Si, g.xx)
            h[:, T:T + k] += np.einsum("sab,jab->sj", Si, g.xy)
    V = np.linalg.inv(P)
    m = np.einsum("sij,sj->si", V, h)
    return m, V, P, inverses


def marginal_loglik_np(groups: list[PatternGroup], L: np.ndarray, sigma: float,
                       time_sd: float, treated_scale: float = 1.0,
                       covariate_sd: float = 1.0, effect_sd: np.ndarray | None = None) -> float:
    """Log-likelihood of every unit's modelled rows (untreated rows; with pooled effects
    every row) with unit effects, loadings, period effects, covariate coefficients and
    pooled effect coefficients (prior sds ``effect_sd`` (E,)) integrated out (what the
    PyMC graph and the numba density compute)."""
    m, V, P, inverses = time_effect_posterior(
        groups, L[None], np.array([sigma]), time_sd, treated_scale, covariate_sd,
        None if effect_sd is None else np.asarray(effect_sd)[None])
    m, P = m[0], P[0]
    T = L.shape[0]
    k = groups[0].n_cov
    beta = m[T:T + k]
    prior_sd = np.r_[np.full(T, time_sd), np.full(k, covariate_sd),
                     [] if effect_sd is None else effect_sd]
    total = (-0.5 * np.sum((m / prior_sd) ** 2) - 0.5 * np.linalg.slogdet(P)[1]
             - np.log(prior_sd).sum())
    for g, (Si, cov) in zip(groups, inverses):
        Si, cov = Si[0], cov[0]
        W = covariate_scatter(g, beta) if k else g.scatter
        d = g.mean - g.design_rows(T) @ m
        total -= 0.5 * (g.n * (g.length * np.log(2 * np.pi) + np.linalg.slogdet(cov)[1])
                        + np.trace(Si @ W) + g.n * d @ Si @ d)
    return float(total)


def dense_loglik_np(Y: np.ndarray, start: np.ndarray, L: np.ndarray, sigma: float,
                    time_sd: float, treated_scale: float = 1.0, *,
                    X: np.ndarray | None = None, covariate_sd: float = 1.0,
                    effect_rows: np.ndarray | None = None,
                    effect_sd: np.ndarray | None = None) -> float:
    """Reference: all units' untreated rows stacked as one dense multivariate normal
    (SciPy), covariance block-diagonal per unit plus ``time_sd^2`` for shared periods
    (plus ``covariate_sd^2 X X'`` with covariates ``X`` (N x T x k)). With pooled effects,
    ``effect_rows`` (N x T x E) maps each cell to its effect coefficients (prior sds
    ``effect_sd``) and every row of every unit enters."""
    T = Y.shape[1]
    n_rows = start if effect_rows is None else np.full(len(start), T)
    rows = [(i, t) for i, s in enumerate(n_rows) for t in range(s)]
    unit = np.array([i for i, _ in rows])
    t = np.array([t for _, t in rows])
    scale = np.where(start[unit] < Y.shape[1], treated_scale, 1.0)
    cov = (L[t] @ L[t].T) * (unit[:, None] == unit[None, :]) * np.outer(scale, scale)
    cov += sigma ** 2 * np.eye(len(rows)) + time_sd ** 2 * (t[:, None] == t[None, :])
    if X is not None:
        Xr = X[unit, t]
        cov += covariate_sd ** 2 * Xr @ Xr.T
    if effect_rows is not None:
        Er = effect_rows[unit, t] * np.asarray(effect_sd)
        cov += Er @ Er.T
    return float(stats.multivariate_normal(np.zeros(len(rows)), cov).logpdf(Y[unit, t]))
