"""One robustness call, one table of specifications (a paper's robustness table).

:func:`robustness` re-estimates the baseline under each specification -- other-policy
dummies added as controls, units or periods excluded, the outcome replaced, or any
combination -- with TWFE and optionally further estimators (functions
``panel -> EffectResult``), and returns a :class:`RobustnessResult`: one row per
specification and estimator (estimate, standard error, interval, p-value, observations,
units, fixed effects, controls, notes) plus every fit.

Each specification's panel is rebuilt through :meth:`bayesdid.Panel.from_frame`, so the
treatment design is re-validated on the reduced sample (a treated unit left without a
pre-period is a :class:`~bayesdid.errors.DesignError` naming the specification), and the
exclusion is recorded in the panel's log. Columns that the panel does not hold
(other-policy dummies, alternative outcomes) come from ``data``, matched on the panel's
unit and time columns; they are used as given (not winsorized).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from ..errors import BayesDidError, ColumnError, MissingValueError
from ..panel import LogEntry, Panel
from ..fixed_effects import DEFAULT_FE
from ..results import EffectResult, Result, group_label, tidy_table
from ..did.twfe import twfe

__all__ = ["TABLE_COLUMNS", "RobustnessResult", "Spec", "robustness"]

logger = logging.getLogger(__name__)

TABLE_COLUMNS = ["spec", "method", "outcome", "estimate", "se", "lower", "upper", "p_value",
                 "n_obs", "n_units", "fe", "controls", "notes"]


@dataclass(frozen=True)
class Spec:
    """One specification: changes relative to the baseline.

    outcome : replace the outcome by this column.
    controls : extra control columns (e.g. other-policy dummies), added to the covariates.
    exclude_units : unit ids dropped. exclude_periods : periods dropped.
    note : free text for the table's notes column.
    """

    name: str
    outcome: str | None = None
    controls: tuple[str, ...] = ()
    exclude_units: tuple = ()
    exclude_periods: tuple = ()
    note: str = ""

    def describe(self, panel: Panel) -> str:
        parts = []
        if self.outcome:
            parts.append(f"outcome replaced by {self.outcome}")
        if self.controls:
            parts.append(f"controls added: {', '.join(self.controls)}")
        if self.exclude_units:
            parts.append(f"{len(self.exclude_units)} {panel.unit}(s) excluded")
        if self.exclude_periods:
            parts.append(f"{panel.time} excluded: {', '.join(map(str, self.exclude_periods))}")
        if self.note:
            parts.append(self.note)
        return "; ".join(parts) or "baseline"


SUMMARY_COLS = ["spec", "method", "estimate", "se", "lower", "upper", "p_value", "n_obs",
                "n_units", "notes"]


@dataclass(frozen=True, eq=False, repr=False)
class RobustnessResult(Result):
    """A robustness table and the fits behind it.

    A :class:`~bayesdid.results.Result`, not an EffectResult: a table of specifications,
    one fit (an EffectResult) per specification and estimator.

    ``results[(spec, method)]`` is each :class:`~bayesdid.results.EffectResult`;
    :meth:`table` the specification table (columns :data:`TABLE_COLUMNS`);
    :meth:`effects` the tidy effects table of every fit's ``att``/``overall`` row with
    ``group = "spec=<name>"``. ``info["logs"][spec]`` is the log of the panel each
    specification ran on (the exclusions recorded).
    """

    specs: tuple[Spec, ...]
    results: Mapping[tuple[str, str], EffectResult]
    frame: pd.DataFrame
    level: float = 0.95
    info: Mapping[str, Any] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per specification and estimator (a copy)."""
        return self.frame.copy()

    def effects(self, level: float | None = None, interval: str | None = None) -> pd.DataFrame:
        """Every fit's ``att``/``overall`` row, group ``spec=<name>``, at ``level`` (default
        each fit's own) and ``interval`` (passed to every fit's ``effects``)."""
        rows = []
        for (name, method), res in self.results.items():
            table = res.effects(level=level, interval=interval)
            row = dict(table[(table["estimand"] == "att") & (table["group"] == "overall")]
                       .iloc[0])
            row.update(group=group_label(spec=name), method=method)
            rows.append(row)
        return tidy_table(rows)

    def summary(self) -> pd.DataFrame:
        """The specification table's main columns, one row per specification and estimator."""
        return self.frame[[c for c in SUMMARY_COLS if c in self.frame.columns]].copy()

    def to_frame(self) -> pd.DataFrame:
        """The whole specification table (:meth:`table`)."""
        return self.table()

    def report(self, digits: int = 4) -> str:
        return self.to_markdown(digits)

    def to_markdown(self, digits: int = 4) -> str:
        return self.summary().to_markdown(index=False, floatfmt=f".{digits}f")

    def _describe(self) -> str:
        return f"specs={len(self.specs)} fits={len(self.results)}"

    def plot(self, ax=None, **kwargs):
        """Forest plot of the ``att`` of every specification and estimator (see
        :func:`bayesdid.report.plots.forest_plot`). Returns a Figure."""
        from ..report.plots import forest_plot

        kwargs.setdefault("title", "robustness: ATT by specification")
        return forest_plot(self.effects(), ax=ax, **kwargs)


# ---------------------------------------------------------------------- spec building
def _named(value, what: str, single: Callable[[Any], str]) -> dict[str, Any]:
    """A list of items -> {label: item}; a mapping is kept as given."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (str, bytes)):
        raise BayesDidError(f"{what} takes a list or a {{name: ...}} mapping, not a string",
                            hint=f"write {what}=[{value!r}]")
    return {single(v): v for v in value}


def _as_tuple(value) -> tuple:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray, pd.Index,
                                                                  set, frozenset)):
        return (value,)
    return tuple(value)


def build_specs(*, baseline: bool = True, other_policies=None, exclude_units=None,
                exclude_periods=None, replace_outcome=None,
                specs: Mapping[str, Any] | Sequence[Spec] | None = None) -> tuple[Spec, ...]:
    """The specifications :func:`robustness` runs, in table order.

    >>> [s.name for s in build_specs(other_policies=["smart_city"], replace_outcome=["y2"])]
    ['baseline', 'control: smart_city', 'outcome: y2']
    """
    out = [Spec("baseline")] if baseline else []
    policies = _named(other_policies, "other_policies", lambda c: f"control: {c}")
    for name, cols in policies.items():
        out.append(Spec(name, controls=_as_tuple(cols)))
    if len(policies) > 1:
        every = tuple(dict.fromkeys(c for cols in policies.values() for c in _as_tuple(cols)))
        out.append(Spec("control: all other policies", controls=every))
    units = exclude_units
    if units is not None and not isinstance(units, Mapping):
        units = {"exclude units": units}
    for name, ids in _named(units, "exclude_units", str).items():
        out.append(Spec(name, exclude_units=_as_tuple(ids)))
    periods = exclude_periods
    if periods is not None and not isinstance(periods, Mapping):
        periods = {"exclude periods": periods}
    for name, ts in _named(periods, "exclude_periods", str).items():
        out.append(Spec(name, exclude_periods=_as_tuple(ts)))
    for name, col in _named(replace_outcome, "replace_outcome", lambda c: f"outcome: {c}").items():
        out.append(Spec(name, outcome=col))
    if isinstance(specs, Mapping):
        for name, spec in specs.items():
            if isinstance(spec, Spec):
                out.append(dataclasses.replace(spec, name=name))
                continue
            if not isinstance(spec, Mapping):
                raise BayesDidError(f"specification {name!r} must be a Spec or a mapping of "
                                    f"Spec fields, got {type(spec).__name__}")
            unknown = set(spec) - {f.name for f in dataclasses.fields(Spec)}
            if unknown:
                raise BayesDidError(f"specification {name!r} has unknown field(s) "
                                    f"{sorted(unknown)}", hint="fields: outcome, controls, "
                                    "exclude_units, exclude_periods, note")
            out.append(Spec(name, outcome=spec.get("outcome"),
                            controls=_as_tuple(spec.get("controls")),
                            exclude_units=_as_tuple(spec.get("exclude_units")),
                            exclude_periods=_as_tuple(spec.get("exclude_periods")),
                            note=str(spec.get("note", ""))))
    elif specs is not None:
        out.extend(specs)
    names = [s.name for s in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise BayesDidError(f"specification name(s) {twice} used more than once",
                            hint="give each specification its own name")
    if not out:
        raise BayesDidError("no specification to run", hint="pass baseline=True or some "
                            "other_policies / exclude_units / exclude_periods / "
                            "replace_outcome / specs")
    return tuple(out)


def _with_columns(panel: Panel, data: pd.DataFrame | None, cols: Sequence[str]) -> pd.DataFrame:
    """The panel frame with extra columns from ``data`` matched on (unit, time)."""
    frame = panel.frame
    need = [c for c in dict.fromkeys(cols) if c not in frame.columns]
    if not need:
        return frame.copy()
    if data is None:
        raise ColumnError(f"column {need[0]!r} is not in the panel", column=need[0],
                          hint="pass the frame that holds it as data=df (matched on the "
                               f"panel's {panel.unit!r} and {panel.time!r} columns)")
    if not isinstance(data, pd.DataFrame):
        raise BayesDidError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    absent = [c for c in [panel.unit, panel.time, *need] if c not in data.columns]
    if absent:
        raise ColumnError(f"column {absent[0]!r} is neither in the panel nor in data",
                          column=absent[0], hint=f"data has columns {list(data.columns)[:20]}")
    extra = data[[panel.unit, panel.time, *need]]
    dup = extra.duplicated([panel.unit, panel.time], keep=False)
    if dup.any():
        raise BayesDidError(f"data has several rows per ({panel.unit}, {panel.time})",
                            column=panel.unit, rows=extra.loc[dup])
    merged = frame.merge(extra, on=[panel.unit, panel.time], how="left", validate="one_to_one",
                         indicator=True)
    unmatched = merged["_merge"] != "both"
    if unmatched.any():
        raise MissingValueError(
            f"data has no row for {int(unmatched.sum())} panel row(s), so column(s) "
            f"{need} cannot be matched", column=need[0],
            rows=merged.loc[unmatched, [panel.unit, panel.time]],
            hint=f"data must cover every ({panel.unit}, {panel.time}) of the panel")
    return merged.drop(columns="_merge")


def _spec_panel(panel: Panel, frame: pd.DataFrame, spec: Spec, covs: tuple[str, ...]) -> Panel:
    keep = np.ones(len(frame), dtype=bool)
    notes: list[LogEntry] = []
    periods = panel.time_axis.to_indices(spec.exclude_periods)  # calendar labels -> indices
    for col, ids, what in ((panel.unit, spec.exclude_units, "units"),
                           (panel.time, periods, "periods")):
        if not ids:
            continue
        present = set(frame[col].unique())
        unknown = [i for i in ids if i not in present]
        if unknown:
            raise ColumnError(
                f"specification {spec.name!r}: {len(unknown)} excluded {what} not in column "
                f"{col!r}: {unknown[:5]}", column=col,
                hint="check spelling and type (e.g. 2010 vs '2010')")
        drop = frame[col].isin(ids).to_numpy()
        notes.append(LogEntry("robustness", f"{spec.name}: excluded {what} "
                              f"{', '.join(map(str, list(ids)[:10]))}"
                              f"{', ...' if len(ids) > 10 else ''} ({int(drop.sum())} rows)",
                              int(drop.sum())))
        keep &= ~drop
    outcome = spec.outcome or panel.outcome
    try:
        built = Panel.from_frame(frame.loc[keep], unit=panel.unit, time=panel.time,
                                 outcome=outcome, cohort="cohort", groups=panel.groups,
                                 covariates=covs, weights=panel.weights, cluster=panel.cluster,
                                 time_axis=panel.time_axis)
    except BayesDidError as exc:
        raise type(exc)(f"robustness specification {spec.name!r}: {exc}") from exc
    if spec.outcome:
        notes.append(LogEntry("robustness", f"{spec.name}: outcome {panel.outcome} replaced by "
                              f"{spec.outcome}"))
    if spec.controls:
        notes.append(LogEntry("robustness", f"{spec.name}: controls added: "
                              f"{', '.join(spec.controls)}"))
    return dataclasses.replace(built, start=panel.start, log=panel.log + built.log + tuple(notes))


# ---------------------------------------------------------------------- the call
def robustness(panel: Panel, *, data: pd.DataFrame | None = None, other_policies=None,
               exclude_units=None, exclude_periods=None, replace_outcome=None,
               specs: Mapping[str, Any] | Sequence[Spec] | None = None,
               estimators: Mapping[str, Callable[[Panel], EffectResult]] | None = None,
               covariates: Sequence[str] | None = None, cluster: str | None = None,
               weights: str | None = None, level: float = 0.95, baseline: bool = True,
               progress: bool = True, fe: str | None = DEFAULT_FE) -> RobustnessResult:
    """Run the baseline under each robustness specification; one table of results.

    Parameters
    ----------
    data : frame holding columns the panel lacks (other-policy dummies, alternative
        outcomes), matched on the panel's unit and time columns.
    other_policies : other-policy dummy columns: a list (one specification per column,
        plus one with all of them) or ``{name: [columns]}``.
    exclude_units : unit ids to drop: a list (one specification) or ``{name: [ids]}``
        (e.g. ``{"exclude municipalities": ["Beijing", "Tianjin", ...]}``).
    exclude_periods : periods to drop: a list or ``{name: [periods]}``.
    replace_outcome : alternative outcome columns: a list or ``{name: column}``.
    specs : further specifications, ``{name: Spec | dict(outcome=, controls=,
        exclude_units=, exclude_periods=, note=)}`` -- for combinations.
    estimators : ``{name: panel -> EffectResult}``; default ``{"twfe": twfe}`` with
        ``fe`` (pyfixest syntax, default ``"unit + time"``), ``cluster``, ``weights`` and
        ``level``. Each must report an ``("att", "overall")``
        row; the specification's covariates are the panel's.
    covariates : baseline covariates (default the panel's); controls are added to them.
    baseline : include the unchanged baseline as the first row.

    Examples
    --------
    >>> from bayesdid.datasets.simulate import simulate_staggered
    >>> sim = simulate_staggered(n_units=40, years=(2005, 2012), batches={2008: 6})
    >>> p = Panel.from_frame(sim.data, **sim.panel_kwargs)
    >>> res = robustness(p, exclude_periods=[2005], progress=False)
    >>> res.table()["spec"].tolist(), res.table()["n_obs"].tolist()
    (['baseline', 'exclude periods'], [320, 280])
    """
    if not isinstance(panel, Panel):
        raise BayesDidError(f"expected a bayesdid Panel, got {type(panel).__name__}; "
                            "build one with Panel.from_frame(df, ...)")
    if not 0 < level < 1:
        raise BayesDidError(f"level must be in (0, 1), got {level!r}")
    run = build_specs(baseline=baseline, other_policies=other_policies,
                      exclude_units=exclude_units, exclude_periods=exclude_periods,
                      replace_outcome=replace_outcome, specs=specs)
    base_covs = tuple(panel.covariates if covariates is None else covariates)
    if estimators is None:
        estimators = {"twfe": functools.partial(twfe, fe=fe, cluster=cluster,
                                                weights=weights, level=level)}
    if not isinstance(estimators, Mapping) or not estimators or \
            not all(callable(f) for f in estimators.values()):
        raise BayesDidError("estimators must be a non-empty {name: panel -> EffectResult} "
                            "mapping", hint="e.g. estimators={'twfe': twfe, 'cs': "
                            "callaway_santanna}")
    wanted = [c for s in run for c in (*s.controls, *([s.outcome] if s.outcome else []))]
    frame = _with_columns(panel, data, [*base_covs, *wanted])

    results: dict[tuple[str, str], EffectResult] = {}
    logs: dict[str, tuple[LogEntry, ...]] = {}
    rows = []
    for spec in tqdm(run, desc="robustness", disable=not progress):
        covs = tuple(dict.fromkeys((*base_covs, *spec.controls)))
        sp = _spec_panel(panel, frame, spec, covs)
        logs[spec.name] = sp.log
        for method, fit in estimators.items():
            res = fit(sp)
            if not isinstance(res, EffectResult):
                raise BayesDidError(f"estimator {method!r} returned {type(res).__name__}, "
                                    "expected an EffectResult")
            results[(spec.name, method)] = res
            eff = res.effect("att", "overall")
            se = float(eff["se_or_sd"])
            dof = res.info.get("df")
            t = abs(float(eff["estimate"]) / se) if se > 0 else np.nan
            rows.append(dict(
                spec=spec.name, method=method, outcome=sp.outcome,
                estimate=float(eff["estimate"]), se=se, lower=float(eff["lower"]),
                upper=float(eff["upper"]),
                p_value=float(2 * (stats.t.sf(t, dof) if dof else stats.norm.sf(t))),
                n_obs=sp.n_obs, n_units=len(sp.units),
                fe=str(res.info.get("fe") or ("none" if "fe" in res.info else "")),
                controls=", ".join(covs), notes=spec.describe(panel)))
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return RobustnessResult(specs=run, results=results, frame=table, level=level,
                            info={"baseline_covariates": base_covs, "logs": logs})
