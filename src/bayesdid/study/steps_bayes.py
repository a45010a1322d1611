"""Bayesian DID step kinds of a study: the hierarchical DID, its sensitivity to parallel-trend
violations, posterior contrasts between groups, and Bayesian mediation (registered in
:mod:`bayesdid.study.steps`).

``bayes_sensitivity`` and ``posterior_contrasts`` post-process an earlier
``hierarchical_did`` step named by ``of`` (declared in ``refs``, so the spec parser checks it
exists, and the cache refits them when it changes).

Examples
--------
>>> sorted(KINDS)
['bayes_sensitivity', 'bayesian_mediation', 'hierarchical_did', 'posterior_contrasts']
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ..bayes import native
from ..results import EffectResult
from .checks import (
    STR_LIST,
    check_bool,
    check_int,
    check_list,
    check_num,
    check_str,
    check_table,
    fail,
)
from .steps_base import (
    COMMON,
    SAMPLER,
    StepContext,
    StepKind,
    StepOutput,
    did_kind,
    fe_columns,
    fe_value,
    fit_kwargs,
    simple_output,
    tuples,
)

__all__ = ["KINDS"]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- hierarchical DID
_PRIOR_FIELDS = ("sigma_sd", "effect_mean_sd", "effect_sd", "nu_rate")
_HDID_MODEL_KEYS = ("pool", "event_time", "leads", "errors", "covariates", "likelihood", "fe")


def _check_hdid(opts: dict[str, Any], path: str) -> None:
    if opts.get("errors") == "student_t" and opts.get("likelihood") == "marginal":
        raise fail(f"{path}.likelihood", "Student-t errors have no closed-form marginal; "
                   "use likelihood = \"dense\" or \"auto\"")
    if opts.get("leads") == 1:
        raise fail(f"{path}.leads", "a Bayesian event study needs leads >= 2 (k = -1 is the "
                   "reference); 0 turns the leads off")


def _hdid_groups(opts: dict[str, Any]) -> list[str]:
    split = f"{opts['median_split']}_split" if "median_split" in opts else None
    return [g for g in opts.get("pool") or () if g != "cohort" and g != split]


def _hdid(panel, opts, ctx):
    from ..did.hierarchical import HierarchicalDiD
    from ..did.priors import DiDPriors
    from ..checks.heterogeneity import with_median_split

    if "median_split" in opts:
        panel = with_median_split(panel, opts["median_split"])
    opts = tuples(opts)
    model_opts = {k: opts[k] for k in _HDID_MODEL_KEYS if k in opts}
    if "fe" in model_opts:
        model_opts["fe"] = fe_value(model_opts["fe"])
    if "random_effects" in opts:  # "auto" (the model's default), "none", or terms
        model_opts["random_effects"] = fe_value(opts["random_effects"])
    if "priors" in opts:
        model_opts["priors"] = DiDPriors(**opts["priors"])
    fits = fit_kwargs(opts)
    model = HierarchicalDiD(**model_opts)
    logger.info("  %s, %s likelihood; %d chains x %d draws (tune %d)", model.errors,
                model.form(), fits.get("chains", 4), fits.get("draws", 1000),
                fits.get("tune", 1000))
    return model.fit(panel, progress=ctx.progress, **fits)


# ---------------------------------------------------------------------------- sensitivity
def _sensitivity_refs(opts: Mapping[str, Any], path: str,
                      kinds: Mapping[str, tuple[str, Mapping[str, Any]]]) -> None:
    of_kind, of_opts = kinds[opts["of"]]
    if of_kind != "hierarchical_did" or of_opts.get("leads", 0) < 2:
        raise fail(f"{path}.of", f"step {opts['of']!r} must be a hierarchical_did step with "
                   "leads >= 2 (its lead effects bound the violation)")
    if "compare" in opts and kinds[opts["compare"]][0] != "honest_did":
        raise fail(f"{path}.compare", f"step {opts['compare']!r} is not a honest_did step")


def _check_sensitivity(opts: dict[str, Any], path: str) -> None:
    if "of" not in opts:
        raise fail(f"{path}.of", "required key is missing (the hierarchical_did step)")
    if opts.get("violation") == "per_period" and "event_times" not in opts:
        raise fail(f"{path}.event_times", "violation = \"per_period\" needs event_times")
    if "weights" in opts and len(opts["weights"]) != len(opts.get("event_times", ())):
        raise fail(f"{path}.weights", "one weight per event time")
    if any(m < 0 for m in opts.get("M", ())):
        raise fail(f"{path}.M", "M values must be >= 0")


def _run_sensitivity(panel, opts: dict[str, Any], ctx: StepContext) -> StepOutput:
    from ..did.bayes_sensitivity import bayes_sensitivity
    from ..report.staggered_plots import sensitivity_plot

    kw = {k: tuple(opts[k]) if isinstance(opts[k], (list, tuple)) else opts[k]
          for k in ("M", "event_times", "weights", "violation", "interval", "random_seed")
          if k in opts}
    result = bayes_sensitivity(ctx.earlier[opts["of"]], level=ctx.level, **kw)
    results, labels = [result], ["Bayesian"]
    if "compare" in opts:
        results.insert(0, ctx.earlier[opts["compare"]])
        labels.insert(0, "honest DiD")
    fig = sensitivity_plot(*results, labels=labels,
                           title="ATT under bounded parallel-trend violations")
    return StepOutput(result=result, table=result.effects(),
                      figures=MappingProxyType({"sensitivity": fig}))


# ---------------------------------------------------------------------------- contrasts
def _check_contrasts(opts: dict[str, Any], path: str) -> None:
    if "of" not in opts:
        raise fail(f"{path}.of", "required key is missing (a hierarchical_did step)")
    given = [k for k in ("by", "prefix", "groups") if k in opts]
    if len(given) != 1:
        raise fail(path, f"give exactly one of by, prefix, groups; got {given or 'none'}")
    if "groups" in opts and len(opts["groups"]) < 2:
        raise fail(f"{path}.groups", "contrasts need at least two groups")


def _contrast_refs(opts: Mapping[str, Any], path: str,
                   kinds: Mapping[str, tuple[str, Mapping[str, Any]]]) -> None:
    of_kind, of_opts = kinds[opts["of"]]
    if of_kind != "hierarchical_did":
        raise fail(f"{path}.of", f"step {opts['of']!r} is a {of_kind} step; posterior "
                   "contrasts need a hierarchical_did step pooled by the column")
    by = opts.get("by")
    pooled = list(of_opts.get("pool") or ())
    if by and "pool" in of_opts and by not in pooled:
        raise fail(f"{path}.by", f"step {opts['of']!r} is not pooled by {by!r} (pool = "
                   f"{pooled}); add it to that step's pool")


def _run_contrasts(panel, opts: dict[str, Any], ctx: StepContext) -> StepOutput:
    from ..did.contrasts import posterior_contrasts

    result = ctx.earlier[opts["of"]]
    estimand = opts.get("estimand", "att")
    prefix = f"{opts['by']}=" if "by" in opts else opts.get("prefix")
    groups = list(opts["groups"]) if "groups" in opts else None
    contrasts = posterior_contrasts(result, groups=groups, prefix=prefix, estimand=estimand,
                                    level=ctx.level)
    shown = list(dict.fromkeys([*contrasts["group_a"], *contrasts["group_b"]]))
    table = result.effects(level=ctx.level, interval=opts.get("interval", "hdi"))
    table = table[(table["estimand"] == estimand) & table["group"].isin(shown)]
    summary = EffectResult(table=table.reset_index(drop=True), method=result.method,
                           info={"of": opts["of"], "estimand": estimand})
    return StepOutput(result=summary, table=summary.effects(),
                      extras=MappingProxyType({"contrasts": contrasts}))


# ---------------------------------------------------------------------------- mediation
def _bayes_mediation(panel, opts, ctx):
    from ..checks.bayes_mediation import BayesianMediation, MediationPriors

    model = BayesianMediation(list(opts["mediators"]), joint=opts.get("joint", False),
                              covariates=None if "covariates" not in opts
                              else list(opts["covariates"]),
                              priors=MediationPriors(slope_scale=opts.get("prior_scale", 2.5)))
    return model.fit(panel, progress=ctx.progress, **fit_kwargs(opts))


def _check_mediators(opts: dict[str, Any], path: str) -> None:
    if not opts.get("mediators"):
        raise fail(f"{path}.mediators", "required key is missing (a list of mediator columns)")


# ---------------------------------------------------------------------------- registry
def _priors(value: Any, path: str) -> MappingProxyType:
    return MappingProxyType(check_table(value, path, {f: check_num(0, open_=True)
                                                      for f in _PRIOR_FIELDS}, what="prior"))


KINDS: dict[str, StepKind] = {
    "hierarchical_did": did_kind(
        "hierarchical_did",
        {"pool": STR_LIST, "event_time": check_bool, "leads": check_int(0),
         "errors": check_str(("ar1", "iid", "student_t")), "covariates": STR_LIST,
         "likelihood": check_str(("auto", "marginal", "dense")), "priors": _priors,
         "median_split": check_str(), "fe": check_str(empty=True),
         "random_effects": check_str(empty=True), **SAMPLER},
        _hdid, simple_output, bayesian=True, propagate=True, check=_check_hdid,
        prepare=lambda: native.prebuild(native.DID_SOURCE),
        columns=lambda o: [o.get("median_split"), *(o.get("covariates") or []),
                           *fe_columns(o.get("fe")),
                           *fe_columns(None if o.get("random_effects") == "auto"
                                       else o.get("random_effects"))],
        groups=_hdid_groups,
        description="hierarchical Bayesian DID / event study (clean comparison)"),
    "bayes_sensitivity": StepKind(
        "bayes_sensitivity",
        {**COMMON, "of": check_str(), "compare": check_str(),
         "M": check_list(check_num(), what="number"),
         "event_times": check_list(check_int(0), what="int"),
         "weights": check_list(check_num(0), what="number"),
         "violation": check_str(("common", "per_period")),
         "interval": check_str(("hdi", "eti")), "random_seed": check_int(0)},
        _run_sensitivity, check=_check_sensitivity, refs=("of", "compare"),
        check_refs=_sensitivity_refs,
        description="posterior ATT net of a bounded parallel-trend violation"),
    "posterior_contrasts": StepKind(
        "posterior_contrasts",
        {**COMMON, "of": check_str(), "by": check_str(), "prefix": check_str(),
         "groups": STR_LIST, "estimand": check_str(), "interval": check_str(("hdi", "eti"))},
        _run_contrasts, check=_check_contrasts, refs=("of",), check_refs=_contrast_refs,
        description="group effects of a pooled hierarchical DID and P(A > B) contrasts"),
    "bayesian_mediation": did_kind(
        "bayesian_mediation",
        {"mediators": STR_LIST, "joint": check_bool, "covariates": STR_LIST,
         "prior_scale": check_num(0, open_=True), **SAMPLER},
        _bayes_mediation, simple_output, bayesian=True, check=_check_mediators,
        columns=lambda o: [*o["mediators"], *(o.get("covariates") or [])],
        description="Bayesian three-step mediation with unit and time fixed effects"),
}
