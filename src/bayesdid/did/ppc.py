"""Posterior predictive checks of the hierarchical DID that name the misfit.

Under the model, the whitened errors of the marginal form (``e_t - rho e_{t-1}`` within a
unit's run, the first scaled by ``sqrt(1 - rho^2)``), divided by sigma, are iid N(0, 1)
given the parameters. For a subsample of posterior draws this module draws the unit effects
from their exact conditional, forms those standardised innovations ``u`` from the data and
compares statistics of ``u`` with the same statistics of replicated innovations drawn from
the model on the same layout (units, runs, group x period cells):

=====================  ===================================================  ==============
check                  statistic                                            large when
=====================  ===================================================  ==============
``autocorr_lag1..3``   pooled within-unit autocorrelation of u at lag k     persistence
                                                                            beyond the
                                                                            error model
``unit_variance``      sd over units of log(mean u^2)                       heteroskedastic
                                                                            units
``<group>_x_period``   sum over cells of (sum of u)^2 / cells' obs          shocks shared
                                                                            within group x
                                                                            period
``kurtosis``           pooled kurtosis of u (3 for Gaussian errors)          heavy tails
=====================  ===================================================  ==============

The structure checks replicate u by permuting the observed innovations over rows (same
marginal distribution, no unit, serial or cell structure), so heavy tails alone do not
look like heteroskedastic units; ``kurtosis`` replicates from the model's Gaussian. Every
statistic is large under its misfit, so the checks are one-sided: the p-value is
P(T(u_rep) >= T(u_obs)) and a check is flagged when it is below ``alpha``. (Negative
residual autocorrelation, which subtracting estimated unit effects induces, is not a misfit.) Residuals from fitted draws are slightly
"too good", so the checks err on the side of not flagging. Written by hand: ArviZ's PPC
plots compare outcomes, not these residual statistics of an integrated-out model.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import ModelCheckWarning

__all__ = ["PPC_COLUMNS", "residual_checks", "remedy", "warn_misfit"]

PPC_COLUMNS = ["check", "observed", "replicated", "p_value", "flagged", "remedy"]
MAX_LAG = 3


def remedy(check: str, errors: str, time: str = "time") -> str:
    """The option that addresses a flagged check, or what to do while none exists."""
    if check.startswith("autocorr"):
        if errors == "iid":
            return "errors='ar1' (within-unit AR(1) errors)"
        return ("persistence beyond AR(1): no richer serial model yet; robust='cluster' "
                "(a sandwich over panel.cluster, needs >= 10 treated clusters) keeps the "
                "interval honest, or put the cluster-robust twfe interval beside this one")
    if check == "kurtosis":
        return "heavy-tailed errors: errors='student_t'"
    if check == "unit_variance":
        return ("heteroskedastic units: unit_variance='classes' (variance classes; "
                "under-covers in the zoo, see the README), or put the cluster-robust twfe "
                "interval beside this one")
    group = check.removesuffix("_x_period")
    return (f"shocks shared within {group} x period: add {group} x period effects, random "
            f"(random_effects='{group}^{time}') or fixed (fe='unit + {group}^{time}'), or "
            f"compare with twfe clustered by {group}")


def _lag_index(prev_row: np.ndarray, k: int) -> np.ndarray:
    """Row k steps back in the same run (-1 if none)."""
    idx = np.arange(len(prev_row))
    for _ in range(k):
        idx = np.where(idx >= 0, prev_row[np.maximum(idx, 0)], -1)
    return idx


class _Layout:
    """Index structures the statistics need, built once per fit."""

    def __init__(self, unit_idx: np.ndarray, prev_row: np.ndarray,
                 groups: Mapping[str, np.ndarray], time_idx: np.ndarray):
        self.unit_idx = unit_idx
        self.n_units = int(unit_idx.max()) + 1
        self.count = np.bincount(unit_idx, minlength=self.n_units)
        n = len(unit_idx)
        self.by_unit = sp.csr_matrix((np.ones(n), (unit_idx, np.arange(n))),
                                     shape=(self.n_units, n))  # sums over a unit's rows
        self.enough = self.count >= 3
        self.lags = []
        for k in range(1, MAX_LAG + 1):
            back = _lag_index(prev_row, k)
            rows = np.flatnonzero(back >= 0)
            self.lags.append((rows, back[rows]))
        self.cells = {}
        for name, codes in groups.items():
            cell = pd.factorize(pd.MultiIndex.from_arrays([codes, time_idx]))[0]
            size = np.bincount(cell)
            keep = size[cell] >= 2
            if keep.any():
                sub = pd.factorize(cell[keep])[0]
                n = len(np.unique(sub))
                M = sp.csr_matrix((np.ones(keep.sum()), (sub, np.flatnonzero(keep))),
                                  shape=(n, len(cell)))
                self.cells[name] = (M, float(keep.sum()))

    def statistics(self, u: np.ndarray) -> dict[str, np.ndarray]:
        """Each statistic for every column (draw) of ``u`` (rows x draws)."""
        out = {}
        for k, (rows, back) in enumerate(self.lags, start=1):
            if len(rows) < 10:
                continue
            a, b = u[rows], u[back]
            out[f"autocorr_lag{k}"] = (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))
        if self.enough.sum() >= 3:
            ms = (self.by_unit @ (u * u))[self.enough] / self.count[self.enough, None]
            out["unit_variance"] = np.log(np.maximum(ms, 1e-300)).std(0)
        for name, (M, n_rows) in self.cells.items():
            sums = M @ u
            out[f"{name}_x_period"] = (sums * sums).sum(0) / n_rows
        return out


def _whiten(e: np.ndarray, prev_row: np.ndarray, rho: np.ndarray):
    """Prais-Winsten transform within each run (rows x draws) and the transformed constant:
    a run's first row scaled by sqrt(1 - rho^2), later rows e_t - rho e_{t-1}."""
    first = prev_row[:, None] < 0
    start = np.sqrt(1 - rho**2)[None, :]
    lagged = np.where(first, 0.0, e[np.maximum(prev_row, 0)])
    white = np.where(first, start * e, e - rho[None, :] * lagged)
    constant = np.where(first, start, (1 - rho)[None, :])
    return white, constant


def _unit_effects(resid: np.ndarray, by_unit: sp.csr_matrix, prev_row: np.ndarray,
                  sigma: np.ndarray, rho: np.ndarray, lam_a: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Exact conditional draws of the unit effects given phi (rows x draws residuals)."""
    white, c = _whiten(resid, prev_row, rho)
    D = by_unit @ (c * c)
    b = by_unit @ (c * white)
    precision = D / sigma**2 + lam_a
    mean = b / sigma**2 / precision
    return mean + rng.standard_normal(mean.shape) / np.sqrt(precision)


def _unit_subset(max_rows: int, rng: np.random.Generator, *, y, Z, unit_idx, prev_row,
                 time_idx, groups):
    """Rows of a random subset of units holding about ``max_rows`` rows, re-indexed."""
    n_units = int(unit_idx.max()) + 1
    order = rng.permutation(n_units)
    rows_per_unit = np.bincount(unit_idx, minlength=n_units)
    keep_units = order[: int(np.searchsorted(np.cumsum(rows_per_unit[order]), max_rows)) + 1]
    keep = np.isin(unit_idx, keep_units)
    rows = np.flatnonzero(keep)
    new_index = np.full(len(y), -1)
    new_index[rows] = np.arange(len(rows))
    prev = prev_row[rows]
    prev = np.where(prev >= 0, new_index[np.maximum(prev, 0)], -1)
    unit = pd.factorize(unit_idx[rows])[0]
    return (y[rows], Z[rows], unit, prev, time_idx[rows],
            {name: codes[rows] for name, codes in groups.items()})


def _kurtosis(u: np.ndarray) -> np.ndarray:
    squared = (u - u.mean(0)) ** 2
    return (squared * squared).mean(0) / squared.mean(0) ** 2


def residual_checks(*, y: np.ndarray, Z: sp.csr_matrix, phi: np.ndarray, sigma: np.ndarray,
                    rho: np.ndarray, lam_a: float, unit_idx: np.ndarray,
                    prev_row: np.ndarray, time_idx: np.ndarray,
                    groups: Mapping[str, np.ndarray], errors: str, time: str = "time",
                    n_draws: int = 200, alpha: float = 0.01, seed: int = 0,
                    chunk: int = 25, max_rows: int = 100_000) -> pd.DataFrame:
    """Posterior predictive checks of the residual structure (see the module docstring).

    ``y`` and ``Z`` are the standardised outcome and coefficient design of the marginal
    form, ``phi`` (draws x coefficients), ``sigma`` and ``rho`` the posterior draws. At most
    ``n_draws`` draws are used, ``chunk`` at a time; panels longer than ``max_rows`` rows are
    checked on a random subset of whole units of about that many rows.

    >>> rng = np.random.default_rng(0)
    >>> unit = np.repeat(np.arange(40), 10); t = np.tile(np.arange(10), 40)
    >>> prev = np.where(t > 0, np.arange(400) - 1, -1)
    >>> e = np.zeros(400)
    >>> for i in range(400):  # AR(1) errors with rho 0.8, fitted as iid
    ...     e[i] = (0.8 * e[i - 1] if t[i] else 0) + rng.normal()
    >>> Z = sp.csr_matrix(np.ones((400, 1)))
    >>> table = residual_checks(y=e, Z=Z, phi=np.zeros((50, 1)), sigma=np.full(50, e.std()),
    ...     rho=np.zeros(50), lam_a=1.0, unit_idx=unit, prev_row=prev, time_idx=t,
    ...     groups={}, errors="iid", n_draws=50)
    >>> row = table.set_index("check").loc["autocorr_lag1"]
    >>> bool(row.flagged), row.remedy
    (True, "errors='ar1' (within-unit AR(1) errors)")
    """
    rng = np.random.default_rng([seed, 4241])
    if len(y) > max_rows:  # the checks are averages: a random subset of units suffices
        y, Z, unit_idx, prev_row, time_idx, groups = _unit_subset(
            max_rows, rng, y=y, Z=Z, unit_idx=unit_idx, prev_row=prev_row,
            time_idx=time_idx, groups=groups)
    chunk = max(1, min(chunk, int(4e6 // len(y))))  # bounded memory: rows x chunk arrays
    take = np.sort(rng.choice(len(sigma), size=min(n_draws, len(sigma)), replace=False))
    layout = _Layout(unit_idx, prev_row, groups, time_idx)
    observed: dict[str, list] = {}
    replicated: dict[str, list] = {}
    for start in range(0, len(take), chunk):
        sel = take[start:start + chunk]
        s, r = sigma[sel], rho[sel]
        resid = y[:, None] - Z @ phi[sel].T
        a = _unit_effects(resid, layout.by_unit, prev_row, s, r, lam_a, rng)
        u = _whiten(resid - a[unit_idx], prev_row, r)[0] / s
        for name, values in layout.statistics(u).items():
            observed.setdefault(name, []).append(values)
        for name, values in layout.statistics(rng.permuted(u, axis=0)).items():
            replicated.setdefault(name, []).append(values)
        observed.setdefault("kurtosis", []).append(_kurtosis(u))
        replicated.setdefault("kurtosis", []).append(_kurtosis(rng.standard_normal(u.shape)))
    rows = []
    for name in observed:
        obs, rep = np.concatenate(observed[name]), np.concatenate(replicated[name])
        p = float(np.mean(rep >= obs))
        flagged = bool(p < alpha)
        rows.append({"check": name, "observed": float(obs.mean()),
                     "replicated": float(rep.mean()), "p_value": p, "flagged": flagged,
                     "remedy": remedy(name, errors, time) if flagged else ""})
    return pd.DataFrame(rows, columns=PPC_COLUMNS)


def warn_misfit(records: list[dict] | None, model: str) -> None:
    """One :class:`~bayesdid.errors.ModelCheckWarning` naming every flagged check."""
    flagged = [r for r in records or () if r["flagged"]]
    if not flagged:
        return
    lines = "; ".join(f"{r['check']} (observed {r['observed']:.3g} vs replicated "
                      f"{r['replicated']:.3g}, p={r['p_value']:.3f}): {r['remedy']}"
                      for r in flagged)
    warnings.warn(f"{model}: posterior predictive checks flag {lines}. Intervals may be too "
                  "narrow where the data contradict the error model; see result.ppc().",
                  ModelCheckWarning, stacklevel=3)
