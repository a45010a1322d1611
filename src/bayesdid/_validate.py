"""Input checks shared by Panel and the estimators: each raises a typed error naming the
column and showing the offending rows."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import (
    ColumnError,
    DuplicateRowsError,
    EmptyPanelError,
    MissingValueError,
    NonFiniteValueError,
    TimeColumnError,
    WeightsError,
)


def check_nonempty(df: pd.DataFrame) -> None:
    if len(df) == 0:
        raise EmptyPanelError("the frame has no rows", hint="check the filters applied before")


def check_columns_exist(df: pd.DataFrame, columns: Sequence[str] | Mapping[str, str]) -> None:
    """Every named column exists exactly once. ``columns`` may map argument names to
    columns (``{"outcome": "y"}``) so that the message says which argument is wrong."""
    items = columns.items() if isinstance(columns, Mapping) else ((None, c) for c in columns)
    for role, col in items:
        where = f" (passed as {role}=)" if role else ""
        if not isinstance(col, str) and col not in df.columns:
            raise ColumnError(f"column names must be strings, got {col!r}{where}", column=str(col))
        if col not in df.columns:
            names = list(map(str, df.columns))
            close = [c for c in names if c.lower() == str(col).lower()]
            close = close or difflib.get_close_matches(str(col), names, n=1, cutoff=0.75)
            hint = f"did you mean {close[0]!r}?" if close else (
                f"available columns: {', '.join(names[:30])}{', ...' if len(names) > 30 else ''}")
            raise ColumnError(f"unknown column {col!r}{where}", column=col, hint=hint)
        if len(df.columns.get_indexer_for([col])) > 1:
            raise ColumnError(f"column {col!r}{where} appears more than once in the frame",
                              column=col, hint="rename or drop the duplicate columns")


def check_no_missing(df: pd.DataFrame, col: str, hint: str | None = None) -> None:
    bad = df.loc[df[col].isna()]
    if len(bad):
        raise MissingValueError(f"column {col!r} has {len(bad)} missing value(s)",
                                column=col, rows=bad, hint=hint)


def coerce_time(df: pd.DataFrame, col: str) -> pd.Series:
    """Integer period indices of a time column: integers as they are, yearly / quarterly /
    monthly dates or Periods as consecutive period indices (see :mod:`bayesdid._time`)."""
    from ._time import time_axis

    return time_axis(df, col)[0]


def check_no_duplicates(df: pd.DataFrame, unit: str, time: str) -> None:
    dup = df.duplicated([unit, time], keep=False)
    if dup.any():
        raise DuplicateRowsError(
            f"{int(dup.sum())} rows share a ({unit!r}, {time!r}) pair; each unit needs exactly "
            "one row per period",
            column=unit, rows=df.loc[dup].sort_values([unit, time], kind="stable"),
            hint=f"aggregate or drop them, e.g. df.drop_duplicates([{unit!r}, {time!r}])")


def check_several_periods(df: pd.DataFrame, time: str) -> None:
    if df[time].nunique() < 2:
        raise TimeColumnError(
            f"time column {time!r} has a single period ({df[time].iloc[0]}); "
            "a difference-in-differences needs at least two", column=time, rows=df.head())


def coerce_numeric(df: pd.DataFrame, col: str) -> pd.Series:
    raw = df[col]
    if pd.api.types.is_bool_dtype(raw):
        return raw.astype(float)
    if pd.api.types.is_numeric_dtype(raw):
        return raw.astype(float)
    values = pd.to_numeric(raw, errors="coerce")
    bad = df.loc[values.isna() & raw.notna()]
    if len(bad):
        raise ColumnError(f"column {col!r} must be numeric; {len(bad)} value(s) cannot be read "
                          "as numbers", column=col, rows=bad)
    return values.astype(float)


def check_finite(df: pd.DataFrame, col: str) -> None:
    bad = df.loc[np.isinf(df[col].to_numpy(dtype=float))]
    if len(bad):
        raise NonFiniteValueError(f"column {col!r} has {len(bad)} infinite value(s)",
                                  column=col, rows=bad)


def check_weights(df: pd.DataFrame, col: str) -> None:
    values = pd.to_numeric(df[col], errors="coerce")
    bad = df.loc[values.isna() | ~np.isfinite(values.fillna(0)) | (values < 0)]
    if len(bad):
        raise WeightsError(f"weights column {col!r} must be finite and non-negative "
                           f"({len(bad)} bad row(s))", column=col, rows=bad)
    if not (values > 0).any():
        raise WeightsError(f"weights column {col!r} is zero everywhere", column=col)
    df[col] = values.astype(float)


def check_constant_within_unit(df: pd.DataFrame, unit: str, col: str, *, what: str,
                               dropna: bool = True) -> None:
    n_distinct = df.groupby(unit, sort=False)[col].nunique(dropna=dropna)
    if not dropna:
        has_na = df[col].isna().groupby(df[unit], sort=False).agg(["any", "all"])
        mixed = has_na["any"] & ~has_na["all"]
        n_distinct = n_distinct + mixed.astype(int)
    varying = n_distinct[n_distinct > 1].index
    if len(varying):
        raise ColumnError(f"{what} column {col!r} varies within {len(varying)} unit(s); "
                          "it must be constant per unit", column=col,
                          rows=df.loc[df[unit].isin(varying), [unit, col]])
