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

__all__ = ["marginal_loglik_grad_nb", "conditional_factor_batch_nb", "draw_phi_nb"]

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
    n_units = units_per_length.sum()
    unit_terms = 0.0 if np.isinf(lam_a) else (
        0.5 * n_units * np.log(lam_a) - 0.5 * np.sum(units_per_length * np.log(D / s + lam_a)))
    logp = (-0.5 * n_obs * (LOG_2PI + np.log(s)) + 0.5 * n_units * np.log(1 - rho**2)
            + unit_terms + 0.5 * np.sum(np.log(lam_phi)) - half_logdet
            - 0.5 * S[p, p] / s + 0.5 * np.dot(b, mean))
    V = np.empty((m1, m1))
    for i in range(p):
        for j in range(p):
            V[i, j] = P[i, j] + mean[i] * mean[j]
        V[i, p] = -mean[i]
        V[p, i] = -mean[i]
    V[p, p] = 1.0
    u = np.dot(basis, V.reshape(m1 * m1))
    tr_S, tr_rho, tr_s = np.dot(w[0], u), np.dot(w[1], u), np.dot(w[2], u)
    g_s = (-0.5 * n_obs / s + 0.5 * np.sum(units_per_length * D / (s * (D + lam_a * s)))
           - 0.5 * tr_s / s + 0.5 * tr_S / s**2)
    g_rho = (-n_units * rho / (1 - rho**2)
             - 0.5 * np.sum(units_per_length * dD / (D + lam_a * s)) - 0.5 * tr_rho / s)
    for j in range(p):
        g_lam[j] = 0.5 / lam_phi[j] - 0.5 * P[j, j] - 0.5 * mean[j] ** 2
    return logp, g_s * 2 * sigma, g_rho, g_lam


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
        H = np.empty((p, p))
        for i in range(p):
            for j in range(p):
                H[i, j] = S[i, j] / s
            H[i, i] += lam_phi[d, i]
        if not _cholesky_in_place(H):
            out[d, :] = np.nan
            continue
        # C view: upper triangle holds U = L'; solve L y = b, then L' x = y + z
        y = np.empty(p)
        for i in range(p):
            acc = S[i, p] / s
            for k in range(i):
                acc -= H[k, i] * y[k]
            y[i] = acc / H[i, i]
        x = y + z[d]
        for i in range(p - 1, -1, -1):
            acc = x[i]
            for k in range(i + 1, p):
                acc -= H[i, k] * x[k]
            x[i] = acc / H[i, i]
        out[d] = x
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
