"""Efficiency step kinds of a study: a classical stochastic frontier (``sfa``), a Bayesian one
(``bayesian_sfa``) and a Malmquist-Luenberger index (``ml_index``), each producing an
efficiency score per unit and period that later DID steps take as their outcome with
``outcome_from = "<this step>"`` (registered in :mod:`bayesdid.study.steps`).

Inputs and outputs are columns of the study data (they need not be panel columns). Each
step's table is the mean efficiency overall and by period (``estimand="efficiency"``,
groups ``overall`` and ``t=<period>``; Bayesian intervals from the draws of the mean, none
for the classical means); the scores themselves are the extra table ``scores`` (unit,
time, ``efficiency``, and interval bounds where the method has them).

A ``bayesian_sfa`` step computes its scores and table from every posterior draw, then keeps
at most ``stored_draws`` (default 200) draws per score, in single precision
(:meth:`~bayesdid.bayes.result.BayesResult.thinned`): that is what ``posterior_<step>.nc``
holds and what ``propagate`` draws from, in a first run and a cached rerun alike.

Examples
--------
>>> sorted(KINDS)
['bayesian_sfa', 'ml_index', 'sfa']
"""

from __future__ import annotations

import logging
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ColumnError
from ..results import group_label, tidy_table
from .checks import (
    STR_LIST,
    check_bool,
    check_int,
    check_str,
    expected,
    fail,
)
from .steps_base import (
    COMMON,
    SAMPLER,
    STORED_DRAWS,
    StepContext,
    StepKind,
    StepOutput,
    fit_kwargs,
)

__all__ = ["KINDS"]

logger = logging.getLogger(__name__)


def _str_or_list(value: Any, path: str):
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise expected(path, "str or non-empty array of str", value)


def _data(panel, ctx: StepContext, columns) -> pd.DataFrame:
    data = ctx.data if ctx.data is not None else panel.frame
    keys = [panel.unit, panel.time]
    absent = [c for c in columns if c not in data.columns]
    if absent:
        raise ColumnError(f"column {absent[0]!r} is not in the study data", column=absent[0],
                          hint=f"columns: {', '.join(map(str, data.columns))}")
    units = panel.frame[keys].drop_duplicates()
    return data.merge(units, on=keys, how="inner")[keys + list(dict.fromkeys(columns))]


def _summary(scores: pd.DataFrame, time: str, method: str, level: float,
             draws: np.ndarray | None = None, interval: str = "hdi") -> pd.DataFrame:
    """Mean efficiency overall and by period (intervals from ``draws`` when given)."""
    import arviz_stats as azs

    rows = []
    groups = [("overall", np.ones(len(scores), bool))]
    groups += [(group_label(t=t), (scores[time] == t).to_numpy()) for t in sorted(scores[time].unique())]
    for label, mask in groups:
        est, sd, lo, hi = float(scores.loc[mask, "efficiency"].mean()), np.nan, np.nan, np.nan
        kind = "confidence"
        if draws is not None:
            means = draws[mask].mean(axis=0)
            est, sd = float(means.mean()), float(means.std(ddof=1))
            if interval == "hdi":
                lo, hi = np.asarray(azs.hdi(means, prob=level)).reshape(-1)[:2]
            else:
                lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
            kind = interval
        rows.append({"estimand": "efficiency", "group": label, "estimate": est, "se_or_sd": sd,
                         "lower": float(lo), "upper": float(hi), "level": level, "interval": kind,
                         "method": method, "n_obs": int(mask.sum())})
    return tidy_table(rows)


def _figures(scores: pd.DataFrame, time: str, title: str) -> dict[str, Any]:
    from ..report.efficiency_plots import plot_efficiency_distribution

    return {"distribution": plot_efficiency_distribution(scores, time=time, value="efficiency",
                                                         title=title)}


# ---------------------------------------------------------------------------- SFA
_SFA_SCHEMA = {
    "y": _str_or_list, "x": STR_LIST, "undesirable": STR_LIST,
    "frontier": check_str(("production", "cost")),
    "distribution": check_str(("half_normal", "exponential", "truncated_normal")),
    "log": check_bool,
}


def _check_sfa(opts: dict[str, Any], path: str) -> None:
    for key in ("y", "x"):
        if key not in opts:
            raise fail(f"{path}.{key}", "required key is missing")
    form = opts.get("model", opts.get("inefficiency", "cross_section"))
    if form != "cross_section" and opts.get("distribution") == "exponential":
        key = "model" if "model" in opts else "inefficiency"
        raise fail(f"{path}.{key}", "the panel forms take distribution = \"half_normal\" or "
                   "\"truncated_normal\"")


def _sfa_columns(opts: dict[str, Any]) -> list[str]:
    y = [opts["y"]] if isinstance(opts["y"], str) else list(opts["y"])
    return [*y, *opts["x"], *opts.get("undesirable", ())]


def _frontier_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
    kw = {k: opts[k] for k in ("frontier", "distribution", "log") if k in opts}
    kw["y"] = opts["y"] if isinstance(opts["y"], str) else list(opts["y"])
    kw["x"] = list(opts["x"])
    kw["undesirable"] = list(opts.get("undesirable", ()))
    return kw


def _run_sfa(panel, opts: dict[str, Any], ctx: StepContext) -> StepOutput:
    from ..efficiency.sfa import sfa

    data = _data(panel, ctx, _sfa_columns(opts))
    kw = _frontier_kwargs(opts)
    kw.update({k: opts[k] for k in ("model", "maxiter", "random_seed") if k in opts})
    result = sfa(data, unit=panel.unit, time=panel.time, level=ctx.level, **kw)
    eff = result.efficiency
    scores = pd.DataFrame({panel.unit: eff[panel.unit].to_numpy(),
                           panel.time: eff[panel.time].to_numpy(),
                           "efficiency": eff["te_bc"].to_numpy(),
                           "sd": eff["te_bc_sd"].to_numpy(),
                           "lower": eff["lower"].to_numpy(), "upper": eff["upper"].to_numpy()})
    table = _summary(scores, panel.time, result.info.get("method", "sfa"), ctx.level)
    lr = pd.DataFrame([dict(result.lr_test, loglik=result.loglik,
                            loglik_ols=result.loglik_ols)])
    figures = _figures(scores, panel.time, "SFA efficiency (Battese-Coelli) by period")
    from ..report.sfa_plots import plot_efficiency_intervals

    figures["intervals"] = plot_efficiency_intervals(result, level=ctx.level)
    return StepOutput(result=result, table=table,
                      extras=MappingProxyType({"frontier": result.coef, "lr_test": lr,
                                               "scores": scores}),
                      figures=MappingProxyType(figures))


def _run_bayes_sfa(panel, opts: dict[str, Any], ctx: StepContext) -> StepOutput:
    from ..efficiency.bayes_sfa import BayesianSFA

    data = _data(panel, ctx, _sfa_columns(opts))
    kw = _frontier_kwargs(opts)
    if "inefficiency" in opts:
        kw["inefficiency"] = opts["inefficiency"]
    model = BayesianSFA(unit=panel.unit, time=panel.time, **kw)
    fits = fit_kwargs(opts)
    logger.info("  %s frontier, %s u; %d chains x %d draws (tune %d)", model.inefficiency,
                model.distribution, fits.get("chains", 4), fits.get("draws", 1000),
                fits.get("tune", 1000))
    result = model.fit(data, progress=ctx.progress, **fits)
    draws = result.efficiency_draws()
    interval = opts.get("interval", "hdi")
    lo, hi = (1 - ctx.level) / 2, (1 + ctx.level) / 2
    values = draws.to_numpy()
    scores = draws.index.to_frame(index=False)
    scores = scores.assign(efficiency=values.mean(axis=1), sd=values.std(axis=1, ddof=1),
                           lower=np.quantile(values, lo, axis=1),
                           upper=np.quantile(values, hi, axis=1))
    scores[panel.time] = scores[panel.time].astype(panel.frame[panel.time].dtype)
    table = _summary(scores, panel.time, result.method, ctx.level, values, interval)
    figures = _figures(scores, panel.time, "Bayesian SFA efficiency (posterior means) by period")
    # scores, table and figures use every draw; the folder and later steps keep a thinned,
    # single-precision posterior (one draw per unit-year and draw is most of the folder)
    result = result.thinned(opts.get("stored_draws", STORED_DRAWS), float32=True)
    return StepOutput(result=result, table=table,
                      extras=MappingProxyType({"frontier": result.coef_table(),
                                               "scores": scores}),
                      figures=MappingProxyType(figures))


# ---------------------------------------------------------------------------- ML index
def _check_ml(opts: dict[str, Any], path: str) -> None:
    for key in ("inputs", "outputs"):
        if key not in opts:
            raise fail(f"{path}.{key}", "required key is missing")
    if "base_period" in opts and opts.get("reference", "fixed") != "fixed":
        raise fail(f"{path}.base_period", "only with reference = \"fixed\"")


def _fill(scores: pd.DataFrame, unit: str, time: str) -> tuple[pd.DataFrame, int]:
    """Fill infeasible (NaN) scores by linear interpolation over time within unit, the ends
    by the nearest score; returns the frame and the number of cells filled."""
    missing = int(scores["efficiency"].isna().sum())
    if not missing:
        return scores, 0
    scores = scores.sort_values([unit, time]).reset_index(drop=True)
    filled = scores.groupby(unit)["efficiency"].transform(
        lambda s: s.interpolate(limit_direction="both"))
    scores["filled"] = scores["efficiency"].isna() & filled.notna()
    scores["efficiency"] = filled
    return scores, missing


def _run_ml(panel, opts: dict[str, Any], ctx: StepContext) -> StepOutput:
    from ..efficiency.malmquist import malmquist_luenberger
    from ..report.efficiency_plots import plot_ml_decomposition

    cols = [*opts["inputs"], *opts["outputs"], *opts.get("bads", ())]
    data = _data(panel, ctx, cols)
    kw = {k: opts[k] for k in ("reference", "base_period", "rts") if k in opts}
    kw.setdefault("reference", "fixed")
    result = malmquist_luenberger(data, unit=panel.unit, time=panel.time,
                                  inputs=list(opts["inputs"]), outputs=list(opts["outputs"]),
                                  bads=list(opts.get("bads", ())), progress=False, **kw)
    measure = opts.get("measure", "cumulative_ml")
    scores = result.efficiency_panel(measure=measure, name="efficiency")
    scores, filled = _fill(scores, panel.unit, panel.time)
    if filled:
        logger.warning("%d %s score(s) were NaN (infeasible LPs or no earlier period) and were "
                       "filled by interpolation within unit", filled, measure)
    if scores["efficiency"].isna().any():
        raise ColumnError("some units have no feasible efficiency score in any period",
                          column="efficiency",
                          rows=scores[scores["efficiency"].isna()].head(10))
    method = f"ml_{measure}_{kw['reference']}"
    table = _summary(scores, panel.time, method, ctx.level)
    by_period = result.by_period().rename_axis(panel.time).reset_index()
    figures = _figures(scores, panel.time, f"{measure} by period")
    figures["decomposition"] = plot_ml_decomposition(result)
    return StepOutput(result=result, table=table,
                      extras=MappingProxyType({"by_period": by_period, "scores": scores}),
                      figures=MappingProxyType(figures))


KINDS: dict[str, StepKind] = {
    "sfa": StepKind(
        "sfa",
        {**COMMON, **_SFA_SCHEMA, "model": check_str(("cross_section", "bc92", "time_invariant")),
         "maxiter": check_int(10), "random_seed": check_int(0)},
        _run_sfa, check=_check_sfa,
        description="stochastic frontier by maximum likelihood: efficiency scores"),
    "bayesian_sfa": StepKind(
        "bayesian_sfa",
        {**COMMON, **_SFA_SCHEMA,
         "inefficiency": check_str(("cross_section", "bc92", "time_invariant")),
         "stored_draws": check_int(2), **SAMPLER},
        _run_bayes_sfa, bayesian=True, check=_check_sfa,
        description="Bayesian stochastic frontier: efficiency posterior per unit-period"),
    "ml_index": StepKind(
        "ml_index",
        {**COMMON, "inputs": STR_LIST, "outputs": STR_LIST, "bads": STR_LIST,
         "measure": check_str(("cumulative_ml", "ml", "ddf")),
         "reference": check_str(("contemporaneous", "global", "fixed")),
         "base_period": check_int(), "rts": check_str(("crs", "vrs"))},
        _run_ml, check=_check_ml,
        description="Malmquist-Luenberger productivity index (DEA directional distances)"),
}
