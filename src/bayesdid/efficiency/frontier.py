"""The data of a stochastic frontier: validated outputs, inputs and panel index as arrays.

Shared by the estimators (:mod:`.sfa`, :mod:`.bayes_sfa`) and the frontier plots, which
must not import the estimators that draw with them.

>>> df = pd.DataFrame({"q": [1.0, 2.0, 4.0], "k": [1.0, 2.0, 3.0]})
>>> frontier_design(df, y="q", x=["k"]).names
('const', 'ln_k')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import (
    BayesDidError,
    ColumnError,
    DuplicateRowsError,
    MissingValueError,
    NonFiniteValueError,
    NonPositiveValueError,
)

__all__ = ["FRONTIERS", "MODELS", "FrontierDesign", "frontier_design"]

FRONTIERS = ("production", "cost")
MODELS = ("cross_section", "bc92", "time_invariant")


@dataclass(frozen=True, eq=False)
class FrontierDesign:
    """Arrays of a frontier: ``y = X b + v - sign_u * u`` with ``sign_u`` +1 for a
    production frontier and -1 for cost frontiers and output distance functions."""

    y: np.ndarray
    X: np.ndarray
    names: tuple[str, ...]
    sign: int
    index: pd.DataFrame          # one row per observation: unit, time labels
    unit_idx: np.ndarray
    time_values: np.ndarray
    n_units: int
    kind: str                    # production | cost | distance


def _as_list(value, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    items = list(value)
    if not all(isinstance(c, str) for c in items):
        raise ColumnError(f"{what} takes column names, got {value!r}")
    return items


def frontier_design(data: pd.DataFrame, *, y: str | Sequence[str], x: Sequence[str],
                    undesirable: Sequence[str] = (), frontier: str = "production",
                    log: bool = True, unit: str | None = None,
                    time: str | None = None) -> FrontierDesign:
    """Validate ``data`` and build the frontier's arrays (the caller's frame is not
    modified).

    >>> df = pd.DataFrame({"q": [1.0, 2.0, 4.0], "k": [1.0, 2.0, 3.0]})
    >>> d = frontier_design(df, y="q", x=["k"])
    >>> d.names, d.sign
    (('const', 'ln_k'), 1)
    """
    if not isinstance(data, pd.DataFrame):
        raise BayesDidError(f"expected a pandas DataFrame, got {type(data).__name__}")
    if frontier not in FRONTIERS:
        raise BayesDidError(f"frontier must be one of {FRONTIERS}, got {frontier!r}")
    outputs, inputs = _as_list(y, "y"), _as_list(x, "x")
    bads = _as_list(undesirable, "undesirable")
    if not outputs:
        raise ColumnError("y= needs at least one output (or cost) column")
    distance = len(outputs) > 1 or bool(bads)
    if distance and frontier == "cost":
        raise BayesDidError("several outputs or undesirable outputs define an output "
                            "distance function, a production-side frontier; use "
                            "frontier='production'")
    ids = [c for c in (unit, time) if c is not None]
    needed = list(dict.fromkeys(outputs + inputs + bads + ids))
    absent = [c for c in needed if c not in data.columns]
    if absent:
        raise ColumnError(f"column {absent[0]!r} is not in the data; available: "
                          f"{list(data.columns)[:20]}", column=absent[0])
    frame = data[needed].copy()
    numeric = list(dict.fromkeys(outputs + inputs + bads))
    for col in numeric:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = frame.loc[values.isna() & frame[col].notna()]
        if len(bad):
            raise ColumnError(f"column {col!r} must be numeric", column=col, rows=bad)
        frame[col] = values.astype(float)
    for col in needed:
        miss = frame.loc[frame[col].isna()]
        if len(miss):
            raise MissingValueError(f"column {col!r} has {len(miss)} missing value(s)",
                                    column=col, rows=miss,
                                    hint="drop or impute these rows before fitting")
    for col in numeric:
        inf = frame.loc[~np.isfinite(frame[col])]
        if len(inf):
            raise NonFiniteValueError(f"column {col!r} has non-finite values", column=col,
                                      rows=inf)
        if log:
            nonpos = frame.loc[frame[col] <= 0]
            if len(nonpos):
                raise NonPositiveValueError(
                    f"column {col!r} has {len(nonpos)} zero or negative value(s), but the "
                    "frontier takes logs" + (" (the output is all zeros)"
                                             if (frame[col] == 0).all() else ""),
                    column=col, rows=nonpos,
                    hint="drop these units, replace zeros by a documented small positive "
                         "value, or pass log=False if the columns are already in logs")
    tr = np.log if log else (lambda a: a)
    pre = "ln_" if log else ""
    cols, names = [], []
    for c in inputs:
        cols.append(tr(frame[c].to_numpy()))
        names.append(pre + c)
    if distance:
        y1 = tr(frame[outputs[0]].to_numpy())
        for c in outputs[1:]:
            cols.append(tr(frame[c].to_numpy()) - y1)
            names.append(f"{pre}{c}/{outputs[0]}")
        for c in bads:
            cols.append(tr(frame[c].to_numpy()))
            names.append(pre + c)
        yv, sign, kind = -y1, -1, "distance"
    else:
        yv = tr(frame[outputs[0]].to_numpy())
        sign, kind = (1, "production") if frontier == "production" else (-1, "cost")
    X = np.column_stack([np.ones(len(frame))] + cols)
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise EstimationError("the frontier's regressors are collinear (a column is constant "
                              "or a combination of others)", column=inputs[0] if inputs else None,
                              hint="drop redundant inputs; under log=True an input that is "
                                   "proportional to another is collinear too")
    if time is not None and unit is None:
        raise BayesDidError("time= needs unit= as well")
    if unit is not None:
        if time is not None:
            dup = frame.loc[frame.duplicated([unit, time], keep=False)]
            if len(dup):
                raise DuplicateRowsError(f"({unit!r}, {time!r}) pairs appear more than once",
                                         column=unit, rows=dup)
        codes, uniques = pd.factorize(frame[unit])
        index = pd.DataFrame({unit: frame[unit].to_numpy()})
        if time is not None:
            index[time] = frame[time].to_numpy()
        tv = (pd.to_numeric(frame[time]).to_numpy(float) if time is not None
              else np.zeros(len(frame)))
    else:
        codes, uniques = np.arange(len(frame)), np.arange(len(frame))
        index = pd.DataFrame({"obs": np.arange(len(frame))})
        tv = np.zeros(len(frame))
    return FrontierDesign(y=np.asarray(yv, float), X=X, names=("const", *names),
                          sign=sign, index=index, unit_idx=np.asarray(codes),
                          time_values=tv, n_units=len(uniques), kind=kind)
