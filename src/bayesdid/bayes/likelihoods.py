"""Exact Gaussian / AR(1) likelihood of the DID with all linear coefficients integrated out.

Model (standardised outcome, rows of a unit consecutive in time)::

    y = a[unit] + Z phi + e,   e_i ~ AR(1)(rho, sigma) within unit, stationary start
    a ~ N(0, 1/lam_a),  phi ~ N(0, diag(1/lam_phi))

Integrating ``a`` and ``phi`` out analytically leaves a likelihood of the few variance
and correlation parameters only; NUTS samples those and ``phi`` is drawn afterwards from
its exact conditional Gaussian. The cost per evaluation depends on the number of
coefficients, not on the number of rows: it works on the cross-products precomputed by
:func:`bayesdid.bayes.design.prepare` (written by hand because no library offers this
sufficient-statistic form of the Prais-Winsten marginal likelihood).

The same algebra is written twice, in NumPy (reference and conditional draws) and in
PyTensor (for NUTS); tests check both against a dense multivariate normal.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.tensor.slinalg import cholesky, solve_triangular

LOG_2PI = float(np.log(2 * np.pi))


def _weights(rho, lengths, lam_a, sigma2, xp):
    """Unit-effect precision D_L and the 3x3 projection weights per run length L."""
    one_m_rho2 = 1 - rho**2
    D = one_m_rho2 + (lengths - 1) * (1 - rho) ** 2
    kappa = 1.0 / (D + lam_a * sigma2)
    coef = xp.stack([one_m_rho2, 1 - rho, -rho * (1 - rho)])
    outer = coef[:, None] * coef[None, :]
    return D, kappa[:, None, None] * outer[None, :, :]


def within_crossproduct_np(stats: dict, rho: float, sigma2: float, lam_a: float) -> np.ndarray:
    """S = W*'W* minus the unit-effect projection: the GLS 'within' cross-product."""
    S0 = (stats["A0"] - rho * (stats["A1"] + stats["A1"].T) + rho**2 * stats["A2"]
          + (1 - rho**2) * stats["F"])
    _, wts = _weights(rho, stats["run_lengths"], lam_a, sigma2, np)
    return S0 - np.tensordot(wts, stats["Q"], axes=([0, 1, 2], [0, 1, 2]))


def conditional_np(stats: dict, sigma: float, rho: float, lam_a: float, lam_phi: np.ndarray):
    """Posterior precision H and mean of phi given the hyperparameters."""
    sigma2 = sigma**2
    S = within_crossproduct_np(stats, rho, sigma2, lam_a)
    H = S[:-1, :-1] / sigma2 + np.diag(lam_phi)
    b = S[:-1, -1] / sigma2
    L = np.linalg.cholesky(H)
    mean = np.linalg.solve(L.T, np.linalg.solve(L, b))
    return H, L, mean, S


def marginal_loglik_np(stats: dict, n_obs: int, sigma: float, rho: float,
                       lam_a: float, lam_phi: np.ndarray) -> float:
    """log p(y | sigma, rho, prior precisions), every coefficient integrated out."""
    sigma2 = sigma**2
    H, L, mean, S = conditional_np(stats, sigma, rho, lam_a, lam_phi)
    b = S[:-1, -1] / sigma2
    D, _ = _weights(rho, stats["run_lengths"], lam_a, sigma2, np)
    n_units = stats["units_per_length"].sum()
    return float(
        -0.5 * n_obs * (LOG_2PI + np.log(sigma2))
        + 0.5 * n_units * np.log(1 - rho**2)
        + 0.5 * n_units * np.log(lam_a) + 0.5 * np.sum(np.log(lam_phi))
        - 0.5 * np.sum(stats["units_per_length"] * np.log(D / sigma2 + lam_a))
        - np.sum(np.log(np.diag(L)))
        - 0.5 * S[-1, -1] / sigma2 + 0.5 * b @ mean
    )


def marginal_loglik_pt(stats: dict, n_obs: int, sigma, rho, lam_a: float, lam_phi):
    """PyTensor twin of :func:`marginal_loglik_np` (differentiable in every argument)."""
    sigma2 = sigma**2
    A1 = pt.as_tensor_variable(stats["A1"])
    S0 = (stats["A0"] - rho * (A1 + A1.T) + rho**2 * stats["A2"] + (1 - rho**2) * stats["F"])
    lengths = pt.as_tensor_variable(stats["run_lengths"])
    D, wts = _weights(rho, lengths, lam_a, sigma2, pt)
    S = S0 - pt.tensordot(wts, pt.as_tensor_variable(stats["Q"]), axes=[[0, 1, 2], [0, 1, 2]])
    H = S[:-1, :-1] / sigma2 + pt.diag(lam_phi)
    b = S[:-1, -1] / sigma2
    L = cholesky(H, lower=True)
    z = solve_triangular(L, b, lower=True)
    n_units = float(stats["units_per_length"].sum())
    return (
        -0.5 * n_obs * (LOG_2PI + pt.log(sigma2))
        + 0.5 * n_units * pt.log(1 - rho**2)
        + 0.5 * n_units * np.log(lam_a) + 0.5 * pt.sum(pt.log(lam_phi))
        - 0.5 * pt.sum(stats["units_per_length"] * pt.log(D / sigma2 + lam_a))
        - pt.sum(pt.log(pt.diag(L)))
        - 0.5 * S[-1, -1] / sigma2 + 0.5 * pt.sum(z**2)
    )


def draw_phi(stats: dict, sigma: np.ndarray, rho: np.ndarray, lam_a: float,
             lam_phi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One exact conditional draw of phi per hyperparameter draw (rows of the inputs)."""
    out = np.empty((len(sigma), lam_phi.shape[1]))
    for i in range(len(sigma)):
        _, L, mean, _ = conditional_np(stats, sigma[i], rho[i], lam_a, lam_phi[i])
        out[i] = mean + np.linalg.solve(L.T, rng.standard_normal(len(mean)))
    return out
