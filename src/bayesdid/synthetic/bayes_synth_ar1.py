"""AR(1) noise of :class:`~bayesdid.synthetic.bayes_synth.BayesianSyntheticControl`: the
pre-period likelihood and the noise paths of the counterfactual.

The residual ``r[t] = y[t] - sum_d w[d] X[t, d] - b`` of a target over its pre-periods
``t = 1..n`` (a prefix of the panel's periods) is a stationary AR(1),
``r[t] = rho r[t-1] + sigma z[t]``. Its exact Gaussian likelihood is that of the
Prais-Winsten transform ``e = P r`` (``e[1] = sqrt(1 - rho^2) r[1]``,
``e[t] = r[t] - rho r[t-1]``), iid ``N(0, sigma^2)``, times the Jacobian
``sqrt(1 - rho^2)``. With ``sigma^2 ~ InvGamma(a0, b0)`` and ``b | sigma ~ N(0, kappa2
sigma^2)`` integrated out (``c = P 1``, ``m = c'c + 1 / kappa2``)::

    log p(y | w, rho) = 1/2 log(1 - rho^2) [- 1/2 log m] - (a0 + n/2) log(b0 + Q/2)
    Q = e'e [- (c'e)^2 / m]                                    ([...]: with intercept)

``rho = 2 u - 1`` with ``u ~ Beta(rho_concentration, rho_concentration)`` per target:
symmetric about 0, so it includes "no persistence" and favours no sign; the default 0.5 is
the Jeffreys prior ``p(rho) ~ (1 - rho^2)^(-1/2)`` (1: flat on (-1, 1), the default
before). A concentration of 2 (``p(rho) ~ 1 - rho^2``, mass kept off the unit root)
shrank rho toward 0 on 13 pre-periods (posterior mean 0.38 for a true 0.5) and calibrated
worse (benchmarks/results/synth_coverage.md). Why rho's posterior matters so much here:
the donor weights absorb the slowly varying part of the pre-period noise, so in a panel
whose residuals happen to look white the posterior puts rho near 0 and the post-period
interval is narrow while the true noise is still persistent; averaged over rho drawn from
the prior the model is calibrated, at a fixed persistent rho it under-covers
(benchmarks/results/synth_coverage_h_bsc.md). In ``logit(u)`` coordinates the prior times
the likelihood's ``sqrt(1 - rho^2)`` is ``(u (1 - u))^(c + 1/2)``, which decays in both
tails for any ``c > 0``. The conditional continuation below keeps the post-period
variance finite as rho -> 1. ``sigma`` is the innovation sd (the noise sd when
``rho = 0``).

Post-period noise is drawn from the AR(1) continuation of the last pre-period residual
(the posterior predictive of the untreated outcome given the pre-period data), so the
mean gap over ``h`` post years carries the persistence: its variance is about
``(1 + rho) / (1 - rho)`` times the iid one for long horizons.

>>> import numpy as np
>>> first, rest = prefix_masks(np.array([[1, 1], [1, 1], [1, 0]], bool))
>>> first[:, 1].tolist(), rest[:, 1].tolist()
([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..errors import DesignError

__all__ = ["prefix_masks", "ar1_marginal_loglik", "ar1_conditionals", "ar1_noise_paths",
           "rho_prior"]


def prefix_masks(pre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``first`` (T, K): 1 at each target's first pre-period; ``rest``: 1 at its other
    pre-periods. Raises DesignError unless every column of ``pre`` is a prefix (the AR(1)
    needs consecutive periods)."""
    pre = np.asarray(pre, bool)
    n = pre.sum(axis=0)
    prefix = np.arange(pre.shape[0])[:, None] < n[None, :]
    if not (pre == prefix).all():
        bad = np.flatnonzero(~(pre == prefix).all(axis=0)).tolist()
        raise DesignError(f"targets at columns {bad[:10]} have pre-periods that are not the "
                          "first periods of the panel; the AR(1) noise model needs them "
                          "consecutive from the start", hint='use noise="iid"')
    first = (np.arange(pre.shape[0])[:, None] == 0) & pre
    return first.astype(float), (pre & ~first).astype(float)


def ar1_marginal_loglik(resid, pre: np.ndarray, rho, *, a0: float, b0: float,
                        kappa2: float):
    """The PyTensor sum over targets of the log-likelihood above (``sigma``, ``b``
    integrated out). ``resid`` (T, K) masked residuals, ``rho`` (K,)."""
    first, rest = prefix_masks(pre)
    n_pre = pre.sum(axis=0).astype(float)
    one_minus = 1.0 - rho**2
    s = pt.sqrt(one_minus)
    prev = pt.concatenate([pt.zeros((1, pre.shape[1])), resid[:-1]], axis=0)
    e = first * s * resid + rest * (resid - rho * prev)
    q = (e**2).sum(axis=0)
    loglik = 0.5 * pt.log(one_minus)
    if kappa2 > 0:
        c = first * s + rest * (1.0 - rho)
        m = (c**2).sum(axis=0) + 1.0 / kappa2
        q = q - (c * e).sum(axis=0) ** 2 / m
        loglik = loglik - 0.5 * pt.log(m)
    return (loglik - (a0 + n_pre / 2) * pt.log(b0 + q / 2)).sum()


def rho_prior(concentration: float, dims: str = "unit"):
    """``noise_rho = 2 u - 1``, ``u ~ Beta(c, c)`` (inside a model context)."""
    u = pm.Beta("noise_rho_beta", alpha=concentration, beta=concentration, dims=dims)
    return pm.Deterministic("noise_rho", 2.0 * u - 1.0, dims=dims)


def _transform(resid: np.ndarray, pre: np.ndarray, rho: np.ndarray):
    """``e = P r`` and ``c = P 1`` for residuals (S, K, T) and rho (S, K)."""
    if not np.any(rho):  # iid noise: no transform (and no need for prefix pre-periods)
        return resid, np.broadcast_to(np.asarray(pre, float).T[None], resid.shape)
    first, rest = prefix_masks(pre)
    first, rest = first.T[None], rest.T[None]  # (1, K, T)
    r = rho[:, :, None]
    s = np.sqrt(1.0 - r**2)
    prev = np.concatenate([np.zeros(resid.shape[:2] + (1,)), resid[:, :, :-1]], axis=2)
    e = first * s * resid + rest * (resid - r * prev)
    c = first * s + rest * (1.0 - r)
    return e, c


def ar1_conditionals(resid: np.ndarray, pre: np.ndarray, rho: np.ndarray, *, a0: float,
                     b0: float, kappa2: float, rng: np.random.Generator):
    """Exact draws of the innovation sd ``sigma`` (S, K) and the level shift ``b`` (S, K;
    zeros without intercept) given each draw's masked pre-period residuals ``resid``
    (S, K, T; ``y - fit``) and ``rho`` (S, K)."""
    e, c = _transform(resid, pre, rho)
    q = (e**2).sum(axis=2)
    n_pre = pre.sum(axis=0)[None, :]
    if kappa2 > 0:
        m = (c**2).sum(axis=2) + 1.0 / kappa2
        ce = (c * e).sum(axis=2)
        q = q - ce**2 / m
    sigma2 = 1.0 / rng.gamma(a0 + n_pre / 2, 1.0 / (b0 + q / 2))
    b = rng.normal(ce / m, np.sqrt(sigma2 / m)) if kappa2 > 0 else np.zeros(q.shape)
    return np.sqrt(sigma2), b


def ar1_noise_paths(resid_last: np.ndarray, n_pre: np.ndarray, rho: np.ndarray,
                    sigma: np.ndarray, T: int, rng: np.random.Generator) -> np.ndarray:
    """Noise draws (S, K, T) of the counterfactual: over a target's pre-periods a fresh
    stationary AR(1) path (a replicate, for the predictive check); over its post-periods
    the continuation of its observed last pre-period residual ``resid_last`` (S, K)."""
    S, K = sigma.shape
    z = rng.standard_normal((S, K, T))
    out = np.empty((S, K, T))
    out[:, :, 0] = sigma / np.sqrt(1.0 - rho**2) * z[:, :, 0]
    n_pre = np.asarray(n_pre)[None, :]
    for t in range(1, T):
        prev = np.where(t == n_pre, resid_last, out[:, :, t - 1])
        out[:, :, t] = rho * prev + sigma * z[:, :, t]
    return out
