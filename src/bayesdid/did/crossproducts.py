"""Cross-products of W = [Z | y] that make the DID's AR(1) marginal likelihood exact.

:func:`sufficient_stats` (one error variance: Prais-Winsten parts and the unit-effect
projection per run length), :func:`scaled_stats` (per-unit precision scales: panel weights,
variance classes) and :func:`variance_classes` (which class each unit is in). Built once by
:func:`bayesdid.did.hierarchical_design.prepare` / :meth:`HierarchicalDiD.prepare`; the
likelihood then costs O(p^3) per evaluation whatever the number of rows. Written by hand:
no library offers this sufficient-statistic form of the Prais-Winsten marginal likelihood.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

if TYPE_CHECKING:
    from .hierarchical_design import DiDDesign

__all__ = ["scaled_stats", "sufficient_stats", "variance_classes"]


def sufficient_stats(Z: sp.csr_matrix, y: np.ndarray, unit_idx: np.ndarray,
                      prev_row: np.ndarray) -> dict[str, np.ndarray]:
    """Cross-products of W = [Z | y] that make the AR(1) marginal likelihood exact.

    Rows of a unit are split into its first row and the rest ("cur") paired with their
    predecessor ("lag"). When each unit's rows are consecutive periods, the Prais-Winsten transformed
    cross-product is A0 - rho (A1 + A1') + rho^2 A2 + (1 - rho^2) F, and the unit-effect
    column of unit i projects on W through f_i, s_i, l_i (first row, sum of cur, sum of lag).
    Units are grouped by their number of rows L, which fixes the unit effect's precision
    D_L(rho). (With gaps the lag pairs are not one period apart: valid for rho = 0 only.)
    """
    W = sp.hstack([Z, sp.csr_matrix(y[:, None])], format="csr")
    cur = np.flatnonzero(prev_row >= 0)
    lag = prev_row[cur]
    first = np.flatnonzero(prev_row < 0)
    Wc, Wl, Wf = W[cur], W[lag], W[first]
    dense = lambda a: np.asarray(a.todense())  # noqa: E731
    n_units = int(unit_idx.max()) + 1
    run_len = np.bincount(unit_idx, minlength=n_units)
    agg_cur = sp.csr_matrix((np.ones(len(cur)), (unit_idx[cur], np.arange(len(cur)))),
                            shape=(n_units, len(cur)))
    G = {"f": Wf, "s": agg_cur @ Wc, "l": agg_cur @ Wl}
    lengths = np.unique(run_len)
    Q = np.empty((len(lengths), 3, 3, W.shape[1], W.shape[1]))
    for li, L in enumerate(lengths):
        sel = np.flatnonzero(run_len == L)
        parts = [G[k][sel] for k in "fsl"]
        for a in range(3):
            for b in range(3):
                Q[li, a, b] = dense(parts[a].T @ parts[b])
    F, A0, A1, A2 = (dense(Wf.T @ Wf), dense(Wc.T @ Wc), dense(Wc.T @ Wl), dense(Wl.T @ Wl))
    basis = np.concatenate([np.stack([A0, A1 + A1.T, A2, F]),
                            Q.reshape(-1, W.shape[1], W.shape[1])])
    return {
        "basis": basis.reshape(len(basis), -1), "size": W.shape[1],
        "run_lengths": lengths.astype(float),
        "units_per_length": np.array([(run_len == L).sum() for L in lengths], dtype=float),
    }


def scaled_stats(design: DiDDesign, unit_weight: np.ndarray, unit_class: np.ndarray,
                 n_classes: int, grouped: bool | None = None) -> dict[str, np.ndarray]:
    """Cross-products for per-unit precision scales (panel weights, variance classes).

    Unit ``i``'s errors have variance ``sigma^2 / (w_i v_k)`` (``w_i = unit_weight[i]``
    fixed, ``v_k`` the sampled precision of its class ``k = unit_class[i]``). Scaling a
    unit's precision scales its Prais-Winsten cross-products, so the A0, A1, A2, F parts are
    summed per class with ``w_i`` folded in (``basis``: 4 rows per class). The unit effect's
    projection ``u_i^2 / (u_i D_L + lam_a s) g_i g_i'`` is not linear in ``u_i = w_i v_k``:
    it is summed over groups of units sharing (run length, weight, class), each group
    with ``count`` units and either its 9 first/current/lag cross-products ``Q`` (as
    :func:`sufficient_stats` does per run length; used when 9 x groups <= units, e.g.
    variance classes without weights) or, one group per unit, the unit's own
    first-row / sum-of-current / sum-of-lag rows ``G`` (groups x 3 x (m + 1); e.g.
    continuous weights). ``grouped`` forces one of the two (tests).
    """
    Z, y, unit_idx, prev_row = design.Z, design.y, design.unit_idx, design.prev_row
    W = sp.hstack([Z, sp.csr_matrix(y[:, None])], format="csr")
    n_units, m1 = design.n_units, W.shape[1]
    cur = np.flatnonzero(prev_row >= 0)
    lag = prev_row[cur]
    first = np.flatnonzero(prev_row < 0)
    unit_weight = np.asarray(unit_weight, float)
    unit_class = np.asarray(unit_class, np.int64)
    w_row = unit_weight[unit_idx]
    cls_row = unit_class[unit_idx]
    dense = lambda a: np.asarray(a.todense()) if sp.issparse(a) else np.asarray(a)  # noqa: E731
    Wc, Wl, Wf = W[cur], W[lag], W[first]
    basis = np.empty((n_classes, 4, m1, m1))
    for k in range(n_classes):
        wc = sp.diags(w_row[cur] * (cls_row[cur] == k))
        wf = sp.diags(w_row[first] * (cls_row[first] == k))
        A1 = dense(Wc.T @ wc @ Wl)
        basis[k] = [dense(Wc.T @ wc @ Wc), A1 + A1.T, dense(Wl.T @ wc @ Wl),
                    dense(Wf.T @ wf @ Wf)]
    agg_cur = sp.csr_matrix((np.ones(len(cur)), (unit_idx[cur], np.arange(len(cur)))),
                            shape=(n_units, len(cur)))
    agg_first = sp.csr_matrix((np.ones(len(first)), (unit_idx[first], np.arange(len(first)))),
                              shape=(n_units, len(first)))
    G = np.stack([dense(agg_first @ Wf), dense(agg_cur @ Wc), dense(agg_cur @ Wl)], axis=1)
    T = np.bincount(unit_idx, minlength=n_units).astype(float)
    keys = pd.DataFrame({"T": T, "w": unit_weight, "cls": unit_class})
    group, uniq = pd.factorize(pd.MultiIndex.from_frame(keys))
    J = len(uniq)
    if grouped is None:
        grouped = 9 * J <= n_units
    if grouped:
        Q = np.zeros((J, 3, 3, m1, m1))
        for j in range(J):
            Gj = G[group == j]
            for a in range(3):
                for b in range(3):
                    Q[j, a, b] = Gj[:, a].T @ Gj[:, b]
        first_of = np.array([np.flatnonzero(group == j)[0] for j in range(J)])
        per = {"T": T[first_of], "w": unit_weight[first_of], "cls": unit_class[first_of],
               "count": np.bincount(group, minlength=J).astype(float)}
        Q, G = Q.reshape(J * 9, m1 * m1), np.zeros((0, 3, m1))
    else:
        per = {"T": T, "w": unit_weight, "cls": unit_class, "count": np.ones(n_units)}
        Q = np.zeros((0, m1 * m1))
    return {"basis": basis.reshape(4 * n_classes, m1 * m1), "size": m1,
            "Q": np.ascontiguousarray(Q), "G": np.ascontiguousarray(G), **per,
            "n_classes": int(n_classes), "unit_w": unit_weight, "unit_cls": unit_class}


def variance_classes(design: DiDDesign, unit_weight: np.ndarray, n_classes: int) -> np.ndarray:
    """Class (0 .. n_classes - 1, by increasing residual variance) of each unit.

    Units are ranked by the within-unit variance of their residuals from the model's own
    least-squares fit (unit effects, every phi column, no pooling: sparse LSQR from scipy),
    times their precision weight, and cut into equal-count classes. The variance is taken
    over untreated rows only: treated rows are fitted by their own cell effects, which
    would shrink treated units' residuals and sort them into too precise a class. The
    grouping uses the data once; the class variances themselves are sampled. Fewer classes
    than requested when there are fewer units.
    """
    from scipy.sparse.linalg import lsqr

    n_units = design.n_units
    k = int(min(n_classes, n_units))
    U = sp.csr_matrix((np.ones(design.n_obs), (np.arange(design.n_obs), design.unit_idx)),
                      shape=(design.n_obs, n_units))
    X = sp.hstack([U, design.Z], format="csr") if design.unit_effect else design.Z
    coef = lsqr(X, design.y, atol=1e-10, btol=1e-10, iter_lim=5000)[0]
    r = design.y - X @ coef
    untreated = (design.cell_idx < 0).astype(float)
    T = np.bincount(design.unit_idx, weights=untreated, minlength=n_units)
    mean = np.bincount(design.unit_idx, weights=r * untreated, minlength=n_units) / \
        np.maximum(T, 1)
    var = np.bincount(design.unit_idx, weights=untreated * (r - mean[design.unit_idx]) ** 2,
                      minlength=n_units) / np.maximum(T - 1, 1)
    var[T < 2] = np.median(var[T >= 2]) if (T >= 2).any() else 1.0  # no untreated spread
    order = np.argsort(var * unit_weight, kind="stable")
    cls = np.empty(n_units, np.int64)
    cls[order] = np.arange(n_units) * k // n_units
    return cls
