"""The opening of a study report: one short line per step, in words.

Each line names the step, its kind and family, then its headline effects: the overall ATT
when the step reports one, else the rows of its main estimand (at most four: a region
split, a mediator's indirect effect, a sensitivity ladder; for an event study the effect on
impact, k=0, and at the last lag, with how many leads' intervals exclude 0), each with its
interval and

- for a Bayesian row (HDI / ETI): P(effect > 0), from the step's posterior draws (or those of
  the step it summarises, for posterior contrasts) where they are kept;
- for a classical row: the two-sided p-value (the estimator's own where it reports one, e.g.
  a permutation p, else the test of estimate / SE, as the regression table's stars), and for
  a placebo test its placebo p;

then, for a hierarchical DID whose default (``random_effects="auto"``) added group x period
random effects, which term and the residual check that asked for it, then any failed
diagnostic: the convergence checks of a Bayesian step (the table the report
lists below, computed when the step was fitted), and what a classical estimator recorded as
failed (infeasible LPs, failed placebo or bootstrap draws, unmatched treated rows, skipped
group-time cells). Efficiency levels get no p-value or P(> 0): they are not effects.

>>> import pandas as pd
>>> from types import SimpleNamespace as S
>>> from bayesdid.results import EffectResult
>>> table = pd.DataFrame([dict(estimand="att", group="overall", estimate=0.1, se_or_sd=0.02,
...     lower=0.06, upper=0.14, level=0.95, interval="confidence", method="twfe", n_obs=500)])
>>> out = S(table=table, result=EffectResult(table=table, method="twfe"))
>>> step_line(S(name="twfe", kind="twfe", options={}), out)
'`twfe` (twfe, DID): ATT = 0.100, 95% CI [0.060, 0.140], p < 0.001 (normal test).'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..report.regression_table import classical_p_value
from .families import family_of
from ..report.plots import event_time
from ..report.tables import format_interval, format_number, interval_label, order_rows

__all__ = ["step_line", "narrative", "failed_diagnostics"]

_CREDIBLE = ("hdi", "eti")
# headline estimands, in order of preference
_MAIN = ("att", "indirect", "gap", "efficiency", "att_sensitivity", "event_time")
_MAX_ROWS = 4
_NO_P = ("efficiency", "att_sensitivity", "placebo", "placebo_p")  # levels, bounds, nulls
_NAMES = {"att": "ATT", "efficiency": "mean efficiency", "att_sensitivity": "ATT bound",
          "indirect": "indirect effect", "gap": "gap", "event_time": "effect at"}

# what a classical estimator records (in result.info) when part of it failed
_INFO_CHECKS: tuple[tuple[str, Callable[[Mapping[str, Any]], str | None]], ...] = (
    ("n_failed", lambda i: f"{i['n_failed']} placebo draw(s) failed"
     if i.get("n_failed") else None),
    ("n_infeasible", lambda i: f"{i['n_infeasible']} of {i.get('n_lp', '?')} LP(s) "
     "infeasible (scores filled within unit)" if i.get("n_infeasible") else None),
    ("n_boot_valid", lambda i: f"{i['n_boot'] - i['n_boot_valid']} of {i['n_boot']} bootstrap "
     "draw(s) failed" if i.get("n_boot") and i.get("n_boot_valid") is not None
     and i["n_boot_valid"] < i["n_boot"] else None),
    ("n_treated_rows_unmatched", lambda i: f"{i['n_treated_rows_unmatched']} treated row(s) "
     "unmatched" if i.get("n_treated_rows_unmatched") else None),
    ("skipped_att_gt", lambda i: f"{len(i['skipped_att_gt'])} group-time cell(s) skipped"
     if i.get("skipped_att_gt") else None),
)


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _headline(table: pd.DataFrame) -> pd.DataFrame:
    """The overall ATT, else the first rows of the first main estimand present."""
    overall = table[(table["estimand"] == "att") & (table["group"] == "overall")]
    if len(overall):
        return overall.head(1)
    present = [e for e in _MAIN if (table["estimand"] == e).any()]
    estimand = present[0] if present else table["estimand"].iloc[0]
    rows = table[table["estimand"] == estimand]
    rows = order_rows(rows.assign(method=rows.get("method", "")))
    if (rows["group"] == "overall").any():  # mean efficiency: not each period's
        return rows[rows["group"] == "overall"].head(1)
    if estimand == "event_time":  # the effect on impact and the last lag
        k = rows["group"].map(event_time)
        lags = rows[k >= 0]
        return lags.iloc[[0, -1]].drop_duplicates() if len(lags) else rows.head(1)
    return rows


def _leads_text(table: pd.DataFrame) -> str | None:
    """How many pre-treatment (k < 0) event-time intervals exclude zero."""
    rows = table[table["estimand"] == "event_time"]
    k = rows["group"].map(event_time)
    leads = rows[(k < 0) & rows["lower"].notna() & rows["upper"].notna()]
    if leads.empty:
        return None
    outside = int(((leads["lower"] > 0) | (leads["upper"] < 0)).sum())
    return f"leads: {outside} of {len(leads)} intervals exclude 0"


def _draws(results: list[Any], estimand: str, group: str) -> np.ndarray | None:
    for result in results:
        if result is not None and hasattr(result, "idata") and hasattr(result, "draws"):
            try:
                return np.asarray(result.draws(estimand, group), float)
            except KeyError:
                continue
    return None


def _placebo_p(table: pd.DataFrame) -> str | None:
    hit = table[(table["estimand"] == "placebo_p")
                & table["group"].str.contains("side=two-sided", regex=False)]
    if hit.empty:
        return None
    row = hit.iloc[0]
    p = float(row["estimate"])
    bound = (f" ({row['level']:.0%} upper bound {format_number(row['upper'])})"
             if p == 0 and pd.notna(row["upper"]) else "")
    return f"placebo {_p_text(p) if p else 'p = 0'}{bound} over {int(row['n_obs'])} draws"


def _random_effects_text(result: Any) -> str | None:
    """The group x period random effects ``HierarchicalDiD(random_effects="auto")`` added,
    and the first fit's check that asked for them (None when it added none)."""
    chosen = (getattr(result, "info", None) or {}).get("random_effects") or {}
    if not chosen.get("used"):
        return None
    checks = ", ".join(f"{group} x period {_p_text(p)}"
                       for group, p in chosen.get("group_x_period_p", {}).items())
    return (f"random effects {chosen['used']} added (the first fit's residual check: "
            f"{checks})")


def failed_diagnostics(result: Any, diagnostics: pd.DataFrame | None) -> list[str]:
    """What failed, in words: convergence checks (Bayesian) or recorded failures."""
    out = []
    if diagnostics is not None:
        from ..bayes.convergence import failed_checks

        bad = failed_checks(diagnostics)
        n_div = (int(diagnostics["divergences"].iloc[0]) if "divergences" in diagnostics
                 and len(diagnostics) else int(diagnostics.attrs.get("divergences", 0)))
        if len(bad):
            worst = ", ".join(f"{r.parameter} ({'/'.join(r.fails)})"
                              for r in bad.head(3).itertuples(index=False))
            out.append(f"{len(bad)} of {len(diagnostics)} quantities fail R-hat <= 1.01 or "
                       f"bulk/tail ESS >= 400 (worst: {worst})")
        if n_div:
            out.append(f"{n_div} divergent transition(s)")
    info = getattr(result, "info", None) or {}
    out += [text for _, check in _INFO_CHECKS if (text := check(info))]
    flagged = [r for r in info.get("ppc") or () if r.get("flagged")]
    if flagged:  # posterior predictive residual checks (bayesdid.did.ppc)
        out.append("residual checks flag " + "; ".join(
            f"{r['check']} (p={r['p_value']:.3f}: {r['remedy']})" for r in flagged))
    return out


def step_line(step: Any, output: Any, *, diagnostics: pd.DataFrame | None = None,
              upstream: Mapping[str, Any] | None = None) -> str:
    """One Markdown sentence for a step (see the module docstring). ``upstream``: the
    results of the steps this one refers to (``of``), whose draws give P(effect > 0)."""
    table = output.table
    head = f"`{step.name}` ({step.kind}, {family_of(step.kind)})"
    if table.empty:
        return f"{head}: no effects."
    rows = _headline(table)
    sources = [output.result, *(upstream or {}).values()]
    parts = []
    for _, row in rows.head(_MAX_ROWS).iterrows():
        name = _NAMES.get(row["estimand"], row["estimand"])
        label = name if row["group"] == "overall" else f"{name} {row['group']}"
        text = f"{label} = {format_number(row['estimate'])}"
        interval = format_interval(row["lower"], row["upper"])
        if interval:
            text += f", {interval_label(row['interval'], row['level'], short=True)} {interval}"
        if row["estimand"] not in _NO_P:
            if row["interval"] in _CREDIBLE:
                draws = _draws(sources, row["estimand"], row["group"])
                if draws is not None and draws.size:
                    text += f", P(effect > 0) = {np.mean(draws > 0):.3f}"
            else:
                p, how = classical_p_value(output.result, row)
                if np.isfinite(p):
                    text += f", {_p_text(p)} ({how})"
        parts.append(text)
    more = len(table) - min(len(rows), _MAX_ROWS)
    line = f"{head}: " + "; ".join(parts)
    for extra in (_placebo_p(table), _leads_text(table) if rows["estimand"].iloc[0]
                  == "event_time" else None, _random_effects_text(output.result)):
        if extra:
            line += f"; {extra}"
    line += f" (and {more} more rows)." if more > 0 else "."
    failed = failed_diagnostics(output.result, diagnostics)
    if failed:
        line += " **Failed diagnostics:** " + "; ".join(failed) + "."
    elif diagnostics is not None:
        line += " Converged (R-hat, ESS, divergences)."
    return line


def narrative(steps: list[Any], outputs: Mapping[str, Any],
              diagnostics: Mapping[str, pd.DataFrame]) -> list[str]:
    """One line per step, in study order (see :func:`step_line`)."""
    lines = []
    for step in steps:
        refs = [step.options.get("of")] if isinstance(step.options.get("of"), str) else []
        upstream = {r: outputs[r].result for r in refs if r in outputs}
        lines.append(step_line(step, outputs[step.name],
                               diagnostics=diagnostics.get(step.name), upstream=upstream))
    return lines
