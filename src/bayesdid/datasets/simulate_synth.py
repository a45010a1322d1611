"""Simulated donor pools for synthetic control: few pre-periods, many donors, sparse truth.

:func:`simulate_sparse_synth` draws one treated unit and ``n_donors`` donors over
``n_pre + n_post`` years, on an outcome of order ``scale`` (1e4 by default: e.g. an income
or output per head). Donors follow an interactive fixed-effects (factor) model, and the
treated unit is a convex combination of ``n_true`` donors' *observed* outcomes plus noise,
so its true weights are known and sparse::

    Y[d, t] = scale * (a[d] + lambda[d] @ f[t] + e[d, t])       a[d] ~ N(1, level_sd^2)
    f[t]    = random walk, N(0, factor_sd^2) steps               e[d, t] ~ N(0, idio_sd^2)
    y[t]    = sum_d w[d] * Y[d, t] + scale * (u[t] + effect * post[t])
    u[t]    ~ N(0, noise_sd^2)                                   w ~ Dirichlet(3) on n_true donors

``true_donors="edge"`` (default) draws the true donors among the ``edge_pool`` donors with
the highest level ``a``: the treated unit is a leading unit, on the edge of the donors'
convex hull, so that classical SC cannot reproduce its pre-period path exactly. With
``"random"`` the true donors are any donors; with 9 pre-periods and 50 donors the treated
unit then usually lies inside the hull and classical SC interpolates it exactly
(pre-period RMSPE 0), overfitting the noise.

>>> sim = simulate_sparse_synth(random_seed=1)
>>> sim.data.shape, sorted(sim.panel_kwargs)
((714, 4), ['outcome', 'time', 'treat', 'unit'])
>>> w = sim.params["true_weights"]
>>> int((w > 0).sum()), round(float(w.sum()), 12)
(3, 1.0)
>>> float(sim.truth["value"].iloc[0])
-500.0
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from ..errors import SpecError
from ..results import group_label
from .simulate import SimulatedPanel, _is_int, _is_real

__all__ = ["simulate_sparse_synth"]


def simulate_sparse_synth(*, n_donors: int = 50, n_pre: int = 9, n_post: int = 5,
                          n_true: int = 3, scale: float = 1e4, n_factors: int = 3,
                          level_sd: float = 0.2, loading_sd: float = 0.3,
                          factor_sd: float = 0.05, idio_sd: float = 0.02,
                          noise_sd: float = 0.005, effect: float = -0.05,
                          true_donors: Literal["edge", "random"] = "edge", edge_pool: int = 6,
                          first_year: int = 2000,
                          random_seed: int | None = None) -> SimulatedPanel:
    """One treated unit (``"treated"``) and donors ``d00, d01, ...``; see the module
    docstring for the model. ``effect`` is in units of ``scale`` and constant over the
    post-periods; ``truth`` holds the ATT on the outcome's scale and ``params`` every true
    parameter (``true_weights``: a Series indexed by donor)."""
    for name, v in dict(n_donors=n_donors, n_pre=n_pre, n_post=n_post, n_true=n_true,
                        n_factors=n_factors, edge_pool=edge_pool).items():
        if not _is_int(v) or v < 1:
            raise SpecError(f"{name} must be a positive integer, got {v!r}")
    for name, v in dict(scale=scale, level_sd=level_sd, loading_sd=loading_sd,
                        factor_sd=factor_sd, idio_sd=idio_sd, noise_sd=noise_sd).items():
        if not _is_real(v) or v < 0 or (name == "scale" and v == 0):
            raise SpecError(f"{name} must be a non-negative number (scale positive), got {v!r}")
    if not _is_real(effect):
        raise SpecError(f"effect must be a number, got {effect!r}")
    if true_donors not in ("edge", "random"):
        raise SpecError(f"true_donors must be 'edge' or 'random', got {true_donors!r}")
    pool_size = edge_pool if true_donors == "edge" else n_donors
    if n_true > min(pool_size, n_donors) or n_pre < 2:
        raise SpecError(f"need n_true <= {min(pool_size, n_donors)} donors to draw from and "
                        f"n_pre >= 2, got n_true={n_true}, n_pre={n_pre}")
    rng = np.random.default_rng(random_seed)
    T = n_pre + n_post
    f = np.cumsum(rng.normal(0.0, factor_sd, (T, n_factors)), axis=0)
    loadings = rng.normal(1.0 / np.sqrt(n_factors), loading_sd, (n_donors, n_factors))
    level = 1.0 + rng.normal(0.0, level_sd, n_donors)
    Y = level[None, :] + f @ loadings.T + rng.normal(0.0, idio_sd, (T, n_donors))
    candidates = np.argsort(-level)[:edge_pool] if true_donors == "edge" else np.arange(n_donors)
    chosen = rng.choice(candidates, n_true, replace=False)
    w = np.zeros(n_donors)
    w[chosen] = rng.dirichlet(np.full(n_true, 3.0))
    post = np.arange(T) >= n_pre
    y = Y @ w + rng.normal(0.0, noise_sd, T) + effect * post
    years = np.arange(first_year, first_year + T)
    donors = [f"d{d:02d}" for d in range(n_donors)]
    units = ["treated", *donors]
    values = scale * np.column_stack([y, Y])  # (T, 1 + n_donors)
    data = pd.DataFrame({"unit": np.repeat(units, T), "year": np.tile(years, len(units)),
                         "y": values.T.ravel(),
                         "treated": np.concatenate([post.astype(int),
                                                    np.zeros(T * n_donors, dtype=int)])})
    att = float(effect * scale)
    truth = pd.DataFrame({"estimand": ["att"], "group": [group_label()], "value": [att]})
    tau = pd.DataFrame({"unit": "treated", "year": years[post], "tau": att})
    params = {"true_weights": pd.Series(w, index=donors), "level": level, "loadings": loadings,
              "factors": f, "scale": scale, "noise_sd": noise_sd, "idio_sd": idio_sd,
              "effect": effect, "true_donors": true_donors, "start": int(years[n_pre])}
    return SimulatedPanel(data=data, truth=truth, tau=tau, policy_lists={},
                          params=params,
                          panel_kwargs=dict(unit="unit", time="year", outcome="y",
                                            treat="treated"))
