"""Regression control method (Hsiao, Ching & Wan 2012) with an information-criterion subset.

For each treated unit, the pre-period outcome is regressed (OLS with intercept) on the
outcomes of a subset of control units; the fitted equation predicts the counterfactual
after the start, and the treatment effect is ``actual - predicted``. The subset is chosen
in HCW's two steps: (1) for every size ``k`` the subset with the best R^2, (2) the size
that minimises AICc (default; Hurvich-Tsai, as HCW 2012 use), AIC or BIC, with
``m = k + 1`` coefficients and ``T1`` pre-periods:

* ``aicc = T1 ln(RSS/T1) + T1 (1 + m/T1) / (1 - (m + 2)/T1)``  (needs ``m <= T1 - 3``)
* ``aic  = T1 ln(RSS/T1) + 2 m``, ``bic = T1 ln(RSS/T1) + m ln T1``.

Best-subset search: exhaustive (exact) for every size with ``C(J, k) <= max_exhaustive``
subsets, scored in vectorised batches through the Gram matrix; beyond that greedy -- the
best subset of size ``k - 1`` plus the best added donor, then sequential replacement (swap
one member for one non-member while RSS falls), as in ``leaps``' ``seqrep``. Which sizes were
exact is in ``result.selection["search"]``.

Inference on the mean post-period gap ``ATE`` (``se=``):

* ``"cv"`` (default): the prediction variance below with the error variance ``s^2``
  replaced by the leave-one-out cross-validated MSE of the *whole procedure* (the subset
  search is redone without each pre-period), ``t`` with ``T1 - 1`` df. After a best-subset
  search over ~26 donors with ~13 pre-periods the in-sample ``s^2`` is far too small (on a
  3-factor simulation: in-sample s = 0.044, true noise 0.1, actual ATE error rmse 0.16;
  95% coverage 44% with ``"prediction"``, 97% with ``"cv"``).
* ``"prediction"`` (Li & Bell 2017): ``se^2 = s^2 / T2 + xbar' Cov(b) xbar`` with
  ``s^2`` the pre-period residual variance, ``xbar`` the post-period mean of the regressors
  (with 1); exact under iid errors given the subset, ``t`` with ``T1 - m`` df. Counts the
  estimation error of the counterfactual, which matters with a dozen pre-periods.
* ``"hac"``: Newey-West sd of the post-period gaps (Bartlett, ``floor(4 (T2/100)^(2/9))``
  lags, at least 1) -- HCW report the mean gap over its serially-correlation-robust sd.
* ``"simple"``: ``sd(post gaps) / sqrt(T2)``, ``t`` with ``T2 - 1`` df.

The ``t_stat`` is ``ATE / se``. With several treated units each is fitted separately and
the pooled ATT is their mean, with ``se = sqrt(sum se_j^2) / n`` (units' errors treated as
independent) and a normal interval.

Examples
--------
>>> from bayesdid import Panel
>>> from bayesdid.datasets import load, info
>>> panel = Panel.from_frame(load("prop99"), **info("prop99")["panel_kwargs"])
>>> res = regression_control(panel, se="prediction", progress=False)
>>> res.coefficients["California"].index[0], bool(res.effect()["estimate"] < 0)
('const', True)
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from math import comb
from typing import Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from tqdm.auto import tqdm

from .donors import DonorPool, donor_pool
from ..errors import DesignError
from ..panel import Panel
from ..results import EffectResult, group_label, tidy_table
from .synth import time_placebo_pool

__all__ = [
    "RegressionControlResult",
    "best_subsets",
    "regression_control",
    "regression_control_placebo_time",
]

logger = logging.getLogger(__name__)

Criterion = Literal["aicc", "aic", "bic"]


@dataclass(frozen=True, eq=False, repr=False)
class RegressionControlResult(EffectResult):
    """:class:`EffectResult` of :func:`regression_control` plus fits and selection.

    Attributes
    ----------
    path : long frame ``unit, time, actual, counterfactual, gap, post``.
    coefficients : per treated unit, a Series ``const`` + selected donors.
    selection : per unit and size: ``unit, size, subset, rss, r2, criterion, search,
        selected``.
    t_stat : per unit ``ATE / se``.
    """

    path: pd.DataFrame = field(default_factory=pd.DataFrame)
    coefficients: dict = field(default_factory=dict)
    selection: pd.DataFrame = field(default_factory=pd.DataFrame)
    t_stat: pd.Series = field(default_factory=pd.Series)

    def plot(self, ax=None, *, unit=None, **kwargs):
        """Actual vs fitted counterfactual path of a treated unit (default the first; see
        :func:`bayesdid.report.synth_plots.synth_path_plot`). Returns a Figure."""
        from ..report.synth_plots import synth_path_plot

        return synth_path_plot(self, unit=unit, ax=ax, **kwargs)


# ------------------------------------------------------------------- best subsets
def _rss_batch(G: np.ndarray, c: np.ndarray, yy: float, subsets: np.ndarray) -> np.ndarray:
    Gs = G[subsets[:, :, None], subsets[:, None, :]]
    cs = c[subsets]
    ridge = 1e-10 * np.trace(G) / len(G)  # keeps exactly collinear subsets solvable
    Gs = Gs + ridge * np.eye(subsets.shape[1])
    beta = np.linalg.solve(Gs, cs[..., None])[..., 0]
    return yy - np.einsum("bk,bk->b", cs, beta)


def best_subsets(y: np.ndarray, X: np.ndarray, max_size: int, *, max_exhaustive: int = 50_000,
                 chunk: int = 20_000) -> list[tuple[tuple[int, ...], float, str]]:
    """Best-RSS subset of columns of ``X`` for each size 1..``max_size`` (with intercept).

    Returns ``[(subset, rss, "exhaustive" | "greedy"), ...]`` by size.

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 6))
    >>> y = 2 * X[:, 1] - X[:, 4] + 0.01 * rng.normal(size=20)
    >>> best_subsets(y, X, 2)[1][0]
    (1, 4)
    """
    Xc = X - X.mean(axis=0)
    yc = y - y.mean()
    G, c, yy = Xc.T @ Xc, Xc.T @ yc, float(yc @ yc)
    J = X.shape[1]
    out: list[tuple[tuple[int, ...], float, str]] = []
    for k in range(1, max_size + 1):
        if comb(J, k) <= max_exhaustive:
            best, best_rss = None, np.inf
            combos = _combinations(J, k)
            for start in range(0, len(combos), chunk):
                block = combos[start:start + chunk]
                rss = _rss_batch(G, c, yy, block)
                i = int(np.argmin(rss))
                if rss[i] < best_rss:
                    best, best_rss = tuple(int(v) for v in block[i]), float(rss[i])
            out.append((best, best_rss, "exhaustive"))
        else:
            prev = list(out[-1][0])
            rest = np.array([j for j in range(J) if j not in prev])
            cand = np.column_stack([np.tile(prev, (len(rest), 1)), rest])
            rss = _rss_batch(G, c, yy, cand)
            subset = list(cand[int(np.argmin(rss))])
            subset, best_rss = _replace(G, c, yy, subset, float(rss.min()), J)
            out.append((tuple(sorted(int(v) for v in subset)), best_rss, "greedy"))
    return out


@lru_cache(maxsize=32)
def _combinations(J: int, k: int) -> np.ndarray:
    out = np.array(list(itertools.combinations(range(J), k)), dtype=np.int32)
    out.setflags(write=False)
    return out


def _replace(G, c, yy, subset: list, rss: float, J: int) -> tuple[list, float]:
    """Sequential replacement: best single swap while it lowers RSS."""
    while True:
        others = [j for j in range(J) if j not in subset]
        if not others:
            return subset, rss
        cands = []
        for pos in range(len(subset)):
            for j in others:
                s = subset.copy()
                s[pos] = j
                cands.append(s)
        arr = np.array(cands, dtype=int)
        vals = _rss_batch(G, c, yy, arr)
        i = int(np.argmin(vals))
        if vals[i] >= rss * (1 - 1e-12):
            return subset, rss
        subset, rss = list(arr[i]), float(vals[i])


def _criterion(rss: float, n: int, m: int, kind: str) -> float:
    base = n * np.log(max(rss, 1e-300) / n)
    if kind == "aicc":
        return base + n * (1 + m / n) / (1 - (m + 2) / n)
    if kind == "aic":
        return base + 2 * m
    return base + m * np.log(n)


# ------------------------------------------------------------------------ public API
def regression_control(panel: Panel, *, treated: Sequence | None = None,
                       donors: Sequence | None = None, criterion: Criterion | None = "aicc",
                       max_size: int | None = None, max_exhaustive: int = 50_000,
                       se: Literal["cv", "prediction", "hac", "simple"] = "cv",
                       level: float = 0.95, progress: bool = True,
                       _pool: DonorPool | None = None) -> RegressionControlResult:
    """Hsiao-Ching-Wan regression control for each treated unit, plus the pooled ATT.

    Parameters
    ----------
    treated, donors : as in :func:`bayesdid.synthetic.donors.donor_pool`.
    criterion : ``"aicc"`` (default), ``"aic"``, ``"bic"``; ``None`` regresses on every
        donor (no selection; needs more pre-periods than donors + 1).
    max_size : largest subset size searched (default: the most the pre-period allows).
    max_exhaustive : exhaustive search for sizes with at most this many subsets.
    se : ``"cv"`` (default), ``"prediction"``, ``"hac"`` or ``"simple"`` (module docstring).
    progress : a progress bar over treated units.

    Raises
    ------
    DesignError : more regressors than pre-periods allow (too few pre-periods for the
        criterion, ``max_size`` too large, or ``criterion=None`` with too many donors), and
        every check of :func:`bayesdid.synthetic.donors.donor_pool`.
    """
    if criterion not in ("aicc", "aic", "bic", None):
        raise DesignError(f"criterion must be 'aicc', 'aic', 'bic' or None, got {criterion!r}")
    if se not in ("cv", "prediction", "hac", "simple"):
        raise DesignError(f"se must be 'cv', 'prediction', 'hac' or 'simple', got {se!r}")
    pool = _pool if _pool is not None else donor_pool(panel, treated=treated, donors=donors)
    z = stats.norm.ppf(0.5 + level / 2)
    several = len(pool.treated_units) > 1
    rows, paths, sel_rows, coefs, tstats, ates, ses, dofs = [], [], [], {}, {}, [], [], []
    donors_ = list(pool.donor_units)
    for j, unit in enumerate(tqdm(pool.treated_units, desc="regression control",
                                  disable=not progress)):
        pre, post = pool.pre_periods(j), pool.post_periods(j)
        y, X = pool.y_treated[:, j], pool.y_donors
        T1 = int(pre.sum())
        subset, table = _select(y[pre], X[pre], criterion, max_size, max_exhaustive, unit,
                                pool.outcome, donors_)
        sel_rows.append(table)
        design = sm.add_constant(X[:, subset], has_constant="add")
        fit = sm.OLS(y[pre], design[pre]).fit()
        pred = design @ fit.params
        gap = y - pred
        T2 = int(post.sum())
        ate = float(gap[post].mean())
        scale = fit.scale
        if se == "cv":
            scale = _cv_mse(y[pre], X[pre], criterion, max_size, max_exhaustive)
        se_j, dof = _ate_se(fit, design[post], gap[post], se, scale)
        q = stats.t.ppf(0.5 + level / 2, dof) if dof else z
        coefs[unit] = pd.Series(fit.params, index=["const"] + [donors_[i] for i in subset])
        tstats[unit] = ate / se_j if se_j > 0 else np.nan
        ates.append(ate)
        ses.append(se_j)
        dofs.append(dof)
        paths.append(pd.DataFrame({"unit": unit, "time": pool.times, "actual": y, "counterfactual": pred,
                                       "gap": gap, "post": post}))
        base = {"level": level, "interval": "confidence", "method": "regression_control"}
        if several:
            rows.append(dict(base, estimand="att", group=group_label(unit=unit), estimate=ate,
                             se_or_sd=se_j, lower=ate - q * se_j, upper=ate + q * se_j,
                             n_obs=T2, t_stat=tstats[unit]))
        # per-period prediction interval: s^2 + x_t' Cov(b) x_t, t with T1 - m df
        cov = fit.cov_params() * (scale / fit.scale)
        gdf = T1 - 1 if se == "cv" else fit.df_resid
        for t, g, x in zip(pool.times[post], gap[post], design[post]):
            s = float(np.sqrt(scale + x @ cov @ x))
            qg = stats.t.ppf(0.5 + level / 2, gdf)
            tn = pool.time_name(t)
            grp = group_label(unit=unit, t=tn) if several else group_label(t=tn)
            rows.append(dict(base, estimand="gap", group=grp, estimate=g, se_or_sd=s,
                             lower=g - qg * s, upper=g + qg * s, n_obs=1, t_stat=g / s))
        logger.debug("%s: %d donors selected of %d, T1=%d", unit, len(subset), len(donors_), T1)
    ate = float(np.mean(ates))
    se_all = float(np.sqrt(np.sum(np.square(ses))) / len(ses))
    dof = None if several else dofs[0]
    q = stats.t.ppf(0.5 + level / 2, dof) if dof else z
    n_post = int(sum(pool.post_periods(j).sum() for j in range(len(pool.treated_units))))
    rows.insert(0, {"estimand": "att", "group": group_label(), "estimate": ate, "se_or_sd": se_all,
                        "lower": ate - q * se_all, "upper": ate + q * se_all, "level": level,
                        "interval": "confidence", "method": "regression_control", "n_obs": n_post,
                        "t_stat": ate / se_all if se_all > 0 else np.nan})
    info = dict(criterion=criterion, se_method=se, treated_units=list(pool.treated_units),
                n_donors=pool.n_donors, t_stat=tstats, unit_df=dict(zip(coefs, dofs)),
                **({} if dof is None else {"df": dof}),
                selected={u: list(c.index[1:]) for u, c in coefs.items()},
                interval_note="unit rows: t (prediction/simple) or normal (hac); pooled row "
                              "with several units: normal, se = sqrt(sum se_j^2)/n")
    return RegressionControlResult(
        table=tidy_table(rows), method="regression_control", info=info,
        path=pd.concat(paths, ignore_index=True), coefficients=coefs,
        selection=pd.concat(sel_rows, ignore_index=True), t_stat=pd.Series(tstats))


def regression_control_placebo_time(panel: Panel, fake_start, **kwargs) -> RegressionControlResult:
    """Placebo-in-time (HCW / the pilot-zone paper): refit on the periods before the real
    start with ``fake_start`` as the start; the ATE should be near zero.
    Keyword arguments go to :func:`regression_control`."""
    pool = donor_pool(panel, treated=kwargs.pop("treated", None), donors=kwargs.pop("donors", None))
    res = regression_control(
        panel, _pool=time_placebo_pool(pool, panel.time_axis.to_indices(fake_start)), **kwargs)
    return dataclasses.replace(res, table=res.table.assign(method="regression_control_placebo_time"),
                               method="regression_control_placebo_time",
                               info=dict(res.info, fake_start=fake_start))


def _select(y, X, criterion, max_size, max_exhaustive, unit, outcome, donors):
    T1, J = X.shape
    if criterion is None:
        if donors is None:  # a cross-validation fold: no checks, no table
            return list(range(J)), None
        if J + 1 >= T1:
            raise DesignError(
                f"regressing {unit!r} on all {J} donors needs more than {J + 1} pre-periods; "
                f"it has {T1}", column=outcome,
                hint="use criterion='aicc' (subset selection) or fewer donors=[...]")
        full = tuple(range(J))
        rss = float(sm.OLS(y, sm.add_constant(X, has_constant="add")).fit().ssr)
        table = pd.DataFrame([{"unit": unit, "size": J, "subset": list(donors), "rss": rss,
                                   "r2": 1 - rss / np.sum((y - y.mean()) ** 2), "criterion": np.nan,
                                   "search": "all", "selected": True}])
        return list(full), table
    cap = _cap(T1, J, criterion)
    if cap < 1:
        raise DesignError(
            f"{unit!r} has {T1} pre-periods: too few to fit even one donor by {criterion} "
            f"(needs {5 if criterion == 'aicc' else 3})", column=outcome,
            hint="use a longer pre-period or criterion='aic'/'bic'")
    if max_size is not None:
        if max_size > cap:
            raise DesignError(
                f"max_size={max_size} regressors is more than the {T1} pre-periods of "
                f"{unit!r} allow under {criterion} (at most {cap})", column=outcome,
                hint=f"use max_size <= {cap}")
        cap = max_size
    found = best_subsets(y, X, cap, max_exhaustive=max_exhaustive)
    crit = [_criterion(rss, T1, len(s) + 1, criterion) for s, rss, _ in found]
    best = int(np.argmin(crit))
    if donors is None:
        return list(found[best][0]), None
    tss = float(np.sum((y - y.mean()) ** 2))
    table = pd.DataFrame([{"unit": unit, "size": len(s), "subset": [donors[i] for i in s], "rss": rss,
                               "r2": 1 - rss / tss if tss > 0 else np.nan, "criterion": cr,
                               "search": how, "selected": i == best}
                          for i, ((s, rss, how), cr) in enumerate(zip(found, crit))])
    return list(found[best][0]), table


def _cv_mse(y, X, criterion, max_size, max_exhaustive) -> float:
    """Leave-one-out MSE of the whole procedure (subset search redone in every fold)."""
    T1 = len(y)
    errors = np.empty(T1)
    for i in range(T1):
        keep = np.arange(T1) != i
        sub, _ = _select(y[keep], X[keep], criterion,
                         None if max_size is None else min(max_size, _cap(T1 - 1, X.shape[1],
                                                                          criterion)),
                         max_exhaustive, "", "", None)
        D = sm.add_constant(X[:, sub], has_constant="add")
        beta = np.linalg.lstsq(D[keep], y[keep], rcond=None)[0]
        errors[i] = y[i] - D[i] @ beta
    return float(np.mean(errors ** 2))


def _cap(T1: int, J: int, criterion) -> int:
    return min(J, T1 - 4 if criterion == "aicc" else T1 - 2)


def _ate_se(fit, design_post: np.ndarray, gap_post: np.ndarray, kind: str, scale: float):
    T2 = len(gap_post)
    if kind in ("prediction", "cv"):
        xbar = design_post.mean(axis=0)
        var = scale / T2 + float(xbar @ fit.cov_params() @ xbar) * scale / fit.scale
        return float(np.sqrt(var)), float(len(fit.model.endog) - 1 if kind == "cv"
                                          else fit.df_resid)
    if T2 < 2:
        raise DesignError(f"se='{kind}' needs at least two post-treatment periods",
                          column="time", hint="use se='prediction'")
    if kind == "simple":
        return float(gap_post.std(ddof=1) / np.sqrt(T2)), float(T2 - 1)
    e = gap_post - gap_post.mean()
    lags = max(1, int(np.floor(4 * (T2 / 100) ** (2 / 9))))
    var = e @ e / T2
    for lag in range(1, min(lags, T2 - 1) + 1):
        var += 2 * (1 - lag / (lags + 1)) * (e[lag:] @ e[:-lag]) / T2
    return float(np.sqrt(max(var, 0.0) / T2)), None
