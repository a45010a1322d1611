"""Heterogeneity-robust staggered-adoption estimators: Sun-Abraham and BJS imputation.

Both use only clean comparisons, so unlike TWFE (:func:`bayesdid.did.twfe`) they
are unbiased when effects differ by cohort and event time.

* :func:`sun_abraham` — Sun & Abraham (2021) interaction-weighted event study.
* :func:`imputation` — Borusyak, Jaravel & Spiess (2024) imputation estimator, with BJS's
  leave-out conservative variance and Gardner's two-stage variance (numerics in
  :mod:`bayesdid.staggered._imputation`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import BayesDidError, DesignError
from ..fixed_effects import DEFAULT_FE, covariate_matrix, parse_fe
from ..panel import Panel
from ..results import EffectResult, group_label
from ..did._fixest import (
    CL,
    covariate_text,
    fe_info,
    feols,
    fit_df,
    fit_vcov,
    resolve,
    safe_name,
    work_frame,
)
from ._imputation import TwoWayLS, fit_imputation

logger = logging.getLogger(__name__)

__all__ = ["imputation", "sun_abraham"]



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
def sun_abraham(panel: Panel, *, leads: int = 6, lags: int = 8, fe: str | None = DEFAULT_FE,
                covariates: str | Sequence[str] | None = None, cluster: str | None = None,
                level: float = 0.95, data: pd.DataFrame | None = None) -> EffectResult:
    """Sun & Abraham (2021) interaction-weighted (IW) event study.

    Fits the saturated regression ``y ~ sum_{g, k != -1} 1[cohort = g] 1[t - g = k]
    + X | fe`` (every cohort x relative-time cell observed, ``k = -1`` the reference) with
    CRV1 standard errors clustered by ``cluster``, then averages the cell coefficients
    ``b[g, k]``. ``fe`` is pyfixest syntax (default ``"unit + time"``, e.g.
    ``"city + province^year"``; :mod:`bayesdid.fixed_effects`), ``covariates`` a list or a
    formula string, ``data`` a frame with further FE columns; the pyfixest fit of the
    saturated regression is kept as ``result.fit``. The averages:

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
    spec = parse_fe(panel, fe, data)
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
        name = f"sa_g{g}_k{_kname(k)}"
        regs[name] = ((cohort == g) & (rel == k)).astype(float)
        cell_of[name] = (int(g), int(k))
    work, cov_names = work_frame(panel, regs, covs, cluster, None, spec,
                                 depvar=safe_name(panel.outcome))
    with np.errstate(invalid="ignore"):  # an exact fit can give vcov diagonals of -1e-20
        fit = feols(work, [*regs, *cov_names], None)

    coefnames = list(fit.coef().index)
    beta = fit.coef().to_numpy(float)
    vcov = fit_vcov(fit).to_numpy()
    dof = fit_df(fit)
    q = stats.t.ppf(0.5 + level / 2, dof)
    est_cells = {cell_of[n]: i for i, n in enumerate(coefnames) if n in cell_of}
    dropped = sorted(set(cell_of.values()) - set(est_cells))
    tname = panel.time_axis.name  # the user's label of a period (calendar time as text)
    info["omitted_collinear_cells"] = [group_label(cohort=tname(g), k=k) for g, k in dropped]

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
                              "att", group_label(cohort=tname(g))))
    for k in range(-leads, lags + 1):
        if k != -1:
            rows.append(aggregate([c for c in all_cells if c[1] == k], "event_time",
                                  group_label(k=k)))
    rows = [r for r in rows if r is not None]
    info.update({
        "formula": f"{panel.outcome} ~ cohort x rel_time (ref -1){covariate_text(covs)}"
                   + (f" | {spec.formula}" if spec.terms else ""),
        **fe_info(spec),
        "vcov": f"CRV1 by {cluster}; aggregates by the delta method, weights fixed",
        "df": dof, "n_clusters": int(work[CL].nunique()), "n_cells": len(cells),
        "cell_estimates": pd.DataFrame(
            [(g, k, int(cells[(g, k)]), float(beta[i]), float(np.sqrt(max(vcov[i, i], 0.0))))
             for (g, k), i in sorted(est_cells.items())],
            columns=["cohort", "k", "n", "estimate", "se"]),
    })
    return EffectResult.from_rows(rows, method="sun_abraham", info=info, fit=fit)


# ---------------------------------------------------------------------- imputation
VCOV_KINDS = ("bjs", "gardner")
AVG_GROUPS = ("cohort x period", "event time", "estimand")  # BJS averaging, finest first


def imputation(panel: Panel, *, fe: str | None = DEFAULT_FE,
               covariates: str | Sequence[str] | None = None,
               cluster: str | None = None, weights: str | None = None, level: float = 0.95,
               event_time: bool = True, vcov: str = "bjs",
               data: pd.DataFrame | None = None) -> EffectResult:
    """Borusyak-Jaravel-Spiess (2024) imputation estimator, with BJS and Gardner SEs.

    Fits ``y ~ X | fe`` (default ``fe="unit + time"``; any pyfixest-style set such as
    ``"city + province^year"`` or ``None``, see :mod:`bayesdid.fixed_effects`; ``covariates``
    a list or a formula string; ``data`` a frame with further FE columns) by (weighted)
    least squares on the untreated observations only, keeping every fixed effect they identify (a period whose only untreated
    observation is one unit keeps its period effect; nothing is dropped as a singleton),
    imputes the untreated outcome ``Y0_hat`` of every treated observation and averages
    ``tau_it = y - Y0_hat`` over treated observations: ``att`` ``overall``, ``att`` by
    ``cohort=g`` and, with ``event_time=True``, ``event_time`` ``k=0, 1, ...``
    (post-treatment only; BJS test pre-trends separately, not done here). Averages are
    observation-weighted (by the panel weights if any, which also weight the first stage).

    Two clustered standard errors are computed and both reported (columns ``se_bjs`` and
    ``se_gardner``); ``se_or_sd`` and the intervals use the one named by ``vcov``:

    * ``"bjs"`` (default): BJS's conservative variance (their Theorem 3) with the leave-out
      averages of their Section 4.3 (Stata ``did_imputation, leaveout``, which they
      recommend): ``sum_c (sum_{it in c} v_it eps_it)^2`` with ``v`` the estimator's weights
      on the outcomes, ``eps`` the first-stage residual on untreated rows and ``tau_it``
      minus the leave-own-cluster-out average of its cohort x period cell on treated rows.
      A cell whose weight sits in one cluster (a one-unit cohort) is averaged by event time
      instead, then over the estimand (``info['bjs_averaging']`` names such rows).
    * ``"gardner"``: Gardner's (2021) two-stage GMM variance (Butts & Gardner 2022, R
      ``did2s``, ``pyfixest.did2s``): the same formula with ``tau_it`` minus the reported
      estimate on treated rows.

    When one cluster holds all of an estimand's weight (a one-unit cohort's ATT clustered by
    unit) no clustered variance exists: the treated part of both formulas is identically
    zero, so both SEs and the interval are NaN for that row (its estimate is kept).

    BJS is the default because it is the variance the estimator's authors derived and
    recommend for it: valid under arbitrary effect heterogeneity (conservative only by the
    heterogeneity left inside cohort x period cells), whereas Gardner's treated residuals
    keep all heterogeneity between cells of a reported group. Under a constant effect and
    iid noise the two agree closely (BJS / Gardner 1.007 for the overall ATT on a tested
    300-unit panel; the leave-out makes BJS slightly larger). Intervals use the t
    distribution with ``info['df']`` = clusters - 1 degrees of freedom.

    A treated observation whose unit or period effect the untreated rows do not identify
    (a period with no untreated observation, e.g. after sub-setting or zero weights) raises
    :class:`~bayesdid.errors.DesignError` naming the periods. Periods whose untreated
    observations come from one cluster (the shape where every unit but one has adopted) are
    imputed from that cluster alone, whose noise then is common to every treated unit of the
    period; no clustered variance sees it (its first-stage residual there is zero), and the
    BJS theory's condition that no observation carries a large weight fails. With two to
    four untreated clusters it is seen poorly. SEs of estimates leaning on such periods are
    too small: with 50 units x 11 years and one untreated unit in the last year the overall
    ATT's 95% intervals covered 78% (BJS) / 77% (Gardner), 90% / 89% with that year dropped
    (two untreated units left in the new last year), 96% / 96% with 25 never-treated units
    (``benchmarks/imputation_variance.py``, 400 panels each). Periods with fewer than 5
    untreated clusters are logged at WARNING and listed in ``info['thin_periods']``
    ({period: clusters}; those with one also in ``info['single_cluster_periods']``), with
    each estimate's weight on them in ``info['thin_period_weight']``.
    Cohorts of fewer than 5 units are kept, logged and listed in ``info['small_cohorts']``.

    How it is computed: by hand (``bayesdid.staggered._imputation``) rather than with
    ``pyfixest.did2s``, whose first stage drops singleton fixed effects and then fails with
    a broadcasting error on such panels; the first stage is solved exactly and also yields
    BJS's weights ``v`` (see that module). Tested: estimates equal a dense least-squares
    imputation to 1e-10, both SEs a dense construction to 1e-10, and the Gardner SE
    ``pyfixest.did2s``'s to 1e-8 on panels where did2s runs.

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
    >>> res.info["vcov"]
    'bjs'
    """
    if vcov not in VCOV_KINDS:
        raise BayesDidError(f"vcov must be one of {VCOV_KINDS}, got {vcov!r}")
    covs, cluster, weights = resolve(panel, covariates, cluster, weights)
    spec = parse_fe(panel, fe, data)
    f = panel.frame
    d = f["treated"].to_numpy(bool)
    if not d.any():
        raise DesignError("no imputable treated observations", column="treated")
    wt = f[weights].to_numpy(float) if weights else np.ones(len(f))
    _, x = covariate_matrix(panel, covs)
    sd = x.std(axis=0)  # rescaled for the rank decisions; the fit is invariant to it
    x = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    unit, time, x = _first_stage_design(spec, x)
    ls = TwoWayLS.fit(unit, time, x, wt, ~d)
    bad = ls.unidentified(d)
    if bad.any():
        raise _not_imputable(panel, wt, bad, weights)

    cohort = f["cohort"].astype("float").to_numpy()[d]
    rel = f["rel_time"].astype("float").to_numpy()[d]
    wt1 = wt[d]
    specs = [(np.ones(d.sum(), bool), "att", group_label())]
    specs += [(cohort == g, "att", group_label(cohort=panel.time_axis.name(int(g))))
              for g in np.unique(cohort)]
    if event_time:
        specs += [(rel == k, "event_time", group_label(k=int(k))) for k in np.unique(rel)]
    mass = np.array([wt1[m].sum() for m, _, _ in specs])
    skipped = [lab for (_, _, lab), s in zip(specs, mass) if s <= 0]
    if skipped:
        logger.warning("imputation: no treated weight in %s; not reported", skipped)
    specs = [sp for sp, s in zip(specs, mass) if s > 0]
    wtr = np.column_stack([np.where(m, wt1, 0.0) / wt1[m].sum() for m, _, _ in specs])
    avg_groups = [pd.factorize(pd.MultiIndex.from_arrays([cohort, rel]))[0],
                  pd.factorize(rel)[0], np.zeros(d.sum(), np.int64)]
    cl = pd.factorize(f[cluster])[0]
    fit = fit_imputation(ls, f[panel.outcome].to_numpy(float), wt, d, cl, wtr, avg_groups)
    thin = _thin_periods(panel, d, wt, cl)
    share = wtr[np.isin(f[panel.time].to_numpy()[d], list(thin))].sum(axis=0)
    thin_weight = {f"{e}: {g}": round(float(s), 4) for (_, e, g), s in zip(specs, share) if s > 0}
    if thin:
        logger.warning("imputation: period(s) with fewer than %d untreated clusters "
                       "{period: clusters} %s; the outcomes imputed there share those "
                       "clusters' noise, which clustered SEs barely see (not at all with one), "
                       "so SEs are too small for estimates that weight these periods (overall "
                       "ATT: %.0f%% of its weight); consider ending the sample before them",
                       SMALL_COHORT, thin, 100 * share[0])

    n_cl = int(cl.max()) + 1
    dof = n_cl - 1
    q = stats.t.ppf(0.5 + level / 2, dof)
    rows, averaging = [], {}
    for j, (m, estimand, group) in enumerate(specs):
        bjs, gardner = float(fit.se_bjs[j]), float(fit.se_gardner[j])
        if not np.isfinite(bjs):  # one cluster holds all the weight: no clustered variance
            gardner = np.nan
        se, est = (bjs if vcov == "bjs" else gardner), float(fit.estimate[j])
        rows.append({"estimand": estimand, "group": group, "estimate": est, "se_or_sd": se,
                     "lower": est - q * se, "upper": est + q * se, "level": level,
                     "interval": "confidence", "n_obs": int(m.sum()), "se_bjs": bjs,
                     "se_gardner": gardner})
        if fit.bjs_level[j] != 0:
            averaging[f"{estimand}: {group}"] = (AVG_GROUPS[fit.bjs_level[j]]
                                                 if fit.bjs_level[j] > 0 else "undefined")
    if averaging:
        logger.warning("imputation: BJS leave-out averages pooled beyond cohort x period "
                       "cells (one cluster holds a cell's weight), or undefined (no SE: one "
                       "cluster holds all the weight), for %s", averaging)
    info = {"small_cohorts": small_cohorts(panel, "imputation"),
            "first_stage": f"{panel.outcome} ~ {covariate_text(covs)[3:] or '0'}"
                           + (f" | {spec.formula}" if spec.terms else "")
                           + " on untreated rows (every identified effect kept)",
            **fe_info(spec),
            "vcov": vcov,
            "vcov_detail": {
                "bjs": f"BJS (2024) Theorem 3 conservative variance, leave-out cohort x period "
                       f"averages (Section 4.3), clustered by {cluster}",
                "gardner": f"Gardner (2021) two-stage GMM variance (did2s), clustered by "
                           f"{cluster}"},
            "bjs_averaging": averaging,
            "single_cluster_periods": [p for p, n in thin.items() if n == 1],
            "thin_periods": thin, "thin_period_weight": thin_weight,
            "weights": weights, "df": dof, "n_clusters": n_cl, "n_treated": int(d.sum())}
    return EffectResult.from_rows(rows, method="imputation", info=info)


def _first_stage_design(spec, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first stage's fixed effects in :class:`TwoWayLS`'s form: the unit term (or a
    constant without one) is eliminated in closed form, the first other term is its
    'period' block, and further terms are dummy columns beside the covariates."""
    n = x.shape[0]
    others = [t for t in spec.terms if t != (spec.unit,)]
    unit = (spec.codes((spec.unit,))[0] if spec.has_unit else np.zeros(n, np.int64))
    time = spec.codes(others[0])[0] if others else np.zeros(n, np.int64)
    extra = [np.eye(int(c.max()) + 1)[c] for c in (spec.codes(t)[0] for t in others[1:])]
    return unit, time, np.column_stack([x, *extra]) if extra else x


def _not_imputable(panel: Panel, wt: np.ndarray, bad: np.ndarray,
                   weights: str | None) -> DesignError:
    """The error for treated rows whose untreated outcome cannot be imputed."""
    f = panel.frame
    d = f["treated"].to_numpy(bool)
    rows = f.loc[d].loc[bad, [panel.unit, panel.time, "cohort"]]
    untreated = pd.Series(~d & (wt > 0)).groupby(f[panel.time].to_numpy()).sum()
    periods = sorted(rows[panel.time].unique())
    empty = [p for p in periods if untreated.get(p, 0) == 0]
    rest = [p for p in periods if p not in empty]
    what = "untreated observation" + (f" with positive weight ({weights!r})" if weights else "")
    parts = []
    if empty:
        parts.append(f"period(s) {_fmt(empty)} of column {panel.time!r} have no {what}, so "
                     "their period effects are not identified")
    if rest:
        parts.append(f"in period(s) {_fmt(rest)} of column {panel.time!r} the untreated "
                     "observations do not identify their unit and period effects or covariate "
                     "slopes (units or periods not connected to the rest through untreated "
                     "observations)")
    return DesignError(f"{len(rows)} treated observation(s) cannot be imputed: "
                       + "; ".join(parts), column=panel.time, rows=rows,
                       hint="end the sample before the periods in which every unit is treated, "
                            "add never-treated units, or check how the sample was cut")


def _fmt(periods) -> str:
    return "[" + ", ".join(str(int(p)) if float(p).is_integer() else str(p)
                           for p in periods) + "]"


def _thin_periods(panel: Panel, d: np.ndarray, wt: np.ndarray,
                  cl: np.ndarray) -> dict[int, int]:
    """Periods with treated rows and fewer than 5 untreated clusters {period: clusters}."""
    t = panel.frame[panel.time].to_numpy()
    n_cl = pd.Series(cl[~d & (wt > 0)]).groupby(t[~d & (wt > 0)]).nunique()
    return {int(p): int(n_cl.get(p, 0)) for p in np.unique(t[d])
            if n_cl.get(p, 0) < SMALL_COHORT}
