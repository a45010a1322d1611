"""Extra columns with a known truth for simulated panels: mediators, other policies,
unit-level flags and gaps to interpolate.

:func:`augment` takes any :class:`~bayesdid.datasets.simulate.SimulatedPanel` (from
:func:`~bayesdid.datasets.simulate_staggered`, :func:`~bayesdid.datasets.simulate_efficiency`
or :func:`~bayesdid.datasets.simulate_pilot_zones`) and adds columns the seed papers' designs
need; :func:`simulate_staggered_mediated` is :func:`simulate_staggered` followed by it.

Mediator ``m`` with known ``a`` (policy -> mediator) and ``b`` (mediator -> outcome)::

    m[i, t] = mu[i] + trend * (t - first) + a * treated[i, t] + N(0, noise^2)
    y[i, t] <- y[i, t] + b * m[i, t]          mu[i] ~ N(0, unit_sd^2)

so every treated cell's total effect grows by ``a * b`` (the truth's ``att`` and
``event_time`` rows and ``tau`` shift by the sum of ``a * b`` over mediators), and the truth
gains, per mediator (group ``mediator=<name>``), rows ``a``, ``b``, ``indirect`` (``a*b``),
``direct`` (the overall ATT before mediators) and ``total``. With the efficiency simulator
``b`` must be 0: its frontier outputs are drawn before any mediator could act.

Other policies: 0/1 dummies ``{name: {start, share, effect}}`` switching on at ``start``
for a random ``share`` of units (independent of the treatment); ``effect`` is added to the
outcome where the dummy is on (0 by default: excluding the policy should not move an
estimate). Flags: unit-level 0/1 columns ``{name: share}`` (e.g. a resource-based city, or
a pilot city in a pilot province); the truth gains ``att`` rows per flag level
(``group = "<name>=0"``, ``"<name>=1"``). ``missing_share``: that share of interior cells of
the outcome is set to NaN (for ``Panel(interpolate=True)``); the truth is unchanged.

Examples
--------
>>> sim = simulate_staggered_mediated(n_units=40, years=(2005, 2012), batches={2008: 10},
...                                   mediators={"m": {"a": 0.2, "b": 0.5}}, random_seed=1)
>>> t = sim.truth.set_index(["estimand", "group"])["value"]
>>> round(float(t[("indirect", "mediator=m")]), 3)
0.1
>>> "m" in sim.data.columns
True
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from ..errors import SpecError
from ..results import group_label
from .simulate import SimulatedPanel, simulate_staggered

__all__ = ["augment", "simulate_staggered_mediated"]

logger = logging.getLogger(__name__)

_MEDIATOR_DEFAULTS = {"a": 0.0, "b": 0.0, "unit_sd": 0.1, "trend": 0.0, "noise": 0.05}
_POLICY_DEFAULTS = {"share": 0.3, "effect": 0.0}


def _real(value: Any, name: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise SpecError(f"{name} must be a finite number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise SpecError(f"{name} must lie in [{lo}, {hi}], got {value!r}")
    return float(value)


def _options(spec: Any, defaults: Mapping[str, float], name: str) -> dict[str, float]:
    if not isinstance(spec, Mapping):
        raise SpecError(f"{name} must be a table of {sorted(defaults)}, got {spec!r}")
    unknown = sorted(set(spec) - set(defaults))
    if unknown:
        raise SpecError(f"{name}: unknown option(s) {unknown}; allowed: {sorted(defaults)}")
    return {k: _real(spec.get(k, v), f"{name}.{k}") for k, v in defaults.items()}


def augment(sim: SimulatedPanel, *, mediators: Mapping[str, Mapping[str, float]] | None = None,
            other_policies: Mapping[str, Mapping[str, float]] | None = None,
            flags: Mapping[str, float] | None = None, missing_share: float = 0.0,
            random_seed: int | None = 0) -> SimulatedPanel:
    """A new :class:`SimulatedPanel` with mediators, other-policy dummies, unit flags and gaps
    (see the module docstring); ``sim`` is not modified.

    Parameters
    ----------
    mediators : ``{name: {"a", "b", "unit_sd", "trend", "noise"}}`` (omitted keys: a = b =
        0, unit_sd 0.1, trend 0, noise 0.05).
    other_policies : ``{name: {"start", "share", "effect"}}`` (``start`` required).
    flags : ``{name: share}``: unit-level 0/1 columns.
    missing_share : share of interior outcome cells blanked, in [0, 0.5).
    random_seed : seed of every draw made here.
    """
    kw = sim.panel_kwargs
    unit, time, outcome = kw["unit"], kw["time"], kw["outcome"]
    data = sim.data.copy()
    truth, tau = sim.truth.copy(), sim.tau.copy()
    rng = np.random.default_rng(random_seed)
    units = data[unit].drop_duplicates().to_numpy()
    years = data[time].to_numpy()
    first = int(years.min())
    taken = set(data.columns)

    def fresh(name: str, what: str) -> str:
        if not isinstance(name, str) or not name.isidentifier():
            raise SpecError(f"{what} name {name!r} must be a valid identifier")
        if name in taken:
            raise SpecError(f"{what} name {name!r} is already a column of the simulated data "
                            f"({', '.join(sorted(taken))})")
        taken.add(name)
        return name

    d = data["treated"].to_numpy(float)
    shift = 0.0
    overall = float(truth.query("estimand == 'att' and group == 'overall'")["value"].iloc[0])
    rows = []
    for name, spec in (mediators or {}).items():
        fresh(name, "mediator")
        o = _options(spec, _MEDIATOR_DEFAULTS, f"mediators.{name}")
        if o["b"] != 0 and outcome == "efficiency":
            raise SpecError(f"mediators.{name}.b must be 0 with the efficiency simulator: its "
                            "frontier outputs are drawn before a mediator could act")
        if o["unit_sd"] < 0 or o["noise"] < 0:
            raise SpecError(f"mediators.{name}: unit_sd and noise must be >= 0")
        mu = dict(zip(units, rng.normal(0.0, o["unit_sd"], len(units))))
        m = (data[unit].map(mu).to_numpy(float) + o["trend"] * (years - first)
             + o["a"] * d + rng.normal(0.0, o["noise"], len(data)))
        data[name] = m
        if o["b"] != 0:
            data[outcome] = data[outcome] + o["b"] * m
        shift += o["a"] * o["b"]
        g = group_label(mediator=name)
        rows += [("a", g, o["a"]), ("b", g, o["b"]), ("indirect", g, o["a"] * o["b"])]
    total = overall + shift
    indirect = {g: v for e, g, v in rows if e == "indirect"}
    for g, ab in indirect.items():  # one mediator at a time: c' = total - a_j b_j
        rows += [("direct", g, total - ab), ("total", g, total)]
    if shift:
        moved = truth["estimand"].isin(["att", "event_time", "gap"])
        truth.loc[moved, "value"] = truth.loc[moved, "value"] + shift
        tau["tau"] = tau["tau"] + shift

    for name, spec in (other_policies or {}).items():
        fresh(name, "other policy")
        if not isinstance(spec, Mapping) or "start" not in spec:
            raise SpecError(f"other_policies.{name} needs a start year")
        start = spec["start"]
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)):
            raise SpecError(f"other_policies.{name}.start must be an integer year, got {start!r}")
        o = _options({k: v for k, v in spec.items() if k != "start"}, _POLICY_DEFAULTS,
                     f"other_policies.{name}")
        if not 0 < o["share"] <= 1:
            raise SpecError(f"other_policies.{name}.share must lie in (0, 1], got {o['share']}")
        chosen = set(rng.choice(units, size=max(1, round(o["share"] * len(units))),
                                replace=False).tolist())
        on = (data[unit].isin(chosen) & (data[time] >= int(start))).astype("int64")
        data[name] = on
        if o["effect"]:
            data[outcome] = data[outcome] + o["effect"] * on

    cells = tau.merge(data[[unit, time]].drop_duplicates(), on=[unit, time])
    for name, share in (flags or {}).items():
        fresh(name, "flag")
        share = _real(share, f"flags.{name}", 0.0, 1.0)
        flag = dict(zip(units, (rng.random(len(units)) < share).astype("int64")))
        data[name] = data[unit].map(flag).astype("int64")
        level = cells[unit].map(flag)
        for v in (0, 1):
            if (level == v).any():
                rows.append(("att", group_label(**{name: v}),
                             float(cells.loc[level == v, "tau"].mean())))

    missing_share = _real(missing_share, "missing_share", 0.0, 0.5)
    if missing_share >= 0.5:
        raise SpecError("missing_share must be below 0.5")
    if missing_share > 0:
        interior = (data[time] > data.groupby(unit)[time].transform("min")) & (
            data[time] < data.groupby(unit)[time].transform("max"))
        hit = interior & (rng.random(len(data)) < missing_share)
        data.loc[hit, outcome] = np.nan
        logger.debug("blanked %d interior cells of %s", int(hit.sum()), outcome)

    if rows:
        truth = pd.concat([truth, pd.DataFrame(rows, columns=["estimand", "group", "value"])],
                          ignore_index=True)
        truth["value"] = truth["value"].astype(float)
    params = dict(sim.params)
    params["augment"] = {"mediators": {k: dict(v) for k, v in (mediators or {}).items()},
                         "other_policies": {k: dict(v) for k, v in (other_policies or {}).items()},
                         "flags": dict(flags or {}), "missing_share": missing_share,
                         "random_seed": random_seed}
    return replace(sim, data=data, truth=truth, tau=tau, params=params)


def simulate_staggered_mediated(*, mediators: Mapping[str, Mapping[str, float]] | None = None,
                                other_policies: Mapping[str, Mapping[str, float]] | None = None,
                                flags: Mapping[str, float] | None = None,
                                missing_share: float = 0.0, random_seed: int | None = 0,
                                **kwargs) -> SimulatedPanel:
    """:func:`simulate_staggered` (``kwargs``) followed by :func:`augment`; the same
    ``random_seed`` seeds both (the augmentation with a derived stream)."""
    sim = simulate_staggered(random_seed=random_seed, **kwargs)
    seed = None if random_seed is None else [int(random_seed), 7919]
    return augment(sim, mediators=mediators, other_policies=other_policies, flags=flags,
                   missing_share=missing_share, random_seed=seed)
