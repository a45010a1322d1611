"""EffectResult: the one tidy effects table every estimator returns.

Columns of :meth:`EffectResult.effects` (one row per reported effect):

========== =================================================================
estimand   ``att``, ``att_gt``, ``event_time``, ``gap``, ``indirect``, ...
group      ``overall``, ``cohort=2011``, ``region=East``,
           ``cohort=2011, region=East``, ``k=-3``, ``unit=...``
estimate   point estimate (posterior mean for Bayesian results)
se_or_sd   standard error (classical) or posterior standard deviation
lower      lower end of the interval
upper      upper end of the interval
level      interval level, e.g. 0.95
interval   ``confidence`` | ``hdi`` | ``eti`` | ``placebo`` (estimate +/- z * sd of
           placebo estimates, e.g. synthetic control; not a confidence interval)
method     estimator name, e.g. ``twfe``, ``hierarchical_did``
n_obs      observations behind the estimate (treated cells for group rows)
========== =================================================================

Every result derives from :class:`Result`, the one protocol: ``effects(level=None,
interval=None)`` (the table above), ``summary()`` (a DataFrame), ``to_frame()`` (the
result's main table), ``plot()`` (a matplotlib Figure), ``report()`` / ``str()`` (printable
text) and a short ``repr`` (a head and counts). Effect estimators return an
:class:`EffectResult`; the few results that are tables of something else (efficiency
scores, a Malmquist index, a Bacon decomposition, ...) derive from :class:`Result` directly
and say why in their docstring.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .errors import BayesDidError, IntervalError

EFFECT_COLUMNS = [
    "estimand", "group", "estimate", "se_or_sd", "lower", "upper",
    "level", "interval", "method", "n_obs",
]
SUMMARY_COLUMNS = ["estimand", "group", "estimate", "se_or_sd", "lower", "upper", "level",
                   "interval", "n_obs"]
INTERVAL_KINDS = ("confidence", "hdi", "eti", "placebo")
REPR_ROWS = 5  # rows a repr shows; summary() / to_frame() give them all
RECOMPUTABLE = ("confidence", "placebo")  # estimate +/- quantile * se_or_sd


def group_label(**parts: Any) -> str:
    """Canonical group label: ``group_label(cohort=2011, region="East")``.

    >>> group_label(cohort=2011, region="East")
    'cohort=2011, region=East'
    >>> group_label()
    'overall'
    """
    if not parts:
        return "overall"
    return ", ".join(f"{k}={_fmt_value(v)}" for k, v in parts.items())


def _fmt_value(v: Any) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, np.integer):
        return str(int(v))
    return str(v)


def tidy_table(rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Validate and order rows into the canonical effects table (a new frame)."""
    table = pd.DataFrame(rows).copy()
    missing = [c for c in EFFECT_COLUMNS if c not in table.columns]
    if missing:
        raise BayesDidError(f"effects table lacks columns {missing}", column=missing[0])
    bad = table.loc[~table["interval"].isin(INTERVAL_KINDS)]
    if len(bad):
        raise BayesDidError(
            f"interval must be one of {INTERVAL_KINDS}", column="interval", rows=bad)
    table = table[EFFECT_COLUMNS + [c for c in table.columns if c not in EFFECT_COLUMNS]]
    for col in ("estimate", "se_or_sd", "lower", "upper", "level"):
        table[col] = table[col].astype(float)
    table["n_obs"] = table["n_obs"].astype("Int64")
    for col in ("estimand", "group", "interval", "method"):
        table[col] = table[col].astype(str)
    return table.reset_index(drop=True)


def check_level(level: float | None) -> None:
    """An :class:`IntervalError` unless ``level`` is None or in (0, 1)."""
    if level is None:
        return
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) \
            or not 0 < level < 1:
        raise IntervalError(f"level must be a number in (0, 1), e.g. 0.95; got {level!r}")


def check_interval(result: Any, interval: str | None, available: Iterable[str]) -> None:
    """An :class:`IntervalError` unless ``interval`` is None or one of ``available``."""
    available = tuple(available)
    if interval is not None and interval not in available:
        raise IntervalError(
            f"{type(result).__name__}.effects() gives {list(available)} intervals, "
            f"not {interval!r}", column="interval",
            hint="pass interval=None for the result's own kind")


class Result:
    """The protocol every bayesdid result follows.

    * ``effects(level=None, interval=None)``: the tidy table of :mod:`bayesdid.results`
      (``level`` None keeps the result's own level; a level or kind it cannot give raises
      :class:`~bayesdid.errors.IntervalError` naming those it can);
    * ``summary()``: a DataFrame (the headline table of the method);
    * ``to_frame()``: the result's main table as a DataFrame (a copy);
    * ``plot(ax=None, **kwargs)``: the method's usual figure, a
      :class:`matplotlib.figure.Figure` (matplotlib is imported only then);
    * ``report()`` and ``str()``: the summary as printable (Markdown) text;
    * ``repr()``: one header line with counts and the first rows of ``summary()``.

    >>> rows = [dict(estimand="event_time", group=f"k={k}", estimate=0.01 * k, se_or_sd=0.02,
    ...              lower=0.01 * k - 0.04, upper=0.01 * k + 0.04, level=0.95,
    ...              interval="confidence", n_obs=50) for k in range(-5, 6)]
    >>> res = EffectResult.from_rows(rows, method="event_study")
    >>> isinstance(res, Result), type(res.summary()).__name__
    (True, 'DataFrame')
    >>> text = repr(res).splitlines()
    >>> text[0], len(text), text[-1]
    ("<EffectResult method='event_study' rows=11>", 8, '... 6 more rows (summary() or to_frame() for all)')
    >>> res.plot().axes[0].get_xlabel()
    'event time (k)'
    >>> res.effects(interval="hdi")
    Traceback (most recent call last):
    ...
    bayesdid.errors.IntervalError: EffectResult.effects() gives ['confidence'] intervals, not 'hdi'
    Hint: pass interval=None for the result's own kind
    """

    def effects(self, level: float | None = None, interval: str | None = None) -> pd.DataFrame:
        raise NotImplementedError

    def summary(self) -> pd.DataFrame:
        """The effects table without its repeated columns (a DataFrame)."""
        table = self.effects()
        return table[[c for c in SUMMARY_COLUMNS if c in table.columns]]

    def to_frame(self) -> pd.DataFrame:
        """The result's main table (here the effects table; a copy)."""
        return self.effects()

    def plot(self, ax=None, **kwargs):
        """The effects: an event-study plot when there are event-time rows, else a forest
        plot (``kind="forest"`` or ``"event_study"`` to choose). Returns a Figure."""
        return effects_plot(self, ax=ax, **kwargs)

    def report(self, digits: int = 4) -> str:
        """Header line and :meth:`summary` as a Markdown table."""
        frame = self.summary()
        return f"{self._header()}\n" + frame.to_markdown(index=False, floatfmt=f".{digits}f")

    def _describe(self) -> str:
        """Counts for the header line (class name and this)."""
        method = getattr(self, "method", None)
        return (f"method={method!r} " if method else "") + f"rows={len(self.effects())}"

    def _header(self) -> str:
        return f"<{type(self).__name__} {self._describe()}>"

    def __str__(self) -> str:
        return self.report()

    def __repr__(self) -> str:
        frame = self.summary()
        lines = [self._header()]
        if len(frame):
            lines.append(frame.head(REPR_ROWS).to_string(index=False, max_colwidth=40,
                                                         float_format=_fmt_float))
        if len(frame) > REPR_ROWS:
            lines.append(f"... {len(frame) - REPR_ROWS} more rows (summary() or to_frame() "
                         "for all)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        frame = self.summary()
        more = len(frame) - 20
        tail = f"<p>... {more} more rows (summary() or to_frame() for all)</p>" if more > 0 else ""
        return (f"<p><b>{type(self).__name__}</b> {self._describe()}</p>"
                + frame.head(20).to_html(index=False, float_format="%.4f") + tail)


def _fmt_float(x: float) -> str:
    return f"{x:.4g}"


def effects_plot(result: Result, *, ax=None, kind: str = "auto", **kwargs):
    """The figure of an effects table: ``kind="event_study"`` (event-time rows,
    :func:`~bayesdid.report.plots.event_study_plot`), ``"forest"`` (every other row,
    :func:`~bayesdid.report.plots.forest_plot`) or ``"auto"`` (event study when the table
    has event-time rows)."""
    from .report.plots import event_study_plot, forest_plot  # lazy: matplotlib

    if kind not in ("auto", "forest", "event_study"):
        raise BayesDidError(f"kind must be 'auto', 'forest' or 'event_study', got {kind!r}")
    table = result.effects()
    has_events = bool((table["estimand"] == "event_time").any())
    if kind == "event_study" or (kind == "auto" and has_events):
        kwargs.setdefault("level", None)
        return event_study_plot(result, ax=ax, **kwargs)
    rows = table[table["estimand"] != "event_time"] if has_events else table
    return forest_plot(rows, ax=ax, **kwargs)


@dataclass(frozen=True, eq=False, repr=False)
class EffectResult(Result):
    """Effects from one estimator, as one tidy table.

    Classical estimators return this directly; :class:`bayesdid.bayes.BayesResult`
    extends it with posterior draws. Results are never modified after they are returned:
    :meth:`effects` hands out a copy.

    Examples
    --------
    >>> res = EffectResult.from_rows(
    ...     [dict(estimand="att", group="overall", estimate=0.1, se_or_sd=0.02,
    ...           lower=0.06, upper=0.14, level=0.95, interval="confidence", n_obs=100)],
    ...     method="twfe")
    >>> res.effects()[["estimand", "estimate"]].to_dict("records")
    [{'estimand': 'att', 'estimate': 0.1}]
    """

    table: pd.DataFrame
    method: str
    info: Mapping[str, Any] = field(default_factory=dict)
    #: the underlying pyfixest fit of a classical regression (``pf.etable([res.fit])``,
    #: ``pf.iplot``), else None; not stored by the study cache
    fit: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], *, method: str,
                  info: Mapping[str, Any] | None = None, fit: Any = None) -> EffectResult:
        rows = [dict(r, method=r.get("method", method)) for r in rows]
        return cls(table=tidy_table(rows), method=method, info=dict(info or {}), fit=fit)

    def __post_init__(self) -> None:
        object.__setattr__(self, "table", tidy_table(self.table))

    # -- the canonical output ------------------------------------------------------
    def effects(self, level: float | None = None, interval: str | None = None) -> pd.DataFrame:
        """The tidy effects table (a copy).

        ``level`` recomputes confidence (and placebo) intervals from the standard errors,
        with the t distribution when the estimator recorded its degrees of freedom
        (``info['df']``) and the normal otherwise. ``interval`` must be None or a kind the
        table holds (a table cannot turn confidence into credible intervals); credible
        intervals stored without draws keep their level. Either mismatch raises
        :class:`~bayesdid.errors.IntervalError` naming what is available.
        """
        table = self.table.copy()
        check_level(level)
        check_interval(self, interval, dict.fromkeys(table["interval"]))
        if level is None or np.allclose(table["level"], level):
            return table
        if (~table["interval"].isin(RECOMPUTABLE)).any():
            levels = sorted(set(table["level"].round(6)))
            raise IntervalError(
                f"this table's credible intervals exist at level(s) {levels} only, not "
                f"{level}; they cannot be recomputed from a table at another level",
                column="level", hint="use the Bayesian result's effects(level=...)")
        dof = self.info.get("df")
        q = stats.t.ppf(0.5 + level / 2, dof) if dof else stats.norm.ppf(0.5 + level / 2)
        table["lower"] = table["estimate"] - q * table["se_or_sd"]
        table["upper"] = table["estimate"] + q * table["se_or_sd"]
        table["level"] = level
        if "band" in table.columns:  # recomputed intervals are pointwise
            table["band"] = "pointwise"
        return table

    def effect(self, estimand: str = "att", group: str = "overall") -> pd.Series:
        """One row of :meth:`effects` as a Series."""
        table = self.effects()
        hit = table[(table["estimand"] == estimand) & (table["group"] == group)]
        if hit.empty:
            options = sorted(set(zip(table["estimand"], table["group"])))
            raise KeyError(f"no effect ({estimand!r}, {group!r}); available: {options[:20]}")
        return hit.iloc[0]

    # -- display: summary(), report(), repr and plot() come from Result ---------------
    def _describe(self) -> str:
        return f"method={self.method!r} rows={len(self.table)}"
