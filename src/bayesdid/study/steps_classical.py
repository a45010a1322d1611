"""Classical DID step kinds of a study: TWFE, the fixed-effects ladder (``fe_ladder``: one
TWFE per fixed-effect set, e.g. OLS / time FE / unit FE / two-way, one column each),
event studies, the staggered-adoption estimators, the Bacon decomposition, honest DID,
heterogeneity, placebo tests, robustness specifications, PSM-DID and three-step mediation
(registered in :mod:`bayesdid.study.steps`).

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
    Check,
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
    COMMON,
    DATA_OPTIONS,
    PROPAGATE,
    StepKind,
    StepOutput,
    check_data_options,
    check_outcome_from,
    did_runner,
    simple_output,
    tuples,
)

__all__ = ["KINDS"]

logger = logging.getLogger(__name__)

NUM_LIST = check_list(check_num(), what="number")
INT_LIST = check_list(check_int(), what="int")


def _est(opts: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The estimator keyword arguments among ``opts`` (tuples for lists)."""
    out = {k: opts[k] for k in keys if k in opts}
    return {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in out.items()}


def _data_checks(*more):
    def check(opts: dict[str, Any], path: str) -> None:
        check_data_options(opts, path)
        for extra in more:
            extra(opts, path)
    return check


def kind(name: str, schema: dict[str, Check], fit, output=simple_output, *, columns=None,
         groups=None, check=None, propagate: bool = False, description: str = "",
         bayesian: bool = False, refs: tuple[str, ...] = ()) -> StepKind:
    """A DID-type step kind (its runner prepares the panel with :func:`did_runner`)."""
    full = {**COMMON, **DATA_OPTIONS, **(PROPAGATE if propagate else {}), **schema}
    runner = did_runner(fit, output, columns=columns or (lambda o: []),
                        groups=groups or (lambda o: []))
    return StepKind(name, full, runner, bayesian=bayesian,
                    check=_data_checks(*([check] if check else [])), description=description,
                    refs=("outcome_from", *refs), check_refs=check_outcome_from)


def _covs(opts: dict[str, Any]) -> list[str]:
    return list(opts.get("covariates") or [])


# ---------------------------------------------------------------------------- fixed effects
NO_FE = ("", "0", "none")  # fe = "none" in a spec: no fixed effects (TOML has no null)


def _fe_value(value: str | None) -> str | None:
    return None if value is None or value.strip().lower() in NO_FE else value


def _fe_columns(value: str | None) -> list[str]:
    """Study-data columns named by an fe string (``unit``/``time`` are the panel's)."""
    value = _fe_value(value)
    if value is None:
        return []
    names = [p.strip() for term in value.split("+") for p in term.split("^")]
    return [n for n in names if n and n not in ("unit", "time")]


def _fe_opts(opts: dict[str, Any]) -> dict[str, Any]:
    """Estimator keywords with ``fe`` translated (``"none"`` -> None)."""
    out = tuples(opts)
    if "fe" in out:
        out["fe"] = _fe_value(out["fe"])
    return out


def _with_fe(columns):
    """A ``columns`` function extended by the FE columns of the ``fe`` option."""
    return lambda o: [*columns(o), *_fe_columns(o.get("fe"))]


FE = {"fe": check_str(empty=True)}


# ---------------------------------------------------------------------------- TWFE family
def _twfe(panel, opts, ctx):
    from ..did.twfe import twfe

    return twfe(panel, level=ctx.level, **_fe_opts(opts))


LADDER = ("none", "time", "unit", "unit + time")  # the seed paper's table (OLS ... two-way)
_LADDER_LABELS = {"none": "OLS (no FE)", "time": "time FE", "unit": "unit FE",
                  "unit + time": "two-way FE"}


def _ladder(panel, opts, ctx):
    from ..did.twfe import twfe

    specs = list(opts.get("specs") or LADDER)
    labels = list(opts.get("labels") or [_LADDER_LABELS.get(s.strip(), s) for s in specs])
    kw = {k: v for k, v in _fe_opts(opts).items() if k not in ("specs", "labels")}
    return {label: twfe(panel, fe=_fe_value(spec), level=ctx.level, **kw)
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

    return event_study(panel, level=ctx.level, **_fe_opts(opts))


def _cs(panel, opts, ctx):
    from ..staggered.callaway_santanna import callaway_santanna

    kw = _est(opts, "control", "method", "covariates", "aggregate", "base_period", "cluster",
              "bootstrap", "uniform", "multiplier", "random_seed")
    return callaway_santanna(panel, level=ctx.level, **kw)


def _check_cs(opts: dict[str, Any], path: str) -> None:
    if opts.get("uniform") and not opts.get("bootstrap"):
        raise fail(f"{path}.uniform", "uniform bands need the multiplier bootstrap: set "
                   "bootstrap = <number of draws>")


def _sa(panel, opts, ctx):
    from ..staggered.estimators import sun_abraham

    kw = _est(opts, "leads", "lags", "covariates", "cluster", "fe")
    return sun_abraham(panel, level=ctx.level, **_fe_opts(kw))


def _imputation(panel, opts, ctx):
    from ..staggered.estimators import imputation

    kw = _est(opts, "covariates", "cluster", "weights", "event_time", "vcov", "fe")
    return imputation(panel, level=ctx.level, **_fe_opts(kw))


def _bacon(panel, opts, ctx):
    from ..staggered.bacon import bacon_decomposition

    kw = _est(opts, "covariates", "weights")
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

    coefs = event_study_coefficients(panel, **_est(opts, "leads", "lags", "estimator",
                                                     "bin_ends", "covariates", "cluster"))
    return honest_did(coefs, level=ctx.level, **_est(opts, "restriction", "M", "random_seed",
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
    kw = _fe_opts(_est(opts, "covariates", "cluster", "weights", "fe"))
    return heterogeneity(panel, _het_by(opts), kind=opts.get("form", "interaction"),
                         level=ctx.level, **kw)


def _het_output(result, opts, ctx, panel) -> StepOutput:
    test = pd.DataFrame([dict(result.info["equality_test"])])
    return StepOutput(result=result, table=result.effects(level=ctx.level),
                      extras=MappingProxyType({"equality_test": test}))


# ---------------------------------------------------------------------------- placebo
def _placebo(panel, opts, ctx):
    from ..checks.placebo import placebo

    kw = _fe_opts(_est(opts, "n_draws", "shifts", "timing", "pool", "covariates", "cluster",
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

    kw = _est(opts, "other_policies", "exclude_units", "exclude_periods", "replace_outcome",
              "covariates", "cluster", "weights", "fe")
    kw = {k: list(v) if isinstance(v, tuple) else v for k, v in _fe_opts(kw).items()}
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

    kw = _est(opts, "covariates", "scores", "method", "k", "replacement", "caliper",
              "caliper_scale", "kernel", "bandwidth", "did_covariates", "cluster",
              "random_seed", "fe")
    kw = _fe_opts(kw)
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

    kw = _est(opts, "covariates", "cluster", "weights", "joint", "n_boot", "random_seed")
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
_ES = {"leads": check_int(1), "lags": check_int(0), "bin_ends": check_bool, "ref": check_int()}

KINDS: dict[str, StepKind] = {
    "twfe": kind("twfe", {**CLASSICAL, **FE}, _twfe, propagate=True,
                 columns=_with_fe(lambda o: []),
                 description="fixed-effects DID (pyfixest, CRV1; fe = \"unit + time\" ...)"),
    "fe_ladder": kind(
        "fe_ladder", {**CLASSICAL, "specs": STR_LIST, "labels": STR_LIST}, _ladder,
        _ladder_output, check=_check_ladder,
        columns=lambda o: [c for s in (o.get("specs") or LADDER) for c in _fe_columns(s)],
        description="the DID under several fixed-effect sets, one column each (default: "
                    "OLS / time FE / unit FE / two-way)"),
    "event_study": kind("event_study", {**CLASSICAL, **_ES, **FE}, _event_study,
                        propagate=True, check=_check_event_study, columns=_with_fe(lambda o: []),
                        description="TWFE event study with binned end points"),
    "callaway_santanna": kind(
        "callaway_santanna",
        {"control": check_str(("never_treated", "not_yet_treated")),
         "method": check_str(("dr", "ipw", "reg")), "covariates": STR_LIST,
         "aggregate": check_list(check_str(("simple", "group", "dynamic", "calendar")),
                                 what="aggregation"),
         "base_period": check_str(("varying", "universal")), "cluster": check_str(),
         "bootstrap": check_int(1), "uniform": check_bool,
         "multiplier": check_str(("rademacher", "mammen")), "random_seed": check_int(0)},
        _cs, propagate=True, check=_check_cs, columns=_covs,
        description="Callaway-Sant'Anna ATT(g, t) with group / dynamic aggregations"),
    "sun_abraham": kind(
        "sun_abraham", {"leads": check_int(0), "lags": check_int(0), "covariates": STR_LIST,
                        "cluster": check_str(), **FE},
        _sa, propagate=True, columns=_with_fe(_covs),
        description="Sun-Abraham interaction-weighted event study"),
    "imputation": kind(
        "imputation", {**CLASSICAL, **FE, "event_time": check_bool,
                       "vcov": check_str(("bjs", "gardner"))}, _imputation, propagate=True,
        columns=_with_fe(_covs),
        description="Borusyak-Jaravel-Spiess imputation (BJS or Gardner SE)"),
    "bacon": kind("bacon", {"covariates": STR_LIST, "weights": OPT_STR}, _bacon, _bacon_output,
                  columns=_covs, description="Goodman-Bacon decomposition of the TWFE DID"),
    "honest_did": kind(
        "honest_did",
        {"estimator": check_str(("sun_abraham", "event_study")), "leads": check_int(2),
         "lags": check_int(0), "bin_ends": check_bool, "covariates": STR_LIST,
         "cluster": check_str(), "restriction": check_str(("rm", "sd")), "M": NUM_LIST,
         "random_seed": check_int(0), "n_sim": check_int(1000)},
        _honest, _honest_output, check=_check_honest, columns=_covs,
        description="Rambachan-Roth sensitivity of the post-period ATT"),
    "heterogeneity": kind(
        "heterogeneity",
        {**CLASSICAL, "by": check_str(), "median_split": check_str(),
         "form": check_str(("interaction", "subsample")), **FE},
        _heterogeneity, _het_output, check=_check_het,
        columns=lambda o: [o.get("median_split") or o.get("by"), *_covs(o),
                           *_fe_columns(o.get("fe"))],
        description="ATT by group / cohort / overlap / median split, with an equality test"),
    "placebo": kind(
        "placebo",
        {**CLASSICAL, "placebo": check_str(("shifted_timing", "random_timing",
                                            "fictional_group", "both_random")),
         "n_draws": check_int(10), "shifts": INT_LIST, "timing": check_str(("advance", "any")),
         "pool": check_str(("controls", "all")), "random_seed": check_int(0), **FE},
        _placebo, _placebo_output, check=_check_placebo, columns=_with_fe(_covs),
        description="placebo tests: shifted or random timing, fictional group, both random"),
    "robustness": kind(
        "robustness",
        {**CLASSICAL, "other_policies": STR_LIST,
         "exclude_units": check_list(check_unit_id, what="unit ids"),
         "exclude_periods": INT_LIST, "replace_outcome": STR_LIST, **FE},
        _robustness, _robustness_output, check=_check_robustness, columns=_with_fe(_covs),
        description="the baseline under other-policy controls, exclusions, other outcomes"),
    "psm_did": kind(
        "psm_did",
        {"covariates": STR_LIST, "scores": check_str(("period", "pooled")),
         "method": check_str(("nearest", "kernel")), "k": check_int(1),
         "replacement": check_bool, "caliper": _caliper,
         "caliper_scale": check_str(("logit_sd", "pscore")),
         "kernel": check_str(("epanechnikov", "gaussian")),
         "bandwidth": check_num(0, open_=True), "did_covariates": STR_LIST,
         "cluster": check_str(), "random_seed": check_int(0), **FE},
        _psm, _psm_output,
        columns=_with_fe(lambda o: list(o.get("did_covariates") or [])),
        description="period-by-period PSM-DID on three samples, balance tests"),
    "mediation": kind(
        "mediation",
        {**CLASSICAL, "mediators": STR_LIST, "joint": check_bool, "n_boot": check_int(0),
         "random_seed": check_int(0)},
        _mediation, _mediation_output, columns=lambda o: [*o["mediators"], *_covs(o)],
        check=_check_mediators,
        description="three-step mediation with a cluster-bootstrap indirect effect"),
}
