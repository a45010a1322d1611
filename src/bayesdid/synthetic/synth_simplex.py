"""The inner problem of ADH synthetic control: donor weights on the simplex.

``W = argmin sum_k v_k (x1_k - X0_k W)^2`` over ``w >= 0, sum w = 1`` is the point of the
donors' convex hull (each donor's predictors ``sqrt(v) * X0[:, j]``) nearest to the treated
unit. Wolfe's minimum-norm-point algorithm (1976) finds it exactly in a few active-set steps
when there are few predictors. SciPy has no simplex-constrained least squares (``nnls``
needs a penalty row for the adding-up constraint and a polish, ~25x slower here), and the
V search (:mod:`bayesdid.synthetic.synth_search`) solves this problem thousands of times,
so Wolfe's algorithm is written by hand and compiled with numba (a dependency of PyTensor),
with the NNLS route as fallback. The compiled batch solves it for many ``V`` at once and
returns the outcome MSPE of each solution.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

__all__ = ["simplex_weights"]


def _wolfe(D: np.ndarray, sv: np.ndarray, tol: float) -> np.ndarray:  # pragma: no cover - jitted
    """Minimum-norm point of ``conv{diag(sv) D[j]}``: the simplex weights (J,).

    ``D`` is (J, K): donor predictors minus the treated unit's, one donor per row.
    """
    J, K = D.shape
    P = np.empty((J, K))
    scale, start, smallest = 0.0, 0, np.inf
    for j in range(J):
        s = 0.0
        for k in range(K):
            P[j, k] = D[j, k] * sv[k]
            s += P[j, k] * P[j, k]
        scale = max(scale, s)
        if s < smallest:
            smallest, start = s, j
    cap = K + 1  # an affinely independent set in R^K has at most K + 1 points
    S = np.empty(cap + 1, np.int64)
    lam = np.zeros(cap + 1)
    mu = np.zeros(cap + 1)
    S[0], lam[0], n = start, 1.0, 1
    x = P[start].copy()
    for _ in range(20 * (J + K)):
        xx = 0.0
        for k in range(K):
            xx += x[k] * x[k]
        j, pmin = -1, np.inf
        for jj in range(J):
            s = 0.0
            for k in range(K):
                s += P[jj, k] * x[k]
            if s < pmin:
                pmin, j = s, jj
        if xx - pmin <= tol * scale:
            break  # no donor lies beyond the supporting hyperplane at x: optimal
        known = False
        for i in range(n):
            known = known or S[i] == j
        if known or n > cap:
            break  # round-off: the best donor is already in the set
        S[n], lam[n] = j, 0.0
        n += 1
        for _ in range(cap + 2):  # minor cycles: affine min-norm point, step back into the hull
            A = np.zeros((n + 1, n + 1))
            r = np.zeros(n + 1)
            for a in range(n):
                for c in range(a, n):
                    s = 0.0
                    for k in range(K):
                        s += P[S[a], k] * P[S[c], k]
                    A[a, c] = s
                    A[c, a] = s
                A[a, a] += 1e-15 * scale
                A[a, n] = 1.0
                A[n, a] = 1.0
            r[n] = 1.0
            sol = np.linalg.solve(A, r)
            inside = True
            for i in range(n):
                mu[i] = sol[i]
                inside = inside and mu[i] > 1e-14
            if inside:
                for i in range(n):
                    lam[i] = mu[i]
                break
            theta = 1.0
            for i in range(n):
                if mu[i] <= 1e-14 and lam[i] - mu[i] > 0:
                    theta = min(theta, lam[i] / (lam[i] - mu[i]))
            m = 0
            for i in range(n):
                li = lam[i] + theta * (mu[i] - lam[i])
                if li > 1e-14:
                    S[m], lam[m] = S[i], li
                    m += 1
            n = m
        for k in range(K):
            x[k] = 0.0
        for i in range(n):
            for k in range(K):
                x[k] += lam[i] * P[S[i], k]
    w = np.zeros(J)
    total = 0.0
    for i in range(n):
        total += lam[i]
    for i in range(n):
        w[S[i]] = lam[i] / total
    return w


def _batch(D, Z0, z1, thetas, tol, keep):  # pragma: no cover - jitted
    """For each row of ``thetas`` (n, K): ``W(softmax(theta))`` and its outcome MSPE
    against ``z1`` (T,) / ``Z0`` (T, J); the weights are returned when ``keep``."""
    n, K = thetas.shape
    T = z1.shape[0]
    losses = np.zeros(n)
    W = np.zeros((n if keep else 0, D.shape[0]))
    sv = np.empty(K)
    for b in range(n):
        top = thetas[b].max()
        total = 0.0
        for k in range(K):
            sv[k] = np.exp(thetas[b, k] - top)
            total += sv[k]
        for k in range(K):
            sv[k] = np.sqrt(sv[k] / total)
        w = _wolfe_jit(D, sv, tol)
        if keep:
            W[b] = w
        acc = 0.0
        for t in range(T):
            r = z1[t]
            for j in range(w.shape[0]):
                if w[j] != 0.0:
                    r -= Z0[t, j] * w[j]
            acc += r * r
        losses[b] = acc / max(T, 1)
    return losses, W


try:
    from numba import njit

    _wolfe_jit = njit(cache=True, nogil=True)(_wolfe)
    _batch_jit = njit(cache=True, nogil=True)(_batch)
except ImportError:  # pragma: no cover - numba ships with PyTensor
    _batch_jit = None

_TOL = 1e-13


def _nnls_weights(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fallback without numba: NNLS with the adding-up constraint as a heavy row, then an
    exact equality-constrained solve on the support."""
    big = 1e3 * (np.abs(A).max() + np.abs(b).max() + 1.0)
    w, _ = optimize.nnls(np.vstack([A, np.full(A.shape[1], big)]), np.append(b, big),
                         maxiter=50 * A.shape[1])
    w = w / w.sum()
    support = np.flatnonzero(w > 0)
    if support.size > 1:
        As = A[:, support]
        k = support.size
        kkt = np.block([[2 * As.T @ As, np.ones((k, 1))], [np.ones((1, k)), np.zeros((1, 1))]])
        sol = np.linalg.lstsq(kkt, np.append(2 * As.T @ b, 1.0), rcond=None)[0][:k]
        if (sol > 0).all() and np.sum((As @ sol - b) ** 2) <= np.sum((A @ w - b) ** 2) + 1e-12:
            w = np.zeros_like(w)
            w[support] = sol
    return w


def simplex_weights(X0: np.ndarray, x1: np.ndarray, v: np.ndarray | None = None) -> np.ndarray:
    """``argmin_w sum_k v_k (x1_k - X0_k w)^2`` over the simplex ``w >= 0, sum w = 1``.

    Exact (Wolfe's minimum-norm-point algorithm). When the treated unit lies inside the
    donors' hull the minimiser is not unique; this returns one with few donors.

    >>> X0 = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 2.0]])
    >>> simplex_weights(X0, np.array([0.5, 0.5])).round(6).tolist()
    [0.5, 0.5, 0.0]
    """
    X0 = np.asarray(X0, float)
    x1 = np.asarray(x1, float)
    sv = np.sqrt(np.ones(len(x1)) if v is None else np.asarray(v, float))
    if _batch_jit is None:  # pragma: no cover
        return _nnls_weights(X0 * sv[:, None], x1 * sv)
    with np.errstate(divide="ignore"):
        theta = np.log(sv ** 2)[None]
    D = np.ascontiguousarray((X0 - x1[:, None]).T)
    return _batch_jit(D, np.zeros((0, D.shape[0])), np.zeros(0), theta, _TOL, True)[1][0]
