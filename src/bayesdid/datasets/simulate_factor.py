"""Simulated factor-confounded panels: parallel trends fail, a latent-factor model holds.

Outcome for unit ``i`` and period ``t = 1..T``::

    y[i, t] = alpha[i] + xi[t] + lambda[i] @ f[t] + treated[i, t] * tau[i, t] + e[i, t]
    f[t, k]   = trend_k * t / T + N(0, 1) shocks      (trend_k = 3, 2, -1, ...)
    lambda[i] ~ N(loading_shift * treated_i, 1)       (loadings correlate with treatment)
    tau[i, t] = effect + effect_slope * (t - cohort_i),   e ~ N(0, sigma^2)

Treated units are split over ``cohorts`` (first treated periods) in turn. Because treated
units load more on trending factors, two-way fixed effects is biased; an interactive
fixed-effects model with the right number of factors is not.

>>> sim = simulate_factor_panel(n_units=10, n_periods=8, n_treated=2, cohorts=(6,), seed=1)
>>> sim.data.shape, round(sim.att, 3)
((80, 5), 3.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
                          seed: int | None = 0) -> FactorPanel:
    """Draw one factor-confounded staggered panel (see the module docstring)."""
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
    lam = rng.normal(size=(n_units, n_factors)) + loading_shift * treated_unit[:, None]
    alpha = rng.normal(size=n_units)
    xi = rng.normal(size=n_periods) + 0.1 * t
    cohort = np.full(n_units, np.nan)
    cohort[:n_treated] = np.array(cohorts)[np.arange(n_treated) % len(cohorts)]
    D = treated_unit[:, None] & (t[None, :] >= cohort[:, None])
    tau = np.where(D, effect + effect_slope * (t[None, :] - cohort[:, None]), 0.0)
    Y = (alpha[:, None] + xi[None, :] + lam @ F.T + tau
         + sigma * rng.normal(size=(n_units, n_periods)))
    units = np.array([f"u{i:03d}" for i in range(n_units)])
    data = pd.DataFrame({"unit": np.repeat(units, n_periods), "time": np.tile(t, n_units),
                         "cohort": np.repeat(cohort, n_periods), "treated": D.ravel().astype(int),
                         "y": Y.ravel()})
    tau_frame = data.loc[data["treated"] == 1, ["unit", "time"]].assign(tau=tau[D])
    return FactorPanel(data=data, att=float(tau[D].mean()), tau=tau_frame.reset_index(drop=True),
                       panel_kwargs={"unit": "unit", "time": "time", "outcome": "y",
                                     "cohort": "cohort"})
