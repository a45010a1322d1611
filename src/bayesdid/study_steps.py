"""The kinds of step a study spec can run: for each, its option schema and its runner.

A step kind is one :class:`StepKind`: the options a spec may give (checked strictly by
:mod:`bayesdid.study_spec`, each with the key's path in errors), whether it samples a
posterior, a cross-option check, and a runner that turns the panel and the options into a
:class:`StepOutput` (the result, its effects table at the study's level, extra tables and
figures). Adding a method to studies means adding one entry to :data:`STEPS`.

Examples
--------
>>> sorted(STEPS)[:3]
['event_study', 'hierarchical_did', 'twfe']
>>> STEPS["hierarchical_did"].bayesian
True
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pandas as pd

from .study_checks import (
    OPT_STR,
    STR_LIST,
    Check,
    check_bool,
    check_int,
    check_num,
    check_str,
    check_table,
    fail,
)

__all__ = ["StepKind", "StepOutput", "StepContext", "STEPS"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepContext:
    """What a runner may use besides the panel: the study's interval level, whether to show
    progress, and the results of the steps run before it (by name)."""

    level: float = 0.95
    progress: bool = True
    earlier: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, eq=False)
class StepOutput:
    """A step's outcome: ``result`` (an EffectResult or a result exposing ``effects()``),
    ``table`` (its tidy effects at the study's level and interval), named ``extras``
    (DataFrames written as CSV next to the report) and named matplotlib ``figures``."""

    result: Any
    table: pd.DataFrame
    extras: Mapping[str, pd.DataFrame] = field(default_factory=lambda: MappingProxyType({}))
    figures: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


Runner = Callable[[Any, dict[str, Any], StepContext], StepOutput]


@dataclass(frozen=True)
class StepKind:
    """One kind of step: option ``schema``, ``runner``, and whether it is ``bayesian``.

    ``check`` validates combinations of options (``check(options, path)`` raises a
    :class:`~bayesdid.errors.SpecError` naming the key's path). ``refs`` are the option
    keys whose values name earlier steps (whose results the runner reads from
    ``StepContext.earlier``)."""

    name: str
    schema: Mapping[str, Check]
    runner: Runner
    bayesian: bool = False
    check: Callable[[dict[str, Any], str], None] | None = None
    description: str = ""
    refs: tuple[str, ...] = ()

    def refs_of(self, options: Mapping[str, Any]) -> list[str]:
        """Names of the earlier steps that ``options`` refer to (through ``refs`` keys)."""
        names: list[str] = []
        for key in self.refs:
            value = options.get(key)
            if isinstance(value, str):
                names.append(value)
            elif value is not None:
                names.extend(value)
        return names


# ---------------------------------------------------------------------------- shared options
COMMON: dict[str, Check] = {"kind": check_str(), "name": check_str()}
CLASSICAL: dict[str, Check] = {"covariates": STR_LIST, "cluster": check_str(),
                               "weights": OPT_STR}
SAMPLER: dict[str, Check] = {
    "draws": check_int(1), "tune": check_int(0), "chains": check_int(1), "cores": check_int(1),
    "random_seed": check_int(0), "target_accept": check_num(0, 1, open_=True),
    "interval": check_str(("hdi", "eti")),
}
SAMPLER_FIT_KEYS = ("draws", "tune", "chains", "cores", "random_seed", "target_accept")


def _tuples(opts: Mapping[str, Any], keys: tuple[str, ...] = ("covariates", "pool")) -> dict:
    out = dict(opts)
    for key in keys:
        if key in out:
            out[key] = tuple(out[key])
    return out


def classical_output(result, ctx: StepContext, **extras: pd.DataFrame) -> StepOutput:
    return StepOutput(result=result, table=result.effects(level=ctx.level),
                      extras=MappingProxyType(extras))


def bayesian_output(result, options: Mapping[str, Any], ctx: StepContext) -> StepOutput:
    table = result.effects(level=ctx.level, interval=options.get("interval", "hdi"))
    return StepOutput(result=result, table=table)


# ---------------------------------------------------------------------------- twfe
def _run_twfe(panel, opts: dict[str, Any], ctx: StepContext) -> StepOutput:
    from .classical import twfe

    return classical_output(twfe(panel, level=ctx.level, **_tuples(opts)), ctx)


# ---------------------------------------------------------------------------- event study
def _check_event_study(opts: dict[str, Any], path: str) -> None:
    leads, lags, ref = opts.get("leads", 6), opts.get("lags", 8), opts.get("ref", -1)
    if not -leads <= ref <= lags:
        raise fail(f"{path}.ref", f"ref={ref} lies outside the window [-{leads}, {lags}]")


def _run_event_study(panel, opts: dict[str, Any], ctx: StepContext) -> StepOutput:
    from .classical import event_study

    return classical_output(event_study(panel, level=ctx.level, **_tuples(opts)), ctx)


# ---------------------------------------------------------------------------- hierarchical DID
_PRIOR_FIELDS = ("sigma_sd", "effect_mean_sd", "effect_sd", "nu_rate")
_HDID_MODEL_KEYS = ("pool", "event_time", "leads", "errors", "covariates", "likelihood")


def _check_hdid(opts: dict[str, Any], path: str) -> None:
    if opts.get("errors") == "student_t" and opts.get("likelihood") == "marginal":
        raise fail(f"{path}.likelihood", "Student-t errors have no closed-form marginal; "
                   "use likelihood = \"dense\" or \"auto\"")


def _run_hdid(panel, opts: dict[str, Any], ctx: StepContext) -> StepOutput:
    from .bayes.did import HierarchicalDiD
    from .bayes.priors import DiDPriors

    opts = _tuples(opts)
    model_opts = {k: opts[k] for k in _HDID_MODEL_KEYS if k in opts}
    if "priors" in opts:
        model_opts["priors"] = DiDPriors(**opts["priors"])
    fit_opts = {k: opts[k] for k in SAMPLER_FIT_KEYS if k in opts}
    model = HierarchicalDiD(**model_opts)
    logger.info("  %s, %s likelihood; %d chains x %d draws (tune %d)", model.errors,
                model.form(), fit_opts.get("chains", 4), fit_opts.get("draws", 1000),
                fit_opts.get("tune", 1000))
    result = model.fit(panel, progress=ctx.progress, **fit_opts)
    return bayesian_output(result, opts, ctx)


# ---------------------------------------------------------------------------- registry
STEPS: dict[str, StepKind] = {
    "twfe": StepKind(
        "twfe", {**COMMON, **CLASSICAL}, _run_twfe,
        description="two-way fixed-effects DID (pyfixest, CRV1)"),
    "event_study": StepKind(
        "event_study",
        {**COMMON, **CLASSICAL, "leads": check_int(1), "lags": check_int(0),
         "bin_ends": check_bool, "ref": check_int()},
        _run_event_study, check=_check_event_study,
        description="TWFE event study with binned end points"),
    "hierarchical_did": StepKind(
        "hierarchical_did",
        {**COMMON, "pool": STR_LIST, "event_time": check_bool, "leads": check_int(0),
         "errors": check_str(("ar1", "iid", "student_t")), "covariates": STR_LIST,
         "likelihood": check_str(("auto", "marginal", "dense")),
         "priors": lambda v, p: MappingProxyType(check_table(
             v, p, {f: check_num(0, open_=True) for f in _PRIOR_FIELDS}, what="prior")),
         **SAMPLER},
        _run_hdid, bayesian=True, check=_check_hdid,
        description="hierarchical Bayesian DID / event study (clean comparison)"),
}
