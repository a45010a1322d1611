"""Simulated staggered-adoption panels with a known treatment effect.

:func:`simulate_staggered` draws a city-year panel shaped like the low-carbon-city-pilot
(LCCP) studies: 278 cities, 2003-2021, pilot batches listed in 2010, 2012 and 2017,
treatment from the year after listing, four regions, an eco-efficiency-like outcome.
The treatment effect is heterogeneous by batch, region and event time, so two-way fixed
effects is biased while the truth (:attr:`SimulatedPanel.truth`) is exact.

Outcome model, for city ``i`` in region ``r`` and year ``t``::

    eco_eff[i, t] = intercept + alpha[i] + delta[t] + x[i, t] @ beta
                    + treated[i, t] * tau[i, t] + e[i, t]
    tau[i, t]     = cohort_effects[batch(i)] + region_effects[r] + slope * (t - cohort(i))
    e[i, t]       = rho * e[i, t-1] + N(0, sigma^2),  e[i, first] ~ N(0, sigma^2 / (1 - rho^2))

``alpha`` (unit effects) has a region mean plus normal noise, and pilot cities are drawn
with probability increasing in ``alpha`` (selection on levels). ``delta`` is a linear
trend plus normal year shocks. Covariates are pre-determined (not moved by the
treatment): each loads on the standardised unit effect, has an extra trend in pilot
cities (so it is correlated with ``treated``) and AR(1) noise; the truth is therefore
both the total and the direct effect. There is no idiosyncratic effect noise.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import SpecError
from ..results import group_label

__all__ = ["SimulatedPanel", "simulate_staggered", "REGIONS"]

logger = logging.getLogger(__name__)

REGIONS: tuple[str, ...] = ("East", "Central", "West", "Northeast")
_REGION_SIZES = (100, 80, 64, 34)  # LCCP sample: 278 prefecture-level cities
_DEFAULT_BATCHES = {2010: 15, 2012: 22, 2017: 30}
_DEFAULT_COHORT_EFFECTS = (0.06, 0.01, 0.05)  # by batch order, cycled beyond three
_DEFAULT_REGION_EFFECTS = {"East": 0.02, "Central": 0.0, "West": -0.01, "Northeast": 0.03}
# Structural constants (recorded in ``params``).
_INTERCEPT = 0.48
_REGION_LEVELS = {"East": 0.04, "Central": 0.0, "West": -0.03, "Northeast": -0.01}
_UNIT_SD = 0.06
_TREND = 0.003
_YEAR_SHOCK_SD = 0.01
_SELECTION = 1.0  # log-odds of being listed per sd of the unit effect
_X_LOADING = 0.5  # covariate loading on the standardised unit effect
_X_PILOT_TREND = 0.8  # covariate drift in pilot cities over the whole window
_X_RHO = 0.6


@dataclass(frozen=True, eq=False)
class SimulatedPanel:
    """A simulated panel and its exact truth.

    Attributes
    ----------
    data : long frame, one row per city-year: ``city``, ``year``, ``region``, ``batch``
        (listing year, ``<NA>`` if never listed), ``cohort`` (first treated year),
        ``treated`` (0/1), ``x1..xk``, ``eco_eff``.
    truth : columns ``estimand``, ``group``, ``value``: observation-weighted means of
        ``tau`` over treated city-years, overall, by cohort, region, cohort x region
        (``estimand="att"``) and by event time (``estimand="event_time"``, ``k=0``...).
    tau : the true effect of every treated city-year: ``city``, ``year``, ``tau``.
    policy_lists : ``{listing_year: [city, ...]}``.
    params : every true parameter (``beta``, ``rho``, ``sigma``, effects, unit and
        year effects, ...).
    panel_kwargs : keyword arguments for :meth:`bayesdid.Panel.from_frame`.
    """

    data: pd.DataFrame
    truth: pd.DataFrame
    tau: pd.DataFrame
    policy_lists: dict[int, list[str]]
    params: dict[str, Any]
    panel_kwargs: dict[str, Any]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)) and math.isfinite(float(value)))


def _check_years(years: Any) -> tuple[int, int]:
    if (not isinstance(years, Sequence) or len(years) != 2
            or not all(_is_int(y) for y in years)):
        raise SpecError(f"years must be a pair of integers (first, last), got {years!r}")
    first, last = int(years[0]), int(years[1])
    if last <= first:
        raise SpecError(f"years must span at least two years, got {years!r}")
    return first, last


def _check_batches(batches: Any, n_units: int, first: int, last: int,
                   shift: int) -> dict[int, int]:
    if not isinstance(batches, Mapping) or len(batches) == 0:
        raise SpecError(f"batches must be a non-empty {{listing_year: n_cities}} mapping, "
                        f"got {batches!r}")
    out: dict[int, int] = {}
    for year, count in sorted(batches.items()):
        if not _is_int(year) or not _is_int(count) or count < 1:
            raise SpecError(f"batches: listing year and city count must be integers with "
                            f"count >= 1, got {year!r}: {count!r}")
        cohort = int(year) + shift
        if not first < cohort <= last:
            raise SpecError(
                f"batch {year} would be treated from {cohort}, outside ({first}, {last}]: "
                "every cohort needs a pre-treatment year and a treated year in the panel")
        out[int(year)] = int(count)
    if sum(out.values()) >= n_units:
        raise SpecError(f"batches list {sum(out.values())} cities but n_units={n_units}: "
                        "at least one city must never be treated")
    return out


def _check_effects(given: Any, defaults: dict, what: str) -> dict:
    if given is None:
        return dict(defaults)
    if not isinstance(given, Mapping):
        raise SpecError(f"{what} must be a mapping, got {type(given).__name__}")
    unknown = [k for k in given if k not in defaults]
    if unknown:
        raise SpecError(f"{what} has unknown keys {unknown}; expected keys among "
                        f"{list(defaults)}")
    bad = {k: v for k, v in given.items() if not _is_real(v)}
    if bad:
        raise SpecError(f"{what} values must be finite numbers, got {bad}")
    return {k: float(given.get(k, defaults[k])) for k in defaults}


def _region_counts(n_units: int) -> np.ndarray:
    """Largest-remainder split of ``n_units`` in the LCCP proportions 100/80/64/34."""
    sizes = np.asarray(_REGION_SIZES, dtype=float)
    exact = n_units * sizes / sizes.sum()
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n_units - counts.sum()]] += 1
    return counts


def _ar1(rng: np.random.Generator, shape: tuple[int, int], rho: float,
         sd: float) -> np.ndarray:
    """Stationary AR(1) series along axis 1 with innovation sd ``sd``."""
    out = np.empty(shape)
    out[:, 0] = rng.normal(0.0, sd / math.sqrt(1.0 - rho**2), size=shape[0])
    for t in range(1, shape[1]):
        out[:, t] = rho * out[:, t - 1] + rng.normal(0.0, sd, size=shape[0])
    return out


def assign_batches(keys: np.ndarray, batches: Mapping[int, int],
                   units: np.ndarray) -> tuple[np.ndarray, dict[int, list]]:
    """List units by batch in decreasing order of ``keys``: the first batch takes the
    highest keys. Returns each unit's listing year (-1 if never listed) and the policy
    lists ``{year: [unit, ...]}``."""
    picked = np.argsort(-keys, kind="stable")[: sum(batches.values())]
    batch_of = np.full(len(units), -1)
    policy_lists: dict[int, list] = {}
    pos = 0
    for year, count in batches.items():
        members = np.sort(picked[pos: pos + count])
        batch_of[members] = year
        policy_lists[year] = units[members].tolist()
        pos += count
    return batch_of, policy_lists


def _truth(cells: pd.DataFrame) -> pd.DataFrame:
    """Observation-weighted means of ``tau`` over treated rows, in canonical groups."""
    rows = [("att", group_label(), cells["tau"].mean())]
    for c, v in cells.groupby("cohort")["tau"].mean().items():
        rows.append(("att", group_label(cohort=int(c)), v))
    by_region = cells.groupby("region")["tau"].mean()
    rows += [("att", group_label(region=r), by_region[r]) for r in REGIONS if r in by_region]
    by_cell = cells.groupby(["cohort", "region"])["tau"].mean()
    for c in sorted(cells["cohort"].unique()):
        rows += [("att", group_label(cohort=int(c), region=r), by_cell[(c, r)])
                 for r in REGIONS if (c, r) in by_cell.index]
    for k, v in cells.groupby("k")["tau"].mean().items():
        rows.append(("event_time", group_label(k=int(k)), v))
    for (c, k), v in cells.groupby(["cohort", "k"])["tau"].mean().items():
        rows.append(("event_time", group_label(cohort=int(c), k=int(k)), v))
    truth = pd.DataFrame(rows, columns=["estimand", "group", "value"])
    truth["value"] = truth["value"].astype(float)
    return truth


def simulate_staggered(
    n_units: int = 278,
    years: tuple[int, int] = (2003, 2021),
    batches: Mapping[int, int] | None = None,
    start: Literal["next_year", "same_year"] = "next_year",
    n_covariates: int = 3,
    rho: float = 0.5,
    sigma: float = 0.05,
    cohort_effects: Mapping[int, float] | None = None,
    region_effects: Mapping[str, float] | None = None,
    slope: float = 0.01,
    beta: Sequence[float] | None = None,
    random_seed: int | None = 0,
) -> SimulatedPanel:
    """Simulate an LCCP-like staggered-adoption panel with a known effect.

    Parameters
    ----------
    n_units : number of cities (>= 5), split over East/Central/West/Northeast in the
        proportions 100/80/64/34.
    years : first and last year, inclusive.
    batches : ``{listing_year: n_cities}``; default ``{2010: 15, 2012: 22, 2017: 30}``.
        At least one city must stay untreated.
    start : ``"next_year"`` (treated from the year after listing, the LCCP rule) or
        ``"same_year"``.
    n_covariates : number of time-varying covariates ``x1..xk``.
    rho, sigma : AR(1) coefficient (|rho| < 1) and innovation sd (>= 0) of the errors.
    cohort_effects : effect per batch, keyed by listing year. Default
        ``{2010: 0.06, 2012: 0.01, 2017: 0.05}``; for other batches 0.06, 0.01, 0.05 by
        batch order (cycled). A partial mapping overrides only the keys it names.
    region_effects : effect shift per region; default East 0.02, Central 0, West -0.01,
        Northeast 0.03. A partial mapping overrides only the keys it names.
    slope : effect growth per year of exposure, ``k = year - cohort``.
    beta : covariate coefficients (length ``n_covariates``); default alternates in sign,
        0.03, -0.02, 0.015, -0.012, ...
    random_seed : seed of every random draw; same seed, same panel.

    Returns
    -------
    SimulatedPanel

    Examples
    --------
    >>> sim = simulate_staggered(n_units=40, years=(2005, 2014),
    ...                          batches={2008: 5, 2010: 6}, random_seed=1)
    >>> sim.data.shape
    (400, 10)
    >>> sim.truth.query("group == 'cohort=2009'")["estimand"].tolist()
    ['att']
    """
    if not _is_int(n_units) or n_units < len(REGIONS) + 1:
        raise SpecError(f"n_units must be an integer >= {len(REGIONS) + 1}, got {n_units!r}")
    n_units = int(n_units)
    first, last = _check_years(years)
    if start not in ("next_year", "same_year"):
        raise SpecError(f"start must be 'next_year' or 'same_year', got {start!r}")
    shift = 1 if start == "next_year" else 0
    batches = _check_batches(_DEFAULT_BATCHES if batches is None else batches,
                             n_units, first, last, shift)
    if not _is_int(n_covariates) or n_covariates < 0:
        raise SpecError(f"n_covariates must be an integer >= 0, got {n_covariates!r}")
    if not _is_real(rho) or not -1.0 < float(rho) < 1.0:
        raise SpecError(f"rho must be a number in (-1, 1), got {rho!r}")
    if not _is_real(sigma) or float(sigma) < 0:
        raise SpecError(f"sigma must be a finite number >= 0, got {sigma!r}")
    if not _is_real(slope):
        raise SpecError(f"slope must be a finite number, got {slope!r}")
    if batches == _DEFAULT_BATCHES:
        cohort_defaults = dict(zip(batches, _DEFAULT_COHORT_EFFECTS))
    else:
        cohort_defaults = {b: _DEFAULT_COHORT_EFFECTS[i % len(_DEFAULT_COHORT_EFFECTS)]
                           for i, b in enumerate(batches)}
    c_eff = _check_effects(cohort_effects, cohort_defaults, "cohort_effects")
    r_eff = _check_effects(region_effects, _DEFAULT_REGION_EFFECTS, "region_effects")
    if beta is None:
        beta_arr = np.array([(0.03, -0.02, 0.015, -0.012)[j] if j < 4
                             else 0.01 * (-1) ** j for j in range(n_covariates)])
    else:
        beta_arr = np.asarray(beta, dtype=float).reshape(-1)
        if beta_arr.size != n_covariates or not np.all(np.isfinite(beta_arr)):
            raise SpecError(f"beta must hold {n_covariates} finite numbers, got {beta!r}")
    if random_seed is not None and not _is_int(random_seed):
        raise SpecError(f"random_seed must be an integer or None, got {random_seed!r}")
    rng = np.random.default_rng(random_seed)

    year_grid = np.arange(first, last + 1)
    n_t = year_grid.size
    width = max(3, len(str(n_units)))
    cities = np.array([f"c{i + 1:0{width}d}" for i in range(n_units)])

    # Regions (fixed counts, random placement) and unit effects.
    region = rng.permutation(np.repeat(np.array(REGIONS), _region_counts(n_units)))
    alpha = (np.array([_REGION_LEVELS[r] for r in region])
             + rng.normal(0.0, _UNIT_SD, size=n_units))
    z = (alpha - alpha.mean()) / alpha.std()

    # Selection on levels: Gumbel top-k = weighted sampling without replacement,
    # the earliest batches taking the highest keys.
    keys = _SELECTION * z + rng.gumbel(size=n_units)
    batch_of, policy_lists = assign_batches(keys, batches, cities)
    ever = batch_of >= 0
    cohort_of = np.where(ever, batch_of + shift, -1)

    # Year effects, covariates, errors.
    delta = _TREND * (year_grid - first) + rng.normal(0.0, _YEAR_SHOCK_SD, size=n_t)
    time_scaled = (year_grid - first) / max(n_t - 1, 1)  # 0 .. 1
    x = np.empty((n_covariates, n_units, n_t))
    for j in range(n_covariates):
        sign = 1.0 if j % 2 == 0 else -1.0
        x[j] = (sign * _X_LOADING * z[:, None]
                + sign * _X_PILOT_TREND * ever[:, None] * time_scaled[None, :]
                + _ar1(rng, (n_units, n_t), _X_RHO, math.sqrt(1 - _X_RHO**2)))
    err = _ar1(rng, (n_units, n_t), float(rho), float(sigma))

    # Treatment effects.
    k = year_grid[None, :] - cohort_of[:, None]
    treated = ever[:, None] & (k >= 0)
    base = np.array([c_eff.get(b, 0.0) for b in batch_of]) + np.array(
        [r_eff[r] for r in region])
    tau = np.where(treated, base[:, None] + float(slope) * k, 0.0)

    y = (_INTERCEPT + alpha[:, None] + delta[None, :]
         + np.tensordot(beta_arr, x, axes=1) + tau + err)

    data = pd.DataFrame({
        "city": np.repeat(cities, n_t),
        "year": np.tile(year_grid, n_units).astype("int64"),
        "region": np.repeat(region, n_t),
        "batch": pd.array(np.repeat(np.where(ever, batch_of, 0), n_t), dtype="Int64"),
        "cohort": pd.array(np.repeat(np.where(ever, cohort_of, 0), n_t), dtype="Int64"),
        "treated": treated.reshape(-1).astype("int64"),
    })
    never = np.repeat(~ever, n_t)
    data.loc[never, ["batch", "cohort"]] = pd.NA
    for j in range(n_covariates):
        data[f"x{j + 1}"] = x[j].reshape(-1)
    data["eco_eff"] = y.reshape(-1)

    mask = treated.reshape(-1)
    cells = data.loc[mask, ["city", "year", "region", "cohort"]].copy()
    cells["tau"] = tau.reshape(-1)[mask]
    cells["k"] = cells["year"] - cells["cohort"].astype("int64")
    tau_frame = cells[["city", "year", "tau"]].reset_index(drop=True)

    params: dict[str, Any] = dict(
        n_units=n_units, years=(first, last), batches=dict(batches), start=start,
        cohorts={b: b + shift for b in batches}, intercept=_INTERCEPT,
        beta=beta_arr.tolist(), rho=float(rho), sigma=float(sigma),
        cohort_effects=c_eff, region_effects=r_eff, slope=float(slope),
        region_levels=dict(_REGION_LEVELS), unit_sd=_UNIT_SD, trend=_TREND,
        year_shock_sd=_YEAR_SHOCK_SD, selection=_SELECTION,
        unit_effects=dict(zip(cities.tolist(), alpha.tolist())),
        year_effects=dict(zip(year_grid.tolist(), delta.tolist())),
        random_seed=random_seed,
    )
    covariates = [f"x{j + 1}" for j in range(n_covariates)]
    panel_kwargs = dict(unit="city", time="year", outcome="eco_eff", cohort="cohort",
                        groups=["region"], covariates=covariates, cluster="city")
    logger.debug("simulated %d cities x %d years, %d treated cities", n_units, n_t,
                 int(ever.sum()))
    return SimulatedPanel(data=data, truth=_truth(cells), tau=tau_frame,
                          policy_lists=policy_lists, params=params,
                          panel_kwargs=panel_kwargs)
