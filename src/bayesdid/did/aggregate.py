"""From cell effects to reported effects: observation-weighted averages (NumPy layer).

Every reported effect (ATT overall, by cohort, by group, by cohort x group, by event time,
by cohort x event time) is a weighted average of the treated-cell effects, with weights equal to the cells'
(weighted) numbers of treated observations. The map is one matrix ``M`` (effects x cells)
whose rows sum to one, so effect draws are ``tau_draws @ M.T``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..results import group_label


@dataclass(frozen=True)
class Aggregation:
    """Rows: (estimand, group, n_obs); ``matrix``: effects x cells, rows summing to one."""

    estimand: list[str]
    group: list[str]
    n_obs: np.ndarray
    matrix: np.ndarray

    @property
    def labels(self) -> list[str]:
        return [f"{e}|{g}" for e, g in zip(self.estimand, self.group)]


def aggregation(cells: pd.DataFrame, groups: list[str], event_time: bool,
                name=None) -> Aggregation:
    """Build the averaging matrix for a cell table with columns cohort, groups..., k,
    n_obs and weight. ``name`` labels a cohort (a period index) in group labels, e.g.
    ``panel.time_axis.name`` (``cohort=2011-03`` for monthly time); default: the index.

    With ``event_time=True`` it adds ``event_time`` rows by event time (``k=3``) and by
    cohort x event time (``cohort=2010, k=3``; the average over the pooled groups' cells
    of that cohort and event time), leads (``k < 0``) included.

    >>> cells = pd.DataFrame({"cohort": [2010, 2010, 2012], "k": [0, 1, 0],
    ...                       "n_obs": [4, 4, 2], "weight": [4.0, 4.0, 2.0]})
    >>> agg = aggregation(cells, [], event_time=True)
    >>> agg.labels[-2:]
    ['event_time|cohort=2010, k=1', 'event_time|cohort=2012, k=0']
    >>> agg.matrix[agg.labels.index("event_time|k=0")].round(3).tolist()
    [0.667, 0.0, 0.333]
    """
    name = name or (lambda c: c)
    weight = cells["weight"].to_numpy(dtype=float)
    n_obs = cells["n_obs"].to_numpy()
    estimand, group, counts, rows = [], [], [], []

    def add(kind: str, label: str, mask: np.ndarray) -> None:
        w = np.where(mask, weight, 0.0)
        if w.sum() <= 0:
            return
        estimand.append(kind)
        group.append(label)
        counts.append(int(n_obs[mask].sum()))
        rows.append(w / w.sum())

    post = cells["k"].to_numpy() >= 0  # lead (placebo) cells never enter an ATT
    add("att", "overall", post)
    for c in sorted(cells["cohort"].unique()):
        add("att", group_label(cohort=name(c)), post & (cells["cohort"].to_numpy() == c))
    for g in groups:
        for level in sorted(cells[g].unique(), key=str):
            add("att", group_label(**{g: level}), post & (cells[g].to_numpy() == level))
    for g in groups:
        for (c, level), _ in cells.groupby(["cohort", g], sort=True, observed=True):
            mask = post & (cells["cohort"].to_numpy() == c) & (cells[g].to_numpy() == level)
            add("att", group_label(cohort=name(c), **{g: level}), mask)
    if event_time:
        for k in sorted(cells["k"].unique()):
            add("event_time", group_label(k=k), cells["k"].to_numpy() == k)
        cohort, k = cells["cohort"].to_numpy(), cells["k"].to_numpy()
        for c, kk in sorted(set(zip(cohort.tolist(), k.tolist()))):
            add("event_time", group_label(cohort=name(c), k=kk), (cohort == c) & (k == kk))
    return Aggregation(estimand, group, np.asarray(counts), np.vstack(rows))
