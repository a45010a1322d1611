"""Period-by-period PSM-DID (the LCCP paper's endogeneity check), with balance tests.

1. **Propensity scores** by logit (statsmodels): of the treated-group indicator (ever
   treated in the panel) on the matching covariates, one logit per period on that period's
   cross-section (``scores="period"``, the paper's period-by-period PSM), or one logit on
   all rows (``scores="pooled"``). Matching is always within a period.
2. **Matching** of the treated group's rows to never-treated rows of the same period:
   nearest neighbour 1:k, with or without replacement, within a caliper; or kernel
   matching (Epanechnikov or Gaussian). Treated rows whose score lies outside the controls'
   score range of their period, or with no control within the caliper, are off common
   support and not matched (psmatch2's ``common`` rule; all control rows are on support).
   Weights follow psmatch2's ``_weight``: 1 for a matched treated row; for a control row
   the sum, over the treated rows it serves, of 1/(number of their matches) (kernel: of
   the normalised kernel weights); missing (null) for rows not used.
3. **Balance** per covariate and period (and over all periods stacked, ``period="all"``),
   as Stata's ``pstest``: treated and control means before (all rows) and after matching
   (control mean weighted), standardised % bias ``100 (mean_T - mean_C) / sqrt((var_T +
   var_C) / 2)`` with the variances of the unmatched sample in both, % reduction of
   |bias|, a two-sample t-test (after matching weighted by the matching weights), and the
   variance ratio. Per logit: pseudo-R2 (McFadden), LR chi2 and its p-value before and
   after matching; the 'after' logit is re-estimated, unweighted, on the matched rows (the
   paper's Table 8, following Xie, Fan and Wan 2021).
4. **DID** by TWFE (:func:`~bayesdid.did.twfe.twfe`, pyfixest) on the paper's three
   samples: rows with non-null weights, rows on common support, and all matched rows
   weighted by their matching frequency (the matching weight as regression weight: the
   point estimate and the cluster scores of replicating rows by their frequency).

Caliper: by default 0.2 standard deviations of the logit of the propensity score, computed
per logit (Austin 2011; Rosenbaum and Rubin 1985 use 0.25), and nearest-neighbour distances
are then measured on the logit scale. ``caliper_scale="pscore"`` measures distances and the
caliper on the probability scale, as psmatch2 (e.g. ``caliper=0.05``). Kernel matching
uses the probability scale with psmatch2's default bandwidth 0.06.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from scipy.optimize import linprog
from statsmodels.stats.weightstats import ttest_ind

from ..errors import (
    BayesDidError,
    DesignError,
    EstimationError,
    MatchingError,
    SeparationError,
)
from ..panel import LogEntry, Panel
from ..results import EffectResult, Result, group_label
from .mediation import panel_columns
from ..fixed_effects import DEFAULT_FE, parse_fe
from ..did.twfe import twfe

__all__ = ["SAMPLES", "PSMResult", "psm_did"]

logger = logging.getLogger(__name__)

SAMPLES = ("non_null_weights", "common_support", "frequency_weighted")
_W = "_psm_weight"


@dataclass(frozen=True, eq=False, repr=False)
class PSMResult(Result):
    """PSM-DID: effects on the three samples, balance tables, logits and the scores.

    A :class:`~bayesdid.results.Result` wrapping an EffectResult (:attr:`result`, whose
    effects it reports) with the matching's balance tables, logits and scores.

    Attributes
    ----------
    result : EffectResult, three ``att`` rows, groups ``sample=non_null_weights``,
        ``sample=common_support``, ``sample=frequency_weighted``.
    balance : per period (and ``"all"``), covariate and sample (``unmatched`` /
        ``matched``): ``mean_treated``, ``mean_control``, ``pct_bias``,
        ``pct_reduction``, ``t``, ``p``, ``var_ratio``.
    logits : per logit and sample: ``n_obs``, ``n_treated``, ``pseudo_r2``, ``lr_chi2``,
        ``lr_df``, ``lr_p``, ``converged``.
    logit_coefs : per logit, sample and term: ``coef``, ``se``, ``z``, ``p``.
    scores : one row per panel row: unit, time, ``treated_group``, ``pscore``,
        ``distance`` (the matching scale), ``weight`` (NaN = not used), ``support``,
        ``n_matches``.
    """

    result: EffectResult
    balance: pd.DataFrame
    logits: pd.DataFrame
    logit_coefs: pd.DataFrame
    scores: pd.DataFrame
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return self.result.method

    def effects(self, level: float | None = None, interval: str | None = None) -> pd.DataFrame:
        """The tidy effects table (three rows, one per sample)."""
        return self.result.effects(level=level, interval=interval)

    def effect(self, sample: str = "common_support") -> pd.Series:
        return self.result.effect("att", group_label(sample=sample))

    def balance_plot(self, period: Any = "all", ax=None):
        """Standardised % bias before and after matching (see :mod:`bayesdid.report.psm_plots`)."""
        from ..report.psm_plots import balance_plot
        return balance_plot(self.balance, period=period, ax=ax)

    def plot(self, ax=None, *, period: Any = "all", **kwargs):
        """The balance plot: standardised % bias before and after matching (see
        :func:`bayesdid.report.psm_plots.balance_plot`). Returns a Figure."""
        from ..report.psm_plots import balance_plot
        return balance_plot(self.balance, period=period, ax=ax, **kwargs)

    def report(self, digits: int = 3) -> str:
        """The effects, the % bias before and after matching and the logits' fit, as text."""
        bal = self.balance[self.balance["period"] == "all"]
        wide = bal.pivot(index="covariate", columns="sample", values="pct_bias")
        fit = self.logits.groupby("sample")[["pseudo_r2", "lr_chi2"]].mean()
        return "\n\n".join([self.result.report(digits),
                            "% bias, all periods:\n" + wide.to_markdown(floatfmt=f".{digits}f"),
                            "mean over logits:\n" + fit.to_markdown(floatfmt=f".{digits}f")])

    def _describe(self) -> str:
        return (f"method={self.info.get('method')!r} scores={self.info.get('scores')!r} "
                f"rows={len(self.result.table)}")


def psm_did(panel: Panel, *, covariates: Sequence[str] | None = None,
            data: pd.DataFrame | None = None, scores: Literal["period", "pooled"] = "period",
            method: Literal["nearest", "kernel"] = "nearest", k: int = 1,
            replacement: bool = True, caliper: float | None = 0.2,
            caliper_scale: Literal["logit_sd", "pscore"] = "logit_sd",
            kernel: Literal["epanechnikov", "gaussian"] = "epanechnikov",
            bandwidth: float = 0.06, did_covariates: Sequence[str] | None = None,
            cluster: str | None = None, level: float = 0.95,
            random_seed: int | None = None, fe: str | None = DEFAULT_FE) -> PSMResult:
    """Period-by-period propensity-score matching, balance tests and DID on three samples.

    Parameters
    ----------
    covariates : matching covariates; default the panel's covariates. May also name
        columns of ``data`` (a frame with the panel's unit and time columns), e.g. a
        variable used for matching only.
    scores : ``"period"`` (one logit per period) or ``"pooled"`` (one logit on all rows).
    method : ``"nearest"`` (1:k nearest neighbour) or ``"kernel"``.
    k, replacement, caliper, caliper_scale : nearest-neighbour options; ``caliper=None``
        for no caliper. Without replacement, treated rows are matched in a random order
        (``random_seed``).
    kernel, bandwidth : kernel matching options (probability scale).
    did_covariates : controls of the DID regressions; default the panel's covariates.
    cluster : cluster of the DID standard errors (default the panel's, else the unit).
    fe : fixed effects of the DID regressions in pyfixest syntax (default ``"unit + time"``;
        :mod:`bayesdid.fixed_effects`); its columns must be panel columns.

    Examples
    --------
    >>> from bayesdid.datasets import simulate_staggered
    >>> sim = simulate_staggered(n_units=80, years=(2005, 2010), batches={2007: 20},
    ...                          random_seed=4)
    >>> panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    >>> res = psm_did(panel)
    >>> res.effects()["group"].tolist()
    ['sample=non_null_weights', 'sample=common_support', 'sample=frequency_weighted']
    """
    if not isinstance(panel, Panel):
        raise BayesDidError(f"expected a bayesdid Panel, got {type(panel).__name__}")
    if scores not in ("period", "pooled"):
        raise BayesDidError(f"scores must be 'period' or 'pooled', got {scores!r}")
    if method not in ("nearest", "kernel"):
        raise BayesDidError(f"method must be 'nearest' or 'kernel', got {method!r}")
    if kernel not in ("epanechnikov", "gaussian"):
        raise BayesDidError(f"kernel must be 'epanechnikov' or 'gaussian', got {kernel!r}")
    if caliper_scale not in ("logit_sd", "pscore"):
        raise BayesDidError(f"caliper_scale must be 'logit_sd' or 'pscore', got {caliper_scale!r}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise BayesDidError(f"k must be an integer >= 1, got {k!r}")
    if caliper is not None and not caliper > 0:
        raise BayesDidError(f"caliper must be positive or None, got {caliper!r}")
    if not bandwidth > 0:
        raise BayesDidError(f"bandwidth must be positive, got {bandwidth!r}")
    covs = list(panel.covariates if covariates is None else covariates)
    if not covs:
        raise DesignError("PSM needs matching covariates; the panel declares none",
                          hint="pass covariates=[...] (panel columns or columns of data=)")
    parse_fe(panel, fe)  # unknown FE columns fail before any matching
    X = panel_columns(panel, covs, data, role="covariate")
    f = panel.frame
    unit, time = panel.unit, panel.time
    group = f["cohort"].notna().to_numpy()
    times = f[time].to_numpy()
    seed = int(np.random.SeedSequence().entropy % (2**31)) if random_seed is None \
        else int(random_seed)
    rng = np.random.default_rng(seed)

    pscore, linear = np.full(len(f), np.nan), np.full(len(f), np.nan)
    logit_rows, coef_rows = [], []
    if scores == "pooled":
        blocks = {"pooled": np.ones(len(f), bool)}
    else:
        blocks = {t: times == t for t in np.unique(times)}
    sd_logit = {}
    for label, rows in blocks.items():
        if group[rows].all() or not group[rows].any():
            logger.info("PSM: period %s has only one group; not matched", label)
            continue
        fit = _logit(group[rows], X.loc[rows], label, f.loc[rows, [unit, time]], check=True)
        pscore[rows], linear[rows] = fit.predict(), fit.fittedvalues
        sd_logit[label] = float(np.std(fit.fittedvalues, ddof=1))
        logit_rows.append(_fit_row(fit, label, "unmatched"))
        coef_rows.append(_coef_frame(fit, label, "unmatched"))

    weight, support, n_matches = np.full(len(f), np.nan), ~group.copy(), np.zeros(len(f), int)
    dist = linear if (method == "nearest" and caliper_scale == "logit_sd") else pscore
    closest = []
    for t in np.unique(times):
        rows = np.flatnonzero((times == t) & np.isfinite(pscore))
        tr, co = rows[group[rows]], rows[~group[rows]]
        if not len(tr) or not len(co):
            continue
        lo, hi = pscore[co].min(), pscore[co].max()
        inside = tr[(pscore[tr] >= lo) & (pscore[tr] <= hi)]
        if method == "nearest":
            width = None if caliper is None else caliper * (
                sd_logit["pooled" if scores == "pooled" else t]
                if caliper_scale == "logit_sd" else 1.0)
            matches = _nearest(dist[inside], dist[co], k, replacement, width, rng)
        else:
            matches = _kernel(pscore[inside], pscore[co], kernel, bandwidth)
        matched = matches.sum(axis=1) > 0
        if len(inside):
            closest.append((t, len(tr), len(inside), int(matched.sum()),
                            float(np.abs(dist[inside][:, None] - dist[co][None, :]).min())))
        weight[inside[matched]] = 1.0
        n_matches[inside] = (matches > 0).sum(axis=1)
        support[inside[matched]] = True
        ctrl_w = (matches[matched] / matches[matched].sum(axis=1, keepdims=True)).sum(axis=0)
        used = ctrl_w > 0
        weight[co[used]] = ctrl_w[used]
    matched_rows = np.isfinite(weight)
    if not (matched_rows & group).any():
        rows = pd.DataFrame(closest, columns=[time, "n_treated", "n_on_support", "n_matched",
                                              "closest_distance"])
        raise MatchingError(
            "no treated row found a control within the "
            + (f"caliper ({caliper} {'sd of the logit score' if caliper_scale == 'logit_sd' else 'on the pscore scale'})"
               if method == "nearest" else f"kernel bandwidth ({bandwidth})"),
            column=time, rows=rows,
            hint="widen the caliper (e.g. caliper=0.5 or caliper=None) or the bandwidth, "
                 "or use fewer matching covariates")
    n_lost = int((group & np.isfinite(pscore) & ~matched_rows).sum())
    if n_lost:
        logger.info("PSM: %d treated-group rows unmatched (off support or outside the caliper)",
                    n_lost)

    # balance and re-estimated logits on the matched rows
    balance = _balance(X, group, weight, times, scores)
    for label, rows in blocks.items():
        if label not in sd_logit:
            continue
        sub = rows & matched_rows
        if group[sub].all() or not group[sub].any():
            continue
        fit = _logit(group[sub], X.loc[sub], label, f.loc[sub, [unit, time]], check=False)
        logit_rows.append(_fit_row(fit, label, "matched"))
        coef_rows.append(_coef_frame(fit, label, "matched"))
    logits = pd.DataFrame(logit_rows)
    logit_coefs = pd.concat(coef_rows, ignore_index=True)

    # DID on the three samples
    eff_rows = []
    for name, mask, w in (("non_null_weights", matched_rows, None),
                          ("common_support", support, None),
                          ("frequency_weighted", matched_rows, _W)):
        eff_rows.append(_did(panel, mask, weight, name, w, did_covariates, cluster, level,
                              fe))
    result = EffectResult.from_rows(eff_rows, method="psm_did",
                                    info={"samples": list(SAMPLES)})
    score_frame = pd.DataFrame({unit: f[unit].to_numpy(), time: times,
                                "treated_group": group.astype(int), "pscore": pscore,
                                "distance": dist, "weight": weight, "support": support,
                                "n_matches": n_matches})
    info = {"method": method, "scores": scores, "k": int(k), "replacement": replacement,
            "caliper": caliper, "caliper_scale": caliper_scale, "kernel": kernel,
            "bandwidth": bandwidth, "covariates": covs, "random_seed": seed,
            "n_treated_rows_unmatched": n_lost,
            "sample_sizes": {s: int(r["n_obs"]) for s, r in zip(SAMPLES, eff_rows)},
            "frequency_weight_sum": float(np.nansum(weight))}
    return PSMResult(result=result, balance=balance, logits=logits, logit_coefs=logit_coefs,
                     scores=score_frame, info=info)


# ---------------------------------------------------------------------- logit
def _logit(y: np.ndarray, X: pd.DataFrame, label, keys: pd.DataFrame, *, check: bool):
    exog = sm.add_constant(X.to_numpy(float), has_constant="add")
    if check:
        flat = [c for c, s in zip(X.columns, X.std(ddof=0).to_numpy()) if not s > 0]
        if flat:
            raise EstimationError(
                f"covariate(s) {flat} are constant in period {label}: the propensity logit "
                "cannot estimate them", column=flat[0],
                hint="drop them from the matching covariates or use scores='pooled'")
        separating = _separation(y, exog, list(X.columns))
        if separating is not None:
            rows = pd.concat([keys, X[separating]], axis=1).assign(treated_group=y.astype(int))
            raise SeparationError(
                f"the propensity logit for period {label} is perfectly separated by "
                f"covariate(s) {separating}: no control row overlaps the treated group there, "
                "so the scores are 0/1 and matching is impossible", column=separating[0],
                rows=rows.sort_values(separating[0]),
                hint="drop or coarsen these covariates for the matching, use scores='pooled', "
                     "or drop the period")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-convergence is recorded in the logits table
        try:
            return sm.Logit(y.astype(float), exog).fit(disp=0, maxiter=200)
        except np.linalg.LinAlgError:
            raise EstimationError(f"the propensity logit for period {label} is singular "
                                  "(collinear covariates)",
                                  hint="drop collinear matching covariates") from None


def _separation(y: np.ndarray, exog: np.ndarray, names: list[str]) -> list[str] | None:
    """Covariates that separate the groups, or None.

    Konis (2007) linear programme: maximise sum_i s_i x_i'b subject to s_i x_i'b >= 0 and
    |b| <= 1, with s = 2y - 1; a positive optimum means complete or quasi-complete
    separation. The covariates named are those separating on their own, else those of the
    separating direction found.
    """
    x = exog.copy()
    scale = x[:, 1:].std(axis=0)
    x[:, 1:] = (x[:, 1:] - x[:, 1:].mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    s = 2 * y.astype(float) - 1
    beta = _separating_direction(s, x)
    if beta is None:
        return None
    alone = [n for j, n in enumerate(names)
             if _separating_direction(s, x[:, [0, j + 1]]) is not None]
    return alone or [n for n, b in zip(names, beta[1:]) if abs(b) > 1e-6] or names


def _separating_direction(s: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    a = s[:, None] * x
    res = linprog(-a.sum(axis=0), A_ub=-a, b_ub=np.zeros(len(a)),
                  bounds=[(-1, 1)] * x.shape[1], method="highs")
    if res.status != 0 or -res.fun <= 1e-7 * len(a):
        return None
    return res.x


def _fit_row(fit, label, sample: str) -> dict:
    return {"period": label, "sample": sample, "n_obs": int(fit.nobs),
            "n_treated": int(fit.model.endog.sum()), "pseudo_r2": float(fit.prsquared),
            "lr_chi2": float(fit.llr), "lr_df": int(fit.df_model),
            "lr_p": float(fit.llr_pvalue), "converged": bool(fit.mle_retvals["converged"])}


def _coef_frame(fit, label, sample: str) -> pd.DataFrame:
    names = ["const", *fit.model.exog_names[1:]]
    return pd.DataFrame({"period": label, "sample": sample, "term": names,
                         "coef": fit.params, "se": fit.bse, "z": fit.tvalues, "p": fit.pvalues})


# ---------------------------------------------------------------------- matching
def _nearest(dt: np.ndarray, dc: np.ndarray, k: int, replacement: bool, width: float | None,
             rng: np.random.Generator) -> np.ndarray:
    """(n_treated, n_control) 0/1 matrix of nearest-neighbour matches. One score per row,
    so a dense distance matrix per period is exact and small (no tree needed)."""
    dist = np.abs(dt[:, None] - dc[None, :])
    out = np.zeros_like(dist)
    allowed = np.ones_like(dist, bool) if width is None else dist <= width
    if replacement:
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        rows = np.arange(len(dt))[:, None]
        out[rows, order] = allowed[rows, order]
        return out
    free = np.ones(len(dc), bool)
    for i in rng.permutation(len(dt)):
        cand = np.flatnonzero(allowed[i] & free)
        take = cand[np.argsort(dist[i, cand], kind="stable")[:k]]
        out[i, take] = 1.0
        free[take] = False
    return out


def _kernel(pt: np.ndarray, pc: np.ndarray, kernel: str, bandwidth: float) -> np.ndarray:
    u = (pc[None, :] - pt[:, None]) / bandwidth
    if kernel == "gaussian":
        return np.exp(-0.5 * u**2)
    return np.where(np.abs(u) < 1, 0.75 * (1 - u**2), 0.0)


# ---------------------------------------------------------------------- balance
def _balance(X: pd.DataFrame, group: np.ndarray, weight: np.ndarray, times: np.ndarray,
             scores: str) -> pd.DataFrame:
    rows = []
    periods = [(t, times == t) for t in np.unique(times)] + [("all", np.ones(len(times), bool))]
    for label, in_period in periods:
        tr, co = in_period & group, in_period & ~group
        m_tr, m_co = tr & np.isfinite(weight), co & np.isfinite(weight)
        if not tr.any() or not co.any():
            continue
        for c in X.columns:
            x = X[c].to_numpy(float)
            sd = np.sqrt((x[tr].var(ddof=1) + x[co].var(ddof=1)) / 2)
            t_u, p_u = stats.ttest_ind(x[tr], x[co])[:2] if tr.sum() > 1 and co.sum() > 1 \
                else (np.nan, np.nan)
            bias_u = 100 * (x[tr].mean() - x[co].mean()) / sd if sd > 0 else np.nan
            rows.append({"period": label, "covariate": c, "sample": "unmatched",
                         "mean_treated": x[tr].mean(), "mean_control": x[co].mean(),
                         "pct_bias": bias_u, "pct_reduction": np.nan, "t": t_u, "p": p_u,
                         "var_ratio": x[tr].var(ddof=1) / x[co].var(ddof=1)})
            if not m_tr.any() or not m_co.any():
                continue
            w_t, w_c = weight[m_tr], weight[m_co]
            mt, mc = np.average(x[m_tr], weights=w_t), np.average(x[m_co], weights=w_c)
            bias_m = 100 * (mt - mc) / sd if sd > 0 else np.nan
            if w_t.sum() > 1 and w_c.sum() > 1:
                t_m, p_m = ttest_ind(x[m_tr], x[m_co], usevar="pooled", weights=(w_t, w_c))[:2]
            else:
                t_m = p_m = np.nan
            var_t = np.average((x[m_tr] - mt) ** 2, weights=w_t)
            var_c = np.average((x[m_co] - mc) ** 2, weights=w_c)
            reduction = 100 * (1 - abs(bias_m) / abs(bias_u)) if bias_u else np.nan
            rows.append({"period": label, "covariate": c, "sample": "matched",
                         "mean_treated": mt, "mean_control": mc, "pct_bias": bias_m,
                         "pct_reduction": reduction, "t": float(t_m), "p": float(p_m),
                         "var_ratio": var_t / var_c if var_c > 0 else np.nan})
    out = pd.DataFrame(rows)
    out["period"] = out["period"].astype(object)
    return out


# ---------------------------------------------------------------------- DID
def _did(panel: Panel, mask: np.ndarray, weight: np.ndarray, name: str, wcol: str | None,
         did_covariates, cluster, level, fe=DEFAULT_FE) -> dict:
    frame = panel.frame.loc[mask].copy()
    if not (frame["treated"] == 1).any() or not (frame["treated"] == 0).any():
        raise MatchingError(f"the {name.replace('_', ' ')} sample has no "
                            f"{'treated' if not (frame['treated'] == 1).any() else 'untreated'} "
                            "rows: no DID can be estimated on it",
                            hint="widen the caliper or bandwidth so that more rows match")
    weights = None
    if wcol is not None:
        w = weight[mask]
        frame[wcol] = w * (frame[panel.weights].to_numpy(float) if panel.weights else 1.0)
        weights = wcol
    sub = panel.with_frame(frame, LogEntry("psm_sample", f"PSM-DID sample {name}",
                                           int(mask.sum())))
    with warnings.catch_warnings():  # units matched in a single period are singletons
        warnings.filterwarnings("ignore", message=".*singleton fixed effect", category=UserWarning)
        res = twfe(sub, fe=fe, covariates=did_covariates, cluster=cluster, weights=weights,
                   level=level)
    row = res.effect().to_dict()
    row.update(group=group_label(sample=name), method="psm_did")
    return row
