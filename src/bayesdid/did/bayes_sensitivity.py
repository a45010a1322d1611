"""Bayesian sensitivity of the post-period ATT to parallel-trend violations.

The Bayesian counterpart of Rambachan & Roth's relative magnitudes
(:mod:`bayesdid.did.honest_did`): what the model reports after treatment is the
effect plus a violation of parallel trends, ``ATT_obs = ATT + delta``. The data say
nothing about ``delta`` beyond what the leads show, so ``delta`` gets a prior bounded by
``M`` times the largest absolute lead effect::

    delta | leads ~ Uniform(-M * maxpre, M * maxpre),   maxpre = max_{k <= -2} |lead_k|

(the reference period ``k = -1`` is zero by construction) and the reported quantity is
the posterior of ``ATT = ATT_obs - delta``.

Why post-processing the draws is exact: ``delta`` does not enter the likelihood (the model
identifies only ``ATT_obs``), so its posterior given the data is its prior given the lead
effects. Drawing one ``delta`` per posterior draw of (``ATT_obs``, leads) -- independently
of everything else given the leads -- gives draws from the joint posterior of the model
extended by that prior. The implied prior on ``ATT`` is then no longer the fitted model's;
this is a sensitivity analysis, not a new model fit.

Choices (``violation=``):

* ``"common"`` (default): one ``delta`` shared by every post period, so the bias of the
  post-period average is up to ``M * maxpre`` -- the analogue of the worst case in
  ``Delta^RM`` restricted to levels.
* ``"per_period"``: an independent ``delta_k`` for each post event time (needs
  ``event_times``); averaging shrinks the violation, so intervals are narrower.

Differences from the classical relative-magnitudes bound: the bound is on *levels*
(largest absolute lead) rather than on period-to-period *changes*, it is a prior (a
distribution over the bounded set, uniform) rather than a worst case over the set, and
the lead effects' uncertainty enters through their posterior draws.

Draws of ``delta`` use common random numbers across ``M`` (one uniform per draw, scaled
by ``M``), so ``M = 0`` returns the unadjusted posterior exactly and intervals widen
smoothly in ``M``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import arviz_stats as azs
import numpy as np
import pandas as pd

from ..errors import BayesDidError
from ..results import EffectResult, group_label

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_M", "bayes_sensitivity"]

DEFAULT_M = (0.0, 0.5, 1.0, 2.0)
_K = re.compile(r"^k=(-?\d+)$")


def _effect_draws(result) -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
    post = getattr(getattr(result, "idata", None), "posterior", None)
    if post is None or "effect" not in post:
        raise BayesDidError("bayes_sensitivity needs a fitted BayesResult (with posterior "
                            "'effect' draws)", hint="HierarchicalDiD(leads=4).fit(panel)")
    eff = post["effect"]
    draws = eff.stack(sample=("chain", "draw")).transpose("sample", "effect_id").values
    n_obs = result.idata.constant_data["effect_n_obs"].values
    return (draws, [str(e) for e in eff["estimand"].values],
            [str(g) for g in eff["group"].values], n_obs)


def bayes_sensitivity(result, M: Sequence[float] = DEFAULT_M, *,
                      event_times: Sequence[int] | None = None,
                      weights: Sequence[float] | None = None,
                      violation: str = "common", level: float = 0.95,
                      interval: str = "eti", random_seed: int = 0) -> EffectResult:
    """Posterior of the post-period ATT net of a bounded parallel-trend violation.

    Parameters
    ----------
    result : a :class:`~bayesdid.bayes.BayesResult` from ``HierarchicalDiD(leads=L)``
        (``L >= 2``): its lead effects (``event_time``, ``k=-L .. -2``) set the bound.
    M : multiples of the largest absolute lead effect (default 0, 0.5, 1, 2).
    event_times : the target. ``None``: the ATT over all post cells (``att``,
        ``overall``). A list of event times ``k >= 0``: their (``weights``-weighted,
        default equal) average of ``event_time`` effects -- e.g. ``range(0, K + 1)`` to
        match :func:`~bayesdid.did.honest_did.honest_did`'s default target.
    violation : ``"common"`` or ``"per_period"`` (see the module docstring).
    level, interval : credible mass and ``"eti"`` (default) or ``"hdi"``.
    random_seed : seed of the violation draws.

    Returns
    -------
    EffectResult (``method="bayes_sensitivity"``) with rows ``estimand="att_sensitivity"``,
    ``group="M=..."`` and extra columns ``M``, ``restriction`` (``"bayes_rm"``) and
    ``prob_positive`` (posterior probability that the adjusted effect exceeds zero).
    ``info['draws']`` holds the adjusted draws for each ``M``; ``info['max_pre']`` the
    posterior mean of the bound ``maxpre``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from bayesdid.bayes.result import BayesResult
    >>> rng = np.random.default_rng(0)
    >>> d = np.stack([rng.normal(0.1, 0.01, (2, 500)), np.full((2, 500), 0.02)], axis=-1)
    >>> post = xr.Dataset({"effect": (("chain", "draw", "effect_id"), d)}, coords={
    ...     "effect_id": ["a", "b"], "estimand": ("effect_id", ["att", "event_time"]),
    ...     "group": ("effect_id", ["overall", "k=-2"])})
    >>> const = xr.Dataset({"effect_n_obs": ("effect_id", [50, 10])})
    >>> res = BayesResult.from_idata(xr.DataTree.from_dict(
    ...     {"posterior": post, "constant_data": const}), method="bayes")
    >>> tab = bayes_sensitivity(res, M=[0, 1]).effects()
    >>> (tab["upper"] - tab["lower"]).round(2).tolist()  # N(0.1, 0.01) + U(-0.02, 0.02)
    [0.04, 0.06]
    """
    if violation not in ("common", "per_period"):
        raise BayesDidError(f"violation must be 'common' or 'per_period', got {violation!r}")
    if interval not in ("eti", "hdi"):
        raise BayesDidError(f"interval must be 'eti' or 'hdi', got {interval!r}")
    if not 0 < level < 1:
        raise BayesDidError(f"level must be in (0, 1), got {level}")
    m = np.atleast_1d(np.asarray(M, dtype=float))
    if m.ndim != 1 or m.size == 0 or not np.all(np.isfinite(m)) or (m < 0).any():
        raise BayesDidError(f"M must be finite numbers >= 0, got {M!r}", column="M")
    draws, estimand, group, n_obs = _effect_draws(result)

    def k_of(g):
        hit = _K.match(g)
        return int(hit.group(1)) if hit else None

    ks = [k_of(g) if e == "event_time" else None for e, g in zip(estimand, group)]
    leads = [i for i, k in enumerate(ks) if k is not None and k < 0]
    if not leads:
        raise BayesDidError("no lead effects (event_time, k<0) in this result: the violation "
                            "bound needs them", hint="fit HierarchicalDiD(leads=L) with L >= 2")
    max_pre = np.abs(draws[:, leads]).max(axis=1)

    if event_times is None:
        if violation == "per_period":
            raise BayesDidError("violation='per_period' needs event_times (the post periods)")
        pick = [i for i, (e, g) in enumerate(zip(estimand, group))
                if e == "att" and g == "overall"]
        if not pick:
            raise BayesDidError("no ('att', 'overall') effect in this result")
        cols, w = pick, np.ones(1)
        target_n = int(n_obs[pick[0]])
    else:
        wanted = [int(k) for k in event_times]
        if not wanted or min(wanted) < 0:
            raise BayesDidError(f"event_times must be post-period event times k >= 0, got "
                                f"{wanted}", column="event_times")
        index = {k: i for i, k in enumerate(ks) if k is not None}
        missing = [k for k in wanted if k not in index]
        if missing:
            raise BayesDidError(f"no event_time effects for k={missing}; available: "
                                f"{sorted(index)}", column="event_times")
        cols = [index[k] for k in wanted]
        w = (np.full(len(cols), 1.0 / len(cols)) if weights is None
             else np.asarray(weights, dtype=float).reshape(-1))
        if w.size != len(cols) or not np.all(np.isfinite(w)):
            raise BayesDidError(f"weights must hold {len(cols)} finite numbers", column="weights")
        target_n = int(n_obs[cols].sum())
    target = draws[:, cols] @ w

    rng = np.random.default_rng(random_seed)
    n = len(target)
    if violation == "common":
        unit_bias = rng.uniform(-1.0, 1.0, n) * max_pre
    else:
        unit_bias = (rng.uniform(-1.0, 1.0, (n, len(cols))) @ w) * max_pre

    rows, kept = [], {}
    for mm in m:
        adj = target - mm * unit_bias
        kept[float(mm)] = adj
        if interval == "eti":
            lo, hi = np.quantile(adj, [(1 - level) / 2, (1 + level) / 2])
        else:
            lo, hi = np.asarray(azs.hdi(adj, prob=level), float)
        rows.append(dict(estimand="att_sensitivity", group=group_label(M=mm),
                         estimate=float(adj.mean()), se_or_sd=float(adj.std(ddof=1)),
                         lower=float(lo), upper=float(hi), level=level, interval=interval,
                         n_obs=target_n, M=float(mm), restriction="bayes_rm",
                         prob_positive=float(np.mean(adj > 0))))
    info = {"violation": violation, "target": "att overall" if event_times is None
            else {"event_times": [int(k) for k in event_times], "weights": w.tolist()},
            "max_pre": float(max_pre.mean()), "random_seed": random_seed, "draws": kept,
            "leads": [group[i] for i in leads]}
    return EffectResult(table=pd.DataFrame(rows).assign(method="bayes_sensitivity"),
                        method="bayes_sensitivity", info=info)
