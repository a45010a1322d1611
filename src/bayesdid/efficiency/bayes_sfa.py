"""BayesianSFA: stochastic frontiers in PyMC, with an efficiency posterior per unit-year.

The frontier is ``y = X b + v - s u`` (``s = +1`` production, ``-1`` cost frontier or
output distance function; see :func:`bayesdid.efficiency.sfa.frontier_design`, which also
states how undesirable outputs are handled: as inputs of an output distance function).

Speed: NUTS never sees the N inefficiencies. The likelihood integrates ``u`` out in closed
form (the same densities as the MLE, written with a stable log-normal-cdf), so the sampler
moves only the frontier coefficients (on standardised regressors) and the few scale
parameters; every gradient is one vectorised pass. Given each posterior draw of the
parameters, ``u | e`` is a normal truncated at zero, and ``u`` is drawn from it exactly
afterwards (inversion); ``exp(-u)`` draws carry both parameter and prediction
uncertainty. In the panel forms the conditional law is that of the unit's ``u_i`` given
all of the unit's residuals (Battese-Coelli 1992): each draw takes one ``u_i`` per unit
and gives year ``t`` the efficiency ``exp(-exp(-eta (t - T_i)) u_i)``, so a
time-invariant unit has one efficiency per draw.

Inefficiency over time (``inefficiency=``):

- ``"cross_section"``: one ``u`` per row (pooled panel: fully time-varying, no unit link);
- ``"bc92"``: ``u_it = exp(-eta (t - T_i)) u_i`` (Battese-Coelli 1992 time decay of a unit
  effect); half-normal or truncated-normal ``u_i``;
- ``"time_invariant"``: ``u_it = u_i``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from pymc.distributions.dist_math import normal_lcdf

from . import _sfa_math as m
from ._efficiency_draws import cross_section_draws, panel_draws
from .sfa import FrontierDesign, _starts, frontier_design
from ..errors import BayesDidError
from ..panel import Panel
from ..results import group_label
from ..did.priors import PositivePriors
from ..bayes.model import BayesianModel, panel_first
from ..bayes.notices import warn_ignored_design
from ..bayes.convergence import diagnostics_table
from ..bayes.result import BayesResult
from ..bayes.sampling import choose_sampler, resolve_seed, sample

__all__ = ["BayesSFAResult", "BayesianSFA", "SFAPriors"]

INEFFICIENCY = ("cross_section", "bc92", "time_invariant")
HALF_LOG2PI = 0.5 * m.LOG2PI


@dataclass(frozen=True)
class SFAPriors(PositivePriors):
    """Prior scales (JSON-serialisable).

    beta_sd : Normal sd of each slope per sd of its (logged) regressor, in sds of ``y``.
    intercept_sd : Normal sd of the intercept at the regressor means, in sds of ``y``.
    sigma_v, sigma_u : HalfNormal scales of the noise sd and of the inefficiency scale
        (log points: 1.0 is very wide). For the exponential, sigma_u is the mean of u.
    mu_sd : Normal sd of the truncated normal's location. eta_sd : Normal sd of the decay.
    """

    beta_sd: float = 5.0
    intercept_sd: float = 10.0
    sigma_v: float = 1.0
    sigma_u: float = 1.0
    mu_sd: float = 1.0
    eta_sd: float = 0.2


@dataclass(frozen=True, eq=False, repr=False)
class BayesSFAResult(BayesResult):
    """:class:`BayesResult` of a frontier: ``effects()`` are efficiencies (estimand
    ``efficiency``; group ``overall`` = mean efficiency, then one row per observation,
    ``unit=..., time=...``).

    Convergence is diagnosed on the sampled parameters, ``beta`` and the overall mean
    efficiency, not on each observation's efficiency: those are exact conditional draws
    given each parameter draw (independent across draws), so they mix as the parameters
    do, and R-hat/ESS over thousands of them cost more than the sampling itself."""

    @classmethod
    def _diagnose(cls, idata, sampled_vars) -> pd.DataFrame:
        return _parameter_diagnostics(idata, sampled_vars)

    def diagnostics(self, warn: bool = True) -> pd.DataFrame:
        """As :meth:`BayesResult.diagnostics`, on the parameters and the overall mean
        efficiency (see the class docstring)."""
        if self.__dict__.get("_diagnostics") is None:
            object.__setattr__(self, "_diagnostics", _parameter_diagnostics(
                self.idata, self.info.get("sampled_vars", [])))
        return super().diagnostics(warn=warn)

    def efficiency_draws(self) -> pd.DataFrame:
        """Posterior draws of efficiency ``exp(-u)``: one row per observation (indexed by
        unit and time, or obs), one column per draw (chains stacked). In the panel forms a
        column holds one ``u_i`` per unit, scaled by the BC92 decay (constant over a
        time-invariant unit's years)."""
        eff = self.idata.posterior["effect"].isel(effect_id=slice(1, None))
        draws = eff.stack(sample=("chain", "draw")).transpose("effect_id", "sample").values
        draws = draws.astype(float, copy=False)  # a stored (thinned) posterior is float32
        const = self.idata.constant_data
        names = [str(n) for n in np.atleast_1d(const.attrs.get("id_columns", ["obs"]))]
        cols = {n: const[f"obs_{n}"].values for n in names}
        return pd.DataFrame(draws, index=pd.MultiIndex.from_arrays(list(cols.values()),
                                                                    names=list(cols)))

    def summary(self) -> pd.DataFrame:
        """The frontier coefficients and scale parameters (:meth:`coef_table`); the
        efficiencies are in :meth:`effects`."""
        return self.coef_table()

    def _describe(self) -> str:
        return f"method={self.method!r} observations={len(self.table) - 1}"

    def plot(self, ax=None, **kwargs):
        """Efficiency and its HDI per observation, sorted (see
        :func:`bayesdid.report.sfa_plots.plot_efficiency_intervals`). Returns a Figure."""
        from ..report.sfa_plots import plot_efficiency_intervals

        return plot_efficiency_intervals(self, ax=ax, **kwargs)

    def coef_table(self) -> pd.DataFrame:
        """Posterior mean, sd and 95% equal-tailed interval of the frontier coefficients
        and scale parameters."""
        post = self.idata.posterior
        rows = []
        beta = post["beta"].stack(sample=("chain", "draw")).transpose("term", "sample")
        for name, d in zip(beta["term"].values, beta.values):
            rows.append((str(name), d))
        for name in ("sigma_v", "sigma_u", "mu", "eta"):
            if name in post:
                rows.append((name, post[name].values.reshape(-1)))
        return pd.DataFrame([{"term": n, "mean": d.mean(), "sd": d.std(ddof=1),
                                  "lower": np.quantile(d, 0.025), "upper": np.quantile(d, 0.975)}
                             for n, d in rows])


class BayesianSFA(BayesianModel):
    """Bayesian stochastic frontier (production, cost, or output distance function).

    Parameters
    ----------
    y, x, undesirable, frontier, log : the frontier, as in
        :func:`bayesdid.efficiency.sfa.sfa`.
    unit, time : id columns (default: the panel's, when fitting a :class:`Panel`).
    distribution : ``"half_normal"``, ``"exponential"`` or ``"truncated_normal"``.
    inefficiency : ``"cross_section"``, ``"bc92"`` or ``"time_invariant"`` (see module).
    priors : :class:`SFAPriors`.

    ``fit``, ``build`` and ``prepare`` take a :class:`~bayesdid.panel.Panel` or a DataFrame.

    Examples
    --------
    >>> from bayesdid.datasets.simulate_efficiency import simulate_efficiency
    >>> sim = simulate_efficiency(n_units=20, years=(2005, 2010), batches={2007: 4},
    ...                           random_seed=2)
    >>> model = BayesianSFA(**sim.params["sfa_kwargs"]).build(sim.data)
    >>> sorted(v.name for v in model.free_RVs)
    ['intercept_mean', 'sigma_u', 'sigma_v', 'theta']
    """

    priors_class = SFAPriors

    def __init__(self, y: str | Sequence[str], x: Sequence[str], *,
                 undesirable: Sequence[str] = (),
                 frontier: Literal["production", "cost"] = "production",
                 distribution: Literal["half_normal", "exponential",
                                       "truncated_normal"] = "half_normal",
                 inefficiency: Literal["cross_section", "bc92",
                                       "time_invariant"] = "cross_section",
                 unit: str | None = None, time: str | None = None, log: bool = True,
                 priors: SFAPriors | None = None):
        if distribution not in m.DISTRIBUTIONS:
            raise BayesDidError(f"distribution must be one of {m.DISTRIBUTIONS}, "
                                f"got {distribution!r}")
        if inefficiency not in INEFFICIENCY:
            raise BayesDidError(f"inefficiency must be one of {INEFFICIENCY}, "
                                f"got {inefficiency!r}")
        if inefficiency != "cross_section" and distribution == "exponential":
            raise BayesDidError("the panel forms take distribution='half_normal' or "
                                "'truncated_normal'")
        self.y = y if isinstance(y, str) else tuple(y)
        self.x = tuple([x] if isinstance(x, str) else x)
        self.undesirable = tuple([undesirable] if isinstance(undesirable, str) else undesirable)
        self.frontier, self.distribution, self.inefficiency = frontier, distribution, inefficiency
        self.unit, self.time, self.log = unit, time, bool(log)
        self.priors = self._resolve_priors(priors)

    def config(self) -> dict:
        return {"y": self.y, "x": self.x, "undesirable": self.undesirable,
                "frontier": self.frontier, "distribution": self.distribution,
                "inefficiency": self.inefficiency, "unit": self.unit, "time": self.time,
                "log": self.log, "priors": self.priors.to_dict()}

    # ------------------------------------------------------------------ design / graph
    @panel_first
    def prepare(self, panel: pd.DataFrame | Panel) -> FrontierDesign:
        """The frontier's arrays (no PyMC)."""
        unit, time, data = self.unit, self.time, panel
        if isinstance(panel, Panel):
            unit, time = unit or panel.unit, time or panel.time
            data = panel.frame
        if self.inefficiency != "cross_section" and (unit is None or time is None):
            raise BayesDidError(f"inefficiency={self.inefficiency!r} needs unit= and time=")
        return frontier_design(data, y=self.y, x=self.x, undesirable=self.undesirable,
                               frontier=self.frontier, log=self.log, unit=unit, time=time)

    @panel_first
    def build(self, panel: pd.DataFrame | Panel) -> pm.Model:
        """The PyMC model (pure: no sampling)."""
        return self._build(self.prepare(panel))

    def _build(self, d: FrontierDesign) -> pm.Model:
        p = self.priors
        y = d.y
        q_star, r_inv, x_mean, x_sd = _whiten(d.X)
        y_sd = float(np.std(y)) or 1.0
        coords = {"term": list(d.names), "term_std": list(d.names[1:])}
        with pm.Model(coords=coords) as model:
            # data and data-scaled prior scales are shared variables, not constants, so the
            # compiled C code does not depend on the data set and is reused from the cache
            y_d, q_d = pm.Data("y", y), pm.Data("Q", q_star)
            xm_d, xs_d, ri_d = pm.Data("x_mean", x_mean), pm.Data("x_sd", x_sd), pm.Data(
                "R_inv", r_inv)
            scales = pm.Data("prior_scales", np.array([p.beta_sd * y_sd, float(np.mean(y)),
                                                       p.intercept_sd * y_sd]))
            # QR-whitened slopes (theta = R beta_std): uncorrelated in the posterior even
            # when the logged inputs move together, as city inputs do
            theta = pm.Normal("theta", 0.0, scales[0], dims="term_std")
            # the regression-mean intercept; the frontier intercept adds E[u] back, which
            # removes the intercept-sigma_u ridge
            a_m = pm.Normal("intercept_mean", scales[1], scales[2])
            slopes = pt.dot(ri_d, theta) / xs_d
            sv = pm.HalfNormal("sigma_v", p.sigma_v)
            su = pm.HalfNormal("sigma_u", p.sigma_u)
            mu = (pm.Normal("mu", 0.0, p.mu_sd) if self.distribution == "truncated_normal"
                  else pt.constant(0.0))
            a_c = a_m + d.sign * _mean_u(su, mu, self.distribution)
            pm.Deterministic("beta", pt.concatenate([pt.stack([a_c - pt.dot(slopes, xm_d)]),
                                                     slopes]), dims="term")
            e = d.sign * (y_d - a_c - pt.dot(q_d, theta))
            if self.inefficiency == "cross_section":
                ll = _cross_loglik(e, sv, su, mu, self.distribution)
            else:
                eta = (pm.Normal("eta", 0.0, p.eta_sd) if self.inefficiency == "bc92"
                       else pt.constant(0.0))
                last = np.zeros(d.n_units)
                np.maximum.at(last, d.unit_idx, d.time_values)
                ll = _panel_loglik(e, pm.Data("unit_idx", d.unit_idx),
                                   pm.Data("dt", d.time_values - last[d.unit_idx]),
                                   pm.Data("n_t", np.bincount(d.unit_idx).astype(float)),
                                   sv, su, mu, eta)
            pm.Potential("loglik", pt.sum(ll))
        return model

    # ------------------------------------------------------------------ fit
    @panel_first
    def fit(self, panel: pd.DataFrame | Panel, *, draws: int = 1000, tune: int = 1000,
            chains: int = 4, cores: int | None = None, random_seed: int | None = None,
            progress: bool = True, target_accept: float = 0.9,
            init_method: str = "jitter+adapt_diag",
            sampler: Literal["auto", "nutpie", "pymc"] = "auto") -> BayesSFAResult:
        """Sample the posterior; efficiency draws are added per observation.

        ``sampler="auto"`` runs nutpie on a disk-cached compiled density
        (:mod:`.sfa_nutpie_density`: no per-model compilation, no Python per NUTS step) when
        nutpie is installed, else PyMC's NUTS; ``"nutpie"`` / ``"pymc"`` force one
        (``result.info['sampler']`` records which ran). Both sample the same posterior; the
        same seed gives the same draws on a given sampler. ``init_method`` is passed to
        ``pm.sample(init=...)`` on the PyMC path (a dense mass matrix,
        ``"jitter+adapt_full"``, adapted worse than the diagonal default in short runs)."""
        use = choose_sampler(sampler, compiled=True)
        random_seed = resolve_seed(random_seed)
        d = self.prepare(panel)
        warn_ignored_design(self, panel)
        model = self._build(d)
        init = self._initvals(d)
        idata = None
        if use == "nutpie":
            from .sfa_nutpie_density import UnsupportedModel, sample_sfa_nutpie

            try:
                idata = sample_sfa_nutpie(
                    model, self._user_data(d), init, draws=draws, tune=tune, chains=chains,
                    cores=cores or min(chains, os.cpu_count() or 1), random_seed=random_seed,
                    progress=progress, target_accept=target_accept)
            except UnsupportedModel:  # nutpie through PyMC (compiles this model)
                idata = None
        compiled = idata is not None
        if idata is None:
            idata = sample(model, draws=draws, tune=tune, chains=chains, cores=cores,
                           random_seed=random_seed, progress=progress,
                           target_accept=target_accept, initvals=init, init=init_method,
                           sampler=use)
        idata = self._add_efficiency(idata, d, random_seed)
        sampled = [v.name for v in model.free_RVs] + ["beta"]  # beta: intercept and slopes
        info = self.fit_info(random_seed=random_seed, draws=draws, tune=tune, chains=chains,
                             n_obs=len(d.y), n_units=d.n_units, sampled_vars=sampled,
                             frontier_kind=d.kind, sampler=use, compiled_density=compiled)
        return BayesSFAResult.from_fit(idata, method=f"bayes_sfa_{self.distribution}",
                                       info=info)

    def _user_data(self, d: FrontierDesign) -> np.ndarray:
        """The numbers of :meth:`_build`'s graph as the compiled density's buffer."""
        from .sfa_nutpie_density import pack_user_data

        p = self.priors
        q_star, r_inv, x_mean, x_sd = _whiten(d.X)
        y_sd = float(np.std(d.y)) or 1.0
        panel = self.inefficiency != "cross_section"
        if panel:
            last = np.zeros(d.n_units)
            np.maximum.at(last, d.unit_idx, d.time_values)
            unit_idx, dt, n_units = d.unit_idx, d.time_values - last[d.unit_idx], d.n_units
        else:
            unit_idx, dt, n_units = np.zeros(len(d.y)), np.zeros(len(d.y)), 0
        return pack_user_data(
            y=d.y, Q=q_star, sign=d.sign, distribution=self.distribution, panel=panel,
            has_eta=self.inefficiency == "bc92", unit_idx=unit_idx, dt=dt, n_units=n_units,
            prior_scales=(p.beta_sd * y_sd, float(np.mean(d.y)), p.intercept_sd * y_sd),
            sigma_v_scale=p.sigma_v, sigma_u_scale=p.sigma_u, mu_sd=p.mu_sd, eta_sd=p.eta_sd,
            r_inv=r_inv, x_mean=x_mean, x_sd=x_sd)

    def _initvals(self, d: FrontierDesign) -> dict:
        start = _starts(d, self.distribution, "cross_section", np.random.default_rng(0))[0]
        k = d.X.shape[1]
        _, r_inv, x_mean, x_sd = _whiten(d.X)
        beta = start[:k]
        theta = np.linalg.solve(r_inv, beta[1:] * x_sd)
        sv, su = float(np.exp(start[k])), float(np.exp(start[k + 1]))
        e_u = su if self.distribution == "exponential" else su * np.sqrt(2 / np.pi)
        init = {"theta": theta, "sigma_v": sv, "sigma_u": su,
                "intercept_mean": beta[0] + beta[1:] @ x_mean - d.sign * e_u}
        if self.distribution == "truncated_normal":
            init["mu"] = 0.0
        if self.inefficiency == "bc92":
            init["eta"] = 0.0
        return init

    def _add_efficiency(self, idata, d: FrontierDesign, seed: int):
        post = idata.posterior
        n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
        flat = post.to_dataset().stack(sample=("chain", "draw")).transpose("sample", ...)
        beta = flat["beta"].values
        sv, su = flat["sigma_v"].values, flat["sigma_u"].values
        mu = flat["mu"].values if "mu" in flat else np.zeros_like(sv)
        rng = np.random.default_rng([seed, 104729])
        if self.inefficiency == "cross_section":
            all_eff = cross_section_draws(d.y, d.X, d.sign, beta, sv, su, mu,
                                          self.distribution, rng)
        else:
            # u_i | (all of unit i's residuals) is one truncated normal per unit and draw:
            # draw u_i once, then every year of the unit is the same u_i scaled by its decay
            eta = flat["eta"].values if "eta" in flat else np.zeros_like(sv)
            last = np.zeros(d.n_units)
            np.maximum.at(last, d.unit_idx, d.time_values)
            all_eff = panel_draws(d.y, d.X, d.sign, d.unit_idx, d.n_units,
                                  d.time_values - last[d.unit_idx], beta, sv, su, mu, eta, rng)
        idcols = list(d.index.columns)
        groups = ["overall"] + [group_label(**dict(zip(idcols, row)))
                                for row in d.index.itertuples(index=False)]
        ds = post.to_dataset().assign(
            effect=(("chain", "draw", "effect_id"), all_eff.reshape(n_chain, n_draw, -1)))
        ds = ds.assign_coords(effect_id=np.arange(len(groups)),
                              estimand=("effect_id", np.array(["efficiency"] * len(groups))),
                              group=("effect_id", np.array(groups)))
        const = xr.Dataset({f"obs_{c}": ("obs", d.index[c].to_numpy()) for c in idcols})
        const["effect_n_obs"] = ("effect_id", np.r_[len(d.y), np.ones(len(d.y), int)])
        const.attrs["id_columns"] = idcols
        idata["posterior"] = xr.DataTree(ds)
        idata["constant_data"] = xr.DataTree(const)
        return idata


def _parameter_diagnostics(idata, sampled_vars) -> pd.DataFrame:
    """:func:`diagnostics_table` with the ``effect`` restricted to the overall mean."""
    post = idata.posterior.to_dataset()
    if "effect_id" not in post.dims:
        return diagnostics_table(idata, sampled_vars)
    view = idata.copy(deep=False)
    view["posterior"] = xr.DataTree(post.isel(effect_id=slice(0, 1)))
    return diagnostics_table(view, sampled_vars)


# ---------------------------------------------------------------------- pytensor pieces
def _whiten(X: np.ndarray):
    """Centre and scale the regressors, then QR: ``Z = Q* R*`` with ``Q*`` of unit-variance
    orthogonal columns; returns ``Q*``, ``R*^-1``, the column means and sds."""
    Xs = X[:, 1:]
    x_mean, x_sd = Xs.mean(axis=0), Xs.std(axis=0)
    x_sd = np.where(x_sd > 0, x_sd, 1.0)
    q, r = np.linalg.qr((Xs - x_mean) / x_sd)
    scale = np.sqrt(len(X))
    return q * scale, np.linalg.inv(r / scale), x_mean, x_sd


def _mean_u(su, mu, distribution):
    """E[u] of the one-sided error."""
    if distribution == "exponential":
        return su
    if distribution == "half_normal":
        return su * np.sqrt(2 / np.pi)
    z = mu / su
    return mu + su * pt.exp(-0.5 * z**2 - HALF_LOG2PI - _lcdf(z))


def _lcdf(z):
    return normal_lcdf(0.0, 1.0, z)


def _cross_loglik(e, sv, su, mu, distribution):
    """PyTensor twin of :func:`_sfa_math.loglik_cross`."""
    if distribution == "exponential":
        return -pt.log(su) + e / su + sv**2 / (2 * su**2) + _lcdf(-e / sv - sv / su)
    s2 = sv**2 + su**2
    sigma = pt.sqrt(s2)
    z = (mu * sv**2 - e * su**2) / s2 / (su * sv / sigma)
    if distribution == "half_normal":
        return pt.log(2.0) - pt.log(sigma) - HALF_LOG2PI - 0.5 * (e / sigma) ** 2 + _lcdf(z)
    return (-pt.log(sigma) - HALF_LOG2PI - 0.5 * ((e + mu) / sigma) ** 2 + _lcdf(z)
            - _lcdf(mu / su))


def _panel_loglik(e, idx, dt, n_t, sv, su, mu, eta):
    """PyTensor twin of :func:`_sfa_math.loglik_panel` (per-unit sums by scatter-add)."""
    h = pt.exp(-eta * dt)

    def usum(v):
        return pt.inc_subtensor(pt.zeros(n_t.shape[0])[idx], v)

    s_he, s_hh, s_ee = usum(h * e), usum(h**2), usum(e**2)
    den = sv**2 + su**2 * s_hh
    mu_star = (mu * sv**2 - su**2 * s_he) / den
    s_star = su * sv / pt.sqrt(den)
    quad = s_ee / sv**2 + mu**2 / su**2 - (mu_star / s_star) ** 2
    return (-0.5 * n_t * m.LOG2PI - (n_t - 1) * pt.log(sv) - 0.5 * pt.log(den) - 0.5 * quad
            + _lcdf(mu_star / s_star) - _lcdf(mu / su))

