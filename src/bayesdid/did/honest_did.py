"""Rambachan & Roth (2023) sensitivity of an event study to parallel-trend violations.

The event-study coefficients ``beta_k`` (leads ``k = -L .. -2``, lags ``k = 0 .. K``,
``k = -1`` the reference) are read as ``beta = tau + delta``: the treatment effects
``tau`` (zero before treatment) plus a violation of parallel trends ``delta``. Nothing in
the data tells ``delta`` after treatment apart from ``tau``; a restriction ``delta in
Delta`` tied to what the leads show makes the post-period effect
``theta = l' tau_post`` (default: the average over the lags) partially identified.

Time runs as in Rambachan & Roth: ``t = k + 1``, so ``t = 0`` is the reference period
(``delta_0 = 0``), ``t < 0`` the leads and ``t = 1 .. K + 1`` the lags.

Restrictions (``restriction=``)
-------------------------------
``"rm"`` relative magnitudes, ``Delta^RM(Mbar)``: every post-period change
    ``|delta_{t+1} - delta_t|`` (``t >= 0``) is at most ``Mbar`` times the largest
    pre-period change ``S = max_{s<0} |delta_{s+1} - delta_s|``.
``"sd"`` smoothness, ``Delta^SD(M)``: every second difference of ``delta`` (leads, reference
    and lags alike) is at most ``M`` in absolute value (``M`` in outcome units per
    period squared; ``M = 0`` allows exactly linear differential trends).

What is computed, and how it differs from the R ``HonestDiD`` package
--------------------------------------------------------------------
* :func:`identified_set`: the exact identified set of ``theta`` when ``beta`` is known,
  in closed form. Under ``rm``: ``l'beta_post +/- Mbar * S * sum_r |sum_{t>=r} l_t|``.
  Under ``sd``: ``l'beta_post - d_0 sum_t t l_t +/- M sum_s |sum_{t>s} (t - s) l_t|``
  with ``d_0 = -beta_{-2}`` the last pre-period slope (empty, NaN, if the leads' own
  second differences exceed ``M``).
* ``sd`` confidence sets are the fixed-length confidence interval (FLCI) of Rambachan &
  Roth, Section 4 (after Armstrong & Kolesar), the method ``HonestDiD`` uses by default for
  ``Delta^SD``: an affine estimator ``v'beta`` with ``v_post = l`` and half-length
  ``sd(v'beta) * cv_alpha(maxbias / sd)``, ``cv_alpha(b)`` the ``1 - alpha`` quantile of
  ``|N(b, 1)|``, minimised over ``v_pre``. The worst-case bias has the closed form
  ``M * ||K'v||_1`` (``K`` maps second differences to ``delta``) subject to ``v`` being
  blind to linear trends. ``HonestDiD`` solves the same problem with CVXR; here the
  smallest bias at each standard deviation ``h`` is an SLSQP problem (scipy) and ``h`` is
  found by a grid plus bounded scalar search, so the length agrees with HonestDiD's up to
  optimiser tolerance. With ``M = 0`` it is the GLS linear-extrapolation interval exactly.
* ``rm`` confidence sets are **not** HonestDiD's (which inverts the conditional / hybrid
  moment-inequality tests of Andrews, Roth & Pakes over the union of polyhedra, one per
  location and sign of the largest pre-period change). Here they are a projection: a
  ``1 - alpha`` simultaneous (sup-t) box for ``(l'beta_post, each pre-period change)``,
  its critical value ``c`` simulated from ``N(0, Sigma)`` (seeded), and the union over
  the box -- i.e. over the location ``j`` of the largest pre-period change -- of the
  identified sets::

      l'b_post +/- [c se(l'b_post) + Mbar A max_j (|a_j'b| + c se(a_j'b))]

  This covers ``theta`` with probability at least ``1 - alpha`` for every ``delta`` in
  ``Delta^RM(Mbar)``, but is conservative (wider than HonestDiD's); with ``Mbar = 0`` the
  box has one component and the interval is the usual ``l'b_post +/- z se``.

Normal critical values are used throughout (as in HonestDiD), not the t with the
regression's degrees of freedom.

Inputs are an event-study coefficient vector and its covariance, e.g. from
:func:`event_study_coefficients`, which refits :func:`~bayesdid.classical.sun_abraham`'s
or :func:`~bayesdid.did.event_study`'s regression through pyfixest and keeps the
covariance matrix of the event-time coefficients.

>>> import numpy as np
>>> ks = [-3, -2, 0, 1]
>>> beta, sigma = np.array([0.0, 0.0, 0.1, 0.2]), np.diag([0.01, 0.01, 0.01, 0.01]) ** 2
>>> res = honest_did(beta, sigma, ks, restriction="rm", M=(0, 1))
>>> res.effects()[["group", "lower", "upper"]].round(4).to_dict("list")
{'group': ['M=0', 'M=1'], 'lower': [0.1361, 0.0833], 'upper': [0.1639, 0.2167]}
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from ..errors import BayesDidError, DesignError, EstimationError
from ..results import EffectResult, group_label
from .event_study_coefficients import EventStudyCoefficients, event_study_coefficients

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_M",
    "EventStudyCoefficients",
    "event_study_coefficients",
    "honest_did",
    "identified_set",
]

DEFAULT_M = (0.0, 0.5, 1.0, 2.0)
RESTRICTIONS = ("rm", "sd")


@dataclass(frozen=True)
class _Design:
    """Validated coefficients split into pre (k <= -2) and post (k >= 0) blocks."""

    beta: np.ndarray
    sigma: np.ndarray | None
    t: np.ndarray  # Rambachan-Roth time t = k + 1 of each coefficient (0 = reference)
    n_pre: int
    l: np.ndarray  # weights on the post coefficients

    @property
    def n_post(self) -> int:
        return len(self.t) - self.n_pre


def _design(beta, sigma, event_times, l, need_sigma: bool = True) -> _Design:
    if isinstance(beta, EventStudyCoefficients):
        beta, sigma, event_times = beta.beta, beta.sigma, beta.event_times
    beta = np.asarray(beta, dtype=float).reshape(-1)
    if event_times is None:
        raise BayesDidError("event_times is required with a bare coefficient vector",
                            hint="pass event_times=[-L, ..., -2, 0, ..., K] (no -1)")
    k = np.asarray(event_times)
    if k.shape != beta.shape or not np.all(np.isfinite(beta)):
        raise BayesDidError(f"beta ({beta.size} finite values expected) and event_times "
                            f"({k.size}) must have the same length", column="event_times")
    if not np.all(k == np.round(k)):
        raise BayesDidError("event_times must be integers", column="event_times")
    k = k.astype(int)
    order = np.argsort(k)
    k, beta = k[order], beta[order]
    pre, post = k[k < -1], k[k >= 0]
    frame = pd.DataFrame({"event_time": k, "beta": beta})
    if -1 in k:
        raise DesignError("event time -1 is the reference period and must be left out",
                          column="event_times", rows=frame[frame["event_time"] == -1])
    if pre.size == 0 or post.size == 0:
        raise DesignError("need at least one lead (k <= -2) and one lag (k >= 0)",
                          column="event_times", rows=frame)
    want = np.r_[np.arange(pre.min(), -1), np.arange(0, post.max() + 1)]
    if len(want) != len(k) or np.any(want != k):
        missing = sorted(set(want.tolist()) - set(k.tolist()))
        raise DesignError(f"event times must run without gaps from {pre.min()} to -2 and from "
                          f"0 to {post.max()}; missing {missing}", column="event_times",
                          hint="leave out only the reference -1; restrict the window instead")
    if l is None:
        l = np.full(post.size, 1.0 / post.size)
    l = np.asarray(l, dtype=float).reshape(-1)
    if l.size != post.size or not np.all(np.isfinite(l)):
        raise BayesDidError(f"l must hold {post.size} finite weights, one per post event time "
                            f"{post.tolist()}", column="l")
    if sigma is None:
        if need_sigma:
            raise BayesDidError("sigma (the covariance of beta) is required")
    else:
        sigma = np.asarray(sigma, dtype=float)
        if sigma.shape != (k.size, k.size) or not np.all(np.isfinite(sigma)):
            raise BayesDidError(f"sigma must be a finite {k.size} x {k.size} matrix, got shape "
                                f"{sigma.shape}", column="sigma")
        if not np.allclose(sigma, sigma.T, atol=1e-12 * max(1.0, np.abs(sigma).max())):
            raise BayesDidError("sigma must be symmetric", column="sigma")
        sigma = sigma[np.ix_(order, order)]
        if np.linalg.eigvalsh(sigma).min() < -1e-10 * max(1.0, np.abs(sigma).max()):
            raise BayesDidError("sigma is not positive semi-definite", column="sigma")
    return _Design(beta, sigma, k + 1, int(pre.size), l)


def _check_m(M) -> np.ndarray:
    m = np.atleast_1d(np.asarray(M, dtype=float))
    if m.ndim != 1 or m.size == 0 or not np.all(np.isfinite(m)) or (m < 0).any():
        raise BayesDidError(f"M must be finite numbers >= 0, got {M!r}", column="M")
    return m


# ---------------------------------------------------------------------- identified sets
def _rm_slopes(d: _Design) -> np.ndarray:
    """(n_pre x n_coef) contrasts a_j: the pre-period changes delta_{s+1} - delta_s."""
    A = np.zeros((d.n_pre, len(d.t)))
    for j in range(d.n_pre):  # change from t_j to t_{j+1} (the last one ends at delta_0 = 0)
        A[j, j] = -1.0
        if j + 1 < d.n_pre:
            A[j, j + 1] = 1.0
    return A


def _rm_lever(l: np.ndarray) -> float:
    """max l'delta_post over post changes bounded by 1: sum_r |sum_{t>=r} l_t|."""
    return float(np.abs(np.cumsum(l[::-1])[::-1]).sum())


def _sd_lever(l: np.ndarray) -> float:
    """max l'delta_post over post second differences (s = 0 .. T-1) bounded by 1."""
    t = np.arange(1, l.size + 1)
    return float(sum(abs(np.sum(l[t > s] * (t[t > s] - s))) for s in range(l.size)))


def identified_set(beta, event_times=None, *, restriction: str = "rm", M=DEFAULT_M,
                   l=None) -> pd.DataFrame:
    """Identified set of ``theta = l' tau_post`` when the coefficients ``beta`` are known
    (no sampling error), for each ``M``: columns ``M``, ``lower``, ``upper``.

    ``beta`` may be an :class:`EventStudyCoefficients`. Under ``"sd"`` the set is empty
    (NaN) when the leads' second differences already exceed ``M``.

    >>> ks = [-3, -2, 0, 1]
    >>> beta = 0.1 * (np.array(ks) + 1) + np.array([0, 0, 0.5, 0.5])  # trend + effect 0.5
    >>> identified_set(beta, ks, restriction="sd", M=[0]).round(6).to_dict("list")
    {'M': [0.0], 'lower': [0.5], 'upper': [0.5]}
    """
    if restriction not in RESTRICTIONS:
        raise BayesDidError(f"restriction must be one of {RESTRICTIONS}, got {restriction!r}")
    d = _design(beta, None, event_times, l, need_sigma=False)
    m = _check_m(M)
    pre, post = d.beta[: d.n_pre], d.beta[d.n_pre:]
    theta = float(d.l @ post)
    if restriction == "rm":
        S = float(np.abs(_rm_slopes(d) @ d.beta).max())
        half = m * S * _rm_lever(d.l)
        return pd.DataFrame({"M": m, "lower": theta - half, "upper": theta + half})
    path = np.r_[pre, 0.0]
    second = np.abs(np.diff(path, 2)) if path.size >= 3 else np.zeros(0)
    d0 = -pre[-1]  # delta_0 - delta_{-1}
    centre = theta - d0 * float(d.l @ np.arange(1, d.n_post + 1))
    half = m * _sd_lever(d.l)
    feasible = np.array([second.size == 0 or second.max() <= mm + 1e-12 for mm in m])
    return pd.DataFrame({"M": m, "lower": np.where(feasible, centre - half, np.nan),
                         "upper": np.where(feasible, centre + half, np.nan)})


# ---------------------------------------------------------------------- FLCI (smoothness)
def _sd_bias_map(d: _Design) -> np.ndarray:
    """K (n_coef x n_second): delta at the observed t = K w + c t, w the second
    differences at the interior periods, c the slope between t = 0 and t = 1."""
    times = np.r_[d.t[: d.n_pre], 0, d.t[d.n_pre:]]
    n = times.size
    B = np.zeros((n, n))
    for i in range(n - 2):
        B[i, i:i + 3] = (1.0, -2.0, 1.0)
    zero = d.n_pre  # index of t = 0
    B[n - 2, zero] = 1.0
    B[n - 1, zero], B[n - 1, zero + 1] = -1.0, 1.0
    Binv = np.linalg.inv(B)
    keep = np.r_[0:zero, zero + 1:n]
    return Binv[keep][:, : n - 2]


def _cv(b: float, level: float) -> float:
    """The ``level`` quantile of |N(b, 1)| (b >= 0)."""
    # hand-written: scipy's foldnorm.ppf is a generic root search, ~100x slower in the loop
    lo = b + stats.norm.ppf(level)
    hi = b + stats.norm.ppf(0.5 + level / 2)
    def f(c):
        return special.ndtr(c - b) - special.ndtr(-c - b) - level

    if f(lo) >= 0:  # b so large that the lower tail is nil
        return float(lo)
    return float(optimize.brentq(f, lo, hi, xtol=1e-14))


@dataclass(frozen=True)
class _Flci:
    v: np.ndarray
    sd: float
    bias: float  # worst-case bias per unit M
    half: float


def _flci(d: _Design, M: float, level: float) -> _Flci:
    """Fixed-length CI of Rambachan & Roth for Delta^SD(M): minimise the half-length over
    the weights on the leads (v_post = l, v blind to linear trends)."""
    alpha = 1 - level
    S = d.sigma
    npre = d.n_pre
    tp, tq = d.t[:npre].astype(float), d.t[npre:].astype(float)
    r = -float(d.l @ tq)  # constraint tp' v_pre = r
    K = _sd_bias_map(d)

    def full(vp):
        return np.r_[vp, d.l]

    def sd(vp):
        v = full(vp)
        return float(np.sqrt(max(v @ S @ v, 0.0)))

    def bias(vp):
        return float(np.abs(K.T @ full(vp)).sum())

    # minimum-variance weights (GLS linear extrapolation), in closed form
    Spp, Spq = S[:npre, :npre], S[:npre, npre:]
    Spp_inv_t = np.linalg.lstsq(Spp, tp, rcond=None)[0]
    Spp_inv_q = np.linalg.lstsq(Spp, Spq @ d.l, rcond=None)[0]
    lam = -(r + tp @ Spp_inv_q) / (tp @ Spp_inv_t)
    v_min = -(Spp_inv_q + lam * Spp_inv_t)
    z = stats.norm.ppf(1 - alpha / 2)
    if M == 0:
        h = sd(v_min)
        return _Flci(full(v_min), h, bias(v_min), z * h)

    # minimum-bias weights: an LP (HiGHS) in (v_pre, u), u >= |K'v|
    nw = K.shape[1]
    Kp, Kq = K[:npre].T, K[npre:].T @ d.l  # K'v = Kp v_pre + Kq
    c = np.r_[np.zeros(npre), np.ones(nw)]
    A_ub = np.block([[Kp, -np.eye(nw)], [-Kp, -np.eye(nw)]])
    b_ub = np.r_[-Kq, Kq]
    lp = optimize.linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=np.r_[tp, np.zeros(nw)][None, :],
                          b_eq=[r], bounds=[(None, None)] * npre + [(0, None)] * nw,
                          method="highs")
    if lp.status != 0:
        raise EstimationError(f"smoothness FLCI: the minimum-bias LP failed ({lp.message})")
    v_bmin = lp.x[:npre]

    def half(h, b):
        return h * _cv(M * b / h, level) if h > 0 else M * b

    def min_bias_at(h, start):
        """Smallest worst-case bias with sd(v) <= h (SLSQP; convex problem)."""
        x0 = np.r_[start, np.abs(Kp @ start + Kq) + 1e-12]
        cons = [
            {"type": "eq", "fun": lambda x: tp @ x[:npre] - r,
             "jac": lambda x: np.r_[tp, np.zeros(nw)]},
            {"type": "ineq", "fun": lambda x: b_ub - A_ub @ x,
             "jac": lambda x: -A_ub},
            {"type": "ineq", "fun": lambda x: h * h - full(x[:npre]) @ S @ full(x[:npre]),
             "jac": lambda x: np.r_[-2 * (S @ full(x[:npre]))[:npre], np.zeros(nw)]},
        ]
        res = optimize.minimize(lambda x: x[npre:].sum(), x0,
                                jac=lambda x: np.r_[np.zeros(npre), np.ones(nw)],
                                constraints=cons, method="SLSQP",
                                options={"maxiter": 500, "ftol": 1e-13})
        vp = res.x[:npre]
        # keep the better of the optimum and the (feasible) start
        return vp if bias(vp) <= bias(start) and sd(vp) <= h * (1 + 1e-6) else start

    h_lo, h_hi = sd(v_min), max(sd(v_bmin), sd(v_min))
    cands = [(half(h_lo, bias(v_min)), v_min), (half(sd(v_bmin), bias(v_bmin)), v_bmin)]
    if h_hi > h_lo * (1 + 1e-9):
        cache: dict[float, np.ndarray] = {}

        def objective(h):
            start = v_min if not cache else cache[min(cache, key=lambda g: abs(g - h))]
            vp = min_bias_at(h, start)
            cache[h] = vp
            return half(sd(vp), bias(vp))

        grid = np.linspace(h_lo, h_hi, 16)
        vals = [objective(h) for h in grid]
        i = int(np.argmin(vals))
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        if hi > lo:
            optimize.minimize_scalar(objective, bounds=(lo, hi), method="bounded",
                                     options={"xatol": 1e-6 * h_hi})
        cands += [(half(sd(vp), bias(vp)), vp) for vp in cache.values()]
    best, vp = min(cands, key=lambda hv: hv[0])
    # polish directly on the (non-smooth) half-length within the constraint's null space
    null = np.linalg.svd(tp[None, :])[2][1:].T
    if null.size:
        pol = optimize.minimize(lambda zz: half(sd(vp + null @ zz), bias(vp + null @ zz)),
                                np.zeros(null.shape[1]), method="Nelder-Mead",
                                options={"maxiter": 4000, "xatol": 1e-10, "fatol": 1e-14})
        if pol.fun < best:
            best, vp = float(pol.fun), vp + null @ pol.x
    return _Flci(full(vp), sd(vp), bias(vp), float(best))


# ---------------------------------------------------------------------- confidence sets
def honest_did(beta, sigma=None, event_times=None, *, restriction: str = "rm",
               M=DEFAULT_M, l=None, level: float = 0.95, random_seed: int = 0,
               n_sim: int = 100_000) -> EffectResult:
    """Confidence sets for ``theta = l' tau_post`` robust to parallel-trend violations
    ``delta in Delta^RM(Mbar)`` (``restriction="rm"``, ``M`` = Mbar) or
    ``Delta^SD(M)`` (``"sd"``); see the module docstring for the exact method.

    Parameters
    ----------
    beta, sigma, event_times : event-study coefficients for ``k = -L .. -2, 0 .. K`` (no
        reference ``-1``), their covariance, their event times; or an
        :class:`EventStudyCoefficients` as ``beta`` alone.
    M : the grid (default 0, 0.5, 1, 2). For ``"rm"`` relative to the largest pre-period
        change; for ``"sd"`` absolute, in outcome units per period squared.
    l : weights on the lags ``0 .. K`` (default: their average).
    level : confidence level. random_seed, n_sim : simulation of the ``"rm"`` critical value.

    Returns
    -------
    EffectResult with one row per ``M``: ``estimand="att_sensitivity"``, ``group="M=..."``,
    ``interval="confidence"``, ``method="honest_did_rm"`` or ``"honest_did_sd"``, and extra
    columns ``M``, ``restriction``, ``id_lower``/``id_upper`` (the identified set at the
    estimated coefficients). ``estimate`` is the interval's centre (``l'b_post`` under
    ``"rm"``, the FLCI's affine estimate under ``"sd"``) and ``se_or_sd`` its standard error.
    """
    if restriction not in RESTRICTIONS:
        raise BayesDidError(f"restriction must be one of {RESTRICTIONS}, got {restriction!r}")
    if not 0 < level < 1:
        raise BayesDidError(f"level must be in (0, 1), got {level}")
    n_post_obs = None
    if isinstance(beta, EventStudyCoefficients) and beta.n_obs is not None:
        n_post_obs = int(np.sum(np.asarray(beta.n_obs)[np.asarray(beta.event_times) >= 0]))
    d = _design(beta, sigma, event_times, l)
    m = _check_m(M)
    ident = identified_set(d.beta, d.t - 1, restriction=restriction, M=m, l=d.l)
    base = dict(estimand="att_sensitivity", level=level, interval="confidence",
                n_obs=n_post_obs, restriction=restriction)
    rows = []
    info: dict = {"restriction": restriction, "l": d.l.tolist(),
                  "event_times": (d.t - 1).tolist(), "level": level}
    if restriction == "rm":
        lvec = np.r_[np.zeros(d.n_pre), d.l]
        A = np.vstack([lvec, _rm_slopes(d)])
        C = A @ d.sigma @ A.T
        se = np.sqrt(np.clip(np.diag(C), 0.0, None))
        est = A @ d.beta
        z = stats.norm.ppf(0.5 + level / 2)
        rng = np.random.default_rng(random_seed)
        # sup-t critical value of the simultaneous box (simulated: no closed form)
        draws = rng.multivariate_normal(np.zeros(len(C)), C, size=n_sim, method="eigh")
        ratio = np.abs(np.divide(draws, se, out=np.zeros_like(draws), where=se > 0))
        c_box = float(np.quantile(ratio.max(axis=1), level))
        lever = _rm_lever(d.l)
        s_upper = float(np.max(np.abs(est[1:]) + c_box * se[1:]))
        info.update(critical_value_box=c_box, s_upper=s_upper, lever=lever,
                    s_hat=float(np.abs(est[1:]).max()), method="sup-t projection")
        for mm, (_, idr) in zip(m, ident.iterrows()):
            half = z * se[0] if mm == 0 else c_box * se[0] + mm * lever * s_upper
            rows.append(dict(base, group=group_label(M=mm), estimate=est[0], se_or_sd=se[0],
                             lower=est[0] - half, upper=est[0] + half, M=mm,
                             id_lower=idr["lower"], id_upper=idr["upper"]))
        return EffectResult.from_rows(rows, method="honest_did_rm", info=info)

    info["method"] = "FLCI (Rambachan & Roth 2023, Sec. 4)"
    info["weights"] = {}
    for mm, (_, idr) in zip(m, ident.iterrows()):
        fl = _flci(d, float(mm), level)
        est = float(fl.v @ d.beta)
        info["weights"][float(mm)] = fl.v.tolist()
        rows.append(dict(base, group=group_label(M=mm), estimate=est, se_or_sd=fl.sd,
                         lower=est - fl.half, upper=est + fl.half, M=mm,
                         id_lower=idr["lower"], id_upper=idr["upper"]))
    return EffectResult.from_rows(rows, method="honest_did_sd", info=info)
