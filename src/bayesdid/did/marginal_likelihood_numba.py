"""The marginal DID likelihood and its gradient compiled with numba (nopython), for nutpie.

Same model and value as :func:`bayesdid.did.marginal_likelihood.marginal_loglik_grad_np` (tests
check both to 1e-10), with cheaper algebra: one Cholesky factor and its inverse (LAPACK
``dpotrf`` / ``dpotri``, called through PyTensor's cached-pointer helpers so the compiled
function is cached on disk), and every trace and quadratic form of the gradient read off one
product of the cross-product basis with the bordered matrix

    V = [[P + m m', -m], [-m', 1]],   P = H^-1, m = P b,

since tr(V dS) = tr(P dS_pp) + m' dS_pp m - 2 m' dS_py + dS_yy for every derivative dS
of the stacked cross-product S = sum_k w_k B_k: tr(V dS) = dw . (B vec(V)).
The inverse P is needed anyway for diag(P) (the gradient in the prior precisions), so it
replaces all triangular solves. Written by hand because no library offers this
sufficient-statistic form of the Prais-Winsten marginal likelihood.

Registering :func:`numba_funcify` for :class:`~bayesdid.did.marginal_likelihood.MarginalLoglik`
lets PyTensor's numba backend (and so nutpie) run the Op without Python per step.

>>> import numpy as np
>>> from bayesdid import Panel
>>> from bayesdid.did.hierarchical import HierarchicalDiD
>>> from bayesdid.did.marginal_likelihood import marginal_loglik_grad_np
>>> from bayesdid.datasets import simulate_staggered
>>> sim = simulate_staggered(n_units=12, years=(2005, 2010), batches={2008: 4}, random_seed=1)
>>> design = HierarchicalDiD().prepare(Panel.from_frame(sim.data, **sim.panel_kwargs))
>>> st, lam = design.stats, np.ones(design.n_phi)
>>> fast = marginal_loglik_grad_nb(st["basis"], st["run_lengths"], st["units_per_length"],
...                                design.n_obs, 0.01, 0.5, 0.3, lam)
>>> ref = marginal_loglik_grad_np(st, design.n_obs, 0.5, 0.3, 0.01, lam)
>>> bool(np.isclose(fast[0], ref[0], rtol=1e-12) and np.allclose(fast[3], ref[3]))
True
"""

from __future__ import annotations

import numba
import numpy as np
from numba.core import types
from numba.core.extending import get_cython_function_address
from pytensor.link.numba.cache import _call_cached_ptr
from pytensor.link.numba.dispatch import basic as numba_basic
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key
from pytensor.link.numba.dispatch.linalg._LAPACK import (
    _LAPACK,
    int_ptr_to_val,
    nb_f64p,
    nb_i32p,
    val_to_int_ptr,
)

from .marginal_likelihood import LOG_2PI, MarginalLoglik
from .scaled_likelihood import ScaledMarginalLoglik

__all__ = ["marginal_loglik_grad_nb", "conditional_factor_batch_nb", "draw_phi_nb",
           "scaled_loglik_grad_nb", "scaled_draw_phi_nb", "scaled_args"]

_potrf = _LAPACK().numba_xpotrf(types.float64)
_LOWER = ord("L")


@numba_basic.numba_njit
def _potri_pointer():
    with numba.objmode(ptr=types.intp):
        ptr = get_cython_function_address("scipy.linalg.cython_lapack", "dpotri")
    return ptr


_potri_type = types.FunctionType(types.void(nb_i32p, nb_i32p, nb_f64p, nb_i32p, nb_i32p))


@numba_basic.numba_njit
def _potri(uplo, n, a, lda, info):
    fn = _call_cached_ptr(get_ptr_func=_potri_pointer, func_type_ref=_potri_type,
                          unique_func_name_lit="bayesdid.dpotri")
    fn(uplo, n, a, lda, info)


@numba.njit(cache=True, error_model="numpy")
def _weights(basis_rows, run_lengths, lam_a, s, rho):
    """Weights of S, dS/drho and dS/ds on the basis rows, and D_L(rho), dD_L/drho."""
    D = (1 - rho**2) + (run_lengths - 1) * (1 - rho) ** 2
    dD = -2 * rho - 2 * (run_lengths - 1) * (1 - rho)
    no_unit = np.isinf(lam_a)  # no unit effects (fe without the unit): nothing projected out
    kappa = np.zeros_like(D) if no_unit else 1.0 / (D + lam_a * s)
    c = np.array([1 - rho**2, 1 - rho, -rho * (1 - rho)])
    dc = np.array([-2 * rho, -1.0, -(1 - 2 * rho)])
    w = np.zeros((3, basis_rows))
    w[0, 0], w[0, 1], w[0, 2], w[0, 3] = 1.0, -rho, rho**2, 1 - rho**2
    w[1, 1], w[1, 2], w[1, 3] = -1.0, 2 * rho, -2 * rho
    for li in range(run_lengths.shape[0]):
        for a in range(3):
            for b in range(3):
                k = 4 + 9 * li + 3 * a + b
                cc = c[a] * c[b]
                dcc = dc[a] * c[b] + c[a] * dc[b]
                w[0, k] = -kappa[li] * cc
                w[1, k] = kappa[li] ** 2 * dD[li] * cc - kappa[li] * dcc
                w[2, k] = 0.0 if no_unit else kappa[li] ** 2 * lam_a * cc
    return w, D, dD


@numba.njit(cache=True, error_model="numpy")
def _cholesky_in_place(H):
    """Lower Cholesky factor of a symmetric C-ordered H, in place; False if not PD.

    LAPACK sees the C buffer as H' = H in column-major order, so UPLO='L' there fills the
    upper triangle of the C view with L'.
    """
    n = np.int32(H.shape[0])
    info = val_to_int_ptr(np.int32(0))
    _potrf(val_to_int_ptr(np.int32(_LOWER)), val_to_int_ptr(n), H.ctypes, val_to_int_ptr(n), info)
    return int_ptr_to_val(info) == 0


@numba.njit(cache=True, error_model="numpy")
def _inverse_from_factor(H):
    """Full symmetric inverse from the factor left by :func:`_cholesky_in_place`."""
    n = np.int32(H.shape[0])
    info = val_to_int_ptr(np.int32(0))
    _potri(val_to_int_ptr(np.int32(_LOWER)), val_to_int_ptr(n), H.ctypes, val_to_int_ptr(n), info)
    for i in range(n):
        for j in range(i + 1, n):
            H[j, i] = H[i, j]
    return int_ptr_to_val(info) == 0


@numba.njit(cache=True, error_model="numpy")
def _loglik_and_scalar_grad(n_obs, s, sigma, rho, lam_a, D, dD, units_per_length, lam_phi,
                            half_logdet, yy, quad, tr_S, tr_rho, tr_s):
    """The marginal log-likelihood and its sigma / rho derivatives from the pieces each
    factorisation of H provides (half log|H|, y'y, b'H^-1 b and the traces of the weighted
    basis against V): shared by the dense and the block-arrow kernels."""
    n_units = units_per_length.sum()
    unit_terms = 0.0 if np.isinf(lam_a) else (
        0.5 * n_units * np.log(lam_a) - 0.5 * np.sum(units_per_length * np.log(D / s + lam_a)))
    logp = (-0.5 * n_obs * (LOG_2PI + np.log(s)) + 0.5 * n_units * np.log(1 - rho**2)
            + unit_terms + 0.5 * np.sum(np.log(lam_phi)) - half_logdet
            - 0.5 * yy / s + 0.5 * quad)
    g_s = (-0.5 * n_obs / s + 0.5 * np.sum(units_per_length * D / (s * (D + lam_a * s)))
           - 0.5 * tr_s / s + 0.5 * tr_S / s**2)
    g_rho = (-n_units * rho / (1 - rho**2)
             - 0.5 * np.sum(units_per_length * dD / (D + lam_a * s)) - 0.5 * tr_rho / s)
    return logp, g_s * 2 * sigma, g_rho


@numba.njit(cache=True, error_model="numpy")
def marginal_loglik_grad_nb(basis, run_lengths, units_per_length, n_obs, lam_a, sigma, rho,
                            lam_phi):
    """(logp, d/dsigma, d/drho, d/dlam_phi) of the marginal likelihood, nopython.

    ``basis``, ``run_lengths`` and ``units_per_length`` are the arrays of the ``stats``
    dict built by :func:`bayesdid.did.hierarchical_design.prepare`.
    """
    p = lam_phi.shape[0]
    m1 = p + 1
    g_lam = np.zeros(p)
    s = sigma * sigma
    if not (abs(rho) < 1.0 and s > 0.0 and s < np.inf and np.all(np.isfinite(lam_phi))):
        return -np.inf, 0.0, 0.0, g_lam
    w, D, dD = _weights(basis.shape[0], run_lengths, lam_a, s, rho)
    S = np.dot(w[0], basis).reshape((m1, m1))
    H = np.empty((p, p))
    b = np.empty(p)
    for i in range(p):
        for j in range(p):
            H[i, j] = S[i, j] / s
        H[i, i] += lam_phi[i]
        b[i] = S[i, p] / s
    if not _cholesky_in_place(H):
        return -np.inf, 0.0, 0.0, g_lam
    half_logdet = 0.0
    for i in range(p):
        half_logdet += np.log(H[i, i])
    if not _inverse_from_factor(H):
        return -np.inf, 0.0, 0.0, g_lam
    P = H
    mean = np.dot(P, b)
    V = np.empty((m1, m1))
    for i in range(p):
        for j in range(p):
            V[i, j] = P[i, j] + mean[i] * mean[j]
        V[i, p] = -mean[i]
        V[p, i] = -mean[i]
    V[p, p] = 1.0
    u = np.dot(basis, V.reshape(m1 * m1))
    logp, g_sigma, g_rho = _loglik_and_scalar_grad(
        n_obs, s, sigma, rho, lam_a, D, dD, units_per_length, lam_phi, half_logdet, S[p, p],
        np.dot(b, mean), np.dot(w[0], u), np.dot(w[1], u), np.dot(w[2], u))
    for j in range(p):
        g_lam[j] = 0.5 / lam_phi[j] - 0.5 * P[j, j] - 0.5 * mean[j] ** 2
    return logp, g_sigma, g_rho, g_lam


@numba.njit(cache=True, error_model="numpy")
def _conditional_draw(S, s, lam, z, out):
    """One exact draw of phi from the cross-products S ((p+1) x (p+1), last column X'y):
    H = S_pp / s + diag(lam), mean = H^-1 S_py / s, phi = mean + L'^-1 z with H = L L'
    (one Cholesky, two triangular solves), written into ``out``; False if H is not PD."""
    p = lam.shape[0]
    H = np.empty((p, p))
    for i in range(p):
        for j in range(p):
            H[i, j] = S[i, j] / s
        H[i, i] += lam[i]
    if not _cholesky_in_place(H):
        return False
    # C view: upper triangle holds U = L'; solve L y = b, then L' x = y + z
    y = np.empty(p)
    for i in range(p):
        acc = S[i, p] / s
        for k in range(i):
            acc -= H[k, i] * y[k]
        y[i] = acc / H[i, i]
    for i in range(p - 1, -1, -1):
        acc = y[i] + z[i]
        for k in range(i + 1, p):
            acc -= H[i, k] * out[k]
        out[i] = acc / H[i, i]
    return True


@numba.njit(cache=True, error_model="numpy")
def conditional_factor_batch_nb(basis, run_lengths, lam_a, sigma, rho, lam_phi, z):
    """Exact draws of phi given each hyperparameter draw (rows), without derivatives.

    For draw i: H = S_pp / s + diag(lam_phi[i]), mean = H^-1 S_py / s and
    phi = mean + L'^-1 z[i] with H = L L' (one Cholesky and three triangular solves).
    """
    n, p = lam_phi.shape
    m1 = p + 1
    out = np.empty((n, p))
    for d in range(n):
        s = sigma[d] ** 2
        w, _, _ = _weights(basis.shape[0], run_lengths, lam_a, s, rho[d])
        S = np.dot(w[0], basis).reshape((m1, m1))
        if not _conditional_draw(S, s, lam_phi[d], z[d], out[d]):
            out[d, :] = np.nan
    return out


@register_funcify_default_op_cache_key(MarginalLoglik)
def numba_funcify_marginal_loglik(op, node=None, **kwargs):
    """nopython implementation of :class:`MarginalLoglik` (value and gradient outputs)."""
    n_obs, lam_a = float(op.n_obs), float(op.lam_a)

    @numba_basic.numba_njit
    def marginal_loglik(sigma, rho, lam_phi, basis, run_lengths, units_per_length):
        logp, g_sigma, g_rho, g_lam = marginal_loglik_grad_nb(
            basis, run_lengths, units_per_length, n_obs, lam_a, sigma.item(), rho.item(),
            lam_phi)
        return (np.asarray(logp), np.asarray(g_sigma), np.asarray(g_rho), g_lam)

    cache_version = 1
    return marginal_loglik, cache_version


def draw_phi_nb(stats: dict, sigma: np.ndarray, rho: np.ndarray, lam_a: float,
                lam_phi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Compiled twin of :func:`bayesdid.did.marginal_likelihood.draw_phi` (same random stream,
    same draws to rounding): one Cholesky per draw, no derivative terms, no stacked
    (draws x p x p) array in memory."""
    lam_phi = np.ascontiguousarray(lam_phi, dtype=float)
    z = rng.standard_normal(lam_phi.shape)
    return conditional_factor_batch_nb(
        np.ascontiguousarray(stats["basis"]), np.asarray(stats["run_lengths"], dtype=float),
        float(lam_a), np.asarray(sigma, dtype=float), np.asarray(rho, dtype=float), lam_phi, z)


# ------------------------------------------------------------------ per-unit precision scales
@numba.njit(cache=True, error_model="numpy")
def _scaled_S(basis, Q, G, T, w, cls, lam_a, s, rho, v):
    """S with per-unit precision scales (:func:`.scaled_likelihood._parts`), and per
    projection group u_j, D_j, u_j D_j + lam_a s, kappa_j and (per-unit groups) g."""
    K = v.shape[0]
    J = T.shape[0]
    m1 = int(np.sqrt(basis.shape[1]))
    a = np.array([1.0, -rho, rho**2, 1 - rho**2])
    wk = np.zeros(4 * K)
    for k in range(K):
        for j in range(4):
            wk[4 * k + j] = v[k] * a[j]
    S = np.dot(wk, basis)
    u = np.empty(J)
    for i in range(J):
        u[i] = w[i] * v[cls[i]]
    D = (1 - rho**2) + (T - 1) * (1 - rho) ** 2
    den = u * D + lam_a * s
    kappa = u * u / den
    c = np.array([1 - rho**2, 1 - rho, -rho * (1 - rho)])
    grouped = Q.shape[0] > 0
    g = np.zeros((0 if grouped else J, m1))
    if not np.isinf(lam_a):
        if grouped:
            wq = np.empty(9 * J)
            for i in range(J):
                for x in range(3):
                    for y in range(3):
                        wq[9 * i + 3 * x + y] = -kappa[i] * c[x] * c[y]
            S += np.dot(wq, Q)
            S = S.reshape((m1, m1))
        else:
            S = S.reshape((m1, m1))
            for i in range(J):
                for x in range(m1):
                    g[i, x] = c[0] * G[i, 0, x] + c[1] * G[i, 1, x] + c[2] * G[i, 2, x]
            gk = g.T.copy()
            for i in range(J):
                for x in range(m1):
                    gk[x, i] *= kappa[i]
            S -= np.dot(gk, g)
    else:
        S = S.reshape((m1, m1))
    return S, g, u, D, den, kappa


@numba.njit(cache=True, error_model="numpy")
def scaled_loglik_grad_nb(basis, Q, G, T, w, cls, count, n_obs, lam_a, sigma, rho, lam_phi,
                          v):
    """(logp, d/dsigma, d/drho, d/dlam_phi, d/dv): nopython twin of
    :func:`bayesdid.did.scaled_likelihood.scaled_loglik_grad_np`."""
    p = lam_phi.shape[0]
    K = v.shape[0]
    m1 = p + 1
    J = T.shape[0]
    g_lam = np.zeros(p)
    g_v = np.zeros(K)
    s = sigma * sigma
    if not (abs(rho) < 1.0 and s > 0.0 and s < np.inf and np.all(np.isfinite(lam_phi))
            and np.all(v > 0.0) and np.all(np.isfinite(v))):
        return -np.inf, 0.0, 0.0, g_lam, g_v
    S, g, u, D, den, kappa = _scaled_S(basis, Q, G, T, w, cls, lam_a, s, rho, v)
    H = np.empty((p, p))
    b = np.empty(p)
    for i in range(p):
        for j in range(p):
            H[i, j] = S[i, j] / s
        H[i, i] += lam_phi[i]
        b[i] = S[i, p] / s
    if not _cholesky_in_place(H):
        return -np.inf, 0.0, 0.0, g_lam, g_v
    half_logdet = 0.0
    for i in range(p):
        half_logdet += np.log(H[i, i])
    if not _inverse_from_factor(H):
        return -np.inf, 0.0, 0.0, g_lam, g_v
    P = H
    mean = np.dot(P, b)
    no_unit = np.isinf(lam_a)
    n_units = count.sum()
    unit_terms = 0.0
    t_log_u = 0.0
    for i in range(J):
        t_log_u += 0.5 * count[i] * T[i] * np.log(u[i])
        if not no_unit:
            unit_terms += 0.5 * count[i] * (np.log(lam_a) - np.log(u[i] * D[i] / s + lam_a))
    logp = (-0.5 * n_obs * (LOG_2PI + np.log(s)) + t_log_u
            + 0.5 * n_units * np.log(1 - rho**2) + unit_terms + 0.5 * np.sum(np.log(lam_phi))
            - half_logdet - 0.5 * S[p, p] / s + 0.5 * np.dot(b, mean))
    V = np.empty((m1, m1))
    for i in range(p):
        for j in range(p):
            V[i, j] = P[i, j] + mean[i] * mean[j]
        V[i, p] = -mean[i]
        V[p, i] = -mean[i]
    V[p, p] = 1.0
    vecV = V.reshape(m1 * m1)
    tr_all = np.dot(basis, vecV)  # tr(V A_j) for every class and part
    a = np.array([1.0, -rho, rho**2, 1 - rho**2])
    da = np.array([0.0, -1.0, 2 * rho, -2 * rho])
    tr_S = 0.0
    for x in range(m1):
        for y in range(m1):
            tr_S += V[x, y] * S[x, y]
    tr_rho, tr_s = 0.0, 0.0
    tr_v = np.zeros(K)
    for k in range(K):
        for j in range(4):
            tr_v[k] += a[j] * tr_all[4 * k + j]
            tr_rho += v[k] * da[j] * tr_all[4 * k + j]
    g_s_unit, g_rho_unit = 0.0, 0.0
    if not no_unit:
        c = np.array([1 - rho**2, 1 - rho, -rho * (1 - rho)])
        dc = np.array([-2 * rho, -1.0, -(1 - 2 * rho)])
        qf = np.zeros(J)
        r = np.zeros(J)
        if Q.shape[0] > 0:  # per group, from tr(V Q_j(a, b))
            trQ = np.dot(Q, vecV)
            for i in range(J):
                for x in range(3):
                    for y in range(3):
                        qf[i] += c[x] * c[y] * trQ[9 * i + 3 * x + y]
                        r[i] += dc[x] * c[y] * trQ[9 * i + 3 * x + y]
        else:
            gV = np.dot(g, V)
            for i in range(J):
                for x in range(m1):
                    qf[i] += gV[i, x] * g[i, x]
                    r[i] += gV[i, x] * (dc[0] * G[i, 0, x] + dc[1] * G[i, 1, x]
                                        + dc[2] * G[i, 2, x])
        for i in range(J):
            dDi = -2 * rho - 2 * (T[i] - 1) * (1 - rho)
            d2 = den[i] * den[i]
            tr_s += u[i] * u[i] * lam_a / d2 * qf[i]
            tr_rho -= -(u[i] ** 3) * dDi / d2 * qf[i] + 2 * kappa[i] * r[i]
            tr_v[cls[i]] -= u[i] * (u[i] * D[i] + 2 * lam_a * s) / d2 * w[i] * qf[i]
            g_s_unit += 0.5 * count[i] * u[i] * D[i] / (s * den[i])
            g_rho_unit -= 0.5 * count[i] * u[i] * dDi / den[i]
            g_v[cls[i]] -= 0.5 * count[i] * w[i] * D[i] / den[i]
    for i in range(J):
        g_v[cls[i]] += 0.5 * count[i] * T[i] / v[cls[i]]
    for k in range(K):
        g_v[k] -= 0.5 * tr_v[k] / s
    g_s = -0.5 * n_obs / s + g_s_unit - 0.5 * tr_s / s + 0.5 * tr_S / s**2
    g_rho = -n_units * rho / (1 - rho**2) + g_rho_unit - 0.5 * tr_rho / s
    for j in range(p):
        g_lam[j] = 0.5 / lam_phi[j] - 0.5 * P[j, j] - 0.5 * mean[j] ** 2
    return logp, g_s * 2 * sigma, g_rho, g_lam, g_v


@numba.njit(cache=True, error_model="numpy")
def scaled_conditional_batch_nb(basis, Q, G, T, w, cls, lam_a, sigma, rho, lam_phi, v, z):
    """Exact draws of phi given each hyperparameter draw (rows), per-unit scales."""
    n, p = lam_phi.shape
    out = np.empty((n, p))
    for d in range(n):
        s = sigma[d] ** 2
        S, _, _, _, _, _ = _scaled_S(basis, Q, G, T, w, cls, lam_a, s, rho[d], v[d])
        if not _conditional_draw(S, s, lam_phi[d], z[d], out[d]):
            out[d, :] = np.nan
    return out


def scaled_args(sc: dict) -> tuple:
    """The arrays of a ``scaled_stats`` dict in the order the nopython functions take."""
    return (np.ascontiguousarray(sc["basis"], dtype=float),
            np.ascontiguousarray(sc["Q"], dtype=float),
            np.ascontiguousarray(sc["G"], dtype=float), np.asarray(sc["T"], float),
            np.asarray(sc["w"], float), np.asarray(sc["cls"], np.int64),
            np.asarray(sc["count"], float))


@register_funcify_default_op_cache_key(ScaledMarginalLoglik)
def numba_funcify_scaled_marginal_loglik(op, node=None, **kwargs):
    """nopython implementation of :class:`ScaledMarginalLoglik`."""
    n_obs, lam_a = float(op.n_obs), float(op.lam_a)

    @numba_basic.numba_njit
    def scaled_marginal_loglik(sigma, rho, lam_phi, v, basis, Q, G, T, w, cls, count):
        logp, g_sigma, g_rho, g_lam, g_v = scaled_loglik_grad_nb(
            basis, Q, G, T, w, cls, count, n_obs, lam_a, sigma.item(), rho.item(), lam_phi, v)
        return (np.asarray(logp), np.asarray(g_sigma), np.asarray(g_rho), g_lam, g_v)

    return scaled_marginal_loglik, 1


def scaled_draw_phi_nb(sc: dict, sigma: np.ndarray, rho: np.ndarray, lam_a: float,
                       lam_phi: np.ndarray, v: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """Compiled twin of :func:`bayesdid.did.scaled_likelihood.scaled_draw_phi` (same
    random stream, same draws to rounding)."""
    lam_phi = np.ascontiguousarray(lam_phi, dtype=float)
    z = rng.standard_normal(lam_phi.shape)
    basis, Q, G, T, w, cls, _ = scaled_args(sc)
    return scaled_conditional_batch_nb(
        basis, Q, G, T, w, cls, float(lam_a), np.asarray(sigma, float),
        np.asarray(rho, float), lam_phi, np.ascontiguousarray(v, dtype=float), z)
