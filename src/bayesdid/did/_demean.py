"""Frisch-Waugh-Lovell for many TWFE refits: partial the two-way fixed effects and the
covariates out once, then get the coefficient of any treatment column cheaply.

For ``y ~ d + X | unit + time`` (optionally weighted) the coefficient of ``d`` is
``<M d, M y>_W / <M d, M d>_W``, where ``M`` residualises on the unit and time dummies and
on the (two-way demeaned) covariates. :func:`fwl_design` computes ``M y`` and an
orthonormal basis of the demeaned covariates once; :meth:`FWLDesign.coef` then needs only
a two-way demeaning of a batch of treatment columns (closed form on balanced unweighted
panels, pyfixest's alternating projections otherwise) and a few dot products.

>>> import numpy as np
>>> unit, time = np.repeat(np.arange(4), 3), np.tile(np.arange(3), 4)
>>> d = ((unit < 2) & (time == 2)).astype(float)
>>> y = 0.5 * unit + 0.1 * time + 2.0 * d
>>> design = fwl_design(y, unit, time)
>>> design.coef(d[:, None]).round(8).tolist()
[2.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from ..errors import EstimationError

__all__ = ["FWLDesign", "demean_twoway", "fwl_design"]

_TOL = 1e-12  # alternating-projection tolerance: far below pyfixest's default 1e-6


def _indicator(codes: np.ndarray, n_levels: int) -> sp.csr_matrix:
    """Sparse (levels x rows) 0/1 matrix: row sums by level in one sparse product."""
    n = codes.size
    return sp.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(n_levels, n))


@dataclass(frozen=True, eq=False)
class _TwoWay:
    """The fixed-effect structure: integer codes and whether the closed form applies."""

    unit: np.ndarray
    time: np.ndarray
    n_units: int
    n_times: int
    weights: np.ndarray | None
    closed_form: bool
    flist: np.ndarray | None = None  # (rows x terms) FE codes other than unit + time

    @classmethod
    def build(cls, unit, time, weights, flist=None) -> _TwoWay:
        unit = np.asarray(unit, dtype=np.int64)
        time = np.asarray(time, dtype=np.int64)
        n_units, n_times = int(unit.max()) + 1, int(time.max()) + 1
        cells = np.unique(unit * n_times + time).size
        balanced = cells == unit.size == n_units * n_times
        equal_w = weights is None or np.allclose(weights, weights[0])
        if flist is not None:  # any other FE set: alternating projections
            flist = np.asarray(flist, dtype=np.uint64).reshape(unit.size, -1)
            if flist.shape[1] == 0:  # no fixed effects: a constant
                flist = np.zeros((unit.size, 1), np.uint64)
        return cls(unit, time, n_units, n_times, None if weights is None else
                   np.asarray(weights, float), balanced and equal_w and flist is None, flist)

    def demean(self, v: np.ndarray) -> np.ndarray:
        """Residuals of each column of ``v`` (rows x k) on unit and time dummies."""
        v = np.asarray(v, dtype=np.float64)
        if self.closed_form:
            # balanced, equal weights: unit and time projections commute, M = I - Pu - Pt + P1
            by_unit = _indicator(self.unit, self.n_units) @ v / self.n_times
            by_time = _indicator(self.time, self.n_times) @ v / self.n_units
            return v - by_unit[self.unit] - by_time[self.time] + v.mean(axis=0)
        # pyfixest imported quietly (see _fixest), on first need
        from ._fixest import pf

        w = np.ones(v.shape[0]) if self.weights is None else self.weights
        flist = (np.c_[self.unit, self.time].astype(np.uint64) if self.flist is None
                 else self.flist)
        out, ok = pf.estimation.demean(np.ascontiguousarray(v), flist, w, tol=_TOL,
                                       maxiter=100_000)
        if not ok:
            raise EstimationError("two-way demeaning (alternating projections) did not "
                                  "converge", hint="check for a very sparse or disconnected "
                                  "unit-time structure")
        return out


@dataclass(frozen=True, eq=False)
class FWLDesign:
    """``y`` and covariates residualised once on the two-way fixed effects.

    Attributes
    ----------
    y_res : ``sqrt(w) * M y`` (residualised on fixed effects and covariates).
    basis : orthonormal basis (rows x r) of ``sqrt(w) *`` the demeaned covariates, with
        collinear or fixed-effect-absorbed covariates dropped (pivoted QR).
    """

    fe: _TwoWay
    y_res: np.ndarray
    basis: np.ndarray
    sqrt_w: np.ndarray | None

    @property
    def n_obs(self) -> int:
        return self.y_res.size

    def residualise(self, d: np.ndarray) -> np.ndarray:
        """``sqrt(w) * M d`` for each column of ``d`` (rows x B)."""
        d = np.asarray(d, dtype=np.float64)
        if d.ndim == 1:
            d = d[:, None]
        dt = self.fe.demean(d)
        if self.sqrt_w is not None:
            dt = dt * self.sqrt_w[:, None]
        if self.basis.shape[1]:
            dt = dt - self.basis @ (self.basis.T @ dt)
        return dt

    def coef(self, d: np.ndarray) -> np.ndarray:
        """TWFE coefficient of each column of ``d`` (NaN where ``d`` is absorbed by the
        fixed effects and covariates)."""
        d = np.asarray(d, dtype=np.float64)
        d = d[:, None] if d.ndim == 1 else d
        dr = self.residualise(d)
        num = dr.T @ self.y_res
        den = np.einsum("ij,ij->j", dr, dr)
        scale = np.einsum("ij,ij->j", d, d)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = num / den
        out[~(den > 1e-10 * np.maximum(scale, 1.0))] = np.nan
        return out


def demean_twoway(v: np.ndarray, unit: np.ndarray, time: np.ndarray,
                  weights: np.ndarray | None = None) -> np.ndarray:
    """Residuals of each column of ``v`` on unit and time dummies (weighted if given).

    >>> import numpy as np
    >>> v = np.arange(6.0)[:, None]
    >>> demean_twoway(v, np.array([0, 0, 0, 1, 1, 1]), np.array([0, 1, 2] * 2)).ravel().tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    """
    v = np.asarray(v, dtype=np.float64)
    return _TwoWay.build(unit, time, weights).demean(v if v.ndim == 2 else v[:, None])


def fwl_design(y: np.ndarray, unit: np.ndarray, time: np.ndarray,
               covariates: np.ndarray | None = None,
               weights: np.ndarray | None = None, flist: np.ndarray | None = None
               ) -> FWLDesign:
    """Partial the fixed effects and covariates out of ``y`` once (see module docstring).

    Parameters
    ----------
    y : outcome (rows,). unit, time : integer codes 0..n-1 (rows,).
    covariates : (rows, k) or None. weights : non-negative (rows,) or None.
    flist : (rows, terms) integer codes of another FE set replacing unit + time (e.g.
        unit and province x year; zero columns for none, i.e. a constant).
    """
    fe = _TwoWay.build(unit, time, weights, flist)
    y = np.asarray(y, dtype=np.float64)
    k = 0 if covariates is None else np.asarray(covariates).reshape(y.size, -1).shape[1]
    stacked = y[:, None] if not k else np.column_stack([y, np.asarray(covariates, float)
                                                        .reshape(y.size, -1)])
    res = fe.demean(stacked)  # y and covariates demeaned together, in one call
    sqrt_w = None if weights is None else np.sqrt(np.asarray(weights, float))
    if sqrt_w is not None:
        res = res * sqrt_w[:, None]
    y_t, x_t = res[:, 0], res[:, 1:]
    if k:
        q, r, _ = scipy.linalg.qr(x_t, mode="economic", pivoting=True)
        diag = np.abs(np.diag(r))
        rank = int((diag > 1e-9 * max(diag.max(initial=0.0), 1.0)).sum())
        basis = q[:, :rank]
        y_t = y_t - basis @ (basis.T @ y_t)
    else:
        basis = np.empty((y.size, 0))
    return FWLDesign(fe=fe, y_res=y_t, basis=basis, sqrt_w=sqrt_w)
