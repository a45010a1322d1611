"""DID on an estimated efficiency outcome, with the efficiency's uncertainty propagated.

Eco-efficiency is measured (by a frontier), not observed. :func:`efficiency_did` runs any
DID estimator of the toolkit on ``M`` posterior draws of the efficiency panel and combines
the ``M`` fits:

- classical estimators (:class:`EffectResult` with standard errors): Rubin's rules,
  ``T = W + (1 + 1/M) B`` (within- and between-draw variance) with the Barnard-Rubin
  (1999) degrees of freedom when the estimator records its own (``info['df']``);
- Bayesian estimators (:class:`BayesResult`): the posterior draws of every fit are pooled
  (a mixture over the efficiency posterior), summarised by mean, sd and HDI.

It also fits the estimator once on the posterior mean efficiency, the *naive* analysis
that treats efficiency as known, and reports both intervals and their width ratio.

Panel frontiers draw one ``u_i`` per unit and draw, so a unit's whole efficiency path moves
together from draw to draw. Unit effects remove most of that movement: under BC92 decay the
DID keeps only the part that changes with ``exp(-eta (t - T_i))``, and under time-invariant
inefficiency nothing is left (every refit's effect is zero; a warning says so).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import arviz_stats as azs
import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from ..bayes.result import BayesResult
from ..errors import BayesDidError, ColumnError, IntervalError
from ..panel import Panel
from ..results import EffectResult, check_interval, check_level, tidy_table

logger = logging.getLogger(__name__)

__all__ = ["PropagatedDiD", "PropagatedDiDResult", "efficiency_did", "pool_draws", "rubin_combine"]


@dataclass(frozen=True, eq=False, repr=False)
class PropagatedDiDResult(EffectResult):
    """Effects with the efficiency uncertainty propagated (``table``), the naive fit on the
    posterior mean efficiency (``naive``), and :meth:`comparison` of the two."""

    naive: EffectResult | None = field(default=None, repr=False)

    def effects(self, level: float | None = None, interval: str | None = None) -> pd.DataFrame:
        """The propagated effects, combined at one level (another raises
        :class:`~bayesdid.errors.IntervalError` naming it)."""
        check_level(level)
        check_interval(self, interval, dict.fromkeys(self.table["interval"]))
        if level is not None and not np.allclose(self.table["level"], level):
            raise IntervalError("the propagated intervals were combined at level "
                                f"{self.table['level'].iloc[0]} only, not {level}; "
                                "rerun efficiency_did(level=...)", column="level")
        return self.table.copy()

    def plot(self, ax=None, **kwargs):
        """Forest plot of the naive fit beside the propagated one (every non-event-time
        row), so the widening of the intervals shows."""
        from ..report.plots import forest_plot

        lvl = float(self.table["level"].iloc[0])
        both = pd.concat([self.naive.effects(level=lvl).assign(method="naive"),
                          self.table.assign(method="propagated")], ignore_index=True)
        both = both[both["estimand"] != "event_time"]
        kwargs.setdefault("title", "naive vs propagated efficiency uncertainty")
        return forest_plot(both, ax=ax, **kwargs)

    def comparison(self) -> pd.DataFrame:
        """Naive vs propagated, per (estimand, group): estimates, intervals and
        ``width_ratio`` = propagated width / naive width."""
        keys = ["estimand", "group"]
        prop = self.table[keys + ["estimate", "lower", "upper"]]
        lvl = float(self.table["level"].iloc[0])
        naive = self.naive.effects(level=lvl)[keys + ["estimate", "lower", "upper"]].rename(
            columns={"estimate": "naive_estimate", "lower": "naive_lower",
                     "upper": "naive_upper"})
        out = naive.merge(prop, on=keys, how="inner")
        out["width_ratio"] = ((out["upper"] - out["lower"])
                              / (out["naive_upper"] - out["naive_lower"]))
        return out


#: the name before 0.2 (kept for one release)
PropagatedDiD = PropagatedDiDResult


def rubin_combine(estimates: np.ndarray, ses: np.ndarray, level: float = 0.95,
                  df_complete: float | None = None) -> dict[str, float]:
    """Rubin's rules for ``M`` point estimates and standard errors.

    >>> r = rubin_combine(np.array([1.0, 1.2, 0.8]), np.array([0.1, 0.1, 0.1]))
    >>> round(r["estimate"], 6), round(r["se"], 4)
    (1.0, 0.2517)
    """
    est, se = np.asarray(estimates, float), np.asarray(ses, float)
    n = est.size
    if n < 2:
        raise BayesDidError("Rubin's rules need at least two draws (M >= 2)")
    w, b = float(np.mean(se**2)), float(np.var(est, ddof=1))
    total = w + (1 + 1 / n) * b
    gamma = (1 + 1 / n) * b / total if total > 0 else 0.0
    df = (n - 1) / gamma**2 if gamma > 0 else np.inf
    if df_complete:  # Barnard-Rubin small-sample degrees of freedom
        df_obs = (df_complete + 1) / (df_complete + 3) * df_complete * (1 - gamma)
        df = 1 / (1 / df + 1 / df_obs)
    q = stats.t.ppf(0.5 + level / 2, df) if np.isfinite(df) else stats.norm.ppf(0.5 + level / 2)
    mean, sd = float(np.mean(est)), float(np.sqrt(total))
    return {"estimate": mean, "se": sd, "lower": mean - q * sd, "upper": mean + q * sd, "df": float(df),
                "within": w, "between": b, "fraction_missing": float(gamma)}


def pool_draws(draws: list[np.ndarray], level: float = 0.95) -> dict[str, float]:
    """Mixture of posteriors: pool the draws of ``M`` fits, summarise mean, sd and HDI.

    >>> out = pool_draws([np.zeros(100), np.ones(100)])
    >>> out["estimate"]
    0.5
    """
    pooled = np.concatenate([np.asarray(d, float).reshape(-1) for d in draws])
    lo, hi = np.asarray(azs.hdi(pooled, prob=level)).reshape(-1)[:2]
    return {"estimate": float(pooled.mean()), "se": float(pooled.std(ddof=1)), "lower": float(lo),
                "upper": float(hi)}


def _draw_frame(efficiency: Any, n_draws: int, seed: int) -> pd.DataFrame:
    if isinstance(efficiency, pd.DataFrame):
        return efficiency
    if not hasattr(efficiency, "efficiency_draws"):
        raise BayesDidError("efficiency must be a frontier result with efficiency_draws() "
                            "(BayesSFAResult or SFAResult) or a DataFrame of draws indexed "
                            f"by unit and time, got {type(efficiency).__name__}")
    if isinstance(efficiency, BayesResult):
        return efficiency.efficiency_draws()
    return efficiency.efficiency_draws(n_draws=max(n_draws, 200), random_seed=seed)


def _warn_if_constant_within_unit(values: np.ndarray, frame: pd.DataFrame, unit) -> None:
    """A time-invariant frontier gives each unit one efficiency per draw; unit effects
    absorb it and every refit's effect is zero, so say so rather than report a 0 +/- 0."""
    if unit not in frame.columns or not frame[unit].duplicated().any():
        return
    by_unit = pd.DataFrame(values).groupby(pd.factorize(frame[unit])[0])
    if float((by_unit.max() - by_unit.min()).to_numpy().max()) == 0.0:
        warnings.warn(f"the efficiency draws do not change over time within any {unit!r} "
                      "(a time-invariant frontier): a DID with unit effects absorbs them, so "
                      "its effect is 0 in every draw; fit a frontier whose inefficiency can "
                      "move year to year (inefficiency='cross_section')", RuntimeWarning,
                      stacklevel=3)


def efficiency_did(efficiency: Any, data: pd.DataFrame,
                   estimator: Callable[[Panel], EffectResult], *,
                   panel_kwargs: Mapping[str, Any], n_draws: int = 20,
                   outcome: str = "efficiency_hat", level: float = 0.95,
                   random_seed: int | None = 0, progress: bool = True) -> PropagatedDiDResult:
    """Refit a DID on ``n_draws`` posterior draws of an efficiency panel and combine.

    Parameters
    ----------
    efficiency : a :class:`~bayesdid.efficiency.bayes_sfa.BayesSFAResult` (posterior draws), a
        classical :class:`~bayesdid.efficiency.sfa.SFAResult` (draws of ``exp(-u)`` from its
        conditional law at the MLE: prediction uncertainty only), or a DataFrame of draws
        (rows indexed by the unit and time columns, one column per draw).
    data : the panel frame with the unit, time and treatment columns.
    estimator : ``panel -> result``, e.g. ``twfe`` or
        ``lambda p: HierarchicalDiD().fit(p, draws=500, progress=False, random_seed=1)``.
    panel_kwargs : :meth:`Panel.from_frame` arguments (``outcome`` is replaced).
    n_draws : ``M``, the number of efficiency draws refitted.
    outcome : the name given to the efficiency column.

    Examples
    --------
    >>> from bayesdid.did.twfe import twfe
    >>> from bayesdid.datasets import simulate_staggered
    >>> sim = simulate_staggered(n_units=30, years=(2005, 2012), batches={2007: 8},
    ...                          n_covariates=0, random_seed=1)
    >>> rng = np.random.default_rng(0)
    >>> idx = pd.MultiIndex.from_frame(sim.data[["city", "year"]])
    >>> draws = pd.DataFrame(sim.data["eco_eff"].to_numpy()[:, None]
    ...                      + rng.normal(0, 0.02, (len(idx), 50)), index=idx)
    >>> res = efficiency_did(draws, sim.data, twfe, panel_kwargs=sim.panel_kwargs,
    ...                      n_draws=10, progress=False)
    >>> bool(res.comparison()["width_ratio"].iloc[0] > 1)
    True
    """
    if not isinstance(data, pd.DataFrame):
        raise BayesDidError(f"data must be a DataFrame, got {type(data).__name__}")
    if not (isinstance(n_draws, int) and n_draws >= 2):
        raise BayesDidError(f"n_draws must be an integer >= 2, got {n_draws!r}")
    kwargs = dict(panel_kwargs)
    kwargs["outcome"] = outcome
    rng = np.random.default_rng(random_seed)
    draws = _draw_frame(efficiency, n_draws, int(rng.integers(2**31)))
    ids = [n for n in draws.index.names if n is not None]
    absent = [c for c in ids if c not in data.columns]
    if absent or not ids:
        raise ColumnError(f"the efficiency draws are indexed by {ids}, not columns of data",
                          column=absent[0] if absent else None,
                          hint="index the draws by the panel's unit and time columns")
    frame = data.drop(columns=[outcome], errors="ignore")
    keys = pd.MultiIndex.from_frame(frame[ids])
    pos = draws.index.get_indexer(keys)
    if (pos < 0).any():
        raise ColumnError(f"{int((pos < 0).sum())} row(s) of data have no efficiency draw",
                          column=ids[0], rows=frame.loc[pos < 0, ids],
                          hint="fit the frontier on the same rows as the DID panel")
    values = draws.to_numpy()[pos]
    _warn_if_constant_within_unit(values, frame, kwargs.get("unit"))
    if draws.shape[1] < n_draws:
        raise BayesDidError(f"only {draws.shape[1]} efficiency draws for n_draws={n_draws}")
    chosen = rng.choice(draws.shape[1], size=n_draws, replace=False)

    def fit(column: np.ndarray) -> EffectResult:
        return estimator(Panel.from_frame(frame.assign(**{outcome: column}), **kwargs))

    naive = fit(values.mean(axis=1))
    fits = [fit(values[:, j]) for j in tqdm(chosen, disable=not progress,
                                            desc="DID over efficiency draws")]
    base = naive.effects()
    bayes = all(isinstance(f, BayesResult) for f in fits)
    rows = []
    for _, row in base.iterrows():
        key = (row["estimand"], row["group"])
        if bayes:
            out = pool_draws([f.draws(*key) for f in fits], level)
            interval, extra = "hdi", {}
        else:
            tabs = [f.effects().set_index(["estimand", "group"]).loc[key] for f in fits]
            out = rubin_combine(np.array([t["estimate"] for t in tabs]),
                                np.array([t["se_or_sd"] for t in tabs]), level,
                                fits[0].info.get("df"))
            interval = "confidence"
            extra = {"df": out["df"], "fraction_missing": out["fraction_missing"]}
        rows.append(dict(estimand=key[0], group=key[1], estimate=out["estimate"],
                         se_or_sd=out["se"], lower=out["lower"], upper=out["upper"],
                         level=level, interval=interval, n_obs=row["n_obs"], **extra))
    method = f"{naive.method}+propagated"
    info = {"n_draws": n_draws, "combine": "mixture" if bayes else "rubin",
            "base_method": naive.method, "draw_columns": chosen.tolist()}
    table = tidy_table([dict(r, method=method) for r in rows])
    return PropagatedDiDResult(table=table, method=method, info=info, naive=naive)
