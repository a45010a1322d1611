"""Data envelopment analysis: CCR/BCC, directional distance with undesirable outputs, SBM.

Every model is an envelopment-form linear programme per decision-making unit (DMU), solved
by HiGHS. The programmes of one reference technology differ only in a handful of
coefficients (the evaluated DMU's column and right-hand side), so the model is built once
and only those pieces change between DMUs (:class:`_LPFamily`); HiGHS keeps its basis
between solves (a hot start). This uses scipy's bundled HiGHS bindings
(``scipy.optimize._highspy``, shipped with scipy >= 1.15) and falls back to
:func:`scipy.optimize.linprog` (``method="highs"``) with a prebuilt sparse matrix when
those bindings are absent.

Models (``rts="crs"`` constant / ``"vrs"`` variable returns to scale):

* :func:`dea` -- radial CCR (crs) and BCC (vrs), input or output oriented (Charnes,
  Cooper & Rhodes 1978; Banker, Charnes & Cooper 1984); optional max-slack second stage.
* :func:`ddf` -- directional distance function with undesirable outputs (Chung, Färe &
  Grosskopf 1997): ``max beta`` s.t. ``X'l <= x - beta gx``, ``Y'l >= y + beta gy``,
  ``B'l = b - beta gb`` (weak disposability of the bad output); default direction
  ``g = (0, y, b)``. Efficiency ``1 / (1 + beta)``.
* :func:`sbm` -- slacks-based measure with undesirable outputs (Tone 2004; Cooper, Seiford
  & Tone 2007, sec. 13.7), linearised by the Charnes-Cooper transformation.
* :func:`super_sbm` -- super-efficiency SBM (Tone 2002) with undesirable outputs: SBM for
  inefficient DMUs, the super-efficiency ``delta >= 1`` for efficient ones.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"y": [1, 2, 3, 1, 2], "x1": [2, 2, 6, 3, 6], "x2": [5, 4, 6, 2, 2]})
>>> dea(df, inputs=["x1", "x2"], outputs=["y"]).efficiency.round(3).tolist()
[0.5, 1.0, 0.833, 0.714, 1.0]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import linprog
from tqdm.auto import tqdm

from ..errors import (
    BayesDidError,
    ColumnError,
    DesignError,
    InfeasibleError,
    MissingValueError,
)
from ..results import Result, check_interval, check_level, group_label, tidy_table

try:  # scipy's bundled HiGHS bindings: a model-modify API for hot-started batches
    from scipy.optimize._highspy import _core as _hcore

    _HIGHS_OK = all(hasattr(_hcore._Highs, a) for a in (
        "passModel", "changeCoeff", "changeRowBounds", "changeColCost", "changeColBounds", "run"))
except ImportError:  # pragma: no cover - depends on the scipy build
    _hcore, _HIGHS_OK = None, False

logger = logging.getLogger(__name__)

__all__ = ["DEAResult", "ddf", "dea", "lp_backend", "sbm", "super_sbm"]

_TOL = 1e-9


def lp_backend(backend: str = "auto") -> str:
    """The LP backend actually used: ``"highs"`` (hot-started batches) or ``"linprog"``.

    >>> lp_backend("linprog")
    'linprog'
    """
    if backend not in ("auto", "highs", "linprog"):
        raise BayesDidError(f"backend must be 'auto', 'highs' or 'linprog', got {backend!r}")
    if backend == "highs" and not _HIGHS_OK:
        raise BayesDidError("scipy's HiGHS bindings (scipy.optimize._highspy) are not available",
                            hint="use backend='linprog' or upgrade scipy (>= 1.15)")
    return "highs" if backend in ("auto", "highs") and _HIGHS_OK else "linprog"


# ---------------------------------------------------------------------------- LP engine
class _LPFamily:
    """``min c'z  s.t.  rl <= A z <= ru,  cl <= z <= cu`` for many DMUs that differ only in
    the coefficients at ``coef_pos``, the bounds of ``rows``, the costs of ``cost_cols`` and,
    optionally, one column fixed at zero (super-efficiency)."""

    def __init__(self, c, A, rl, ru, cl, cu, *, coef_pos, rows, cost_cols, backend="auto"):
        self.c = np.asarray(c, float)
        self.rl, self.ru = np.asarray(rl, float), np.asarray(ru, float)
        self.cl, self.cu = np.asarray(cl, float), np.asarray(cu, float)
        self.coef_pos = list(coef_pos)
        self.rows, self.cost_cols = np.asarray(rows, int), np.asarray(cost_cols, int)
        A = sp.coo_matrix(A)
        # placeholders give the varying coefficients a slot in the sparsity pattern
        pr = np.array([p[0] for p in self.coef_pos], int)
        pc = np.array([p[1] for p in self.coef_pos], int)
        keep = A.data != 0
        A = sp.coo_matrix((np.r_[A.data[keep], np.ones(len(pr))],
                           (np.r_[A.row[keep], pr], np.r_[A.col[keep], pc])), shape=A.shape)
        A.sum_duplicates()
        self.A = A.tocsc()
        self.A.sort_indices()
        self.slot = np.array([self.A.indptr[cc] + np.searchsorted(
            self.A.indices[self.A.indptr[cc]:self.A.indptr[cc + 1]], rr)
            for rr, cc in zip(pr, pc)], int)
        self.backend = lp_backend(backend)
        if self.backend == "highs":
            self._init_highs()

    def _init_highs(self) -> None:
        h = _hcore
        lp = h.HighsLp()
        n_row, n_col = self.A.shape
        lp.num_col_, lp.num_row_ = n_col, n_row
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n_col, n_row
        lp.a_matrix_.format_ = h.MatrixFormat.kColwise
        lp.col_cost_, lp.col_lower_, lp.col_upper_ = self.c, self.cl, self.cu
        lp.row_lower_, lp.row_upper_ = self.rl, self.ru
        lp.a_matrix_.start_ = self.A.indptr.astype(np.int32)
        lp.a_matrix_.index_ = self.A.indices.astype(np.int32)
        lp.a_matrix_.value_ = self.A.data.astype(float)
        self.highs = h._Highs()
        self.highs.setOptionValue("output_flag", False)
        self.highs.setOptionValue("presolve", "off")  # tiny LPs: presolve costs more than it saves
        if self.highs.passModel(lp) == h.HighsStatus.kError:  # pragma: no cover
            raise InfeasibleError("HiGHS rejected the DEA model", hint="check the data for NaN/inf")
        self._optimal = h.HighsModelStatus.kOptimal
        self._infeasible = (h.HighsModelStatus.kInfeasible,)
        self._unbounded = (h.HighsModelStatus.kUnbounded, h.HighsModelStatus.kUnboundedOrInfeasible)

    def solve_many(self, coef, rl, ru, cost, exclude=None, keep=None, progress=False,
                   desc="LPs"):
        """Solve one LP per row of the varying pieces. Returns (status, objective, z) with
        z the solution's ``keep`` columns (None when ``keep`` is None); status is 'optimal',
        'infeasible', 'unbounded' or 'error'."""
        K = coef.shape[0]
        status = np.empty(K, dtype=object)
        obj = np.full(K, np.nan)
        z = None if keep is None else np.full((K, len(keep)), np.nan)
        it = tqdm(range(K), desc=desc, disable=not progress, leave=False)
        solve = self._solve_highs if self.backend == "highs" else self._solve_linprog
        for k in it:
            ex = -1 if exclude is None else int(exclude[k])
            status[k], obj[k], zk = solve(coef[k], rl[k], ru[k], cost[k], ex)
            if z is not None and zk is not None:
                z[k] = zk[keep]
        return status, obj, z

    def _solve_highs(self, coef, rl, ru, cost, ex):
        h = self.highs
        for (r, c), v in zip(self.coef_pos, coef):
            h.changeCoeff(int(r), int(c), float(v))
        for r, lo, up in zip(self.rows, rl, ru):
            h.changeRowBounds(int(r), float(lo), float(up))
        for c, v in zip(self.cost_cols, cost):
            h.changeColCost(int(c), float(v))
        if ex >= 0:
            h.changeColBounds(ex, 0.0, 0.0)
        h.run()
        st = h.getModelStatus()
        if st == self._optimal:  # read before any model change resets the solution
            out = "optimal", h.getInfo().objective_function_value, np.asarray(
                h.getSolution().col_value)
        else:
            h.clearSolver()  # do not hot-start the next DMU from a failed basis
            out = ("infeasible" if st in self._infeasible else
                   "unbounded" if st in self._unbounded else "error"), np.nan, None
        if ex >= 0:
            h.changeColBounds(ex, float(self.cl[ex]), float(self.cu[ex]))
        return out

    def _solve_linprog(self, coef, rl, ru, cost, ex):
        A = self.A.copy()
        A.data[self.slot] = coef
        lo, up = self.rl.copy(), self.ru.copy()
        lo[self.rows], up[self.rows] = rl, ru
        c = self.c.copy()
        c[self.cost_cols] = cost
        cu = self.cu.copy()
        if ex >= 0:
            cu[ex] = 0.0
        A = A.tocsr()
        eq = lo == up
        ub = ~eq & np.isfinite(up)
        lb = ~eq & np.isfinite(lo)
        A_ub = sp.vstack([A[ub], -A[lb]]).tocsc()
        b_ub = np.r_[up[ub], -lo[lb]]
        res = linprog(c, A_ub=A_ub if A_ub.shape[0] else None, b_ub=b_ub if len(b_ub) else None,
                      A_eq=A[eq] if eq.any() else None, b_eq=up[eq] if eq.any() else None,
                      bounds=np.c_[self.cl, cu], method="highs")
        if res.status == 0:
            return "optimal", res.fun, res.x
        return {2: "infeasible", 3: "unbounded"}.get(res.status, "error"), np.nan, None


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


# ---------------------------------------------------------------------------- CCR / BCC
def dea(data: pd.DataFrame | None = None, *, inputs, outputs, rts: Literal["crs", "vrs"] = "crs",
        orientation: Literal["input", "output"] = "input", reference=None, dmu: str | None = None,
        slacks: bool = False, lambdas: bool = False, on_infeasible: str = "raise",
        backend: str = "auto", progress: bool = False) -> DEAResult:
    """Radial DEA: CCR (``rts="crs"``) or BCC (``rts="vrs"``), envelopment form.

    Input orientation: ``min theta`` s.t. ``X'l <= theta x_o``, ``Y'l >= y_o``; output
    orientation: ``max eta`` s.t. ``X'l <= x_o``, ``Y'l >= eta y_o``, efficiency ``1/eta``.
    ``slacks=True`` adds the second stage (max sum of slacks at the radial optimum).
    ``reference`` evaluates the DMUs of ``data`` against another technology (a frame with
    the same columns, or ``(X, Y)`` arrays). ``inputs``/``outputs`` are column names of
    ``data`` or, with ``data=None``, arrays (DMUs x variables).
    """
    _check_opts(rts, orientation, on_infeasible)
    ev = _prepare(data, inputs, outputs, None, dmu)
    rf = _reference(data, reference, inputs, outputs, None, dmu)
    (n, m), s = rf.X.shape, rf.Y.shape[1]
    A = np.vstack([np.c_[np.zeros(m), rf.X.T], np.c_[np.zeros(s), rf.Y.T]])
    if rts == "vrs":
        A = np.vstack([A, _vrs_row(n, 0)])
    R = A.shape[0]
    rl, ru = np.full(R, -np.inf), np.full(R, np.inf)
    if rts == "vrs":
        rl[-1] = ru[-1] = 1.0
    K = len(ev.names)
    if orientation == "input":  # rows: X'l - theta x <= 0 ; Y'l >= y
        c = np.r_[1.0, np.zeros(n)]
        pos = [(i, 0) for i in range(m)]
        coef = -ev.X
        rows = np.arange(m + s)
        vr_l = np.c_[np.full((K, m), -np.inf), ev.Y]
        vr_u = np.c_[np.zeros((K, m)), np.full((K, s), np.inf)]
    else:  # rows: X'l <= x ; Y'l - eta y >= 0
        c = np.r_[-1.0, np.zeros(n)]
        pos = [(m + r, 0) for r in range(s)]
        coef = -ev.Y
        rows = np.arange(m + s)
        vr_l = np.c_[np.full((K, m), -np.inf), np.zeros((K, s))]
        vr_u = np.c_[ev.X, np.full((K, s), np.inf)]
    fam = _LPFamily(c, A, rl, ru, np.r_[-np.inf, np.zeros(n)], np.full(n + 1, np.inf),
                    coef_pos=pos, rows=rows, cost_cols=[], backend=backend)
    st, obj, z = fam.solve_many(coef, vr_l, vr_u, np.zeros((K, 0)), progress=progress,
                                keep=np.arange(1, n + 1) if lambdas else None,
                                desc=f"DEA {rts}")
    obj = obj if orientation == "input" else 0.0 - obj
    eff = obj if orientation == "input" else 1.0 / obj
    model = f"dea_{'ccr' if rts == 'crs' else 'bcc'}_{orientation}"
    lam = z if lambdas else None
    slk = _radial_slacks(ev, rf, obj, orientation, rts, backend) if slacks else None
    return _finish(model, ev, st, obj, eff, on_infeasible, ref=rf, lambdas=lam, slacks=slk,
                   hint="a DMU outside a VRS reference technology can be infeasible; "
                        "use rts='crs' or on_infeasible='nan'")


def _radial_slacks(ev, rf, obj, orientation, rts, backend):
    """Second stage: max sum of slacks with the radial score fixed (Cooper et al. 2007, 3.3)."""
    (n, m), s = rf.X.shape, rf.Y.shape[1]
    A = np.block([[rf.X.T, np.eye(m), np.zeros((m, s))], [rf.Y.T, np.zeros((s, m)), -np.eye(s)]])
    if rts == "vrs":
        A = np.vstack([A, np.r_[np.ones(n), np.zeros(m + s)]])
    R = A.shape[0]
    rl, ru = np.ones(R), np.ones(R)
    c = np.r_[np.zeros(n), -np.ones(m + s)]
    th = np.where(np.isfinite(obj), obj, 0.0)[:, None]
    rhs = np.c_[ev.X * th, ev.Y] if orientation == "input" else np.c_[ev.X, ev.Y * th]
    fam = _LPFamily(c, A, rl, ru, np.zeros(n + m + s), np.full(n + m + s, np.inf),
                    coef_pos=[], rows=np.arange(m + s), cost_cols=[], backend=backend)
    K = len(ev.names)
    _, _, z = fam.solve_many(np.zeros((K, 0)), rhs, rhs, np.zeros((K, 0)),
                             keep=np.arange(n, n + m + s), desc="slacks")
    cols = [f"s_{c}" for c in ev.cols["inputs"]] + [f"s_{c}" for c in ev.cols["outputs"]]
    return pd.DataFrame(z, index=ev.names, columns=cols)


# ---------------------------------------------------------------------------- DDF
def _direction(direction, ev):
    """Per-DMU direction vectors (gx, gy, gb) from ('zero'|'own'|array) triples."""
    spec = direction if direction is not None else ("zero", "own", "own")
    if len(spec) != 3:
        raise BayesDidError("direction takes three parts (gx, gy, gb), e.g. ('zero', 'own', 'own')")
    out = []
    for part, M in zip(spec, (ev.X, ev.Y, ev.B)):
        if isinstance(part, str):
            if part not in ("zero", "own"):
                raise BayesDidError(f"direction parts are 'zero', 'own' or arrays; got {part!r}")
            out.append(np.zeros_like(M) if part == "zero" else M.copy())
        else:
            out.append(np.broadcast_to(np.asarray(part, float), M.shape).copy())
    return out


def _ddf_lp(rf, ev, gx, gy, gb, rts, bad_disposability, backend, progress, lambdas=False):
    (n, m), s, k = rf.X.shape, rf.Y.shape[1], rf.B.shape[1]
    # rows: gx b + X'l <= x ;  gy b - Y'l <= -y ;  gb b + B'l = b (weak) or <= b (strong)
    A = np.vstack([np.c_[np.zeros(m), rf.X.T], np.c_[np.zeros(s), -rf.Y.T],
                   np.c_[np.zeros(k), rf.B.T]])
    if rts == "vrs":
        A = np.vstack([A, _vrs_row(n, 0)])
    R = A.shape[0]
    rl, ru = np.full(R, -np.inf), np.full(R, np.inf)
    if rts == "vrs":
        rl[-1] = ru[-1] = 1.0
    K = ev.X.shape[0]
    pos = [(i, 0) for i in range(m + s + k)]
    coef = np.c_[gx, gy, gb]
    weak = bad_disposability == "weak"
    vr_l = np.c_[np.full((K, m + s), -np.inf), ev.B if weak else np.full((K, k), -np.inf)]
    vr_u = np.c_[ev.X, -ev.Y, ev.B]
    fam = _LPFamily(np.r_[-1.0, np.zeros(n)], A, rl, ru, np.r_[-np.inf, np.zeros(n)],
                    np.full(n + 1, np.inf), coef_pos=pos, rows=np.arange(m + s + k),
                    cost_cols=[], backend=backend)
    st, obj, z = fam.solve_many(coef, vr_l, vr_u, np.zeros((K, 0)),
                                keep=np.arange(1, n + 1) if lambdas else None,
                                progress=progress, desc="DDF")
    return st, 0.0 - obj, z


def ddf(data: pd.DataFrame | None = None, *, inputs, outputs, bads=(), direction=None,
        rts: Literal["crs", "vrs"] = "crs", bad_disposability: Literal["weak", "strong"] = "weak",
        reference=None, dmu: str | None = None, lambdas: bool = False,
        on_infeasible: str = "raise", backend: str = "auto", progress: bool = False) -> DEAResult:
    """Directional distance function with undesirable outputs (Chung, Färe & Grosskopf 1997).

    ``max beta`` s.t. ``X'l <= x_o - beta gx``, ``Y'l >= y_o + beta gy``,
    ``B'l = b_o - beta gb`` (``bad_disposability="weak"``; ``"strong"`` uses ``<=``),
    ``l >= 0`` (+ ``sum(l) = 1`` under ``rts="vrs"``). ``direction=(gx, gy, gb)``, each
    ``"zero"``, ``"own"`` (the DMU's own values) or an array; default ``("zero", "own",
    "own")``, i.e. ``g = (0, y, -b)``. ``objective`` is beta (0 on the frontier; negative
    for a DMU above a reference technology it does not belong to); ``efficiency`` is
    ``1/(1+beta)``.

    >>> import numpy as np
    >>> r = ddf(inputs=np.array([[1.0], [1.0]]), outputs=np.array([[2.0], [1.0]]),
    ...         bads=np.array([[1.0], [1.0]]))
    >>> r.table["objective"].round(4).tolist()
    [0.0, 0.3333]
    """
    _check_opts(rts, None, on_infeasible)
    if bad_disposability not in ("weak", "strong"):
        raise BayesDidError("bad_disposability must be 'weak' or 'strong', "
                            f"got {bad_disposability!r}")
    ev = _prepare(data, inputs, outputs, bads, dmu)
    rf = _reference(data, reference, inputs, outputs, bads, dmu)
    gx, gy, gb = _direction(direction, ev)
    zero = ~((np.c_[gx, gy, gb] != 0).any(axis=1))
    if zero.any():
        raise DesignError(f"{int(zero.sum())} DMU(s) have a zero direction vector (beta would be "
                          "unbounded)", rows=ev.frame.iloc[np.flatnonzero(zero)]
                          if len(ev.frame) == len(zero) else None,
                          hint="these DMUs have zero good and bad outputs; drop them or pass a "
                               "fixed direction array")
    st, beta, z = _ddf_lp(rf, ev, gx, gy, gb, rts, bad_disposability, backend, progress,
                          lambdas=lambdas)
    return _finish(f"ddf_{rts}", ev, st, beta, 1.0 / (1.0 + beta), on_infeasible, ref=rf,
                   lambdas=z if lambdas else None,
                   hint="mixed-period or VRS directional distances can be infeasible; "
                        "pass on_infeasible='nan' to get NaN instead")


# ---------------------------------------------------------------------------- SBM
def _sbm_pieces(ev, rf, rts, super_eff):
    """Charnes-Cooper linearised (super-)SBM with undesirables; variables
    [t, L (n), S- (m), Sg (s), Sb (k)]."""
    (n, m), s, k = rf.X.shape, rf.Y.shape[1], rf.B.shape[1]
    q = s + k
    N = 1 + n + m + s + k
    sign = -1.0 if super_eff else 1.0
    blocks = [np.eye(1, N)]  # normalisation row: t -/+ mean(S+/y) = 1
    blocks.append(np.c_[np.zeros((m, 1)), -rf.X.T, -sign * np.eye(m), np.zeros((m, s + k))])
    blocks.append(np.c_[np.zeros((s, 1)), -rf.Y.T, np.zeros((s, m)), sign * np.eye(s),
                        np.zeros((s, k))])
    blocks.append(np.c_[np.zeros((k, 1)), -rf.B.T, np.zeros((k, m + s)), -sign * np.eye(k)])
    if super_eff:  # ybar = t y - Sg >= 0
        blocks.append(np.c_[np.zeros((s, 1 + n + m)), -np.eye(s), np.zeros((s, k))])
    if rts == "vrs":
        blocks.append(_vrs_row(n, m + s + k, coef_t=-1.0)[None])
    A = np.vstack(blocks)
    R = A.shape[0]
    rl, ru = np.zeros(R), np.zeros(R)
    rl[0] = ru[0] = 1.0
    if super_eff:  # xbar >= X'l, ybar <= Y'l, bbar >= B'l, ybar >= 0
        ru[1:1 + m] = np.inf
        rl[1 + m:1 + m + s] = -np.inf
        ru[1 + m + s:1 + m + s + k] = np.inf
        ru[1 + m + s + k:1 + m + 2 * s + k] = np.inf
    t_rows = list(range(1, 1 + m + s + k)) + (
        list(range(1 + m + s + k, 1 + m + 2 * s + k)) if super_eff else [])
    pos = [(r, 0) for r in t_rows] + [(0, 1 + n + m + j) for j in range(q)]
    with np.errstate(divide="ignore"):
        inv = np.where(np.c_[ev.Y, ev.B] > 0, 1.0 / np.c_[ev.Y, ev.B], 0.0) / q
    t_col = np.c_[ev.X, ev.Y, ev.B] if not super_eff else np.c_[ev.X, ev.Y, ev.B, ev.Y]
    coef = np.c_[t_col, sign * inv]
    cost = -sign / (m * ev.X)  # SBM: t - mean(S-/x); super: t + mean(S-/x)
    c = np.r_[1.0, np.zeros(N - 1)]
    fam = {"c": c, "A": A, "rl": rl, "ru": ru, "cl": np.zeros(N), "cu": np.full(N, np.inf),
           "coef_pos": pos, "rows": [], "cost_cols": np.arange(1 + n, 1 + n + m)}
    return fam, coef, cost, (n, m, s, k)


def _sbm_run(ev, rf, rts, super_eff, backend, progress, exclude=None, lambdas=False):
    """Solve the (super-)SBM programmes; z holds t, the lambdas (if asked) and the slacks,
    all still multiplied by t."""
    spec, coef, cost, dims = _sbm_pieces(ev, rf, rts, super_eff)
    n, N = dims[0], len(spec["c"])
    keep = np.r_[0, np.arange(1, 1 + n) if lambdas else np.array([], int), np.arange(1 + n, N)]
    fam = _LPFamily(**spec, backend=backend)
    K = coef.shape[0]
    st, obj, z = fam.solve_many(coef, np.zeros((K, 0)), np.zeros((K, 0)), cost, exclude=exclude,
                                keep=keep.astype(int), progress=progress,
                                desc="super-SBM" if super_eff else "SBM")
    return st, obj, z, dims


def _sbm_result(model, ev, rf, st, obj, z, dims, lambdas, on_infeasible, hint):
    n = dims[0] if lambdas else 0
    t = z[:, [0]]
    lam = z[:, 1:1 + n] / t
    slk = pd.DataFrame(z[:, 1 + n:] / t, index=ev.names,
                       columns=[f"s_{c}" for c in ev.cols["inputs"] + ev.cols["outputs"]
                                + ev.cols["bads"]])
    return _finish(model, ev, st, obj, obj, on_infeasible, ref=rf,
                   lambdas=lam if lambdas else None, slacks=slk, hint=hint)


def sbm(data: pd.DataFrame | None = None, *, inputs, outputs, bads=(),
        rts: Literal["crs", "vrs"] = "crs", reference=None, dmu: str | None = None,
        lambdas: bool = False, on_infeasible: str = "raise", backend: str = "auto",
        progress: bool = False) -> DEAResult:
    """Slacks-based measure with undesirable outputs (Tone 2004):

    ``rho = min (1 - mean(s-/x_o)) / (1 + (sum(sg/y_o) + sum(sb/b_o)) / (s1 + s2))``
    s.t. ``x_o = X'l + s-``, ``y_o = Y'l - sg``, ``b_o = B'l + sb``. Inputs and desirable
    outputs must be strictly positive; a zero bad output drops its term. ``slacks`` are
    always returned (``s_<column>``).

    >>> import numpy as np
    >>> r = sbm(inputs=np.array([[2.0], [4.0]]), outputs=np.array([[2.0], [2.0]]))
    >>> r.efficiency.round(3).tolist()
    [1.0, 0.5]
    """
    _check_opts(rts, None, on_infeasible)
    ev = _prepare(data, inputs, outputs, bads, dmu, strict_positive=True)
    rf = _reference(data, reference, inputs, outputs, bads, dmu, strict_positive=True)
    st, obj, z, dims = _sbm_run(ev, rf, rts, False, backend, progress, lambdas=lambdas)
    return _sbm_result(f"sbm_{rts}", ev, rf, st, obj, z, dims, lambdas, on_infeasible,
                       hint="a DMU outside a VRS reference technology can be infeasible")


def super_sbm(data: pd.DataFrame | None = None, *, inputs, outputs, bads=(),
              rts: Literal["crs", "vrs"] = "crs", dmu: str | None = None, tol: float = 1e-7,
              lambdas: bool = False, backend: str = "auto", progress: bool = False) -> DEAResult:
    """Super-efficiency SBM with undesirable outputs (Tone 2002, extended as in Tone 2004).

    SBM-inefficient DMUs keep their SBM score ``rho < 1``; each SBM-efficient DMU gets
    ``delta = min (1 + mean(s-/x_o)) / (1 - (sum(sg/y_o) + sum(sb/b_o)) / (s1 + s2)) >= 1``,
    the slack distance to the technology spanned by the *other* DMUs (``xbar = x_o + s-
    >= X'l``, ``0 <= ybar = y_o - sg <= Y'l``, ``bbar = b_o + sb >= B'l``). Under
    ``rts="vrs"`` that programme can be infeasible, which is expected in the literature: such
    DMUs get NaN and a logged warning (count in ``info['n_infeasible']``).

    >>> import numpy as np
    >>> X, Y = np.array([[2.0], [4.0], [3.0]]), np.array([[2.0], [2.0], [1.0]])
    >>> r = super_sbm(inputs=X, outputs=Y)
    >>> r.efficiency.round(3).tolist()
    [2.0, 0.5, 0.333]
    """
    _check_opts(rts)
    ev = _prepare(data, inputs, outputs, bads, dmu, strict_positive=True)
    st, obj, z, _ = _sbm_run(ev, ev, rts, False, backend, progress, lambdas=lambdas)
    if (st != "optimal").any():  # pragma: no cover - SBM on its own technology is feasible
        raise InfeasibleError("super-SBM: the first-stage SBM failed",
                              rows=ev.frame.iloc[np.flatnonzero(st != "optimal")])
    eff_idx = np.flatnonzero(obj >= 1 - tol)
    n = len(ev.names)
    score = obj.copy()
    status = st.copy()
    lam = z[:, 1:1 + n] / z[:, [0]] if lambdas else None
    if len(eff_idx):
        sub = _Data(ev.X[eff_idx], ev.Y[eff_idx], ev.B[eff_idx], ev.names[eff_idx], ev.cols,
                    ev.frame.iloc[eff_idx])
        st2, obj2, z2, _ = _sbm_run(sub, ev, rts, True, backend, progress,
                                    exclude=1 + eff_idx, lambdas=lambdas)
        score[eff_idx], status[eff_idx] = obj2, st2
        if lambdas:
            lam[eff_idx] = z2[:, 1:1 + n] / z2[:, [0]]
    bad = np.flatnonzero(status != "optimal")
    if len(bad):
        logger.warning("super_sbm (%s): %d efficient DMU(s) have an infeasible super-efficiency "
                       "programme (expected under VRS); reported as NaN: %s", rts, len(bad),
                       list(ev.names[bad][:10]))
    table = pd.DataFrame({"efficiency": score, "objective": score,
                          "status": status.astype(str)}, index=ev.names)
    return DEAResult(table, f"super_sbm_{rts}", lam, None, ev.names,
                     {"n_ref": n - 1, "n_infeasible": len(bad), "n_efficient": len(eff_idx)})


def _ddf_arrays(Xr, Yr, Br, Xe, Ye, Be, *, direction=None, rts="crs", bad_disposability="weak",
                backend="auto", progress=False) -> tuple[np.ndarray, np.ndarray]:
    """beta and status of DMUs (Xe, Ye, Be) against technology (Xr, Yr, Br); arrays
    DMUs x variables, already validated. Used by the Malmquist-Luenberger index."""
    names = pd.RangeIndex(Xe.shape[0])
    ev = _Data(Xe, Ye, Be, names, {}, pd.DataFrame(index=names))
    rf = _Data(Xr, Yr, Br, pd.RangeIndex(Xr.shape[0]), {}, pd.DataFrame())
    gx, gy, gb = _direction(direction, ev)
    st, beta, _ = _ddf_lp(rf, ev, gx, gy, gb, rts, bad_disposability, backend, progress)
    return np.where(st == "optimal", beta, np.nan), st

