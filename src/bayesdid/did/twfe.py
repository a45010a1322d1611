"""Two-way fixed-effects DID (the 'time-varying DID' of staggered pilot studies)."""

from __future__ import annotations

from collections.abc import Sequence

from ..panel import Panel
from ..results import EffectResult
from ._fixest import coef_rows, feols, resolve, work_frame

D = "treated__"


def twfe(panel: Panel, *, covariates: Sequence[str] | None = None, cluster: str | None = None,
         weights: str | None = None, level: float = 0.95) -> EffectResult:
    """TWFE regression ``y ~ D + X | unit + time`` with CRV1 standard errors (pyfixest).

    Under staggered adoption with effects that change over time or cohort, the TWFE
    coefficient mixes clean and 'forbidden' comparisons and can be biased; it is here as
    the classical replication reviewers expect, beside the clean-comparison estimators.

    Parameters
    ----------
    covariates : default the panel's covariates; ``()`` for none.
    cluster : cluster column; default the panel's cluster, else the unit.
    weights : weights column; default the panel's weights; ``""`` for unweighted.

    Examples
    --------
    >>> from bayesdid import Panel
    >>> from bayesdid.datasets import load, info
    >>> panel = Panel.from_frame(load("castle"), **info("castle")["panel_kwargs"])
    >>> round(float(twfe(panel).effect()["estimate"]), 4)
    0.0755
    """
    covs, cluster, weights = resolve(panel, covariates, cluster, weights)
    work, cov_names = work_frame(panel, {D: panel.frame["treated"].to_numpy(float)},
                                 covs, cluster, weights)
    fit = feols(work, [D, *cov_names], weights)
    rows = coef_rows(fit, {D: ("att", "overall")}, level, "twfe", {})
    info = {"formula": f"{panel.outcome} ~ treated{''.join(' + ' + c for c in covs)} | "
                       f"{panel.unit} + {panel.time}",
            "vcov": f"CRV1 by {cluster}", "weights": weights, "df": int(fit._df_t),
            "n_clusters": int(work["cl__"].nunique())}
    return EffectResult.from_rows(rows, method="twfe", info=info)
