"""Posterior contrasts between reported groups: P(effect of A > effect of B) and the
posterior of the difference, the Bayesian counterpart of a test of equal group effects.

Examples
--------
Contrasts from a hierarchical DID pooled by region (a short fit, for illustration)::

    res = HierarchicalDiD(pool=["region"]).fit(panel, random_seed=1)
    posterior_contrasts(res, prefix="region=")
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from arviz_stats.base import array_stats

from ..errors import BayesDidError

__all__ = ["posterior_contrasts", "contrast_table"]


def contrast_table(draws: dict[str, np.ndarray], *, level: float = 0.95,
                   estimand: str = "att") -> pd.DataFrame:
    """Pairwise contrasts of named draw vectors (equal length, jointly drawn).

    One row per ordered pair ``(a, b)`` with ``a`` before ``b``: posterior mean and sd of
    ``a - b``, its HDI at ``level`` and ``prob_greater`` = P(a > b).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> table = contrast_table({"region=East": rng.normal(1, 0.1, 4000),
    ...                         "region=West": rng.normal(0, 0.1, 4000)})
    >>> float(table.loc[0, "prob_greater"])
    1.0
    >>> round(float(table.loc[0, "difference"]), 1)
    1.0
    """
    if not 0 < level < 1:
        raise BayesDidError(f"level must be in (0, 1), got {level}")
    if len(draws) < 2:
        raise BayesDidError(f"contrasts need at least two groups, got {list(draws)}")
    lengths = {len(v) for v in draws.values()}
    if len(lengths) != 1:
        raise BayesDidError("contrast draws must come from one posterior (equal lengths), got "
                            f"lengths {sorted(lengths)}")
    rows = []
    for a, b in combinations(draws, 2):
        diff = np.asarray(draws[a], float) - np.asarray(draws[b], float)
        low, high = array_stats.hdi(diff, prob=level)
        rows.append({"estimand": estimand, "group_a": a, "group_b": b,
                     "difference": float(diff.mean()), "sd": float(diff.std(ddof=1)),
                     "lower": float(low), "upper": float(high), "level": level,
                     "prob_greater": float(np.mean(diff > 0))})
    return pd.DataFrame(rows)


def posterior_contrasts(result, *, groups: Sequence[str] | None = None, prefix: str | None = None,
                        estimand: str = "att", level: float = 0.95) -> pd.DataFrame:
    """Pairwise posterior contrasts of a Bayesian result's group effects.

    Parameters
    ----------
    result : a :class:`~bayesdid.bayes.result.BayesResult` (e.g. a ``HierarchicalDiD``
        fit pooled by the column of interest).
    groups : group labels to compare, e.g. ``["region=East", "region=West"]``; default every
        group of ``estimand`` starting with ``prefix``.
    prefix : e.g. ``"region="`` or ``"cohort="`` (single-factor groups only).

    Returns
    -------
    DataFrame: one row per pair, ``prob_greater`` = P(effect of ``group_a`` > ``group_b``).
    """
    if not hasattr(result, "draws"):
        raise BayesDidError(f"posterior contrasts need a Bayesian result, got "
                            f"{type(result).__name__}")
    table = result.effects()
    available = table.loc[table["estimand"] == estimand, "group"].tolist()
    if groups is None:
        if prefix is None:
            raise BayesDidError("give groups=[...] or prefix= (e.g. 'region=')")
        groups = [g for g in available if g.startswith(prefix) and ", " not in g]
    unknown = [g for g in groups if g not in available]
    if unknown:
        raise BayesDidError(f"no {estimand!r} effect for group(s) {unknown}; available: "
                            f"{available[:20]}", column="group")
    return contrast_table({g: result.draws(estimand, g) for g in groups}, level=level,
                          estimand=estimand)
