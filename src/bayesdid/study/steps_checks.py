"""Robustness-check step kinds of a study (the :mod:`bayesdid.checks` family): heterogeneity,
placebo tests, robustness specifications, PSM-DID and three-step mediation (registered in
:mod:`bayesdid.study.steps`).

Every kind takes the data options of :data:`~bayesdid.study.steps_base.DATA_OPTIONS`
(``outcome``, ``outcome_from``, ``where``, ``cohorts``); options map one to one to the
estimator's keyword arguments.

Examples
--------
>>> sorted(KINDS)
['heterogeneity', 'mediation', 'placebo', 'psm_did', 'robustness']
"""

from __future__ import annotations

import logging
from types import MappingProxyType
from typing import Any

import pandas as pd

from .checks import (
    STR_LIST,
    check_bool,
    check_int,
    check_list,
    check_num,
    check_str,
    check_unit_id,
    expected,
    fail,
)
from .steps_base import (
    CLASSICAL,
    FE,
    INT_LIST,
    StepKind,
    StepOutput,
    covariate_columns,
    did_kind,
    estimator_kwargs,
    fe_columns,
    fe_kwargs,
    with_fe_columns,
)

__all__ = ["KINDS"]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- heterogeneity
def _het_by(opts: dict[str, Any]) -> str:
    if "median_split" in opts:
        return opts.get("by", f"{opts['median_split']}_split")
    return opts["by"]


def _check_het(opts: dict[str, Any], path: str) -> None:
    if "by" not in opts and "median_split" not in opts:
        raise fail(f"{path}.by", "required key is missing (or give median_split = "
                   "\"<covariate>\")")


def _heterogeneity(panel, opts, ctx):
    from ..checks.heterogeneity import heterogeneity, with_median_split

    if "median_split" in opts:
        panel = with_median_split(panel, opts["median_split"], name=_het_by(opts))
    kw = fe_kwargs(estimator_kwargs(opts, "covariates", "cluster", "weights", "fe"))
    return heterogeneity(panel, _het_by(opts), kind=opts.get("form", "interaction"),
                         level=ctx.level, **kw)


def _het_output(result, opts, ctx, panel) -> StepOutput:
    test = pd.DataFrame([dict(result.info["equality_test"])])
    return StepOutput(result=result, table=result.effects(level=ctx.level),
                      extras=MappingProxyType({"equality_test": test}))


# ---------------------------------------------------------------------------- placebo
def _placebo(panel, opts, ctx):
    from ..checks.placebo import placebo

    kw = fe_kwargs(estimator_kwargs(opts, "n_draws", "shifts", "timing", "pool", "covariates", "cluster",
                       "weights", "random_seed", "fe"))
    return placebo(panel, opts.get("placebo", "random_timing"), level=ctx.level,
                   progress=ctx.progress, **kw)


def _placebo_output(result, opts, ctx, panel) -> StepOutput:
    from ..report.placebo_plots import placebo_plot

    figures = {} if result.kind == "shifted_timing" else {"distribution": placebo_plot(result)}
    return StepOutput(result=result, table=result.effects(), figures=MappingProxyType(figures))


def _check_placebo(opts: dict[str, Any], path: str) -> None:
    kind_ = opts.get("placebo", "random_timing")
    allowed = {"shifted_timing": ("shifts",), "random_timing": ("n_draws", "timing"),
               "fictional_group": ("n_draws", "pool"), "both_random": ("n_draws",)}
    for key in ("shifts", "n_draws", "timing", "pool"):
        if key in opts and key not in allowed[kind_]:
            raise fail(f"{path}.{key}", f"does not apply to placebo = {kind_!r}")
    if 0 in opts.get("shifts", ()):
        raise fail(f"{path}.shifts", "a shift of 0 is the real timing, not a placebo")


# ---------------------------------------------------------------------------- robustness
def _robustness(panel, opts, ctx):
    from ..checks.robustness import robustness

    kw = estimator_kwargs(opts, "other_policies", "exclude_units", "exclude_periods", "replace_outcome",
              "covariates", "cluster", "weights", "fe")
    kw = {k: list(v) if isinstance(v, tuple) else v for k, v in fe_kwargs(kw).items()}
    return robustness(panel, data=ctx.data, level=ctx.level, progress=ctx.progress, **kw)


def _robustness_output(result, opts, ctx, panel) -> StepOutput:
    return StepOutput(result=result, table=result.effects(),
                      extras=MappingProxyType({"specifications": result.table()}))


def _check_robustness(opts: dict[str, Any], path: str) -> None:
    if not any(k in opts for k in ("other_policies", "exclude_units", "exclude_periods",
                                   "replace_outcome")):
        raise fail(path, "a robustness step needs at least one of other_policies, "
                   "exclude_units, exclude_periods, replace_outcome")


# ---------------------------------------------------------------------------- PSM-DID
def _caliper(value: Any, path: str):
    if value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise expected(path, "a positive number or false (no caliper)", value)
    return float(value)


def _psm(panel, opts, ctx):
    from ..checks.psm import psm_did

    kw = estimator_kwargs(opts, "covariates", "scores", "method", "k", "replacement", "caliper",
              "caliper_scale", "kernel", "bandwidth", "did_covariates", "cluster",
              "random_seed", "fe")
    kw = fe_kwargs(kw)
    return psm_did(panel, data=ctx.data, level=ctx.level, **kw)


def _psm_output(result, opts, ctx, panel) -> StepOutput:
    from ..report.psm_plots import balance_plot

    balance = result.balance
    pooled = balance[balance["period"].astype(str) == "all"] if "period" in balance else balance
    fig = balance_plot(balance)
    extras = {"balance": pooled.reset_index(drop=True), "logits": result.logits}
    return StepOutput(result=result, table=result.effects(level=ctx.level),
                      extras=MappingProxyType(extras), figures=MappingProxyType({"balance": fig}))


# ---------------------------------------------------------------------------- mediation
def _check_mediators(opts: dict[str, Any], path: str) -> None:
    if not opts.get("mediators"):
        raise fail(f"{path}.mediators", "required key is missing (a list of mediator columns)")


def _mediation(panel, opts, ctx):
    from ..checks.mediation import mediation

    kw = estimator_kwargs(opts, "covariates", "cluster", "weights", "joint", "n_boot", "random_seed")
    return mediation(panel, list(opts["mediators"]), level=ctx.level, progress=ctx.progress,
                     **kw)


def _mediation_output(result, opts, ctx, panel) -> StepOutput:
    sobel = result.info.get("sobel")
    extras = {}
    if isinstance(sobel, dict) and sobel:
        first = next(iter(sobel.values()))
        extras["sobel"] = (pd.DataFrame([dict(v, mediator=k) for k, v in sobel.items()])
                           if isinstance(first, dict) else pd.DataFrame([sobel]))
    return StepOutput(result=result, table=result.effects(level=ctx.level),
                      extras=MappingProxyType(extras))



# ---------------------------------------------------------------------------- registry
KINDS: dict[str, StepKind] = {
    "heterogeneity": did_kind(
        "heterogeneity",
        {**CLASSICAL, "by": check_str(), "median_split": check_str(),
         "form": check_str(("interaction", "subsample")), **FE},
        _heterogeneity, _het_output, check=_check_het,
        columns=lambda o: [o.get("median_split") or o.get("by"), *covariate_columns(o),
                           *fe_columns(o.get("fe"))],
        description="ATT by group / cohort / overlap / median split, with an equality test"),
    "placebo": did_kind(
        "placebo",
        {**CLASSICAL, "placebo": check_str(("shifted_timing", "random_timing",
                                            "fictional_group", "both_random")),
         "n_draws": check_int(10), "shifts": INT_LIST, "timing": check_str(("advance", "any")),
         "pool": check_str(("controls", "all")), "random_seed": check_int(0), **FE},
        _placebo, _placebo_output, check=_check_placebo, columns=with_fe_columns(covariate_columns),
        description="placebo tests: shifted or random timing, fictional group, both random"),
    "robustness": did_kind(
        "robustness",
        {**CLASSICAL, "other_policies": STR_LIST,
         "exclude_units": check_list(check_unit_id, what="unit ids"),
         "exclude_periods": INT_LIST, "replace_outcome": STR_LIST, **FE},
        _robustness, _robustness_output, check=_check_robustness, columns=with_fe_columns(covariate_columns),
        description="the baseline under other-policy controls, exclusions, other outcomes"),
    "psm_did": did_kind(
        "psm_did",
        {"covariates": STR_LIST, "scores": check_str(("period", "pooled")),
         "method": check_str(("nearest", "kernel")), "k": check_int(1),
         "replacement": check_bool, "caliper": _caliper,
         "caliper_scale": check_str(("logit_sd", "pscore")),
         "kernel": check_str(("epanechnikov", "gaussian")),
         "bandwidth": check_num(0, open_=True), "did_covariates": STR_LIST,
         "cluster": check_str(), "random_seed": check_int(0), **FE},
        _psm, _psm_output,
        columns=with_fe_columns(lambda o: list(o.get("did_covariates") or [])),
        description="period-by-period PSM-DID on three samples, balance tests"),
    "mediation": did_kind(
        "mediation",
        {**CLASSICAL, "mediators": STR_LIST, "joint": check_bool, "n_boot": check_int(0),
         "random_seed": check_int(0)},
        _mediation, _mediation_output, columns=lambda o: [*o["mediators"], *covariate_columns(o)],
        check=_check_mediators,
        description="three-step mediation with a cluster-bootstrap indirect effect"),
}
