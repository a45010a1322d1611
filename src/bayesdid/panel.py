"""Panel: a validated long panel and its treatment design — the one data layer.

Every estimator in bayesdid sees a :class:`Panel`, never a raw DataFrame. Building one
checks the input up front and fails with a typed error (:mod:`bayesdid.errors`) that names
the column and shows the offending rows. The caller's frame is copied, never mutated; every
transformation applied (winsorizing, interpolation) is recorded in :attr:`Panel.log`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from . import _validate as v
from .errors import (
    BayesDidError,
    ColumnError,
    DesignError,
    PolicyListError,
    TreatmentError,
)

logger = logging.getLogger(__name__)

__all__ = ["Panel", "LogEntry"]

# canonical internal column names (user columns keep their own names beside these)
UNIT, TIME, Y, D, COHORT, REL, NEVER = "_unit", "_time", "_y", "_d", "_cohort", "_rel", "_never"


@dataclass(frozen=True)
class LogEntry:
    """One transformation applied while building the panel."""

    step: str
    detail: str
    n_affected: int = 0


@dataclass(frozen=True, eq=False)
class Panel:
    """A validated long panel with its (staggered-adoption) treatment design.

    Build it with :meth:`from_frame`. Derived per row: cohort (first treated period;
    missing for never-treated units), treatment indicator, relative time
    ``time - cohort`` and the never-treated flag.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"city": ["a"] * 3 + ["b"] * 3, "year": [1, 2, 3] * 2,
    ...                    "y": [1.0, 1.2, 1.9, 0.9, 1.1, 1.2]})
    >>> p = Panel.from_frame(df, unit="city", time="year", outcome="y",
    ...                      policy_lists={2: ["a"]}, start="next_year")
    >>> p.data[["city", "year", "treated", "cohort"]].to_dict("list")["treated"]
    [0, 0, 1, 0, 0, 0]
    """

    frame: pd.DataFrame
    unit: str
    time: str
    outcome: str
    groups: tuple[str, ...] = ()
    covariates: tuple[str, ...] = ()
    weights: str | None = None
    cluster: str | None = None
    start: str = "same_year"
    log: tuple[LogEntry, ...] = field(default_factory=tuple)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        *,
        unit: str,
        time: str,
        outcome: str,
        treat: str | None = None,
        cohort: str | None = None,
        policy_lists: Mapping[int, Sequence] | None = None,
        start: Literal["next_year", "same_year"] = "next_year",
        groups: Sequence[str] = (),
        covariates: Sequence[str] = (),
        weights: str | None = None,
        cluster: str | None = None,
        winsorize: tuple[float, float] | None = None,
        interpolate: bool = False,
    ) -> Panel:
        """Validate ``df`` and derive the treatment design.

        Parameters
        ----------
        unit, time, outcome : column names. ``time`` must be integer-valued (e.g. years).
        treat : a 0/1 column, switching on once and staying on (staggered adoption).
        cohort : a column holding each unit's first treated period (constant within unit;
            missing or 0 for never-treated units).
        policy_lists : ``{listing_year: [unit, ...]}`` by batch. With
            ``start="next_year"`` (the LCCP rule) a unit listed in 2010 is treated from
            2011; with ``"same_year"`` from 2010. ``start`` applies to policy lists only.
        groups : unit-level grouping columns (e.g. region) used for pooling and reporting.
        covariates : numeric time-varying controls.
        weights : non-negative observation weights. cluster : column to cluster by.
        winsorize : ``(lower, upper)`` quantiles, e.g. ``(0.01, 0.99)``, applied to the
            outcome and covariates (logged).
        interpolate : fill interior missing outcome/covariate values by linear
            interpolation over time within unit (logged).

        Exactly one of ``treat``, ``cohort``, ``policy_lists`` is required.
        """
        if not isinstance(df, pd.DataFrame):
            raise BayesDidError(f"expected a pandas DataFrame, got {type(df).__name__}")
        v.check_nonempty(df)
        given = [name for name, val in (("treat", treat), ("cohort", cohort),
                                         ("policy_lists", policy_lists)) if val is not None]
        if len(given) != 1:
            raise TreatmentError(
                f"give exactly one of treat=, cohort=, policy_lists= (got {given or 'none'})")
        if start not in ("next_year", "same_year"):
            raise TreatmentError(f"start must be 'next_year' or 'same_year', got {start!r}")
        groups, covariates = tuple(groups), tuple(covariates)
        named = [unit, time, outcome, treat, cohort, weights, cluster, *groups, *covariates]
        v.check_columns_exist(df, [c for c in named if c is not None])

        keep = list(dict.fromkeys(c for c in named if c is not None))
        data = df[keep].copy()
        log: list[LogEntry] = []

        v.check_no_missing(data, unit)
        data[time] = v.coerce_time(data, time)
        v.check_no_duplicates(data, unit, time)
        data = data.sort_values([unit, time], kind="stable").reset_index(drop=True)
        v.check_several_periods(data, time)

        numeric = [outcome, *covariates]
        for col in numeric:
            data[col] = v.coerce_numeric(data, col)
        if interpolate:
            log.extend(_interpolate(data, unit, time, numeric))
        for col in numeric:
            v.check_no_missing(data, col, hint="pass interpolate=True to fill interior gaps"
                               if not interpolate else None)
            v.check_finite(data, col)
        if winsorize is not None:
            log.extend(_winsorize(data, numeric, winsorize))
        if weights is not None:
            v.check_weights(data, weights)
        for col in (*groups, *( [cluster] if cluster else [])):
            v.check_no_missing(data, col)
        for col in groups:
            v.check_constant_within_unit(data, unit, col, what="group")

        if treat is not None:
            first = _cohort_from_treat(data, unit, time, treat)
        elif cohort is not None:
            first = _cohort_from_column(data, unit, cohort)
        else:
            first = _cohort_from_policy_lists(data, unit, policy_lists, start)
            log.append(LogEntry("policy_lists", f"{sum(len(u) for u in policy_lists.values())} "
                                f"units listed in {len(policy_lists)} batch(es); start={start}"))

        data[COHORT] = data[unit].map(first).astype("Int64")
        data[D] = (data[COHORT].notna() & (data[time] >= data[COHORT])).astype("int64")
        data[REL] = (data[time] - data[COHORT]).astype("Int64")
        data[NEVER] = data[COHORT].isna()
        _check_design(data, unit, time)

        data["treated"] = data[D]
        data["cohort"] = data[COHORT]
        data["rel_time"] = data[REL]
        data["never_treated"] = data[NEVER]
        data = data.drop(columns=[D, COHORT, REL, NEVER])
        return cls(frame=data, unit=unit, time=time, outcome=outcome, groups=groups,
                   covariates=covariates, weights=weights, cluster=cluster,
                   start=start if policy_lists is not None else "same_year",
                   log=tuple(log))

    # ------------------------------------------------------------------ accessors
    @property
    def data(self) -> pd.DataFrame:
        """The validated long panel (a copy) with derived columns ``treated``,
        ``cohort``, ``rel_time`` and ``never_treated``, sorted by unit and time."""
        return self.frame.copy()

    @property
    def n_obs(self) -> int:
        return len(self.frame)

    @property
    def units(self) -> np.ndarray:
        return self.frame[self.unit].unique()

    @property
    def times(self) -> np.ndarray:
        return np.sort(self.frame[self.time].unique())

    @property
    def cohorts(self) -> list[int]:
        """Treated cohorts (first treated periods), sorted."""
        return sorted(int(c) for c in self.frame["cohort"].dropna().unique())

    @property
    def is_balanced(self) -> bool:
        return self.n_obs == len(self.units) * len(self.times)

    def with_frame(self, frame: pd.DataFrame, note: LogEntry) -> Panel:
        """A new panel on a row subset or re-labelled frame of this one (internal use)."""
        return Panel(frame=frame.reset_index(drop=True), unit=self.unit, time=self.time,
                     outcome=self.outcome, groups=self.groups, covariates=self.covariates,
                     weights=self.weights, cluster=self.cluster, start=self.start,
                     log=self.log + (note,))

    def to_xarray(self) -> xr.Dataset:
        """Balanced (unit x time) arrays; cells absent from the panel are NaN."""
        cols = [self.outcome, "treated", *self.covariates]
        if self.weights:
            cols.append(self.weights)
        wide = self.frame.set_index([self.unit, self.time])[cols].astype(float)
        ds = xr.Dataset.from_dataframe(wide)
        ds = ds.rename({self.unit: "unit", self.time: "time"})
        unit_level = self.frame.groupby(self.unit, sort=False)[["cohort", *self.groups]].first()
        ds = ds.assign_coords(cohort=("unit", unit_level["cohort"].reindex(ds["unit"].values)
                                      .astype("float").to_numpy()))
        for g in self.groups:
            ds = ds.assign_coords({g: ("unit", unit_level[g].reindex(ds["unit"].values).to_numpy())})
        ds["observed"] = ds[self.outcome].notnull()
        return ds

    def describe(self) -> str:
        """A short human summary of the design."""
        f = self.frame
        n_units = len(self.units)
        n_treated = f.loc[~f["never_treated"], self.unit].nunique()
        sizes = f.loc[~f["never_treated"]].groupby("cohort")[self.unit].nunique()
        lines = [
            f"Panel: {n_units} units x {len(self.times)} periods "
            f"({self.times.min()}-{self.times.max()}), {self.n_obs} rows"
            f"{'' if self.is_balanced else ' (unbalanced)'}",
            f"outcome: {self.outcome}; treated units: {n_treated}; never treated: {n_units - n_treated}",
            "cohorts: " + ", ".join(f"{int(c)} ({n})" for c, n in sizes.items()),
        ]
        if self.groups:
            lines.append(f"groups: {', '.join(self.groups)}")
        if self.covariates:
            lines.append(f"covariates: {', '.join(self.covariates)}")
        lines += [f"log: {e.step}: {e.detail}" for e in self.log]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.describe()


# ---------------------------------------------------------------------- treatment
def _cohort_from_treat(data: pd.DataFrame, unit: str, time: str, treat: str) -> pd.Series:
    col = data[treat]
    v.check_no_missing(data, treat)
    values = pd.to_numeric(col, errors="coerce")
    bad = data.loc[values.isna() | ~values.isin([0, 1])]
    if len(bad):
        raise TreatmentError(f"treatment column {treat!r} must be 0/1", column=treat, rows=bad)
    values = values.astype(int)
    switched_off = values.groupby(data[unit]).diff() < 0
    if switched_off.any():
        bad_units = data.loc[switched_off, unit].unique()
        rows = data.loc[data[unit].isin(bad_units), [unit, time, treat]]
        raise TreatmentError(
            f"treatment column {treat!r} switches off within unit for {len(bad_units)} "
            "unit(s); bayesdid models staggered adoption (once treated, always treated)",
            column=treat, rows=rows,
            hint="if the policy ends, trim the panel at the end date or code treat as ever-on")
    on = data.loc[values == 1]
    return on.groupby(unit)[time].min()


def _cohort_from_column(data: pd.DataFrame, unit: str, cohort: str) -> pd.Series:
    raw = data[cohort]
    values = pd.to_numeric(raw, errors="coerce")
    bad = data.loc[values.isna() & raw.notna()]
    if len(bad):
        raise ColumnError(f"cohort column {cohort!r} must be numeric (first treated period)",
                          column=cohort, rows=bad)
    values = values.where(~values.isin([0, np.inf]))
    work = pd.DataFrame({unit: data[unit], cohort: values})
    v.check_constant_within_unit(work, unit, cohort, what="cohort", dropna=False)
    non_integer = work.loc[values.notna() & (values % 1 != 0)]
    if len(non_integer):
        raise ColumnError(f"cohort column {cohort!r} must hold whole periods",
                          column=cohort, rows=non_integer)
    return work.groupby(unit)[cohort].first().dropna().astype(int)


def _cohort_from_policy_lists(data: pd.DataFrame, unit: str,
                              policy_lists: Mapping[int, Sequence], start: str) -> pd.Series:
    if not isinstance(policy_lists, Mapping) or not policy_lists:
        raise PolicyListError("policy_lists must be a non-empty mapping {listing_year: [units]}")
    offset = 1 if start == "next_year" else 0
    first: dict = {}
    present = set(data[unit].unique())
    absent: list[tuple] = []
    for year, members in sorted(policy_lists.items()):
        try:
            year_int = int(year)
        except (TypeError, ValueError):
            raise PolicyListError(f"policy list key {year!r} is not a year") from None
        if isinstance(members, (str, bytes)) or not isinstance(members, Sequence | set):
            raise PolicyListError(f"policy list for {year!r} must be a list of units")
        for member in members:
            if member in first:
                raise PolicyListError(
                    f"unit {member!r} is listed twice (batches {first[member] - offset} and "
                    f"{year_int}); a unit joins once", column=unit)
            if member not in present:
                absent.append((year_int, member))
            first[member] = year_int + offset
    if absent:
        rows = pd.DataFrame(absent, columns=["batch", unit])
        raise PolicyListError(
            f"{len(absent)} unit(s) in policy_lists are not in column {unit!r}",
            column=unit, rows=rows, hint="check spelling and that the unit survived sample filters")
    return pd.Series(first, dtype="int64")


def _check_design(data: pd.DataFrame, unit: str, time: str) -> None:
    if not (data[D] == 1).any():
        raise TreatmentError("no treated observations: every unit is untreated in every period")
    first_seen = data.groupby(unit)[time].transform("min")
    no_pre = data.loc[data[COHORT].notna() & (data[COHORT] <= first_seen)]
    if len(no_pre):
        raise DesignError(
            f"{no_pre[unit].nunique()} treated unit(s) have no pre-treatment period "
            "(treated from their first observation); their effects are not identified",
            column=unit, rows=no_pre[[unit, time, COHORT]].rename(columns={COHORT: "cohort"}),
            hint="drop these units (always-treated) before building the panel")
    untreated_by_time = (data[D] == 0).groupby(data[time]).sum()
    empty = untreated_by_time[untreated_by_time == 0].index
    if len(empty):
        rows = data.loc[data[time].isin(empty), [unit, time, COHORT]]
        raise DesignError(
            f"no untreated comparison cells in period(s) {list(map(int, empty))}: every unit "
            "is treated there, so no estimator can separate the effect from the period effect",
            column=time, rows=rows.rename(columns={COHORT: "cohort"}),
            hint="add never-treated units or end the sample before the last cohort is treated")


# ---------------------------------------------------------------------- transformations
def _interpolate(data: pd.DataFrame, unit: str, time: str, cols: Sequence[str]) -> list[LogEntry]:
    entries = []
    for col in cols:
        missing = data[col].isna()
        if not missing.any():
            continue
        filled = data.groupby(unit, group_keys=False)[[time, col]].apply(
            lambda g: g.set_index(time)[col].interpolate(method="index", limit_area="inside")
            .set_axis(g.index))
        data[col] = filled
        n = int((missing & data[col].notna()).sum())
        entries.append(LogEntry("interpolate", f"{col}: {n} interior gap value(s) filled "
                                "linearly within unit", n))
        logger.info("interpolated %d value(s) of %s", n, col)
    return entries


def _winsorize(data: pd.DataFrame, cols: Sequence[str],
               quantiles: tuple[float, float]) -> list[LogEntry]:
    lo_q, hi_q = quantiles
    if not (0 <= lo_q < hi_q <= 1):
        raise BayesDidError(f"winsorize quantiles must satisfy 0 <= lower < upper <= 1, got {quantiles}")
    entries = []
    for col in cols:
        lo, hi = data[col].quantile([lo_q, hi_q])
        clipped = int(((data[col] < lo) | (data[col] > hi)).sum())
        data[col] = data[col].clip(lo, hi)
        entries.append(LogEntry("winsorize", f"{col}: clipped {clipped} value(s) to "
                                f"[{lo:.6g}, {hi:.6g}] ({lo_q:.0%}/{hi_q:.0%})", clipped))
    return entries
