"""Malmquist-Luenberger productivity index from directional distance functions.

For unit ``i`` between consecutive periods ``t`` and ``t+1`` with directional distances
``D^R(t) = D(x_t, y_t, b_t; g | technology R)`` (:func:`bayesdid.efficiency.dea.ddf`,
default direction ``g = (0, y, -b)``, weak disposability of the bad output):

* ``reference="contemporaneous"`` (Chung, Färe & Grosskopf 1997)::

      ML = sqrt( (1+D^t(t)) / (1+D^t(t+1)) * (1+D^{t+1}(t)) / (1+D^{t+1}(t+1)) )

  The mixed-period distances ``D^t(t+1)`` and ``D^{t+1}(t)`` can be infeasible; they give
  NaN and a logged count (``info['n_infeasible']``).
* ``reference="global"`` (Pastor & Lovell 2005; Oh 2010): the technology of all periods
  pooled, ``ML = (1+D^G(t)) / (1+D^G(t+1))``.
* ``reference="fixed"`` (Berg, Førsund & Jansen 1992; the LCCP paper's "fixed reference"):
  the technology of one base period ``F``, ``ML = (1+D^F(t)) / (1+D^F(t+1))``.

In every case ``EC = (1+D^t(t)) / (1+D^{t+1}(t+1))`` (efficiency change against the
contemporaneous frontier) and ``TC = ML / EC`` (technical change), so ``ML = EC x TC``
exactly. Values above 1 mean productivity growth. Without bad outputs and with ``g = (0, y)``
``1/(1+D)`` is the Shephard output distance, so the index is the output-oriented Malmquist
index of Färe et al. (1994) (checked against DEAP's example in the tests).

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"unit": [1, 2, 1, 2], "year": [1, 1, 2, 2], "x": [1.0, 1.0, 1.0, 1.0],
...                    "y": [1.0, 2.0, 2.0, 2.0], "b": [1.0, 1.0, 1.0, 1.0]})
>>> res = malmquist_luenberger(df, unit="unit", time="year", inputs=["x"], outputs=["y"],
...                            bads=["b"], reference="fixed")
>>> res.table[["unit", "time", "ml", "ec", "tc"]].round(4).to_dict("records")[0]
{'unit': 1, 'time': 2, 'ml': 1.3333, 'ec': 1.3333, 'tc': 1.0}
"""

from __future__ import annotations

import itertools
import logging
import time as _time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import _validate as v
from ..errors import BayesDidError, TimeColumnError
from ..results import Result, check_interval, check_level, group_label, tidy_table
from ._dea_common import _check_opts, _prepare
from .dea import _ddf_arrays

logger = logging.getLogger(__name__)

__all__ = ["MLResult", "MalmquistResult", "efficiency_panel", "malmquist_luenberger"]

REFERENCES = ("contemporaneous", "global", "fixed")
MEASURES = ("cumulative_ml", "ml", "ddf")


@dataclass(frozen=True, eq=False, repr=False)
class MalmquistResult(Result):
    """A Malmquist-Luenberger index, one row per unit x consecutive-period pair.

    A :class:`~bayesdid.results.Result`, not an EffectResult: a table of productivity
    indices (ML = EC x TC per unit and period pair, no standard errors), not of effects.

    ``table`` columns: ``unit``, ``time_from``, ``time`` (the later period), ``ml``, ``ec``,
    ``tc``, ``cum_ml`` (cumulative ML since the unit's first period) and the distances used
    (``d_own_from``, ``d_own``: contemporaneous; ``d_cross_from`` = D^{t+1}(t),
    ``d_cross`` = D^t(t+1) for the contemporaneous reference; ``d_ref_from``, ``d_ref``
    for global/fixed). ``distances`` holds per unit-time ``beta_own`` (own-period frontier)
    and ``beta_ref`` (global/fixed frontier). Column names ``unit``/``time`` are generic;
    ``unit_col``/``time_col`` record the caller's names.
    """

    table: pd.DataFrame
    distances: pd.DataFrame
    reference: str
    base_period: Any
    unit_col: str
    time_col: str
    info: dict[str, Any] = field(default_factory=dict)

    def by_period(self) -> pd.DataFrame:
        """Geometric means of ML, EC, TC over units by period (NaN ignored)."""
        logs = np.log(self.table[["ml", "ec", "tc"]])
        out = np.exp(logs.groupby(self.table["time"]).mean())
        out["n"] = self.table.groupby("time")["ml"].count()
        return out

    def efficiency_panel(self, measure: str = "cumulative_ml",
                         name: str = "efficiency") -> pd.DataFrame:
        """A unit x time frame (the caller's column names) with one efficiency column.

        ``measure``: ``"cumulative_ml"`` (1 in a unit's first period, then the running
        product of ML), ``"ml"`` (the index for the pair ending at that period, NaN in the
        first), or ``"ddf"`` (``1/(1+beta)`` against the reference technology: the
        own-period frontier for ``contemporaneous``, else the global/fixed one).
        """
        if measure not in MEASURES:
            raise BayesDidError(f"measure must be one of {MEASURES}, got {measure!r}")
        d = self.distances[["unit", "time"]].copy()
        if measure == "ddf":
            beta = self.distances["beta_own" if self.reference == "contemporaneous" else "beta_ref"]
            d[name] = 1.0 / (1.0 + beta.to_numpy())
        else:
            col = "cum_ml" if measure == "cumulative_ml" else "ml"
            d = d.merge(self.table[["unit", "time", col]], on=["unit", "time"], how="left")
            if measure == "cumulative_ml":
                first = d.groupby("unit")["time"].transform("min") == d["time"]
                d.loc[first, col] = 1.0
            d = d.rename(columns={col: name})
        return d.rename(columns={"unit": self.unit_col, "time": self.time_col})

    @property
    def method(self) -> str:
        return f"ml_{self.reference}"

    def effects(self, level: float | None = None, interval: str | None = None) -> pd.DataFrame:
        """Tidy table: geometric-mean ``ml``, ``ec``, ``tc`` per period (no standard errors,
        so no intervals at any ``level``)."""
        check_level(level)
        check_interval(self, interval, ("confidence",))
        per = self.by_period()
        rows = [{"estimand": k, "group": group_label(time=t), "estimate": per.loc[t, k],
                 "se_or_sd": np.nan, "lower": np.nan, "upper": np.nan,
                 "level": np.nan if level is None else level,
                 "interval": "confidence", "method": f"ml_{self.reference}",
                 "n_obs": int(per.loc[t, "n"])}
                for k in ("ml", "ec", "tc") for t in per.index]
        return tidy_table(rows)

    def summary(self) -> pd.DataFrame:
        """Geometric means of ML, EC and TC over units, one row per period (and ``n``)."""
        return self.by_period().reset_index()

    def to_frame(self) -> pd.DataFrame:
        """The index per unit and period pair (:attr:`table`, a copy)."""
        return self.table.copy()

    def _describe(self) -> str:
        return (f"reference={self.reference!r} units={self.table['unit'].nunique()} "
                f"pairs={len(self.table)}")

    def plot(self, ax=None, **kwargs):
        """ML, EC and TC by period (see
        :func:`bayesdid.report.efficiency_plots.plot_ml_decomposition`). Returns a Figure."""
        from ..report.efficiency_plots import plot_ml_decomposition

        return plot_ml_decomposition(self, ax=ax, **kwargs)


def _check_panel(data, unit, time, inputs, outputs, bads):
    if not isinstance(data, pd.DataFrame):
        raise BayesDidError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    v.check_nonempty(data)
    v.check_columns_exist(data, {"unit": unit, "time": time})
    frame = data[[unit, time, *inputs, *outputs, *bads]].copy()
    if not frame.index.is_unique:
        frame = frame.reset_index(drop=True)
    v.check_no_missing(frame, unit)
    frame[time] = v.coerce_time(frame, time)
    v.check_no_duplicates(frame, unit, time)
    v.check_several_periods(frame, time)
    return frame.sort_values([time, unit], kind="stable")


#: the name before 0.2 (kept for one release)
MLResult = MalmquistResult


def malmquist_luenberger(
    data: pd.DataFrame, *, unit: str, time: str, inputs: Sequence[str], outputs: Sequence[str],
    bads: Sequence[str] = (),
    reference: Literal["contemporaneous", "global", "fixed"] = "contemporaneous",
    base_period: Any = None, rts: Literal["crs", "vrs"] = "crs", direction=None,
    bad_disposability: Literal["weak", "strong"] = "weak", backend: str = "auto",
    progress: bool = False,
) -> MalmquistResult:
    """Malmquist-Luenberger index with EC x TC decomposition (see the module docstring).

    ``data`` is a long panel (one row per unit and period); ``base_period`` (fixed
    reference only) defaults to the first period. ``direction`` and ``bad_disposability``
    as in :func:`bayesdid.efficiency.dea.ddf`. Infeasible programmes (possible for
    mixed-period, fixed-reference and VRS distances) give NaN, counted in
    ``info['n_infeasible']`` and logged.
    """
    if reference not in REFERENCES:
        raise BayesDidError(f"reference must be one of {REFERENCES}, got {reference!r}")
    _check_opts(rts)
    inputs, outputs, bads = list(inputs), list(outputs), list(bads)
    frame = _check_panel(data, unit, time, inputs, outputs, bads)
    d = _prepare(frame, inputs, outputs, bads)
    periods = np.sort(frame[time].unique())
    if reference == "fixed":
        base_period = periods[0] if base_period is None else base_period
        if base_period not in set(periods.tolist()):
            raise TimeColumnError(f"base_period {base_period!r} is not a period of {time!r}",
                                  column=time, hint=f"periods run {periods[0]}..{periods[-1]}")
    elif base_period is not None:
        raise BayesDidError("base_period is used by reference='fixed' only")
    tvals, uvals = frame[time].to_numpy(), frame[unit].to_numpy()
    at = {t: np.flatnonzero(tvals == t) for t in periods}
    N = len(frame)
    beta_own, beta_ref = np.full(N, np.nan), np.full(N, np.nan)
    cross_next = np.full(N, np.nan)  # D^{t}(x_{t+1}) stored at the t+1 row
    cross_prev = np.full(N, np.nan)  # D^{t+1}(x_t) stored at the t row
    kw = {"direction": direction, "rts": rts, "bad_disposability": bad_disposability,
          "backend": backend}
    t0, n_lp, n_bad = _time.perf_counter(), 0, 0

    def run(ref_idx, ev_idx):
        nonlocal n_lp, n_bad
        beta, st = _ddf_arrays(d.X[ref_idx], d.Y[ref_idx], d.B[ref_idx],
                               d.X[ev_idx], d.Y[ev_idx], d.B[ev_idx], **kw)
        n_lp += len(ev_idx)
        n_bad += int((st != "optimal").sum())
        return beta

    for p, t in enumerate(tqdm(periods, desc="ML technologies", disable=not progress, leave=False)):
        prev = at[periods[p - 1]] if p > 0 and reference == "contemporaneous" else np.array([], int)
        nxt = (at[periods[p + 1]] if p + 1 < len(periods) and reference == "contemporaneous"
               else np.array([], int))
        ev = np.r_[at[t], prev, nxt]
        beta = run(at[t], ev)
        k0, k1 = len(at[t]), len(at[t]) + len(prev)
        beta_own[at[t]] = beta[:k0]
        cross_prev[prev] = beta[k0:k1]
        cross_next[nxt] = beta[k1:]
    if reference == "global":
        beta_ref[:] = run(np.arange(N), np.arange(N))
    elif reference == "fixed":
        base = at[base_period]
        rest = np.setdiff1d(np.arange(N), base)
        beta_ref[base] = beta_own[base]
        beta_ref[rest] = run(base, rest)
    elapsed = _time.perf_counter() - t0
    if n_bad:
        logger.warning("malmquist_luenberger (%s, %s): %d of %d directional-distance LP(s) "
                       "infeasible; the affected indices are NaN", reference, rts, n_bad, n_lp)

    dist = pd.DataFrame({"unit": uvals, "time": tvals, "beta_own": beta_own,
                         "beta_ref": beta_ref, "cross_prev": cross_prev, "cross_next": cross_next})
    nxt_period = dict(itertools.pairwise(periods))
    a = dist.assign(time_next=dist["time"].map(nxt_period)).dropna(subset=["time_next"])
    a["time_next"] = a["time_next"].astype(dist["time"].dtype)
    b = dist.rename(columns={"time": "time_next"})
    pair = a.merge(b, on=["unit", "time_next"], suffixes=("_from", ""))
    ec = (1 + pair["beta_own_from"]) / (1 + pair["beta_own"])
    if reference == "contemporaneous":
        ml = np.sqrt((1 + pair["beta_own_from"]) / (1 + pair["cross_next"])
                     * (1 + pair["cross_prev_from"]) / (1 + pair["beta_own"]))
        extra = {"d_cross_from": pair["cross_prev_from"], "d_cross": pair["cross_next"]}
    else:
        ml = (1 + pair["beta_ref_from"]) / (1 + pair["beta_ref"])
        extra = {"d_ref_from": pair["beta_ref_from"], "d_ref": pair["beta_ref"]}
    table = pd.DataFrame({"unit": pair["unit"], "time_from": pair["time"],
                          "time": pair["time_next"], "ml": ml, "ec": ec, "tc": ml / ec,
                          "d_own_from": pair["beta_own_from"], "d_own": pair["beta_own"], **extra})
    table = table.sort_values(["unit", "time"], kind="stable").reset_index(drop=True)
    if reference == "contemporaneous":
        table["cum_ml"] = table.groupby("unit")["ml"].cumprod()
    else:  # circular: the running product telescopes to (1+D^R(first)) / (1+D^R(t))
        first = dist.sort_values("time").groupby("unit")["beta_ref"].first()
        table["cum_ml"] = (1 + table["unit"].map(first)) / (1 + table["d_ref"])
    distances = dist[["unit", "time", "beta_own", "beta_ref"]].sort_values(
        ["unit", "time"], kind="stable").reset_index(drop=True)
    info = {"n_lp": n_lp, "n_infeasible": n_bad, "seconds": elapsed, "rts": rts,
            "n_units": frame[unit].nunique(), "n_periods": len(periods)}
    return MalmquistResult(table, distances, reference, base_period, unit, time, info)


def efficiency_panel(
    data: pd.DataFrame, *, unit: str, time: str, inputs: Sequence[str], outputs: Sequence[str],
    bads: Sequence[str] = (), measure: Literal["cumulative_ml", "ml", "ddf"] = "cumulative_ml",
    reference: Literal["contemporaneous", "global", "fixed"] = "fixed", base_period: Any = None,
    rts: Literal["crs", "vrs"] = "crs", direction=None, name: str = "efficiency",
    backend: str = "auto", progress: bool = False,
) -> pd.DataFrame:
    """A unit x time efficiency column to use as a DID outcome (keys: ``unit``, ``time``).

    Runs :func:`malmquist_luenberger` and returns :meth:`MalmquistResult.efficiency_panel`; merge
    it back on ``[unit, time]``. Default: cumulative ML against a fixed base-period
    technology, the LCCP paper's eco-efficiency.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"city": ["a", "b"] * 2, "year": [1, 1, 2, 2], "x": [1.0] * 4,
    ...                    "y": [1.0, 2.0, 2.0, 2.0]})
    >>> out = efficiency_panel(df, unit="city", time="year", inputs=["x"], outputs=["y"])
    >>> out["efficiency"].tolist()
    [1.0, 2.0, 1.0, 1.0]
    """
    if measure not in MEASURES:
        raise BayesDidError(f"measure must be one of {MEASURES}, got {measure!r}")
    res = malmquist_luenberger(data, unit=unit, time=time, inputs=inputs, outputs=outputs,
                               bads=bads, reference=reference, base_period=base_period, rts=rts,
                               direction=direction, backend=backend, progress=progress)
    return res.efficiency_panel(measure, name=name)
