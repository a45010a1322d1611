"""Goodman-Bacon (2021) decomposition of the two-way fixed-effects DID coefficient.

Goodman-Bacon, A. (2021). Difference-in-differences with variation in treatment timing.
Journal of Econometrics 225(2), 254-277. Theorem 1: in a balanced panel with staggered
adoption, the TWFE coefficient of ``y ~ D | unit + time`` (no covariates, unweighted) is a
weighted average of all 2x2 DID estimates between timing groups,

* treated vs never treated (the whole sample period),
* earlier-treated vs later-treated (the later group as control before its treatment),
* later-treated vs earlier-treated (the earlier group, already treated, as control: the
  'forbidden' comparison that biases TWFE when effects change over time),

with weights from the subsample sizes and the variance of treatment within each pair
(eq. 10a-10c), divided by the variance of the two-way demeaned treatment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DesignError, WeightsError
from ..panel import Panel
from ..results import EffectResult, Result, check_interval, check_level
from ..did._fixest import feols, resolve, work_frame

logger = logging.getLogger(__name__)

__all__ = ["BaconResult", "bacon_decomposition"]

D = "treated__"
TYPES = ("earlier_vs_later", "later_vs_earlier", "treated_vs_never")
NEVER = "never"
_TABLE_COLUMNS = ["treated_cohort", "control_cohort", "type", "estimate", "weight", "n_obs"]


@dataclass(frozen=True, eq=False, repr=False)
class BaconResult(Result):
    """The 2x2 comparisons behind a TWFE coefficient.

    A :class:`~bayesdid.results.Result`, not an EffectResult: a table of 2x2 comparisons
    (weights and DIDs, no standard errors) that add up to one TWFE coefficient.

    Attributes
    ----------
    table : one row per 2x2 comparison: ``treated_cohort``, ``control_cohort`` (a cohort, or
        ``'never'`` for the never-treated units), ``type`` (``earlier_vs_later``,
        ``later_vs_earlier``, ``treated_vs_never``), ``estimate`` (the 2x2 DID), ``weight``
        (Goodman-Bacon's s, summing to 1) and ``n_obs`` (rows of the 2x2 subsample).
    twfe : the TWFE coefficient, estimated independently with pyfixest.
    info : formula, number of units and periods, variance of the demeaned treatment.
    """

    table: pd.DataFrame
    twfe: float
    info: dict[str, Any] = field(default_factory=dict)
    time_name: Callable = int  # a cohort's label in groups (``Panel.time_axis.name``)
    method = "bacon"

    def __post_init__(self) -> None:
        object.__setattr__(self, "table", self.table.copy().reset_index(drop=True))

    @property
    def weighted_sum(self) -> float:
        """Sum of weight x estimate over the 2x2 comparisons (equals :attr:`twfe`)."""
        return float((self.table["weight"] * self.table["estimate"]).sum())

    def effects(self, level: float | None = None, interval: str | None = None) -> pd.DataFrame:
        """The tidy effects table: one ``bacon_2x2`` row per comparison (group like
        ``cohort=2007 vs never`` or ``cohort=2009 vs cohort=2007``, treated first) and an
        ``att``/``overall`` row holding the weighted sum. No standard errors: ``se_or_sd``,
        ``lower`` and ``upper`` are NaN (at any ``level``); the weights are in an extra
        ``weight`` column."""
        check_level(level)
        check_interval(self, interval, ("confidence",))
        level = 0.95 if level is None else level
        nan = float("nan")
        rows = []
        for r in self.table.itertuples(index=False):
            control = (NEVER if r.control_cohort == NEVER else
                       f"cohort={self.time_name(int(r.control_cohort))}")
            rows.append({"estimand": "bacon_2x2",
                         "group": f"cohort={self.time_name(int(r.treated_cohort))} vs {control}",
                         "estimate": float(r.estimate), "se_or_sd": nan, "lower": nan,
                         "upper": nan, "level": level, "interval": "confidence",
                         "method": "bacon", "n_obs": int(r.n_obs), "weight": float(r.weight),
                         "type": r.type})
        rows.append({"estimand": "att", "group": "overall", "estimate": self.weighted_sum,
                     "se_or_sd": nan, "lower": nan, "upper": nan, "level": level,
                     "interval": "confidence", "method": "bacon",
                     "n_obs": int(self.info.get("n_obs", 0)), "weight": 1.0, "type": "all"})
        return EffectResult.from_rows(rows, method="bacon", info=self.info).effects()

    def summary(self) -> pd.DataFrame:
        """By comparison type: total ``weight``, weighted-average ``estimate`` and the number
        of comparisons (``n_comparisons``). Types absent from the design are left out."""
        out = []
        for kind in TYPES:
            part = self.table[self.table["type"] == kind]
            if part.empty:
                continue
            w = float(part["weight"].sum())
            est = float((part["weight"] * part["estimate"]).sum() / w) if w > 0 else float("nan")
            out.append({"type": kind, "weight": w, "estimate": est, "n_comparisons": len(part)})
        return pd.DataFrame(out, columns=["type", "weight", "estimate", "n_comparisons"])

    def to_frame(self) -> pd.DataFrame:
        """The 2x2 comparisons (:attr:`table`, a copy)."""
        return self.table.copy()

    def _describe(self) -> str:
        return f"twfe={self.twfe:.6g} comparisons={len(self.table)}"

    def plot(self, ax=None):
        """Weight (x) against 2x2 estimate (y) by comparison type, with a horizontal line
        at the TWFE coefficient. Returns a :class:`matplotlib.figure.Figure` (no pyplot);
        pass ``ax`` to draw on existing axes."""
        from matplotlib.figure import Figure

        if ax is None:
            fig = Figure(figsize=(6.0, 4.0))
            ax = fig.add_subplot(1, 1, 1)
        else:
            fig = ax.figure
        markers = {"earlier_vs_later": "o", "later_vs_earlier": "^", "treated_vs_never": "s"}
        labels = {"earlier_vs_later": "Earlier vs later treated",
                  "later_vs_earlier": "Later vs earlier treated",
                  "treated_vs_never": "Treated vs never treated"}
        for kind in TYPES:
            part = self.table[self.table["type"] == kind]
            if not part.empty:
                ax.scatter(part["weight"], part["estimate"], marker=markers[kind],
                           label=labels[kind], alpha=0.8)
        ax.axhline(self.twfe, color="black", linestyle="--", linewidth=1,
                   label=f"TWFE = {self.twfe:.4f}")
        ax.set_xlabel("Weight")
        ax.set_ylabel("2x2 DID estimate")
        ax.set_title("Goodman-Bacon decomposition")
        ax.legend(fontsize="small")
        return fig


def bacon_decomposition(panel: Panel, *, covariates: Sequence[str] | None = None,
                        weights: str | None = None) -> BaconResult:
    """Goodman-Bacon (2021) decomposition of the TWFE DID coefficient into 2x2 DIDs.

    Needs a balanced panel, no covariates and no weights (Theorem 1). ``covariates`` and
    ``weights`` default to the panel's declared ones, as in :func:`~bayesdid.did.twfe`;
    pass ``covariates=()`` and ``weights=""`` to decompose the plain TWFE of a panel that
    declares them. Units always treated in the sample are excluded by :class:`Panel`.

    Raises
    ------
    DesignError : unbalanced panel, covariates requested, no timing variation, or
        always-treated units in a hand-built panel.
    WeightsError : weights requested.

    Examples
    --------
    >>> from bayesdid import Panel
    >>> from bayesdid.datasets import load
    >>> panel = Panel.from_frame(load("castle"), unit="sid", time="year",
    ...                          outcome="l_homicide", cohort="cohort")
    >>> res = bacon_decomposition(panel)
    >>> round(res.twfe, 4), round(res.weighted_sum, 4)
    (0.0694, 0.0694)
    >>> res.summary().round(4).set_index("type")["weight"].to_dict()
    {'earlier_vs_later': 0.0771, 'later_vs_earlier': 0.0241, 'treated_vs_never': 0.8988}
    """
    covs, _, w = resolve(panel, covariates, None, weights)
    if covs:
        raise DesignError(
            f"the Bacon decomposition is for the TWFE without covariates; got covariates "
            f"{list(covs)}", column=covs[0],
            hint="pass covariates=() (the covariate-adjusted decomposition of Goodman-Bacon "
                 "2021, sec. 5, is not implemented)")
    if w:
        raise WeightsError(
            f"the Bacon decomposition is for the unweighted TWFE; got weights {w!r}", column=w,
            hint="pass weights='' to decompose the unweighted TWFE")
    if not panel.is_balanced:
        f = panel.frame
        counts = f.groupby(panel.unit)[panel.time].size()
        short = counts[counts < len(panel.times)]
        rows = short.rename("n_periods").reset_index()
        raise DesignError(
            f"the Bacon decomposition needs a balanced panel: {len(short)} unit(s) of column "
            f"{panel.unit!r} are observed in fewer than all {len(panel.times)} periods of "
            f"column {panel.time!r}", column=panel.unit, rows=rows,
            hint="drop the incomplete units, or interpolate=True in Panel.from_frame")

    f = panel.frame
    times = panel.times
    n_t = len(times)
    units_cohort = f.groupby(panel.unit, sort=False)["cohort"].first()
    units = units_cohort.index
    y = (f.pivot(index=panel.unit, columns=panel.time, values=panel.outcome)
         .reindex(index=units, columns=times).to_numpy(float))
    dmat = (f.pivot(index=panel.unit, columns=panel.time, values="treated")
            .reindex(index=units, columns=times).to_numpy(float))

    cohort = units_cohort.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    never = np.isnan(cohort) | (cohort > times.max())
    always = ~never & (cohort <= times.min())
    if always.any():
        bad = units_cohort[always].rename("cohort").reset_index()
        raise DesignError(f"{int(always.sum())} unit(s) of column {panel.unit!r} are treated in "
                          "every period (always treated)", column=panel.unit, rows=bad,
                          hint="build the panel with Panel.from_frame, which rejects them")
    # treatment must be the staggered step implied by the cohort
    expected = np.where(never[:, None], 0.0, (times[None, :] >= cohort[:, None]).astype(float))
    if not np.array_equal(expected, dmat):
        raise DesignError("the 'treated' column does not follow the 'cohort' column "
                          "(staggered adoption)", column="treated")

    n_units = len(units)
    groups = sorted(int(c) for c in np.unique(cohort[~never]))
    members = {g: np.flatnonzero(~never & (cohort == g)) for g in groups}
    never_idx = np.flatnonzero(never)
    if len(groups) + (len(never_idx) > 0) < 2:
        raise DesignError("no 2x2 comparison: the panel has a single treatment cohort and no "
                          "never-treated units, so TWFE is not identified", column="cohort")

    # variance of the two-way demeaned treatment (balanced panel): the denominator of s
    dd = dmat - dmat.mean(1, keepdims=True) - dmat.mean(0, keepdims=True) + dmat.mean()
    v_d = float((dd ** 2).mean())
    if v_d <= 0:
        raise DesignError("the treatment has no variation left after unit and time effects",
                          column="treated")

    share = {g: len(idx) / n_units for g, idx in members.items()}
    dbar = {g: float((times >= g).mean()) for g in groups}  # share of periods treated
    n_u = len(never_idx) / n_units

    def did(treat_idx, ctrl_idx, pre, post):
        """(mean change of treated) - (mean change of controls) between period masks."""
        def change(idx):
            block = y[idx]
            return block[:, post].mean() - block[:, pre].mean()
        return float(change(treat_idx) - change(ctrl_idx))

    rows = []
    for k in groups:
        post_k = times >= k
        if len(never_idx):
            nk = share[k] / (share[k] + n_u)
            s = (share[k] + n_u) ** 2 * nk * (1 - nk) * dbar[k] * (1 - dbar[k]) / v_d
            rows.append({"treated_cohort": k, "control_cohort": NEVER,
                         "type": "treated_vs_never",
                         "estimate": did(members[k], never_idx, ~post_k, post_k), "weight": s,
                         "n_obs": (len(members[k]) + len(never_idx)) * n_t})
        for l in groups:
            if l <= k:
                continue
            post_l = times >= l
            nkl = share[k] / (share[k] + share[l])
            dk, dl = dbar[k], dbar[l]
            # earlier k treated, later l as control, window before l (eq. 10b)
            s_k = (((share[k] + share[l]) * (1 - dl)) ** 2 * nkl * (1 - nkl)
                   * (dk - dl) / (1 - dl) * (1 - dk) / (1 - dl) / v_d)
            window = ~post_l
            rows.append({"treated_cohort": k, "control_cohort": l, "type": "earlier_vs_later",
                         "estimate": did(members[k], members[l], window & ~post_k,
                                         window & post_k),
                         "weight": s_k,
                         "n_obs": (len(members[k]) + len(members[l])) * int(window.sum())})
            # later l treated, earlier k (already treated) as control, window from k (eq. 10c)
            s_l = (((share[k] + share[l]) * dk) ** 2 * nkl * (1 - nkl)
                   * dl / dk * (dk - dl) / dk / v_d)
            rows.append({"treated_cohort": l, "control_cohort": k, "type": "later_vs_earlier",
                         "estimate": did(members[l], members[k], post_k & ~post_l, post_l),
                         "weight": s_l,
                         "n_obs": (len(members[k]) + len(members[l])) * int(post_k.sum())})
    table = pd.DataFrame(rows, columns=_TABLE_COLUMNS)
    table["control_cohort"] = table["control_cohort"].astype(object)
    table["n_obs"] = table["n_obs"].astype(int)

    work, _ = work_frame(panel, {D: f["treated"].to_numpy(float)}, (), panel.unit, None)
    fit = feols(work, [D], None)
    twfe_coef = float(fit.coef()[D])
    total = float(table["weight"].sum())
    if abs(total - 1) > 1e-8:  # Theorem 1 guarantees 1; anything else is a bug
        logger.warning("Bacon weights sum to %.12g, not 1", total)
    info = {"formula": f"{panel.outcome} ~ treated | {panel.unit} + {panel.time}",
            "n_obs": int(n_units * n_t), "n_units": int(n_units), "n_periods": int(n_t),
            "var_treated_demeaned": v_d, "twfe": twfe_coef}
    return BaconResult(table=table, twfe=twfe_coef, info=info, time_name=panel.time_axis.name)
