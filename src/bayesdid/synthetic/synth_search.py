"""The outer problem of ADH synthetic control: the predictor weights V.

* Inner problem, :func:`~bayesdid.synthetic.synth_simplex.simplex_weights`: ``W`` on the
  simplex for a given ``V``, exact (Wolfe's minimum-norm-point algorithm, compiled).
* Outer problem, :func:`search_v`: ``V`` minimises the outcome MSPE of ``W(V)`` over the
  chosen periods (R ``Synth``'s ``time.optimize.ssr``). This loss is piecewise smooth in
  ``V`` -- each piece is one donor support of ``W`` -- and strongly multimodal: its good
  optima are often *lexicographic*, some predictors carrying weights many orders of
  magnitude below others. A few Nelder-Mead starts (the former default, like ``Synth``'s
  ``optimx``) miss them on most problems. The search here works on ``theta = log V`` in the
  box ``[log V_FLOOR, 0]^K`` (``V`` is then scaled to sum to one):

  1. explore: every corner of the box (every predictor either at full weight or at the
     floor; at most 256 corners), equal weights, the regression-based ``V`` (squared
     coefficients of the pre-period outcomes regressed on the predictors across units, in
     the spirit of Stata ``synth``'s starting V) and ``n_explore`` seeded random points --
     half uniform, half *levelled* (predictors put on 2-3 levels orders of magnitude
     apart) -- evaluated in one compiled batch;
  2. group the explored points by the donor support of their ``W`` and keep the best point
     of each support;
  3. polish the ``n_starts`` best supports: sweeps of one-dimensional grid searches (each
     ``theta_k`` over 25 points of its range, and each block of the lowest coordinates
     shifted together, which changes the gap between two levels and keeps the ratios
     inside them; a global search along a line steps across the kinks where Nelder-Mead
     stalls), bounded Nelder-Mead from an inward simplex, and sweeps again;
  4. ask, by one LP each, whether the best fit of the outcomes over all donors, or on each
     polished support, is attainable by some ``V`` (the inner problem's optimality
     conditions are linear in ``V``); if it is, it is taken.

  Starting the local searches from *distinct supports* is what makes the search reliable:
  the best few explored points usually share one support (one basin), while the global
  optimum often sits in another. On simulated problems where a plain Nelder-Mead start
  reaches the best optimum a few times in a hundred, the default (``n_starts=10``,
  ``n_explore=3000``) lands within 1% of a 500-start search on >= 95% of them
  (``benchmarks/results/synth_search.md``).

If the treated unit lies inside the donors' hull in predictor space, every ``V`` fits the
predictors exactly and the inner minimiser is not unique; then there is nothing to search
and ``W`` is the exact fit with the best outcome MSPE (``exact_fit``).

``V_FLOOR = 1e-8``: the smallest weight relative to the largest (as MSCMT's lower bound on
``V``). Far below it the inner problem is degenerate to machine precision and ``W`` is
decided by round-off: on one benchmark seed the former search reported an MSPE 5% below
the reference at a ``V`` with weights down to 1e-36 of the largest, where the exact inner
minimiser fits 2.8 times worse.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> X0, Z0 = rng.normal(size=(3, 20)), rng.normal(size=(6, 20))
>>> x1, z1 = X0.max(axis=1) + 0.5, Z0[:, :4].mean(axis=1)  # outside the donors' hull
>>> res = search_v(x1, X0, z1, Z0, random_seed=0)
>>> round(float(res.v.sum()), 12), res.exact_fit, bool(res.loss >= res.lower_bound)
(1.0, False, True)
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .synth_simplex import _TOL, _batch_jit, _nnls_weights, simplex_weights

__all__ = ["V_FLOOR", "VSearch", "search_v", "simplex_weights"]

logger = logging.getLogger(__name__)

V_FLOOR = 1e-8
_LOWER = float(np.log(V_FLOOR))
_GRID = 25  # points of the coordinate sweep over [log V_FLOOR, 0]
_MAX_CORNERS = 256
_AGREE = 0.01  # a local search "agrees" when it ends within 1% of the best loss
_INSIDE = 1e-12  # squared distance (standardised units) below which x1 is in the hull


# ---------------------------------------------------------------------- outer problem
@dataclass(frozen=True)
class VSearch:
    """Outcome of :func:`search_v`.

    Attributes
    ----------
    v : predictor weights (sum to one). w : donor weights at ``v``.
    loss : outcome MSPE of ``w`` over the chosen periods.
    lower_bound : MSPE of the best simplex fit of the outcomes themselves, which no ``V``
        beats; ``loss == lower_bound`` certifies the global optimum.
    n_evaluations : inner problems solved. n_supports : distinct donor supports met while
        exploring. n_starts : local searches run. n_agreed : local searches that ended within
        1% of ``loss`` (a small count says the optimum was found by few starts).
    exact_fit : the treated unit lies inside the donors' hull in predictor space: every
        ``V`` fits the predictors exactly, so ``v`` is reported equal and ``w`` is the exact
        fit with the best outcome MSPE (no search).
    """

    v: np.ndarray
    w: np.ndarray
    loss: float
    lower_bound: float
    n_evaluations: int
    n_supports: int
    n_starts: int
    n_agreed: int
    exact_fit: bool = False


class _Problem:
    """Counts evaluations; maps ``theta`` (K,) or (n, K) to weights and losses."""

    def __init__(self, X1, X0, z1, Z0):
        self.D = np.ascontiguousarray((np.asarray(X0, float) - np.asarray(X1, float)[:, None]).T)
        self.z1 = np.ascontiguousarray(z1, dtype=float)
        self.Z0 = np.ascontiguousarray(Z0, dtype=float)
        self.n = 0

    def weights(self, thetas: np.ndarray) -> np.ndarray:
        thetas = np.atleast_2d(np.asarray(thetas, float))
        self.n += len(thetas)
        if _batch_jit is None:  # pragma: no cover
            v = np.exp(thetas - thetas.max(axis=1, keepdims=True))
            sv = np.sqrt(v / v.sum(axis=1, keepdims=True))
            return np.vstack([_nnls_weights(self.D.T * s[:, None], np.zeros(len(s)))
                              for s in sv])
        return _batch_jit(self.D, self.Z0, self.z1, thetas, _TOL, True)[1]

    def losses(self, W: np.ndarray) -> np.ndarray:
        return np.mean((self.z1[:, None] - self.Z0 @ W.T) ** 2, axis=0)

    def loss_of(self, thetas: np.ndarray) -> np.ndarray:
        """Losses of the rows of ``thetas`` (n, K), without keeping the weights."""
        if _batch_jit is None:  # pragma: no cover
            return self.losses(self.weights(thetas))
        self.n += len(thetas)
        return _batch_jit(self.D, self.Z0, self.z1, thetas, _TOL, False)[0]

    def loss(self, theta: np.ndarray) -> float:
        return float(self.loss_of(np.asarray(theta, float)[None])[0])


def _corners(K: int, rng: np.random.Generator) -> np.ndarray:
    if 2 ** K - 1 <= _MAX_CORNERS:
        grid = np.array(list(itertools.product([0.0, 1.0], repeat=K)))[:-1]  # not all low
        return grid * _LOWER
    eye = np.eye(K)
    rows = [np.zeros(K), *(1 - eye), *eye]  # all high, one high, one low
    while len(rows) < _MAX_CORNERS:
        c = rng.integers(0, 2, K).astype(float)
        c[rng.integers(K)] = 0.0
        rows.append(c)
    return np.array(rows) * _LOWER


def _regression_theta(X1, X0, z1, Z0) -> np.ndarray:
    """log of a regression-based V (in the spirit of Stata synth's starting V): squared
    coefficients of the outcomes regressed (across units, with an intercept) on the
    standardised predictors, summed over periods."""
    X = np.column_stack([X1, X0]).T
    Z = np.column_stack([z1, Z0]).T
    beta = np.linalg.lstsq(np.column_stack([np.ones(len(X)), X]), Z, rcond=None)[0][1:]
    v = (beta ** 2).sum(axis=1)
    if not np.isfinite(v).all() or v.max() <= 0:
        return np.zeros(len(X1))
    return np.clip(np.log(np.maximum(v / v.max(), 1e-300)), _LOWER, 0.0)


def _random_thetas(K: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Half uniform in the box, half *levelled*, so that lexicographic V -- groups of
    predictors orders of magnitude apart, given ratios inside each group -- are drawn
    often (uniform draws almost never put six of seven predictors within a few units of
    each other). Two level schemes, a quarter each: (a) a random group on top (at 0), the
    others on one or two lower levels; (b) each predictor on one of 2-3 levels (the top at
    0). Lower levels are uniform in the box; every coordinate gets a jitter of random
    width."""
    uniform = rng.uniform(_LOWER, 0.0, (n - n // 2, K))
    m = n // 2
    a = m // 2
    lower = rng.uniform(_LOWER, 0.0, (m, 2))
    # (a) a random share on top (at least one), the rest on one or two lower levels
    top = rng.random((a, K)) < rng.uniform(0.0, 1.0, (a, 1))
    top[np.arange(a), rng.integers(0, K, a)] = True
    second = rng.random((a, K)) < rng.choice([0.0, 0.5], (a, 1))
    level_a = np.where(top, 0.0, np.where(second, lower[:a, 1:], lower[:a, :1]))
    # (b) every predictor on one of 2-3 levels
    n_levels = rng.integers(2, 4, m - a)
    levels = np.column_stack([np.zeros(m - a), np.sort(lower[a:], axis=1)[:, ::-1]])
    which = rng.integers(0, 3, (m - a, K)) % n_levels[:, None]
    level_b = np.take_along_axis(levels, which, axis=1)
    width = rng.choice([0.0, 1.0, 3.0, 6.0], (m, 1))
    levelled = np.vstack([level_a, level_b]) + rng.uniform(-1.0, 1.0, (m, K)) * width
    return np.clip(np.vstack([uniform, levelled]), _LOWER, 0.0)


def _moves(theta: np.ndarray) -> list[np.ndarray]:
    """Candidate rows for one sweep: each coordinate over its grid, and each *block* of the
    coordinates below a gap in the sorted ``theta`` shifted together over its feasible
    range (changing the gap between two levels of a lexicographic V, ratios kept)."""
    K = len(theta)
    grid = np.linspace(_LOWER, 0.0, _GRID)
    out = []
    for k in range(K):
        cand = np.tile(theta, (_GRID, 1))
        cand[:, k] = grid
        out.append(cand)
    order = np.argsort(theta)
    for c in range(1, K):
        block = order[:c]
        lo, hi = _LOWER - theta[block].min(), -theta[block].max()
        if hi - lo < 1e-9:
            continue
        cand = np.tile(theta, (_GRID, 1))
        cand[:, block] += np.linspace(lo, hi, _GRID)[:, None]
        out.append(np.clip(cand, _LOWER, 0.0))
    return out


def _sweep(prob: _Problem, theta: np.ndarray, f: float, max_sweeps: int = 8):
    """Descent over :func:`_moves`, each move minimised over its grid (a 1-D global search
    that crosses the kinks where Nelder-Mead stalls)."""
    for _ in range(max_sweeps):
        improved = False
        for i_move in range(2 * len(theta) - 1):
            moves = _moves(theta)
            if i_move >= len(moves):
                break
            cand = moves[i_move]
            vals = prob.loss_of(cand)
            i = int(np.argmin(vals))
            if vals[i] < f * (1 - 1e-9):
                f, theta, improved = float(vals[i]), cand[i], True
        if not improved:
            break
    return f, theta


def _nelder_mead(prob: _Problem, theta: np.ndarray, f: float, step: float = 2.0):
    K = len(theta)
    # own initial simplex: SciPy's (5% of each coordinate) is clipped flat at the bounds,
    # where the sweeps often leave coordinates, and then Nelder-Mead cannot move them
    simplex = np.vstack([theta, theta + np.diag(np.where(theta < _LOWER / 2, step, -step))])
    res = optimize.minimize(prob.loss, theta, method="Nelder-Mead", bounds=[(_LOWER, 0.0)] * K,
                            options={"maxfev": min(200 * K, 1500), "xatol": 1e-4,
                                     "fatol": 1e-10 * max(f, 1e-300), "adaptive": K > 4,
                                     "initial_simplex": simplex})
    return (float(res.fun), res.x) if res.fun < f else (f, theta)


def _polish(prob: _Problem, theta: np.ndarray, f: float):
    """Sweeps, bounded Nelder-Mead, sweeps again."""
    f, theta = _sweep(prob, theta, f)
    f, theta = _nelder_mead(prob, theta, f)
    return _sweep(prob, theta, f)


def _achieving_theta(X1: np.ndarray, X0: np.ndarray, w: np.ndarray) -> np.ndarray | None:
    """``log V`` (in the box) under which ``w`` solves the inner problem, or None.

    ``w`` is optimal for ``V`` iff ``g_j = sum_k v_k r_k (X0_kj - p_k) <= 0`` for every donor
    ``j``, with equality on the support (``r = X1 - X0 w``, ``p = X0 w``): linear in ``v``,
    so one LP (HiGHS) decides it -- the check of whether the best possible fit is
    attainable (Becker & Kloessner's MSCMT; Malo et al. 2023). The objective pushes the
    donors off the support strictly below zero, so that ``w`` is the unique optimum.
    """
    r = X1 - X0 @ w
    G = (X0 - (X0 @ w)[:, None]).T * r[None, :]  # (J, K)
    scale = np.abs(G).max()
    if not scale > 0:
        return None
    G = G / scale
    on = w > 0
    res = optimize.linprog(G[~on].sum(axis=0) if (~on).any() else np.zeros(len(r)),
                           A_ub=G[~on] if (~on).any() else None,
                           b_ub=np.zeros((~on).sum()) if (~on).any() else None,
                           A_eq=G[on], b_eq=np.zeros(on.sum()),
                           bounds=[(V_FLOOR, 1.0)] * len(r), method="highs")
    if res.status != 0 or not np.isfinite(res.x).all():
        return None
    v = np.maximum(res.x, V_FLOOR)
    return np.clip(np.log(v / v.max()), _LOWER, 0.0)


def _exact_fit(X1: np.ndarray, X0: np.ndarray, prob: _Problem) -> np.ndarray | None:
    """When the treated unit lies inside the donors' hull in predictor space, every ``V``
    fits the predictors exactly and the inner minimiser is not unique (which one a solver
    returns is an accident of its path). Then return the exact fit with the best outcome
    MSPE -- the optimistic solution of the bilevel problem, a convex QP -- else None.

    The QP ``min ||Z0 w - z1||^2 s.t. X0 w = X1, w in the simplex`` is solved by the method
    of multipliers, each step one simplex least-squares problem (predictor rows weighted
    by ``sqrt(rho)``, shifted by the multipliers) for Wolfe's algorithm."""
    w0 = prob.weights(np.zeros((1, len(X1))))[0]
    if np.sum((X1 - X0 @ w0) ** 2) > _INSIDE * len(X1):
        return None
    z1, Z0 = prob.z1, prob.Z0
    s = np.sqrt(len(z1) * max(float(np.mean((Z0 - z1[:, None]) ** 2)), 1e-300))
    rho = 1e4
    lam = np.zeros(len(X1))
    w = w0
    for _ in range(50):
        target = X1 - lam / rho
        w = simplex_weights(np.vstack([np.sqrt(rho) * X0, Z0 / s]),
                            np.concatenate([np.sqrt(rho) * target, z1 / s]))
        r = X0 @ w - X1
        lam = lam + rho * r
        if np.sum(r ** 2) <= 1e-20 * len(X1):
            break
    if np.sum((X0 @ w - X1) ** 2) > 1e-12 * len(X1) or prob.losses(w[None])[0] > prob.losses(
            w0[None])[0]:
        return w0
    return w


def search_v(X1: np.ndarray, X0: np.ndarray, z1: np.ndarray, Z0: np.ndarray, *,
             n_starts: int = 10, n_explore: int = 3000,
             random_seed: int | None = 0) -> VSearch:
    """Predictor weights ``V`` minimising the outcome MSPE of the synthetic control.

    Parameters
    ----------
    X1, X0 : treated (K,) and donor (K, J) predictors, already standardised.
    z1, Z0 : treated (T,) and donor (T, J) outcomes over the periods of the loss.
    n_starts : local searches, each from the best explored point of a distinct donor
        support (see the module docstring). n_explore : seeded random points explored.
    random_seed : seed of the random exploration points; same seed, same ``V``.
    """
    prob = _Problem(X1, X0, z1, Z0)
    K = len(X1)
    best_fit = simplex_weights(Z0, z1)
    bound = float(prob.losses(best_fit[None])[0])
    if K == 1:
        w = prob.weights(np.zeros((1, 1)))[0]
        return VSearch(np.ones(1), w, float(prob.losses(w[None])[0]), bound, prob.n, 1, 0, 0)
    inside = _exact_fit(np.asarray(X1, float), np.asarray(X0, float), prob)
    if inside is not None:
        return VSearch(v=np.full(K, 1.0 / K), w=inside, loss=float(prob.losses(inside[None])[0]),
                       lower_bound=bound, n_evaluations=prob.n, n_supports=1, n_starts=0,
                       n_agreed=0, exact_fit=True)
    rng = np.random.default_rng(random_seed)
    thetas = np.vstack([_corners(K, rng), np.zeros((1, K)),
                        _regression_theta(X1, X0, z1, Z0)[None],
                        _random_thetas(K, n_explore, rng)])
    W = prob.weights(thetas)
    losses = prob.losses(W)
    best_of_support: dict[bytes, int] = {}
    for i in np.argsort(losses, kind="stable"):
        best_of_support.setdefault(np.packbits(W[i] > 0).tobytes(), int(i))
    starts = sorted(best_of_support.values(), key=lambda i: losses[i])[: max(1, n_starts)]
    ends = [_polish(prob, thetas[i], float(losses[i])) for i in starts]
    f, theta = min(ends, key=lambda e: e[0])
    # the best fit on each polished support, and over all donors: attainable by some V?
    targets = [best_fit]
    for _, th in ends:
        on = prob.weights(th)[0] > 0
        w_s = np.zeros(len(on))
        w_s[on] = simplex_weights(Z0[:, on], z1)
        targets.append(w_s)
    for w_t in targets:
        if prob.losses(w_t[None])[0] >= f * (1 - 1e-9):
            continue
        th = _achieving_theta(np.asarray(X1, float), np.asarray(X0, float), w_t)
        if th is not None and (f_t := prob.loss(th)) < f:
            f, theta = f_t, th
    v = np.exp(theta - theta.max())
    v /= v.sum()
    w = prob.weights(theta)[0]
    agreed = sum(e[0] <= f * (1 + _AGREE) for e in ends)
    logger.debug("V search: %d evaluations, %d supports, %d/%d starts agreed", prob.n,
                 len(best_of_support), agreed, len(ends))
    return VSearch(v=v, w=w, loss=float(f), lower_bound=bound, n_evaluations=prob.n,
                   n_supports=len(best_of_support), n_starts=len(ends), n_agreed=agreed)
