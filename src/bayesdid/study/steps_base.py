"""Building blocks of study steps (see :mod:`bayesdid.study.steps` for the registry).

:class:`StepKind` (option schema, runner, cross-option and cross-step checks),
:class:`StepOutput` and :class:`StepContext`, the option groups shared by many kinds
(classical, sampler, the data options of a DID step) and :func:`did_runner`, which prepares
the panel a DID-type step runs on: a replaced outcome (``outcome``), the efficiency scores
of an earlier efficiency step (``outcome_from``, with its uncertainty propagated through
:func:`bayesdid.efficiency.efficiency_did.efficiency_did` when ``propagate = M``), a sub-design
(``where``, ``cohorts``), and columns of the study data the panel does not carry.

Examples
--------
>>> from bayesdid.study.checks import check_int
>>> kind = StepKind("demo", {**COMMON, "draws": check_int(1)}, lambda p, o, c: None,
...                 refs=("of",))
>>> kind.refs_of({"of": "fit"})
['fit']
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from ..errors import BayesDidError, ColumnError, DesignError
from ..panel import LogEntry, Panel
from .checks import (
    OPT_STR,
    STR_LIST,
    Check,
    check_int,
    check_list,
    check_num,
    check_plain_table,
    check_str,
    check_unit_id,
    expected,
    fail,
)

__all__ = [
    "CLASSICAL",
    "COMMON",
    "DATA_OPTIONS",
    "SAMPLER",
    "StepContext",
    "StepKind",
    "StepOutput",
    "FE",
    "INT_LIST",
    "NUM_LIST",
    "covariate_columns",
    "did_kind",
    "did_runner",
    "effects_at",
    "estimator_kwargs",
    "fe_columns",
    "fe_kwargs",
    "fe_value",
    "with_fe_columns",
    "fit_kwargs",
    "with_columns",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepContext:
    """What a runner may use besides the panel: the study's interval level, whether to show
    progress, the results of the steps run before it (``earlier``, by name) and their full
    outputs (``outputs``: extra tables too), the study's data frame (``data``, every column
    the source holds, not only the panel's) and the panel's construction arguments."""

    level: float = 0.95
    progress: bool = True
    earlier: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    outputs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    data: pd.DataFrame | None = None
    panel_kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


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
# check_refs(options, path, kinds) with kinds = {earlier step name: (kind, options)}
RefCheck = Callable[[Mapping[str, Any], str, Mapping[str, tuple[str, Mapping[str, Any]]]], None]


@dataclass(frozen=True)
class StepKind:
    """One kind of step: option ``schema``, ``runner``, and whether it is ``bayesian``.

    ``check`` validates combinations of options (``check(options, path)`` raises a
    :class:`~bayesdid.errors.SpecError` naming the key's path). ``refs`` are the option
    keys whose values name earlier steps (whose results the runner reads from
    ``StepContext.earlier``); ``check_refs(options, path, kinds)`` validates what they
    refer to (``kinds`` maps each earlier step's name to its kind and options).
    ``prepare()``, called when a study holding this kind starts, may start background work
    the runner will need (building a compiled kernel); it must return at once."""

    name: str
    schema: Mapping[str, Check]
    runner: Runner
    bayesian: bool = False
    check: Callable[[dict[str, Any], str], None] | None = None
    description: str = ""
    refs: tuple[str, ...] = ()
    check_refs: RefCheck | None = None
    prepare: Callable[[], None] | None = None

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
def _values_table(value: Any, path: str) -> MappingProxyType:
    """``{column: [values]}``: keep rows whose column value is one of the values."""
    if not isinstance(value, dict):
        raise expected(path, "table of column = [values]", value)
    if not value:
        raise fail(path, "must not be empty")
    return check_plain_table(check_list(check_unit_id, what="str or int values"))(value, path)


COMMON: dict[str, Check] = {"kind": check_str(), "name": check_str()}
CLASSICAL: dict[str, Check] = {"covariates": STR_LIST, "cluster": check_str(),
                               "weights": OPT_STR}
SAMPLER: dict[str, Check] = {
    "draws": check_int(1), "tune": check_int(0), "chains": check_int(1), "cores": check_int(1),
    "random_seed": check_int(0), "target_accept": check_num(0, 1, open_=True),
    "interval": check_str(("hdi", "eti")),
}
SAMPLER_FIT_KEYS = ("draws", "tune", "chains", "cores", "random_seed", "target_accept")
# the data a DID-type step runs on (handled by did_runner, never passed to estimators)
DATA_OPTIONS: dict[str, Check] = {
    "outcome": check_str(), "outcome_from": check_str(), "where": _values_table,
    "cohorts": check_list(check_int(), what="int"),
}
PROPAGATE: dict[str, Check] = {"propagate": check_int(2)}
# posterior draws a bayesian_sfa step keeps (per efficiency score, chains together) for the
# results folder and for the steps that propagate them
STORED_DRAWS = 200
_DATA_KEYS = ("outcome", "outcome_from", "where", "cohorts", "propagate")
EFFICIENCY_KINDS = ("sfa", "bayesian_sfa", "ml_index")


def check_data_options(opts: Mapping[str, Any], path: str) -> None:
    if "outcome" in opts and "outcome_from" in opts:
        raise fail(f"{path}.outcome_from", "give outcome (a data column) or outcome_from (an "
                   "efficiency step), not both")
    if "propagate" in opts and "outcome_from" not in opts:
        raise fail(f"{path}.propagate", "propagates the uncertainty of an efficiency step: "
                   "needs outcome_from = \"<efficiency step>\"")


def check_outcome_from(opts: Mapping[str, Any], path: str,
                       kinds: Mapping[str, tuple[str, Mapping[str, Any]]]) -> None:
    ref = opts.get("outcome_from")
    if ref is None:
        return
    kind = kinds[ref][0]
    if kind not in EFFICIENCY_KINDS:
        raise fail(f"{path}.outcome_from", f"step {ref!r} is a {kind} step; outcome_from "
                   f"takes an efficiency step ({', '.join(EFFICIENCY_KINDS)})")
    if "propagate" in opts and kind != "bayesian_sfa":
        raise fail(f"{path}.propagate", f"propagation needs posterior draws of the efficiency: "
                   f"step {ref!r} is a {kind} step; use a bayesian_sfa step")
    kept = kinds[ref][1].get("stored_draws", STORED_DRAWS)
    if opts.get("propagate", 0) > kept:
        raise fail(f"{path}.propagate", f"step {ref!r} keeps {kept} efficiency draws "
                   f"(stored_draws); propagate at most that many or raise its stored_draws")


def fit_kwargs(opts: Mapping[str, Any]) -> dict[str, Any]:
    return {k: opts[k] for k in SAMPLER_FIT_KEYS if k in opts}


def tuples(opts: Mapping[str, Any], keys: tuple[str, ...] = ("covariates", "pool")) -> dict:
    out = dict(opts)
    for key in keys:
        if key in out and out[key] is not None:
            out[key] = tuple(out[key])
    return out


def effects_at(result: Any, level: float, interval: str | None = None) -> pd.DataFrame:
    """``result.effects(level=, interval=)`` (every result takes both). ``interval`` (a
    Bayesian step's ``hdi``/``eti`` option) applies to results with posterior draws; the
    others (e.g. a propagated classical fit) keep their own kind."""
    from ..bayes.result import BayesResult  # lazy: loads ArviZ

    if not isinstance(result, BayesResult):
        interval = None
    return result.effects(level=level, interval=interval)


# ---------------------------------------------------------------------------- panel preparation
def with_columns(panel: Panel, ctx: StepContext, columns, *, groups=()) -> Panel:
    """``panel`` with ``columns`` of the study data it lacks merged in (on unit and time);
    ``groups`` of them are declared unit-level groups (for pooling / heterogeneity)."""
    need = [c for c in dict.fromkeys(columns) if c and c not in panel.frame.columns]
    new_groups = tuple(g for g in groups if g not in panel.groups)
    if not need and not new_groups:
        return panel
    frame = panel.frame
    if need:
        data = ctx.data
        absent = [c for c in need if data is None or c not in data.columns]
        if absent:
            have = sorted(data.columns) if data is not None else []
            raise ColumnError(f"column {absent[0]!r} is neither in the panel nor in the study "
                              f"data (columns: {', '.join(map(str, have))})", column=absent[0],
                              hint="check the spelling, or add the column to the data")
        keys = [panel.unit, panel.time]
        extra = data[keys + need].drop_duplicates(keys)
        frame = frame.merge(extra, on=keys, how="left", validate="one_to_one")
    panel = dataclasses.replace(panel, frame=frame.reset_index(drop=True),
                                groups=panel.groups + new_groups)
    for g in new_groups:
        varying = panel.frame.groupby(panel.unit)[g].nunique(dropna=False) > 1
        if varying.any():
            bad = panel.frame[panel.frame[panel.unit].isin(varying.index[varying])]
            raise ColumnError(f"{g!r} varies within unit; pooling and heterogeneity need a "
                              "unit-level column", column=g,
                              rows=bad[[panel.unit, panel.time, g]].head(10))
    return panel


def _scores(ctx: StepContext, ref: str) -> pd.DataFrame:
    output = ctx.outputs.get(ref)
    if output is None or "scores" not in output.extras:
        raise BayesDidError(f"step {ref!r} has no efficiency scores (extras['scores'])")
    return output.extras["scores"]


def _outcome_from(panel: Panel, ref: str, ctx: StepContext) -> Panel:
    scores = _scores(ctx, ref)
    name = f"efficiency_{ref}"
    cols = [panel.unit, panel.time]
    merged = panel.frame.drop(columns=[name], errors="ignore").merge(
        scores[cols + ["efficiency"]].rename(columns={"efficiency": name}), on=cols, how="left")
    missing = merged[name].isna()
    if missing.any():
        raise ColumnError(f"{int(missing.sum())} panel row(s) have no efficiency score from "
                          f"step {ref!r}", column=name, rows=merged.loc[missing, cols].head(10),
                          hint="fit the efficiency step on the same units and periods")
    note = LogEntry("outcome_from", f"outcome = efficiency scores of step {ref!r}", len(merged))
    return dataclasses.replace(panel, frame=merged, outcome=name, log=panel.log + (note,))


def _subset(panel: Panel, opts: Mapping[str, Any]) -> Panel:
    frame = panel.frame
    keep = np.ones(len(frame), bool)
    for col, values in (opts.get("where") or {}).items():
        if col not in frame.columns:
            raise ColumnError(f"where: column {col!r} is not in the panel", column=col)
        keep &= frame[col].isin(list(values)).to_numpy()
    if opts.get("cohorts"):
        keep &= (frame["never_treated"] | frame["cohort"].isin(list(opts["cohorts"]))
                 ).fillna(False).to_numpy(bool)
    if keep.all():
        return panel
    sub = frame.loc[keep]
    if sub.empty or sub["never_treated"].all() or not sub["never_treated"].any():
        raise DesignError("the sub-design (where / cohorts) leaves no treated or no "
                          f"never-treated unit: {dict(opts.get('where') or {})}, "
                          f"cohorts={list(opts.get('cohorts') or [])}", column="where")
    detail = ", ".join([f"{c} in {list(v)}" for c, v in (opts.get("where") or {}).items()]
                       + ([f"cohorts {list(opts['cohorts'])} and never-treated"]
                          if opts.get("cohorts") else []))
    logger.info("  sub-design: %s (%d of %d rows)", detail, len(sub), len(frame))
    return panel.with_frame(sub, LogEntry("sub_design", detail, int((~keep).sum())))


def rebuild_kwargs(panel: Panel) -> dict[str, Any]:
    """:meth:`Panel.from_frame` arguments that rebuild ``panel`` from its own frame."""
    return {"unit": panel.unit, "time": panel.time, "outcome": panel.outcome, "cohort": "cohort",
                "groups": list(panel.groups), "covariates": list(panel.covariates),
                "weights": panel.weights, "cluster": panel.cluster, "time_axis": panel.time_axis}


def prepare_panel(panel: Panel, opts: Mapping[str, Any], ctx: StepContext,
                  columns=(), groups=()) -> Panel:
    """The panel a DID-type step runs on (see the module docstring)."""
    cols = [*columns, *groups, *(opts.get("where") or {})]
    if "outcome" in opts:
        cols.append(opts["outcome"])
    panel = with_columns(panel, ctx, cols, groups=groups)
    if "outcome" in opts:
        out = opts["outcome"]
        frame = panel.frame
        bad = frame[out].isna() | ~np.isfinite(pd.to_numeric(frame[out], errors="coerce"))
        if bad.any():
            raise ColumnError(f"outcome {out!r} has {int(bad.sum())} missing or non-numeric "
                              "value(s)", column=out,
                              rows=frame.loc[bad, [panel.unit, panel.time, out]].head(10))
        panel = dataclasses.replace(panel, outcome=out, log=panel.log + (
            LogEntry("replaced_outcome", f"outcome = {out}", len(frame)),))
    if "outcome_from" in opts:
        panel = _outcome_from(panel, opts["outcome_from"], ctx)
    return _subset(panel, opts)


def did_runner(fit: Callable[[Panel, dict[str, Any], StepContext], Any],
               output: Callable[[Any, dict[str, Any], StepContext, Panel], StepOutput], *,
               columns: Callable[[dict[str, Any]], list[str]] = lambda o: [],
               groups: Callable[[dict[str, Any]], list[str]] = lambda o: []) -> Runner:
    """A runner that prepares the panel (:func:`prepare_panel`), calls
    ``fit(panel, options, ctx)`` (options without the data keys) and ``output(result,
    options, ctx, panel)``; with ``propagate = M`` the fit is repeated on ``M`` posterior
    draws of the efficiency and combined by :func:`~bayesdid.efficiency.efficiency_did.efficiency_did`
    (extra table ``naive_vs_propagated``)."""

    def run(panel: Panel, opts: dict[str, Any], ctx: StepContext) -> StepOutput:
        est_opts = {k: v for k, v in opts.items() if k not in _DATA_KEYS}
        panel = prepare_panel(panel, opts, ctx, columns(opts), groups(opts))
        if "propagate" not in opts:
            return output(fit(panel, est_opts, ctx), est_opts, ctx, panel)
        from ..efficiency.efficiency_did import efficiency_did

        ref = opts["outcome_from"]
        logger.info("  propagating the efficiency posterior of %r over %d draws", ref,
                    opts["propagate"])
        result = efficiency_did(
            ctx.earlier[ref], panel.frame, lambda p: fit(p, est_opts, ctx),
            panel_kwargs=rebuild_kwargs(panel), n_draws=opts["propagate"],
            outcome=panel.outcome, level=ctx.level,
            random_seed=opts.get("random_seed", 0), progress=ctx.progress)
        out = output(result, est_opts, ctx, panel)
        extras = dict(out.extras)
        extras["naive_vs_propagated"] = result.comparison()
        return dataclasses.replace(out, table=result.effects(level=ctx.level),
                                   extras=MappingProxyType(extras))

    return run


def simple_output(result: Any, opts: Mapping[str, Any], ctx: StepContext,
                  panel: Panel | None = None, **extras: pd.DataFrame) -> StepOutput:
    """The result's effects at the study's level (and ``interval`` for Bayesian results)."""
    return StepOutput(result=result, table=effects_at(result, ctx.level, opts.get("interval")),
                      extras=MappingProxyType(extras))


# ---------------------------------------------------------------------------- DID-type kinds

NUM_LIST = check_list(check_num(), what="number")
INT_LIST = check_list(check_int(), what="int")


def estimator_kwargs(opts: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The estimator keyword arguments among ``opts`` (tuples for lists)."""
    out = {k: opts[k] for k in keys if k in opts}
    return {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in out.items()}


def _data_checks(*more):
    def check(opts: dict[str, Any], path: str) -> None:
        check_data_options(opts, path)
        for extra in more:
            extra(opts, path)
    return check


def did_kind(name: str, schema: dict[str, Check], fit, output=simple_output, *,
             columns=None, groups=None, check=None, propagate: bool = False,
             description: str = "", bayesian: bool = False,
             refs: tuple[str, ...] = (), prepare=None) -> StepKind:
    """A DID-type step kind (its runner prepares the panel with :func:`did_runner`)."""
    full = {**COMMON, **DATA_OPTIONS, **(PROPAGATE if propagate else {}), **schema}
    runner = did_runner(fit, output, columns=columns or (lambda o: []),
                        groups=groups or (lambda o: []))
    return StepKind(name, full, runner, bayesian=bayesian,
                    check=_data_checks(*([check] if check else [])), description=description,
                    refs=("outcome_from", *refs), check_refs=check_outcome_from,
                    prepare=prepare)


def covariate_columns(opts: dict[str, Any]) -> list[str]:
    return list(opts.get("covariates") or [])


# ---------------------------------------------------------------------------- fixed effects
NO_FE = ("", "0", "none")  # fe = "none" in a spec: no fixed effects (TOML has no null)


def fe_value(value: str | None) -> str | None:
    return None if value is None or value.strip().lower() in NO_FE else value


def fe_columns(value: str | None) -> list[str]:
    """Study-data columns named by an fe string (``unit``/``time`` are the panel's)."""
    value = fe_value(value)
    if value is None:
        return []
    names = [p.strip() for term in value.split("+") for p in term.split("^")]
    return [n for n in names if n and n not in ("unit", "time")]


def fe_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
    """Estimator keywords with ``fe`` translated (``"none"`` -> None)."""
    out = tuples(opts)
    if "fe" in out:
        out["fe"] = fe_value(out["fe"])
    return out


def with_fe_columns(columns):
    """A ``columns`` function extended by the FE columns of the ``fe`` option."""
    return lambda o: [*columns(o), *fe_columns(o.get("fe"))]


FE = {"fe": check_str(empty=True)}
