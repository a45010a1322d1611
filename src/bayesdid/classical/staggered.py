"""Heterogeneity-robust staggered-adoption estimators: Sun-Abraham and BJS imputation.

Both use only clean comparisons, so unlike TWFE (:func:`bayesdid.classical.twfe`) they
are unbiased when effects differ by cohort and event time.

* :func:`sun_abraham` — Sun & Abraham (2021) interaction-weighted event study.
* :func:`imputation` — Borusyak, Jaravel & Spiess (2024) imputation estimator, computed
  with Gardner's two-stage ``did2s`` (identical point estimates, see its docstring).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import BayesDidError, DesignError
from ..panel import Panel
from ..results import EffectResult, group_label
from ._fixest import CL, TIME, UNIT, W, Y, coef_rows, feols, pf, resolve, work_frame

logger = logging.getLogger(__name__)

__all__ = ["imputation", "sun_abraham"]

D = "treated__"


def _kname(k: int) -> str:
    return f"{'m' if k < 0 else 'p'}{abs(int(k))}"


SMALL_COHORT = 5  # units; R did warns below 5 (+ number of covariates)


def check_window(leads, lags) -> None:
    """Type and sign checks of an event window (``leads >= 1``, ``lags >= 0``)."""
    for name, value in (("leads", leads), ("lags", lags)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise BayesDidError(f"{name} must be an integer, got {value!r}")
    if leads < 1 or lags < 0:
        raise BayesDidError(f"need leads >= 1 and lags >= 0, got leads={leads}, lags={lags}")


def fit_window(panel: Panel, leads: int, lags: int, who: str) -> tuple[int, int]:
    """The event window narrowed to the relative periods the data hold (logged fallback).

    >>> from bayesdid.datasets import simulate_staggered
    >>> sim = simulate_staggered(n_units=30, years=(2005, 2010), batches={2007: 8},
    ...                          random_seed=1)
    >>> fit_window(Panel.from_frame(sim.data, **sim.panel_kwargs), 6, 8, "doctest")
    (3, 2)
    """
    rel = panel.frame["rel_time"].dropna().astype(int)
    lead_max, lag_max = int(-rel.min()), int(rel.max())
    used = (min(int(leads), lead_max), min(int(lags), lag_max))
    if used != (leads, lags):
        logger.warning("%s: event window leads=%d, lags=%d is wider than the data (relative "
                       "periods %d..%d observed); using leads=%d, lags=%d", who, leads, lags,
                       -lead_max, lag_max, *used)
    return used


def small_cohorts(panel: Panel, who: str, min_units: int = SMALL_COHORT) -> dict[int, int]:
    """Cohorts with fewer than ``min_units`` units ({cohort: units}), logged at WARNING."""
    f = panel.frame
    sizes = f.loc[~f["never_treated"]].groupby("cohort")[panel.unit].nunique()
    small = {int(g): int(n) for g, n in sizes.items() if n < min_units}
    if small:
        logger.warning("%s: small cohort(s) %s (units per cohort); their effects are estimated "
                       "from very few units and their standard errors are unreliable (one "
                       "unit is one cluster)", who, small)
    return small


# ---------------------------------------------------------------------- Sun-Abraham
def sun_abraham(panel: Panel, *, leads: int = 6, lags: int = 8,
                covariates: Sequence[str] | None = None, cluster: str | None = None,
                level: float = 0.95) -> EffectResult:
    """Sun & Abraham (2021) interaction-weighted (IW) event study.

    Fits the saturated regression ``y ~ sum_{g, k != -1} 1[cohort = g] 1[t - g = k]
    + X | unit + time`` (every cohort x relative-time cell observed, ``k = -1`` the
    reference) with CRV1 standard errors clustered by ``cluster``, then averages the cell
    coefficients ``b[g, k]``:

    * ``event_time``, ``k=...`` for ``-leads <= k <= lags`` (``k != -1``): weights are the
      cohort shares among the observations at relative time ``k``;
    * ``att``, ``overall``: all post cells (``k >= 0``, the whole sample, not only the
      window) weighted by their cell counts;
    * ``att``, ``cohort=g``: cohort ``g``'s post cells weighted by cell counts.

    Standard errors are the delta method ``sqrt(w' V w)`` from the cluster-robust vcov of
    the cell coefficients, with the weights treated as fixed (as fixest's ``sunab``
    does); intervals use the t distribution with the regression's degrees of freedom
    (``info['df']``).

    A window wider than the data is narrowed to the observed relative periods (logged at
    WARNING; ``info['window_asked']`` keeps the request). Cohorts of fewer than 5 units
    are kept, logged at WARNING and listed in ``info['small_cohorts']``.

    The control group is the never-treated units. :class:`~bayesdid.Panel` rejects periods
    in which every unit is treated and always-treated units, and codes cohorts adopting
    after the last period as never-treated; so SA's other option, the last-treated cohort
    as control, is had by cutting the data before that cohort's adoption before building
    the panel. Panel weights are not used (the IW weights are cell counts).

    The event-time estimates are exact (up to rounding) on noise-free data when the effect
    is constant within each cohort x relative-time cell, or when there are no covariates;
    with covariates *and* within-cell heterogeneity correlated with them, the covariate
    slope is fitted on treated cells too and absorbs a little of it (the imputation
    estimator does not have this problem).

    What pyfixest does and what is done here: pyfixest 0.60 has no ``sunab()``; its
    ``event_study(estimator="saturated")`` (beta) fits the same saturated regression and
    aggregates by relative time with the same share weights, but takes no covariates, no
    overall ATT and no control-group choice. Here the interaction dummies are built by
    hand, the regression is ``pyfixest.feols`` (CRV1), and the aggregation and delta-method
    standard errors are computed by hand. Without covariates the event-time estimates and
    standard errors equal pyfixest's ``aggregate()`` (tested).

    Examples
    --------
    >>> from bayesdid import Panel
    >>> from bayesdid.datasets import simulate_staggered
    >>> sim = simulate_staggered(n_units=60, years=(2005, 2012), batches={2007: 10, 2009: 10},
    ...                          sigma=0.0, n_covariates=0, random_seed=3)
    >>> res = sun_abraham(Panel.from_frame(sim.data, **sim.panel_kwargs), leads=3, lags=3)
    >>> truth = sim.truth.set_index(["estimand", "group"])["value"]
    >>> bool(abs(res.effect()["estimate"] - truth[("att", "overall")]) < 1e-8)
    True
    """
    check_window(leads, lags)
    covs, cluster, weights = resolve(panel, covariates, cluster, None)
    f = panel.frame
    if not f["never_treated"].any():  # Panel rejects periods with every unit treated
        sizes = f.groupby("cohort")[panel.unit].nunique().rename("n_units").reset_index()
        raise DesignError("sun_abraham needs never-treated units as the control",
                          column="cohort", rows=sizes,
                          hint="cut the sample before the last cohort adopts (it then serves "
                               "as the control), or use imputation()")
    asked = (leads, lags)
    leads, lags = fit_window(panel, leads, lags, "sun_abraham")
    info: dict = {"leads": leads, "lags": lags, "window_asked": asked,
                  "small_cohorts": small_cohorts(panel, "sun_abraham")}
    if weights:
        logger.info("sun_abraham ignores panel weights %r (IW weights are cell counts)", weights)
    info["weights_ignored"] = weights
    info["control"] = "never_treated"

    cohort = f["cohort"].astype("float").to_numpy()
    rel = f["rel_time"].astype("float").to_numpy()
    is_cell = ~np.isnan(cohort) & (rel != -1)
    cells = (pd.DataFrame({"g": cohort[is_cell], "k": rel[is_cell]}).astype(int)
             .value_counts().sort_index())
    if cells.empty:
        raise DesignError("no treated cohort x relative-time cells to estimate", column="cohort")
    regs: dict[str, np.ndarray] = {}
    cell_of: dict[str, tuple[int, int]] = {}
    for g, k in cells.index:
        name = f"sa_g{g}_k{_kname(k)}__"
        regs[name] = ((cohort == g) & (rel == k)).astype(float)
        cell_of[name] = (int(g), int(k))
    work, cov_names = work_frame(panel, regs, covs, cluster, None)
    with np.errstate(invalid="ignore"):  # an exact fit can give vcov diagonals of -1e-20
        fit = feols(work, [*regs, *cov_names], None)

    coefnames = list(fit._coefnames)
    beta = np.asarray(fit._beta_hat, float)
    vcov = np.asarray(fit._vcov, float)
    dof = int(fit._df_t)
    q = stats.t.ppf(0.5 + level / 2, dof)
    est_cells = {cell_of[n]: i for i, n in enumerate(coefnames) if n in cell_of}
    dropped = sorted(set(cell_of.values()) - set(est_cells))
    info["omitted_collinear_cells"] = [group_label(cohort=g, k=k) for g, k in dropped]

    def aggregate(members, estimand, group):
        members = [c for c in members if c in est_cells]
        if not members:
            return None
        n = np.array([cells[c] for c in members], float)
        w = np.zeros(len(beta))
        w[[est_cells[c] for c in members]] = n / n.sum()
        est, se = float(w @ beta), float(np.sqrt(max(w @ vcov @ w, 0.0)))
        return {"estimand": estimand, "group": group, "estimate": est, "se_or_sd": se,
                    "lower": est - q * se, "upper": est + q * se, "level": level,
                    "interval": "confidence", "n_obs": int(n.sum())}

    all_cells = list(cells.index)
    rows = [aggregate([c for c in all_cells if c[1] >= 0], "att", group_label())]
    for g in sorted({c[0] for c in all_cells}):
        rows.append(aggregate([c for c in all_cells if c[0] == g and c[1] >= 0],
                              "att", group_label(cohort=g)))
    for k in range(-leads, lags + 1):
        if k != -1:
            rows.append(aggregate([c for c in all_cells if c[1] == k], "event_time",
                                  group_label(k=k)))
    rows = [r for r in rows if r is not None]
    info.update({
        "formula": f"{panel.outcome} ~ cohort x rel_time (ref -1){''.join(' + ' + c for c in covs)}"
                   f" | {panel.unit} + {panel.time}",
        "vcov": f"CRV1 by {cluster}; aggregates by the delta method, weights fixed",
        "df": dof, "n_clusters": int(work[CL].nunique()), "n_cells": len(cells),
        "cell_estimates": pd.DataFrame(
            [(g, k, int(cells[(g, k)]), float(beta[i]), float(np.sqrt(max(vcov[i, i], 0.0))))
             for (g, k), i in sorted(est_cells.items())],
            columns=["cohort", "k", "n", "estimate", "se"]),
    })
    return EffectResult.from_rows(rows, method="sun_abraham", info=info)


# ---------------------------------------------------------------------- imputation
def imputation(panel: Panel, *, covariates: Sequence[str] | None = None,
               cluster: str | None = None, weights: str | None = None, level: float = 0.95,
               event_time: bool = True) -> EffectResult:
    """Borusyak-Jaravel-Spiess imputation estimator (via Gardner's two-stage ``did2s``).

    Fits ``y ~ X | unit + time`` on untreated observations only, imputes the untreated
    outcome ``Y0_hat`` of every treated observation, and averages ``y - Y0_hat`` over the
    treated observations: ``att`` ``overall``, ``att`` by ``cohort=g`` and, with
    ``event_time=True``, ``event_time`` ``k=0, 1, ...`` (post-treatment only; BJS test
    pre-trends separately, not done here). Averages are observation-weighted (by the panel
    weights if any).

    What pyfixest does and what is done here: ``pyfixest.did2s`` (Gardner 2021) runs the
    first stage on untreated rows and regresses the first-stage residuals ``y - Y0_hat`` on
    the second-stage regressors. With mutually exclusive treated-subset indicators as the
    second stage (treated; cohort x treated; event time x treated) each coefficient is the
    mean of ``y - Y0_hat`` over its subset, i.e. exactly the BJS imputation estimate
    (verified numerically against a by-hand imputation in the tests). One ``did2s`` call
    per aggregation level is made here. Standard errors are did2s's: the GMM
    cluster-robust variance that accounts for the first stage (Gardner 2021; Butts' R
    ``did2s``), clustered by ``cluster``. These are not BJS's own conservative variance
    (which needs leave-out auxiliary averages); they are valid asymptotic SEs for the same
    estimand. Intervals use pyfixest's t distribution with ``info['df']`` degrees of freedom.

    Every treated observation is imputable: :class:`~bayesdid.Panel` guarantees each unit
    a pre-treatment period and each period an untreated unit. Cohorts of fewer than 5
    units are kept, logged at WARNING and listed in ``info['small_cohorts']``.

    Examples
    --------
    >>> from bayesdid import Panel
    >>> from bayesdid.datasets import simulate_staggered
    >>> sim = simulate_staggered(n_units=60, years=(2005, 2012), batches={2007: 10, 2009: 10},
    ...                          sigma=0.0, random_seed=3)
    >>> res = imputation(Panel.from_frame(sim.data, **sim.panel_kwargs))
    >>> truth = sim.truth.set_index(["estimand", "group"])["value"]
    >>> bool(abs(res.effect("event_time", "k=2")["estimate"]
    ...          - truth[("event_time", "k=2")]) < 1e-8)
    True
    """
    covs, cluster, weights = resolve(panel, covariates, cluster, weights)
    f = panel.frame
    d = f["treated"].to_numpy(bool)
    untreated = f.loc[~d]
    ok = (f[panel.unit].isin(untreated[panel.unit]) & f[panel.time].isin(untreated[panel.time])
          ).to_numpy()
    if (d & ~ok).any():  # Panel's design checks rule this out; kept as a guard
        raise DesignError("treated rows whose unit or period has no untreated observation "
                          "cannot be imputed", column=panel.unit, rows=f.loc[d & ~ok])
    if not d.any():
        raise DesignError("no imputable treated observations", column="treated")

    cohort = f["cohort"].astype("float").to_numpy()
    rel = f["rel_time"].astype("float").to_numpy()
    specs: dict[str, dict[str, tuple[np.ndarray, tuple[str, str]]]] = {
        "overall": {D: (d.astype(float), ("att", group_label()))}}
    specs["cohort"] = {
        f"coh_{int(g)}__": ((d & (cohort == g)).astype(float), ("att", group_label(cohort=int(g))))
        for g in sorted(np.unique(cohort[d]))}
    if event_time:
        specs["event_time"] = {
            f"k_{_kname(k)}__": ((d & (rel == k)).astype(float),
                                 ("event_time", group_label(k=int(k))))
            for k in sorted(np.unique(rel[d]))}
    regs = {name: col for spec in specs.values() for name, (col, _) in spec.items()}
    work, cov_names = work_frame(panel, regs, covs, cluster, weights)
    first_stage = f"~ {' + '.join(cov_names) if cov_names else '0'} | {UNIT} + {TIME}"

    rows, dof = [], None
    for spec in specs.values():
        fit = pf.did2s(work, yname=Y, first_stage=first_stage,
                       second_stage="~ " + " + ".join(spec), treatment=D, cluster=CL,
                       weights=W if weights else None)
        counts = {name: int(col.sum()) for name, (col, _) in spec.items()}
        rows += coef_rows(fit, {name: lab for name, (_, lab) in spec.items()}, level,
                          "imputation", counts)
        dof = int(fit._df_t) if dof is None else dof
    info = {"small_cohorts": small_cohorts(panel, "imputation"),
            "first_stage": f"{panel.outcome} ~ {' + '.join(covs) or '0'} | {panel.unit} + "
                           f"{panel.time} on untreated rows",
            "vcov": f"did2s GMM CRV1 by {cluster} (Gardner 2021), not the BJS variance",
            "weights": weights, "df": dof, "n_clusters": int(work[CL].nunique()),
            "n_treated": int(d.sum())}
    return EffectResult.from_rows(rows, method="imputation", info=info)
