"""The panel's time axis: integer periods, or calendar time at yearly, quarterly or monthly
frequency mapped to consecutive integer period indices.

Every estimator works on integers (``time - cohort`` counts periods; a gap of one period
is a gap of one). :func:`time_axis` reads the user's time column and returns the integer
index of every row together with a :class:`TimeAxis` that maps indices back to the user's
labels for tables and plots:

- integer time: the index is the value itself;
- yearly datetimes or ``Period[Y]``: the index is the calendar year;
- quarterly or monthly datetimes or Periods: ``year * 4 + quarter - 1`` or
  ``year * 12 + month - 1``, so consecutive periods differ by one.

Datetimes are assigned the coarsest of yearly, quarterly, monthly at which every distinct
date names its own period, all at the same place in it (period start, period end or the
same month and day within each period); dates that fit none of them raise
:class:`~bayesdid.errors.TimeColumnError` showing the offending rows. Strings are read as
numbers, ISO dates (``2011-03-01``), months (``2011-03``) or quarters (``2011Q1``).

>>> import pandas as pd
>>> df = pd.DataFrame({"month": pd.to_datetime(["2011-01-01", "2011-02-01", "2011-03-01"])})
>>> index, axis = time_axis(df, "month")
>>> axis.freq, [axis.name(i) for i in index]
('M', ['2011-01', '2011-02', '2011-03'])
>>> int(index.iloc[1] - index.iloc[0])
1
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import ColumnError, TimeColumnError

__all__ = ["TimeAxis", "INTEGER_AXIS", "time_axis", "period_indices"]

_FREQS = ("Y", "Q", "M")
_FREQ_WORD = {"Y": "yearly", "Q": "quarterly", "M": "monthly"}
# index = pandas period ordinal + periods from year 0 to 1970: the calendar year for yearly
# data, year * 4 + quarter - 1 and year * 12 + month - 1 otherwise; positive, never 0 (a
# never-treated marker of cohort columns), consecutive periods one apart
_OFFSET = {"Y": 1970, "Q": 1970 * 4, "M": 1970 * 12}


@dataclass(frozen=True)
class TimeAxis:
    """How integer period indices map to the user's time labels.

    ``kind`` is ``"integer"``, ``"datetime"`` or ``"period"``; ``freq`` is ``"Y"``, ``"Q"``
    or ``"M"`` for calendar time (``None`` for integers); ``labels`` maps each observed
    index to the user's own value (a ``Timestamp`` or ``Period``).
    """

    kind: str = "integer"
    freq: str | None = None
    period_freq: Any = None  # the pandas frequency the Periods carry (e.g. Q-DEC, Q-MAR)
    labels: Mapping[int, Any] = field(default_factory=dict)  # a dict: panels pickle

    @property
    def calendar(self) -> bool:
        return self.kind != "integer"

    @property
    def frequency(self) -> str:
        """``"yearly"``, ``"quarterly"`` or ``"monthly"`` (``"integer"`` for integer time)."""
        return _FREQ_WORD.get(self.freq, "integer")

    def period(self, index: int) -> pd.Period:
        ordinal = int(index) - _OFFSET[self.freq]
        return pd.PeriodIndex.from_ordinals([ordinal], freq=self.period_freq)[0]

    def label(self, index: Any) -> Any:
        """The user's label of one period index (missing stays missing)."""
        if not self.calendar or index is None or pd.isna(index):
            return index
        index = int(index)
        if index in self.labels:
            return self.labels[index]
        period = self.period(index)
        return period.start_time if self.kind == "datetime" else period

    def name(self, index: Any) -> Any:
        """A short name for group labels and messages: the integer itself for integer time,
        else the period as text (``2011``, ``2011Q1``, ``2011-03``)."""
        if not self.calendar or index is None or pd.isna(index):
            return int(index) if isinstance(index, (int, np.integer, float, np.floating)) \
                and not pd.isna(index) and float(index).is_integer() else index
        return str(self.period(int(index)))

    def names(self, indices) -> list:
        return [self.name(i) for i in indices]

    def to_labels(self, values: pd.Series) -> pd.Series:
        """A column of indices as the user's labels (a new Series)."""
        if not self.calendar:
            return values.copy()
        codes, distinct = pd.factorize(values)  # label each distinct index once
        labels = [self.label(x) for x in distinct] + [pd.NaT]  # code -1 (missing) -> NaT
        if self.kind == "period":
            typed = pd.PeriodIndex(labels, freq=self.period_freq)
        else:
            typed = pd.DatetimeIndex(labels)
        return pd.Series(typed.take(codes), index=values.index, name=values.name)

    def index_of(self, value: Any, *, what: str = "value") -> int:
        """The period index of one label: an integer (integer or yearly time), a date, a
        ``Period`` or a string such as ``"2011-03"``."""
        if isinstance(value, (bool, np.bool_)):
            raise TimeColumnError(f"{what} {value!r} is not a period")
        if isinstance(value, (int, np.integer, float, np.floating)) and not isinstance(
                value, (bool, np.bool_)):
            if not np.isfinite(value) or float(value) % 1 != 0:
                raise TimeColumnError(f"{what} {value!r} is not a whole period")
            if self.calendar and self.freq != "Y":
                raise TimeColumnError(
                    f"{what} {value!r} is a number but time is {_FREQ_WORD[self.freq]}",
                    hint="give it as a date or period, e.g. '2011-03' or pd.Period('2011Q1')")
            return int(value)
        if not self.calendar:
            raise TimeColumnError(f"{what} {value!r} is not an integer period")
        if isinstance(value, pd.Period):  # pandas would map a quarter to its last month
            code = _freq_code(value.freq)
            if code is not None and code != self.freq:
                raise TimeColumnError(f"{what} {value} is a {_FREQ_WORD[code]} period but "
                                      f"time is {_FREQ_WORD[self.freq]}")
            value = value.start_time if code is None else value  # days, weeks: as dates
        try:
            period = pd.Period(value, freq=self.period_freq)
        except (TypeError, ValueError) as err:
            raise TimeColumnError(f"{what} {value!r} cannot be read as a "
                                  f"{_FREQ_WORD[self.freq]} period ({err})") from None
        return int(period.ordinal) + _OFFSET[self.freq]

    def to_indices(self, value: Any) -> Any:
        """Period arguments given in the user's labels (a label, a ``(start, end)`` tuple,
        a list of labels, or nested: ``[(a, b), [c, d]]``) as period indices; unchanged
        for integer time."""
        if not self.calendar or value is None:
            return value
        if isinstance(value, tuple):
            return tuple(self.to_indices(v) for v in value)
        if isinstance(value, (list, set, range, np.ndarray, pd.Index)):
            return [self.to_indices(v) for v in value]
        return self.index_of(value, what="period")


INTEGER_AXIS = TimeAxis()


def _freq_code(freq) -> str | None:
    offsets = pd.tseries.offsets
    for code, kind in (("Y", offsets.YearEnd), ("Q", offsets.QuarterEnd),
                       ("M", offsets.MonthEnd)):
        if isinstance(freq, kind):
            return code
    return None


def _anchor_key(dates: pd.DatetimeIndex, periods: pd.PeriodIndex) -> np.ndarray:
    """Where each date sits in its period: months from the period start, day, time of day;
    dates on their period's last day share the key ``"end"``."""
    start = periods.start_time
    months = (dates.year - start.year) * 12 + (dates.month - start.month)
    keys = np.array([f"{m}|{d}" for m, d in zip(months, dates.day)], dtype=object)
    last_day = dates.normalize() == periods.end_time.normalize()
    if last_day.all():
        keys[:] = "end"
    tod = (dates - dates.normalize()).astype("int64")
    return np.array([f"{k}|{t}" for k, t in zip(keys, tod)], dtype=object)


def _fit_dates(dates: pd.DatetimeIndex) -> tuple[str | None, np.ndarray]:
    """The coarsest frequency at which the distinct ``dates`` fit, and (when none fits) a
    mask of the distinct dates at fault at monthly frequency)."""
    for freq in _FREQS:
        periods = dates.to_period(freq)
        if periods.is_unique and len(set(_anchor_key(dates, periods))) == 1:
            return freq, np.zeros(len(dates), bool)
    # at monthly frequency two distinct dates of one month differ in their day, so the
    # dates at fault are those placed elsewhere in their month than the most common place
    keys = _anchor_key(dates, dates.to_period("M"))
    common = pd.Series(keys).mode().iloc[0]
    return None, keys != common


def _parse_strings(raw: pd.Series) -> pd.Series | None:
    """Strings as Periods (``2011Q1``, ``2011-03``) or datetimes (ISO dates); ``None`` when
    they are not all of one of these forms."""
    text = raw.astype(str).str.strip()
    for pattern, freq in ((r"^\d{4}\s*-?\s*[Qq][1-4]$", "Q"), (r"^\d{4}-\d{1,2}$", "M")):
        if text.str.match(pattern).all():
            return pd.Series(pd.PeriodIndex(text.str.replace(r"\s|-(?=[Qq])", "", regex=True)
                                             .str.upper(), freq=freq), index=raw.index)
    if text.str.match(r"^\d{4}-\d{1,2}-\d{1,2}([ T].*)?$").all():
        try:
            return pd.Series(pd.to_datetime(text, format="ISO8601"), index=raw.index)
        except (TypeError, ValueError):
            return None
    return None


def time_axis(df: pd.DataFrame, col: str) -> tuple[pd.Series, TimeAxis]:
    """The integer period index of every row of ``df[col]`` and the axis mapping it back.

    Raises :class:`~bayesdid.errors.TimeColumnError` for missing values, non-whole numbers,
    Periods of another frequency (daily, weekly...) and dates that fit no frequency.
    """
    raw = df[col]
    missing = df.loc[raw.isna()]
    if len(missing):
        raise TimeColumnError(f"time column {col!r} has {len(missing)} missing value(s)",
                              column=col, rows=missing)
    dtype = raw.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise TimeColumnError(
            f"time column {col!r} must hold periods (integers such as years, dates or "
            f"pandas Periods), got dtype {dtype}", column=col, rows=df.head())
    if not (pd.api.types.is_numeric_dtype(dtype) or isinstance(dtype, pd.PeriodDtype)
            or pd.api.types.is_datetime64_any_dtype(dtype)):
        raw = _as_time_values(raw)
        if raw is None:
            values = pd.to_numeric(df[col].astype(object), errors="coerce")
            bad = df.loc[values.isna()]
            raise TimeColumnError(
                f"time column {col!r} must hold periods: integers (such as years), dates, "
                f"pandas Periods or strings like '2011', '2011Q1', '2011-03', '2011-03-01'; "
                f"{len(bad)} value(s) are none of these", column=col, rows=bad)
        dtype = raw.dtype
    if isinstance(dtype, pd.PeriodDtype):
        return _from_periods(df, col, raw)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return _from_datetimes(df, col, raw)
    values = raw.astype(float)
    bad = df.loc[~np.isfinite(values) | (values % 1 != 0)]
    if len(bad):
        raise TimeColumnError(f"time column {col!r} must hold whole, finite periods",
                              column=col, rows=bad)
    return values.astype("int64"), INTEGER_AXIS


def _as_time_values(raw: pd.Series) -> pd.Series | None:
    """An object/string column (no missing values) as numbers, Periods or datetimes, or
    ``None``. Each distinct value is converted once."""
    codes, distinct = pd.factorize(raw)
    converted = _convert_distinct(pd.Series(np.asarray(distinct, dtype=object)))
    if converted is None:
        return None
    return pd.Series(converted.array.take(codes), index=raw.index)


def _convert_distinct(items: pd.Series) -> pd.Series | None:
    values = pd.to_numeric(items, errors="coerce")
    if values.notna().all():
        return values.astype(float)
    objs = items.tolist()
    if all(isinstance(x, pd.Period) for x in objs):
        if len({x.freqstr for x in objs}) == 1:
            return pd.Series(pd.PeriodIndex(objs))
        return None
    if all(isinstance(x, (pd.Timestamp, np.datetime64)) or hasattr(x, "isoformat")
           for x in objs):
        try:
            return pd.Series(pd.to_datetime(objs))
        except (TypeError, ValueError):
            return None
    if all(isinstance(x, str) for x in objs):
        return _parse_strings(items)
    return None


def _from_periods(df: pd.DataFrame, col: str, raw: pd.Series) -> tuple[pd.Series, TimeAxis]:
    freq = _freq_code(raw.dtype.freq)
    if freq is None:
        raise TimeColumnError(
            f"time column {col!r} holds Periods of frequency {raw.dtype.freq.freqstr}; "
            "bayesdid handles yearly, quarterly or monthly time", column=col, rows=df.head(),
            hint=f"aggregate to months first, e.g. df[{col!r}].dt.asfreq('M')")
    index = pd.Series(raw.array.asi8 + _OFFSET[freq], index=raw.index, dtype="int64")
    first = ~index.duplicated()
    labels = dict(zip(index[first].tolist(), raw[first].tolist()))
    return index, TimeAxis("period", freq, raw.dtype.freq, labels)


def _from_datetimes(df: pd.DataFrame, col: str, raw: pd.Series) -> tuple[pd.Series, TimeAxis]:
    if getattr(raw.dtype, "tz", None) is not None:
        raw = raw.dt.tz_localize(None)
    distinct = pd.DatetimeIndex(raw.unique()).sort_values()
    freq, at_fault = _fit_dates(distinct)
    if freq is None:
        bad = df.loc[raw.isin(distinct[at_fault])]
        raise TimeColumnError(
            f"time column {col!r} holds dates that fit no yearly, quarterly or monthly "
            f"frequency: {int(at_fault.sum())} distinct date(s) share a month with another "
            "date or sit elsewhere in their month than the others", column=col,
            rows=bad.sort_values(col, kind="stable") if col in bad else bad,
            hint=f"aggregate to one date per period first, or convert to Periods: "
                 f"df[{col!r}].dt.to_period('M')")
    periods = pd.PeriodIndex(raw.dt.to_period(freq))
    index = pd.Series(periods.asi8 + _OFFSET[freq], index=raw.index, dtype="int64")
    first = ~index.duplicated()
    labels = dict(zip(index[first].tolist(), raw[first].tolist()))
    return index, TimeAxis("datetime", freq, periods.freq, labels)


def period_indices(df: pd.DataFrame, col: str, axis: TimeAxis) -> pd.Series:
    """Period indices of a column of treatment timing (first treated period, given in the
    time column's terms); never-treated markers (:func:`is_never_marker`) become NaN.

    Integer (and, for yearly time, year) numbers, dates (the period holding the date),
    Periods and strings such as ``"2011-03"`` are read, each distinct value once. Raises
    :class:`~bayesdid.errors.ColumnError` showing the rows that are none of these.
    """
    codes, distinct = pd.factorize(df[col])  # missing values get code -1 (never treated)
    index = np.full(len(distinct) + 1, np.nan)
    failed = np.zeros(len(distinct) + 1, dtype=bool)
    never = is_never_marker(pd.Series(np.asarray(distinct, dtype=object))).to_numpy()
    for i, value in enumerate(distinct):
        if never[i]:
            continue
        try:
            index[i] = axis.index_of(value, what=f"{col!r} value")
        except TimeColumnError:
            failed[i] = True
    bad = failed[codes]
    if bad.any():
        what = ("whole periods" if not axis.calendar else
                f"{_FREQ_WORD[axis.freq]} dates or periods (like the time column)"
                + (" or years" if axis.freq == "Y" else ""))
        raise ColumnError(f"cohort column {col!r} must hold {what}; {int(bad.sum())} value(s) "
                          "do not", column=col, rows=df.loc[bad])
    return pd.Series(index[codes], index=df.index, dtype=float)


def is_never_marker(raw: pd.Series) -> pd.Series:
    """Never-treated markers of a cohort column: missing (NaN, NaT, None), 0 and inf."""
    def one(x) -> bool:
        if x is None or (not isinstance(x, str) and pd.isna(x)):
            return True
        if isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool):
            return bool(x == 0 or np.isinf(x))
        return False
    return raw.map(one).astype(bool)

