"""Fixed-effect regressions on a Panel through pyfixest (the one place that calls it)."""

from __future__ import annotations

import logging
import re
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
from ..fixed_effects import DEFAULT_FE, FixedEffects, covariate_matrix, parse_fe
from ..panel import Panel

# internal names of the weights and cluster columns of the work frame
W, CL = "w__", "cl__"
# kept for modules that address the work frame's outcome by a constant
Y = "y__"
Y_ATTR = "bayesdid_y"  # work.attrs key: the outcome column
FE_ATTR = "bayesdid_fe"  # work.attrs key: the FE part of the formula the frame was built for

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def safe_name(name: str) -> str:
    """A formula-safe column name: ``log(pop)`` -> ``log_pop_``; ``2x`` -> ``_2x``."""
    out = _UNSAFE.sub("_", str(name))
    return out if out and not out[0].isdigit() else f"_{out}"


def resolve(panel: Panel, covariates, cluster, weights):
    """Fill estimator options from the panel's declared roles (None = the panel's).

    ``covariates`` is a list of columns or a formula string (``"gdp + log(pop)"``); it is
    returned unchanged for :func:`work_frame` after validation.
    """
    if not isinstance(panel, Panel):
        raise BayesDidError(f"expected a bayesdid Panel, got {type(panel).__name__}; "
                            "build one with Panel.from_frame(df, ...)")
    if covariates is None:
        covs = tuple(panel.covariates)
    elif isinstance(covariates, str):
        covs = covariates
    else:
        covs = tuple(covariates)
    covariate_matrix(panel, covs)  # raises on unknown columns / bad values
    cluster = panel.cluster or panel.unit if cluster is None else cluster
    if cluster not in panel.frame.columns:
        raise BayesDidError(f"cluster column {cluster!r} is not in the panel", column=cluster)
    weights = panel.weights if weights is None else (weights or None)
    if weights is not None and weights not in panel.frame.columns:
        raise BayesDidError(f"weights column {weights!r} is not in the panel", column=weights)
    return covs, cluster, weights


def covariate_text(covs) -> str:
    """Covariates as they appear in a formula: ``" + gdp + log(pop)"`` (or ``""``)."""
    if isinstance(covs, str):
        return f" + {covs}" if covs.strip() not in ("", "0") else ""
    return "".join(f" + {c}" for c in covs)


def work_frame(panel: Panel, regressors: dict[str, np.ndarray], covariates,
               cluster: str, weights: str | None, fe: FixedEffects | None = None,
               depvar: str = Y) -> tuple[pd.DataFrame, list[str]]:
    """A frame with formula-safe column names: outcome (``depvar``), regressors, covariates
    (named after their columns or formula terms), the FE columns (by their own names),
    cluster ``CL`` and weights ``W``.

    ``fe=None`` means the default ``unit + time``; the FE columns are ``fe.frame``'s.
    """
    f = panel.frame
    fe = parse_fe(panel, DEFAULT_FE) if fe is None else fe
    data: dict[str, np.ndarray] = {CL: f[cluster].to_numpy()}
    for col in fe.frame.columns:
        data[safe_name(col)] = fe.frame[col].to_numpy()
    data.update(regressors)
    if depvar in data:
        depvar = Y
    data[depvar] = f[panel.outcome].to_numpy(float)
    names, x = covariate_matrix(panel, covariates)
    cov_names = []
    for j, name in enumerate(names):
        key = safe_name(name)
        while key in data:
            key += "_"
        data[key] = x[:, j]
        cov_names.append(key)
    if weights:
        data[W] = f[weights].to_numpy(float)
    work = pd.DataFrame(data)
    work.attrs[FE_ATTR] = fe_text(fe)
    work.attrs[Y_ATTR] = depvar
    return work, cov_names


def fe_codes(work: pd.DataFrame) -> np.ndarray:
    """Integer codes (rows x terms, uint64) of the work frame's FE terms, for pyfixest's
    ``demean``; ``^`` interactions coded jointly."""
    terms = [t.strip() for t in work.attrs.get(FE_ATTR, "").split("+") if t.strip()]
    cols = [pd.MultiIndex.from_frame(work[[c.strip() for c in t.split("^")]]).factorize()[0]
            if "^" in t else pd.factorize(work[t])[0] for t in terms]
    return np.column_stack(cols).astype(np.uint64) if cols else np.zeros((len(work), 0),
                                                                        np.uint64)


def fe_info(fe: FixedEffects) -> dict:
    """``info`` entries describing the fixed effects (read by the regression table)."""
    return {"fe": fe.formula or None, "fixed_effects": fe.table_label}


def fe_text(fe: FixedEffects) -> str:
    """The part after ``|`` of the pyfixest formula, in work-frame names (``""``: none)."""
    return " + ".join("^".join(safe_name(c) for c in t) for t in fe.terms)


def feols(work: pd.DataFrame, rhs: Sequence[str], weights: str | None,
          fe: FixedEffects | None = None, depvar: str | None = None):
    """``pyfixest.feols`` of ``depvar`` (default the work frame's outcome) on ``rhs`` with
    the fixed effects ``fe`` (default those the work frame was built with; no ``|`` part
    when there are none), CRV1 by the cluster."""
    depvar = depvar or work.attrs.get(Y_ATTR, Y)
    text = work.attrs.get(FE_ATTR) if fe is None else fe_text(fe)
    if text is None:
        raise BayesDidError("internal: feols needs the fixed effects of its work frame")
    absorb = f" | {text}" if text else ""
    fml = f"{depvar} ~ {' + '.join(rhs) or '1'}{absorb}"
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
                         method=method, n_obs=n_obs.get(reg, fit_nobs(fit))))
    return rows


# ---------------------------------------------------------------------- fit accessors
# pyfixest (0.60) has no public accessor for the coefficient covariance matrix or the
# t degrees of freedom; these read its private attributes in ONE place, under the upper
# pin in pyproject.toml, and tests/test_fixed_effects.py checks them against the public
# se() / confint() / resid() so that a change in pyfixest fails loudly.
def fit_vcov(fit) -> pd.DataFrame:
    """Coefficient covariance matrix (labelled by coefficient name)."""
    names = list(fit.coef().index)
    return pd.DataFrame(np.asarray(fit._vcov, float), index=names, columns=names)


def fit_df(fit) -> int:
    """Degrees of freedom of the t distribution pyfixest uses for intervals."""
    return int(fit._df_t)


def fit_nobs(fit) -> int:
    """Observations used by the fit (after any singleton removal)."""
    return int(np.asarray(fit.resid()).size)
