"""Classical DID step kinds of a study: TWFE, the fixed-effects ladder (``fe_ladder``: one
TWFE per fixed-effect set, e.g. OLS / time FE / unit FE / two-way, one column each),
event studies, the staggered-adoption estimators, the Bacon decomposition and honest DID
(registered in :mod:`bayesdid.study.steps`; the robustness checks are in
:mod:`bayesdid.study.steps_checks`).

Every kind takes the data options of :data:`~bayesdid.study.steps_base.DATA_OPTIONS`
(``outcome``, ``outcome_from``, ``where``, ``cohorts``); options map one to one to the
estimator's keyword arguments.

Examples
--------
>>> sorted(KINDS)[:3]
['bacon', 'callaway_santanna', 'event_study']
"""

from __future__ import annotations

import logging
from types import MappingProxyType
from typing import Any

import pandas as pd

from .checks import (
    OPT_STR,
    STR_LIST,
    check_bool,
    check_int,
    check_list,
    check_str,
    fail,
)
from .steps_base import (
    CLASSICAL,
    FE,
    NUM_LIST,
    StepKind,
    StepOutput,
    covariate_columns,
    did_kind,
    estimator_kwargs,
    fe_columns,
    fe_kwargs,
    fe_value,
    with_fe_columns,
)

__all__ = ["KINDS"]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- TWFE family
def _twfe(panel, opts, ctx):
    from ..did.twfe import twfe

    return twfe(panel, level=ctx.level, **fe_kwargs(opts))


LADDER = ("none", "time", "unit", "unit + time")  # the seed paper's table (OLS ... two-way)
_LADDER_LABELS = {"none": "OLS (no FE)", "time": "time FE", "unit": "unit FE",
                  "unit + time": "two-way FE"}


def _ladder(panel, opts, ctx):
    from ..did.twfe import twfe

    specs = list(opts.get("specs") or LADDER)
    labels = list(opts.get("labels") or [_LADDER_LABELS.get(s.strip(), s) for s in specs])
    kw = {k: v for k, v in fe_kwargs(opts).items() if k not in ("specs", "labels")}
    return {label: twfe(panel, fe=fe_value(spec), level=ctx.level, **kw)
            for label, spec in zip(labels, specs)}


def _check_ladder(opts: dict[str, Any], path: str) -> None:
    specs = opts.get("specs") or LADDER
    if "labels" in opts and len(opts["labels"]) != len(specs):
        raise fail(f"{path}.labels", f"give one label per FE specification ({len(specs)}), "
                   f"got {len(opts['labels'])}")
    labels = opts.get("labels") or [_LADDER_LABELS.get(s.strip(), s) for s in specs]
    if len(set(labels)) != len(labels):
        raise fail(f"{path}.labels", "labels (or specs) must be distinct")


def _ladder_output(results, opts, ctx, panel) -> StepOutput:
    from ..results import EffectResult, group_label

    rows = []
    for label, res in results.items():
        row = res.effect().to_dict()
        row.update(group=group_label(fe=label), fe=res.info["fe"] or "none")
        rows.append(row)
    # .fit: the pyfixest fits, one per column, for pf.etable(result.fit)
    result = EffectResult.from_rows(rows, method="twfe",
                                    info={"fe_ladder": {k: r.info for k, r in results.items()}},
                                    fit=[r.fit for r in results.values()])
    return StepOutput(result=result, table=result.effects(level=ctx.level),
                      extras=MappingProxyType({"fe_ladder": fe_ladder_table(results, panel)}))


def fe_ladder_table(results: dict[str, Any], panel) -> pd.DataFrame:
    """One column per FE specification: coefficients with standard errors (below, in
    brackets), one line per fixed effect (Yes/No), observations and R-squared; the row
    names in the first column, ``term``.

    >>> from bayesdid import Panel
    >>> from bayesdid.did.twfe import twfe
    >>> from bayesdid.datasets import simulate_staggered
    >>> sim = simulate_staggered(n_units=30, years=(2005, 2010), batches={2007: 8},
    ...                          random_seed=1)
    >>> p = Panel.from_frame(sim.data, **sim.panel_kwargs)
    >>> t = fe_ladder_table({"OLS": twfe(p, fe=None), "two-way": twfe(p)}, p)
    >>> list(t.columns), t.set_index("term").loc["year FE"].tolist()
    (['term', 'OLS', 'two-way'], ['No', 'Yes'])
    """
    import numpy as np

    fits = {k: r.fit for k, r in results.items()}
    coefs = list(dict.fromkeys(c for f in fits.values() for c in f.coef().index
                               if c != "Intercept"))
    terms = list(dict.fromkeys(t for r in results.values()
                               for t in (r.info.get("fe") or "").split(" + ") if t))
    y = panel.frame[panel.outcome].to_numpy(float)
    table: dict[str, dict[str, Any]] = {}
    for label, fit in fits.items():
        col: dict[str, Any] = {}
        coef, se = fit.coef(), fit.se()
        for c in coefs:
            col[c] = f"{coef[c]:.4f}" if c in coef.index else ""
            col[f"({c})"] = f"({se[c]:.4f})" if c in se.index else ""
        fe = (results[label].info.get("fe") or "").split(" + ")
        for t in terms:
            col[f"{t} FE"] = "Yes" if t in fe else "No"
        resid = np.asarray(fit.resid(), float)
        col["Observations"] = str(resid.size)
        if resid.size == y.size:  # R-squared from public pieces: 1 - SSR / SST
            col["R2"] = f"{1 - resid @ resid / np.sum((y - y.mean()) ** 2):.3f}"
        table[label] = col
    return pd.DataFrame(table).rename_axis("term").reset_index()


def _check_event_study(opts: dict[str, Any], path: str) -> None:
    leads, lags, ref = opts.get("leads", 6), opts.get("lags", 8), opts.get("ref", -1)
    if not -leads <= ref <= lags:
        raise fail(f"{path}.ref", f"ref={ref} lies outside the window [-{leads}, {lags}]")


def _event_study(panel, opts, ctx):
    from ..did.event_study import event_study

    return event_study(panel, level=ctx.level, **fe_kwargs(opts))


def _cs(panel, opts, ctx):
    from ..staggered.callaway_santanna import callaway_santanna

    kw = estimator_kwargs(opts, "control", "method", "covariates", "aggregate", "base_period", "cluster",
              "bootstrap", "uniform", "multiplier", "random_seed")
    return callaway_santanna(panel, level=ctx.level, **kw)


def _check_cs(opts: dict[str, Any], path: str) -> None:
    if opts.get("uniform") and not opts.get("bootstrap"):
        raise fail(f"{path}.uniform", "uniform bands need the multiplier bootstrap: set "
                   "bootstrap = <number of draws>")


def _sa(panel, opts, ctx):
    from ..staggered.estimators import sun_abraham

    kw = estimator_kwargs(opts, "leads", "lags", "covariates", "cluster", "fe")
    return sun_abraham(panel, level=ctx.level, **fe_kwargs(kw))


def _imputation(panel, opts, ctx):
    from ..staggered.estimators import imputation

    kw = estimator_kwargs(opts, "covariates", "cluster", "weights", "event_time", "vcov", "fe")
    return imputation(panel, level=ctx.level, **fe_kwargs(kw))


def _bacon(panel, opts, ctx):
    from ..staggered.bacon import bacon_decomposition

    kw = estimator_kwargs(opts, "covariates", "weights")
    kw.setdefault("covariates", ())  # the decomposition is of the TWFE without covariates
    return bacon_decomposition(panel, **kw)


def _bacon_output(result, opts, ctx, panel) -> StepOutput:
    from matplotlib.figure import Figure

    comparisons = result.table
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot()
    for i, (typ, sub) in enumerate(comparisons.groupby("type")):
        ax.scatter(sub["weight"], sub["estimate"], label=typ, color=f"C{i}")
    ax.axhline(result.twfe, color="black", linestyle="--", linewidth=1,
               label=f"TWFE = {result.twfe:.4g}")
    ax.set_xlabel("weight")
    ax.set_ylabel("2x2 DID estimate")
    ax.set_title("Goodman-Bacon decomposition")
    ax.legend(frameon=False, fontsize=8)
    return StepOutput(result=result, table=result.effects(),
                      extras=MappingProxyType({"comparisons": comparisons}),
                      figures=MappingProxyType({"decomposition": fig}))


# ---------------------------------------------------------------------------- honest DID
def _honest(panel, opts, ctx):
    from ..did.honest_did import event_study_coefficients, honest_did

    coefs = event_study_coefficients(panel, **estimator_kwargs(opts, "leads", "lags", "estimator",
                                                     "bin_ends", "covariates", "cluster"))
    return honest_did(coefs, level=ctx.level, **estimator_kwargs(opts, "restriction", "M", "random_seed",
                                                       "n_sim"))


def _honest_output(result, opts, ctx, panel) -> StepOutput:
    from ..report.staggered_plots import sensitivity_plot

    fig = sensitivity_plot(result, labels=["honest DiD"],
                           title=f"Sensitivity to parallel-trend violations ({result.method})")
    return StepOutput(result=result, table=result.effects(level=ctx.level),
                      figures=MappingProxyType({"sensitivity": fig}))


def _check_honest(opts: dict[str, Any], path: str) -> None:
    if opts.get("leads", 6) < 2:
        raise fail(f"{path}.leads", "honest DiD needs at least two pre-periods (leads >= 2)")
    if any(m < 0 for m in opts.get("M", ())):
        raise fail(f"{path}.M", "M values must be >= 0")


# ---------------------------------------------------------------------------- registry
_ES = {"leads": check_int(1), "lags": check_int(0), "bin_ends": check_bool, "ref": check_int()}

KINDS: dict[str, StepKind] = {
    "twfe": did_kind("twfe", {**CLASSICAL, **FE}, _twfe, propagate=True,
                 columns=with_fe_columns(lambda o: []),
                 description="fixed-effects DID (pyfixest, CRV1; fe = \"unit + time\" ...)"),
    "fe_ladder": did_kind(
        "fe_ladder", {**CLASSICAL, "specs": STR_LIST, "labels": STR_LIST}, _ladder,
        _ladder_output, check=_check_ladder,
        columns=lambda o: [c for s in (o.get("specs") or LADDER) for c in fe_columns(s)],
        description="the DID under several fixed-effect sets, one column each (default: "
                    "OLS / time FE / unit FE / two-way)"),
    "event_study": did_kind("event_study", {**CLASSICAL, **_ES, **FE}, _event_study,
                        propagate=True, check=_check_event_study, columns=with_fe_columns(lambda o: []),
                        description="TWFE event study with binned end points"),
    "callaway_santanna": did_kind(
        "callaway_santanna",
        {"control": check_str(("never_treated", "not_yet_treated")),
         "method": check_str(("dr", "ipw", "reg")), "covariates": STR_LIST,
         "aggregate": check_list(check_str(("simple", "group", "dynamic", "calendar")),
                                 what="aggregation"),
         "base_period": check_str(("varying", "universal")), "cluster": check_str(),
         "bootstrap": check_int(1), "uniform": check_bool,
         "multiplier": check_str(("rademacher", "mammen")), "random_seed": check_int(0)},
        _cs, propagate=True, check=_check_cs, columns=covariate_columns,
        description="Callaway-Sant'Anna ATT(g, t) with group / dynamic aggregations"),
    "sun_abraham": did_kind(
        "sun_abraham", {"leads": check_int(0), "lags": check_int(0), "covariates": STR_LIST,
                        "cluster": check_str(), **FE},
        _sa, propagate=True, columns=with_fe_columns(covariate_columns),
        description="Sun-Abraham interaction-weighted event study"),
    "imputation": did_kind(
        "imputation", {**CLASSICAL, **FE, "event_time": check_bool,
                       "vcov": check_str(("bjs", "gardner"))}, _imputation, propagate=True,
        columns=with_fe_columns(covariate_columns),
        description="Borusyak-Jaravel-Spiess imputation (BJS or Gardner SE)"),
    "bacon": did_kind("bacon", {"covariates": STR_LIST, "weights": OPT_STR}, _bacon, _bacon_output,
                  columns=covariate_columns, description="Goodman-Bacon decomposition of the TWFE DID"),
    "honest_did": did_kind(
        "honest_did",
        {"estimator": check_str(("sun_abraham", "event_study")), "leads": check_int(2),
         "lags": check_int(0), "bin_ends": check_bool, "covariates": STR_LIST,
         "cluster": check_str(), "restriction": check_str(("rm", "sd")), "M": NUM_LIST,
         "random_seed": check_int(0), "n_sim": check_int(1000)},
        _honest, _honest_output, check=_check_honest, columns=covariate_columns,
        description="Rambachan-Roth sensitivity of the post-period ATT"),
}
