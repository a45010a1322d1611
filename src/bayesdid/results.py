"""EffectResult: the one tidy effects table every estimator returns.

Columns of :meth:`EffectResult.effects` (one row per reported effect):

========== =================================================================
estimand   ``att``, ``att_gt``, ``event_time``, ``gap``, ``indirect``, ...
group      ``overall``, ``cohort=2011``, ``region=East``,
           ``cohort=2011, region=East``, ``k=-3``, ``unit=...``
estimate   point estimate (posterior mean for Bayesian results)
se_or_sd   standard error (classical) or posterior standard deviation
lower      lower end of the interval
upper      upper end of the interval
level      interval level, e.g. 0.95
interval   ``confidence`` | ``hdi`` | ``eti`` | ``placebo`` (estimate +/- z * sd of
           placebo estimates, e.g. synthetic control; not a confidence interval)
method     estimator name, e.g. ``twfe``, ``hierarchical_did``
n_obs      observations behind the estimate (treated cells for group rows)
========== =================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .errors import BayesDidError

EFFECT_COLUMNS = [
    "estimand", "group", "estimate", "se_or_sd", "lower", "upper",
    "level", "interval", "method", "n_obs",
]
INTERVAL_KINDS = ("confidence", "hdi", "eti", "placebo")
RECOMPUTABLE = ("confidence", "placebo")  # estimate +/- quantile * se_or_sd


def group_label(**parts: Any) -> str:
    """Canonical group label: ``group_label(cohort=2011, region="East")``.

    >>> group_label(cohort=2011, region="East")
    'cohort=2011, region=East'
    >>> group_label()
    'overall'
    """
    if not parts:
        return "overall"
    return ", ".join(f"{k}={_fmt_value(v)}" for k, v in parts.items())


def _fmt_value(v: Any) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, np.integer):
        return str(int(v))
    return str(v)


def tidy_table(rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Validate and order rows into the canonical effects table (a new frame)."""
    table = pd.DataFrame(rows).copy()
    missing = [c for c in EFFECT_COLUMNS if c not in table.columns]
    if missing:
        raise BayesDidError(f"effects table lacks columns {missing}", column=missing[0])
    bad = table.loc[~table["interval"].isin(INTERVAL_KINDS)]
    if len(bad):
        raise BayesDidError(
            f"interval must be one of {INTERVAL_KINDS}", column="interval", rows=bad)
    table = table[EFFECT_COLUMNS + [c for c in table.columns if c not in EFFECT_COLUMNS]]
    for col in ("estimate", "se_or_sd", "lower", "upper", "level"):
        table[col] = table[col].astype(float)
    table["n_obs"] = table["n_obs"].astype("Int64")
    for col in ("estimand", "group", "interval", "method"):
        table[col] = table[col].astype(str)
    return table.reset_index(drop=True)


@dataclass(frozen=True, eq=False)
class EffectResult:
    """Effects from one estimator, as one tidy table.

    Classical estimators return this directly; :class:`bayesdid.bayes.BayesResult`
    extends it with posterior draws. Results are never modified after they are returned:
    :meth:`effects` hands out a copy.

    Examples
    --------
    >>> res = EffectResult.from_rows(
    ...     [dict(estimand="att", group="overall", estimate=0.1, se_or_sd=0.02,
    ...           lower=0.06, upper=0.14, level=0.95, interval="confidence", n_obs=100)],
    ...     method="twfe")
    >>> res.effects()[["estimand", "estimate"]].to_dict("records")
    [{'estimand': 'att', 'estimate': 0.1}]
    """

    table: pd.DataFrame
    method: str
    info: Mapping[str, Any] = field(default_factory=dict)
    #: the underlying pyfixest fit of a classical regression (``pf.etable([res.fit])``,
    #: ``pf.iplot``), else None; not stored by the study cache
    fit: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], *, method: str,
                  info: Mapping[str, Any] | None = None, fit: Any = None) -> EffectResult:
        rows = [dict(r, method=r.get("method", method)) for r in rows]
        return cls(table=tidy_table(rows), method=method, info=dict(info or {}), fit=fit)

    def __post_init__(self) -> None:
        object.__setattr__(self, "table", tidy_table(self.table))

    # -- the canonical output ------------------------------------------------------
    def effects(self, level: float | None = None) -> pd.DataFrame:
        """The tidy effects table (a copy).

        ``level`` recomputes confidence (and placebo) intervals from the standard errors,
        with the t distribution when the estimator recorded its degrees of freedom
        (``info['df']``) and the normal otherwise.
        """
        table = self.table.copy()
        if level is None or np.allclose(table["level"], level):
            return table
        if not 0 < level < 1:
            raise BayesDidError(f"level must be in (0, 1), got {level}")
        if (~table["interval"].isin(RECOMPUTABLE)).any():
            raise BayesDidError(
                "credible intervals cannot be recomputed from a table at another level; "
                "use the Bayesian result's effects(level=...)", column="interval")
        dof = self.info.get("df")
        q = stats.t.ppf(0.5 + level / 2, dof) if dof else stats.norm.ppf(0.5 + level / 2)
        table["lower"] = table["estimate"] - q * table["se_or_sd"]
        table["upper"] = table["estimate"] + q * table["se_or_sd"]
        table["level"] = level
        if "band" in table.columns:  # recomputed intervals are pointwise
            table["band"] = "pointwise"
        return table

    def effect(self, estimand: str = "att", group: str = "overall") -> pd.Series:
        """One row of :meth:`effects` as a Series."""
        table = self.effects()
        hit = table[(table["estimand"] == estimand) & (table["group"] == group)]
        if hit.empty:
            options = sorted(set(zip(table["estimand"], table["group"])))
            raise KeyError(f"no effect ({estimand!r}, {group!r}); available: {options[:20]}")
        return hit.iloc[0]

    # -- display ---------------------------------------------------------------------
    def summary(self, digits: int = 4) -> str:
        """A Markdown table of the effects."""
        cols = ["estimand", "group", "estimate", "se_or_sd", "lower", "upper", "interval", "n_obs"]
        return self.effects()[cols].to_markdown(index=False, floatfmt=f".{digits}f")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} method={self.method!r} rows={len(self.table)}>\n{self.summary()}"

    def _repr_html_(self) -> str:
        return f"<p><b>{self.method}</b></p>" + self.effects().to_html(index=False, float_format="%.4f")
