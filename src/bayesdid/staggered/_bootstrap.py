"""Multiplier bootstrap on influence functions, with uniform (sup-t) critical values.

The bootstrap of Callaway & Sant'Anna (2021, Algorithm 1; R ``did::mboot``): for draw
``b`` and cluster ``c`` a mean-zero, unit-variance multiplier ``v[b, c]`` perturbs the
cluster sums ``S[c, j]`` of the influence functions of the ``K`` estimates, and

    dev[b, j] = sum_c v[b, c] S[c, j] / n

is a draw of ``estimate_j - truth_j``. All draws at once are one ``(B x G) @ (G x K)``
product (chunked over ``B`` to bound memory), not a loop over draws. Standard errors are
the interquartile range of ``dev`` over ``1.349`` (robust, as R ``did``); the uniform
critical value of a set of estimates is the ``level`` quantile of ``max_j |dev[b, j]| /
se_j`` over draws (the sup-t band of Montiel Olea & Plagborg-Moller / CS Algorithm 1).

Hand-written because no maintained Python library bootstraps given influence functions
(csdid's ``mboot`` is tied to its own parameter dict and the global NumPy RNG).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["MULTIPLIERS", "bootstrap_se", "multiplier_draws", "sup_t_crit"]

MULTIPLIERS = ("rademacher", "mammen")
_SQRT5 = np.sqrt(5.0)
_CHUNK_CELLS = 4_000_000  # multipliers held at once (32 MB of float64)
_TINY = np.sqrt(np.finfo(float).eps) * 10  # R did: se below this is treated as undefined


def _multipliers(rng: np.random.Generator, shape: tuple[int, int], kind: str) -> np.ndarray:
    if kind == "rademacher":  # +-1 with probability 1/2 (R did, csdid)
        return rng.integers(0, 2, size=shape, dtype=np.int8).astype(float) * 2.0 - 1.0
    # Mammen's two-point law: mean 0, variance 1, third moment 1
    low, high = (1 - _SQRT5) / 2, (1 + _SQRT5) / 2
    p_low = (_SQRT5 + 1) / (2 * _SQRT5)
    return np.where(rng.random(shape) < p_low, low, high)


def multiplier_draws(psi: np.ndarray, *, draws: int, multiplier: str = "rademacher",
                     clusters: np.ndarray | None = None,
                     random_seed: int | np.random.Generator | None = None) -> np.ndarray:
    """Bootstrap deviations ``dev`` (draws x K) from the n x K influence functions.

    ``psi`` is scaled so that the analytic standard error is ``sqrt(sum_i psi_i^2) / n``.
    ``clusters`` (integer codes 0..G-1 per row, or None for one cluster per row) share
    one multiplier within a cluster.

    >>> rng = np.random.default_rng(0)
    >>> psi = rng.normal(size=(400, 2))
    >>> dev = multiplier_draws(psi, draws=2000, random_seed=1)
    >>> se = bootstrap_se(dev)
    >>> analytic = np.sqrt((psi**2).sum(0)) / 400
    >>> bool(np.all(np.abs(se / analytic - 1) < 0.1))
    True
    """
    if multiplier not in MULTIPLIERS:
        raise ValueError(f"multiplier must be one of {MULTIPLIERS}, got {multiplier!r}")
    psi = np.asarray(psi, float)
    n = psi.shape[0]
    sums = psi if clusters is None else _cluster_sums(psi, clusters)
    n_cl = sums.shape[0]
    rng = np.random.default_rng(random_seed)
    out = np.empty((draws, psi.shape[1]))
    step = max(1, _CHUNK_CELLS // max(n_cl, 1))
    for start in range(0, draws, step):  # chunks bound memory; each chunk is one matmul
        stop = min(draws, start + step)
        out[start:stop] = _multipliers(rng, (stop - start, n_cl), multiplier) @ sums
    return out / n


def _cluster_sums(psi: np.ndarray, codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes)
    out = np.zeros((int(codes.max()) + 1, psi.shape[1]))
    np.add.at(out, codes, psi)
    return out


def bootstrap_se(dev: np.ndarray) -> np.ndarray:
    """Robust bootstrap standard errors: IQR / (z_0.75 - z_0.25) per column (R ``did``,
    quantile type 1); NaN where the draws are degenerate."""
    q75, q25 = np.quantile(dev, [0.75, 0.25], axis=0, method="inverted_cdf")
    se = (q75 - q25) / (stats.norm.ppf(0.75) - stats.norm.ppf(0.25))
    se = np.where(np.isfinite(se) & (se > _TINY), se, np.nan)
    return se


def sup_t_crit(dev: np.ndarray, se: np.ndarray, level: float) -> float:
    """Uniform critical value of a set: the ``level`` quantile (type 1) over draws of
    ``max_j |dev[:, j]| / se_j``, over the columns with a defined ``se``. NaN if none."""
    ok = np.isfinite(se)
    if not ok.any():
        return float("nan")
    t_max = np.max(np.abs(dev[:, ok]) / se[ok], axis=1)
    return float(np.quantile(t_max, level, method="inverted_cdf"))
