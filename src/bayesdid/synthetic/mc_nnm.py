"""Matrix completion with a nuclear-norm penalty (MC-NNM; Athey, Bayati, Doudchenko, Imbens &
Khosravi 2021, *JASA* 116(536)).

The untreated outcomes are ``Y(0) = a 1' + 1 b' + L`` with unit and period fixed effects
(unpenalised) and a low-rank ``L``; on the untreated cells ``O`` it minimises

    1/2 * sum_{(i,t) in O} (Y_it - a_i - b_t - L_it)^2 + lambda * ||L||_*

by soft-impute with the fixed effects refitted each sweep (block coordinate descent: exact
``a``, ``b`` given ``L``; a proximal step for ``L``), and imputes ``Y(0)`` on the treated
cells. The objective and ``lambda`` are on the scale of causaltensor's
``MCNNMPanelSolver.solve_with_regularizer`` (R MCPanel's ``lambda_L`` is ``2 lambda / |O|``).

Implementation: written here, not imported -- causaltensor 0.1.12 (the maintained Python
MC-NNM) pins ``numpy<2`` and ``pandas<3``, which this package cannot take as a dependency.
It is the reference of a stored-number test instead (``tests/reference/factor/``: this
implementation matches its ``solve_with_regularizer`` to ~1e-8 on a simulated panel).

``lam=None`` picks ``lambda`` by K-fold cross-validation over a log grid from
``lambda_max`` (the largest singular value of the fixed-effect residuals on the untreated
cells, above which ``L = 0``) down by ``e^-4``, as Athey et al.: each fold keeps a random
share of the untreated cells (the untreated share of the panel), fits on them with warm
starts along the grid, and scores the squared error on the rest.

Uncertainty: Xu (2017)'s parametric bootstrap with ``lambda`` held at its chosen value (see
:func:`bayesdid.synthetic.factor_panel.parametric_bootstrap`): placebo prediction errors of
never-treated units for the treated units, resampled fit residuals for the controls;
intervals are ``estimate +/- z * sd`` of the replications. Covariates are not modelled.

Bias under selection on loadings: when treated units load differently on trending factors,
the minimum-nuclear-norm completion of the treated post-period block is cheaper than the
true one and shrunk toward the fixed-effects (TWFE) imputation, at every lambda including
lambda -> 0; it keeps ~40% of TWFE's bias on the factor benchmark, and none without the
selection (tests/test_mc_nnm_selection.py, benchmarks/results/bayes_factor_offmodel.md).

Examples
--------
>>> from bayesdid import Panel
>>> from bayesdid.datasets import load, info
>>> panel = Panel.from_frame(load("prop99"), **info("prop99")["panel_kwargs"])
>>> res = mc_nnm(panel, lam=50.0, se=None)
>>> round(res.estimate, 1), res.info["rank"]
(-20.3, 5)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DesignError
from ..panel import Panel
from .factor_panel import FactorResult, assemble, factor_matrix, parametric_bootstrap

__all__ = ["mc_nnm", "soft_impute_fe"]


class _FixedEffects:
    """Exact two-way fixed effects on the cells of a mask: ``a_i + b_t`` fitted to a matrix.

    Solves the normal equations with ``a`` profiled out (a T x T system, pseudo-inverted
    once per mask), so each sweep of soft-impute refits them exactly.
    """

    def __init__(self, observed: np.ndarray):
        self.w = observed.astype(float)
        self.n = np.maximum(self.w.sum(axis=1), 1.0)
        A = np.diag(self.w.sum(axis=0)) - self.w.T @ (self.w / self.n[:, None])
        self.A_pinv = np.linalg.pinv(A)

    def fit(self, R: np.ndarray) -> np.ndarray:
        wR = np.where(self.w > 0, R, 0.0)
        rows = wR.sum(axis=1)
        b = self.A_pinv @ (wR.sum(axis=0) - self.w.T @ (rows / self.n))
        a = (rows - self.w @ b) / self.n
        return a[:, None] + b[None, :]


def soft_impute_fe(Y: np.ndarray, observed: np.ndarray, lam: float, *,
                   L0: np.ndarray | None = None, tol: float = 1e-10,
                   max_iter: int = 50_000) -> tuple[np.ndarray, np.ndarray]:
    """Minimise the MC-NNM objective; returns ``(Y(0) hat, L)``.

    Stops when the change of the fitted matrix (Frobenius) falls below ``tol`` times the
    norm of the centred observed outcomes.
    """
    fe_solver = _FixedEffects(observed)
    scale = np.linalg.norm(Y[observed] - Y[observed].mean()) or 1.0
    L = np.zeros_like(Y) if L0 is None else L0.copy()
    fit = fe_solver.fit(Y - L) + L
    for _ in range(max_iter):
        fe = fe_solver.fit(Y - L)
        u, s, vt = np.linalg.svd(np.where(observed, Y - fe, L), full_matrices=False)
        s = np.maximum(s - lam, 0.0)
        k = int((s > 0).sum())
        L = (u[:, :k] * s[:k]) @ vt[:k]
        new = fe + L
        done = np.linalg.norm(new - fit) <= tol * scale
        fit = new
        if done:
            break
    return fit, L


def lambda_max(Y: np.ndarray, observed: np.ndarray) -> float:
    """Smallest lambda at which L = 0: top singular value of the FE residuals on O."""
    R = np.where(observed, Y - _FixedEffects(observed).fit(Y), 0.0)
    return float(np.linalg.svd(R, compute_uv=False)[0])


def choose_lambda(Y: np.ndarray, observed: np.ndarray, *, n_lambda: int = 10,
                  n_folds: int = 3, rng: np.random.Generator) -> tuple[float, pd.DataFrame]:
    """K-fold CV over ``lambda_max * exp(linspace(0, -4, n_lambda))`` (warm starts)."""
    grid = lambda_max(Y, observed) * np.exp(np.linspace(0.0, -4.0, n_lambda))
    share = observed.mean()
    err = np.zeros((n_folds, n_lambda))
    for k in range(n_folds):
        keep = observed & (rng.random(Y.shape) <= share)
        held = observed & ~keep
        L = None
        for j, lam in enumerate(grid):
            fit, L = soft_impute_fe(Y, keep, lam, L0=L, tol=1e-6)
            err[k, j] = np.mean((Y[held] - fit[held]) ** 2)
    table = pd.DataFrame({"lambda": grid, "mspe": err.mean(axis=0),
                          "mspe_sd": err.std(axis=0, ddof=1) if n_folds > 1 else np.nan})
    return float(grid[int(err.mean(axis=0).argmin())]), table


def mc_nnm(panel: Panel, lam: float | None = None, *, n_lambda: int = 10, n_folds: int = 3,
           se: str | None = "parametric", n_boot: int = 200, level: float = 0.95,
           random_seed: int | None = 0) -> FactorResult:
    """MC-NNM ATT with two-way fixed effects, CV'd lambda and a parametric bootstrap.

    Parameters
    ----------
    lam : nuclear-norm penalty (causaltensor's scale, see the module docstring); ``None``
        (default) cross-validates over ``n_lambda`` values with ``n_folds`` folds.
    se : ``"parametric"`` (Xu 2017 Algorithm 2, lambda fixed) or ``None``.
    n_boot : bootstrap replications. random_seed : seeds the CV folds and the bootstrap.

    Raises
    ------
    DesignError : no treated unit, fewer than two never-treated units, a treated unit
        without a pre-period, or a negative ``lam``.
    MissingValueError : an unbalanced panel.
    """
    if se not in (None, "parametric"):
        raise DesignError(f"se must be 'parametric' or None, got {se!r}")
    if lam is not None and not (np.isfinite(lam) and lam >= 0):
        raise DesignError(f"lam must be a non-negative number or None, got {lam!r}")
    fm = factor_matrix(panel, min_pre=1)
    rng = np.random.default_rng(random_seed)
    cv = pd.DataFrame()
    if lam is None:
        lam, cv = choose_lambda(fm.Y, fm.untreated, n_lambda=n_lambda, n_folds=n_folds, rng=rng)
    Y0, L = soft_impute_fe(fm.Y, fm.untreated, lam)
    gaps = None
    if se:
        gaps = parametric_bootstrap(fm, lambda Y, m: soft_impute_fe(Y, m, lam, tol=1e-7)[0],
                                    Y0, n_boot, rng)
    rank = int((np.linalg.svd(L, compute_uv=False) > 1e-8 * max(1.0, abs(lam))).sum())
    info = {"lambda": float(lam), "rank": rank, "se_method": se,
            "n_boot": n_boot if se else 0, "random_seed": random_seed,
            "n_treated": len(fm.treated_rows), "n_control": len(fm.control_rows),
            "treated_units": fm.units[fm.treated_rows].tolist(),
            "interval_note": "parametric bootstrap (Xu 2017, Algorithm 2) with lambda fixed; "
                             "estimate +/- z * sd of the bootstrap replications"}
    return assemble(fm, Y0, gaps, method="mc_nnm", level=level, info=info, cv=cv)
