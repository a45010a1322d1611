"""Heterogeneous treatment effects: by a group, by cohort (batch), by a median split of a
covariate, or by overlap with another policy, with a test of equality across groups.

Two classical forms, as in the seed papers' heterogeneity tables:

- ``kind="interaction"`` (default): one TWFE regression ``y ~ sum_g D x 1{group=g} + X |
  unit + time`` on the whole panel; the group effects share the fixed effects and the
  equality test is pyfixest's Wald test on the cluster-robust covariance.
- ``kind="subsample"``: TWFE on each group's units separately (for cohorts: that cohort's
  units and the never-treated); the groups are disjoint sets of clusters, so the equality
  test is a Wald test with a block-diagonal covariance.

For a Bayesian version, pool :class:`~bayesdid.did.hierarchical.HierarchicalDiD` by the same column
and compare groups with :func:`bayesdid.did.contrasts.posterior_contrasts`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ColumnError, DesignError
from ..panel import LogEntry, Panel
from ..results import EffectResult, group_label
from ..fixed_effects import DEFAULT_FE, parse_fe
from ..did._fixest import coef_rows, fe_info, feols, resolve, work_frame

__all__ = ["heterogeneity", "with_median_split"]


def with_median_split(panel: Panel, column: str, *, name: str | None = None) -> Panel:
    """A new panel with a unit-level group column splitting units at the median of ``column``.

    Each unit's value is its mean of ``column`` over its untreated periods (all periods for
    never-treated units), so the split is not driven by the policy itself. Units above the
    median are ``"above"``, the others ``"below"``. The new column is added to the panel's
    groups (for pooling or :func:`heterogeneity`) and the split is logged.

    Examples
    --------
    >>> from bayesdid import Panel
    >>> from bayesdid.datasets import simulate_staggered
    >>> sim = simulate_staggered(n_units=120, random_seed=1)
    >>> panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    >>> split = with_median_split(panel, "x1")
    >>> split.groups[-1], sorted(split.frame["x1_split"].unique())
    ('x1_split', ['above', 'below'])
    """
    frame = panel.frame
    if column not in frame.columns:
        raise ColumnError(f"column {column!r} is not in the panel", column=column,
                          hint="declare it with covariates=[...] in Panel.from_frame")
    if not pd.api.types.is_numeric_dtype(frame[column]):
        raise ColumnError(f"a median split needs a numeric column; {column!r} is "
                          f"{frame[column].dtype}", column=column)
    name = name or f"{column}_split"
    if name in frame.columns:
        raise ColumnError(f"the panel already has a column {name!r}", column=name,
                          hint="pass name= for the split column")
    untreated = frame[frame["treated"] == 0]
    unit_mean = untreated.groupby(panel.unit)[column].mean()
    median = float(unit_mean.median())
    side = np.where(unit_mean > median, "above", "below")
    labels = pd.Series(side, index=unit_mean.index)
    new = frame.copy()
    new[name] = new[panel.unit].map(labels)
    note = LogEntry("median_split", f"{name}: units split at the median ({median:.6g}) of "
                    f"their untreated-period mean of {column}", int((side == "above").sum()))
    return dataclasses.replace(panel, frame=new, groups=(*panel.groups, name),
                               log=panel.log + (note,))


def heterogeneity(panel: Panel, by: str, *, kind: str = "interaction",
                  covariates: str | Sequence[str] | None = None, cluster: str | None = None,
                  weights: str | None = None, level: float = 0.95,
                  fe: str | None = DEFAULT_FE) -> EffectResult:
    """ATT by the levels of ``by`` (a group column, ``"cohort"``, or a 0/1 overlap column).

    ``fe`` are the regressions' fixed effects in pyfixest syntax (default ``"unit + time"``;
    :mod:`bayesdid.fixed_effects`; panel columns), ``covariates`` a list or a formula string.
    With ``kind="interaction"`` the pyfixest fit is kept as ``result.fit``.

    Returns an :class:`EffectResult` with one ``att`` row per level (group ``"region=East"``)
    and the equality test in ``info["equality_test"]`` (statistic, df, p-value, form).
    For a continuous covariate, first split it with :func:`with_median_split`.

    Examples
    --------
    >>> from bayesdid import Panel
    >>> from bayesdid.datasets import simulate_staggered
    >>> sim = simulate_staggered(n_units=120, random_seed=2)
    >>> panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    >>> res = heterogeneity(panel, "region")
    >>> sorted(res.effects()["group"])[:2]
    ['region=Central', 'region=East']
    >>> 0 <= res.info["equality_test"]["p_value"] <= 1
    True
    """
    if kind not in ("interaction", "subsample"):
        raise DesignError(f"kind must be 'interaction' or 'subsample', got {kind!r}")
    covs, cluster, weights = resolve(panel, covariates, cluster, weights)
    spec = parse_fe(panel, fe)
    level_of = _unit_levels(panel, by)
    fit = None
    if kind == "interaction":
        rows, test, fit = _interaction(panel, by, level_of, covs, cluster, weights, level, fe)
    else:
        rows, test = _subsample(panel, by, level_of, covs, cluster, weights, level, fe)
    info = {"by": by, "kind": kind, "equality_test": test, "vcov": f"CRV1 by {cluster}",
            "levels": [str(v) for v in level_of.dropna().unique()]}
    if not spec.is_default:
        info.update(fe_info(spec))
    return EffectResult.from_rows(rows, method=f"heterogeneity_{kind}", info=info, fit=fit)


def _unit_levels(panel: Panel, by: str) -> pd.Series:
    """Each row's level of ``by`` (NaN for never-treated rows when ``by="cohort"``)."""
    frame = panel.frame
    if by not in frame.columns:
        raise ColumnError(f"column {by!r} is not in the panel", column=by,
                          hint="declare it with groups=[...] in Panel.from_frame, or split a "
                               "covariate with with_median_split(panel, column)")
    values = frame[by]
    if by != "cohort":
        varying = frame.groupby(panel.unit)[by].nunique(dropna=False) > 1
        if varying.any():
            bad = frame[frame[panel.unit].isin(varying.index[varying])]
            raise ColumnError(f"heterogeneity needs a unit-level column; {by!r} varies within "
                              f"unit", column=by, rows=bad[[panel.unit, panel.time, by]],
                              hint="use with_median_split for a time-varying covariate")
    treated_levels = values[~frame["never_treated"]].dropna().unique()
    if len(treated_levels) < 2:
        raise DesignError(f"heterogeneity by {by!r} needs treated units in at least two levels; "
                          f"found {list(treated_levels)}", column=by)
    return values


def _is(values: pd.Series, value) -> np.ndarray:
    return values.eq(value).fillna(False).to_numpy(bool)


def _label(by: str, value) -> str:
    return group_label(**{by: value})


def _interaction(panel, by, level_of, covs, cluster, weights, level, fe=DEFAULT_FE):
    frame = panel.frame
    d = frame["treated"].to_numpy(float)
    levels = sorted(level_of[~frame["never_treated"]].dropna().unique(), key=str)
    regs = {f"d{i}__": d * _is(level_of, v).astype(float) for i, v in enumerate(levels)}
    work, cov_names = work_frame(panel, regs, covs, cluster, weights, parse_fe(panel, fe))
    fit = feols(work, [*regs, *cov_names], weights)
    names = {r: ("att", _label(by, v)) for r, v in zip(regs, levels)}
    n_obs = {r: int((x > 0).sum()) for r, x in regs.items()}
    rows = coef_rows(fit, names, level, "heterogeneity_interaction", n_obs)
    coef_names = list(fit.coef().index)
    k = len(coef_names)
    reg_idx = [coef_names.index(r) for r in regs]
    restrict = np.zeros((len(levels) - 1, k))
    for i in range(len(levels) - 1):
        restrict[i, reg_idx[0]], restrict[i, reg_idx[i + 1]] = 1.0, -1.0
    wald = fit.wald_test(R=restrict, distribution="chi2")
    test = {"statistic": float(wald["statistic"]), "df": int(len(levels) - 1),
            "p_value": float(wald["pvalue"]), "form": "chi2 Wald (pyfixest, CRV1)",
            "null": "equal effects across " + ", ".join(map(str, levels))}
    return rows, test, fit


def _subsample(panel, by, level_of, covs, cluster, weights, level, fe=DEFAULT_FE):
    frame = panel.frame
    never = frame["never_treated"].to_numpy()
    levels = sorted(level_of[~frame["never_treated"]].dropna().unique(), key=str)
    rows, est, var = [], [], []
    for v in levels:
        in_level = _is(level_of, v)
        keep = in_level | never if by == "cohort" else in_level
        sub_frame = frame.loc[keep]
        if sub_frame.loc[~sub_frame["never_treated"], panel.unit].nunique() == 0:
            continue
        if sub_frame.loc[sub_frame["treated"] == 0, panel.unit].nunique() < 2:
            raise DesignError(f"subsample {by}={v} has too few untreated units to estimate the "
                              "time effects", column=by, hint="use kind='interaction'")
        sub = panel.with_frame(sub_frame, LogEntry("subsample", f"{by}={v}", int(keep.sum())))
        work, cov_names = work_frame(sub, {"d__": sub.frame["treated"].to_numpy(float)},
                                     covs, cluster, weights, parse_fe(sub, fe))
        fit = feols(work, ["d__", *cov_names], weights)
        rows += coef_rows(fit, {"d__": ("att", _label(by, v))}, level,
                          "heterogeneity_subsample", {"d__": int(sub.frame["treated"].sum())})
        est.append(float(fit.coef()["d__"]))
        var.append(float(fit.se()["d__"]) ** 2)
    est, var = np.array(est), np.array(var)
    # disjoint units (clusters) across subsamples: the estimates are independent (for cohorts
    # only approximately: each cohort's subsample shares the never-treated controls)
    restrict = np.eye(len(est))[:-1] - np.eye(len(est), k=1)[:-1]
    diff = restrict @ est
    cov = restrict @ np.diag(var) @ restrict.T
    chi2 = float(diff @ np.linalg.solve(cov, diff))
    test = {"statistic": chi2, "df": int(len(est) - 1),
            "p_value": float(stats.chi2.sf(chi2, len(est) - 1)),
            "form": "chi2 Wald, independent subsamples" + (
                " (approximate: cohorts share the never-treated controls)"
                if by == "cohort" else ""),
            "null": "equal effects across " + ", ".join(map(str, levels))}
    return rows, test
