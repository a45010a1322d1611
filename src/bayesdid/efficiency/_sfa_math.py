"""Stochastic-frontier formulas in NumPy: log-likelihoods, the conditional law of the
inefficiency, and the efficiency scores built from it. Shared by the MLE
(:mod:`bayesdid.efficiency.sfa`) and the Bayesian frontier (:mod:`bayesdid.efficiency.bayes_sfa`).

Conventions. ``e`` is the *production-oriented* composed error ``v - u`` (for a cost
frontier the caller passes ``-(y - X b)``). ``u >= 0`` is inefficiency, ``v ~ N(0, sv^2)``.
Every density is written in logs with ``log_ndtr`` so that large residuals do not
underflow (scipy has no SFA likelihood, hence hand-written; the formulas are the textbook
ones: Aigner-Lovell-Schmidt 1977, Meeusen-van den Broeck 1977, Stevenson 1980,
Battese-Coelli 1992, Jondrow-Lovell-Materov-Schmidt 1982, Battese-Coelli 1988,
Horrace-Schmidt 1996).

Given the parameters, ``u_i | e_i`` is a normal ``N(mu_star, s_star^2)`` truncated at zero
for all three distributions, so every score (JLMS ``E[u|e]``, Battese-Coelli
``E[exp(-u)|e]``, bounds, exact draws) is a function of ``(mu_star, s_star)``; with the
BC92 panel ``u_it = scale_it * u_i``.

>>> import numpy as np
>>> e = np.array([-0.2, 0.0, 0.1])
>>> ll = loglik_cross(e, 0.1, 0.2, "half_normal")
>>> np.allclose(ll, loglik_panel(e, np.arange(3), np.ones(3), 3, 0.1, 0.2, 0.0))
True
"""

from __future__ import annotations

import numpy as np
from scipy import special

LOG2PI = float(np.log(2 * np.pi))
DISTRIBUTIONS = ("half_normal", "exponential", "truncated_normal")


def _log_mills(z: np.ndarray) -> np.ndarray:
    """log(phi(z) / Phi(z)), stable for very negative z."""
    return -0.5 * z**2 - 0.5 * LOG2PI - special.log_ndtr(z)


def loglik_cross(e, sigma_v, sigma_u, distribution, mu=0.0):
    """Per-observation log density of the composed error ``e = v - u``."""
    e = np.asarray(e, dtype=float)
    if distribution == "exponential":
        return (-np.log(sigma_u) + e / sigma_u + sigma_v**2 / (2 * sigma_u**2)
                + special.log_ndtr(-e / sigma_v - sigma_v / sigma_u))
    sigma = np.hypot(sigma_v, sigma_u)
    mu_star, s_star = conditional_cross(e, sigma_v, sigma_u, distribution, mu)
    if distribution == "half_normal":
        return (np.log(2.0) - np.log(sigma) - 0.5 * LOG2PI - 0.5 * (e / sigma) ** 2
                + special.log_ndtr(mu_star / s_star))
    return (-np.log(sigma) - 0.5 * LOG2PI - 0.5 * ((e + mu) / sigma) ** 2
            + special.log_ndtr(mu_star / s_star) - special.log_ndtr(mu / sigma_u))


def conditional_cross(e, sigma_v, sigma_u, distribution, mu=0.0):
    """``(mu_star, s_star)`` of ``u | e`` (normal truncated at zero), cross-section."""
    e = np.asarray(e, dtype=float)
    if distribution == "exponential":
        return -e - sigma_v**2 / sigma_u, np.full_like(e, sigma_v)
    s2 = sigma_v**2 + sigma_u**2
    m = 0.0 if distribution == "half_normal" else mu
    mu_star = (m * sigma_v**2 - e * sigma_u**2) / s2
    return mu_star, np.full_like(e, sigma_u * sigma_v / np.sqrt(s2))


def _unit_sums(unit_idx, values, n_units):
    return np.bincount(unit_idx, weights=values, minlength=n_units)


def panel_conditional(e, unit_idx, scale, n_units, sigma_v, sigma_u, mu=0.0):
    """``(mu_star, s_star)`` of ``u_i | e_i`` per unit for ``u_it = scale_it * u_i``,
    ``u_i ~ N+(mu, su^2)`` (Battese-Coelli 1992)."""
    return panel_conditional_from_sums(_unit_sums(unit_idx, scale * e, n_units),
                                       _unit_sums(unit_idx, scale**2, n_units),
                                       sigma_v, sigma_u, mu)


def panel_conditional_from_sums(s_ee, s_hh, sigma_v, sigma_u, mu=0.0):
    """:func:`panel_conditional` from a unit's sums ``sum_t scale_it e_it`` and
    ``sum_t scale_it^2`` (any broadcastable shapes, e.g. draws x units)."""
    den = sigma_v**2 + sigma_u**2 * s_hh
    mu_star = (mu * sigma_v**2 - sigma_u**2 * s_ee) / den
    return mu_star, sigma_u * sigma_v / np.sqrt(den)


def loglik_panel(e, unit_idx, scale, n_units, sigma_v, sigma_u, mu=0.0):
    """Per-unit log density of ``e_it = v_it - scale_it * u_i`` (BC92; ``mu=0``:
    half-normal; ``scale=1``: time-invariant Pitt-Lee)."""
    e = np.asarray(e, dtype=float)
    n_t = np.bincount(unit_idx, minlength=n_units).astype(float)
    s_e2 = _unit_sums(unit_idx, e**2, n_units)
    s_hh = _unit_sums(unit_idx, scale**2, n_units)
    mu_star, s_star = panel_conditional(e, unit_idx, scale, n_units, sigma_v, sigma_u, mu)
    den = sigma_v**2 + sigma_u**2 * s_hh
    quad = s_e2 / sigma_v**2 + mu**2 / sigma_u**2 - (mu_star / s_star) ** 2
    return (-0.5 * n_t * LOG2PI - (n_t - 1) * np.log(sigma_v) - 0.5 * np.log(den)
            - 0.5 * quad + special.log_ndtr(mu_star / s_star)
            - special.log_ndtr(mu / sigma_u))


# ---------------------------------------------------------------------- scores
def jlms(mu_star, s_star, scale=1.0):
    """``E[u | e]`` and ``sd[u | e]`` (Jondrow et al. 1982) for ``u = scale * u_i``."""
    z = mu_star / s_star
    r = np.exp(_log_mills(z))
    mean = s_star * (z + r)
    var = s_star**2 * np.clip(1.0 - r * (z + r), 0.0, None)
    return scale * mean, scale * np.sqrt(var)


def _log_e_exp(mu_star, s_star, a):
    """log E[exp(-a u)] for ``u ~ N+(mu_star, s_star^2)``."""
    z = mu_star / s_star
    return (-a * mu_star + 0.5 * a**2 * s_star**2 + special.log_ndtr(z - a * s_star)
            - special.log_ndtr(z))


def battese_coelli(mu_star, s_star, scale=1.0):
    """``E[exp(-u) | e]`` (Battese-Coelli 1988) and its conditional sd."""
    m1 = np.exp(_log_e_exp(mu_star, s_star, scale))
    m2 = np.exp(_log_e_exp(mu_star, s_star, 2 * scale))
    return m1, np.sqrt(np.clip(m2 - m1**2, 0.0, None))


def u_quantile(mu_star, s_star, q, scale=1.0):
    """Quantile ``q`` of ``u = scale * u_i``, ``u_i ~ N+(mu_star, s_star^2)``; written
    with the upper tail, ``Phi^-1((1 - q) Phi(z))``, so it keeps precision when
    ``Phi(z)`` is tiny."""
    z = mu_star / s_star
    with np.errstate(divide="ignore"):
        inner = special.ndtri_exp(np.log1p(-np.asarray(q, dtype=float)) + special.log_ndtr(z))
    return scale * np.clip(mu_star - s_star * inner, 0.0, None)


def horrace_schmidt(mu_star, s_star, level=0.95, scale=1.0):
    """Equal-tailed bounds on efficiency ``exp(-u)`` (Horrace-Schmidt 1996)."""
    alpha = 1.0 - level
    u_lo = u_quantile(mu_star, s_star, alpha / 2, scale)
    u_hi = u_quantile(mu_star, s_star, 1 - alpha / 2, scale)
    return np.exp(-u_hi), np.exp(-u_lo)


def draw_u(mu_star, s_star, rng: np.random.Generator, scale=1.0):
    """Exact draws of ``u`` given parameters, by inversion (arrays broadcast)."""
    mu_star, s_star = np.broadcast_arrays(mu_star, s_star)
    q = rng.uniform(size=mu_star.shape)
    return u_quantile(mu_star, s_star, q, scale)
