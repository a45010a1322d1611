"""Fixed-effect regressions on a Panel through pyfixest (the one place that calls it)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd


def _import_pyfixest():
    """Import pyfixest without its import-time ``logging.basicConfig(level=INFO)`` calls, which
    would switch on INFO output of every library in the user's process: while the root
    logger has a handler, basicConfig does nothing."""
    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)
    try:
        import pyfixest
        try:  # imported lazily by pyfixest at the first fit; it calls basicConfig too
            import pyfixest.estimation.models.feols_compressed_  # noqa: F401
        except ImportError:
            pass
    finally:
        root.removeHandler(guard)
    return pyfixest


pf = _import_pyfixest()

from ..errors import BayesDidError
from ..panel import Panel

Y, UNIT, TIME, W, CL = "y__", "unit__", "time__", "w__", "cl__"


def resolve(panel: Panel, covariates, cluster, weights):
    """Fill estimator options from the panel's declared roles (None = the panel's)."""
    if not isinstance(panel, Panel):
        raise BayesDidError(f"expected a bayesdid Panel, got {type(panel).__name__}; "
                            "build one with Panel.from_frame(df, ...)")
    covs = tuple(panel.covariates if covariates is None else covariates)
    unknown = [c for c in covs if c not in panel.frame.columns]
    if unknown:
        raise BayesDidError(f"covariate {unknown[0]!r} is not a panel column", column=unknown[0],
                            hint="declare it with covariates=[...] in Panel.from_frame")
    cluster = panel.cluster or panel.unit if cluster is None else cluster
    if cluster not in panel.frame.columns:
        raise BayesDidError(f"cluster column {cluster!r} is not in the panel", column=cluster)
    weights = panel.weights if weights is None else (weights or None)
    if weights is not None and weights not in panel.frame.columns:
        raise BayesDidError(f"weights column {weights!r} is not in the panel", column=weights)
    return covs, cluster, weights


def work_frame(panel: Panel, regressors: dict[str, np.ndarray], covariates: Sequence[str],
               cluster: str, weights: str | None) -> tuple[pd.DataFrame, list[str]]:
    """A frame with safe column names: outcome, regressors, covariates, FE ids, cluster."""
    f = panel.frame
    data = {Y: f[panel.outcome].to_numpy(float), UNIT: pd.factorize(f[panel.unit])[0],
            TIME: f[panel.time].to_numpy(), CL: pd.factorize(f[cluster])[0]}
    data.update(regressors)
    cov_names = [f"x{i}__" for i in range(len(covariates))]
    for name, col in zip(cov_names, covariates):
        data[name] = f[col].to_numpy(float)
    if weights:
        data[W] = f[weights].to_numpy(float)
    return pd.DataFrame(data), cov_names


def feols(work: pd.DataFrame, rhs: Sequence[str], weights: str | None):
    fml = f"{Y} ~ {' + '.join(rhs)} | {UNIT} + {TIME}"
    return pf.feols(fml, data=work, vcov={"CRV1": CL}, weights=W if weights else None)


def coef_rows(fit, names: dict[str, tuple[str, str]], level: float, method: str, n_obs: dict):
    """Effects rows for the regressors in ``names`` ({regressor: (estimand, group)})."""
    coef, se = fit.coef(), fit.se()
    ci = fit.confint(alpha=1 - level)
    rows = []
    for reg, (estimand, group) in names.items():
        if reg not in coef.index:
            continue
        rows.append(dict(estimand=estimand, group=group, estimate=float(coef[reg]),
                         se_or_sd=float(se[reg]), lower=float(ci.loc[reg].iloc[0]),
                         upper=float(ci.loc[reg].iloc[1]), level=level, interval="confidence",
                         method=method, n_obs=n_obs.get(reg, int(fit._N))))
    return rows
