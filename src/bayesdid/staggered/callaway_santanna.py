"""Callaway & Sant'Anna (2021) group-time average treatment effects and their aggregations.

:func:`callaway_santanna` estimates ATT(g, t) for every treated cohort ``g`` and period
``t`` from 2x2 comparisons of cohort ``g`` with a clean control group, using the panel
estimators of Sant'Anna & Zhao (2020) — outcome regression (``"reg"``), standardized
inverse probability weighting (``"ipw"``) and the doubly robust estimator (``"dr"``) —
and aggregates them as R's ``did::aggte`` does (simple, by group, dynamic, calendar),
with analytic standard errors from the influence functions.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from ..errors import BayesDidError, ColumnError, DesignError
from ..panel import Panel
from ..results import EffectResult, group_label
from ._bootstrap import MULTIPLIERS, bootstrap_se, multiplier_draws, sup_t_crit

logger = logging.getLogger(__name__)

__all__ = ["callaway_santanna"]

_AGGREGATIONS = ("simple", "group", "dynamic", "calendar")
_TRIM_LEVEL = 0.995  # DRDID (R >= 1.0, csdid): controls with p >= 0.995 get weight 0
_DEFAULT_DRAWS = 999
_MIN_DRAWS = 50
_SMALL_COHORT = 5  # R did warns when a cohort has fewer than 5 + n_covariates units


# ---------------------------------------------------------------------- 2x2 estimators
def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)
    return coef


def _pscore(d: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logit propensity (statsmodels GLM with prior weights ``w``, as R ``glm``), the
    DRDID trimming indicator, and the asymptotic linear representation of the logit
    coefficients (n x k)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # separation warnings are reported via trimming
        fit = sm.GLM(d, x, family=sm.families.Binomial(), var_weights=w).fit()
    p = np.minimum(fit.fittedvalues, 1 - 1e-6)
    keep = np.where(d == 1, p < 1.01, p < _TRIM_LEVEL).astype(float)
    hessian = np.linalg.inv((x * (w * p * (1 - p))[:, None]).T @ x) * len(d)
    alr = (w * (d - p))[:, None] * x @ hessian
    return p, keep, alr


def _drdid_panel(dy: np.ndarray, d: np.ndarray, x: np.ndarray, w: np.ndarray,
                 method: str) -> tuple[float, np.ndarray]:
    """ATT and its influence function (length n) for one 2x2 panel comparison.

    Line by line the estimators of R ``DRDID`` (``reg_did_panel``,
    ``std_ipw_did_panel``, ``drdid_panel``) with propensity trimming at 0.995.
    ``x`` includes the intercept column; ``w`` are unit weights with mean 1.
    """
    n = len(dy)
    ctrl = w * (1 - d)
    if method in ("reg", "dr"):
        beta = _wls(x[d == 0], dy[d == 0], w[d == 0])
        out = x @ beta
        xpx_inv = np.linalg.inv((x * ctrl[:, None]).T @ x / n)
        alr_ols = (ctrl * (dy - out))[:, None] * x @ xpx_inv
    if method == "reg":
        w_t = w * d
        eta_t = np.mean(w_t * dy) / np.mean(w_t)
        eta_c = np.mean(w_t * out) / np.mean(w_t)
        inf_t = (w_t * dy - w_t * eta_t) / np.mean(w_t)
        inf_c = (w_t * out - w_t * eta_c + alr_ols @ np.mean(w_t[:, None] * x, axis=0))
        inf_c = inf_c / np.mean(w_t)
        return eta_t - eta_c, inf_t - inf_c

    p, keep, alr_ps = _pscore(d, x, w)
    w_t = keep * w * d
    w_c = keep * w * p * (1 - d) / (1 - p)
    if method == "ipw":
        eta_t = np.mean(w_t * dy) / np.mean(w_t)
        eta_c = np.mean(w_c * dy) / np.mean(w_c)
        inf_t = (w_t * dy - w_t * eta_t) / np.mean(w_t)
        m2 = np.mean((w_c * (dy - eta_c))[:, None] * x, axis=0)
        inf_c = (w_c * dy - w_c * eta_c + alr_ps @ m2) / np.mean(w_c)
        return eta_t - eta_c, inf_t - inf_c

    resid = dy - out
    eta_t = np.mean(w_t * resid) / np.mean(w_t)
    eta_c = np.mean(w_c * resid) / np.mean(w_c)
    m1 = np.mean(w_t[:, None] * x, axis=0)
    inf_t = (w_t * resid - w_t * eta_t - alr_ols @ m1) / np.mean(w_t)
    m2 = np.mean((w_c * (resid - eta_c))[:, None] * x, axis=0)
    m3 = np.mean(w_c[:, None] * x, axis=0)
    inf_c = (w_c * resid - w_c * eta_c + alr_ps @ m2 - alr_ols @ m3) / np.mean(w_c)
    return eta_t - eta_c, inf_t - inf_c


# ---------------------------------------------------------------------- aggregation
def _wif(rows: np.ndarray, pg: np.ndarray, w: np.ndarray, g_unit: np.ndarray,
         g_row: np.ndarray) -> np.ndarray:
    """Influence function of the group-share weights ``pg[rows] / sum(pg[rows])``
    (R ``did:::wif``): an n x len(rows) matrix."""
    p = pg[rows]
    s = p.sum()
    centred = w[:, None] * (g_unit[:, None] == g_row[rows][None, :]) - p[None, :]
    return centred / s - np.outer(centred.sum(axis=1), p / s**2)


def _combine(att: np.ndarray, inf: np.ndarray, rows: np.ndarray, weights: np.ndarray,
             wif: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    est = float(weights @ att[rows])
    psi = inf[:, rows] @ weights
    if wif is not None:
        psi = psi + wif @ att[rows]
    return est, psi


# ---------------------------------------------------------------------- the estimator
def callaway_santanna(
    panel: Panel,
    *,
    control: str = "never_treated",
    method: str = "dr",
    covariates: Sequence[str] | None = None,
    aggregate: Sequence[str] = _AGGREGATIONS,
    base_period: str = "varying",
    level: float = 0.95,
    cluster: str | None = None,
    bootstrap: int | bool | None = None,
    uniform: bool = False,
    multiplier: str = "rademacher",
    random_seed: int | None = None,
) -> EffectResult:
    """Callaway & Sant'Anna (2021) ATT(g, t) and aggregations (R ``did`` defaults).

    For each treated cohort ``g`` and period ``t`` the outcome change between a base
    period and ``t`` of cohort ``g`` is compared with that of the control group:
    the never-treated units (``control="never_treated"``) or the units not yet treated
    at ``max(t, base)`` outside cohort ``g`` (``"not_yet_treated"``). The base period is
    ``g - 1`` for post-treatment periods; for pre-treatment periods it is ``t - 1``
    (``base_period="varying"``, pseudo-ATTs for pre-trend checks, the first period has
    none) or ``g - 1`` (``"universal"``, ATT(g, g-1) = 0 reported). The 2x2 estimator is
    Sant'Anna & Zhao's (2020) panel outcome regression (``"reg"``), standardized IPW
    (``"ipw"``, logit propensity by statsmodels) or doubly robust (``"dr"``) estimator,
    with covariates taken at the earlier of the two periods and propensities trimmed at
    0.995 as in R ``DRDID``.

    Rows of the result (method ``"callaway_santanna"``):

    * ``att_gt``, ``cohort=g, t=t``: every ATT(g, t);
    * ``att``, ``overall`` (``"simple"``): post-treatment ATT(g, t) weighted by cohort
      size — each post cell of cohort g weighs ``N_g``, so this equals the mean of tau
      over treated unit-periods of a balanced panel only if effects are homogeneous;
    * ``att``, ``cohort=g`` (``"group"``): the mean of cohort g's post ATT(g, t);
    * ``event_time``, ``k=e`` (``"dynamic"``): ATT(g, g+e) averaged with cohort-size
      weights over the cohorts observed at e (pre-periods included);
    * ``calendar``, ``t=t`` (``"calendar"``): ATT(g, t) averaged over cohorts treated by t.

    The overall summaries R also reports (mean of the group effects, of the event-time
    effects e >= 0, of the calendar effects) are in ``info["summaries"]`` (estimate, se).

    There is no ``fe=`` argument (unlike :func:`~bayesdid.did.twfe.twfe` and the other
    regression estimators): each ATT(g, t) compares outcome *changes* of a cohort and its
    controls, so the unit effects are differenced out and period effects cancel between
    the two groups; no fixed-effect set enters the estimator. For region-by-period shocks,
    restrict the comparison (e.g. estimate by region on sub-panels) or use
    ``imputation(panel, fe="unit + region^time")``.

    Standard errors come from the influence functions, as R ``did`` with
    ``bstrap=FALSE``: ``se = sqrt(sum_i psi_i^2) / n`` over units (clustered by unit);
    with a coarser ``cluster`` (default: the panel's) the influence functions are summed
    within clusters first. The estimated cohort-share weights contribute their own influence
    function in the simple, dynamic and calendar aggregations and in the mean of the
    group effects (as R ``did::aggte``); the effect of one cohort averages its own
    ATT(g, t) with fixed equal weights and has none.
    Intervals are normal. ``n_obs`` is the number of treated unit-periods behind the
    row (cohort size for one ATT(g, t)). Requires a balanced panel; unit weights
    (``panel.weights``, constant within unit) are normalized to mean one.

    **Multiplier bootstrap** (``bootstrap=B``; ``True`` means 999 draws; ``uniform=True``
    alone also turns it on with 999 draws): the influence functions of every reported
    effect are perturbed by one multiplier per cluster (``"rademacher"``, as R ``did``
    and ``csdid``, or ``"mammen"``), all draws in one matrix product, seeded by
    ``random_seed`` (see :mod:`bayesdid.staggered._bootstrap`). ``se_or_sd`` is then the
    bootstrap standard error (IQR / 1.349, as R ``did``) and intervals are ``estimate +-
    c * se``. With ``uniform=False`` ``c`` is the normal quantile (pointwise); with
    ``uniform=True`` ``c`` is the sup-t critical value of the set the row belongs to: all
    ATT(g, t) (pre-periods included), all event-time effects, all cohort effects, all
    calendar effects; the single overall ATT stays pointwise. Cluster sums are bootstrapped
    (as ``csdid``; R ``did`` <= 2.1 bootstraps cluster means, which differs only with
    unequal cluster sizes). The column ``band`` says which interval a row has
    (``"pointwise"`` or ``"uniform"``; ``interval`` stays ``"confidence"``), and
    ``info["bootstrap"]`` records draws, multiplier, seed, clusters and the critical value
    of each set. ``effects(level=...)`` recomputes *pointwise* normal intervals only, so
    read uniform bands at the level they were computed at. Without bootstrap every row
    has ``band="pointwise"``.

    ATT(g, t) without any control unit (not-yet-treated controls run out) are skipped,
    logged at WARNING and listed in ``info["skipped_att_gt"]``. Small cohorts (fewer
    than 5 units plus the number of covariates, R ``did``'s rule)
    are kept but logged at WARNING and listed in ``info["small_cohorts"]``: with a single
    unit the treated side of its influence function is zero, so its standard errors
    reflect the control group only.

    Examples
    --------
    >>> from bayesdid import Panel
    >>> from bayesdid.datasets import simulate_staggered
    >>> sim = simulate_staggered(n_units=60, years=(2005, 2012), batches={2007: 10},
    ...                          n_covariates=0, sigma=0.0, random_seed=1)
    >>> panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    >>> res = callaway_santanna(panel, method="reg")
    >>> truth = sim.truth.set_index(["estimand", "group"])["value"]
    >>> bool(abs(res.effect("event_time", "k=2")["estimate"] - truth["event_time", "k=2"]) < 1e-10)
    True

    A uniform (sup-t) band over the event-time effects, from 199 bootstrap draws:

    >>> sim = simulate_staggered(n_units=80, years=(2005, 2012), batches={2007: 20},
    ...                          n_covariates=0, random_seed=2)
    >>> boot = callaway_santanna(Panel.from_frame(sim.data, **sim.panel_kwargs),
    ...                          aggregate="dynamic", bootstrap=199, uniform=True, random_seed=0)
    >>> ev = boot.effects().query("estimand == 'event_time'")
    >>> bool((ev["band"] == "uniform").all() and boot.info["bootstrap"]["crit"]["dynamic"] > 1.96)
    True
    """
    # -- checks -----------------------------------------------------------------
    if not isinstance(panel, Panel):
        raise BayesDidError(f"expected a bayesdid Panel, got {type(panel).__name__}; "
                            "build one with Panel.from_frame(df, ...)")
    if control not in ("never_treated", "not_yet_treated"):
        raise BayesDidError(f"control must be 'never_treated' or 'not_yet_treated', "
                            f"got {control!r}")
    if method not in ("dr", "ipw", "reg"):
        raise BayesDidError(f"method must be 'dr', 'ipw' or 'reg', got {method!r}")
    if base_period not in ("varying", "universal"):
        raise BayesDidError(f"base_period must be 'varying' or 'universal', got {base_period!r}")
    if isinstance(aggregate, str):
        aggregate = (aggregate,)
    unknown = [a for a in aggregate if a not in _AGGREGATIONS]
    if unknown:
        raise BayesDidError(f"unknown aggregation {unknown[0]!r}; choose from {_AGGREGATIONS}")
    if not 0 < level < 1:
        raise BayesDidError(f"level must be in (0, 1), got {level}")
    draws = _check_bootstrap(bootstrap, uniform, multiplier)
    covs = tuple(panel.covariates if covariates is None else
                 ((covariates,) if isinstance(covariates, str) else covariates))
    missing = [c for c in covs if c not in panel.frame.columns]
    if missing:
        raise BayesDidError(f"covariate {missing[0]!r} is not a panel column", column=missing[0],
                            hint="declare it with covariates=[...] in Panel.from_frame")
    if not panel.is_balanced:
        raise DesignError("callaway_santanna needs a balanced panel (every unit observed in "
                          "every period)", column=panel.unit,
                          hint="balance the panel first, e.g. keep units observed in all periods")

    # -- unit x time arrays -----------------------------------------------------------
    f = panel.frame.sort_values([panel.unit, panel.time], kind="stable")
    times = panel.times
    n_t = len(times)
    units = f[panel.unit].to_numpy()[::n_t]
    n = len(units)
    y = f[panel.outcome].to_numpy(float).reshape(n, n_t)
    xs = np.stack([f[c].to_numpy(float).reshape(n, n_t) for c in covs], axis=-1) \
        if covs else np.zeros((n, n_t, 0))
    first = f.groupby(panel.unit, sort=False).first()
    g_unit = first["cohort"].fillna(0).to_numpy(dtype="int64")
    if panel.weights:
        wcol = f[panel.weights].to_numpy(float).reshape(n, n_t)
        if not np.allclose(wcol, wcol[:, :1]):
            raise BayesDidError("weights must be constant within unit for callaway_santanna",
                                column=panel.weights)
        w = wcol[:, 0] / wcol[:, 0].mean()
    else:
        w = np.ones(n)
    cluster = panel.cluster if cluster is None else cluster
    cluster = cluster if cluster and cluster != panel.unit else None
    cl_codes = None
    if cluster is not None:
        if cluster not in f.columns:
            raise ColumnError(f"cluster column {cluster!r} is not in the panel", column=cluster,
                              hint="pass a column of the panel frame, or cluster=None")
        ccol = f[cluster].to_numpy().reshape(n, n_t)
        varying = ~(ccol == ccol[:, :1]).all(axis=1)
        if varying.any():
            bad = f[f[panel.unit].isin(units[varying])][[panel.unit, panel.time, cluster]]
            raise BayesDidError(f"cluster column {cluster!r} must be constant within unit",
                                column=cluster, rows=bad,
                                hint="cluster on a unit-level variable (e.g. region)")
        cl_codes = pd.factorize(ccol[:, 0])[0]
    if control == "never_treated" and not (g_unit == 0).any():
        sizes = first.groupby("cohort").size().rename("n_units").reset_index()
        raise DesignError("control='never_treated' but the panel has no never-treated units",
                          column="cohort", rows=sizes,
                          hint="use control='not_yet_treated' (later cohorts as controls)")
    cohorts = [g for g in panel.cohorts]
    tname = panel.time_axis.name  # the user's label of a period (calendar time as text)
    small = {g: int((g_unit == g).sum()) for g in cohorts
             if (g_unit == g).sum() < _SMALL_COHORT + len(covs)}
    if small:
        logger.warning("callaway_santanna: small cohort(s) %s (units per cohort); their "
                       "ATT(g, t) are estimated but their standard errors are unreliable "
                       "(a one-unit cohort contributes no treated-side variance)", small)

    # -- ATT(g, t) ----------------------------------------------------------------------
    recs: list[tuple[int, int]] = []
    atts: list[float] = []
    infs: list[np.ndarray] = []
    skipped: list[str] = []
    for g in cohorts:
        before = [i for i, t in enumerate(times) if t < g]
        if not before:
            continue
        g_base = before[-1]
        for it in range(n_t):
            t = int(times[it])
            if t < g and base_period == "varying":
                if it == 0:
                    continue
                ib = it - 1
            else:
                ib = g_base
            if it == ib:  # universal base: the reference period itself
                recs.append((g, t))
                atts.append(0.0)
                infs.append(np.zeros(n))
                continue
            later = int(times[max(it, ib)])
            treat = g_unit == g
            if control == "never_treated":
                ctrl = g_unit == 0
            else:
                ctrl = (g_unit == 0) | ((g_unit > later) & (g_unit != g))
            if not ctrl.any():
                skipped.append(group_label(cohort=tname(g), t=tname(t)))
                continue
            keep = treat | ctrl
            d = treat[keep].astype(float)
            dy = y[keep, it] - y[keep, ib]
            x = np.column_stack([np.ones(keep.sum()), xs[keep, min(it, ib), :]])
            est, psi = _drdid_panel(dy, d, x, w[keep], method)
            full = np.zeros(n)
            full[keep] = psi * n / keep.sum()
            recs.append((g, t))
            atts.append(est)
            infs.append(full)
    if skipped:
        logger.warning("callaway_santanna: no control units for %d ATT(g, t), skipped: %s",
                       len(skipped), ", ".join(skipped))
    if not recs:
        raise DesignError("no ATT(g, t) could be estimated: no cohort has a pre-period and "
                          "a control group", column=panel.unit)
    att = np.asarray(atts)
    inf = np.column_stack(infs)
    g_row = np.array([r[0] for r in recs])
    t_row = np.array([r[1] for r in recs])
    size = {g: int((g_unit == g).sum()) for g in cohorts}
    pg_of = {g: float(np.mean(w * (g_unit == g))) for g in cohorts}
    pg = np.array([pg_of[g] for g in g_row])

    rows: list[dict] = []
    psis: list[np.ndarray] = []
    sets: list[str] = []  # the uniform-band set of each row

    def add(estimand: str, group: str, est: float, psi: np.ndarray, n_obs: int,
            band_set: str) -> None:
        rows.append({"estimand": estimand, "group": group, "estimate": est, "n_obs": n_obs})
        psis.append(psi)
        sets.append(band_set)

    for j, (g, t) in enumerate(recs):
        add("att_gt", group_label(cohort=tname(g), t=tname(t)), float(att[j]), inf[:, j],
            size[g], "att_gt")

    post = np.flatnonzero(t_row >= g_row)
    summ_est: dict[str, float] = {}
    summ_psi: dict[str, np.ndarray] = {}
    if "simple" in aggregate and len(post):
        est, psi = _combine(att, inf, post, pg[post] / pg[post].sum(),
                            _wif(post, pg, w, g_unit, g_row))
        add("att", "overall", est, psi, int(sum(size[g] for g in g_row[post])), "simple")
    if "group" in aggregate and len(post):
        g_est, g_psi, g_list = [], [], []
        for g in cohorts:
            sel = post[g_row[post] == g]
            if not len(sel):
                continue
            est, psi = _combine(att, inf, sel, np.full(len(sel), 1 / len(sel)))
            add("att", group_label(cohort=tname(g)), est, psi, size[g] * len(sel), "group")
            g_est.append(est), g_psi.append(psi), g_list.append(g)
        ga, gi = np.asarray(g_est), np.column_stack(g_psi)
        gp = np.array([pg_of[g] for g in g_list])
        idx = np.arange(len(g_list))
        summ_est["group"], summ_psi["group"] = _combine(
            ga, gi, idx, gp / gp.sum(), _wif(idx, gp, w, g_unit, np.array(g_list)))
    if "dynamic" in aggregate:
        e_row = t_row - g_row
        e_est, e_psi = [], []
        eseq = np.unique(e_row)
        for e in eseq:
            sel = np.flatnonzero(e_row == e)
            est, psi = _combine(att, inf, sel, pg[sel] / pg[sel].sum(),
                                _wif(sel, pg, w, g_unit, g_row))
            add("event_time", group_label(k=int(e)), est, psi,
                int(sum(size[g] for g in g_row[sel])), "dynamic")
            e_est.append(est), e_psi.append(psi)
        pos = eseq >= 0
        if pos.any():
            summ_est["dynamic"] = float(np.mean(np.asarray(e_est)[pos]))
            summ_psi["dynamic"] = np.column_stack(e_psi)[:, pos].mean(axis=1)
    if "calendar" in aggregate and len(post):
        c_est, c_psi = [], []
        for t in times[times >= min(g_row)]:
            sel = post[t_row[post] == t]
            if not len(sel):
                continue
            est, psi = _combine(att, inf, sel, pg[sel] / pg[sel].sum(),
                                _wif(sel, pg, w, g_unit, g_row))
            add("calendar", group_label(t=tname(int(t))), est, psi,
                int(sum(size[g] for g in g_row[sel])), "calendar")
            c_est.append(est), c_psi.append(psi)
        summ_est["calendar"] = float(np.mean(c_est))
        summ_psi["calendar"] = np.column_stack(c_psi).mean(axis=1)

    # -- standard errors and intervals: analytic, or one multiplier bootstrap of all ----
    names = list(summ_est)
    psi_all = np.column_stack(psis + [summ_psi[k] for k in names])
    z = stats.norm.ppf(0.5 + level / 2)
    if draws is None:
        se_all = np.array([_analytic_se(psi_all[:, j], cl_codes, n)
                           for j in range(psi_all.shape[1])])
        crit = {}
        boot_info = None
    else:
        dev = multiplier_draws(psi_all, draws=draws, multiplier=multiplier, clusters=cl_codes,
                               random_seed=random_seed)
        se_all = bootstrap_se(dev)
        set_arr = np.asarray(sets)
        crit = {}
        if uniform:
            for name in ("att_gt", "group", "dynamic", "calendar"):
                cols = np.flatnonzero(set_arr == name)
                if len(cols):
                    crit[name] = sup_t_crit(dev[:, cols], se_all[cols], level)
        boot_info = {"draws": draws, "multiplier": multiplier, "random_seed": random_seed,
                     "n_clusters": int(cl_codes.max()) + 1 if cl_codes is not None else n,
                     "uniform": bool(uniform), "crit": dict(crit), "z": float(z)}
    for row, se, band_set in zip(rows, se_all, sets):
        c = crit.get(band_set, np.nan)
        band = "uniform" if np.isfinite(c) else "pointwise"
        c = c if np.isfinite(c) else z
        row.update({"se_or_sd": se, "lower": row["estimate"] - c * se,
                    "upper": row["estimate"] + c * se, "level": level,
                    "interval": "confidence", "band": band})
    summaries = {k: (float(summ_est[k]), float(se_all[len(rows) + i]))
                 for i, k in enumerate(names)}

    info = {"control": control, "est_method": method, "base_period": base_period,
                "covariates": covs, "n_units": n, "cluster": cluster or panel.unit,
                "summaries": summaries, "att_gt_index": list(recs), "influence": inf,
                "small_cohorts": small, "skipped_att_gt": skipped, "bootstrap": boot_info}
    return EffectResult.from_rows(rows, method="callaway_santanna", info=info)


def _analytic_se(psi: np.ndarray, cl_codes: np.ndarray | None, n: int) -> float:
    if cl_codes is not None:
        psi = np.bincount(cl_codes, weights=psi)
    s = float(np.sqrt(np.sum(psi**2)) / n)
    return s if s > np.sqrt(np.finfo(float).eps) * 10 else np.nan


def _check_bootstrap(bootstrap, uniform, multiplier) -> int | None:
    """Number of bootstrap draws (None: analytic standard errors)."""
    if not isinstance(uniform, (bool, np.bool_)):
        raise BayesDidError(f"uniform must be True or False, got {uniform!r}")
    if multiplier not in MULTIPLIERS:
        raise BayesDidError(f"multiplier must be one of {MULTIPLIERS}, got {multiplier!r}")
    if bootstrap is None or bootstrap is False:
        draws = 0
    elif bootstrap is True:
        draws = _DEFAULT_DRAWS
    elif isinstance(bootstrap, (int, np.integer)) and bootstrap >= 0:
        draws = int(bootstrap)
    else:
        raise BayesDidError(f"bootstrap must be None, True or a non-negative number of draws, "
                            f"got {bootstrap!r}")
    if uniform and draws == 0:
        logger.info("uniform=True needs the multiplier bootstrap: using %d draws",
                    _DEFAULT_DRAWS)
        draws = _DEFAULT_DRAWS
    if 0 < draws < _MIN_DRAWS:
        raise BayesDidError(f"bootstrap={draws} draws are too few for quantile-based standard "
                            f"errors; use at least {_MIN_DRAWS} (999 is the default)")
    return draws or None
