"""Few-treated-units step kinds of a study: synthetic control, synthetic DID, regression
control (each with a time placebo through ``fake_start``), their Bayesian versions, and the
latent-factor counterfactual estimators ``ife``, ``mc_nnm`` and ``bayes_factor`` (registered in
:mod:`bayesdid.study.steps`; those two use every never-treated unit as a control and take no
donor options).

Donors: ``treated`` and ``donors`` as in :func:`bayesdid.synthetic.donors.donor_pool`, or
``exclude_donors`` to drop units from the default pool (every never-treated unit), e.g. the
provinces under another policy (the other-policy check of the pilot-zone design).

Examples
--------
>>> sorted(KINDS)
['bayes_factor', 'bayesian_regression_control', 'bayesian_synth', 'ife', 'mc_nnm', 'regression_control', 'synth', 'synthdid']
"""

from __future__ import annotations

import dataclasses
import re
from types import MappingProxyType
from typing import Any

import pandas as pd

from ..errors import DesignError
from .checks import (
    STR_LIST,
    check_bool,
    check_int,
    check_list,
    check_plain_table,
    check_num,
    check_str,
    check_unit_id,
    fail,
)
from .steps_base import (
    SAMPLER,
    StepOutput,
    covariate_columns,
    did_kind,
    effects_at,
    fit_kwargs,
    tuples,
)

__all__ = ["KINDS"]

UNITS = check_list(check_unit_id, what="unit ids")
DONORS = {"treated": UNITS, "donors": UNITS, "exclude_donors": UNITS}


def _safe(name: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


def _check_donors(opts: dict[str, Any], path: str) -> None:
    if "donors" in opts and "exclude_donors" in opts:
        raise fail(f"{path}.exclude_donors", "give donors or exclude_donors, not both")


def _donors(panel, opts: dict[str, Any]) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if "treated" in opts:
        kw["treated"] = list(opts["treated"])
    if "donors" in opts:
        kw["donors"] = list(opts["donors"])
    elif "exclude_donors" in opts:
        frame = panel.frame
        never = frame.loc[frame["never_treated"], panel.unit].unique().tolist()
        drop = set(opts["exclude_donors"])
        unknown = sorted(map(str, drop - set(never)))
        if unknown:
            raise DesignError(f"exclude_donors: {unknown} are not never-treated units of the "
                              "panel", column=panel.unit)
        kw["donors"] = [u for u in never if u not in drop]
    return kw


def _path_figures(result, units) -> dict[str, Any]:
    from ..report.synth_plots import synth_gap_plot, synth_path_plot

    figures = {}
    for unit in units:
        figures[f"path_{_safe(unit)}"] = synth_path_plot(result, unit=unit)
        figures[f"gap_{_safe(unit)}"] = synth_gap_plot(result, unit=unit)
    return figures


def _treated_units(result) -> list:
    return list(dict.fromkeys(result.path["unit"]))


# ---------------------------------------------------------------------------- synth
def _periods(value: Any, path: str):
    """A predictor's periods: ``"1980-1988"`` (a window), ``"1988,1990-1992"`` or an array
    of years (exactly those years), ``"pre"`` (the whole pre-period)."""
    if isinstance(value, list):
        return list(check_list(check_int(), what="int")(value, path))
    if not isinstance(value, str):
        raise fail(path, f"expected a period string like '1980-1988' or an array of years, "
                         f"got {value!r:.60}")
    text = value.replace(" ", "")
    if text == "pre":
        return None
    years: list[int] = []
    try:
        for part in text.split(","):
            a, _, b = part.partition("-")
            years += list(range(int(a), int(b or a) + 1))
    except ValueError:
        raise fail(path, f"cannot read periods {value!r}",
                   hint="write '1980-1988', '1988,1990-1992' or 'pre'") from None
    if "," not in text and "-" in text:
        return (years[0], years[-1])  # a window, as synth's (start, end)
    return years


PERIODS = check_list(_periods, what="period strings or arrays of years")


def _synth(panel, opts, ctx):
    from ..synthetic.synth import synth, synth_placebo_time

    kw = {k: opts[k] for k in ("v", "n_starts", "placebo", "max_pre_rmspe_ratio",
                               "random_seed", "allow_post_mspe") if k in opts}
    for k in ("lags", "outcome_means", "mspe_periods"):
        if k in opts:
            kw[k] = list(opts[k])
    if "covariates" in opts:
        kw["covariates"] = dict(opts["covariates"])
        # columns merged in from the study data become covariates of this step's panel
        new = tuple(c for c in kw["covariates"] if c not in panel.covariates)
        panel = dataclasses.replace(panel, covariates=panel.covariates + new)
    kw.update(_donors(panel, opts))
    if "fake_start" in opts:
        return synth_placebo_time(panel, opts["fake_start"], level=ctx.level,
                                  progress=ctx.progress, **kw)
    return synth(panel, level=ctx.level, progress=ctx.progress, **kw)


def _synth_output(result, opts, ctx, panel) -> StepOutput:
    from ..report.synth_plots import placebo_space_plot

    units = _treated_units(result)
    figures = _path_figures(result, units)
    if not result.placebo_gaps.empty:
        for unit in units:
            figures[f"placebos_{_safe(unit)}"] = placebo_space_plot(
                result, unit=unit, max_pre_rmspe_ratio=opts.get("max_pre_rmspe_ratio"))
    weights = result.weights.rename_axis("donor").reset_index()
    extras = {"weights": weights}
    if not result.placebos.empty:
        extras["placebos"] = result.placebos.reset_index(drop=True)
    return StepOutput(result=result, table=result.effects(level=ctx.level),
                      extras=MappingProxyType(extras), figures=MappingProxyType(figures))


# ---------------------------------------------------------------------------- synthdid
def _sdid(panel, opts, ctx):
    from ..synthetic.sdid import synthdid

    kw = {k: opts[k] for k in ("estimator", "replications", "random_seed") if k in opts}
    if "se" in opts:
        kw["se"] = None if opts["se"] == "none" else opts["se"]
    kw.update(_donors(panel, opts))
    return synthdid(panel, level=ctx.level, progress=ctx.progress, **kw)


def _sdid_output(result, opts, ctx, panel) -> StepOutput:
    extras = {"unit_weights": result.unit_weights.rename("weight").rename_axis("donor")
              .reset_index().sort_values("weight", ascending=False).reset_index(drop=True),
              "time_weights": result.time_weights.rename("weight").rename_axis("time")
              .reset_index()}
    return StepOutput(result=result, table=result.effects(level=ctx.level),
                      extras=MappingProxyType(extras))


# ---------------------------------------------------------------------------- regression control
def _rc(panel, opts, ctx):
    from ..synthetic.regression_control import (
        regression_control,
        regression_control_placebo_time,
    )

    kw = {k: opts[k] for k in ("max_size", "se") if k in opts}
    if "criterion" in opts:
        kw["criterion"] = None if opts["criterion"] == "none" else opts["criterion"]
    kw.update(_donors(panel, opts))
    if "fake_start" in opts:
        return regression_control_placebo_time(panel, opts["fake_start"], level=ctx.level,
                                               progress=ctx.progress, **kw)
    return regression_control(panel, level=ctx.level, progress=ctx.progress, **kw)


def _rc_output(result, opts, ctx, panel) -> StepOutput:
    coefs = pd.concat([s.rename("coefficient").rename_axis("term").reset_index()
                       .assign(unit=u) for u, s in result.coefficients.items()],
                      ignore_index=True)[["unit", "term", "coefficient"]]
    selected = result.selection
    if "selected" in selected:
        selected = selected[selected["selected"].astype(bool)]
    extras = {"coefficients": coefs, "selection": selected.reset_index(drop=True)}
    figures = _path_figures(result, _treated_units(result))
    return StepOutput(result=result, table=result.effects(level=ctx.level),
                      extras=MappingProxyType(extras), figures=MappingProxyType(figures))


# ---------------------------------------------------------------------------- factor models
def _ife(panel, opts, ctx):
    from ..synthetic.ife import ife

    kw = {k: opts[k] for k in ("r", "r_max", "em", "n_boot", "random_seed") if k in opts}
    if "se" in opts:
        kw["se"] = None if opts["se"] == "none" else opts["se"]
    return ife(panel, level=ctx.level, **kw)


def _mc_nnm(panel, opts, ctx):
    from ..synthetic.mc_nnm import mc_nnm

    kw = {k: opts[k] for k in ("lam", "n_lambda", "n_folds", "n_boot", "random_seed")
          if k in opts}
    if "se" in opts:
        kw["se"] = None if opts["se"] == "none" else opts["se"]
    return mc_nnm(panel, level=ctx.level, **kw)


def _factor_output(result, opts, ctx, panel) -> StepOutput:
    extras = {"path": result.path}
    if not result.cv.empty:
        extras["cv"] = result.cv
    figures = {}
    if opts.get("figures", True):
        from ..report.synth_plots import synth_gap_plot, synth_path_plot

        label = {"ife": "IFE counterfactual", "mc_nnm": "MC-NNM counterfactual"}[result.method]
        for unit in _treated_units(result):
            figures[f"path_{_safe(unit)}"] = synth_path_plot(result, unit=unit, label=label)
            figures[f"gap_{_safe(unit)}"] = synth_gap_plot(result, unit=unit)
    return StepOutput(result=result, table=result.effects(level=ctx.level),
                      extras=MappingProxyType(extras), figures=MappingProxyType(figures))


FACTOR_SE = check_str(("parametric", "none"))

# ---------------------------------------------------------------------------- Bayesian
def _bayes_fit(model_cls, keys):
    def fit(panel, opts, ctx):
        from ..synthetic.donors import donor_pool

        kw = {k: opts[k] for k in keys if k in opts}
        priors_class = getattr(model_cls, "priors_class", None)
        if priors_class is not None:  # the spec's flat prior keys go into the priors object
            names = {f.name for f in dataclasses.fields(priors_class)}
            kw["priors"] = priors_class(**{k: kw.pop(k) for k in list(kw) if k in names})
        model = model_cls(**kw)
        pool = donor_pool(panel, **_donors(panel, opts))
        return model.fit(pool, progress=ctx.progress, **fit_kwargs(opts))
    return fit


def _bayes_synth_fit(panel, opts, ctx):
    from ..synthetic.bayes_synth import BayesianSyntheticControl

    return _bayes_fit(BayesianSyntheticControl, _BSC_KEYS)(panel, opts, ctx)


def _bayes_rc_fit(panel, opts, ctx):
    from ..synthetic.bayes_regression_control import BayesianRegressionControl

    return _bayes_fit(BayesianRegressionControl, _BRC_KEYS)(panel, opts, ctx)


def _bayes_output(result, opts, ctx, panel) -> StepOutput:
    from ..report.synth_plots import synth_gap_plot, synth_path_plot

    level = ctx.level
    units = [str(u) for u in result.idata.posterior["unit"].values]
    extras = {"weights": pd.concat([result.weights(u, level=level).assign(unit=u)
                                    for u in units], ignore_index=True),
              "ppc": result.ppc(level=level)}
    figures = {}
    for u in units:
        p = result.path(u, level=level)
        frame = pd.DataFrame({"unit": u, "time": p["time"], "actual": p["observed"],
                              "counterfactual": p["synthetic"], "gap": p["gap"],
                              "post": ~p["pre_period"]})
        figures[f"path_{_safe(u)}"] = synth_path_plot(
            frame, unit=u, band=(p["lower"], p["upper"]), band_mean=p["synthetic"],
            band_label=f"posterior {level:.0%}")
        figures[f"gap_{_safe(u)}"] = synth_gap_plot(
            frame, unit=u, band=(p["gap_lower"], p["gap_upper"]),
            band_label=f"posterior {level:.0%}")
    return StepOutput(result=result,
                      table=effects_at(result, level, opts.get("interval", "hdi")),
                      extras=MappingProxyType(extras), figures=MappingProxyType(figures))


def _bayes_factor_fit(panel, opts, ctx):
    from ..synthetic.bayes_factor import BayesianFactorDiD, FactorPriors

    kw = tuples({k: opts[k] for k in _BF_KEYS if k in opts})
    model_keys = ("max_factors", "pool", "covariates", "effects")
    priors = FactorPriors(**{k: kw.pop(k) for k in list(kw) if k not in model_keys})
    return BayesianFactorDiD(**kw, priors=priors).fit(panel, progress=ctx.progress,
                                                      **fit_kwargs(opts))


def _bayes_factor_output(result, opts, ctx, panel) -> StepOutput:
    from ..report.synth_plots import synth_gap_plot, synth_path_plot
    from ..synthetic.bayes_factor import counterfactual_paths

    level = ctx.level
    paths = counterfactual_paths(result, level=level)
    extras = {"path": paths, "ppc": result.ppc()}
    figures = {}
    if opts.get("figures", True):
        for u, p in paths.groupby("unit", sort=False):
            figures[f"path_{_safe(u)}"] = synth_path_plot(
                p, unit=u, band=(p["lower"], p["upper"]),
                band_label=f"posterior {level:.0%}", label="Bayesian factor counterfactual")
            figures[f"gap_{_safe(u)}"] = synth_gap_plot(
                p, unit=u, band=(p["gap_lower"], p["gap_upper"]),
                band_label=f"posterior {level:.0%}")
    return StepOutput(result=result,
                      table=effects_at(result, level, opts.get("interval", "hdi")),
                      extras=MappingProxyType(extras), figures=MappingProxyType(figures))


_BF_KEYS = ("max_factors", "factor_scale", "shrink", "pool", "covariates", "time_sd", "unit_sd",
            "noise_sd", "treated_scale", "covariate_sd", "effects", "effect_mean_sd",
            "effect_sd")
_BSC_KEYS = ("intercept", "noise", "concentration", "noise_scale", "noise_df",
             "rho_concentration", "intercept_scale", "pooling", "effect_sd", "pooling_sd")
_BRC_KEYS = ("expected_nonzero", "slab_scale", "slab_df", "noise_sd", "pooling", "effect_sd",
             "pooling_sd")
POS = check_num(0, open_=True)
POOLING = check_str(("partial", "none"))

KINDS = {
    "synth": did_kind(
        "synth",
        {**DONORS, "v": check_str(("optimize", "equal")), "n_starts": check_int(1),
         "placebo": check_bool, "max_pre_rmspe_ratio": POS, "random_seed": check_int(0),
         "fake_start": check_int(), "lags": check_list(check_int(), what="int"),
         "outcome_means": PERIODS, "covariates": check_plain_table(_periods),
         "mspe_periods": check_list(check_int(), what="int"), "allow_post_mspe": check_bool},
        _synth, _synth_output, check=_check_donors,
        columns=lambda o: list(o.get("covariates", {})),
        description="ADH synthetic control with placebo-in-space inference"),
    "synthdid": did_kind(
        "synthdid",
        {**DONORS, "estimator": check_str(("sdid", "sc", "did")),
         "se": check_str(("placebo", "bootstrap", "jackknife", "none")),
         "replications": check_int(2), "random_seed": check_int(0)},
        _sdid, _sdid_output, check=_check_donors,
        description="synthetic difference-in-differences (Arkhangelsky et al.)"),
    "regression_control": did_kind(
        "regression_control",
        {**DONORS, "criterion": check_str(("aicc", "aic", "bic", "none")),
         "max_size": check_int(1), "se": check_str(("cv", "prediction", "hac", "simple")),
         "fake_start": check_int()},
        _rc, _rc_output, check=_check_donors,
        description="Hsiao-Ching-Wan regression control with best-subset donors"),
    "ife": did_kind(
        "ife",
        {"r": check_int(0), "r_max": check_int(0), "em": check_bool, "se": FACTOR_SE,
         "n_boot": check_int(2), "random_seed": check_int(0), "figures": check_bool},
        _ife, _factor_output,
        description="interactive fixed effects (gsynth) with cross-validated factors"),
    "mc_nnm": did_kind(
        "mc_nnm",
        {"lam": check_num(0), "n_lambda": check_int(2), "n_folds": check_int(2),
         "se": FACTOR_SE, "n_boot": check_int(2), "random_seed": check_int(0),
         "figures": check_bool},
        _mc_nnm, _factor_output,
        description="matrix completion with nuclear-norm penalty (Athey et al.)"),
    "bayes_factor": did_kind(
        "bayes_factor",
        {"max_factors": check_int(1), "factor_scale": POS, "shrink": check_num(0, 1),
         "pool": check_list(check_str(), what="column names"), "time_sd": POS,
         "unit_sd": POS, "noise_sd": POS, "treated_scale": POS, "covariates": STR_LIST,
         "covariate_sd": POS, "effects": check_str(("imputation", "pooled")),
         "effect_mean_sd": POS, "effect_sd": POS, "figures": check_bool, **SAMPLER},
        _bayes_factor_fit, _bayes_factor_output, bayesian=True,
        groups=lambda o: list(o.get("pool") or []), columns=covariate_columns,
        description="Bayesian latent-factor DID (factors with shrinkage, loadings and "
                    "covariate coefficients integrated out)"),
    "bayesian_synth": did_kind(
        "bayesian_synth",
        {**DONORS, "intercept": check_bool, "noise": check_str(("ar1", "iid")),
         "concentration": POS, "noise_scale": POS, "noise_df": POS, "rho_concentration": POS,
         "intercept_scale": POS, "pooling": POOLING, "effect_sd": POS, "pooling_sd": POS,
         **SAMPLER},
        _bayes_synth_fit, _bayes_output, check=_check_donors, bayesian=True,
        description="Bayesian synthetic control (Dirichlet donor weights)"),
    "bayesian_regression_control": did_kind(
        "bayesian_regression_control",
        {**DONORS, "expected_nonzero": POS, "slab_scale": POS, "slab_df": POS, "noise_sd": POS,
         "pooling": POOLING, "effect_sd": POS, "pooling_sd": POS, **SAMPLER},
        _bayes_rc_fit, _bayes_output, check=_check_donors, bayesian=True,
        description="Bayesian regression control (regularised horseshoe on all donors)"),
}
