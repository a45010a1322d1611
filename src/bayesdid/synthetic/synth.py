"""Synthetic control (Abadie, Diamond & Hainmueller 2010) with placebo inference.

For each treated unit, donor weights ``W`` on the simplex minimise
``(X1 - X0 W)' V (X1 - X0 W)`` over predictors ``X`` (outcome lags, outcome means over
windows, covariate means over windows; each predictor row scaled by its sd across units, as
in ``Synth``), and the diagonal ``V`` is chosen to minimise the pre-period outcome MSPE.

Optimisation (nested, as in ``Synth``; both problems live in
:mod:`bayesdid.synthetic.synth_search`):

* inner: ``W`` on the simplex by Wolfe's minimum-norm-point algorithm (exact);
* outer: ``V`` minimises the outcome MSPE over ``mspe_periods`` (R ``Synth``'s
  ``time.optimize.ssr``; default the pre-period). That loss is strongly multimodal, so the
  search explores box corners, equal, regression-based and seeded random ``V`` and polishes
  the best points of ``n_starts`` distinct donor supports (coordinate grid sweeps +
  Nelder-Mead on ``log V``). It is deterministic given ``random_seed``, and on simulated
  multimodal problems lands within 1% of a 500-start search on >= 95% of them
  (``benchmarks/results/synth_search.md``).

With the default predictors -- every pre-period outcome, equally weighted and unscaled --
the inner problem *is* the pre-period MSPE, so the outer search is skipped (Abadie 2021:
with all lags as predictors ``V`` is immaterial).

Inference: placebo-in-space (each donor in turn treated, the other donors as its pool)
gives post/pre RMSPE ratios and the rank-based permutation p-value
``(1 + #{placebo ratio >= treated ratio}) / (1 + n_placebos)``, optionally dropping
placebos whose pre-RMSPE exceeds ``max_pre_rmspe_ratio`` times the treated unit's. The
standard error in the effects table is the sd of the placebo ATTs (gap rows: the sd of the
placebo gaps in that period) and the interval is ``estimate +/- z * se``, labelled
``interval="placebo"``: a placebo-spread interval under exchangeability of units, not a
confidence interval.
:func:`synth_placebo_time` refits with a fictitious earlier start (placebo-in-time).

Examples
--------
>>> from bayesdid import Panel
>>> from bayesdid.datasets import load, info
>>> panel = Panel.from_frame(load("prop99"), **info("prop99")["panel_kwargs"])
>>> res = synth(panel, placebo=False)
>>> res.weights["California"].nlargest(3).round(2).to_dict()
{'Utah': 0.39, 'Montana': 0.23, 'Nevada': 0.2}
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .donors import DonorPool, donor_pool
from ..errors import ColumnError, DesignError, MissingValueError
from ..panel import Panel
from ..parallel import run_replications
from ..results import EffectResult, group_label, tidy_table
from .synth_search import search_v, simplex_weights

__all__ = ["SynthResult", "simplex_weights", "synth", "synth_placebo_time"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False, repr=False)
class SynthResult(EffectResult):
    """:class:`EffectResult` of :func:`synth` plus weights, paths and placebos.

    Attributes
    ----------
    weights : donor x treated-unit weights.
    predictor_weights : predictor x treated-unit diagonal of ``V``.
    path : long frame ``unit, time, actual, counterfactual, gap, post``.
    placebos : one row per (treated unit, placebo donor): ``pre_rmspe, post_rmspe, ratio,
        att, kept``.
    placebo_gaps : long frame ``unit, placebo, time, gap`` (placebo-in-space gap paths).
    pre_rmspe, rmspe_ratio, p_value : per treated unit (Series).
    """

    weights: pd.DataFrame = field(default_factory=pd.DataFrame)
    predictor_weights: pd.DataFrame = field(default_factory=pd.DataFrame)
    path: pd.DataFrame = field(default_factory=pd.DataFrame)
    placebos: pd.DataFrame = field(default_factory=pd.DataFrame)
    placebo_gaps: pd.DataFrame = field(default_factory=pd.DataFrame)
    pre_rmspe: pd.Series = field(default_factory=pd.Series)
    rmspe_ratio: pd.Series = field(default_factory=pd.Series)
    p_value: pd.Series = field(default_factory=pd.Series)

    def plot(self, ax=None, *, unit=None, **kwargs):
        """Actual vs synthetic path of a treated unit (default the first; see
        :func:`bayesdid.report.synth_plots.synth_path_plot`). Returns a Figure."""
        from ..report.synth_plots import synth_path_plot

        return synth_path_plot(self, unit=unit, ax=ax, **kwargs)


# ---------------------------------------------------------------------- predictors
@dataclass(frozen=True)
class _Spec:
    lags: tuple | None
    means: tuple
    covariates: tuple
    v: object
    n_starts: int
    mspe_periods: tuple | None
    allow_post_mspe: bool = False

    @property
    def default(self) -> bool:
        return self.lags is None and not self.means and not self.covariates

    @property
    def searches_v(self) -> bool:
        return not self.default and isinstance(self.v, str) and self.v == "optimize"


def _period_set(periods, times: np.ndarray, pre: np.ndarray, name: str):
    """Mask and label of a predictor's periods: ``None`` (the pre-period), a ``(start, end)``
    tuple (inclusive window) or a list / set / range / array of periods."""
    if periods is None:
        periods = (times[pre].min(), times[pre].max())
    if isinstance(periods, tuple):
        if len(periods) != 2:
            raise DesignError(
                f"predictor {name!r}: a tuple is a (start, end) window, got {periods!r}",
                column="time", hint="give a set of periods as a list, e.g. [1988, 1990, 1991]")
        a, b = periods
        sel = (times >= a) & (times <= b)
        if not sel.any():
            raise DesignError(f"window {a}-{b} for predictor {name!r} holds no period",
                              column="time")
        return sel, f"{a}-{b}"
    if isinstance(periods, (str, bytes)) or np.ndim(periods) != 1 or len(periods) == 0:
        raise DesignError(f"predictor {name!r}: periods must be a (start, end) tuple or a "
                          f"non-empty list of periods, got {periods!r}", column="time")
    wanted = sorted(set(np.asarray(list(periods)).tolist()))
    unknown = [t for t in wanted if t not in set(times.tolist())]
    if unknown:
        raise DesignError(f"periods {unknown} for predictor {name!r} are not periods of the "
                          f"panel ({times.min()}-{times.max()})", column="time")
    return np.isin(times, wanted), _runs(wanted)


def _runs(periods: list) -> str:
    """``[1988, 1990, 1991, 1992]`` -> ``'1988,1990-1992'`` (runs of consecutive integers)."""
    parts, i = [], 0
    while i < len(periods):
        j = i
        while j + 1 < len(periods) and periods[j + 1] == periods[j] + 1:
            j += 1
        parts.append(f"{periods[i]}" if j == i else f"{periods[i]}-{periods[j]}")
        i = j + 1
    return ",".join(str(p) for p in parts)


def _predictor_matrix(spec: _Spec, times: np.ndarray, Y: np.ndarray, pre: np.ndarray,
                      cov: Mapping[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """(K, units) predictors from the outcome ``Y`` (T, units) and covariates (T, units)."""
    rows, names = [], []
    lags = times[pre] if spec.lags is None and spec.default else (spec.lags or ())
    for t in lags:
        hit = np.flatnonzero(times == t)
        if hit.size == 0 or not pre[hit[0]]:
            raise DesignError(f"predictor lag {t} is not a pre-treatment period "
                              f"(pre-periods: {times[pre].min()}-{times[pre].max()})",
                              column="time")
        rows.append(Y[hit[0]])
        names.append(f"y[{t}]")
    for name, arr, periods in ([("y", Y, w) for w in spec.means]
                               + [(c, cov[c], w) for c, w in spec.covariates]):
        sel, label = _period_set(periods, times, pre, name)
        if name == "y" and (sel & ~pre).any():
            raise DesignError(f"outcome periods {label} reach past the treatment start "
                              f"(post-periods used: {times[sel & ~pre].tolist()})",
                              column="time")
        rows.append(arr[sel].mean(axis=0))
        names.append(f"mean {name}[{label}]")
    return np.vstack(rows), names


def _fit_unit(y: np.ndarray, Y0: np.ndarray, P1: np.ndarray, P0: np.ndarray,
              loss_rows: np.ndarray, spec: _Spec, seed) -> tuple[np.ndarray, np.ndarray, dict]:
    """Weights, V and search facts for one treated series ``y`` (T,) against donors ``Y0``."""
    K = P1.shape[0]
    if spec.default:
        return simplex_weights(P0, P1), np.full(K, 1.0 / K), {}
    # standardise each predictor by its sd across units, as Synth does
    sd = np.concatenate([P1[:, None], P0], axis=1).std(axis=1, ddof=1)
    sd[sd == 0] = 1.0
    X1, X0 = P1 / sd, P0 / sd[:, None]
    if isinstance(spec.v, str) and spec.v == "equal" or K == 1:
        v = np.full(K, 1.0 / K)
        return simplex_weights(X0, X1, v), v, {}
    if not isinstance(spec.v, str):
        v = np.asarray(spec.v, float)
        return simplex_weights(X0, X1, v / v.sum()), v / v.sum(), {}
    found = search_v(X1, X0, y[loss_rows], Y0[loss_rows], n_starts=spec.n_starts,
                     random_seed=seed)
    facts = {"loss": found.loss, "lower_bound": found.lower_bound,
             "n_evaluations": found.n_evaluations,
             "n_supports": found.n_supports, "n_starts": found.n_starts,
             "n_agreed": found.n_agreed, "exact_fit": found.exact_fit}
    return found.w, found.v, facts


def _fit_task(Y: np.ndarray, P: np.ndarray, j: int, donors: np.ndarray, pre: np.ndarray,
              loss_rows: np.ndarray, spec: _Spec, seed) -> dict:
    """One fit (module level so that run_replications can ship it to workers)."""
    w, v, facts = _fit_unit(Y[:, j], Y[:, donors], P[:, j], P[:, donors], loss_rows, spec, seed)
    gap = Y[:, j] - Y[:, donors] @ w
    return {"w": w, "v": v, "gap": gap, "search": facts}


def _rmspe(gap: np.ndarray, mask: np.ndarray) -> float:
    return float(np.sqrt(np.mean(gap[mask] ** 2)))


# ---------------------------------------------------------------------- public API
def synth(panel: Panel, *, treated: Sequence | None = None, donors: Sequence | None = None,
          lags: Sequence | None = None, outcome_means: Sequence = (),
          covariates: Mapping[str, object] | None = None, v: str | Sequence = "optimize",
          n_starts: int = 10, mspe_periods: Sequence | None = None,
          allow_post_mspe: bool = False, placebo: bool = True,
          max_pre_rmspe_ratio: float | None = None, level: float = 0.95,
          workers: int = 1, progress: bool = True, random_seed: int | None = 0,
          _pool: DonorPool | None = None) -> SynthResult:
    """ADH synthetic control for each treated unit, with placebo-in-space inference.

    Parameters
    ----------
    treated, donors : as in :func:`bayesdid.synthetic.donors.donor_pool`.
    lags : pre-period times whose outcome values are predictors. Default: when no
        ``lags``, ``outcome_means`` or ``covariates`` are given, every pre-period outcome,
        equally weighted (W then minimises the pre-period MSPE directly).
    outcome_means : predictors that are means of the outcome, one per entry: a
        ``(start, end)`` tuple (inclusive window) or a list of periods, e.g.
        ``[1988, 1990, 1991, 1992]`` (R Synth's ``special.predictors`` with a period vector).
    covariates : ``{column: periods}`` with periods as in ``outcome_means`` (``None``: the
        whole pre-period); columns must be covariates of the panel. ADH's Prop 99
        specification used lnincome, beer, age15to24 and retprice, which the shipped prop99
        data do not carry.
    v : ``"optimize"`` (V search, :func:`bayesdid.synthetic.synth_search.search_v`),
        ``"equal"`` or explicit predictor weights.
    n_starts : local searches of the V search, each from a distinct donor support found by
        a seeded exploration of corners, equal, regression-based and random V (see
        :mod:`bayesdid.synthetic.synth_search`; with 10, the search landed within 1% of a
        500-start search on >= 95% of simulated multimodal problems).
    mspe_periods : periods whose outcome MSPE chooses V (R Synth's ``time.optimize.ssr``;
        default: every pre-treatment period). Only used by the V search.
    allow_post_mspe : let ``mspe_periods`` include periods at or after the treatment start
        (then V is chosen partly on post-treatment outcomes, which the effect contaminates).
    placebo : run placebo-in-space (every donor as treated).
    max_pre_rmspe_ratio : drop placebos whose pre-RMSPE exceeds this multiple of the treated
        unit's (ADH used 20, 5 and 2); ``None`` keeps all.
    workers : processes for the placebo refits (1 = in this process, fastest for small
        donor pools; see :func:`bayesdid.parallel.run_replications`).
    random_seed : seed of the V search (placebo ``i`` uses ``random_seed + 1 + i``).

    Raises
    ------
    DesignError : more predictors than pre-periods, lags or outcome periods outside the
        pre-period, unknown periods, ``mspe_periods`` after the treatment start (without
        ``allow_post_mspe``) or without a V search, and every check of
        :func:`bayesdid.synthetic.donors.donor_pool`.
    """
    pool = _pool if _pool is not None else donor_pool(panel, treated=treated, donors=donors)
    # periods given as calendar labels ("2011-03") become the panel's period indices
    idx = panel.time_axis.to_indices
    lags, outcome_means, mspe_periods = idx(lags), idx(list(outcome_means)), idx(mspe_periods)
    cov_items = tuple((c, idx(w)) for c, w in (covariates or {}).items())
    if isinstance(v, str) and v not in ("optimize", "equal"):
        raise DesignError(f"v must be 'optimize', 'equal' or a sequence of weights, got {v!r}")
    if not isinstance(v, str):
        arr = np.asarray(v, float)
        if arr.ndim != 1 or not np.isfinite(arr).all() or (arr < 0).any() or not arr.sum() > 0:
            raise DesignError(f"explicit predictor weights v must be non-negative numbers "
                              f"with a positive sum, got {v!r}")
    if isinstance(n_starts, bool) or not isinstance(n_starts, (int, np.integer)) or n_starts < 1:
        raise DesignError(f"n_starts must be a positive integer, got {n_starts!r}")
    spec = _Spec(lags=None if lags is None else tuple(lags), means=tuple(outcome_means),
                 covariates=cov_items, v=v, n_starts=int(n_starts),
                 mspe_periods=None if mspe_periods is None else tuple(mspe_periods),
                 allow_post_mspe=bool(allow_post_mspe))
    if spec.mspe_periods is not None and not spec.searches_v:
        raise DesignError("mspe_periods choose V, but no V is searched (the default "
                          "predictors, or v='equal' / explicit weights)", column="time",
                          hint="give predictors (lags, outcome_means, covariates) with "
                               "v='optimize', or drop mspe_periods")
    units = list(pool.treated_units) + list(pool.donor_units)
    Y = np.column_stack([pool.y_treated, pool.y_donors])
    cov = _covariate_matrices(panel, pool, units, [c for c, _ in cov_items])
    n_tr, times = len(pool.treated_units), pool.times
    donor_idx = np.arange(n_tr, len(units))
    fits, placebo_fits, metas = [], [], []
    for j, unit in enumerate(pool.treated_units):
        pre, post = pool.pre_periods(j), pool.post_periods(j)
        cov_w = {c: _window(w, times, pre) for c, w in cov_items}
        spec_j = dataclasses.replace(spec, covariates=tuple(cov_w.items()))
        P, names = _predictor_matrix(spec_j, times, Y, pre, cov)
        loss_rows = _loss_rows(spec, times, pre, unit)
        _check_dimensions(names, pre, spec, unit, pool.outcome)
        fits.append(_fit_task(Y, P, j, donor_idx, pre, loss_rows, spec_j, random_seed))
        metas.append((unit, pre, post, names))
        if placebo:
            tasks = [(Y, P, d, np.setdiff1d(donor_idx, [d]), pre, loss_rows, spec_j,
                      None if random_seed is None else random_seed + 1 + i)
                     for i, d in enumerate(donor_idx)]
            placebo_fits.append(run_replications(_fit_task, tasks, workers=workers,
                                                 progress=progress,
                                                 desc=f"synth placebos ({unit})"))
    return _assemble(pool, fits, placebo_fits, metas, max_pre_rmspe_ratio, level, spec,
                     random_seed, "synth")


def synth_placebo_time(panel: Panel, fake_start, **kwargs) -> SynthResult:
    """Placebo-in-time: refit on the periods before the real start, treated from ``fake_start``.

    Keyword arguments go to :func:`synth`. The ATT should be near zero when the synthetic
    control is sound; its placebo-in-space p-value says how unusual it is.
    """
    pool = donor_pool(panel, treated=kwargs.pop("treated", None), donors=kwargs.pop("donors", None))
    res = synth(panel, _pool=time_placebo_pool(pool, panel.time_axis.to_indices(fake_start)),
                **kwargs)
    table = res.table.assign(method="synth_placebo_time")
    return dataclasses.replace(res, table=table, method="synth_placebo_time",
                               info=dict(res.info, fake_start=fake_start))


def time_placebo_pool(pool: DonorPool, fake_start) -> DonorPool:
    """The donor pool cut before the real start, with ``fake_start`` as treatment start."""
    real = float(pool.start.min())
    keep = pool.times < real
    if not (pool.times[keep].min() < fake_start < real):
        raise DesignError(f"fake_start must lie strictly inside the pre-period "
                          f"({pool.times[keep].min()}-{real}), got {fake_start}",
                          column="time")
    return dataclasses.replace(pool, times=pool.times[keep], y_treated=pool.y_treated[keep],
                               y_donors=pool.y_donors[keep],
                               start=np.full(len(pool.start), float(fake_start)))


def _window(w, times, pre):
    return (times[pre].min(), times[pre].max()) if w is None else w


def _loss_rows(spec: _Spec, times: np.ndarray, pre: np.ndarray, unit) -> np.ndarray:
    """Periods of the outer MSPE (R Synth's ``time.optimize.ssr``) for one treated unit."""
    if spec.mspe_periods is None:
        return pre
    wanted = sorted(set(np.asarray(spec.mspe_periods).tolist()))
    unknown = [t for t in wanted if t not in set(times.tolist())]
    if unknown:
        raise DesignError(f"mspe_periods {unknown} are not periods of the panel "
                          f"({times.min()}-{times.max()})", column="time")
    rows = np.isin(times, wanted)
    late = times[rows & ~pre].tolist()
    if late and not spec.allow_post_mspe:
        raise DesignError(
            f"mspe_periods {late} are at or after the treatment start of {unit!r} "
            f"(its pre-period ends {times[pre].max()}): V would be chosen on outcomes the "
            "treatment affects", column="time",
            hint="keep mspe_periods in the pre-period, or pass allow_post_mspe=True "
                 "if that is what you want")
    return rows


def _check_dimensions(names, pre, spec, unit, outcome) -> None:
    if not spec.default and len(names) > int(pre.sum()):
        raise DesignError(
            f"{len(names)} predictors but only {int(pre.sum())} pre-treatment periods for "
            f"{unit!r}: V cannot be chosen on the pre-period fit", column=outcome,
            hint="use fewer lags / covariates, or the default predictors (all pre-period "
                 "outcomes)")


def _covariate_matrices(panel, pool, units, cols) -> dict[str, np.ndarray]:
    out = {}
    for c in cols:
        if c not in panel.covariates:
            raise ColumnError(f"covariate {c!r} is not a covariate of the panel "
                              f"({list(panel.covariates)})", column=c,
                              hint="pass it as Panel.from_frame(..., covariates=[...])")
        wide = panel.frame.pivot(index=panel.time, columns=panel.unit, values=c)
        wide = wide.reindex(index=pool.times, columns=units).astype(float)
        if wide.isna().any().any():
            rows = wide.isna().stack().rename("m").reset_index().query("m").drop(columns="m")
            raise MissingValueError(f"covariate {c!r} is missing for some unit-periods",
                                    column=c, rows=rows)
        out[c] = wide.to_numpy()
    return out


def _search_note(spec: _Spec, fits) -> str:
    if not spec.searches_v:
        return "none"
    facts = [f["search"] for f in fits]
    agreed = ", ".join("exact fit (treated unit inside the donors' hull: W = the exact "
                       "predictor fit with the best outcome MSPE)" if f["exact_fit"]
                       else f"{f['n_agreed']}/{f['n_starts']}" for f in facts)
    return (f"nested: Wolfe inner, outer over log V in [1e-8, 1]: corners + equal + "
            f"regression V + random exploration, {spec.n_starts} supports polished; "
            f"{sum(f['n_evaluations'] for f in facts)} inner solves; local searches "
            f"within 1% of the best: {agreed}")


def _assemble(pool, fits, placebo_fits, metas, max_ratio, level, spec, seed, method):
    z = stats.norm.ppf(0.5 + level / 2)
    times, n_tr = pool.times, len(pool.treated_units)
    rows, paths, plac_rows, plac_gaps = [], [], [], []
    pre_rmspe, ratio, pval, ses = {}, {}, {}, {}
    several = n_tr > 1
    for j, (fit, (unit, pre, post, names)) in enumerate(zip(fits, metas)):
        gap = fit["gap"]
        att = float(gap[post].mean())
        pre_rmspe[unit] = _rmspe(gap, pre)
        ratio[unit] = _rmspe(gap, post) / pre_rmspe[unit] if pre_rmspe[unit] > 0 else np.inf
        paths.append(pd.DataFrame({"unit": unit, "time": times, "actual": pool.y_treated[:, j],
                                       "counterfactual": pool.y_treated[:, j] - gap, "gap": gap,
                                       "post": post}))
        gap_sd = np.full(len(times), np.nan)
        se = np.nan
        if placebo_fits:
            p_gaps = np.column_stack([f["gap"] for f in placebo_fits[j]])
            p_pre = np.sqrt(np.mean(p_gaps[pre] ** 2, axis=0))
            p_post = np.sqrt(np.mean(p_gaps[post] ** 2, axis=0))
            p_ratio = np.where(p_pre > 0, p_post / np.where(p_pre > 0, p_pre, 1), np.inf)
            kept = (np.ones(len(p_pre), bool) if max_ratio is None
                    else p_pre <= max_ratio * pre_rmspe[unit])
            p_att = p_gaps[post].mean(axis=0)
            pval[unit] = (1 + np.sum(p_ratio[kept] >= ratio[unit])) / (1 + kept.sum())
            if kept.sum() >= 2:
                se = float(p_att[kept].std(ddof=1))
                gap_sd = p_gaps[:, kept].std(axis=1, ddof=1)
            plac_rows.append(pd.DataFrame({"unit": unit, "placebo": list(pool.donor_units),
                                               "pre_rmspe": p_pre, "post_rmspe": p_post,
                                               "ratio": p_ratio, "att": p_att, "kept": kept}))
            plac_gaps.append(pd.DataFrame({
                "unit": unit, "placebo": np.repeat(list(pool.donor_units), len(times)),
                "time": np.tile(times, len(pool.donor_units)), "gap": p_gaps.T.ravel()}))
        ses[unit] = se
        base = {"level": level, "interval": "placebo", "method": method}
        if several:
            rows.append(dict(base, estimand="att", group=group_label(unit=unit), estimate=att,
                             se_or_sd=se, lower=att - z * se, upper=att + z * se,
                             n_obs=int(post.sum())))
        for t, g, s in zip(times, gap, gap_sd):
            tn = pool.time_name(t)
            grp = group_label(unit=unit, t=tn) if several else group_label(t=tn)
            rows.append(dict(base, estimand="gap", group=grp, estimate=g, se_or_sd=s,
                             lower=g - z * s, upper=g + z * s, n_obs=1))
    atts = [float(f["gap"][m[2]].mean()) for f, m in zip(fits, metas)]
    att = float(np.mean(atts))
    se = float(np.sqrt(np.sum(np.square(list(ses.values())))) / n_tr)
    n_post = int(sum(m[2].sum() for m in metas))
    rows.insert(0, {"estimand": "att", "group": group_label(), "estimate": att, "se_or_sd": se,
                        "lower": att - z * se, "upper": att + z * se, "level": level,
                        "interval": "placebo", "method": method, "n_obs": n_post})
    units = list(pool.treated_units)
    info = {"p_value": pval, "rmspe_ratio": ratio, "pre_rmspe": pre_rmspe,
                "predictors": metas[0][3], "n_donors": pool.n_donors, "treated_units": units,
                "max_pre_rmspe_ratio": max_ratio, "random_seed": seed,
                "v_search": _search_note(spec, fits),
                "v_search_details": [f["search"] for f in fits] if spec.searches_v else [],
                "interval_note": "placebo-in-space: se = sd of placebo ATTs, estimate +/- z*se; "
                              "overall se = sqrt(sum unit se^2) / n_treated"}
    return SynthResult(
        table=tidy_table(rows), method=method, info=info,
        weights=pd.DataFrame(np.column_stack([f["w"] for f in fits]),
                             index=list(pool.donor_units), columns=units),
        predictor_weights=pd.DataFrame({u: pd.Series(f["v"], index=m[3])
                                        for u, f, m in zip(units, fits, metas)}),
        path=pd.concat(paths, ignore_index=True),
        placebos=pd.concat(plac_rows, ignore_index=True) if plac_rows else pd.DataFrame(),
        placebo_gaps=pd.concat(plac_gaps, ignore_index=True) if plac_gaps else pd.DataFrame(),
        pre_rmspe=pd.Series(pre_rmspe), rmspe_ratio=pd.Series(ratio),
        p_value=pd.Series(pval, dtype=float))
