"""Rendering helpers for side-by-side effect tables (Markdown, LaTeX, HTML).

Everything here works on the *long* comparison table: one row per (estimand, group, method)
with the columns of :meth:`bayesdid.results.EffectResult.effects` (``method`` holding the
label shown in the table). :class:`bayesdid.compare.Comparison` uses these helpers; they are
public so a study report can render any tidy effects table the same way.

>>> import pandas as pd
>>> long = pd.DataFrame(dict(
...     estimand=["att", "att"], group=["overall", "overall"], method=["twfe", "bayes"],
...     estimate=[0.1, 0.12], lower=[0.05, 0.07], upper=[0.15, 0.16],
...     level=[0.95, 0.95], interval=["confidence", "hdi"]))
>>> wide_table(long, ["twfe", "bayes"])["bayes: interval"].tolist()
['[0.070, 0.160]']
>>> interval_notes(long, ["twfe", "bayes"])
['twfe: 95% confidence interval', 'bayes: 95% HDI (highest-density credible interval)']
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

__all__ = [
    "group_sort_key",
    "order_rows",
    "format_number",
    "format_interval",
    "interval_label",
    "interval_notes",
    "latex_escape",
    "wide_table",
    "render_markdown",
    "render_latex",
    "render_html",
    "INTERVAL_EXPLANATION",
]

INTERVAL_EXPLANATION = (
    "Confidence intervals are frequentist: over repeated samples they cover the true effect "
    "at the stated rate. HDI (highest-density) and ETI (equal-tailed) intervals are Bayesian "
    "credible intervals: given the model and data, the effect lies inside with the stated "
    "posterior probability."
)
_KIND_TEXT = {
    "confidence": "confidence interval",
    "hdi": "HDI (highest-density credible interval)",
    "eti": "ETI (equal-tailed credible interval)",
    "placebo": "placebo interval (estimate +/- z x sd of placebo estimates; not a CI)",
}
_KIND_SHORT = {"confidence": "CI", "hdi": "HDI", "eti": "ETI", "placebo": "placebo"}
# Order of group families: overall, cohort, region, cohort x region, event time, the rest.
_FAMILY = {(): 0, ("cohort",): 1, ("region",): 2, ("cohort", "region"): 3, ("k",): 4}
_PART = re.compile(r"^\s*([^=]+?)\s*=\s*(.*?)\s*$")


# -- ordering -------------------------------------------------------------------------
def _value_key(value: str) -> tuple[int, float, str]:
    try:
        number = float(value)
    except ValueError:
        return (1, 0.0, value)
    return (0, number, "") if math.isfinite(number) else (1, 0.0, value)


def group_sort_key(group: str) -> tuple[Any, ...]:
    """Sort key for group labels.

    ``overall`` first, then ``cohort=...``, ``region=...``, ``cohort=..., region=...``,
    ``k=...`` (numerically), then anything else; numeric values sort as numbers.

    >>> sorted(["k=10", "region=East", "k=-2", "overall", "cohort=2011, region=East",
    ...         "cohort=2011"], key=group_sort_key)
    ['overall', 'cohort=2011', 'region=East', 'cohort=2011, region=East', 'k=-2', 'k=10']
    """
    group = str(group)
    if group == "overall":
        return (0, (), ())
    parts = [_PART.match(p) for p in group.split(",")]
    if not all(parts):
        return (len(_FAMILY), (group,), ())
    pairs = dict((m.group(1), m.group(2)) for m in parts if m is not None)
    names = tuple(sorted(pairs))
    family = _FAMILY.get(names)
    if family is None:
        return (len(_FAMILY), names, tuple(_value_key(pairs[n]) for n in names))
    return (family, (), tuple(_value_key(pairs[n]) for n in names))


def order_rows(table: pd.DataFrame, labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Sort a long table: estimands in order of first appearance, groups by
    :func:`group_sort_key`, methods in ``labels`` order (first appearance if None)."""
    if table.empty:
        return table.reset_index(drop=True)
    estimands = {e: i for i, e in enumerate(pd.unique(table["estimand"]))}
    methods = list(labels) if labels is not None else list(pd.unique(table["method"]))
    method_rank = {m: i for i, m in enumerate(methods)}
    keys = [
        (estimands[e], group_sort_key(g), method_rank.get(m, len(methods)))
        for e, g, m in zip(table["estimand"], table["group"], table["method"])
    ]
    order = sorted(range(len(table)), key=keys.__getitem__)
    return table.iloc[order].reset_index(drop=True)


# -- formatting ---------------------------------------------------------------------
def format_number(x: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals; blank for missing; no ``-0.000``.

    >>> format_number(-0.00004), format_number(float("nan")), format_number(1.23456, 2)
    ('0.000', '', '1.23')
    """
    if x is None or pd.isna(x):
        return ""
    text = f"{float(x):.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def format_interval(lower: Any, upper: Any, digits: int = 3) -> str:
    """``[lo, hi]``, blank when both ends are missing.

    >>> format_interval(-0.1234, 0.5)
    '[-0.123, 0.500]'
    """
    lo, hi = format_number(lower, digits), format_number(upper, digits)
    if not lo and not hi:
        return ""
    return f"[{lo or '?'}, {hi or '?'}]"


def _level_text(level: Any) -> str:
    return "" if level is None or pd.isna(level) else f"{float(level) * 100:g}% "


def interval_label(kind: str, level: Any = None, short: bool = False) -> str:
    """Human label of an interval kind: ``interval_label("hdi", 0.95, short=True)`` is
    ``'95% HDI'``."""
    text = (_KIND_SHORT if short else _KIND_TEXT).get(kind, kind)
    return f"{_level_text(level)}{text}"


def _kinds(table: pd.DataFrame, label: str, short: bool) -> str:
    sub = table.loc[table["method"] == label, ["interval", "level"]].drop_duplicates()
    texts = [interval_label(k, lv, short=short) for k, lv in zip(sub["interval"], sub["level"])]
    return " / ".join(dict.fromkeys(texts)) or "no interval"


def interval_notes(table: pd.DataFrame, labels: Sequence[str]) -> list[str]:
    """One ``"<label>: <level> <interval kind>"`` line per method."""
    return [f"{label}: {_kinds(table, label, short=False)}" for label in labels]


def latex_escape(text: Any) -> str:
    r"""Escape LaTeX special characters.

    >>> latex_escape("hierarchical_did & 50% {x}")
    'hierarchical\\_did \\& 50\\% \\{x\\}'
    """
    out = []
    for ch in str(text):
        if ch == "\\":
            out.append(r"\textbackslash{}")
        elif ch in "&%$#_{}":
            out.append("\\" + ch)
        elif ch == "~":
            out.append(r"\textasciitilde{}")
        elif ch == "^":
            out.append(r"\textasciicircum{}")
        else:
            out.append(ch)
    return "".join(out)


def _latex_minus(cell: str) -> str:
    """A formatted number or interval with proper minus signs (``$-$``)."""
    return latex_escape(cell).replace("-", "$-$")


# -- wide table -----------------------------------------------------------------------
def wide_table(table: pd.DataFrame, labels: Sequence[str], digits: int = 3) -> pd.DataFrame:
    """One row per (estimand, group), an outer join over methods.

    Per method: ``"<label>: estimate"`` (float, NaN where the method has no such row) and
    ``"<label>: interval"`` (``"[lo, hi]"`` with ``digits`` decimals, blank where missing).
    """
    keys = table[["estimand", "group"]].drop_duplicates().reset_index(drop=True)
    out = keys.copy()
    for label in labels:
        sub = table.loc[table["method"] == label, ["estimand", "group", "estimate", "lower", "upper"]]
        merged = keys.merge(sub, on=["estimand", "group"], how="left")
        out[f"{label}: estimate"] = merged["estimate"].astype(float).to_numpy()
        out[f"{label}: interval"] = [
            format_interval(lo, hi, digits) for lo, hi in zip(merged["lower"], merged["upper"])]
    return out


def _cells(table: pd.DataFrame, labels: Sequence[str], digits: int) -> list[list[str]]:
    wide = wide_table(table, labels, digits)
    rows = []
    for _, row in wide.iterrows():
        cells = [str(row["estimand"]), str(row["group"])]
        for label in labels:
            cells += [format_number(row[f"{label}: estimate"], digits), row[f"{label}: interval"]]
        rows.append(cells)
    return rows


# -- renderers ------------------------------------------------------------------------
def render_markdown(table: pd.DataFrame, labels: Sequence[str], digits: int = 3) -> str:
    """A Markdown (pipe) table with a note on the interval kinds underneath."""
    from tabulate import tabulate

    headers = ["estimand", "group"]
    for label in labels:
        headers += [f"{label}: estimate", f"{label}: interval"]
    body = tabulate(_cells(table, labels, digits), headers=headers, tablefmt="pipe",
                    colalign=["left", "left"] + ["right"] * (2 * len(labels)),
                    disable_numparse=True)
    note = "Intervals: " + "; ".join(interval_notes(table, labels)) + ". " + INTERVAL_EXPLANATION
    return f"{body}\n\n{note}\n"


def render_latex(table: pd.DataFrame, labels: Sequence[str], digits: int = 3, *,
                 caption: str | None = None, label: str | None = None) -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""
    n = len(labels)
    lines = [r"\begin{table}[htbp]", r"\centering"]
    caption = caption or "Effects side by side, by method."
    lines.append(rf"\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines.append(r"\begin{tabular}{ll" + "rc" * n + "}")
    lines.append(r"\toprule")
    top = ["", ""] + [rf"\multicolumn{{2}}{{c}}{{{latex_escape(lb)}}}" for lb in labels]
    lines.append(" & ".join(top) + r" \\")
    lines.append(" ".join(rf"\cmidrule(lr){{{3 + 2 * i}-{4 + 2 * i}}}" for i in range(n)))
    lines.append(" & ".join(["Estimand", "Group"] + ["Estimate", "Interval"] * n) + r" \\")
    lines.append(r"\midrule")
    for cells in _cells(table, labels, digits):
        text = [latex_escape(c) for c in cells[:2]] + [_latex_minus(c) for c in cells[2:]]
        lines.append(" & ".join(text) + r" \\")
    lines.append(r"\bottomrule")
    lines.append(r"\end{tabular}")
    note = "Intervals: " + "; ".join(interval_notes(table, labels)) + ". " + INTERVAL_EXPLANATION
    lines.append(r"\par\smallskip{\footnotesize " + latex_escape(note) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def render_html(table: pd.DataFrame, labels: Sequence[str], digits: int = 3, *,
                caption: str | None = None) -> str:
    """A standalone ``<table>`` fragment whose caption explains the interval kinds."""
    esc = html.escape
    caption = caption or "Effects side by side, by method."
    notes = "; ".join(esc(t) for t in interval_notes(table, labels))
    parts = [
        '<table class="bayesdid-comparison" border="1" style="border-collapse:collapse">',
        f"<caption>{esc(caption)}<br><small>Intervals: {notes}. "
        f"{esc(INTERVAL_EXPLANATION)}</small></caption>",
        "<thead>",
        '<tr><th rowspan="2">estimand</th><th rowspan="2">group</th>'
        + "".join(f'<th colspan="2">{esc(lb)} ({esc(_kinds(table, lb, short=True))})</th>'
                  for lb in labels) + "</tr>",
        "<tr>" + "<th>estimate</th><th>interval</th>" * len(labels) + "</tr>",
        "</thead>",
        "<tbody>",
    ]
    for cells in _cells(table, labels, digits):
        tds = [f"<td>{esc(cells[0])}</td>", f"<td>{esc(cells[1])}</td>"]
        tds += [f'<td style="text-align:right">{esc(c)}</td>' for c in cells[2:]]
        parts.append("<tr>" + "".join(tds) + "</tr>")
    parts += ["</tbody>", "</table>"]
    return "\n".join(parts) + "\n"
