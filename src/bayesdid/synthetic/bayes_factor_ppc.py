"""Posterior predictive residual checks of :class:`~bayesdid.synthetic.bayes_factor.BayesianFactorDiD`.

Under the model, each unit's untreated periods are ``N(b, L L' + sigma^2 I)`` (unit effect
and loadings integrated out). Whitening with the Cholesky factor of that covariance gives
the standardised one-step-ahead prediction errors, iid N(0, 1) given the parameters. For a
subsample of posterior draws the statistics of :mod:`bayesdid.did.ppc` (within-unit
autocorrelation at lags 1-3, spread of unit variances, group x period shocks, kurtosis) are
computed on them and compared with the same statistics of replicated innovations (row
permutations for the structure checks, Gaussian draws for kurtosis), exactly as the
hierarchical DID's checks are; a check is flagged when its one-sided p-value is below
``alpha``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.linalg import solve_triangular

from ..did.ppc import PPC_COLUMNS, _kurtosis, _Layout
from .bayes_factor_design import FactorDesign

__all__ = ["factor_residual_checks"]


def _remedy(check: str) -> str:
    if check.startswith("autocorr"):
        return ("serial correlation beyond the factors: raise max_factors, or put the "
                "HierarchicalDiD (AR(1) errors) interval beside this one")
    if check == "kurtosis":
        return "heavy-tailed errors: intervals may be too narrow; compare with ife/mc_nnm"
    if check == "unit_variance":
        return "heteroskedastic units: unit-level variances are not modelled"
    group = check.removesuffix("_x_period")
    return f"shocks shared within {group} x period: not modelled by the factor model"


def factor_residual_checks(design: FactorDesign, idata, b: np.ndarray,
                           treated_scale: float = 1.0, *, n_draws: int = 100,
                           alpha: float = 0.01, seed: int = 0,
                           beta: np.ndarray | None = None) -> list[dict]:
    """Records (``PPC_COLUMNS``) of the checks on ``n_draws`` posterior draws; ``b``
    (draws x T, standardised) are the period effects drawn with them, ``beta`` (draws x k,
    standardised) the covariate coefficients (None: no covariates)."""
    rng = np.random.default_rng([seed, 4242])
    fm = design.fm
    ds = idata.posterior.to_dataset()
    sigma = ds["sigma"].values.reshape(-1)
    F = ds["F"].values.reshape(len(sigma), design.n_periods, -1)
    tau = ds["tau"].values.reshape(len(sigma), -1)
    sd_unit = ds["sd_unit"].values.reshape(-1)
    take = np.sort(rng.choice(len(sigma), size=min(n_draws, len(sigma)), replace=False))
    units = [np.flatnonzero(fm.start == s) for s in np.unique(fm.start) if s > 0]
    unit_idx, time_idx, prev = [], [], []
    for rows in units:
        s = int(fm.start[rows[0]])
        for i in rows:
            offset = len(time_idx)
            unit_idx += [i] * s
            time_idx += list(range(s))
            prev += [-1] + list(range(offset, offset + s - 1))
    unit_idx = pd.factorize(np.asarray(unit_idx))[0]
    time_idx, prev = np.asarray(time_idx), np.asarray(prev)
    frame = design.cells  # group codes per unit come from the panel's unit-level groups
    groups = {}
    for g in design.group_names:
        level = dict(zip(frame["unit_row"], frame[g]))
        codes = np.asarray([level.get(i, "__never_treated__") for rows in units
                            for i in rows for _ in range(int(fm.start[rows[0]]))])
        groups[g] = pd.factorize(codes)[0]
    u = np.empty((len(time_idx), len(take)))
    for j, z in enumerate(take):
        L = np.column_stack([np.full(design.n_periods, sd_unit[z]), F[z] * tau[z]])
        col = []
        for rows in units:
            s = int(fm.start[rows[0]])
            Ls = L[:s] * (treated_scale if s < design.n_periods else 1.0)
            cov = Ls @ Ls.T + sigma[z] ** 2 * np.eye(s)
            C = np.linalg.cholesky(cov)
            resid = design.Y[rows, :s] - b[z, :s]
            if beta is not None and beta.shape[1]:
                resid = resid - design.covariates.X[rows, :s] @ beta[z]
            col.append(solve_triangular(C, resid.T, lower=True).T.reshape(-1))
        u[:, j] = np.concatenate(col)
    layout = _Layout(unit_idx, prev, groups, time_idx)
    observed = layout.statistics(u)
    replicated = layout.statistics(rng.permuted(u, axis=0))
    observed["kurtosis"] = _kurtosis(u)
    replicated["kurtosis"] = _kurtosis(rng.standard_normal(u.shape))
    records = []
    for name, obs in observed.items():
        p = float(np.mean(replicated[name] >= obs))
        flagged = bool(p < alpha)
        records.append(dict(zip(PPC_COLUMNS, (name, float(obs.mean()),
                                              float(replicated[name].mean()), p, flagged,
                                              _remedy(name) if flagged else ""))))
    return records
