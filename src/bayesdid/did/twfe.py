"""Two-way fixed-effects DID (the 'time-varying DID' of staggered pilot studies)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..fixed_effects import DEFAULT_FE, parse_fe
from ..panel import Panel
from ..results import EffectResult
from ._fixest import (
    CL,
    coef_rows,
    covariate_text,
    fe_info,
    feols,
    fit_df,
    resolve,
    safe_name,
    work_frame,
)

D = "treated"


def twfe(panel: Panel, *, fe: str | None = DEFAULT_FE,
         covariates: str | Sequence[str] | None = None, cluster: str | None = None,
         weights: str | None = None, level: float = 0.95,
         data: pd.DataFrame | None = None) -> EffectResult:
    """Fixed-effects DID ``y ~ treated + X | fe`` with CRV1 standard errors (pyfixest).

    Under staggered adoption with effects that change over time or cohort, the TWFE
    coefficient mixes clean and 'forbidden' comparisons and can be biased; it is here as
    the classical replication reviewers expect, beside the clean-comparison estimators.

    Parameters
    ----------
    fe : fixed effects in pyfixest syntax (:mod:`bayesdid.fixed_effects`): ``"unit + time"``
        (default, the panel's unit and time columns), ``"city + province^year"``,
        ``"city + plan_period"``, ``"year"``, ``"city"``, or ``None`` for pooled OLS with a
        constant.
    covariates : default the panel's covariates; ``()`` for none; a list of columns or a
        formula string such as ``"x1 + log(x2)"``.
    cluster : cluster column; default the panel's cluster, else the unit.
    weights : weights column; default the panel's weights; ``""`` for unweighted.
    data : a frame with further columns named in ``fe`` (matched on unit and time).

    The pyfixest fit is kept as ``result.fit``: ``pf.etable([res.fit])`` works on it.

    Examples
    --------
    >>> from bayesdid import Panel
    >>> from bayesdid.datasets import load, info
    >>> panel = Panel.from_frame(load("castle"), **info("castle")["panel_kwargs"])
    >>> round(float(twfe(panel).effect()["estimate"]), 4)
    0.0755
    >>> round(float(twfe(panel, fe=None).effect()["estimate"]), 4) != 0.0755
    True
    """
    covs, cluster, weights = resolve(panel, covariates, cluster, weights)
    spec = parse_fe(panel, fe, data)
    work, cov_names = work_frame(panel, {D: panel.frame["treated"].to_numpy(float)},
                                 covs, cluster, weights, spec, depvar=safe_name(panel.outcome))
    fit = feols(work, [D, *cov_names], weights)
    rows = coef_rows(fit, {D: ("att", "overall")}, level, "twfe", {})
    absorb = f" | {spec.formula}" if spec.terms else ""
    info = {"formula": f"{panel.outcome} ~ treated{covariate_text(covs)}{absorb}",
            **fe_info(spec), "vcov": f"CRV1 by {cluster}", "weights": weights,
            "df": fit_df(fit), "n_clusters": int(work[CL].nunique())}
    return EffectResult.from_rows(rows, method="twfe", info=info, fit=fit)
