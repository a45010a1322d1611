"""Synthetic difference-in-differences (Arkhangelsky, Athey, Hirshberg, Imbens & Wager 2021).

A port of the R package ``synthdid`` (``synthdid_estimate``, ``sc_estimate``,
``did_estimate`` and the placebo / bootstrap / jackknife standard errors of ``vcov``):

* unit weights ``omega`` on the simplex, with an intercept and ridge penalty
  ``zeta_omega = (N_tr * T_post)^(1/4) * sd(first differences of control pre outcomes)``;
* time weights ``lambda`` on the simplex, with an intercept and a tiny ridge
  (``1e-6 * noise level``);
* both found by Frank-Wolfe with exact line search (100 iterations, sparsify weights below
  a quarter of the largest, then up to 10,000 iterations), as in ``synthdid``;
* ``tau = (-omega, 1/N_tr)' Y (-lambda, 1/T_post)``.

``estimator="sc"`` is synthdid's ``sc_estimate`` (no intercept, time weights fixed at zero,
ridge ``1e-6``) and ``estimator="did"`` its ``did_estimate`` (uniform weights).

Standard errors: ``"placebo"`` (controls reassigned as treated, needs more controls than
treated units), ``"bootstrap"`` (units resampled, needs more than one treated unit) and
``"jackknife"`` (leave-one-unit-out with fixed weights, needs more than one treated unit),
all with synthdid's scaling. Treatment must start in the same period for every treated unit
(a block design).

Examples
--------
>>> from bayesdid import Panel
>>> from bayesdid.datasets import load, info
>>> panel = Panel.from_frame(load("prop99"), **info("prop99")["panel_kwargs"])
>>> res = synthdid(panel, estimator="did", se=None)
>>> round(res.estimate, 2)
-27.35
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from .donors import DonorPool, donor_pool
from ..errors import DesignError, EstimationError
from ..panel import Panel
from ..results import EffectResult, group_label, tidy_table

__all__ = ["SyntheticDiDResult", "synthdid"]

logger = logging.getLogger(__name__)

Estimator = Literal["sdid", "sc", "did"]
_METHOD = {"sdid": "synthdid", "sc": "synthdid_sc", "did": "synthdid_did"}


@dataclass(frozen=True, eq=False, repr=False)
class SyntheticDiDResult(EffectResult):
    """:class:`EffectResult` of :func:`synthdid` plus its weights and replications.

    Attributes
    ----------
    estimate, se : the ATT and its standard error (NaN when ``se=None``).
    unit_weights : donor weights ``omega`` (Series indexed by donor).
    time_weights : pre-period weights ``lambda`` (Series indexed by period).
    replicates : the placebo / bootstrap / jackknife estimates (empty when ``se=None``).
    """

    estimate: float = float("nan")
    se: float = float("nan")
    unit_weights: pd.Series = field(default_factory=pd.Series)
    time_weights: pd.Series = field(default_factory=pd.Series)
    replicates: np.ndarray = field(default_factory=lambda: np.empty(0))

    def plot(self, ax=None, **kwargs):
        """The donor (unit) weights omega, largest first (see
        :func:`bayesdid.report.synth_plots.donor_weights_plot`). Returns a Figure."""
        from ..report.synth_plots import donor_weights_plot

        return donor_weights_plot(self.unit_weights, ax=ax, **kwargs)


# -------------------------------------------------------------------- Frank-Wolfe solver
def _sparsify(x: np.ndarray) -> np.ndarray:
    x = np.where(x <= x.max(axis=1, keepdims=True) / 4, 0.0, x)
    return x / x.sum(axis=1, keepdims=True)


def _frank_wolfe(A: np.ndarray, y: np.ndarray, eta: np.ndarray, m: np.ndarray, x0: np.ndarray,
                 mask: np.ndarray, min_decrease: float, max_iter: int) -> np.ndarray:
    """Batched synthdid ``sc.weight.fw``: min ||A x - y||^2 + eta ||x||^2 on the simplex.

    No library solves this ridge-regularised simplex problem with synthdid's exact line
    search and stopping rule, so it is hand-written, on Gram matrices; the loop runs in
    numba (a dependency of PyTensor) when it imports, else vectorised over the batch in
    NumPy. ``A`` is (B, rows, n) with padded rows zero, ``mask`` (B, n) marks the real
    columns (padding last), ``m`` (B,) the real row counts.
    """
    G = np.einsum("brn,brk->bnk", A, A)
    c = np.einsum("brn,br->bn", A, y)
    x = np.ascontiguousarray(x0, dtype=float).copy()
    threshold = min_decrease ** 2
    if _fw_numba is not None:
        _fw_numba(G, c, eta.astype(float), m.astype(float), x, mask.sum(axis=1).astype(np.int64),
                  threshold, int(max_iter))
        return x
    return _fw_numpy(G, c, eta, m, x, mask, threshold, max_iter)


def _fw_kernel(G, c, eta, m, x, ncols, threshold, max_iter):  # pragma: no cover - jitted
    B = x.shape[0]
    for b in range(B):
        n = ncols[b]
        Gx = np.zeros(n)
        grad = np.zeros(n)
        for t in range(1, max_iter + 1):
            if (t - 1) % 100 == 0:  # refresh the running product against rounding drift
                for k in range(n):
                    acc = 0.0
                    for l in range(n):
                        acc += G[b, k, l] * x[b, l]
                    Gx[k] = acc
            i = 0
            for k in range(n):
                grad[k] = Gx[k] - c[b, k] + eta[b] * x[b, k]
                if grad[k] < grad[i]:
                    i = k
            xg = 0.0
            xgx = 0.0
            xx = 0.0
            for k in range(n):
                xg += x[b, k] * grad[k]
                xgx += x[b, k] * Gx[k]
                xx += x[b, k] * x[b, k]
            num = xg - grad[i]
            den = (G[b, i, i] - 2 * Gx[i] + xgx) + eta[b] * (1 - 2 * x[b, i] + xx)
            step = 0.0
            if den > 0:
                step = min(1.0, max(0.0, num / den))
            for k in range(n):
                x[b, k] *= 1 - step
                Gx[k] = (1 - step) * Gx[k] + step * G[b, k, i]
            x[b, i] += step
            decrease = (2 * step * num - step * step * den) / m[b]
            if t >= 2 and decrease <= threshold:
                break


try:
    from numba import njit

    _fw_numba = njit(cache=True, nogil=True)(_fw_kernel)
except ImportError:  # pragma: no cover - numba ships with PyTensor
    _fw_numba = None


def _fw_numpy(G, c, eta, m, x, mask, threshold, max_iter):
    B = x.shape[0]
    rows = np.arange(B)
    Gx = np.einsum("bnk,bk->bn", G, x)
    active = np.ones(B, bool)
    for t in range(1, max_iter + 1):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        xa, Gxa, Ga, ea = x[idx], Gx[idx], G[idx], eta[idx][:, None]
        grad = Gxa - c[idx] + ea * xa
        i = np.where(mask[idx], grad, np.inf).argmin(axis=1)
        r = rows[: idx.size]
        d = -xa
        d[r, i] += 1.0
        Gd = Ga[r, :, i] - Gxa
        num = -(grad * d).sum(axis=1)
        den = (d * Gd).sum(axis=1) + ea[:, 0] * (d * d).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.clip(np.where(den > 0, num / den, 0.0), 0.0, 1.0)
        x[idx] = xa + step[:, None] * d
        Gx[idx] = Gxa + step[:, None] * Gd
        decrease = (2 * step * num - step ** 2 * den) / m[idx]
        if t >= 2:
            active[idx[decrease <= threshold]] = False
        if t % 100 == 0:
            Gx = np.einsum("bnk,bk->bn", G, x)
    return x


def _pad_stack(mats: list[np.ndarray], targets: list[np.ndarray], intercept: bool):
    """Demean (columns over real rows) and zero-pad a list of (rows_b, n_b) problems."""
    B = len(mats)
    r_max = max(a.shape[0] for a in mats)
    n_max = max(a.shape[1] for a in mats)
    A = np.zeros((B, r_max, n_max))
    y = np.zeros((B, r_max))
    mask = np.zeros((B, n_max), bool)
    for b, (a, t) in enumerate(zip(mats, targets)):
        if intercept:
            a, t = a - a.mean(axis=0), t - t.mean()
        A[b, : a.shape[0], : a.shape[1]] = a
        y[b, : a.shape[0]] = t
        mask[b, : a.shape[1]] = True
    return A, y, mask


def _solve(mats, targets, inits, zeta, intercept, opts) -> list[np.ndarray]:
    A, y, mask = _pad_stack(mats, targets, intercept)
    m = np.array([a.shape[0] for a in mats], float)
    x0 = np.zeros(mask.shape)
    for b, w in enumerate(inits):
        x0[b, : len(w)] = w
    eta = m * zeta ** 2
    x = _frank_wolfe(A, y, eta, m, x0, mask, opts["min_decrease"], opts["max_iter_pre"])
    x = _sparsify(x)
    x = _frank_wolfe(A, y, eta, m, x, mask, opts["min_decrease"], opts["max_iter"])
    return [x[b, : mask[b].sum()] for b in range(len(mats))]


def _normalize(w: np.ndarray) -> np.ndarray:
    s = w.sum()
    return w / s if s != 0 else np.full(len(w), 1.0 / len(w))


def _estimate_batch(Ys: list[np.ndarray], N0s: list[int], T0: int, opts: dict,
                    omegas: list[np.ndarray], lambdas: list[np.ndarray]):
    """synthdid_estimate for a batch of (N_b x T) matrices (controls first) sharing T0.

    ``omegas``/``lambdas`` are starting (or fixed, when not updated) weights.
    """
    Yc = [np.vstack([np.column_stack([Y[:n0, :T0], Y[:n0, T0:].mean(axis=1)]),
                     np.append(Y[n0:, :T0].mean(axis=0), Y[n0:, T0:].mean())])
          for Y, n0 in zip(Ys, N0s)]
    if opts["update_lambda"]:
        lambdas = _solve([c[:-1, :T0] for c in Yc], [c[:-1, T0] for c in Yc], lambdas,
                         opts["zeta_lambda"], opts["lambda_intercept"], opts)
    if opts["update_omega"]:
        omegas = _solve([c[:-1, :T0].T for c in Yc], [c[-1, :T0] for c in Yc], omegas,
                        opts["zeta_omega"], opts["omega_intercept"], opts)
    taus = []
    for Y, n0, om, lam in zip(Ys, N0s, omegas, lambdas):
        n1, t1 = Y.shape[0] - n0, Y.shape[1] - T0
        u = np.concatenate([-om, np.full(n1, 1.0 / n1)])
        v = np.concatenate([-lam, np.full(t1, 1.0 / t1)])
        taus.append(float(u @ Y @ v))
    return np.array(taus), omegas, lambdas


# -------------------------------------------------------------------------- public API
def synthdid(panel: Panel, *, treated: Sequence | None = None, donors: Sequence | None = None,
             estimator: Estimator = "sdid",
             se: Literal["placebo", "bootstrap", "jackknife"] | None = "placebo",
             replications: int = 200, level: float = 0.95, random_seed: int | None = 0,
             progress: bool = True, batch_size: int = 100) -> SyntheticDiDResult:
    """Synthetic DID (or synthdid's SC / DID variants) with placebo, bootstrap or jackknife SE.

    Parameters
    ----------
    treated, donors : as in :func:`bayesdid.synthetic.donors.donor_pool` (default: ever-treated
        units and never-treated units). All treated units must start in the same period.
    estimator : ``"sdid"`` (default), ``"sc"`` or ``"did"``.
    se : ``"placebo"`` (default; synthdid's choice with one treated unit), ``"bootstrap"``,
        ``"jackknife"`` or ``None``. The confidence interval is ``estimate +/- z * se``.
    replications : placebo / bootstrap draws (synthdid's default 200).
    random_seed : seeds the placebo permutations and bootstrap draws.
    progress : a progress bar over batches of replications.
    batch_size : replications solved together by the vectorised Frank-Wolfe solver.

    Raises
    ------
    DesignError : treated units starting in different periods, fewer than two
        pre-periods, or an SE that the design cannot support (bootstrap and jackknife need
        more than one treated unit; placebo needs more controls than treated units).
    """
    if estimator not in _METHOD:
        raise DesignError(f"estimator must be 'sdid', 'sc' or 'did', got {estimator!r}")
    if se not in (None, "placebo", "bootstrap", "jackknife"):
        raise DesignError(f"se must be 'placebo', 'bootstrap', 'jackknife' or None, got {se!r}")
    pool = donor_pool(panel, treated=treated, donors=donors)
    Y, N0, T0 = _block_matrix(pool)
    N1 = Y.shape[0] - N0
    _check_se(se, N0, N1)
    noise = float(np.diff(Y[:N0, :T0], axis=1).std(ddof=1))
    if not noise > 0:
        raise DesignError(f"outcome '{pool.outcome}' of the donors does not change over the "
                          f"pre-period; the noise level (sd of first differences) is zero",
                          column=pool.outcome)
    opts = _options(estimator, noise, N1, Y.shape[1] - T0)
    omega0 = np.full(N0, 1.0 / N0)
    lambda0 = np.zeros(T0) if estimator == "sc" else np.full(T0, 1.0 / T0)
    tau, (omega,), (lam,) = _estimate_batch([Y], [N0], T0, opts, [omega0], [lambda0])
    tau = float(tau[0])

    rng = np.random.default_rng(random_seed)
    reps = np.empty(0)
    if se == "placebo":
        draws = [rng.permutation(N0) for _ in range(replications)]
        reps = _batched(lambda ds: _estimate_batch(
            [Y[d] for d in ds], [N0 - N1] * len(ds), T0, opts,
            [_normalize(omega[d[: N0 - N1]]) for d in ds], [lam] * len(ds))[0],
            draws, batch_size, progress, "placebo")
        se_value = float(np.sqrt((replications - 1) / replications) * reps.std(ddof=1))
    elif se == "bootstrap":
        draws = []
        while len(draws) < replications:
            ind = np.sort(rng.integers(0, N0 + N1, N0 + N1))
            if (ind < N0).all() or (ind >= N0).all():
                continue
            draws.append(ind)
        reps = _batched(lambda ds: _estimate_batch(
            [Y[d] for d in ds], [int((d < N0).sum()) for d in ds], T0, opts,
            [_normalize(omega[d[d < N0]]) for d in ds], [lam] * len(ds))[0],
            draws, batch_size, progress, "bootstrap")
        se_value = float(np.sqrt((replications - 1) / replications) * reps.std(ddof=1))
    elif se == "jackknife":
        reps = _jackknife(Y, N0, T0, omega, lam)
        n = len(reps)
        se_value = float(np.sqrt((n - 1) / n * (n - 1) * reps.var(ddof=1)))
    else:
        se_value = float("nan")

    z = stats.norm.ppf(0.5 + level / 2)
    row = {"estimand": "att", "group": group_label(), "estimate": tau, "se_or_sd": se_value,
               "lower": tau - z * se_value, "upper": tau + z * se_value, "level": level,
               "interval": "confidence", "method": _METHOD[estimator],
               "n_obs": int(N1 * (Y.shape[1] - T0))}
    info = {"se_method": se, "replications": len(reps), "noise_level": noise, "n_control": N0,
                "n_treated": N1, "n_pre": T0, "n_post": Y.shape[1] - T0,
                "zeta_omega": opts["zeta_omega"], "zeta_lambda": opts["zeta_lambda"],
                "treated_units": list(pool.treated_units), "random_seed": random_seed,
                "interval_note": "normal approximation: estimate +/- z * se"}
    times = pool.times
    return SyntheticDiDResult(
        table=tidy_table([row]), method=_METHOD[estimator], info=info, estimate=tau,
        se=se_value, unit_weights=pd.Series(omega, index=list(pool.donor_units), name="omega"),
        time_weights=pd.Series(lam, index=times[:T0], name="lambda"), replicates=reps)


def _block_matrix(pool: DonorPool) -> tuple[np.ndarray, int, int]:
    starts = np.unique(pool.start)
    if len(starts) > 1:
        raise DesignError(
            f"synthetic DID needs one treatment start for all treated units; got starts "
            f"{dict(zip(pool.treated_units, pool.start.tolist()))}", column="cohort",
            hint="fit each cohort separately with treated=[...]")
    T0 = int(pool.pre_periods(0).sum())
    if T0 < 2:
        raise DesignError(f"synthetic DID needs at least two pre-treatment periods; the "
                          f"treated units have {T0}", column="cohort")
    Y = np.vstack([pool.y_donors.T, pool.y_treated.T])
    return Y, pool.n_donors, T0


def _check_se(se, N0: int, N1: int) -> None:
    if se in ("bootstrap", "jackknife") and N1 < 2:
        raise DesignError(
            f"the {se} standard error is not defined with a single treated unit (removing or "
            f"resampling it leaves no treated unit)", column="cohort",
            hint="use se='placebo' (synthdid's choice for one treated unit)")
    if se == "placebo" and N0 <= N1:
        raise DesignError(f"the placebo standard error needs more controls ({N0}) than "
                          f"treated units ({N1})", column="cohort",
                          hint="use se='bootstrap' or se='jackknife'")


def _options(estimator: str, noise: float, N1: int, T1: int) -> dict:
    eta_omega = (N1 * T1) ** 0.25 if estimator == "sdid" else 1e-6
    return {"zeta_omega": eta_omega * noise, "zeta_lambda": 1e-6 * noise,
                "omega_intercept": estimator == "sdid", "lambda_intercept": True,
                "update_omega": estimator != "did", "update_lambda": estimator == "sdid",
                "min_decrease": 1e-5 * noise, "max_iter": 10_000, "max_iter_pre": 100}


def _batched(fn, draws: list, batch_size: int, progress: bool, desc: str) -> np.ndarray:
    out = []
    with tqdm(total=len(draws), desc=desc, disable=not progress) as bar:
        for start in range(0, len(draws), batch_size):
            chunk = draws[start:start + batch_size]
            out.append(fn(chunk))
            bar.update(len(chunk))
    reps = np.concatenate(out)
    if not np.isfinite(reps).all():
        raise EstimationError(f"some {desc} replications gave non-finite estimates")
    return reps


def _jackknife(Y: np.ndarray, N0: int, T0: int, omega: np.ndarray, lam: np.ndarray):
    """Leave-one-unit-out estimates with the weights held fixed (synthdid's jackknife_se)."""
    N, T = Y.shape
    N1, T1 = N - N0, T - T0
    v = np.concatenate([-lam, np.full(T1, 1.0 / T1)])
    yv = Y @ v
    out = np.empty(N)
    for i in range(N):
        keep = np.arange(N) != i
        om = _normalize(omega[keep[:N0]])
        n1 = N1 - (i >= N0)
        out[i] = yv[N0:][keep[N0:]].sum() / n1 - om @ yv[:N0][keep[:N0]]
    return out
