"""A declarative study: one TOML file -> a panel -> every estimation step -> a results folder.

:func:`load_study` (from :mod:`bayesdid.study.spec`, where the spec format is documented)
reads and strictly validates a spec; :func:`run_study` builds the
:class:`~bayesdid.panel.Panel`, runs the steps in order and writes the results.

Outputs of :func:`run_study` (in ``out_dir``): ``effects.csv`` (every step's effects with a
``step`` column), ``comparison.{md,html,tex}`` (the steps side by side, one table per
family of methods: DID, staggered adoption, synthetic control, robustness, efficiency; see
:mod:`bayesdid.study.families`), ``comparison.csv`` (the same rows, long, with a
``family`` column), ``forest.png`` (the overall and group effects only, a panel per family),
``event_study.png`` (the event-time effects, when some step reports them),
``posterior_<step>.nc`` (zlib-compressed, draws in single precision; a ``bayesian_sfa``
step keeps ``stored_draws`` of them; the convergence diagnostics are those of the draws as
sampled) and ``diagnostics_<step>.csv`` per Bayesian step, ``panel.txt``,
``spec.toml`` (a copy of the spec) and, for simulated data, ``truth.csv`` and
``effects_vs_truth.csv`` (``effects.csv`` plus a ``truth`` column); ``report.md`` and
``report.html`` (every step with its tables, diagnostics and figures; see
:mod:`bayesdid.study.report`), ``tables/<step>.tex``, ``tables/<step>_<name>.csv``
(a step's extra tables) and ``figures/<step>_<name>.png``.

Steps are cached in ``.cache/`` (see :mod:`bayesdid.study.cache`): a rerun refits only the
steps whose data, panel, options or upstream steps changed. While a step runs, the folder
holds ``INCOMPLETE.txt`` saying which step it stopped in if it fails.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from ..errors import BayesDidError, ComparisonError, ConvergenceWarning, SpecError
from ..results import EFFECT_COLUMNS, EffectResult
from .cache import StepCache, data_fingerprint, step_key
from .spec import (
    _TREATMENT_KEYS,
    STEP_KINDS,
    DataSource,
    Step,
    Study,
    StudyResult,
    list_models,
    load_study,
    loads_study,
    shipped_model,
)
from .steps import STEPS, StepContext, StepOutput

__all__ = [
    "STEP_KINDS",
    "DataSource",
    "Step",
    "Study",
    "StudyResult",
    "list_models",
    "load_study",
    "loads_study",
    "run_study",
    "shipped_model",
]

logger = logging.getLogger(__name__)
# the package (not only study/): warnings point at the caller
_PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "")

INCOMPLETE = "INCOMPLETE.txt"


# ============================================================================ running
@dataclass(frozen=True)
class _Data:
    frame: pd.DataFrame
    panel_kwargs: dict[str, Any]
    simulation: Any = None


_AUGMENT_KEYS = ("mediators", "other_policies", "flags", "missing_share")


def _plain(value: Any) -> Any:
    """Spec values (read-only tables, tuples) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return list(value)
    return value


def _simulate(name: str, args: dict[str, Any]):
    from ..datasets import simulate_efficiency, simulate_pilot_zones, simulate_staggered
    from ..datasets.simulate_mediated import augment

    extra = {k: args.pop(k) for k in _AUGMENT_KEYS if k in args}
    if "years" in args:
        args["years"] = tuple(args["years"])
    for key in ("batches", "cohort_effects", "region_effects"):
        if key in args:
            args[key] = dict(args[key])
    function = {"staggered": simulate_staggered, "staggered_mediated": simulate_staggered,
                "efficiency": simulate_efficiency, "pilot_zones": simulate_pilot_zones}[name]
    sim = function(**args)
    if extra or name == "staggered_mediated":
        seed = args.get("random_seed", 0)
        sim = augment(sim, random_seed=[int(seed), 7919], **extra)
    return sim


def _load_data(source: DataSource) -> _Data:
    if source.kind == "simulate":
        try:
            sim = _simulate(source.name, _plain(dict(source.args)))
        except SpecError as err:
            raise SpecError(f"data.simulate_args: {err}") from None
        kw = sim.panel_kwargs
        logger.info("simulated %d units x %d periods (%s)", sim.data[kw["unit"]].nunique(),
                    sim.data[kw["time"]].nunique(), source.name)
        return _Data(sim.data, dict(sim.panel_kwargs), sim)
    if source.kind == "dataset":
        from ..datasets import info, load

        frame = load(source.name)
        logger.info("loaded dataset %s (%d rows)", source.name, len(frame))
        return _Data(frame, info(source.name)["panel_kwargs"])
    from ..read import read_table

    try:
        frame = read_table(source.name)
    except (OSError, ValueError) as err:
        raise SpecError(f"data.{source.kind}: cannot read {source.name}: "
                        f"{str(err).splitlines()[0]}") from None
    logger.info("read %s (%d rows)", source.name, len(frame))
    return _Data(frame, {})


def _panel_kwargs(defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = dict(defaults)
    if any(k in given for k in _TREATMENT_KEYS):
        for k in _TREATMENT_KEYS:
            kwargs.pop(k, None)
    for key, value in given.items():
        if isinstance(value, MappingProxyType):
            value = {k: list(v) for k, v in value.items()}
        elif isinstance(value, tuple):
            value = list(value)
        kwargs[key] = value
    for key in ("treat", "cohort", "weights", "cluster"):
        if kwargs.get(key) == "":
            kwargs.pop(key)
    return kwargs


def _run_step(step: Step, panel, ctx: StepContext) -> StepOutput:
    """Run one step, turning its warnings into log lines and naming the step in errors.

    A :class:`ConvergenceWarning` stays a warning (prefixed with the step's name): the
    caller of :func:`run_study` sees it as loudly as a direct ``fit`` would."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            output = STEPS[step.kind].runner(panel, dict(step.options), ctx)
    except BayesDidError as err:
        err.add_note(f"in step {step.name!r} ({step.kind})")
        raise
    for w in caught:
        if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning)):
            continue
        if issubclass(w.category, ConvergenceWarning):
            warnings.warn(f"step {step.name!r}: {w.message}", ConvergenceWarning,
                          skip_file_prefixes=(_PACKAGE_DIR,))
            continue
        logger.warning("%s: %s", step.name, w.message)
    return output


def _save_figures(step: str, output: StepOutput, out: Path) -> dict[str, Path]:
    import matplotlib.pyplot as plt

    saved = {}
    for name, fig in output.figures.items():
        path = out / "figures" / f"{step}_{name}.png"
        path.parent.mkdir(exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        saved[name] = path
    return saved


def _stored(output: StepOutput) -> StepOutput:
    """A Bayesian step's output with its posterior as the folder keeps it: draws in single
    precision (a ``bayesian_sfa`` step has thinned them already). Later steps and a cached
    rerun then read the same draws; the step's own table was computed before, from the
    double-precision draws."""
    result = output.result
    if "stored_draws" in result.info or not hasattr(result, "thinned"):
        return output
    return dataclasses.replace(output, result=result.thinned(None, float32=True))


def _headline(table: pd.DataFrame) -> str:
    hit = table[(table["estimand"] == "att") & (table["group"] == "overall")]
    if hit.empty:
        return f"{len(table)} effects"
    row = hit.iloc[0]
    return (f"att = {row['estimate']:.4g} [{row['lower']:.4g}, {row['upper']:.4g}] "
            f"({row['interval']}), {len(table)} effects")


def _truth_column(effects: pd.DataFrame, study: Study, sim) -> pd.DataFrame:
    """``effects`` with the simulation's true value of each effect (NaN where undefined).

    Event-study leads are truly zero (no anticipation in the simulator); a binned last lag
    is compared with the mean effect over every treated cell at or beyond it."""
    out = effects.merge(sim.truth.rename(columns={"value": "truth"}),
                        on=["estimand", "group"], how="left")
    k = pd.to_numeric(out["group"].str.extract(r"^k=(-?\d+)$")[0], errors="coerce")
    unit, time = sim.panel_kwargs["unit"], sim.panel_kwargs["time"]
    cells = sim.tau.merge(sim.data[[unit, time, "cohort"]], on=[unit, time])
    cells_k = cells[time] - cells["cohort"].astype("int64")
    steps = {s.name: s for s in study.steps}
    kinds = {s.name: s.kind for s in study.steps}
    mediators = sim.params.get("augment", {}).get("mediators", {})
    hit = sim.truth.query("estimand == 'att' and group == 'overall'")["value"]
    overall = float(hit.iloc[0]) if len(hit) else float("nan")
    for name, step in steps.items():
        this = out["step"] == name
        replaced = step.options.get("outcome")
        from_ml = kinds.get(step.options.get("outcome_from")) == "ml_index"
        effects_rows = this & out["estimand"].isin(["att", "gap", "att_gt"])
        if replaced is not None or from_ml:
            # another outcome: only a mediator's effect (its constant ``a``) is known
            out.loc[this, "truth"] = float("nan")
            if replaced in mediators:
                out.loc[effects_rows, "truth"] = float(mediators[replaced].get("a", 0.0))
            continue
        if "fake_start" in step.options:  # a time placebo: no effect before the real start
            out.loc[this, "truth"] = float("nan")
            out.loc[effects_rows, "truth"] = 0.0
            continue
        if step.kind == "psm_did":  # the matched samples keep (almost) every treated row
            out.loc[this & (out["estimand"] == "att"), "truth"] = overall
        if step.options.get("where") or step.options.get("cohorts"):
            # a sub-design: its overall effect averages the sub-design's treated cells only
            units = sim.data
            for col, values in (step.options.get("where") or {}).items():
                units = units[units[col].isin(list(values))] if col in units else units.iloc[:0]
            if step.options.get("cohorts"):
                units = units[units["cohort"].isin(list(step.options["cohorts"]))]
            sub = cells[cells[unit].isin(units[unit].unique())]
            out.loc[this & (out["estimand"] == "event_time"), "truth"] = float("nan")
            out.loc[this & (out["estimand"] == "att") & (out["group"] == "overall"),
                    "truth"] = float(sub["tau"].mean()) if len(sub) else float("nan")
        rows = this & (out["estimand"] == "event_time") & k.notna()
        out.loc[rows & (k < 0), "truth"] = 0.0
        if step.kind == "event_study" and step.options.get("bin_ends", True):
            lags = step.options.get("lags", 8)
            out.loc[rows & (k == lags), "truth"] = float(cells.loc[cells_k >= lags, "tau"].mean())
    return out


def run_study(study: Study, out_dir: str | Path, progress: bool = True, *,
              use_cache: bool = True) -> StudyResult:
    """Build the panel, run every step in order and write the results into ``out_dir``.

    Progress is logged (``logging``, logger ``bayesdid.study``); Bayesian steps show
    PyMC's progress bar unless ``progress=False``. See the module docstring for the
    files written. A step that fails raises its error with a note naming the step.
    """
    import matplotlib.pyplot as plt

    from ..compare import compare
    from ..panel import Panel
    from ..report.plots import group_forest_plot
    from .families import by_family, write_family_tables
    from .report import write_report

    if not isinstance(study, Study):
        raise SpecError(f"run_study expects a Study (from load_study), got "
                        f"{type(study).__name__}")
    t0 = time.perf_counter()
    for kind in {step.kind: STEPS[step.kind] for step in study.steps}.values():
        if kind.prepare is not None:
            kind.prepare()  # e.g. the C compiler builds a kernel while the first steps run
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    seconds: dict[str, float] = {}
    logger.info("study %s -> %s", study.name, out)

    data = _load_data(study.data)
    kwargs = _panel_kwargs(data.panel_kwargs, study.panel)
    panel = Panel.from_frame(data.frame, **kwargs)
    description = panel.describe()
    logger.info("panel: %s", description.splitlines()[0].removeprefix("Panel: "))
    paths["panel"] = out / "panel.txt"
    paths["panel"].write_text(description + "\n", encoding="utf-8")
    paths["spec"] = out / "spec.toml"
    paths["spec"].write_text(study.source, encoding="utf-8")

    results: dict[str, EffectResult] = {}
    tables: dict[str, pd.DataFrame] = {}
    outputs: dict[str, StepOutput] = {}
    keys: dict[str, str] = {}
    refitted: list[str] = []
    diagnostics: dict[str, pd.DataFrame] = {}
    cache = StepCache(out)
    fingerprint = data_fingerprint(data.frame)
    incomplete = out / INCOMPLETE
    n = len(study.steps)
    for i, step in enumerate(study.steps, 1):
        kind = STEPS[step.kind]
        keys[step.name] = step_key(
            data=fingerprint, panel_kwargs=kwargs, level=study.level, kind=step.kind,
            options=step.options, upstream={r: keys[r] for r in kind.refs_of(step.options)})
        cached = cache.load(step.name, keys[step.name]) if use_cache else None
        if cached is not None:
            logger.info("step %d/%d: %s (%s): unchanged, read from the cache", i, n, step.name,
                        step.kind)
            output, seconds[step.name] = cached, 0.0
        else:
            logger.info("step %d/%d: %s (%s)", i, n, step.name, step.kind)
            incomplete.write_text(
                f"run of {study.name} stopped in step {step.name!r} ({step.kind}); the files "
                "here are from the steps before it (or an earlier run). Rerun to resume: "
                "finished steps are read from .cache/.\n", encoding="utf-8")
            t = time.perf_counter()
            ctx = StepContext(level=study.level, progress=progress,
                              earlier=MappingProxyType(dict(results)),
                              outputs=MappingProxyType(dict(outputs)), data=data.frame,
                              panel_kwargs=MappingProxyType(kwargs))
            output = _run_step(step, panel, ctx)
            seconds[step.name] = time.perf_counter() - t
            refitted.append(step.name)
            figures = _save_figures(step.name, output, out)
            posterior = None
            if kind.bayesian:
                output = _stored(output)
                posterior = output.result.save(out / f"posterior_{step.name}.nc")
                if "random_seed" not in step.options:
                    logger.info("  random_seed not given; drew %s",
                                output.result.info.get("random_seed"))
            output = StepOutput(result=output.result, table=output.table,
                                extras=output.extras, figures=MappingProxyType(figures))
            cache.store(step.name, keys[step.name], output, figures=figures,
                        posterior=posterior)
            logger.info("  done in %.1fs: %s", seconds[step.name], _headline(output.table))
        outputs[step.name] = output
        results[step.name] = output.result
        tables[step.name] = output.table
        for name, fig_path in output.figures.items():
            paths[f"figure_{step.name}_{name}"] = fig_path
        for name, extra in output.extras.items():
            paths[f"table_{step.name}_{name}"] = out / "tables" / f"{step.name}_{name}.csv"
            paths[f"table_{step.name}_{name}"].parent.mkdir(exist_ok=True)
            extra.to_csv(paths[f"table_{step.name}_{name}"], index=False)
        if kind.bayesian:
            diag = output.result.diagnostics(warn=False)  # the fit warned already
            diag = diag.assign(divergences=diag.attrs.get("divergences", 0))
            paths[f"diagnostics_{step.name}"] = out / f"diagnostics_{step.name}.csv"
            diag.to_csv(paths[f"diagnostics_{step.name}"], index=False)
            diagnostics[step.name] = diag
            paths[f"posterior_{step.name}"] = out / f"posterior_{step.name}.nc"

    effects = pd.concat([t.assign(step=name) for name, t in tables.items()], ignore_index=True)
    effects = effects[["step", *EFFECT_COLUMNS,
                       *[c for c in effects.columns if c not in ("step", *EFFECT_COLUMNS)]]]
    paths["effects"] = out / "effects.csv"
    effects.to_csv(paths["effects"], index=False)

    # compare() sees exactly the tables written to effects.csv (same level and interval)
    # (with each result's info, so compare() can note model-based beside cluster-robust),
    # one comparison per family of methods so that no table holds every step
    views = {name: EffectResult(table=t, method=results[name].method,
                                info=dict(getattr(results[name], "info", None) or {}))
             for name, t in tables.items()}
    comparisons = {family: compare(*(views[s.name] for s in members),
                                   labels=[s.name for s in members], level=None)
                   for family, members in by_family(study.steps).items()}
    paths.update({f"comparison_{kind}": p for kind, p in
                  write_family_tables(comparisons, out, study.name).items()})
    paths["comparison_csv"] = out / "comparison.csv"
    pd.concat([c.table.assign(family=family) for family, c in comparisons.items()],
              ignore_index=True).to_csv(paths["comparison_csv"], index=False)
    try:
        fig = group_forest_plot([(f, c.table, c.labels) for f, c in comparisons.items()],
                                title=f"{study.name}: overall and group effects")
    except ComparisonError:  # no step reports an overall or group ATT
        logger.info("no overall or group effects: forest.png not written")
    else:
        paths["forest"] = out / "forest.png"
        fig.savefig(paths["forest"], dpi=120, bbox_inches="tight")
        plt.close(fig)
    with_events = [(name, v) for name, v in views.items()
                   if (v.table["estimand"] == "event_time").any()]
    if with_events:
        from ..report.plots import event_study_plot

        fig = event_study_plot(*(v for _, v in with_events),
                               labels=[name for name, _ in with_events], level=None,
                               title=f"{study.name}: event-time effects")
        paths["event_study"] = out / "event_study.png"
        fig.savefig(paths["event_study"], dpi=150)
        plt.close(fig)

    study_figures = {}
    if "forest" in paths:
        study_figures["overall and group effects by family"] = paths["forest"]
    if "event_study" in paths:
        study_figures["event-time effects"] = paths["event_study"]
    paths.update(write_report(
        study=study, panel_text=description, steps=list(study.steps), outputs=outputs,
        comparisons=comparisons, seconds=seconds, refitted=tuple(refitted),
        diagnostics=diagnostics, figures=study_figures, out=out))

    if data.simulation is not None:
        sim = data.simulation
        paths["truth"] = out / "truth.csv"
        sim.truth.to_csv(paths["truth"], index=False)
        same_design = (panel.outcome == data.panel_kwargs["outcome"]
                       and not any(k in study.panel for k in _TREATMENT_KEYS)
                       and all(e.step == "interpolate" for e in panel.log))
        if same_design:
            paths["effects_vs_truth"] = out / "effects_vs_truth.csv"
            _truth_column(effects, study, sim).to_csv(paths["effects_vs_truth"], index=False)
        else:
            logger.warning("[panel] changes the simulated outcome, treatment or rows; "
                           "effects_vs_truth.csv not written")

    incomplete.unlink(missing_ok=True)
    seconds["total"] = time.perf_counter() - t0
    logger.info("finished %s in %.1fs; %d files in %s", study.name, seconds["total"],
                len(paths), out)
    return StudyResult(study=study, out_dir=out, paths=MappingProxyType(paths),
                       results=MappingProxyType(results), effects=effects, panel=panel,
                       seconds=MappingProxyType(seconds), refitted=tuple(refitted))
