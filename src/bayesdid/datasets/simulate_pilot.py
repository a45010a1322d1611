"""Simulated province panels shaped like the ecological-civilization pilot-zone study.

:func:`simulate_pilot_zones` draws a province-year panel like the seed paper's: 29 Chinese
provinces (mainland, without Tibet and Hainan), 2004-2020, three pilot provinces (Fujian,
Jiangxi, Guizhou) treated from 2017, and a carbon-productivity-like outcome. Few treated
units, so the methods of interest are synthetic control and regression control.

Outcome model (interactive fixed effects), for province ``i`` and year ``t``::

    y[i, t]   = alpha[i] + delta[t] + lambda[i] @ f[t] + tau[i, t] + e[i, t]
    tau[i, t] = effect[i] + effect_slope * (t - start)        (treated years only)
    e[i, t]   = noise_rho * e[i, t-1] + N(0, noise^2)         (stationary AR(1))

``delta`` is a common upward trend with year shocks; each factor ``f[k]`` is a random walk
with its own drift, so provinces with different loadings grow at different rates and a
plain DID is biased. Every treated province's ``(alpha, lambda)`` is a convex combination
of a few donors' (drawn with Dirichlet weights, kept in ``params["true_weights"]``): the
treated units lie inside the convex hull of the donors, so a synthetic control can
reconstruct them exactly up to noise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import SpecError
from ..results import group_label
from .simulate import SimulatedPanel, _ar1, _check_years, _is_int, _is_real

__all__ = ["simulate_pilot_zones", "PROVINCES", "PILOT_PROVINCES"]

logger = logging.getLogger(__name__)

# The 29 provinces of the seed paper: mainland China without Tibet and Hainan, with the
# usual four-region split (East / Central / West / Northeast).
_PROVINCE_REGIONS: dict[str, str] = {
    "Beijing": "East", "Tianjin": "East", "Hebei": "East", "Shanghai": "East",
    "Jiangsu": "East", "Zhejiang": "East", "Fujian": "East", "Shandong": "East",
    "Guangdong": "East",
    "Shanxi": "Central", "Anhui": "Central", "Jiangxi": "Central", "Henan": "Central",
    "Hubei": "Central", "Hunan": "Central",
    "Inner Mongolia": "West", "Guangxi": "West", "Chongqing": "West", "Sichuan": "West",
    "Guizhou": "West", "Yunnan": "West", "Shaanxi": "West", "Gansu": "West",
    "Qinghai": "West", "Ningxia": "West", "Xinjiang": "West",
    "Liaoning": "Northeast", "Jilin": "Northeast", "Heilongjiang": "Northeast",
}
PROVINCES: tuple[str, ...] = tuple(_PROVINCE_REGIONS)
PILOT_PROVINCES: tuple[str, ...] = ("Fujian", "Jiangxi", "Guizhou")
_DEFAULT_EFFECTS = (0.25, 0.15, 0.10)  # per treated unit, cycled
# Structural constants (recorded in ``params``).
_LEVEL_MEAN, _LEVEL_SD = 0.8, 0.25
_TREND = 0.05
_YEAR_SHOCK_SD = 0.01
_LOADING_SD = 0.6
_FACTOR_DRIFT = (0.03, -0.01, 0.02, 0.0)  # cycled beyond four factors
_FACTOR_STEP_SD = 0.03
_HULL_SIZE = 4  # donors combined into each treated unit


def _names(n_units: int) -> list[str]:
    if n_units == len(PROVINCES):
        return list(PROVINCES)
    width = max(2, len(str(n_units)))
    return [f"P{i + 1:0{width}d}" for i in range(n_units)]


def _treated_names(treated: Any, names: list[str], rng: np.random.Generator) -> list[str]:
    if _is_int(treated):
        k = int(treated)
        if not 1 <= k <= len(names) - _HULL_SIZE:
            raise SpecError(f"treated must be between 1 and n_units - {_HULL_SIZE} = "
                            f"{len(names) - _HULL_SIZE}, got {k}")
        first = [p for p in PILOT_PROVINCES if p in names][:k]
        rest = [n for n in names if n not in first]
        picks = rng.choice(len(rest), size=k - len(first), replace=False)
        return first + [rest[i] for i in sorted(picks)]
    if isinstance(treated, str) or not isinstance(treated, Sequence) or not treated:
        raise SpecError(f"treated must be a number of units or a list of unit names, "
                        f"got {treated!r}")
    unknown = [t for t in treated if t not in names]
    if unknown:
        raise SpecError(f"treated units {unknown} are not among the simulated units "
                        f"({names[0]}, ..., {names[-1]})")
    if len(set(treated)) != len(treated) or len(treated) > len(names) - _HULL_SIZE:
        raise SpecError(f"treated must list distinct units, at most n_units - {_HULL_SIZE}")
    return list(treated)


def _effects(effect: Any, treated: list[str]) -> dict[str, float]:
    if effect is None:
        return {u: _DEFAULT_EFFECTS[i % len(_DEFAULT_EFFECTS)] for i, u in enumerate(treated)}
    if _is_real(effect):
        return {u: float(effect) for u in treated}
    if isinstance(effect, Mapping):
        if set(effect) != set(treated) or not all(_is_real(v) for v in effect.values()):
            raise SpecError(f"effect as a mapping needs one finite number per treated unit "
                            f"{treated}, got {dict(effect)!r}")
        return {u: float(effect[u]) for u in treated}
    if (isinstance(effect, Sequence) and not isinstance(effect, str)
            and len(effect) == len(treated) and all(_is_real(v) for v in effect)):
        return {u: float(v) for u, v in zip(treated, effect)}
    raise SpecError(f"effect must be a number, one number per treated unit, or a "
                    f"{{unit: effect}} mapping; got {effect!r}")


def simulate_pilot_zones(
    n_units: int = 29,
    years: tuple[int, int] = (2004, 2020),
    treated: int | Sequence[str] = 3,
    start: int = 2017,
    effect: float | Sequence[float] | Mapping[str, float] | None = None,
    effect_slope: float = 0.0,
    n_factors: int = 2,
    noise: float = 0.03,
    noise_rho: float = 0.0,
    random_seed: int | None = 0,
) -> SimulatedPanel:
    """Simulate a pilot-zone-like province panel with few treated units and known effects.

    Parameters
    ----------
    n_units : number of provinces (>= 6). With 29, the seed paper's province names;
        otherwise ``P01``, ``P02``, ...
    years : first and last year, inclusive.
    treated : how many units are treated (the pilot provinces first, then a seeded random
        pick), or their names.
    start : first treated year (the same for every treated unit).
    effect : effect per treated unit: one number for all, one per unit (in ``treated``
        order) or a ``{unit: effect}`` mapping. Default 0.25, 0.15, 0.10 (cycled).
    effect_slope : growth of every unit's effect per year since ``start``.
    n_factors : number of common factors (>= 1).
    noise, noise_rho : innovation sd (>= 0) and AR(1) coefficient (|rho| < 1) of the
        idiosyncratic errors.
    random_seed : seed of every random draw; same seed, same panel.

    Returns
    -------
    SimulatedPanel
        ``data`` columns ``province``, ``year``, ``region``, ``cohort`` (first treated
        year, ``<NA>`` for donors), ``treated`` (0/1), ``carbon_productivity``;
        ``truth`` rows ``("att", "overall")`` (mean effect over treated province-years),
        ``("att", "unit=<name>")`` per treated unit and ``("gap", "unit=<name>, t=<year>")``
        per treated province-year (``"t=<year>"`` with one treated unit, the labels of
        the synthetic-control estimators); ``params["true_weights"]`` the donor weights that
        reconstruct each treated unit.

    Examples
    --------
    >>> sim = simulate_pilot_zones(random_seed=1)
    >>> sim.data.shape
    (493, 6)
    >>> sim.truth.query("estimand == 'att'")[["group", "value"]].round(3).values.tolist()
    [['overall', 0.167], ['unit=Fujian', 0.25], ['unit=Jiangxi', 0.15], ['unit=Guizhou', 0.1]]
    """
    if not _is_int(n_units) or n_units < _HULL_SIZE + 2:
        raise SpecError(f"n_units must be an integer >= {_HULL_SIZE + 2}, got {n_units!r}")
    first, last = _check_years(years)
    if not _is_int(start) or not first < start <= last:
        raise SpecError(f"start must be an integer year in ({first}, {last}] so that there "
                        f"is a pre-treatment and a treated year, got {start!r}")
    if not _is_int(n_factors) or n_factors < 1:
        raise SpecError(f"n_factors must be an integer >= 1, got {n_factors!r}")
    if not _is_real(noise) or noise < 0:
        raise SpecError(f"noise must be a finite number >= 0, got {noise!r}")
    if not _is_real(noise_rho) or not -1 < noise_rho < 1:
        raise SpecError(f"noise_rho must be a number in (-1, 1), got {noise_rho!r}")
    if not _is_real(effect_slope):
        raise SpecError(f"effect_slope must be a finite number, got {effect_slope!r}")
    if random_seed is not None and not _is_int(random_seed):
        raise SpecError(f"random_seed must be an integer or None, got {random_seed!r}")
    rng = np.random.default_rng(random_seed)
    names = _names(int(n_units))
    treated_units = _treated_names(treated, names, rng)
    effects = _effects(effect, treated_units)
    n, year_grid = len(names), np.arange(first, last + 1)
    n_t = year_grid.size
    is_treated = np.isin(names, treated_units)
    donor_idx = np.flatnonzero(~is_treated)

    # Donor levels and loadings; treated units are convex combinations of a few donors.
    alpha = rng.normal(_LEVEL_MEAN, _LEVEL_SD, size=n)
    loadings = rng.normal(0.0, _LOADING_SD, size=(n, n_factors))
    true_weights: dict[str, dict[str, float]] = {}
    for u in treated_units:
        i = names.index(u)
        members = np.sort(rng.choice(donor_idx, size=_HULL_SIZE, replace=False))
        w = rng.dirichlet(np.ones(_HULL_SIZE))
        alpha[i] = w @ alpha[members]
        loadings[i] = w @ loadings[members]
        true_weights[u] = {names[m]: float(x) for m, x in zip(members, w)}

    drift = np.array([_FACTOR_DRIFT[k % len(_FACTOR_DRIFT)] for k in range(n_factors)])
    steps = drift[None, :] + rng.normal(0.0, _FACTOR_STEP_SD, size=(n_t, n_factors))
    factors = np.cumsum(steps, axis=0) - steps[0]  # f[first] = 0
    delta = _TREND * (year_grid - first) + rng.normal(0.0, _YEAR_SHOCK_SD, size=n_t)
    err = _ar1(rng, (n, n_t), float(noise_rho), float(noise)) if noise > 0 else np.zeros((n, n_t))

    post = year_grid >= start
    eff = np.array([effects.get(u, 0.0) for u in names])
    tau = np.where(is_treated[:, None] & post[None, :],
                   eff[:, None] + float(effect_slope) * (year_grid - start)[None, :], 0.0)
    y = alpha[:, None] + delta[None, :] + loadings @ factors.T + tau + err

    regions = [_PROVINCE_REGIONS.get(u, "") for u in names] if n == len(PROVINCES) else \
        [("East", "Central", "West", "Northeast")[i % 4] for i in range(n)]
    data = pd.DataFrame({
        "province": np.repeat(names, n_t),
        "year": np.tile(year_grid, n).astype("int64"),
        "region": np.repeat(regions, n_t),
        "cohort": pd.array(np.repeat(np.where(is_treated, start, 0), n_t), dtype="Int64"),
        "treated": (np.repeat(is_treated, n_t) & np.tile(post, n)).astype("int64"),
        "carbon_productivity": y.reshape(-1),
    })
    data.loc[~np.repeat(is_treated, n_t), "cohort"] = pd.NA

    rows = [("att", group_label(), float(tau[is_treated][:, post].mean()))]
    rows += [("att", group_label(unit=u), float(tau[names.index(u), post].mean()))
             for u in treated_units]
    several = len(treated_units) > 1
    rows += [("gap", group_label(unit=u, t=int(t)) if several else group_label(t=int(t)),
              float(tau[names.index(u), j]))
             for u in treated_units for j, t in enumerate(year_grid) if post[j]]
    truth = pd.DataFrame(rows, columns=["estimand", "group", "value"])
    cells = [(u, int(t), float(tau[names.index(u), j])) for u in treated_units
             for j, t in enumerate(year_grid) if post[j]]
    tau_frame = pd.DataFrame(cells, columns=["province", "year", "tau"])
    params: dict[str, Any] = dict(
        n_units=n, years=(first, last), treated=treated_units, start=int(start),
        effects=effects, effect_slope=float(effect_slope), n_factors=int(n_factors),
        noise=float(noise), noise_rho=float(noise_rho), true_weights=true_weights,
        unit_levels=dict(zip(names, alpha.tolist())),
        loadings={u: loadings[i].tolist() for i, u in enumerate(names)},
        factors=factors.tolist(), year_effects=dict(zip(year_grid.tolist(), delta.tolist())),
        level_mean=_LEVEL_MEAN, level_sd=_LEVEL_SD, trend=_TREND, loading_sd=_LOADING_SD,
        factor_drift=drift.tolist(), factor_step_sd=_FACTOR_STEP_SD,
        random_seed=random_seed,
    )
    panel_kwargs = dict(unit="province", time="year", outcome="carbon_productivity",
                        cohort="cohort", groups=["region"])
    logger.debug("simulated %d provinces x %d years, treated %s from %d", n, n_t,
                 treated_units, start)
    return SimulatedPanel(data=data, truth=truth, tau=tau_frame,
                          policy_lists={int(start) - 1: list(treated_units)}, params=params,
                          panel_kwargs=panel_kwargs)

