"""Convergence checks run on every Bayesian fit: R-hat, bulk and tail ESS, divergences.

Every ``fit`` ends in :meth:`BayesResult.from_fit <bayesdid.bayes.result.BayesResult.from_fit>`,
which builds :func:`diagnostics_table` over the model's sampled parameters (each model lists
all of them in ``info["sampled_vars"]``, e.g. SFA slopes, horseshoe global and local scales,
simplex weights) plus every reported effect, records :func:`convergence_summary` in
``result.info["convergence"]`` (JSON-serialisable; the study report lists it) and warns with
:class:`ConvergenceWarning`, naming the worst parameters, when a check fails.

Checks (Vehtari, Gelman, Simpson, Carpenter and Buerkner 2021, "Rank-normalization,
folding, and localization"): rank-normalised split R-hat <= 1.01, bulk ESS >= 400 and tail
ESS >= 400 for every quantity, and no divergent transition.

One chain: arviz-stats returns NaN for R-hat with a single chain (between-chain variance is
undefined), so R-hat is not checked; ESS and divergences still are, and the summary
(``r_hat_checked: False``) and any warning say so. Run at least 2 chains (4 is the default)
to check mixing between chains.

>>> import numpy as np, xarray as xr
>>> rng = np.random.default_rng(0)
>>> tree = xr.DataTree.from_dict({"posterior": xr.Dataset(
...     {"sigma": (("chain", "draw"), rng.normal(size=(2, 50)))})})
>>> table = diagnostics_table(tree, ["sigma"])
>>> summary = convergence_summary(table, tree)
>>> summary["ok"], summary["failed"][0]["parameter"], summary["failed"][0]["fails"]
(False, 'sigma', ['ess_bulk', 'ess_tail'])
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import special
from scipy.fft import next_fast_len

from ..errors import ConvergenceWarning

__all__ = ["RHAT_MAX", "ESS_MIN", "ConvergenceWarning", "diagnostics_table",
           "convergence_summary", "convergence_message", "failed_checks"]

RHAT_MAX = 1.01
ESS_MIN = 400
N_NAMED = 5  # parameters named in a warning
N_RECORDED = 50  # failing parameters kept in info["convergence"]["failed"]


def _labels(name: str, da) -> list[str]:
    """``sigma``; ``beta[capital]``; ``weight[Beijing, Hebei]``; effects as ``att|overall``."""
    dims = [d for d in da.dims if d not in ("chain", "draw")]
    if not dims:
        return [name]
    if name == "effect" and "estimand" in da.coords and "group" in da.coords:
        return [f"{e}|{g}" for e, g in zip(da["estimand"].values, da["group"].values)]
    axes = [[str(v) for v in da[d].values] if d in da.coords else
            [str(i) for i in range(da.sizes[d])] for d in dims]
    return [f"{name}[{', '.join(parts)}]" for parts in itertools.product(*axes)]


# ------------------------------------------------------------------ vectorised statistics
# arviz-stats computes R-hat and ESS one quantity at a time in a Python loop (~3 ms per
# quantity and statistic: ~25 s for an SFA fit's 5,300 city-year efficiencies, on every
# fit). Below are the same formulas (arviz_stats.base.diagnostics: rank-normalised split
# R-hat; bulk ESS; tail ESS at the 5% and 95% quantiles; Geyer's initial monotone
# sequence; Vehtari et al. 2021), vectorised over quantities on a (quantity, chain, draw)
# array; tests/test_convergence.py checks them equal to arviz-stats to 1e-9.
def _split(x: np.ndarray) -> np.ndarray:
    """(K, C, D) -> (K, 2C, D // 2): first halves of every chain, then second halves."""
    half = x.shape[2] // 2
    return np.concatenate([x[:, :, :half], x[:, :, x.shape[2] - half:]], axis=1)


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Normal scores of the pooled ranks (Blom's offset 3/8) per quantity, ties given their
    average rank (``scipy.stats.rankdata(method="average")``). One argsort per quantity;
    every quantity shares one score vector, patched only where sorted neighbours tie."""
    rows = x.reshape(x.shape[0], -1)
    n = rows.shape[1]
    order = np.argsort(rows, axis=1)  # tied values share one average rank: any order works
    ordered = np.take_along_axis(rows, order, axis=1)
    scores = special.ndtri((np.arange(1, n + 1) - 0.375) / (n + 0.25))
    r, i = np.nonzero(ordered[:, 1:] == ordered[:, :-1])  # sorted positions i, i+1 tie
    if r.size:
        sorted_z = np.array(np.broadcast_to(scores, rows.shape))
        new_run = np.ones(r.size, dtype=bool)
        new_run[1:] = (r[1:] != r[:-1]) | (i[1:] != i[:-1] + 1)
        starts = np.flatnonzero(new_run)
        # a run of ties i0..i1 covers sorted positions i0..i1+1: ranks i0+1 .. i1+2
        avg = (i[starts] + 1 + np.maximum.reduceat(i, starts) + 2) / 2
        value = special.ndtri((avg - 0.375) / (n + 0.25))[np.cumsum(new_run) - 1]
        sorted_z[r, i] = value
        sorted_z[r, i + 1] = value
    else:
        sorted_z = np.broadcast_to(scores, rows.shape)
    z = np.empty(rows.shape)
    np.put_along_axis(z, order, sorted_z, axis=1)
    return z.reshape(x.shape)


def _rhat_classic(x: np.ndarray) -> np.ndarray:
    n = x.shape[2]
    between = n * x.mean(axis=2).var(axis=1, ddof=1)
    within = x.var(axis=2, ddof=1).mean(axis=1)
    return np.sqrt((between / within + n - 1) / n)


def _rhat_rank(split: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Rank-normalised split R-hat (max of bulk and folded) from the split chains and
    their normal scores ``z``, (K, 2C, D // 2) -> (K,)."""
    median = np.median(split.reshape(split.shape[0], -1), axis=1)
    folded = np.abs(split - median[:, None, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        bulk, tail = _rhat_classic(z), _rhat_classic(_z_scale(folded))
    return np.where(tail > bulk, tail, bulk)  # Python's max(bulk, tail), NaNs included


def _ess(y: np.ndarray) -> np.ndarray:
    """ESS with Geyer's initial positive and monotone sequences, (K, M, N) -> (K,)."""
    y = np.asarray(y, dtype=float)
    k, m_, n = y.shape
    const = (y.max(axis=(1, 2)) - y.min(axis=(1, 2))) < np.finfo(float).resolution
    length = next_fast_len(2 * n)
    spec = np.fft.rfft(y - y.mean(axis=2, keepdims=True), n=length, axis=2)
    acov = np.fft.irfft(spec * np.conjugate(spec), n=length, axis=2)[:, :, :n] / n
    mean_var = acov[:, :, 0].mean(axis=1) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if m_ > 1:
        var_plus = var_plus + y.mean(axis=2).var(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (mean_var[:, None] - acov.mean(axis=1)) / var_plus[:, None]  # (K, N)
    rho[:, 0] = 1.0
    # Geyer's loop visits pairs (2j, 2j+1) for j = 1..jcap (while 2j - 1 < n - 3) and stops
    # after the first pair whose sum is <= 0: J = that pair's index (or jcap); pairs before
    # J enter through their running minimum (the monotone sequence), pair J's even term last
    jcap = max((n - 1) // 2 - 1, 0)
    pair = rho[:, 0:2 * jcap + 2:2] + rho[:, 1:2 * jcap + 2:2]  # S_0..S_jcap
    stop = pair[:, :jcap] <= 0
    last_j = (np.where(stop.any(axis=1), stop.argmax(axis=1), jcap) if jcap
              else np.zeros(k, dtype=int))
    running = np.minimum.accumulate(pair, axis=1)
    csum = np.hstack([np.zeros((k, 1)), np.cumsum(running, axis=1)])
    rows = np.arange(k)
    even = rho[rows, 2 * last_j]
    last = np.where((pair[rows, last_j] >= 0) | (even > 0), even, 0.0)
    tau = -1.0 + 2.0 * csum[rows, last_j] + last
    total = m_ * n
    ess = total / np.maximum(tau, 1.0 / np.log10(total))
    ess[np.isnan(rho).any(axis=1)] = np.nan
    return np.where(const, float(total), ess)


def _ess_tail(x: np.ndarray) -> np.ndarray:
    """min of the ESS of the 5% and 95% quantile indicators, (K, C, D) -> (K,)."""
    q = np.quantile(x.reshape(x.shape[0], -1), [0.05, 0.95], axis=1)  # (2, K)
    return np.minimum(*(_ess(_split((x <= qi[:, None, None]).astype(float))) for qi in q))


def rhat_ess(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R-hat, bulk ESS, tail ESS) of every column of ``x`` (chain, draw, quantity), as
    arviz-stats' ``rhat`` / ``ess(method="bulk")`` / ``ess(method="tail", prob=0.95)``.
    NaN where a quantity has NaN draws, fewer than 4 draws, or (R-hat) one chain."""
    x = np.asarray(x, dtype=float)
    k = x.shape[-1]
    rhat, bulk, tail = (np.full(k, np.nan) for _ in range(3))
    ok = ~np.isnan(x).any(axis=(0, 1))
    if x.shape[1] < 4 or not ok.any():
        return rhat, bulk, tail
    good = np.ascontiguousarray(np.moveaxis(x[:, :, ok], 2, 0))  # (K, C, D)
    split = _split(good)
    z = _z_scale(split)  # shared by R-hat and bulk ESS
    if x.shape[0] >= 2:
        rhat[ok] = _rhat_rank(split, z)
    bulk[ok] = _ess(z)
    tail[ok] = _ess_tail(good)
    return rhat, bulk, tail


def count_divergences(idata) -> int:
    """Divergent transitions after tuning (PyMC's per-draw ``diverging`` flags)."""
    if "sample_stats" not in idata.children:
        return 0
    stats = idata.sample_stats
    if "diverging" in stats:
        return int(np.asarray(stats["diverging"].values).astype(bool).sum())
    if "divergences" in stats:  # a running count per chain
        return int(np.asarray(stats["divergences"].values).max(axis=-1).sum())
    return 0


def diagnostics_table(idata, sampled_vars: Sequence[str]) -> pd.DataFrame:
    """R-hat, bulk and tail ESS of each entry of ``sampled_vars`` (those in the posterior)
    and of the reported ``effect``; ``attrs["divergences"]`` holds the divergence count.

    One row per scalar (vector parameters are split, labelled by their coordinates).
    """
    post = idata.posterior
    names = [v for v in dict.fromkeys(sampled_vars) if v in post and v != "effect"]
    if "effect" in post:
        names.append("effect")
    labels, blocks = [], []
    for name in names:
        da = post[name].transpose("chain", "draw", ...)
        labels += _labels(name, da)
        blocks.append(np.asarray(da.values, dtype=float).reshape(da.shape[0], da.shape[1], -1))
    if blocks:
        rhat, bulk, tail = rhat_ess(np.concatenate(blocks, axis=2))
    else:
        rhat = bulk = tail = np.empty(0)
    table = pd.DataFrame({"parameter": labels, "r_hat": rhat, "ess_bulk": bulk,
                          "ess_tail": tail})
    table.attrs["divergences"] = count_divergences(idata)
    return table


def failed_checks(table: pd.DataFrame, *, check_rhat: bool = True) -> pd.DataFrame:
    """The rows of a diagnostics table that fail a check, worst first, with a ``fails``
    column (``r_hat``, ``ess_bulk``, ``ess_tail``) and a ``severity`` (how far past the
    threshold: R-hat excess over 0.01, or 400 / ESS; 1 is on the line)."""
    r, b, t = (table[c].to_numpy(float) for c in ("r_hat", "ess_bulk", "ess_tail"))
    with np.errstate(invalid="ignore", divide="ignore"):
        bad_r = (r > RHAT_MAX) if check_rhat else np.zeros(len(r), bool)
        bad_b, bad_t = b < ESS_MIN, t < ESS_MIN
        sev = np.stack([np.where(bad_r, (r - 1) / (RHAT_MAX - 1), 0.0),
                        np.where(bad_b, ESS_MIN / np.maximum(b, 1e-9), 0.0),
                        np.where(bad_t, ESS_MIN / np.maximum(t, 1e-9), 0.0)]).max(axis=0)
    hit = bad_r | bad_b | bad_t
    fails = [[c for c, flag in zip(("r_hat", "ess_bulk", "ess_tail"), flags) if flag]
             for flags in zip(bad_r[hit], bad_b[hit], bad_t[hit])]
    out = table.loc[hit, ["parameter", "r_hat", "ess_bulk", "ess_tail"]].assign(
        fails=fails, severity=sev[hit])
    return out.sort_values("severity", ascending=False, kind="stable").reset_index(drop=True)


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def convergence_summary(table: pd.DataFrame, idata) -> dict[str, Any]:
    """What :func:`diagnostics_table` says, as a JSON-serialisable dict (stored in
    ``result.info["convergence"]``): ``ok``, counts, thresholds, the divergences and the
    failing parameters (worst first, at most 50 listed; ``n_failed`` counts them all)."""
    sizes = idata.posterior.sizes
    chains, draws = int(sizes.get("chain", 1)), int(sizes.get("draw", 0))
    check_rhat = chains >= 2
    bad = failed_checks(table, check_rhat=check_rhat)
    n_div = int(table.attrs.get("divergences", 0))
    return {
        "ok": bool(bad.empty and n_div == 0),
        "chains": chains, "draws": draws, "n_checked": int(len(table)),
        "n_failed": int(len(bad)), "divergences": n_div,
        "r_hat_checked": check_rhat,
        "thresholds": {"r_hat_max": RHAT_MAX, "ess_bulk_min": ESS_MIN, "ess_tail_min": ESS_MIN},
        "failed": [{"parameter": str(row.parameter), "r_hat": _num(row.r_hat),
                    "ess_bulk": _num(row.ess_bulk), "ess_tail": _num(row.ess_tail),
                    "fails": list(row.fails)}
                   for row in bad.head(N_RECORDED).itertuples(index=False)],
    }


def _describe(entry: dict[str, Any]) -> str:
    parts = {"r_hat": lambda v: f"R-hat {v:.3f}", "ess_bulk": lambda v: f"bulk ESS {v:.0f}",
             "ess_tail": lambda v: f"tail ESS {v:.0f}"}
    return f"{entry['parameter']} ({', '.join(parts[c](entry[c]) for c in entry['fails'])})"


def convergence_message(summary: dict[str, Any], what: str) -> str | None:
    """The warning text for a failed summary (None when every check passed)."""
    if summary["ok"]:
        return None
    chains, draws = summary["chains"], summary["draws"]
    text = f"{what}: the sampler may not have converged ({chains} chain(s) x {draws} draws)"
    problems, advice = [], []
    if summary["n_failed"]:
        named = summary["failed"][:N_NAMED]
        more = summary["n_failed"] - len(named)
        checks = ("R-hat <= 1.01, " if summary["r_hat_checked"] else "") + "bulk/tail ESS >= 400"
        problems.append(f"{summary['n_failed']} of {summary['n_checked']} quantities fail "
                        f"{checks}; worst: " + "; ".join(_describe(e) for e in named)
                        + (f"; and {more} more" if more > 0 else ""))
        advice.append("run more draws and tune (and chains)")
    if summary["divergences"]:
        problems.append(f"{summary['divergences']} divergent transition(s)")
        advice.append("raise target_accept (e.g. 0.95-0.99)")
    if not summary["r_hat_checked"]:
        problems.append("R-hat not checked: it needs at least 2 chains")
    return (f"{text}: " + ". ".join(problems) + ". Before trusting the intervals, "
            + " and ".join(advice) + "; result.diagnostics() has the full table.")
