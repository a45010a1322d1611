"""Exact Gaussian / AR(1) likelihood of the DID with all linear coefficients integrated out.

Model (standardised outcome, rows of a unit consecutive in time)::

    y = a[unit] + Z phi + e,   e_i ~ AR(1)(rho, sigma) within unit, stationary start
    a ~ N(0, 1/lam_a),  phi ~ N(0, diag(1/lam_phi))

Integrating ``a`` and ``phi`` out analytically leaves a likelihood of the few variance
and correlation parameters only; NUTS samples those and ``phi`` is drawn afterwards from
its exact conditional Gaussian. The cost per evaluation depends on the number of
coefficients, not on the number of rows: it works on the cross-products precomputed by
:func:`bayesdid.did.hierarchical_design.prepare` (written by hand because no library offers this
sufficient-statistic form of the Prais-Winsten marginal likelihood).

The value is computed in NumPy (reference, conditional draws) and, with its analytic
gradient, inside a PyTensor Op for NUTS; tests check both against a dense multivariate
normal and the gradient against finite differences. :mod:`.marginal_likelihood_numba` gives the
Op a nopython implementation (PyTensor's numba backend, nutpie), tested against this one.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from scipy.linalg import blas, lapack

LOG_2PI = float(np.log(2 * np.pi))

# The C backend's BLAS notice does not apply: the heavy algebra here runs in NumPy/LAPACK.
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation",
                        category=UserWarning)


def _unit_precision(stats: dict, rho: float):
    """Unit-effect data precision D_L for each run length L, and dD_L / drho."""
    lengths = stats["run_lengths"]
    D = (1 - rho**2) + (lengths - 1) * (1 - rho) ** 2
    dD = -2 * rho - 2 * (lengths - 1) * (1 - rho)
    return D, dD


def _unit_terms(counts: np.ndarray, D: np.ndarray, s: float, lam_a: float) -> float:
    """The unit effects' log-determinant part of the marginal likelihood,
    ``1/2 sum_L n_L (log lam_a - log(D_L / s + lam_a))``; 0 without unit effects
    (``lam_a = inf``: the effects are fixed at zero)."""
    if np.isinf(lam_a):
        return 0.0
    return float(0.5 * np.sum(counts * (np.log(lam_a) - np.log(D / s + lam_a))))


def _crossproducts(stats: dict, rho: float, s: float, lam_a: float) -> np.ndarray:
    """S, dS/drho and dS/ds (s = sigma^2), stacked (3, m + 1, m + 1).

    S = W*'W* minus the unit-effect projection (the GLS 'within' cross-product): one
    product of weights with the stacked basis [A0, A1 + A1', A2, F, Q_L(a,b)...] built by
    :func:`bayesdid.did.hierarchical_design.prepare` (one small GEMM instead of a dozen array passes).
    """
    c = np.array([1 - rho**2, 1 - rho, -rho * (1 - rho)])
    dc = np.array([-2 * rho, -1.0, -(1 - 2 * rho)])
    D, dD = _unit_precision(stats, rho)
    no_unit = np.isinf(lam_a)  # no unit effects: nothing is projected out
    kappa = np.zeros_like(D) if no_unit else 1.0 / (D + lam_a * s)
    cc = np.outer(c, c).ravel()
    dcc = (np.outer(dc, c) + np.outer(c, dc)).ravel()
    weights = np.zeros((3, stats["basis"].shape[0]))
    weights[0, :4] = [1.0, -rho, rho**2, 1 - rho**2]
    weights[1, :4] = [0.0, -1.0, 2 * rho, -2 * rho]
    weights[0, 4:] = np.outer(-kappa, cc).ravel()
    weights[1, 4:] = (np.outer(kappa**2 * dD, cc) - np.outer(kappa, dcc)).ravel()
    weights[2, 4:] = 0.0 if no_unit else np.outer(kappa**2 * lam_a, cc).ravel()
    m1 = stats["size"]
    return (weights @ stats["basis"]).reshape(3, m1, m1)


def within_crossproduct_np(stats: dict, rho: float, sigma2: float, lam_a: float) -> np.ndarray:
    """S = W*'W* minus the unit-effect projection: the GLS 'within' cross-product."""
    return _crossproducts(stats, rho, sigma2, lam_a)[0]


def conditional_np(stats: dict, sigma: float, rho: float, lam_a: float, lam_phi: np.ndarray):
    """Posterior precision H and mean of phi given the hyperparameters."""
    sigma2 = sigma**2
    S = within_crossproduct_np(stats, rho, sigma2, lam_a)
    H = S[:-1, :-1] / sigma2 + np.diag(lam_phi)
    b = S[:-1, -1] / sigma2
    L = np.linalg.cholesky(H)
    # triangular solves from the factor (a general solve() would refactorise H: O(p^3))
    mean, _ = lapack.dpotrs(L, b, lower=1)
    return H, L, mean, S


def marginal_loglik_np(stats: dict, n_obs: int, sigma: float, rho: float,
                       lam_a: float, lam_phi: np.ndarray) -> float:
    """log p(y | sigma, rho, prior precisions), every coefficient integrated out."""
    sigma2 = sigma**2
    H, L, mean, S = conditional_np(stats, sigma, rho, lam_a, lam_phi)
    b = S[:-1, -1] / sigma2
    D, _ = _unit_precision(stats, rho)
    n_units = stats["units_per_length"].sum()
    return float(
        -0.5 * n_obs * (LOG_2PI + np.log(sigma2))
        + 0.5 * n_units * np.log(1 - rho**2)
        + _unit_terms(stats["units_per_length"], D, sigma2, lam_a)
        + 0.5 * np.sum(np.log(lam_phi))
        - np.sum(np.log(np.diag(L)))
        - 0.5 * S[-1, -1] / sigma2 + 0.5 * b @ mean
    )


def marginal_loglik_grad_np(stats: dict, n_obs: int, sigma: float, rho: float,
                            lam_a: float, lam_phi: np.ndarray):
    """:func:`marginal_loglik_np` and its gradient in (sigma, rho, lam_phi), analytically.

    With H = S_pp / s + Lam, b = S_py / s (s = sigma^2), P = H^-1, m = P b:
    d(-1/2 log|H|) = -1/2 tr(P dH) and d(1/2 b'Pb) = m'db - 1/2 m'dH m. S depends on rho
    through the Prais-Winsten cross-products and the unit-effect projection, and on s
    through the unit-effect prior (lam_a). One Cholesky and one inverse per call.
    """
    s = sigma**2
    # early adaptation can push the transformed parameters to the boundary or to under/
    # overflow; report an impossible point instead of raising
    if not (abs(rho) < 1 and 0 < s < np.inf and np.all(np.isfinite(lam_phi))):
        return -np.inf, 0.0, 0.0, np.zeros_like(lam_phi)
    counts = stats["units_per_length"]
    D, dD = _unit_precision(stats, rho)
    S, dS_rho, dS_s = _crossproducts(stats, rho, s, lam_a)

    S_pp = S[:-1, :-1]
    H = S_pp * (1.0 / s)
    H.flat[:: H.shape[0] + 1] += lam_phi
    b = S[:-1, -1] / s
    L, info = lapack.dpotrf(H, lower=1, clean=1)
    if info != 0:
        return -np.inf, 0.0, 0.0, np.zeros_like(lam_phi)
    # inverse from the factor (cheaper than inv()); dpotri fills the lower triangle only
    P_low, _ = lapack.dpotri(L, lower=1)
    P_diag = np.diagonal(P_low).copy()
    mean = blas.dsymv(1.0, P_low, b, lower=1)
    n_units = counts.sum()
    logp = (-0.5 * n_obs * (LOG_2PI + np.log(s)) + 0.5 * n_units * np.log(1 - rho**2)
            + _unit_terms(counts, D, s, lam_a) + 0.5 * np.sum(np.log(lam_phi))
            - np.sum(np.log(np.diagonal(L)))
            - 0.5 * S[-1, -1] / s + 0.5 * b @ mean)

    def trace_and_quad(M: np.ndarray) -> tuple[float, float]:
        """tr(P M) and mean' M mean for a symmetric M, from the lower triangle of P."""
        trace = 2.0 * np.einsum("ij,ij->", P_low, M) - P_diag @ np.diagonal(M)
        return trace, mean @ (M @ mean)

    t_S, q_S = trace_and_quad(S_pp)
    t_s, q_s = trace_and_quad(dS_s[:-1, :-1])
    t_r, q_r = trace_and_quad(dS_rho[:-1, :-1])
    # sigma^2: dH = dS_s/s - S/s^2, db = dS_s_py/s - S_py/s^2
    db_s = dS_s[:-1, -1] / s - S[:-1, -1] / s**2
    g_s = (-0.5 * n_obs / s + 0.5 * np.sum(counts * D / (s * (D + lam_a * s)))
           - 0.5 * dS_s[-1, -1] / s + 0.5 * S[-1, -1] / s**2
           - 0.5 * ((t_s + q_s) / s - (t_S + q_S) / s**2) + mean @ db_s)
    # rho: dH = dS_rho/s, db = dS_rho_py/s
    g_rho = (-n_units * rho / (1 - rho**2) - 0.5 * np.sum(counts * dD / (D + lam_a * s))
             - 0.5 * dS_rho[-1, -1] / s - 0.5 * (t_r + q_r) / s + mean @ dS_rho[:-1, -1] / s)
    # prior precisions: dH = e_j e_j'
    g_lam = 0.5 / lam_phi - 0.5 * P_diag - 0.5 * mean**2
    return float(logp), float(g_s * 2 * sigma), float(g_rho), g_lam


class MarginalLoglik(Op):
    """PyTensor Op: exact marginal log-likelihood with an analytic gradient.

    Inputs: sigma (scalar), rho (scalar), lam_phi (vector) and the design's cross-product
    arrays ``basis``, ``run_lengths``, ``units_per_length`` (shared variables, so that a
    compiled function is the same for every panel and nutpie passes them as data). Written
    as an Op (rather than left to autodiff through Cholesky) because the analytic gradient
    costs one inverse, several times cheaper than differentiating the factorisation.
    ``perform`` runs the NumPy reference; :mod:`.marginal_likelihood_numba` registers the nopython
    implementation used by PyTensor's numba backend (nutpie).
    """

    __props__ = ("n_obs", "lam_a")

    def __init__(self, n_obs: int, lam_a: float):
        self.n_obs, self.lam_a = int(n_obs), float(lam_a)

    def make_node(self, sigma, rho, lam_phi, basis, run_lengths, units_per_length):
        inputs = [pt.as_tensor_variable(sigma, dtype="float64"),
                  pt.as_tensor_variable(rho, dtype="float64"),
                  pt.as_tensor_variable(lam_phi, dtype="float64"),
                  pt.as_tensor_variable(basis, dtype="float64"),
                  pt.as_tensor_variable(run_lengths, dtype="float64"),
                  pt.as_tensor_variable(units_per_length, dtype="float64")]
        outputs = [pt.dscalar(), pt.dscalar(), pt.dscalar(), pt.dvector()]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, outputs):
        sigma, rho, lam_phi, basis, run_lengths, units_per_length = inputs
        stats = {"basis": basis, "size": len(lam_phi) + 1, "run_lengths": run_lengths,
                 "units_per_length": units_per_length}
        try:
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                logp, g_sigma, g_rho, g_lam = marginal_loglik_grad_np(
                    stats, self.n_obs, float(sigma), float(rho), self.lam_a, lam_phi)
            if not np.isfinite(logp):
                raise FloatingPointError
        except (OverflowError, FloatingPointError, ZeroDivisionError, np.linalg.LinAlgError):
            # a leapfrog step far out in the tails (e.g. sigma ~ 1e150): zero density there,
            # which NUTS records as a divergence instead of the whole fit failing
            logp, g_sigma, g_rho, g_lam = -np.inf, 0.0, 0.0, np.zeros(len(lam_phi))
        outputs[0][0] = np.asarray(logp)
        outputs[1][0] = np.asarray(g_sigma)
        outputs[2][0] = np.asarray(g_rho)
        outputs[3][0] = np.asarray(g_lam)

    def pullback(self, inputs, outputs, cotangents):
        _, g_sigma, g_rho, g_lam = outputs
        gz = cotangents[0]
        for extra in cotangents[1:]:
            if not isinstance(extra.type, DisconnectedType):
                raise NotImplementedError("only the log-likelihood output is differentiable")
        data_grads = [DisconnectedType()() for _ in inputs[3:]]
        return [gz * g_sigma, gz * g_rho, gz * g_lam, *data_grads]

    def connection_pattern(self, node):
        return [[True, False, False, False]] * 3 + [[False] * 4] * 3


def stats_data(stats: dict) -> tuple:
    """The design's cross-product arrays as PyTensor shared variables (inputs of the Op)."""
    return tuple(pytensor.shared(np.ascontiguousarray(stats[k], dtype="float64"), name=f"did_{k}")
                 for k in ("basis", "run_lengths", "units_per_length"))


def marginal_loglik_pt(stats: dict, n_obs: int, sigma, rho, lam_a: float, lam_phi):
    """Symbolic marginal log-likelihood (value of :class:`MarginalLoglik`)."""
    return MarginalLoglik(n_obs, lam_a)(sigma, rho, lam_phi, *stats_data(stats))[0]


def draw_phi(stats: dict, sigma: np.ndarray, rho: np.ndarray, lam_a: float,
             lam_phi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One exact conditional draw of phi per hyperparameter draw (rows of the inputs)."""
    out = np.empty((len(sigma), lam_phi.shape[1]))
    for i in range(len(sigma)):
        _, L, mean, _ = conditional_np(stats, sigma[i], rho[i], lam_a, lam_phi[i])
        z, _ = lapack.dtrtrs(L, rng.standard_normal(len(mean)), lower=1, trans=1)
        out[i] = mean + z
    return out
