"""Interactive fixed effects counterfactual estimator (Bai 2009; gsynth, Xu 2017).

Untreated outcomes follow ``Y_it(0) = mu + alpha_i + xi_t + lambda_i' f_t + e_it`` with
``r`` latent factors. The counterfactual ``Y(0)`` of every treated cell is imputed and the
effects are ``Y - Y(0) hat``, averaged over treated cells (overall ATT), per treated unit and
per event time. Two fitting schemes, as gsynth's ``EM`` option:

* ``em=False`` (gsynth's default): the factors and period effects come from the
  never-treated units alone (two-way demeaning and a rank-``r`` SVD of their complete
  matrix); each treated unit's intercept and loadings are then a least-squares fit on its
  own pre-treatment periods, ``Y_it - xi_t ~ 1 + f_t``.
* ``em=True`` (Gobillon & Magnac 2016; fect's IFE): the EM algorithm over every untreated
  cell, treated units' pre-periods and not-yet-treated cells included -- alternately fill
  the treated cells with the current fit and refit fixed effects + rank-``r`` SVD.

``r=None`` picks the number of factors by gsynth's cross-validation: each pre-treatment
period of the treated units is held out in turn, predicted from a fit without it, and the
``r`` in ``0..r_max`` with the smallest mean squared prediction error wins (with
``em=False`` the held-out predictions are the exact leave-one-out residuals
``e / (1 - h)`` of each unit's loading regression).

Uncertainty: Xu (2017)'s parametric bootstrap (Algorithm 2, gsynth's
``inference="parametric"``; see :func:`bayesdid.synthetic.factor_panel.parametric_bootstrap`)
with ``r`` held at its chosen value; intervals are ``estimate +/- z * sd`` of the bootstrap
replications. Covariates are not modelled. Hand-written numerics: no maintained Python
package implements gsynth (the SVDs are NumPy's).

Examples
--------
>>> from bayesdid import Panel
>>> from bayesdid.datasets import load, info
>>> panel = Panel.from_frame(load("prop99"), **info("prop99")["panel_kwargs"])
>>> [round(ife(panel, r=r, se=None).estimate, 1) for r in (0, 1)]  # r=0 is DID
[-27.3, -13.9]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DesignError
from ..panel import Panel
from .factor_panel import FactorResult, assemble, factor_matrix, parametric_bootstrap

__all__ = ["ife"]


def _low_rank(R: np.ndarray, r: int) -> np.ndarray:
    if r == 0:
        return np.zeros_like(R)
    u, s, vt = np.linalg.svd(R, full_matrices=False)
    return (u[:, :r] * s[:r]) @ vt[:r]


def _factors(C: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Period effects (incl. the grand mean) and the (T, r) factors of a complete matrix."""
    xi = C.mean(axis=0)
    R = C - xi - (C.mean(axis=1) - C.mean())[:, None]
    if r == 0:
        return xi, np.zeros((C.shape[1], 0))
    _, s, vt = np.linalg.svd(R, full_matrices=False)
    return xi, vt[:r].T * s[:r] / np.sqrt(C.shape[0])


def fit_two_step(Y: np.ndarray, untreated: np.ndarray, r: int) -> np.ndarray:
    """gsynth (EM=FALSE): factors from the fully untreated rows, loadings per other row."""
    full = untreated.all(axis=1)
    xi, F = _factors(Y[full], r)
    Y0 = Y.copy()
    for i in np.flatnonzero(~full):
        pre = untreated[i]
        X = np.column_stack([np.ones(pre.sum()), F[pre]])
        coef, *_ = np.linalg.lstsq(X, Y[i, pre] - xi[pre], rcond=None)
        Y0[i] = xi + coef[0] + F @ coef[1:]
    C = Y[full]
    Y0[full] = xi + (C.mean(axis=1) - C.mean())[:, None] + _low_rank(
        C - xi - (C.mean(axis=1) - C.mean())[:, None], r)
    return Y0


def fit_em(Y: np.ndarray, untreated: np.ndarray, r: int, tol: float = 1e-9,
           max_iter: int = 5000) -> np.ndarray:
    """EM over the untreated cells: fill the others with the fit, refit FE + rank r."""
    fit = _twfe_fill(Y, untreated)
    for _ in range(max_iter):
        Z = np.where(untreated, Y, fit)
        mu = Z.mean()
        fe = Z.mean(axis=1, keepdims=True) + Z.mean(axis=0, keepdims=True) - mu
        new = fe + _low_rank(Z - fe, r)
        done = np.sum((new - fit) ** 2) <= tol * max(np.sum(fit ** 2), 1e-300)
        fit = new
        if done:
            break
    return fit


def _twfe_fill(Y: np.ndarray, obs: np.ndarray, n_iter: int = 200) -> np.ndarray:
    """Two-way fixed effects fitted on the observed cells (alternating means)."""
    a = np.zeros(Y.shape[0])
    b = np.zeros(Y.shape[1])
    w = obs.astype(float)
    for _ in range(n_iter):
        a = (w * (Y - b)).sum(axis=1) / np.maximum(w.sum(axis=1), 1)
        b = (w * (Y - a[:, None])).sum(axis=0) / np.maximum(w.sum(axis=0), 1)
    return a[:, None] + b[None, :]


def _cv_two_step(Y, untreated, r) -> tuple[float, int]:
    """Exact leave-one-period-out errors of the treated rows' loading regressions."""
    full = untreated.all(axis=1)
    xi, F = _factors(Y[full], r)
    sq, n = 0.0, 0
    for i in np.flatnonzero(~full):
        pre = untreated[i]
        X = np.column_stack([np.ones(pre.sum()), F[pre]])
        y = Y[i, pre] - xi[pre]
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        h = np.einsum("ij,ij->i", X @ np.linalg.pinv(X.T @ X), X)
        e = (y - X @ coef) / np.maximum(1 - h, 1e-12)
        sq += float(np.sum(e ** 2))
        n += len(e)
    return sq, n


def _cv_em(Y, untreated, r) -> tuple[float, int]:
    treated_rows = ~untreated.all(axis=1)
    sq, n = 0.0, 0
    for t in range(Y.shape[1]):
        held = treated_rows & untreated[:, t]
        if not held.any():
            continue
        mask = untreated.copy()
        mask[held, t] = False
        fit = fit_em(Y, mask, r, tol=1e-7)
        sq += float(np.sum((Y[held, t] - fit[held, t]) ** 2))
        n += int(held.sum())
    return sq, n


def choose_r(Y, untreated, r_max: int, em: bool) -> tuple[int, pd.DataFrame]:
    """gsynth's cross-validated number of factors: smallest held-out MSPE over 0..r_max."""
    rows = []
    for r in range(r_max + 1):
        sq, n = (_cv_em if em else _cv_two_step)(Y, untreated, r)
        rows.append({"r": r, "mspe": sq / n, "n_held_out": n})
    table = pd.DataFrame(rows)
    return int(table.loc[table["mspe"].idxmin(), "r"]), table


def ife(panel: Panel, r: int | None = None, *, r_max: int = 5, em: bool = False,
        se: str | None = "parametric", n_boot: int = 200, level: float = 0.95,
        random_seed: int | None = 0) -> FactorResult:
    """Interactive fixed effects (gsynth) ATT with Xu's parametric bootstrap.

    Parameters
    ----------
    r : number of factors; ``None`` (default) cross-validates over ``0..r_max``.
    r_max : largest ``r`` tried by cross-validation (capped by the shortest pre-period and
        the number of controls).
    em : ``False`` (gsynth's default): factors from the never-treated units; ``True``: EM
        over all untreated cells (uses treated units' pre-periods for the factors too).
    se : ``"parametric"`` (Xu 2017 Algorithm 2) or ``None``.
    n_boot : bootstrap replications (placebo draws and bootstrap samples each).
    random_seed : seeds the bootstrap.

    Raises
    ------
    DesignError : no treated unit, fewer than two never-treated units, a treated unit with
        fewer than ``r + 1`` pre-periods (``r + 2`` when cross-validating), or ``r`` too
        large for the controls.
    MissingValueError : an unbalanced panel.
    """
    if se not in (None, "parametric"):
        raise DesignError(f"se must be 'parametric' or None, got {se!r}")
    if r is not None and (not isinstance(r, (int, np.integer)) or r < 0):
        raise DesignError(f"r must be a non-negative integer or None, got {r!r}")
    fm = factor_matrix(panel, min_pre=(r + 1) if r is not None else 2)
    n_ctrl = len(fm.control_rows)
    min_pre = int(fm.start[fm.treated_rows].min())
    cv = pd.DataFrame()
    if r is None:
        r_cap = min(r_max, min_pre - 2, n_ctrl - 2)
        r, cv = choose_r(fm.Y, fm.untreated, max(r_cap, 0), em)
    need = r + 2 + (se is not None)  # the bootstrap's placebo fits set one control aside
    if n_ctrl < need and not em:
        raise DesignError(f"r={r} factors need at least {need} never-treated units"
                          f"{' (with the bootstrap)' if se else ''}; the panel has {n_ctrl}",
                          column="cohort")
    fit = (lambda Y, m: fit_em(Y, m, r)) if em else (lambda Y, m: fit_two_step(Y, m, r))
    Y0 = fit(fm.Y, fm.untreated)
    rng = np.random.default_rng(random_seed)
    gaps = parametric_bootstrap(fm, fit, Y0, n_boot, rng) if se else None
    info = {"r": int(r), "em": em, "se_method": se, "n_boot": n_boot if se else 0,
            "random_seed": random_seed, "n_treated": len(fm.treated_rows),
            "n_control": n_ctrl, "treated_units": fm.units[fm.treated_rows].tolist(),
            "interval_note": "parametric bootstrap (Xu 2017, Algorithm 2) with r fixed; "
                             "estimate +/- z * sd of the bootstrap replications"}
    return assemble(fm, Y0, gaps, method="ife", level=level, info=info, cv=cv)
