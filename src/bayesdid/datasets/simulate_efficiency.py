"""Simulated city panel with a known eco-efficiency frontier and a known policy effect.

:func:`simulate_efficiency` draws an LCCP-like panel (278 cities, 2003-2021, pilot
batches listed 2010/2012/2017, treated from the next year) with the inputs and outputs of
the eco-efficiency literature: inputs capital, labour, technology spending and energy;
desirable outputs GDP per capita and park green space per capita; undesirable output AQI.

Technology: a Cobb-Douglas output distance function, linear homogeneous in the desirable
outputs, with the pollutant entered as an input::

    -ln gdp_pc = b0 + b_K ln K + b_L ln L + b_T ln T + b_E ln E
                 + a ln(green / gdp_pc) + d ln aqi + v + u
    v ~ N(0, sigma_v^2),     efficiency = exp(-u)

Inefficiency (time-varying: a unit effect with Battese-Coelli decay plus a transient part),
cut by the policy::

    u[i, t] = u_i * exp(-eta (t - T)) * exp(-delta * treated[i, t]) + w[i, t]
    u_i ~ |N(0, sigma_u^2)|,   w[i, t] ~ |N(0, sigma_w^2)|

Pilot cities are drawn with probability increasing in their efficiency (selection on
levels). The truth is the effect on efficiency ``exp(-u)`` of every treated city-year,
``exp(-u(1)) - exp(-u(0))``, averaged as in :func:`simulate_staggered` (overall, cohort,
region, cohort x region, event time).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..errors import SpecError
from .simulate import (
    REGIONS,
    SimulatedPanel,
    _check_batches,
    _check_years,
    _is_int,
    _is_real,
    _region_counts,
    _truth,
    assign_batches,
)

__all__ = ["simulate_efficiency"]

logger = logging.getLogger(__name__)

_DEFAULT_BATCHES = {2010: 15, 2012: 22, 2017: 30}
INPUTS = ("capital", "labour", "tech", "energy")
_BETA = {"capital": -0.30, "labour": -0.25, "tech": -0.10, "energy": -0.25}
_INPUT_LEVEL = {"capital": 6.0, "labour": 4.0, "tech": 2.0, "energy": 5.0}
_INPUT_GROWTH = {"capital": 0.06, "labour": 0.01, "tech": 0.08, "energy": 0.03}
_ALPHA_GREEN = 0.3       # coefficient of ln(green / gdp_pc)
_DELTA_AQI = -0.10       # the pollutant as an input
_INTERCEPT = -3.6


def simulate_efficiency(n_units: int = 278, years: tuple[int, int] = (2003, 2021),
                        batches: Mapping[int, int] | None = None, start: str = "next_year",
                        policy_effect: float = 0.5, sigma_u: float = 0.35,
                        sigma_w: float = 0.05, sigma_v: float = 0.03, eta: float = 0.02,
                        random_seed: int | None = 0) -> SimulatedPanel:
    """Simulate an eco-efficiency city panel with known frontier, inefficiency and effect.

    Parameters
    ----------
    n_units, years, batches, start : as :func:`simulate_staggered` (default 278 cities,
        2003-2021, ``{2010: 15, 2012: 22, 2017: 30}``, treated from the next year).
    policy_effect : ``delta``: treatment multiplies the persistent inefficiency by
        ``exp(-delta)`` (0.5: a 39% cut).
    sigma_u, sigma_w, sigma_v : scales of the persistent and transient inefficiency and of
        the noise.
    eta : Battese-Coelli decay of the persistent inefficiency (> 0: falls over time).

    Returns
    -------
    SimulatedPanel
        ``data`` columns: city, year, region, batch, cohort, treated, capital, labour,
        tech, energy, gdp_pc, green, aqi, u (true inefficiency), efficiency (true
        exp(-u)). ``truth``: ATT on efficiency. ``params["sfa_kwargs"]``: arguments for
        :func:`bayesdid.efficiency.sfa.sfa` / ``BayesianSFA`` describing the frontier.

    Examples
    --------
    >>> sim = simulate_efficiency(n_units=30, years=(2005, 2012), batches={2007: 6},
    ...                           random_seed=1)
    >>> sim.data.shape
    (240, 15)
    >>> bool(sim.truth.query("group == 'overall'")["value"].iloc[0] > 0)
    True
    """
    if not _is_int(n_units) or n_units < len(REGIONS) + 1:
        raise SpecError(f"n_units must be an integer >= {len(REGIONS) + 1}, got {n_units!r}")
    first, last = _check_years(years)
    if start not in ("next_year", "same_year"):
        raise SpecError(f"start must be 'next_year' or 'same_year', got {start!r}")
    shift = 1 if start == "next_year" else 0
    batches = _check_batches(_DEFAULT_BATCHES if batches is None else batches, int(n_units),
                             first, last, shift)
    for name, val in {"policy_effect": policy_effect, "eta": eta}.items():
        if not _is_real(val):
            raise SpecError(f"{name} must be a finite number, got {val!r}")
    for name, val in {"sigma_u": sigma_u, "sigma_w": sigma_w, "sigma_v": sigma_v}.items():
        if not _is_real(val) or float(val) < 0:
            raise SpecError(f"{name} must be a finite number >= 0, got {val!r}")
    if random_seed is not None and not _is_int(random_seed):
        raise SpecError(f"random_seed must be an integer or None, got {random_seed!r}")
    rng = np.random.default_rng(random_seed)
    n_units = int(n_units)
    year_grid = np.arange(first, last + 1)
    n_t = year_grid.size
    width = max(3, len(str(n_units)))
    cities = np.array([f"c{i + 1:0{width}d}" for i in range(n_units)])
    region = rng.permutation(np.repeat(np.array(REGIONS), _region_counts(n_units)))

    # persistent inefficiency and selection: more efficient cities are listed first
    u_i = np.abs(rng.normal(0.0, sigma_u, n_units))
    keys = -u_i / max(sigma_u, 1e-12) + rng.gumbel(size=n_units)
    batch_of, policy_lists = assign_batches(keys, batches, cities)
    ever = batch_of >= 0
    cohort_of = np.where(ever, batch_of + shift, -1)
    k = year_grid[None, :] - cohort_of[:, None]
    treated = ever[:, None] & (k >= 0)

    decay = np.exp(-eta * (year_grid - last))[None, :]
    w = np.abs(rng.normal(0.0, sigma_w, (n_units, n_t)))
    u0 = u_i[:, None] * decay + w
    u1 = u_i[:, None] * decay * np.exp(-policy_effect) + w
    u = np.where(treated, u1, u0)
    eff = np.exp(-u)
    tau = np.where(treated, np.exp(-u1) - np.exp(-u0), 0.0)

    # inputs: city size + input level + growth + noise; pollutant and output mix
    size = rng.normal(0.0, 0.5, n_units)
    t_c = (year_grid - first)[None, :]
    ln_x = {c: (_INPUT_LEVEL[c] + size[:, None] + _INPUT_GROWTH[c] * t_c
                + rng.normal(0.0, 0.1, (n_units, 1)) + rng.normal(0.0, 0.05, (n_units, n_t)))
            for c in INPUTS}
    ln_aqi = 4.3 + 0.2 * size[:, None] - 0.01 * t_c + rng.normal(0.0, 0.1, (n_units, n_t))
    ratio = -8.0 + rng.normal(0.0, 0.3, (n_units, 1)) + rng.normal(0.0, 0.1, (n_units, n_t))
    v = rng.normal(0.0, sigma_v, (n_units, n_t))
    neg_ln_y1 = (_INTERCEPT + sum(_BETA[c] * ln_x[c] for c in INPUTS) + _ALPHA_GREEN * ratio
                 + _DELTA_AQI * ln_aqi + v + u)
    ln_y1 = -neg_ln_y1
    ln_y2 = ln_y1 + ratio

    data = pd.DataFrame({
        "city": np.repeat(cities, n_t),
        "year": np.tile(year_grid, n_units).astype("int64"),
        "region": np.repeat(region, n_t),
        "batch": pd.array(np.repeat(np.where(ever, batch_of, 0), n_t), dtype="Int64"),
        "cohort": pd.array(np.repeat(np.where(ever, cohort_of, 0), n_t), dtype="Int64"),
        "treated": treated.reshape(-1).astype("int64"),
    })
    data.loc[np.repeat(~ever, n_t), ["batch", "cohort"]] = pd.NA
    for c in INPUTS:
        data[c] = np.exp(ln_x[c]).reshape(-1)
    data["gdp_pc"] = np.exp(ln_y1).reshape(-1)
    data["green"] = np.exp(ln_y2).reshape(-1)
    data["aqi"] = np.exp(ln_aqi).reshape(-1)
    data["u"] = u.reshape(-1)
    data["efficiency"] = eff.reshape(-1)

    mask = treated.reshape(-1)
    cells = data.loc[mask, ["city", "year", "region", "cohort"]].copy()
    cells["tau"] = tau.reshape(-1)[mask]
    cells["k"] = cells["year"] - cells["cohort"].astype("int64")
    params = {
        "n_units": n_units, "years": (first, last), "batches": dict(batches), "start": start,
        "cohorts": {b: b + shift for b in batches}, "policy_effect": float(policy_effect),
        "sigma_u": float(sigma_u), "sigma_w": float(sigma_w), "sigma_v": float(sigma_v),
        "eta": float(eta), "intercept": _INTERCEPT, "beta": dict(_BETA), "alpha_green": _ALPHA_GREEN,
        "delta_aqi": _DELTA_AQI, "unit_inefficiency": dict(zip(cities.tolist(), u_i.tolist())),
        "random_seed": random_seed,
        "sfa_kwargs": {"y": ["gdp_pc", "green"], "x": list(INPUTS), "undesirable": ["aqi"],
                        "unit": "city", "time": "year"},
    }
    panel_kwargs = {"unit": "city", "time": "year", "outcome": "efficiency", "cohort": "cohort",
                        "groups": ["region"], "cluster": "city"}
    logger.debug("simulated efficiency panel: %d cities x %d years", n_units, n_t)
    return SimulatedPanel(data=data, truth=_truth(cells),
                          tau=cells[["city", "year", "tau"]].reset_index(drop=True),
                          policy_lists=policy_lists, params=params, panel_kwargs=panel_kwargs)
