"""Batches of envelopment-form linear programmes that differ in a few coefficients, on HiGHS.

The programmes of one DEA reference technology differ only in the evaluated DMU's column and
right-hand side, so the model is built once and only those pieces change between DMUs; HiGHS
keeps its basis between solves (a hot start). This uses scipy's bundled HiGHS bindings
(``scipy.optimize._highspy``, shipped with scipy >= 1.15) and falls back to
:func:`scipy.optimize.linprog` (``method="highs"``) with a prebuilt sparse matrix.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog
from tqdm.auto import tqdm

from ..errors import BayesDidError, InfeasibleError

try:  # scipy's bundled HiGHS bindings: a model-modify API for hot-started batches
    from scipy.optimize._highspy import _core as _hcore

    _HIGHS_OK = all(hasattr(_hcore._Highs, a) for a in (
        "passModel", "changeCoeff", "changeRowBounds", "changeColCost", "changeColBounds", "run"))
except ImportError:  # pragma: no cover - depends on the scipy build
    _hcore, _HIGHS_OK = None, False

__all__ = ["lp_backend"]

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
