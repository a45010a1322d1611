"""NumPy layer of the Borusyak-Jaravel-Spiess (BJS) imputation estimator.

Notation of Borusyak, Jaravel & Spiess (2024, "Revisiting event-study designs: robust and
efficient estimation", *Review of Economic Studies* 91(6); theorem and section numbers as
cited by the help of their Stata ``did_imputation``): rows ``it``; ``Z`` the
first-stage regressors (unit dummies, period dummies, covariates ``X``); ``Omega_0`` the
untreated rows, ``Omega_1`` the treated rows; ``omega_it`` the observation weights (1 when the
panel has none).

* First stage: weighted least squares of ``y`` on ``Z`` over ``Omega_0``; ``tau_it = y_it -
  z_it' b`` on ``Omega_1``.
* An estimand with treated weights ``w`` (``sum w = 1``) is ``tau_w = sum_1 w_it tau_it =
  sum_all v_it y_it``, with ``v_it = w_it`` on ``Omega_1`` and ``v_0 = -W_0 Z_0 (Z_0' W_0
  Z_0)^+ Z_1' w`` on ``Omega_0`` (the imputation weights).
* Variance: ``sum_clusters (sum_{it in c} v_it eps_it)^2``, ``eps`` the first-stage residual on
  ``Omega_0``. On ``Omega_1``:

  - BJS (Theorem 3 with the leave-out averages of their Section 4.3 / Appendix A.6, as in their
    Stata ``did_imputation, leaveout``): ``eps_it = tau_it - tau_bar_{g,-c(it)}`` where
    ``tau_bar_{g,-c} = sum_{c' != c} W_{c'g} S_{c'g} / sum_{c' != c} W_{c'g}^2`` over the
    clusters ``c'`` of the averaging group ``g`` (``W_{cg}`` the cluster's total weight in
    ``g``, ``S_{cg}`` its weighted sum of ``tau``). Groups are cohort x period cells; a cell
    where one cluster holds (nearly) all the weight, so that the leave-out average does not
    exist, uses the event-time group (pooling cohorts), then all treated rows of the
    estimand; when one cluster holds all the estimand's weight the variance is undefined (NaN).
  - Gardner (2021) two-stage GMM variance, as in Butts & Gardner (2022, *R Journal*, R
    ``did2s``) and ``pyfixest.did2s``: ``eps_it = tau_it - tau_w`` (the second-stage residual
    of a regression on the estimand's indicator; the untreated term is the same as BJS's).

Why by hand: ``pyfixest.did2s``/``feols`` drop singleton fixed effects (which crashes ``did2s``
when late periods hold one untreated unit), solve by alternating projections to a tolerance,
and return no imputation weights ``v``. Here unit effects are eliminated in closed form (their
block of the normal equations is diagonal) and the (periods + covariates)-sized Schur
complement is factorised once by a symmetric eigendecomposition: exact, and one
factorisation gives the first stage, every estimand's weights and the directions the
untreated rows do not identify.

>>> import numpy as np
>>> unit, time = np.repeat(np.arange(3), 3), np.tile(np.arange(3), 3)
>>> treated = (unit == 0) & (time == 2)
>>> y = 1.0 * unit + 0.5 * time + 2.0 * treated
>>> ls = TwoWayLS.fit(unit, time, np.zeros((9, 0)), np.ones(9), ~treated)
>>> bool(ls.unidentified(treated).any())
False
>>> fit = fit_imputation(ls, y, np.ones(9), treated, unit, np.ones((1, 1)), [np.zeros(1, int)])
>>> fit.estimate.round(10).tolist()
[2.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["ImputationFit", "TwoWayLS", "fit_imputation"]

RANK_TOL = 1e-10  # eigenvalues below this fraction of the largest span the null space
IDENT_TOL = 1e-7  # |z'n| above this for a null vector n: the row's effect is not identified
LEAVE_OUT_TOL = 1e-5  # a cluster holding > 99.999% of a group's squared weight (Stata's rule)


def _sums(codes: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    """Sums of ``values`` rows (1-D or 2-D) by integer ``codes`` in ``0..n-1``."""
    ind = sp.csr_matrix((np.ones(codes.size), (codes, np.arange(codes.size))),
                        shape=(n, codes.size))
    return np.asarray(ind @ values)


@dataclass(frozen=True, eq=False)
class TwoWayLS:
    """Weighted least squares on unit + period dummies + ``x``, fitted on a row subset.

    All arrays are over every row of the panel (codes ``0..n-1``); the fit uses the rows in
    ``rows`` only. Every fixed effect those rows identify is kept (no singleton removal).
    """

    unit: np.ndarray
    time: np.ndarray
    x: np.ndarray
    n_units: int
    n_times: int
    inv_du: np.ndarray  # 1 / a unit's total fitting weight; 0 for units with none
    a_ur: np.ndarray  # (units x (periods + covariates)): cross-products of unit dummies
    s_pinv: np.ndarray  # pseudo-inverse of the Schur complement (periods + covariates)
    s_null: np.ndarray  # its null space (columns)

    @classmethod
    def fit(cls, unit, time, x, w, rows) -> TwoWayLS:
        unit, time = np.asarray(unit, np.int64), np.asarray(time, np.int64)
        x, w, rows = np.asarray(x, float), np.asarray(w, float), np.asarray(rows, bool)
        n_units, n_times = int(unit.max()) + 1, int(time.max()) + 1
        u, t, xr, wr = unit[rows], time[rows], x[rows], w[rows]
        wx = xr * wr[:, None]
        du = np.bincount(u, wr, n_units)
        m = sp.coo_matrix((wr, (u, t)), shape=(n_units, n_times)).toarray()
        a_ur = np.hstack([m, _sums(u, n_units, wx)])
        tx = _sums(t, n_times, wx)
        a_rr = np.block([[np.diag(np.bincount(t, wr, n_times)), tx], [tx.T, xr.T @ wx]])
        inv_du = np.divide(1.0, du, out=np.zeros(n_units), where=du > 0)
        s = a_rr - a_ur.T @ (a_ur * inv_du[:, None])
        lam, q = np.linalg.eigh((s + s.T) / 2)
        keep = lam > RANK_TOL * max(float(lam.max(initial=0.0)), 0.0)
        return cls(unit, time, x, n_units, n_times, inv_du,
                   a_ur, (q[:, keep] / lam[keep]) @ q[:, keep].T, q[:, ~keep])

    # -- normal equations -------------------------------------------------------------
    def rhs(self, values: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``Z_rows' values`` split into its unit block and its period/covariate block."""
        values = np.asarray(values, float).reshape(int(rows.sum()), -1)
        c_u = _sums(self.unit[rows], self.n_units, values)
        c_r = np.vstack([_sums(self.time[rows], self.n_times, values), self.x[rows].T @ values])
        return c_u, c_r

    def solve(self, c_u: np.ndarray, c_r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A solution of the normal equations ``(Z_0' W_0 Z_0) b = c`` (c in its range)."""
        x_r = self.s_pinv @ (c_r - self.a_ur.T @ (c_u * self.inv_du[:, None]))
        x_u = (c_u - self.a_ur @ x_r) * self.inv_du[:, None]
        return x_u, x_r

    def fitted(self, x_u: np.ndarray, x_r: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``z_it' b`` for the rows in ``rows`` (one column per right-hand side)."""
        return (x_u[self.unit[rows]] + x_r[self.time[rows]]
                + self.x[rows] @ x_r[self.n_times:])

    # -- identification ---------------------------------------------------
    def unidentified(self, rows: np.ndarray) -> np.ndarray:
        """Rows whose ``z_it' b`` the fitting rows do not identify (``z_it`` has a component
        in the null space of ``Z_0``): a unit without fitting rows, or a period (or covariate
        value) not connected to the rest through them."""
        n_u = -(self.a_ur @ self.s_null) * self.inv_du[:, None]
        proj = self.fitted(n_u, self.s_null, rows)
        bad = np.abs(proj).max(axis=1, initial=0.0) > IDENT_TOL
        return bad | (self.inv_du[self.unit[rows]] == 0)


@dataclass(frozen=True, eq=False)
class ImputationFit:
    """Estimates and both variances for a set of estimands (one column of ``wtr`` each)."""

    estimate: np.ndarray  # (E,)
    se_bjs: np.ndarray  # (E,), NaN where the leave-out average is undefined
    se_gardner: np.ndarray  # (E,)
    bjs_level: np.ndarray  # (E,) coarsest averaging group used: 0 cell, 1 event time, 2 all
    tau: np.ndarray  # (n_treated,) y - imputed Y(0)
    resid: np.ndarray  # (n_untreated,) first-stage residuals
    v: np.ndarray  # (n_rows, E) the estimator's weights on y: tau_w = v' y


def _leave_out_means(tau, w, cl, groups):
    """Per treated row: the leave-own-cluster-out weighted mean of ``tau`` in its group
    (BJS Section 4.3 weights ``W_cg w_it``), and whether that group allows a leave-out."""
    n_cl = int(cl.max()) + 1
    key = np.unique(groups.astype(np.int64) * n_cl + cl, return_inverse=True)[1]
    n_key = int(key.max()) + 1
    g_of_key = np.zeros(n_key, np.int64)
    g_of_key[key] = groups
    n_g = int(groups.max()) + 1
    wk, sk = np.bincount(key, w, n_key), np.bincount(key, w * tau, n_key)
    dg, ng = np.bincount(g_of_key, wk**2, n_g), np.bincount(g_of_key, wk * sk, n_g)
    denom = dg[g_of_key] - wk**2
    key_ok = (wk == 0) | (denom > LEAVE_OUT_TOL * dg[g_of_key])
    group_ok = np.bincount(g_of_key, ~key_ok, n_g) == 0
    safe = key_ok & (denom > 0)
    avg = np.divide(ng[g_of_key] - wk * sk, denom, out=np.zeros(n_key), where=safe)
    return avg[key], group_ok[groups]


def fit_imputation(ls: TwoWayLS, y: np.ndarray, w: np.ndarray, treated: np.ndarray,
                   cluster: np.ndarray, wtr: np.ndarray,
                   avg_groups: Sequence[np.ndarray]) -> ImputationFit:
    """Imputation estimates of ``wtr`` (treated rows x estimands, columns summing to 1,
    observation weights included) with BJS leave-out and Gardner variances.

    ``ls`` is the first stage fitted on the untreated rows (its treated rows identified:
    check :meth:`TwoWayLS.unidentified` first); ``cluster`` are integer cluster codes of
    every row; ``avg_groups`` are codes over treated rows of the averaging groups of the BJS
    variance, finest first.
    """
    treated = np.asarray(treated, bool)
    untreated = ~treated
    y, w = np.asarray(y, float), np.asarray(w, float)
    wtr = np.asarray(wtr, float).reshape(int(treated.sum()), -1)
    y0hat = ls.fitted(*ls.solve(*ls.rhs(w[untreated] * y[untreated], untreated)), slice(None))
    y0hat = y0hat[:, 0]
    tau, resid = (y - y0hat)[treated], (y - y0hat)[untreated]
    estimate = wtr.T @ tau
    v0 = -w[untreated][:, None] * ls.fitted(*ls.solve(*ls.rhs(wtr, treated)), untreated)
    v = np.zeros((y.size, wtr.shape[1]))
    v[treated], v[untreated] = wtr, v0

    cluster = np.asarray(cluster, np.int64)
    n_cl = int(cluster.max()) + 1
    cl1 = cluster[treated]
    score0 = _sums(cluster[untreated], n_cl, v0 * resid[:, None])
    gardner = score0 + _sums(cl1, n_cl, wtr * (tau[:, None] - estimate[None, :]))
    se_bjs, level = np.full(wtr.shape[1], np.nan), np.full(wtr.shape[1], -1)
    for e in range(wtr.shape[1]):
        we = wtr[:, e]
        avg, done, used = np.zeros(tau.size), we == 0, np.zeros(tau.size, int)
        for lev, groups in enumerate(avg_groups):
            mean, ok = _leave_out_means(tau, we, cl1, np.asarray(groups, np.int64))
            take = ~done & ok
            avg[take], used[take], done = mean[take], lev, done | ok
        if done.all():
            score = score0[:, e] + _sums(cl1, n_cl, we * (tau - avg))
            se_bjs[e] = float(np.sqrt(np.sum(score**2)))
            level[e] = int(used[we != 0].max(initial=0))
    return ImputationFit(estimate=estimate, se_bjs=se_bjs,
                         se_gardner=np.sqrt(np.sum(gardner**2, axis=0)), bjs_level=level,
                         tau=tau, resid=resid, v=v)
