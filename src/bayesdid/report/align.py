"""Align several results on (estimand, group): the long table behind :func:`bayesdid.compare`
and the overlay plots (kept here, below both, so that plots need not import ``compare``).

>>> from bayesdid.results import EffectResult
>>> r = EffectResult.from_rows([dict(estimand="att", group="overall", estimate=0.1,
...     se_or_sd=0.02, lower=0.06, upper=0.14, level=0.95, interval="confidence",
...     n_obs=100)], method="twfe")
>>> table, labels = align_results((r, r), None, 0.95)
>>> labels, list(table["method"])
(['twfe', 'twfe (2)'], ['twfe', 'twfe (2)'])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..errors import ComparisonError
from ..results import EFFECT_COLUMNS, EffectResult, Result
from .tables import order_rows

__all__ = ["COMPARISON_COLUMNS", "align_results"]

COMPARISON_COLUMNS = [
    "estimand", "group", "method", "estimate", "se_or_sd", "lower", "upper",
    "interval", "level", "n_obs",
]


def _dedupe(labels: Sequence[str]) -> list[str]:
    """``["twfe", "twfe"] -> ["twfe", "twfe (2)"]`` (never clashing with a given label)."""
    taken = set(labels)
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        count = seen.get(label, 0) + 1
        seen[label] = count
        if count == 1:
            out.append(label)
            continue
        n = count
        while f"{label} ({n})" in taken:
            n += 1
        new = f"{label} ({n})"
        taken.add(new)
        out.append(new)
    return out


def _check_results(results: tuple[Any, ...]) -> None:
    if not results:
        raise ComparisonError(
            "compare() needs at least one result", hint="compare(bayes_res, twfe_res)")
    for i, r in enumerate(results):
        if isinstance(r, Result):
            continue
        if isinstance(r, (list, tuple)) and r and all(isinstance(x, Result) for x in r):
            raise ComparisonError(
                f"argument {i} is a {type(r).__name__} of results; pass them separately",
                hint="compare(*results)")
        raise ComparisonError(
            f"argument {i} is a {type(r).__module__}.{type(r).__qualname__} ({r!r:.80}), "
            "not a bayesdid result (EffectResult or another Result)",
            hint="pass what an estimator's fit()/function returns (an EffectResult)")


def _labels(results: tuple[EffectResult, ...], labels: Sequence[str] | str | None) -> list[str]:
    if labels is None:
        return _dedupe([str(r.method) for r in results])
    if isinstance(labels, str):
        labels = [labels]
    labels = list(labels)
    if len(labels) != len(results):
        raise ComparisonError(
            f"got {len(labels)} label(s) {labels} for {len(results)} result(s)",
            hint="give one label per result, or labels=None to use each result's method")
    bad = [lb for lb in labels if not isinstance(lb, str) or not lb.strip()]
    if bad:
        raise ComparisonError(f"labels must be non-empty strings, got {bad}")
    return _dedupe(labels)


def _effects(result: Result, level: float | None) -> pd.DataFrame:
    """``result.effects(level=level)``: every result takes ``effects(level=, interval=)``
    (:class:`~bayesdid.results.Result`), each kind at its own default interval."""
    return result.effects(level=level)


def _long_table(results: tuple[EffectResult, ...], labels: list[str],
                level: float | None) -> pd.DataFrame:
    frames = []
    for label, result in zip(labels, results):
        table = _effects(result, level)
        missing = [c for c in EFFECT_COLUMNS if c not in table.columns]
        if missing:
            raise ComparisonError(
                f"effects() of {label!r} lacks columns {missing}", column=missing[0])
        dup = table[table.duplicated(["estimand", "group"], keep=False)]
        if len(dup):
            raise ComparisonError(
                f"result {label!r} reports the same (estimand, group) more than once",
                rows=dup[EFFECT_COLUMNS])
        table = table[EFFECT_COLUMNS].copy()
        table["method"] = label
        frames.append(table[COMPARISON_COLUMNS])
    long = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=COMPARISON_COLUMNS)
    long["n_obs"] = long["n_obs"].astype("Int64")
    return order_rows(long, labels)


def align_results(results: tuple[Any, ...], labels: Sequence[str] | str | None,
                  level: float | None) -> tuple[pd.DataFrame, list[str]]:
    """Check ``results``, label them (de-duplicated) and stack their effects at ``level``."""
    _check_results(results)
    names = _labels(results, labels)
    return _long_table(results, names, level), names
