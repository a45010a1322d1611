"""DonorPool: wide outcome matrices of a few treated units and their donors.

Synthetic control, synthetic DID and the regression control method all work on the same
shape: a (time x treated) matrix of treated outcomes, a (time x donor) matrix of donor
outcomes, and the pre-treatment periods of each treated unit. :func:`donor_pool` builds
it from a :class:`~bayesdid.panel.Panel` once, with the checks these methods share.

Examples
--------
>>> from bayesdid import Panel
>>> from bayesdid.datasets import load, info
>>> panel = Panel.from_frame(load("prop99"), **info("prop99")["panel_kwargs"])
>>> pool = donor_pool(panel)
>>> pool.treated_units, pool.y_donors.shape, int(pool.pre_periods(0).sum())
(('California',), (31, 38), 19)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ColumnError, DesignError, MissingValueError
from ..panel import Panel

__all__ = ["DonorPool", "donor_pool"]


@dataclass(frozen=True, eq=False)
class DonorPool:
    """Balanced wide outcome matrices for few-treated-unit methods.

    Attributes
    ----------
    times : (T,) sorted periods.
    treated_units, donor_units : unit labels, in column order.
    y_treated : (T, n_treated) outcomes of the treated units.
    y_donors : (T, n_donors) outcomes of the donors.
    start : (n_treated,) first treated period of each treated unit.
    outcome : the outcome column's name.
    time_name : a period's label in effect groups (``t=2011-03`` for monthly time); the
        period itself by default.
    """

    times: np.ndarray
    treated_units: tuple
    donor_units: tuple
    y_treated: np.ndarray
    y_donors: np.ndarray
    start: np.ndarray
    outcome: str
    time_name: Callable = int

    def pre_periods(self, j: int = 0) -> np.ndarray:
        """Boolean (T,) mask of treated unit ``j``'s pre-treatment periods."""
        return self.times < self.start[j]

    def post_periods(self, j: int = 0) -> np.ndarray:
        """Boolean (T,) mask of treated unit ``j``'s treated periods."""
        return self.times >= self.start[j]

    @property
    def n_donors(self) -> int:
        return len(self.donor_units)


def donor_pool(panel: Panel, *, treated: Sequence | None = None,
               donors: Sequence | None = None) -> DonorPool:
    """Wide treated and donor outcome matrices from ``panel``.

    Parameters
    ----------
    treated : treated units (default: every ever-treated unit of the panel).
    donors : donor units (default: every never-treated unit).

    Raises
    ------
    ColumnError : a treated or donor unit is not in the panel.
    DesignError : a treated unit is listed as a donor or was never treated, no donors,
        no pre-period, or the outcome is constant over the donors and treated units.
    MissingValueError : a treated or donor unit lacks an outcome in some period.
    """
    frame = panel.frame
    unit_info = frame.groupby(panel.unit, sort=True).agg(
        cohort=("cohort", "first"), never=("never_treated", "first"))
    if treated is None:
        treated = unit_info.index[~unit_info["never"]].tolist()
    if donors is None:
        donors = unit_info.index[unit_info["never"]].tolist()
    treated, donors = list(treated), list(donors)
    _check_known(unit_info, treated, panel.unit, "treated")
    _check_known(unit_info, donors, panel.unit, "donors")
    overlap = sorted(set(treated) & set(donors), key=str)
    if overlap:
        raise DesignError(f"treated unit(s) {overlap} also listed as donors; a unit cannot be "
                          f"its own control", column=panel.unit,
                          rows=frame[frame[panel.unit].isin(overlap)].head(10))
    never = unit_info.loc[treated, "never"]
    if never.any():
        bad = never.index[never].tolist()
        raise DesignError(f"unit(s) {bad} are listed as treated but never treated in the panel",
                          column="cohort", hint="check the panel's treat/cohort/policy_lists")
    if not treated:
        raise DesignError("the panel has no treated unit", column="cohort")
    if not donors:
        raise DesignError("no donor units: the panel has no never-treated unit", column="cohort",
                          hint="pass donors=[...] explicitly")
    wide = frame.pivot(index=panel.time, columns=panel.unit, values=panel.outcome).sort_index()
    wide = wide.reindex(columns=treated + donors).astype(float)
    missing = wide.isna()
    if missing.any().any():
        cols = missing.columns[missing.any()].tolist()
        rows = (missing.stack().rename("missing").reset_index()
                .query("missing").drop(columns="missing"))
        raise MissingValueError(
            f"outcome '{panel.outcome}' is missing for unit(s) {cols[:10]} in some periods; "
            f"synthetic and regression control need every unit in every period",
            column=panel.outcome, rows=rows,
            hint="drop those units (donors=[...]) or interpolate (Panel.from_frame(interpolate=...))")
    values = wide.to_numpy()
    if np.ptp(values) == 0:
        raise DesignError(f"outcome '{panel.outcome}' is constant across the treated units "
                          f"and donors; there is nothing to fit", column=panel.outcome)
    times = wide.index.to_numpy()
    start = unit_info.loc[treated, "cohort"].astype(float).to_numpy()
    no_pre = [u for u, s in zip(treated, start) if not (times < s).any()]
    if no_pre:
        raise DesignError(f"treated unit(s) {no_pre} have no pre-treatment period",
                          column=panel.time)
    return DonorPool(times=times, treated_units=tuple(treated), donor_units=tuple(donors),
                     y_treated=values[:, :len(treated)], y_donors=values[:, len(treated):],
                     start=start, outcome=panel.outcome, time_name=panel.time_axis.name)


def _check_known(unit_info: pd.DataFrame, units: list, column: str, role: str) -> None:
    unknown = [u for u in units if u not in unit_info.index]
    if unknown:
        raise ColumnError(f"{role} unit(s) {unknown[:10]} are not in the panel's '{column}' "
                          f"column", column=column)
