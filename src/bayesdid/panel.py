"""Panel: a validated long panel and its treatment design — the one data layer.

Every estimator in bayesdid sees a :class:`Panel`, never a raw DataFrame. Building one
checks the input up front and fails with a typed error (:mod:`bayesdid.errors`) that names
the column and shows the offending rows. The caller's frame is copied, never mutated; every
transformation applied (adding missing interior periods, interpolation, winsorizing) is
recorded in :attr:`Panel.log`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from . import _transform as tf
from . import _validate as v
from ._time import INTEGER_AXIS, TimeAxis, period_indices
from ._time import time_axis as _time_axis
from ._transform import LogEntry
from .errors import (
    BayesDidError,
    ColumnError,
    DesignError,
    PolicyListError,
    TreatmentError,
)

logger = logging.getLogger(__name__)

__all__ = ["Panel", "LogEntry", "TimeAxis"]

# canonical internal column names (user columns keep their own names beside these)
UNIT, TIME, Y, D, COHORT, REL, NEVER = "_unit", "_time", "_y", "_d", "_cohort", "_rel", "_never"
# derived columns added to ``Panel.data``; user columns in data roles may not carry these names
DERIVED = ("treated", "cohort", "rel_time", "never_treated")


@dataclass(frozen=True, eq=False)
class Panel:
    """A validated long panel with its (staggered-adoption) treatment design.

    Build it with :meth:`from_frame` (or :func:`bayesdid.read_panel` from a file). Derived
    per row: cohort (first treated period; missing for never-treated units), treatment
    indicator, relative time ``time - cohort`` and the never-treated flag.

    Time may be integer, or dates / pandas Periods at yearly, quarterly or monthly
    frequency. The frame holds time (and cohorts) as consecutive integer period indices,
    so ``rel_time`` counts periods (months for monthly data); :attr:`time_axis` maps them
    back to the user's labels (``panel.time_axis.label(i)``, ``panel.time_labels()``).

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
    time_axis: TimeAxis = INTEGER_AXIS

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
        time_axis: TimeAxis | None = None,
    ) -> Panel:
        """Validate ``df`` and derive the treatment design.

        Parameters
        ----------
        unit, time, outcome : column names. ``time`` holds integer periods (e.g. years),
            or dates or pandas Periods at yearly, quarterly or monthly frequency (strings
            such as ``"2011Q1"``, ``"2011-03"`` or ``"2011-03-01"`` are read as such).
            Calendar time becomes consecutive integer period indices in :attr:`frame`
            (the year for yearly data, ``year * 4 + quarter - 1`` for quarterly,
            ``year * 12 + month - 1`` for monthly) so that event time counts periods;
            :attr:`time_axis` keeps the user's labels. Dates must fit one frequency
            (one date per period, at the same place in each period).
        treat : a 0/1 column, switching on once and staying on (staggered adoption).
        cohort : a column holding each unit's first treated period (constant within unit;
            missing (NaN, NaT), 0 or inf for never-treated units), in the time column's
            terms: integers, or dates / Periods / strings for calendar time (a date
            names the period holding it; plain years are accepted for yearly time).
        policy_lists : ``{listing_period: [unit, ...]}`` by batch. With
            ``start="next_year"`` (the LCCP rule) a unit listed in 2010 is treated from
            2011 (the next period: the next month for monthly time); with
            ``"same_year"`` from 2010. ``start`` applies to policy lists only. Keys are
            periods like the cohort values above.
        groups : unit-level grouping columns (e.g. region) used for pooling and reporting.
        covariates : numeric time-varying controls.
        weights : non-negative observation weights. cluster : column to cluster by.
        winsorize : ``(lower, upper)`` quantiles, e.g. ``(0.01, 0.99)``, applied to the
            outcome and covariates (logged).
        interpolate : fill interior gaps by linear interpolation over time within unit
            (logged in :attr:`log`): missing outcome/covariate values, and periods missing
            from a unit's rows between its first and last observed period (periods of the
            panel's grid, i.e. observed for some unit), which are added as rows first.
            An added row's outcome and covariates are interpolated; its other columns
            (treatment, cohort, groups, weights, cluster) are carried from the unit's
            previous period. Nothing is filled or added before a unit's first or after
            its last observed period. Interpolated values are not data: estimators treat
            them as observed.
        time_axis : internal: rebuild a panel from its own frame (integer period indices)
            keeping its time labels.

        Exactly one of ``treat``, ``cohort``, ``policy_lists`` is required.
        """
        if not isinstance(df, pd.DataFrame):
            raise BayesDidError(f"expected a pandas DataFrame, got {type(df).__name__}")
        v.check_nonempty(df)
        given = {name: val for name, val in (("treat", treat), ("cohort", cohort),
                                              ("policy_lists", policy_lists)) if val is not None}
        if len(given) != 1:
            shown = ", ".join(f"{k}={'{...}' if k == 'policy_lists' else repr(val)}"
                              for k, val in given.items())
            raise TreatmentError(
                "give exactly one of treat= (a 0/1 column), cohort= (a first-treated-period "
                f"column) or policy_lists= ({{year: [units]}}); got {shown or 'none'}",
                column=treat if treat is not None else cohort)
        if start not in ("next_year", "same_year"):
            raise TreatmentError(f"start must be 'next_year' or 'same_year', got {start!r}")
        if isinstance(groups, str) or isinstance(covariates, str):
            raise ColumnError("groups= and covariates= take a list of column names, not a string",
                              column=groups if isinstance(groups, str) else covariates,
                              hint=f"write groups=[{groups!r}]" if isinstance(groups, str)
                              else f"write covariates=[{covariates!r}]")
        groups, covariates = tuple(groups), tuple(covariates)
        winsorize = tf.check_quantiles(winsorize)
        roles = {"unit": unit, "time": time, "outcome": outcome, "treat": treat,
                 "cohort": cohort, "weights": weights, "cluster": cluster,
                 **{f"groups[{i}]": g for i, g in enumerate(groups)},
                 **{f"covariates[{i}]": c for i, c in enumerate(covariates)}}
        roles = {k: c for k, c in roles.items() if c is not None}
        v.check_columns_exist(df, roles)
        for role, col in roles.items():
            if col in DERIVED and role not in ("treat", "cohort"):
                raise ColumnError(
                    f"column {col!r} (passed as {role}=) has the name of a column the panel "
                    f"derives ({', '.join(DERIVED)})", column=col,
                    hint=f"rename it first, e.g. df.rename(columns={{{col!r}: '{col}_'}})")

        keep = list(dict.fromkeys(roles.values()))
        data = df[keep].copy()
        if not data.index.is_unique:  # keep the caller's row labels in errors when we can
            data = data.reset_index(drop=True)
        log: list[LogEntry] = []

        v.check_no_missing(data, unit)
        data[time], axis = _time_axis(data, time)
        if time_axis is not None and not axis.calendar:
            axis = time_axis
        with _user_time_in_errors(axis, time, cohort):
            v.check_no_duplicates(data, unit, time)
            try:
                data = data.sort_values([unit, time], kind="stable")
            except TypeError:
                kinds = data[unit].map(lambda x: type(x).__name__)
                raise ColumnError(f"unit column {unit!r} mixes value types "
                                  f"({', '.join(sorted(kinds.unique()))})", column=unit,
                                  rows=data.loc[kinds != kinds.mode().iloc[0]],
                                  hint=f"make them one type, e.g. df[{unit!r}].astype(str)"
                                  ) from None
            v.check_several_periods(data, time)

            numeric = [outcome, *covariates]
            for col in numeric:
                data[col] = v.coerce_numeric(data, col)
            if interpolate:
                data, added = tf.add_missing_periods(data, unit, time, numeric)
                log.extend(added)
                log.extend(tf.interpolate(data, unit, time, numeric))
            for col in numeric:
                v.check_no_missing(data, col, hint="pass interpolate=True to fill interior gaps"
                                   if not interpolate else None)
                v.check_finite(data, col)
            if winsorize is not None:
                log.extend(tf.winsorize(data, numeric, winsorize))
            if weights is not None:
                v.check_weights(data, weights)
            for col in (*groups, *( [cluster] if cluster else [])):
                v.check_no_missing(data, col)
            for col in groups:
                v.check_constant_within_unit(data, unit, col, what="group")

            if treat is not None:
                first = _cohort_from_treat(data, unit, time, treat)
            elif cohort is not None:
                first = _cohort_from_column(data, unit, cohort, axis)
            else:
                first = _cohort_from_policy_lists(data, unit, policy_lists, start, axis)
                log.append(LogEntry("policy_lists", f"{len(first)} units listed in "
                                    f"{len(policy_lists)} batch(es); start={start}", len(first)))

            last = data[time].max()
            late = first[first > last]
            if len(late):  # first treated after the sample ends: untreated in every period
                first = first[first <= last]
                log.append(LogEntry(
                    "cohort_after_sample", f"{len(late)} unit(s) first treated after the last "
                    f"period {axis.name(last)} (cohorts "
                    f"{axis.names(sorted(set(map(int, late))))}) are never treated within the "
                    "sample and are coded as never-treated", len(late)))
                logger.info("%d unit(s) treated after the sample ends coded never-treated",
                            len(late))

            data[COHORT] = data[unit].map(first).astype("Int64")
            data[D] = (data[COHORT].notna() & (data[time] >= data[COHORT])).astype("int64")
            data[REL] = (data[time] - data[COHORT]).astype("Int64")
            data[NEVER] = data[COHORT].isna()
            source = (f"treat column {treat!r}" if treat is not None else
                      f"cohort column {cohort!r}" if cohort is not None else "policy_lists")
            _check_design(data, unit, time, source, axis)

        data["treated"] = data[D]
        data["cohort"] = data[COHORT]
        data["rel_time"] = data[REL]
        data["never_treated"] = data[NEVER]
        data = data.drop(columns=[D, COHORT, REL, NEVER]).reset_index(drop=True)
        return cls(frame=data, unit=unit, time=time, outcome=outcome, groups=groups,
                   covariates=covariates, weights=weights, cluster=cluster,
                   start=start if policy_lists is not None else "same_year",
                   log=tuple(log), time_axis=axis)

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
        """Treated cohorts (first treated periods, as period indices), sorted."""
        return sorted(int(c) for c in self.frame["cohort"].dropna().unique())

    def time_labels(self, values=None) -> pd.Series:
        """The user's labels (integers, Timestamps or Periods) of period indices: of
        ``values`` when given, else of the frame's time column (one per row).

        >>> df = pd.DataFrame({"u": ["a"] * 3 + ["b"] * 3, "t": ["2011Q1", "2011Q2",
        ...                    "2011Q3"] * 2, "y": [1.0, 2, 3, 4, 5, 6]})
        >>> p = Panel.from_frame(df.assign(d=[0, 1, 1, 0, 0, 0]), unit="u", time="t",
        ...                      outcome="y", treat="d")
        >>> [str(x) for x in p.time_labels(p.times)]
        ['2011Q1', '2011Q2', '2011Q3']
        >>> p.data["rel_time"].tolist()
        [-1, 0, 1, <NA>, <NA>, <NA>]
        """
        values = self.frame[self.time] if values is None else pd.Series(values)
        return self.time_axis.to_labels(values)

    @property
    def is_balanced(self) -> bool:
        return self.n_obs == len(self.units) * len(self.times)

    def missing_periods(self) -> pd.DataFrame:
        """Periods a unit lacks between its first and last observed period (periods of the
        panel's grid): the panel's unit and time columns, one row per gap; empty when every
        unit's rows are consecutive (as AR(1) errors need). ``Panel.from_frame(...,
        interpolate=True)`` adds and fills them.

        >>> df = pd.DataFrame({"u": ["a"] * 3 + ["b"] * 4, "t": [1, 3, 4, 1, 2, 3, 4],
        ...                    "y": [1.0, 2, 3, 4, 5, 6, 7]})
        >>> p = Panel.from_frame(df, unit="u", time="t", outcome="y",
        ...                      policy_lists={2: ["b"]})
        >>> p.missing_periods().to_dict("list")
        {'u': ['a'], 't': [2]}
        """
        return tf.missing_periods(self.frame, self.unit, self.time)

    def with_frame(self, frame: pd.DataFrame, note: LogEntry) -> Panel:
        """A new panel on a row subset or re-labelled frame of this one (internal use)."""
        return Panel(frame=frame.reset_index(drop=True), unit=self.unit, time=self.time,
                     outcome=self.outcome, groups=self.groups, covariates=self.covariates,
                     weights=self.weights, cluster=self.cluster, start=self.start,
                     log=self.log + (note,), time_axis=self.time_axis)

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
            f"({self.time_axis.name(self.times.min())}"
            f"{' to ' if self.time_axis.calendar else '-'}{self.time_axis.name(self.times.max())}"
            f"{', ' + self.time_axis.frequency if self.time_axis.calendar else ''}"
            f"), {self.n_obs} rows"
            f"{'' if self.is_balanced else ' (unbalanced)'}",
            f"outcome: {self.outcome}; treated units: {n_treated}; never treated: {n_units - n_treated}",
            "cohorts: " + ", ".join(f"{self.time_axis.name(c)} ({n})" for c, n in sizes.items()),
        ]
        if self.groups:
            lines.append(f"groups: {', '.join(self.groups)}")
        if self.covariates:
            lines.append(f"covariates: {', '.join(self.covariates)}")
        lines += [f"log: {e.step}: {e.detail}" for e in self.log]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.describe()


@contextmanager
def _user_time_in_errors(axis: TimeAxis, time: str, cohort: str | None):
    """Errors raised while building a panel on calendar time show the offending rows with
    the user's time labels, not the internal period indices."""
    try:
        yield
    except BayesDidError as err:
        rows = err.rows
        if not axis.calendar or rows is None or time not in rows.columns:
            raise
        rows = rows.copy()
        rows[time] = axis.to_labels(rows[time])
        if "cohort" in rows.columns and str(rows["cohort"].dtype) == "Int64" \
                and err.column != cohort:  # the derived cohort (period indices)
            rows["cohort"] = axis.to_labels(rows["cohort"])
        raise type(err)(err.message, column=err.column, rows=rows, hint=err.hint) from None


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


def _cohort_from_column(data: pd.DataFrame, unit: str, cohort: str,
                        axis: TimeAxis = INTEGER_AXIS) -> pd.Series:
    raw = data[cohort]
    if axis.calendar:  # dates / Periods / strings in the time column's terms
        values = period_indices(data, cohort, axis)
        work = pd.DataFrame({unit: data[unit], cohort: values})
        v.check_constant_within_unit(work, unit, cohort, what="cohort", dropna=False)
        return work.groupby(unit)[cohort].first().dropna().astype(int)
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


def _cohort_from_policy_lists(data: pd.DataFrame, unit: str, policy_lists: Mapping[int, Sequence],
                              start: str, axis: TimeAxis = INTEGER_AXIS) -> pd.Series:
    if not isinstance(policy_lists, Mapping) or not policy_lists:
        raise PolicyListError("policy_lists must be a non-empty mapping {listing_year: [units]}, "
                              f"got {type(policy_lists).__name__}", column=unit)
    offset = 1 if start == "next_year" else 0
    entries: list[tuple[int, object]] = []
    for year, members in policy_lists.items():
        if axis.calendar:
            try:
                year_num = axis.index_of(int(year) if isinstance(year, str) and
                                         year.strip().isdigit() else year,
                                         what="policy list key")
            except BayesDidError as err:
                raise PolicyListError(str(err).splitlines()[0], column=unit) from None
        else:
            try:
                year_num = float(year)
            except (TypeError, ValueError):
                year_num = np.nan
            if not np.isfinite(year_num) or year_num % 1 != 0 or isinstance(year, bool):
                raise PolicyListError(f"policy list key {year!r} is not a year (a whole "
                                      "period)", column=unit)
        if (isinstance(members, (str, bytes, Mapping)) or not isinstance(members, Iterable)):
            raise PolicyListError(f"policy list for {year!r} must be a list of {unit!r} values, "
                                  f"got {type(members).__name__}", column=unit,
                                  hint=f"write {{{year!r}: [{members!r}]}}"
                                  if isinstance(members, str) else None)
        entries.extend((int(year_num), member) for member in members)
    listed = pd.DataFrame(entries, columns=["batch", unit])
    twice = listed.loc[listed.duplicated(unit, keep=False)].sort_values([unit, "batch"],
                                                                        kind="stable")
    if len(twice):
        names = list(dict.fromkeys(twice[unit]))
        raise PolicyListError(
            f"{len(names)} unit(s) of column {unit!r} are listed more than once in policy_lists "
            f"({', '.join(map(repr, names[:5]))}{', ...' if len(names) > 5 else ''}); "
            "a unit joins in one batch only", column=unit, rows=twice,
            hint="keep each unit in the batch of its first listing")
    present = set(data[unit].unique())
    absent = listed.loc[~listed[unit].isin(present)]
    if len(absent):
        raise PolicyListError(
            f"{len(absent)} unit(s) in policy_lists are not in column {unit!r}",
            column=unit, rows=absent,
            hint="check spelling and type (e.g. 101 vs '101') and that the unit survived "
                 "sample filters")
    return pd.Series(listed["batch"].to_numpy() + offset, index=listed[unit].to_numpy(),
                     dtype="int64")


def _check_design(data: pd.DataFrame, unit: str, time: str, source: str,
                  axis: TimeAxis = INTEGER_AXIS) -> None:
    if not (data[D] == 1).any():
        raise TreatmentError(f"no treated observations: by {source}, every unit of column "
                             f"{unit!r} is untreated in every period of column {time!r}",
                             column=unit)
    first_seen = data.groupby(unit)[time].transform("min")
    no_pre = data.loc[data[COHORT].notna() & (data[COHORT] <= first_seen)]
    if len(no_pre):
        names = list(dict.fromkeys(no_pre[unit]))
        raise DesignError(
            f"{len(names)} treated unit(s) of column {unit!r} have no pre-treatment period "
            f"({', '.join(map(repr, names[:5]))}{', ...' if len(names) > 5 else ''}): "
            f"treated from their first observed {time!r}, so their effects are not identified",
            column=unit, rows=no_pre[[unit, time, COHORT]].rename(columns={COHORT: "cohort"}),
            hint="drop these units (always-treated) before building the panel")
    untreated_by_time = (data[D] == 0).groupby(data[time]).sum()
    empty = untreated_by_time[untreated_by_time == 0].index
    if len(empty):
        rows = data.loc[data[time].isin(empty), [unit, time, COHORT]]
        raise DesignError(
            f"no untreated comparison cells in period(s) {axis.names(empty)} of column "
            f"{time!r}: every observed unit is treated there, so no estimator can separate the "
            "effect from the period effect",
            column=time, rows=rows.rename(columns={COHORT: "cohort"}),
            hint="add never-treated units or end the sample before the last cohort is treated")
