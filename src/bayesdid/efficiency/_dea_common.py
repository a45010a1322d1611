"""What every DEA model shares: input checks, the DMU arrays, the result and its assembly."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import (
    BayesDidError,
    ColumnError,
    DesignError,
    InfeasibleError,
    MissingValueError,
)
from ..results import Result, check_interval, check_level, group_label, tidy_table

logger = logging.getLogger("bayesdid.efficiency.dea")

__all__ = ["DEAResult"]

# ---------------------------------------------------------------------------- data checks
def _as_matrix(data, cols, role):
    if cols is None or (not isinstance(cols, np.ndarray) and len(cols) == 0):
        return None, []
    if isinstance(data, pd.DataFrame):
        if isinstance(cols, str):
            raise ColumnError(f"{role}= takes a list of column names, not a string",
                              column=cols, hint=f"write {role}=[{cols!r}]")
        missing = [c for c in cols if c not in data.columns]
        if missing:
            raise ColumnError(f"unknown column {missing[0]!r} (passed in {role}=)",
                              column=missing[0], hint=f"available: {list(data.columns)[:30]}")
        block = data[list(cols)]
        for c in cols:
            if not pd.api.types.is_numeric_dtype(block[c]):
                raise ColumnError(f"column {c!r} ({role}) must be numeric", column=c,
                                  rows=data.loc[pd.to_numeric(block[c], errors="coerce").isna()])
        return block.to_numpy(float), list(map(str, cols))
    arr = np.asarray(cols, dtype=float)
    arr = arr[:, None] if arr.ndim == 1 else arr
    if arr.ndim != 2:
        raise BayesDidError(f"{role} must be a 2-D array (DMUs x variables), got shape {arr.shape}")
    return arr, [f"{role.removesuffix('s')}{i + 1}" for i in range(arr.shape[1])]


@dataclass(frozen=True)
class _Data:
    X: np.ndarray
    Y: np.ndarray
    B: np.ndarray
    names: pd.Index
    cols: dict
    frame: pd.DataFrame


def _prepare(data, inputs, outputs, bads, dmu=None, *, strict_positive=False,
             what="data") -> _Data:
    """Arrays (DMUs x variables) from a DataFrame + column lists, or from arrays; validated."""
    if data is not None and not isinstance(data, pd.DataFrame):
        raise BayesDidError(f"data must be a pandas DataFrame or None, got {type(data).__name__}",
                            hint="pass arrays as inputs=, outputs= with data=None")
    X, xc = _as_matrix(data, inputs, "inputs")
    Y, yc = _as_matrix(data, outputs, "outputs")
    B, bc = _as_matrix(data, bads, "bads")
    if X is None or Y is None:
        raise BayesDidError("DEA needs at least one input and one (desirable) output",
                            hint="pass inputs=[...] and outputs=[...]")
    n = X.shape[0]
    B = np.zeros((n, 0)) if B is None else B
    if Y.shape[0] != n or B.shape[0] != n:
        raise BayesDidError(f"inputs, outputs and bads must have the same number of DMUs "
                            f"({n}, {Y.shape[0]}, {B.shape[0]})")
    if n == 0:
        raise BayesDidError(f"the {what} has no DMUs")
    if isinstance(data, pd.DataFrame):
        names = pd.Index(data[dmu] if dmu is not None else data.index)
        frame = data
    else:
        names = pd.RangeIndex(n)
        frame = pd.DataFrame(np.c_[X, Y, B], columns=xc + yc + bc)
    show = frame.set_axis(range(n)) if not isinstance(data, pd.DataFrame) else frame
    for mat, cols, role in ((X, xc, "input"), (Y, yc, "output"), (B, bc, "bad output")):
        for j, col in enumerate(cols):
            v = mat[:, j]
            if np.isnan(v).any():
                raise MissingValueError(f"{role} column {col!r} has missing values", column=col,
                                        rows=show.iloc[np.flatnonzero(np.isnan(v))],
                                        hint="drop or impute these DMUs first")
            if np.isinf(v).any():
                raise ColumnError(f"{role} column {col!r} has infinite values", column=col,
                                  rows=show.iloc[np.flatnonzero(np.isinf(v))])
            need_pos = strict_positive and role != "bad output"
            bad = v <= 0 if need_pos else v < 0
            if bad.any():
                raise ColumnError(
                    f"{role} column {col!r} has {int(bad.sum())} "
                    f"{'non-positive' if need_pos else 'negative'} value(s); "
                    f"{'SBM needs strictly positive' if need_pos else 'DEA needs non-negative'} "
                    f"{role}s",
                    column=col, rows=show.iloc[np.flatnonzero(bad)],
                    hint="SBM divides by each input and output: replace zeros by a small positive "
                         "value or drop the DMUs" if need_pos else
                         "DEA needs non-negative data; translate or drop the variable")
            if role != "input" and not (v > 0).any():
                raise ColumnError(f"{role} column {col!r} is zero for every DMU", column=col,
                                  hint="drop the variable: it carries no information")
    zero_in = ~(X > 0).any(axis=1)
    if zero_in.any():
        raise DesignError(f"{int(zero_in.sum())} DMU(s) use no input at all (all inputs zero); "
                          "they would produce from nothing", column=xc[0],
                          rows=show.iloc[np.flatnonzero(zero_in)],
                          hint="check the data for these DMUs or drop them")
    return _Data(X, Y, B, names, {"inputs": xc, "outputs": yc, "bads": bc}, frame)


def _reference(data, reference, inputs, outputs, bads, dmu, **kw) -> _Data:
    if reference is None:
        return _prepare(data, inputs, outputs, bads, dmu, **kw, what="data")
    if isinstance(reference, pd.DataFrame):
        return _prepare(reference, inputs, outputs, bads, None, **kw, what="reference")
    parts = list(reference) + [None] * (3 - len(reference))
    return _prepare(None, parts[0], parts[1], parts[2], None, **kw, what="reference")


# ---------------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False, repr=False)
class DEAResult(Result):
    """Scores of one DEA model, one row per evaluated DMU.

    A :class:`~bayesdid.results.Result`, not an EffectResult: a table of efficiency scores
    (one per DMU, from linear programmes; no standard errors), not of treatment effects.

    ``table`` columns: ``efficiency`` (CCR/BCC: theta or 1/eta; DDF: 1/(1+beta); SBM: rho;
    super-SBM: rho or delta), ``objective`` (theta, eta, beta, rho or delta) and ``status``.
    ``lambdas`` (DMUs x reference DMUs) and ``slacks`` are present when asked for.
    """

    table: pd.DataFrame
    model: str
    lambdas: np.ndarray | None = None
    slacks: pd.DataFrame | None = None
    reference_names: pd.Index | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return self.model

    @property
    def efficiency(self) -> pd.Series:
        return self.table["efficiency"].copy()

    def peers(self, tol: float = 1e-8) -> pd.Series:
        """Reference DMUs with a positive weight, per evaluated DMU."""
        if self.lambdas is None:
            raise BayesDidError("lambdas were not kept", hint="call with lambdas=True")
        names = np.asarray(self.reference_names)
        return pd.Series([list(names[np.flatnonzero(row > tol)]) for row in self.lambdas],
                         index=self.table.index, name="peers")

    def effects(self, level: float | None = None, interval: str | None = None) -> pd.DataFrame:
        """The tidy effects table: one ``efficiency`` row per DMU (no standard errors, so
        no intervals at any ``level``)."""
        check_level(level)
        check_interval(self, interval, ("confidence",))
        rows = [{"estimand": "efficiency", "group": group_label(unit=u), "estimate": e,
                 "se_or_sd": np.nan, "lower": np.nan, "upper": np.nan,
                 "level": np.nan if level is None else level,
                 "interval": "confidence", "method": self.model,
                 "n_obs": self.info.get("n_ref")}
                for u, e in self.table["efficiency"].items()]
        return tidy_table(rows)

    def summary(self) -> pd.DataFrame:
        """One row: the model, the number of DMUs, of efficient ones (score 1 within 1e-6)
        and of failed LPs, and the mean, min, median and max score."""
        eff = self.table["efficiency"]
        return pd.DataFrame([{
            "model": self.model, "n_dmu": len(eff),
            "n_efficient": int((eff - 1).abs().le(1e-6).sum()),
            "n_infeasible": int((self.table["status"] != "optimal").sum()),
            "mean": eff.mean(), "min": eff.min(), "median": eff.median(), "max": eff.max()}])

    def to_frame(self) -> pd.DataFrame:
        """The scores (:attr:`table`, indexed by DMU; a copy)."""
        return self.table.copy()

    def _describe(self) -> str:
        return f"model={self.model!r} dmus={len(self.table)}"

    def plot(self, ax=None, **kwargs):
        """The scores, sorted, one point per DMU (at most ``max_points``, evenly spaced over
        the ranking; see :func:`bayesdid.report.sfa_plots.plot_efficiency_intervals`)."""
        from ..report.sfa_plots import plot_efficiency_intervals

        return plot_efficiency_intervals(self, ax=ax, **kwargs)


def _finish(model, data, status, obj, eff, on_infeasible, hint, lambdas=None, slacks=None,
            ref=None):
    bad = np.flatnonzero(status != "optimal")
    if len(bad) and on_infeasible == "raise":
        shown = data.frame.iloc[bad] if len(data.frame) == len(status) else None
        raise InfeasibleError(
            f"{model}: the LP of {len(bad)} DMU(s) is {status[bad[0]]} "
            f"(first: {data.names[bad[0]]!r})", rows=shown, hint=hint)
    if len(bad):
        logger.warning("%s: %d of %d LP(s) infeasible or unbounded; reported as NaN",
                       model, len(bad), len(status))
    table = pd.DataFrame({"efficiency": eff, "objective": obj, "status": status.astype(str)},
                         index=data.names)
    return DEAResult(table, model, lambdas, slacks, None if ref is None else ref.names,
                     {"n_ref": 0 if ref is None else len(ref.names), "n_infeasible": len(bad)})


def _check_opts(rts, orientation=None, on_infeasible="raise"):
    if rts not in ("crs", "vrs"):
        raise BayesDidError(f"rts must be 'crs' or 'vrs', got {rts!r}")
    if orientation is not None and orientation not in ("input", "output"):
        raise BayesDidError(f"orientation must be 'input' or 'output', got {orientation!r}")
    if on_infeasible not in ("raise", "nan"):
        raise BayesDidError(f"on_infeasible must be 'raise' or 'nan', got {on_infeasible!r}")


def _vrs_row(n, extra_cols, first=1, coef_t=None):
    row = np.zeros(first + n + extra_cols)
    row[first:first + n] = 1.0
    if coef_t is not None:
        row[0] = coef_t
    return row
