"""Simulated factor-confounded panels: parallel trends fail, a latent-factor model holds.

Outcome for unit ``i`` and period ``t = 1..T``::

    y[i, t] = alpha[i] + xi[t] + lambda[i] @ f[t] + treated[i, t] * tau[i, t] + e[i, t]
    f[t, k]   = trend_k * t / T + N(0, 1) shocks      (trend_k = 3, 2, -1, ...)
    lambda[i] ~ N(loading_shift * treated_i, s_i^2)   (loadings correlate with treatment;
                                                        s_i = treated_loading_sd if treated, else 1)
    tau[i, t] = effect + effect_slope * (t - cohort_i),   e ~ N(0, sigma^2)

Treated units are split over ``cohorts`` (first treated periods) in turn. Because treated
units load more on trending factors, two-way fixed effects is biased; an interactive
fixed-effects model with the right number of factors is not.

``noise`` replaces the iid Gaussian ``e`` by noise off the Gaussian-iid assumption, each with
marginal sd ``sigma`` (averaged over units for ``"hetero"``) so that designs differ only in
the noise's shape:

- ``"ar1"``: within-unit stationary AR(1), ``e[i, t] = rho e[i, t-1] + sqrt(1 - rho^2) sigma z``,
  ``e[i, 1] ~ N(0, sigma^2)``;
- ``"t"``: Student-t with ``df`` degrees of freedom scaled to sd ``sigma``
  (``sigma * sqrt((df - 2) / df) * t_df``; needs ``df > 2``);
- ``"hetero"``: unit sds ``sigma_i`` log-uniform over a ``spread``-fold range, rescaled so
  that ``mean(sigma_i^2) = sigma^2``; ``e[i, t] ~ N(0, sigma_i^2)``.

``covariate_effect`` (default ``None``: no covariate) adds an observed covariate column
``x`` that confounds the effect and correlates with the loadings::

    x[i, t] = lambda[i, 0] * t / T + covariate_shift * treated[i, t] + N(0, 1)
    y[i, t] += covariate_effect * x[i, t]

The shift is a time-varying confounder that coincides with adoption (as a local shock that
also triggered the policy would); the simulation does not make it a consequence of the
treatment, so ``x`` is a valid control and ``tau`` stays the effect. A model that ignores
``x`` is biased by ``covariate_effect * covariate_shift`` on every treated cell; the
loading-trend part is one more factor. ``x`` is drawn after everything else, so the rest of
the panel is the covariate-free panel of the same seed.

The defaults (``noise="gaussian"``, ``treated_loading_sd=1``, no covariate) draw exactly the
panels of earlier versions (same random stream).

>>> sim = simulate_factor_panel(n_units=10, n_periods=8, n_treated=2, cohorts=(6,), seed=1)
>>> sim.data.shape, round(sim.att, 3)
((80, 5), 3.0)
>>> ar = simulate_factor_panel(n_units=10, n_periods=8, n_treated=2, cohorts=(6,), noise="ar1",
...                            rho=0.8, seed=1)
>>> ar.data.shape
(80, 5)
>>> cov = simulate_factor_panel(n_units=10, n_periods=8, n_treated=2, cohorts=(6,), seed=1,
...                             covariate_effect=1.0)
>>> list(cov.data.columns), bool(np.allclose(cov.data["y"] - cov.data["x"], sim.data["y"]))
(['unit', 'time', 'cohort', 'treated', 'y', 'x'], True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ..errors import SpecError

__all__ = ["FactorPanel", "simulate_factor_panel"]


@dataclass(frozen=True, eq=False)
class FactorPanel:
    """``data`` (long: ``unit, time, cohort, treated, y``), the true ATT over treated cells
    ``att``, the true effects ``tau`` (``unit, time, tau``) and ``panel_kwargs``."""

    data: pd.DataFrame
    att: float
    tau: pd.DataFrame
    panel_kwargs: dict


def simulate_factor_panel(n_units: int = 40, n_periods: int = 20, n_treated: int = 8, *,
                          n_factors: int = 2, cohorts: Sequence[int] = (13, 15, 17),
                          effect: float = 3.0, effect_slope: float = 0.0,
                          loading_shift: float = 1.0, sigma: float = 1.0,
                          seed: int | None = 0,
                          noise: Literal["gaussian", "ar1", "t", "hetero"] = "gaussian",
                          rho: float = 0.5, df: float = 3.0, spread: float = 10.0,
                          treated_loading_sd: float = 1.0,
                          covariate_effect: float | None = None,
                          covariate_shift: float = 1.0) -> FactorPanel:
    """Draw one factor-confounded staggered panel (see the module docstring).

    ``noise`` (with ``rho`` for ``"ar1"``, ``df`` for ``"t"``, ``spread`` for ``"hetero"``)
    ``treated_loading_sd`` and the optional confounding covariate (``covariate_effect``,
    ``covariate_shift``) are described there; the defaults keep the iid Gaussian noise,
    treated loadings as spread as the controls' and no covariate.
    """
    if noise not in ("gaussian", "ar1", "t", "hetero"):
        raise SpecError(f"noise must be 'gaussian', 'ar1', 't' or 'hetero', got {noise!r}")
    if noise == "ar1" and not -1 < rho < 1:
        raise SpecError(f"rho must lie in (-1, 1) for stationary AR(1) noise, got {rho}")
    if noise == "t" and not df > 2:
        raise SpecError(f"df must exceed 2 for t noise with a finite sd, got {df}")
    if noise == "hetero" and not spread >= 1:
        raise SpecError(f"spread must be >= 1, got {spread}")
    if not treated_loading_sd > 0:
        raise SpecError(f"treated_loading_sd must be positive, got {treated_loading_sd}")
    if not 0 < n_treated < n_units:
        raise SpecError(f"n_treated must be in 1..n_units-1, got {n_treated}")
    cohorts = sorted(int(c) for c in cohorts)
    if not cohorts or cohorts[0] < 2 or cohorts[-1] > n_periods:
        raise SpecError(f"cohorts must lie in 2..{n_periods}, got {cohorts}")
    rng = np.random.default_rng(seed)
    t = np.arange(1, n_periods + 1)
    trends = np.array([3.0, 2.0, -1.0, 1.0, 0.5])[np.arange(n_factors) % 5]
    F = trends * (t / n_periods)[:, None] + rng.normal(size=(n_periods, n_factors))
    treated_unit = np.arange(n_units) < n_treated
    lam = (rng.normal(size=(n_units, n_factors))
           * np.where(treated_unit, treated_loading_sd, 1.0)[:, None]
           + loading_shift * treated_unit[:, None])
    alpha = rng.normal(size=n_units)
    xi = rng.normal(size=n_periods) + 0.1 * t
    cohort = np.full(n_units, np.nan)
    cohort[:n_treated] = np.array(cohorts)[np.arange(n_treated) % len(cohorts)]
    D = treated_unit[:, None] & (t[None, :] >= cohort[:, None])
    tau = np.where(D, effect + effect_slope * (t[None, :] - cohort[:, None]), 0.0)
    Y = alpha[:, None] + xi[None, :] + lam @ F.T + tau + _noise(
        rng, (n_units, n_periods), sigma, noise, rho=rho, df=df, spread=spread)
    if covariate_effect is not None:
        first = lam[:, 0] if n_factors else np.zeros(n_units)
        X = (first[:, None] * (t / n_periods)[None, :] + covariate_shift * D
             + rng.normal(size=(n_units, n_periods)))
        Y = Y + covariate_effect * X
    units = np.array([f"u{i:03d}" for i in range(n_units)])
    data = pd.DataFrame({"unit": np.repeat(units, n_periods), "time": np.tile(t, n_units),
                         "cohort": np.repeat(cohort, n_periods), "treated": D.ravel().astype(int),
                         "y": Y.ravel()})
    if covariate_effect is not None:
        data["x"] = X.ravel()
    tau_frame = data.loc[data["treated"] == 1, ["unit", "time"]].assign(tau=tau[D])
    return FactorPanel(data=data, att=float(tau[D].mean()), tau=tau_frame.reset_index(drop=True),
                       panel_kwargs={"unit": "unit", "time": "time", "outcome": "y",
                                     "cohort": "cohort"})


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float, kind: str, *,
           rho: float, df: float, spread: float) -> np.ndarray:
    """(units x periods) noise of marginal sd ``sigma`` (see the module docstring)."""
    if kind == "gaussian":
        return sigma * rng.normal(size=shape)
    if kind == "ar1":
        z = rng.normal(size=shape)
        e = np.empty(shape)
        e[:, 0] = sigma * z[:, 0]
        for t in range(1, shape[1]):
            e[:, t] = rho * e[:, t - 1] + np.sqrt(1 - rho ** 2) * sigma * z[:, t]
        return e
    if kind == "t":
        return sigma * np.sqrt((df - 2) / df) * rng.standard_t(df, size=shape)
    log_sd = rng.uniform(-0.5, 0.5, size=shape[0]) * np.log(spread)
    sd = np.exp(log_sd)
    sd *= sigma / np.sqrt(np.mean(sd ** 2))
    return sd[:, None] * rng.normal(size=shape)
