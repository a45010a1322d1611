"""Shared machinery of the latent-factor counterfactual estimators (:mod:`.ife`, :mod:`.mc_nnm`).

* :func:`factor_matrix`: the balanced (unit x period) outcome matrix of a :class:`Panel`,
  the mask of untreated cells and each treated unit's first treated column, with the
  checks both estimators share (a treated unit, never-treated controls, pre-periods).
* :func:`parametric_bootstrap`: the parametric bootstrap of Xu (2017, *Political Analysis*
  25(1), Algorithm 2, gsynth's ``inference = "parametric"``) for any imputation
  estimator ``fit(Y, untreated_mask) -> Y(0) hat``.
* :func:`assemble`: the tidy :class:`FactorResult` (overall ATT, per treated unit, event
  time) from the fitted counterfactual and the bootstrap replications.

Examples
--------
>>> from bayesdid.datasets import load, info
>>> from bayesdid import Panel
>>> panel = Panel.from_frame(load("prop99"), **info("prop99")["panel_kwargs"])
>>> fm = factor_matrix(panel)
>>> fm.Y.shape, int(fm.untreated.sum())
((39, 31), 1197)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DesignError, EstimationError, MissingValueError
from ..panel import Panel
from ..results import EffectResult, group_label, tidy_table

__all__ = ["FactorMatrix", "FactorResult", "assemble", "factor_matrix", "parametric_bootstrap"]

Fit = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False, repr=False)
class FactorResult(EffectResult):
    """:class:`EffectResult` of :func:`~bayesdid.synthetic.ife.ife` or
    :func:`~bayesdid.synthetic.mc_nnm.mc_nnm`, plus the fitted counterfactual.

    Attributes
    ----------
    estimate, se : overall ATT over treated cells and its bootstrap standard error.
    path : long frame ``unit, time, actual, counterfactual, gap, post`` for treated units.
    cv : the cross-validation table (one row per candidate ``r`` or ``lambda``).
    replicates : bootstrap ATTs (empty when ``se=None``).
    """

    estimate: float = float("nan")
    se: float = float("nan")
    path: pd.DataFrame = field(default_factory=pd.DataFrame)
    cv: pd.DataFrame = field(default_factory=pd.DataFrame)
    replicates: np.ndarray = field(default_factory=lambda: np.empty(0))


@dataclass(frozen=True)
class FactorMatrix:
    """Wide outcomes of a panel: ``Y`` (N x T), ``untreated`` (N x T bool), ``start``
    (N,) first treated column index (``T`` for never-treated units)."""

    Y: np.ndarray
    untreated: np.ndarray
    start: np.ndarray
    units: np.ndarray
    times: np.ndarray

    @property
    def treated_rows(self) -> np.ndarray:
        return np.flatnonzero(self.start < self.Y.shape[1])

    @property
    def control_rows(self) -> np.ndarray:
        return np.flatnonzero(self.start == self.Y.shape[1])


def factor_matrix(panel: Panel, *, min_pre: int = 1) -> FactorMatrix:
    """Balanced outcome matrix with the shared checks.

    Raises
    ------
    MissingValueError : the panel is unbalanced (a unit lacks some period).
    DesignError : no treated unit, fewer than two never-treated units, or a treated unit
        with fewer than ``min_pre`` pre-treatment periods.
    """
    frame = panel.frame
    wide = frame.pivot(index=panel.unit, columns=panel.time, values=panel.outcome).sort_index(
        axis=1)
    if wide.isna().any().any():
        rows = (wide.isna().stack().rename("missing").reset_index().query("missing")
                .drop(columns="missing"))
        raise MissingValueError(
            f"outcome '{panel.outcome}' is missing for some (unit, period) cells; the factor "
            "estimators need a balanced panel", column=panel.outcome, rows=rows,
            hint="interpolate (Panel.from_frame(interpolate=True)) or drop those units")
    cohort = frame.groupby(panel.unit)["cohort"].first().reindex(wide.index)
    times = wide.columns.to_numpy()
    T = len(times)
    start = np.array([T if pd.isna(c) else int(np.searchsorted(times, c)) for c in cohort])
    if not (start < T).any():
        raise DesignError("the panel has no treated unit", column="cohort")
    n_never = int((start == T).sum())
    if n_never < 2:
        raise DesignError(f"the factor estimators need at least two never-treated units as "
                          f"controls; the panel has {n_never}", column="cohort",
                          hint="add never-treated units")
    short = (start < min_pre) & (start < T)
    if short.any():
        bad = pd.DataFrame({panel.unit: wide.index[short], "cohort": cohort[short].to_numpy(),
                            "pre_periods": start[short]})
        raise DesignError(f"{int(short.sum())} treated unit(s) have fewer than {min_pre} "
                          f"pre-treatment period(s), too few to estimate their loadings",
                          column="cohort", rows=bad,
                          hint="drop them or use fewer factors (smaller r / larger lambda)")
    untreated = np.arange(T)[None, :] < start[:, None]
    return FactorMatrix(Y=wide.to_numpy(float), untreated=untreated, start=start,
                        units=wide.index.to_numpy(), times=times)


# ---------------------------------------------------------------------- bootstrap
def parametric_bootstrap(fm: FactorMatrix, fit: Fit, Y0: np.ndarray, n_boot: int,
                         rng: np.random.Generator) -> np.ndarray:
    """Xu (2017) Algorithm 2: (n_boot, N, T) bootstrap gaps ``Y~ - Y~(0) hat`` (true effect 0).

    1. Placebo errors: ``n_boot`` times, one never-treated unit is set aside as pseudo-treated
       with the adoption column of a treated unit (cycled over the treated units), the
       estimator is fitted on the other never-treated units plus it, and its prediction
       errors ``Y - Y(0) hat`` over all periods are kept (in-sample before, out-of-sample
       after the pseudo adoption).
    2. Bootstrap samples: ``Y~ = Y(0) hat + e``, with ``e`` for each control a whole-unit
       residual vector of the original fit resampled over controls, and for each treated
       unit a placebo error vector of its adoption column; refit on ``Y~`` with the same
       untreated mask. The spread of the gaps is the estimator's sampling error.
    """
    ctrl, treated = fm.control_rows, fm.treated_rows
    T = fm.Y.shape[1]
    starts = fm.start[treated]
    placebo: dict[int, list[np.ndarray]] = {int(s): [] for s in np.unique(starts)}
    for b in range(n_boot):
        i = ctrl[rng.integers(len(ctrl))]
        s = int(starts[b % len(starts)])
        rows = np.append(ctrl[ctrl != i], i)
        mask = np.ones((len(rows), T), bool)
        mask[-1, s:] = False
        y0 = fit(fm.Y[rows], mask)
        placebo[s].append(fm.Y[i] - y0[-1])
    resid_ctrl = fm.Y[ctrl] - Y0[ctrl]
    gaps = np.empty((n_boot, *fm.Y.shape))
    for k in range(n_boot):
        Yb = Y0.copy()
        Yb[ctrl] += resid_ctrl[rng.integers(len(ctrl), size=len(ctrl))]
        for j, s in zip(treated, starts):
            pool = placebo[int(s)]
            Yb[j] += pool[rng.integers(len(pool))]
        gaps[k] = Yb - fit(Yb, fm.untreated)
    if not np.isfinite(gaps).all():
        raise EstimationError("some bootstrap replications gave non-finite estimates")
    return gaps


# ---------------------------------------------------------------------- results
def _summaries(fm: FactorMatrix, gap: np.ndarray) -> dict[tuple[str, str], tuple[float, int]]:
    """(estimand, group) -> (mean gap over the treated cells, n cells); gap is (..., N, T)."""
    treated = ~fm.untreated
    out = {("att", "overall"): (gap[..., treated].mean(axis=-1), int(treated.sum()))}
    several = len(fm.treated_rows) > 1
    if several:
        for j in fm.treated_rows:
            cells = treated[j]
            out[("att", group_label(unit=fm.units[j]))] = (gap[..., j, cells].mean(axis=-1),
                                                           int(cells.sum()))
    rel = np.arange(fm.Y.shape[1])[None, :] - fm.start[:, None]
    rows = fm.treated_rows
    for k in np.unique(rel[rows]):
        sel = np.zeros_like(treated)
        sel[rows] = rel[rows] == k
        out[("event_time", group_label(k=int(k)))] = (gap[..., sel].mean(axis=-1),
                                                      int(sel.sum()))
    return out


def assemble(fm: FactorMatrix, Y0: np.ndarray, boot_gaps: np.ndarray | None, *,
             method: str, level: float, info: dict, cv: pd.DataFrame) -> FactorResult:
    """The tidy result: overall ATT, per treated unit (several), event time (incl. pre)."""
    gap = fm.Y - Y0
    point = _summaries(fm, gap)
    reps = _summaries(fm, boot_gaps) if boot_gaps is not None else None
    z = stats.norm.ppf(0.5 + level / 2)
    rows = []
    for key, (est, n) in point.items():
        se = float(np.std(reps[key][0], ddof=1)) if reps is not None else float("nan")
        est = float(est)
        rows.append({"estimand": key[0], "group": key[1], "estimate": est, "se_or_sd": se,
                     "lower": est - z * se, "upper": est + z * se, "level": level,
                     "interval": "confidence", "method": method, "n_obs": n})
    paths = []
    for j in fm.treated_rows:
        paths.append(pd.DataFrame({"unit": fm.units[j], "time": fm.times, "actual": fm.Y[j],
                                   "counterfactual": Y0[j], "gap": gap[j],
                                   "post": ~fm.untreated[j]}))
    att_reps = reps[("att", "overall")][0] if reps is not None else np.empty(0)
    return FactorResult(table=tidy_table(rows), method=method, info=info,
                        estimate=rows[0]["estimate"], se=rows[0]["se_or_sd"],
                        path=pd.concat(paths, ignore_index=True), cv=cv,
                        replicates=np.asarray(att_reps))
