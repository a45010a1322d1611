"""Stochastic frontier analysis by maximum likelihood.

:func:`sfa` fits production or cost frontiers (Cobb-Douglas in logs, or any linear form
you build as columns) with normal-half-normal, normal-exponential or
normal-truncated-normal errors, and the Battese-Coelli (1992) panel model with
time-decaying (``u_it = exp(-eta (t - T_i)) u_i``) or time-invariant (``eta = 0``)
inefficiency. It returns a frozen :class:`SFAResult` with the coefficient table, the
log-likelihood, JLMS and Battese-Coelli efficiency scores with their conditional standard
deviations and Horrace-Schmidt (1996) bounds, and the likelihood-ratio test of no
inefficiency (mixed chi-bar-square; Kodde-Palm 1986 critical values).

Several outputs and undesirable outputs (the eco-efficiency setting). Give ``y`` a list
of desirable outputs and/or ``undesirable=[...]``: the frontier becomes a Cobb-Douglas
*output distance function* with linear homogeneity in the desirable outputs,
``-ln y1 = b0 + b'ln x + g'ln(y_j / y1) + d'ln b + v + u``: inefficiency raises
``-ln y1`` (cost-type sign) and ``exp(-u)`` is the output distance (Shephard) efficiency.
Each undesirable output enters as an input (more pollution is what the technology needs
to make more output; weak disposability is not imposed), the simple and common choice.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats
from statsmodels.tools.numdiff import approx_fprime, approx_hess3

from ..errors import (
    BayesDidError,
    ConvergenceError,
    EstimationError,
    NonPositiveValueError,
)
from ..results import Result, check_interval, check_level, group_label, tidy_table
from . import _sfa_math as m
from .frontier import FRONTIERS, MODELS, FrontierDesign, frontier_design

logger = logging.getLogger(__name__)

__all__ = [
    "FrontierDesign",
    "NonPositiveValueError",
    "SFAResult",
    "chibar_critical",
    "chibar_pvalue",
    "frontier_design",
    "sfa",
]

# ---------------------------------------------------------------------- chi-bar-square
def chibar_pvalue(stat: float, df: int) -> float:
    """p-value of the LR test of no inefficiency: ``0.5 chi2(df-1) + 0.5 chi2(df)``
    (``df=1``: ``0.5 chi2(0) + 0.5 chi2(1)``), the Kodde-Palm (1986) upper bound.

    >>> round(chibar_pvalue(2.7055, 1), 3)
    0.05
    """
    stat = max(float(stat), 0.0)
    low = stats.chi2.sf(stat, df - 1) if df > 1 else float(stat <= 0)
    return float(0.5 * low + 0.5 * stats.chi2.sf(stat, df))


def chibar_critical(alpha: float, df: int) -> float:
    """Critical value of the mixed chi-square (Kodde-Palm Table 1: 2.706, 5.138, 7.045
    for df 1, 2, 3 at 5%).

    >>> round(chibar_critical(0.05, 2), 3)
    5.138
    """
    return float(optimize.brentq(lambda c: chibar_pvalue(c, df) - alpha, 1e-9, 200.0))


# ---------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False, repr=False)
class SFAResult(Result):
    """A fitted stochastic frontier (never modified after it is returned).

    A :class:`~bayesdid.results.Result`, not an EffectResult: frontier coefficients and
    per-observation efficiencies, not treatment effects.

    Attributes
    ----------
    coef : coefficient table (``term``, ``estimate``, ``se``, ``z``, ``p_value``,
        ``lower``, ``upper``): frontier coefficients then ``sigma_v``, ``sigma_u``,
        ``lambda`` (= sigma_u / sigma_v), and ``mu`` / ``eta`` when estimated.
        For the exponential model ``sigma_u`` is the mean (= sd) of ``u``.
    loglik, loglik_ols : maximised log-likelihood and that of OLS (no inefficiency).
    efficiency : one row per observation: the unit/time labels, ``residual``,
        ``u_jlms`` = E[u|e] and ``u_sd``, ``te_jlms`` = exp(-E[u|e]), ``te_bc`` =
        E[exp(-u)|e] (Battese-Coelli) and ``te_bc_sd``, ``lower``/``upper``:
        Horrace-Schmidt bounds on exp(-u) at ``level``.
    lr_test : ``statistic``, ``df``, ``p_value``, ``critical_5pct`` (mixed chi-bar-square).
    """

    coef: pd.DataFrame
    loglik: float
    loglik_ols: float
    efficiency: pd.DataFrame
    lr_test: dict[str, float]
    frontier: str
    distribution: str
    model: str
    n_obs: int
    level: float
    info: dict[str, Any] = field(default_factory=dict)
    # (mu_star, s_star, scale) of u | e per row, and the unit codes (None: cross-section)
    _cond: tuple = field(default=(), repr=False)

    @property
    def method(self) -> str:
        return self.info["method"]

    def effects(self, level: float | None = None, interval: str | None = None) -> pd.DataFrame:
        """Tidy efficiency table: ``estimand="efficiency"``, one row per observation
        with ``group`` ``unit=...`` (``unit=..., time=...`` in panels; ``obs=i`` when no
        unit was given); estimate = Battese-Coelli E[exp(-u)|e], ``se_or_sd`` its
        conditional sd, bounds Horrace-Schmidt. The first row, group ``overall``, is the
        mean efficiency. Coefficients are in :attr:`coef`."""
        check_level(level)
        check_interval(self, interval, ("confidence",))
        level = self.level if level is None else level
        eff = self.efficiency
        lo, hi = self._bounds(level)
        idcols = list(self.info["id_columns"])
        groups = [group_label(**{c: row[c] for c in idcols}) for _, row in eff[idcols].iterrows()]
        rows = pd.DataFrame({"estimand": "efficiency", "group": groups,
                             "estimate": eff["te_bc"], "se_or_sd": eff["te_bc_sd"],
                             "lower": lo, "upper": hi, "level": level,
                             "interval": "confidence", "method": self.info["method"],
                             "n_obs": 1})
        overall = {"estimand": "efficiency", "group": "overall",
                       "estimate": float(eff["te_bc"].mean()), "se_or_sd": np.nan, "lower": np.nan,
                       "upper": np.nan, "level": level, "interval": "confidence",
                       "method": self.info["method"], "n_obs": len(eff)}
        return tidy_table(pd.concat([pd.DataFrame([overall]), rows], ignore_index=True))

    def _bounds(self, level: float):
        mu_s, s_s, scale, _ = self._cond
        return m.horrace_schmidt(mu_s, s_s, level, scale)

    def efficiency_draws(self, n_draws: int = 100, random_seed: int | None = 0) -> pd.DataFrame:
        """Draws of exp(-u) from its conditional law given the MLE (prediction
        uncertainty only; parameter uncertainty is not included): rows as
        :attr:`efficiency`, one column per draw. In the panel models each draw takes one
        ``u_i`` per unit from ``u_i | e_i`` and scales it by the BC92 decay, so a
        time-invariant unit keeps one efficiency across its years within a draw."""
        mu_s, s_s, scale, unit_idx = self._cond
        rng = np.random.default_rng(random_seed)
        if unit_idx is None:  # cross-section: one u per row
            u = m.draw_u(mu_s[:, None], s_s[:, None] * np.ones((1, n_draws)), rng)
        else:  # (mu_s, s_s) repeat the unit's values on each of its rows
            first = np.unique(unit_idx, return_index=True)[1]
            u_i = m.draw_u(mu_s[first][:, None], s_s[first][:, None] * np.ones((1, n_draws)),
                           rng)
            u = np.asarray(scale)[:, None] * u_i[unit_idx]
        idx = pd.MultiIndex.from_frame(self.efficiency[list(self.info["id_columns"])])
        return pd.DataFrame(np.exp(-u), index=idx)

    def summary(self) -> pd.DataFrame:
        """The coefficient table (:attr:`coef`, a copy); efficiencies are in :meth:`effects`."""
        return self.coef.copy()

    def to_frame(self) -> pd.DataFrame:
        """One row per observation: efficiencies and their bounds (:attr:`efficiency`)."""
        return self.efficiency.copy()

    def _describe(self, digits: int = 4) -> str:
        return (f"{self.frontier}, {self.distribution}, {self.model}; n={self.n_obs}; "
                f"loglik={self.loglik:.{digits}f}; LR={self.lr_test['statistic']:.3f} "
                f"(p={self.lr_test['p_value']:.4g}); mean TE(BC)="
                f"{self.efficiency['te_bc'].mean():.4f}")

    def plot(self, ax=None, **kwargs):
        """Efficiency and its Horrace-Schmidt bounds per observation, sorted (see
        :func:`bayesdid.report.sfa_plots.plot_efficiency_intervals`). Returns a Figure."""
        from ..report.sfa_plots import plot_efficiency_intervals

        kwargs.setdefault("level", self.level)
        return plot_efficiency_intervals(self, ax=ax, **kwargs)


# ---------------------------------------------------------------------- fitting
def _unpack(theta, k, distribution, model):
    beta = theta[:k]
    sv, su = np.exp(theta[k]), np.exp(theta[k + 1])
    pos = k + 2
    mu = 0.0
    if distribution == "truncated_normal":
        mu = theta[pos]
        pos += 1
    eta = theta[pos] if model == "bc92" else 0.0
    return beta, sv, su, mu, eta


def _scale(design: FrontierDesign, eta: float) -> np.ndarray:
    last = np.zeros(design.n_units)
    np.maximum.at(last, design.unit_idx, design.time_values)
    return np.exp(-eta * (design.time_values - last[design.unit_idx]))


def _negll(theta, design: FrontierDesign, distribution: str, model: str) -> float:
    k = design.X.shape[1]
    beta, sv, su, mu, eta = _unpack(theta, k, distribution, model)
    e = design.sign * (design.y - design.X @ beta)
    if model == "cross_section":
        ll = m.loglik_cross(e, sv, su, distribution, mu)
    else:
        ll = m.loglik_panel(e, design.unit_idx, _scale(design, eta), design.n_units, sv, su, mu)
    total = float(np.sum(ll))
    return -total if np.isfinite(total) else 1e300


def _starts(design: FrontierDesign, distribution: str, model: str, rng) -> list[np.ndarray]:
    """OLS + method-of-moments (COLS) start, then OLS with sigma_u = sigma_v, then jitter."""
    X, y = design.X, design.y
    b_ols, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = design.sign * (y - X @ b_ols)
    m2, m3 = np.mean(r**2), np.mean(r**3)
    if distribution == "exponential":
        su = (-m3 / 2) ** (1 / 3) if m3 < 0 else np.nan
        sv2 = m2 - su**2
        shift = su
    else:
        c = np.sqrt(2 / np.pi) * (1 - 4 / np.pi)
        su = (m3 / c) ** (1 / 3) if m3 < 0 else np.nan
        sv2 = m2 - (1 - 2 / np.pi) * su**2
        shift = np.sqrt(2 / np.pi) * su
    extra = [0.0] * (distribution == "truncated_normal") + [0.0] * (model == "bc92")
    out = []
    if np.isfinite(su) and sv2 > 0:
        b = b_ols.copy()
        b[0] += design.sign * shift
        out.append(np.r_[b, 0.5 * np.log(sv2), np.log(su), extra])
    half = 0.5 * np.log(m2 / 2)
    b = b_ols.copy()
    b[0] += design.sign * np.sqrt(m2 / 2) * 0.8
    out.append(np.r_[b, half, half, extra])
    for _ in range(3):
        out.append(out[-1] + rng.normal(0, 0.1, size=out[-1].size))
    return out


def sfa(data: pd.DataFrame, *, y: str | Sequence[str], x: Sequence[str],
        undesirable: Sequence[str] = (),
        frontier: Literal["production", "cost"] = "production",
        distribution: Literal["half_normal", "exponential", "truncated_normal"] = "half_normal",
        model: Literal["cross_section", "bc92", "time_invariant"] = "cross_section",
        unit: str | None = None, time: str | None = None, log: bool = True,
        level: float = 0.95, maxiter: int = 2000, random_seed: int = 0) -> SFAResult:
    """Fit a stochastic frontier by maximum likelihood.

    Parameters
    ----------
    y : the output (production), the cost (cost frontier), or a list of desirable
        outputs (output distance function, see the module docstring).
    x : inputs (production) or output and input prices (cost); logged when ``log``.
        Cost frontiers are usually normalised by one price (divide cost and the other
        prices by it first) to impose linear homogeneity.
    undesirable : undesirable outputs (e.g. a pollutant), entered as inputs of an
        output distance function.
    frontier : ``"production"`` (``y = f(x) + v - u``) or ``"cost"`` (``+ u``).
    distribution : of ``u``: ``"half_normal"``, ``"exponential"``, ``"truncated_normal"``.
    model : ``"cross_section"`` (a ``u`` per row), ``"bc92"`` (Battese-Coelli 1992,
        ``u_it = exp(-eta (t - T_i)) u_i``; needs ``unit`` and ``time``; half-normal or
        truncated normal) or ``"time_invariant"`` (``eta = 0``).
    log : take logs of every column (they must be positive).
    level : level of the Horrace-Schmidt efficiency bounds and coefficient intervals.
    random_seed : seeds the jittered extra starting values.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> k = rng.lognormal(size=300)
    >>> q = np.exp(1.0 + 0.6 * np.log(k) + rng.normal(0, 0.1, 300)
    ...            - np.abs(rng.normal(0, 0.3, 300)))
    >>> res = sfa(pd.DataFrame({"q": q, "k": k}), y="q", x=["k"])
    >>> round(float(res.coef.set_index("term").loc["ln_k", "estimate"]), 1)
    0.6
    >>> bool(res.lr_test["p_value"] < 0.01)
    True
    """
    if distribution not in m.DISTRIBUTIONS:
        raise BayesDidError(f"distribution must be one of {m.DISTRIBUTIONS}, "
                            f"got {distribution!r}")
    if model not in MODELS:
        raise BayesDidError(f"model must be one of {MODELS}, got {model!r}")
    if model != "cross_section":
        if unit is None or (model == "bc92" and time is None):
            raise BayesDidError(f"model={model!r} needs unit= (and time= for 'bc92')")
        if distribution == "exponential":
            raise BayesDidError("the panel models take distribution='half_normal' or "
                                "'truncated_normal'")
    if not 0 < level < 1:
        raise BayesDidError(f"level must be in (0, 1), got {level}")
    design = frontier_design(data, y=y, x=x, undesirable=undesirable, frontier=frontier,
                             log=log, unit=unit, time=time)
    n, k = design.X.shape
    n_par = k + 2 + (distribution == "truncated_normal") + (model == "bc92")
    if n <= n_par:
        raise EstimationError(f"{n} observations for {n_par} parameters")
    b_ols, *_ = np.linalg.lstsq(design.X, design.y, rcond=None)
    resid = design.sign * (design.y - design.X @ b_ols)
    ll_ols = -0.5 * n * (m.LOG2PI + np.log(np.mean(resid**2)) + 1)
    skew = float(stats.skew(resid))
    if skew > 0:
        warnings.warn(f"OLS residuals are skewed the wrong way (skewness {skew:.3f} of "
                      f"v - u): the data show no {design.kind} inefficiency and the MLE "
                      "tends to sigma_u -> 0 (OLS)", RuntimeWarning, stacklevel=2)
    rng = np.random.default_rng(random_seed)
    best, tried = None, []
    for start in _starts(design, distribution, model, rng):
        theta_hat, fun, ok, msg = _maximise(start, design, distribution, model, maxiter)
        tried.append((fun, msg))
        last_theta = theta_hat
        if ok and (best is None or fun < best[1] - 1e-9):
            best = (theta_hat, fun, msg)
        if ok and sum(1 for f, _ in tried if abs(f - fun) < 1e-6) >= 2:
            break  # two starts agree on the optimum
    if best is None:
        hint = ("rescale the data (divide each variable by its mean before logs), try "
                "distribution='half_normal' (fewer parameters), check that the OLS "
                "residuals are skewed the right way, or raise maxiter")
        if distribution == "truncated_normal":
            _, _, su_, mu_, _ = _unpack(last_theta, k, distribution, model)
            if mu_ / su_ < -3:
                hint = (f"mu/sigma_u drifted to {mu_ / su_:.3g}: the truncated normal is "
                        "heading for its exponential limit (mu -> -inf); fit "
                        "distribution='exponential' instead. Otherwise: " + hint)
        raise ConvergenceError(
            f"the {distribution} {model} SFA likelihood did not converge from "
            f"{len(tried)} starting values (last: {tried[-1][1]})", hint=hint)
    theta = best[0]
    beta, sv, su, mu, eta = _unpack(theta, k, distribution, model)
    if distribution == "truncated_normal" and mu / su < EXPONENTIAL_LIMIT:
        # far in the left tail the truncated normal is an exponential with mean su^2/|mu|:
        # the likelihood is flat along that ridge, so the "optimum" is where the optimizer
        # stopped (optimizer versions disagree), not an estimate
        raise ConvergenceError(
            f"the truncated-normal {model} SFA likelihood has no interior maximum: mu/sigma_u "
            f"went to {mu / su:.3g} (mu = {mu:.4g}, sigma_u = {su:.4g}), the exponential limit "
            "(mu -> -inf)", hint="fit distribution='exponential' instead")
    coef = _coef_table(theta, design, distribution, model, level)
    e = design.sign * (design.y - design.X @ beta)
    if model == "cross_section":
        mu_s, s_s = m.conditional_cross(e, sv, su, distribution, mu)
        scale = 1.0
    else:
        scale = _scale(design, eta)
        mu_u, s_u = m.panel_conditional(e, design.unit_idx, scale, design.n_units, sv, su, mu)
        mu_s, s_s = mu_u[design.unit_idx], s_u[design.unit_idx]
    u_mean, u_sd = m.jlms(mu_s, s_s, scale)
    te, te_sd = m.battese_coelli(mu_s, s_s, scale)
    lo, hi = m.horrace_schmidt(mu_s, s_s, level, scale)
    eff = design.index.copy()
    eff["residual"] = design.y - design.X @ beta
    eff["u_jlms"], eff["u_sd"], eff["te_jlms"] = u_mean, u_sd, np.exp(-u_mean)
    eff["te_bc"], eff["te_bc_sd"], eff["lower"], eff["upper"] = te, te_sd, lo, hi
    df_lr = 1 + (distribution == "truncated_normal") + (model == "bc92")
    stat = max(0.0, 2 * (-best[1] - ll_ols))
    lr = {"statistic": stat, "df": df_lr, "p_value": chibar_pvalue(stat, df_lr),
              "critical_5pct": chibar_critical(0.05, df_lr)}
    info = {"method": f"sfa_{distribution}" + ("" if model == "cross_section" else f"_{model}"),
                "id_columns": tuple(design.index.columns), "kind": design.kind,
                "ols_skewness": skew, "n_units": design.n_units, "theta": theta.tolist(),
                "optimizer_message": str(best[2]), "n_starts": len(tried),
                "spec": {"y": y, "x": list(x), "undesirable": list(undesirable), "frontier": frontier,
                          "log": log, "unit": unit, "time": time}}
    return SFAResult(coef=coef, loglik=float(-best[1]), loglik_ols=float(ll_ols),
                     efficiency=eff, lr_test=lr, frontier=design.kind,
                     distribution=distribution, model=model, n_obs=n, level=level,
                     info=info, _cond=(mu_s, s_s, scale,
                                       None if model == "cross_section" else design.unit_idx))


EXPONENTIAL_LIMIT = -10.0  # mu/sigma_u below this: the truncated normal is an exponential


def _maximise(start, design, distribution, model, maxiter):
    """BFGS with central-difference gradients, then Newton steps on the numerical
    Hessian; converged when the Newton decrement g'H^-1 g is below 1e-8."""
    args = (design, distribution, model)
    fun = lambda t: _negll(t, *args)
    res = optimize.minimize(fun, start, method="BFGS", jac="3-point",
                            options={"maxiter": maxiter, "gtol": 1e-6})
    theta, f = res.x, res.fun
    if not (np.isfinite(f) and f < 1e299):
        return theta, f, False, "non-finite likelihood"
    for _ in range(8):
        g = approx_fprime(theta, fun, centered=True)
        try:
            step = np.linalg.solve(approx_hess3(theta, fun), g)
        except np.linalg.LinAlgError:
            return theta, f, False, "singular Hessian"
        dec = float(g @ step)
        if 0 <= dec < 1e-8:
            return theta, f, True, res.message
        t = 1.0
        while t > 1e-4:
            cand = theta - t * step
            fc = fun(cand)
            if fc <= f:
                theta, f = cand, fc
                break
            t /= 2
        else:
            return theta, f, False, f"no Newton progress (decrement {dec:.2e})"
    return theta, f, False, f"Newton decrement above tolerance ({dec:.2e})"


def _coef_table(theta, design, distribution, model, level) -> pd.DataFrame:
    k = design.X.shape[1]
    fun = lambda t: _negll(t, design, distribution, model)
    try:
        cov = np.linalg.inv(approx_hess3(theta, fun))
        se_raw = np.sqrt(np.diag(cov))
    except np.linalg.LinAlgError:
        cov, se_raw = None, np.full(theta.size, np.nan)
    if not np.all(np.isfinite(se_raw)):
        warnings.warn("the Hessian at the MLE is not positive definite: standard errors are "
                      "unavailable (the optimum may sit on a boundary, e.g. sigma_u -> 0)",
                      RuntimeWarning, stacklevel=3)
    beta, sv, su, mu, eta = _unpack(theta, k, distribution, model)
    rows = [(n, b, s) for n, b, s in zip(design.names, beta, se_raw[:k])]
    rows.append(("sigma_v", sv, sv * se_raw[k]))
    rows.append(("sigma_u", su, su * se_raw[k + 1]))
    lam_se = np.nan
    if cov is not None:  # delta method on log(lambda) = log su - log sv
        var = cov[k + 1, k + 1] + cov[k, k] - 2 * cov[k, k + 1]
        lam_se = su / sv * np.sqrt(max(var, 0.0))
    rows.append(("lambda", su / sv, lam_se))
    pos = k + 2
    if distribution == "truncated_normal":
        rows.append(("mu", mu, se_raw[pos]))
        pos += 1
    if model == "bc92":
        rows.append(("eta", eta, se_raw[pos]))
    table = pd.DataFrame(rows, columns=["term", "estimate", "se"])
    q = stats.norm.ppf(0.5 + level / 2)
    table["z"] = table["estimate"] / table["se"]
    table["p_value"] = 2 * stats.norm.sf(np.abs(table["z"]))
    table["lower"] = table["estimate"] - q * table["se"]
    table["upper"] = table["estimate"] + q * table["se"]
    return table
