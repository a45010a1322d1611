"""BayesianFactorDiD: a Bayesian interactive-fixed-effects (latent factor) counterfactual model.

The Bayesian twin of :func:`~bayesdid.synthetic.ife.ife` (cf. Pang, Liu & Xu 2022, bpCausal).
Untreated outcomes follow period effects + the panel's covariates + unit effects + ``K``
latent factors with shrinkage over factors (see :mod:`.bayes_factor_design`)::

    y_it(0) = b_t + x_it' beta + a_i + lambda_i' F_t + e_it,   lambda_ik ~ N(0, tau_k^2),
    F_tk ~ N(0, 1),   tau_k ~ HalfNormal(factor_scale * shrink^k),   e_it ~ N(0, sigma^2)

The geometric prior scales of ``tau`` are a cumulative-shrinkage prior: later factors are
switched off unless the data need them, so ``max_factors`` is an upper bound, not a choice.
What makes it fast: the unit effects, loadings, period effects ``b`` and covariate
coefficients ``beta`` are integrated out exactly, so NUTS sees only ``F`` (T x K), ``tau``,
``sd_unit`` and ``sigma``; the likelihood
is one small factorisation per adoption cohort plus one (T + k) x (T + k) per gradient
(k covariates) whatever the
number of units, and nutpie runs it as a numba density compiled once per machine
(:mod:`.bayes_factor_nutpie`). ``(b, beta)`` are drawn afterwards from their exact joint
conditional. By default (``effects="imputation"``) treated cells never enter the
likelihood (only untreated rows inform ``beta``); per posterior draw, each treated unit's loadings are drawn from their
exact Gaussian conditional given its untreated periods, its counterfactual ``y(0)`` from
the model (``x_it' beta`` and noise included), and cell effects are ``y - y(0)``.
Covariates are standardised internally (untreated cells' mean and sd); ``beta`` is
reported in the original units (outcome per unit of the covariate).

Effects are reported in HierarchicalDiD's schema (overall, cohort, group, cohort x group,
event time, cohort x event time, and per treated unit), each an observation-weighted
average of treated-cell effects; by default the cell effects are *not* partially pooled
(each is its own imputation); ``effects="pooled"`` pools them by cohort, groups and event
time (:mod:`.bayes_factor_pooled`), at the price stated in the class docstring. The factors' rotation and sign are not identified, so convergence
(R-hat/ESS) is checked on identified quantities only: ``sigma``, ``sd_unit``,
``time_effect`` and every reported effect.

Examples
--------
>>> from bayesdid.datasets import simulate_factor_panel
>>> from bayesdid import Panel
>>> sim = simulate_factor_panel(n_units=12, n_periods=8, n_treated=2, cohorts=(6,), seed=1)
>>> panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
>>> model = BayesianFactorDiD(max_factors=2).build(panel)
>>> sorted(v.name for v in model.free_RVs)
['F', 'sd_unit', 'sigma', 'tau']
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from ..bayes.model import BayesianModel
from ..did.priors import PositivePriors
from ..bayes.notices import warn_ignored_design
from ..bayes.result import BayesResult
from ..bayes.sampling import choose_sampler, resolve_seed, sample
from ..did.aggregate import aggregation
from ..errors import BayesDidError
from ..panel import Panel
from ..results import group_label
from .bayes_factor_design import FactorDesign, prepare_factor, time_effect_posterior
from .bayes_factor_pooled import effect_prior_sd
from .bayes_factor_ppc import factor_residual_checks

__all__ = ["BayesianFactorDiD", "FactorPriors"]


@dataclass(frozen=True)
class FactorPriors(PositivePriors):
    """Prior scales of :class:`BayesianFactorDiD` (standardised outcome units).

    factor_scale : prior scale of the first factor's loading sd, in units of the untreated
        outcomes' sd.
    shrink : ratio of successive factors' prior scales (0 < shrink <= 1).
    time_sd : prior sd of the period effects.
    unit_sd, noise_sd : half-normal scales of the unit-effect sd and of sigma.
    covariate_sd : prior sd of the coefficients of the standardised covariates (outcome
        sds per covariate sd); integrated out with the period effects.
    effect_mean_sd, effect_sd : ``effects="pooled"`` only, as HierarchicalDiD's: Normal sd
        of the overall, cohort, group and event-time effect terms, and prior mean of the
        cells' pooling sd, Gamma(2, 2 / effect_sd).
    treated_scale : treated units' unit effects and loadings have priors this many times
        wider than the controls' (1 = exchangeable). Policies are often targeted at units
        that load differently on the common shocks; shrinking their loadings toward the
        controls' distribution pulls the counterfactual toward a DID one (measured: bias
        0.23 with 1 vs TWFE's 2.6 on the benchmark panels), so by default they are nearly
        free, as in gsynth, while the factors are learned with shrinkage. 3 also removes
        the bias on a 3-factor design with treated loadings shifted 1.5 and twice as spread
        (1: 0.23); treated loadings 3 control sds away leave a bias of ~0.26 (10: none;
        benchmarks/results/bayes_factor_offmodel.md).

    >>> FactorPriors(treated_scale=1).treated_scale
    1.0
    """

    factor_scale: float = 1.0
    shrink: float = 0.5
    time_sd: float = 2.0
    unit_sd: float = 2.0
    noise_sd: float = 1.0
    treated_scale: float = 3.0
    covariate_sd: float = 2.0
    effect_mean_sd: float = 1.0
    effect_sd: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.shrink > 1:
            raise BayesDidError(f"prior shrink must lie in (0, 1], got {self.shrink!r}")


class BayesianFactorDiD(BayesianModel):
    """Bayesian latent-factor (interactive fixed effects) DID for 1 to many treated units.

    Parameters
    ----------
    max_factors : upper bound ``K`` on the number of factors (shrinkage switches unneeded
        ones off).
    pool : unit-level group columns to report effects by (default: the panel's groups);
        cohort and event time are always reported.
    covariates : time-varying controls ``x_it`` (default: the panel's covariates; ``()`` for
        none). Only untreated cells inform their coefficients (with ``effects="imputation"``).
    effects : ``"imputation"`` (default): treated cells never enter the likelihood; each
        cell's effect is ``y - y(0)`` with ``y(0)`` imputed from the untreated rows, so an
        effect can never leak into the counterfactual, but cells are not pooled.
        ``"pooled"``: treated post rows enter the likelihood as ``y - theta_cell`` with
        ``theta_cell = mu + cohort + groups + event time + deviation`` partially pooled
        (:mod:`.bayes_factor_pooled`; priors ``effect_mean_sd``, ``effect_sd``) and
        reported as the cell effects. Narrower cell intervals, at a price: treated post
        rows now also inform the factors, loadings, period effects and ``beta`` (the
        counterfactual is no longer built from untreated rows only), and the effects are
        the model's expected cell effects rather than realised ``y - y(0)``.
    priors : :class:`FactorPriors` (factor shrinkage, period/unit/noise scales and how much
        wider the treated units' loadings are allowed to be).

    Examples
    --------
    >>> BayesianFactorDiD(max_factors=3)
    BayesianFactorDiD(max_factors=3, pool=None, covariates=None, effects='imputation', priors={'factor_scale': 1.0, 'shrink': 0.5, 'time_sd': 2.0, 'unit_sd': 2.0, 'noise_sd': 1.0, 'treated_scale': 3.0, 'covariate_sd': 2.0, 'effect_mean_sd': 1.0, 'effect_sd': 0.5})
    """

    priors_class = FactorPriors

    def __init__(self, max_factors: int = 4, pool: tuple[str, ...] | None = None,
                 covariates: tuple[str, ...] | None = None,
                 effects: Literal["imputation", "pooled"] = "imputation",
                 priors: FactorPriors | None = None):
        if (not isinstance(max_factors, int | np.integer) or isinstance(max_factors, bool)
                or max_factors < 1):
            raise BayesDidError(f"max_factors must be a positive integer, got {max_factors!r}")
        if isinstance(pool, str) or isinstance(covariates, str):
            raise BayesDidError("pool and covariates take a tuple of column names, not a "
                                "string")
        self.max_factors = int(max_factors)
        self.pool = None if pool is None else tuple(pool)
        self.covariates = None if covariates is None else tuple(covariates)
        if effects not in ("imputation", "pooled"):
            raise BayesDidError(f"effects must be 'imputation' or 'pooled', got {effects!r}")
        self.effects = effects
        self.priors = self._resolve_priors(priors)

    def config(self) -> dict:
        return {"max_factors": self.max_factors, "pool": self.pool,
                "covariates": self.covariates, "effects": self.effects,
                "priors": self.priors.to_dict()}

    # ------------------------------------------------------------------ graph
    def prepare(self, panel: Panel) -> FactorDesign:
        """The model's arrays for ``panel`` (no PyMC)."""
        if not isinstance(panel, Panel):
            raise BayesDidError(f"expected a bayesdid Panel, got {type(panel).__name__}; "
                                "build one with Panel.from_frame(df, ...)")
        pool = tuple(g for g in (self.pool if self.pool is not None else panel.groups)
                     if g != "cohort")
        covariates = self.covariates if self.covariates is not None else panel.covariates
        return prepare_factor(panel, pool, tuple(covariates), self.effects == "pooled")

    def build(self, panel: Panel) -> pm.Model:
        """The PyMC model (pure: no sampling); a potential holds the marginal likelihood."""
        return self._build(self.prepare(panel))

    def _build(self, design: FactorDesign) -> pm.Model:
        T, K = design.n_periods, self.max_factors
        coords = {"time": [str(t) for t in design.fm.times], "factor": np.arange(K)}
        scales = self.priors.factor_scale * self.priors.shrink ** np.arange(K)
        with pm.Model(coords=coords) as model:
            sigma = pm.HalfNormal("sigma", self.priors.noise_sd)
            sd_unit = pm.HalfNormal("sd_unit", self.priors.unit_sd)
            tau = pm.HalfNormal("tau", scales, dims="factor")
            cell_sd = (pm.Gamma("cell_sd", alpha=2.0, beta=2.0 / self.priors.effect_sd)
                       if design.pooled is not None else None)
            F = pm.Normal("F", 0.0, 1.0, dims=("time", "factor"))
            L = pt.concatenate([pt.ones((T, 1)) * sd_unit, F * tau[None, :]], axis=1)
            pm.Potential("marginal_loglik",
                         _loglik_graph(design, L, sigma, self.priors, cell_sd))
        return model

    # ------------------------------------------------------------------ fit
    def fit(self, panel: Panel, *, draws: int = 1000, tune: int = 1000, chains: int = 4,
            cores: int | None = None, random_seed: int | None = None, progress: bool = True,
            target_accept: float = 0.9,
            sampler: Literal["auto", "nutpie", "pymc"] = "auto") -> BayesResult:
        """Sample the posterior and return a :class:`BayesResult` whose ``idata.posterior``
        also holds ``counterfactual`` (chain, draw, treated_unit, time; original scale,
        noise included after adoption), ``time_effect`` (at the covariates' untreated
        means) and ``noise_sd``.
        :func:`counterfactual_paths` summarises the paths; with covariates also ``beta``
        (chain, draw, covariate; original units). ``sampler="auto"`` (or
        ``"nutpie"``) runs nutpie on a log-density compiled once per machine
        (:mod:`.bayes_factor_nutpie`); ``"pymc"`` runs PyMC's NUTS on the same posterior."""
        use = choose_sampler(sampler, compiled=True)
        random_seed = resolve_seed(random_seed)
        design = self.prepare(panel)
        warn_ignored_design(self, panel)
        model = self._build(design)
        cores = cores or min(chains, os.cpu_count() or 1)
        kw = dict(draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                  progress=progress, target_accept=target_accept, cores=cores)
        if use == "nutpie":
            from .bayes_factor_nutpie import sample_factor_nutpie

            idata = sample_factor_nutpie(model, design, self, **kw)
        else:
            idata = sample(model, sampler=use, **kw)
        idata, b, beta = self._add_effects(idata, design, panel, random_seed)
        info = self.fit_info(random_seed=random_seed, draws=draws, tune=tune, chains=chains,
                             sampler=use, compiled_density=use == "nutpie",
                             n_units=len(design.fm.units),
                             n_treated=len(design.fm.treated_rows),
                             treated_units=[str(u) for u in design.fm.units[design.fm.treated_rows]],
                             sampled_vars=["sigma", "sd_unit", "time_effect",
                                           *(["beta"] if design.n_cov else []),
                                           *(["cell_sd"] if design.pooled else [])],
                             covariates=list(design.covariates.names),
                             convergence_on="identified quantities (sigma, sd_unit, "
                                            "time_effect, effects); F and tau are not "
                                            "rotation/sign identified",
                             effects=self.effects,
                             pooling="none (cell effects unpooled)" if self.effects == "imputation"
                             else "cells partially pooled (cohort, groups, event time)")
        info["ppc"] = factor_residual_checks(design, idata, b, self.priors.treated_scale,
                                             seed=random_seed, beta=beta)
        result = BayesResult.from_fit(idata, method="bayes_factor", info=info)
        from ..did.ppc import warn_misfit
        warn_misfit(info["ppc"], type(self).__name__)
        return result

    def _add_effects(self, idata, design: FactorDesign, panel: Panel, seed: int):
        post = idata.posterior
        n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
        ds = post.to_dataset()
        sigma = _flat(ds["sigma"].values)
        L = self._loadings(ds)
        rng = np.random.default_rng([seed, 3571])
        pooled = design.pooled
        effect_sd = (None if pooled is None else effect_prior_sd(
            pooled, self.priors.effect_mean_sd, _flat(ds["cell_sd"].values)))
        m, V, _, _ = time_effect_posterior(design.groups, L, sigma, self.priors.time_sd,
                                           self.priors.treated_scale, self.priors.covariate_sd,
                                           effect_sd)
        theta = m + np.einsum("sij,sj->si", np.linalg.cholesky(V), rng.standard_normal(m.shape))
        T, k = design.n_periods, design.n_cov
        b, beta = theta[:, :T], theta[:, T:T + k]
        fm = design.fm
        # per draw and treated unit: b_t + x_it' beta (standardised)
        mean0 = b[:, None, :] + np.einsum("ntk,sk->snt", design.covariates.X[fm.treated_rows],
                                          beta)
        rows = np.searchsorted(fm.treated_rows, design.cells["unit_row"].to_numpy())
        t = design.cells["t"].to_numpy()
        cell_effect = None
        if pooled is not None:  # (S, cell-table rows), standardised
            cell_effect = theta[:, T + k:] @ pooled.M.T
            offset = np.zeros_like(mean0)
            offset[:, rows, t] = cell_effect[:, design.cell_of]
        y0 = counterfactual_draws(design, mean0, L * self.priors.treated_scale, sigma, rng,
                                  None if pooled is None else offset)
        y0_orig = design.y_loc + design.y_scale * y0  # (S, n_treated, T)
        if pooled is None:  # realised effects y - y(0) of each treated (unit, period)
            gap = fm.Y[fm.treated_rows][rows, t][None, :] - y0_orig[:, rows, t]
        else:  # the pooled expected effect of each (unit, period)'s cell
            gap = design.y_scale * cell_effect[:, design.cell_of]
        W, estimand, group, n_obs = _effect_matrix(design, panel)
        eff = gap @ W.T
        shape = (n_chain, n_draw)
        labels = [f"{e}|{g}" for e, g in zip(estimand, group)]
        treated = [str(u) for u in fm.units[fm.treated_rows]]
        new = {
            "effect": (("chain", "draw", "effect_id"), eff.reshape(*shape, -1)),
            "counterfactual": (("chain", "draw", "treated_unit", "time"),
                               y0_orig.reshape(*shape, *y0_orig.shape[1:])),
            "time_effect": (("chain", "draw", "time"),
                            (design.y_loc + design.y_scale * b).reshape(*shape, -1)),
            "noise_sd": (("chain", "draw"), (design.y_scale * sigma).reshape(shape)),
        }
        if design.n_cov:
            cube = design.covariates
            new["beta"] = (("chain", "draw", "covariate"),
                           (design.y_scale * beta / cube.scale).reshape(*shape, -1))
        ds = ds.assign(new).assign_coords(effect_id=labels, treated_unit=treated,
                                          estimand=("effect_id", estimand),
                                          group=("effect_id", group))
        if design.n_cov:
            ds = ds.assign_coords(covariate=list(design.covariates.names))
        const = xr.Dataset(
            {"effect_n_obs": ("effect_id", n_obs),
             "observed": (("treated_unit", "time"), fm.Y[fm.treated_rows]),
             "post": (("treated_unit", "time"), ~fm.untreated[fm.treated_rows]),
             "period": ("time", fm.times)},
            coords={"effect_id": labels, "treated_unit": treated,
                    "time": ds["time"].values})
        idata["posterior"] = xr.DataTree(ds)
        idata["constant_data"] = xr.DataTree(const)
        return idata, b, beta

    def _loadings(self, ds) -> np.ndarray:
        """(S, T, K+1) draws of ``L = [sd_unit 1, tau_k F_k]``."""
        F = _flat(ds["F"].values)
        tau = _flat(ds["tau"].values)
        sd_unit = _flat(ds["sd_unit"].values)
        ones = np.ones((F.shape[0], F.shape[1], 1)) * sd_unit[:, None, None]
        return np.concatenate([ones, F * tau[:, None, :]], axis=2)


def _loglik_graph(design: FactorDesign, L, sigma, priors: FactorPriors, cell_sd=None):
    """The exact marginal log-likelihood, period effects, covariate coefficients and (pooled)
    effect coefficients integrated out (see :func:`~.bayes_factor_design.marginal_loglik_np`,
    its NumPy twin)."""
    T, k = design.n_periods, design.n_cov
    sds = [pt.as_tensor(np.r_[np.full(T, priors.time_sd), np.full(k, priors.covariate_sd)])]
    if design.pooled is not None:
        n_add = design.pooled.n_additive
        sds += [pt.as_tensor(np.full(n_add, priors.effect_mean_sd)),
                pt.ones(len(design.pooled.names) - n_add) * cell_sd]
    prior_sd = pt.concatenate(sds)
    P = pt.diag(prior_sd ** -2)
    h = pt.zeros(prior_sd.shape[0])
    total = -pt.log(prior_sd).sum()
    s2 = sigma ** 2
    parts = []
    for g in design.groups:
        s = g.length
        Lg = L[:s] * (priors.treated_scale if g.treated else 1.0)
        C = pt.linalg.cholesky(Lg @ Lg.T + s2 * pt.eye(s))
        Si = pt.linalg.cho_solve((C, True), pt.eye(s))
        A = pt.as_tensor(g.design_rows(T))
        P = P + g.n * (A.T @ Si @ A)
        h = h + g.n * (A.T @ (Si @ g.mean))
        if k:
            xx = pt.stack([pt.stack([(Si * pt.as_tensor(g.xx[j, l])).sum()
                                     for l in range(k)]) for j in range(k)])
            P = pt.set_subtensor(P[T:T + k, T:T + k], P[T:T + k, T:T + k] + xx)
            h = pt.set_subtensor(h[T:T + k], h[T:T + k] + pt.stack(
                [(Si * pt.as_tensor(g.xy[j])).sum() for j in range(k)]))
        total = total - 0.5 * g.n * (s * np.log(2 * np.pi) + 2 * pt.log(pt.diag(C)).sum())
        parts.append((g, Si, A))
    CP = pt.linalg.cholesky(P)
    m = pt.linalg.cho_solve((CP, True), h)
    beta = m[T:T + k]
    total = total - 0.5 * ((m / prior_sd) ** 2).sum() - pt.log(pt.diag(CP)).sum()
    for g, Si, A in parts:
        W = pt.as_tensor(g.scatter)
        for j in range(k):
            W = W - beta[j] * pt.as_tensor(g.xy[j] + g.xy[j].T)
            for l in range(k):
                W = W + beta[j] * beta[l] * pt.as_tensor(g.xx[j, l])
        d = pt.as_tensor(g.mean) - A @ m
        total = total - 0.5 * ((Si * W).sum() + g.n * (d @ Si @ d))
    return total


def counterfactual_draws(design: FactorDesign, mean0: np.ndarray, L: np.ndarray,
                         sigma: np.ndarray, rng: np.random.Generator,
                         effect: np.ndarray | None = None) -> np.ndarray:
    """(S, n_treated, T) standardised ``y(0)`` draws of the treated units (``mean0``
    (S, n_treated, T): their ``b_t + x_it' beta``; ``L``: their loadings' scale,
    treated_scale included): per draw, the unit effect and loadings from their exact
    conditional given the unit's untreated periods (with pooled effects, given every
    period's ``y - effect``, ``effect`` (S, n_treated, T) zero before adoption); fitted
    mean before adoption, mean + noise from adoption on."""
    fm = design.fm
    S, T, r = L.shape
    out = np.empty((S, len(fm.treated_rows), T))
    s2 = sigma ** 2
    for pos_start in np.unique(fm.start[fm.treated_rows]):
        pos = np.flatnonzero(fm.start[fm.treated_rows] == pos_start)
        s = int(pos_start)
        n_cond = s if effect is None else T  # periods the loadings are conditioned on
        y = design.Y[fm.treated_rows[pos], :n_cond]  # (n, n_cond)
        Lp = L[:, :n_cond]  # (S, n_cond, r)
        M = np.eye(r)[None] + np.einsum("zsi,zsj->zij", Lp, Lp) / s2[:, None, None]
        C = np.linalg.cholesky(M)
        d = y[None] - mean0[:, pos, :n_cond]  # (S, n, n_cond)
        if effect is not None:
            d = d - effect[:, pos]
        rhs = np.einsum("zsi,zns->zin", Lp, d) / s2[:, None, None]  # (S, r, n)
        mean = np.linalg.solve(M, rhs)
        # z = mean + C^{-T} eps has covariance M^{-1}
        eps = rng.standard_normal(mean.shape)
        z = mean + np.linalg.solve(np.swapaxes(C, 1, 2), eps)
        fitted = mean0[:, pos] + np.einsum("zti,zin->znt", L, z)
        noise = rng.standard_normal(fitted.shape) * sigma[:, None, None]
        noise[:, :, :s] = 0.0
        out[:, pos] = fitted + noise
    return out


def _effect_matrix(design: FactorDesign, panel: Panel):
    """Rows: reported effects as observation-weighted averages of the treated (unit, period)
    cells: :func:`~bayesdid.did.aggregate.aggregation` over cohort x groups x event time,
    composed with each cell's average over its units, plus one row per treated unit."""
    table = design.cell_table
    agg = aggregation(table, list(design.group_names), True,
                      name=getattr(panel.time_axis, "name", None))
    n_cells = len(design.cells)
    A = np.zeros((len(table), n_cells))  # cell-table row -> its (unit, period) cells
    A[design.cell_of, np.arange(n_cells)] = 1.0
    A /= A.sum(axis=1, keepdims=True)
    W = agg.matrix @ A
    estimand, group, n_obs = list(agg.estimand), list(agg.group), list(agg.n_obs)
    units = design.cells["unit"].to_numpy()
    if len(np.unique(units)) > 1:
        for u in pd.unique(units):
            hit = (units == u).astype(float)
            W = np.vstack([W, hit / hit.sum()])
            estimand.append("att")
            group.append(group_label(unit=u))
            n_obs.append(int(hit.sum()))
    return W, estimand, group, np.asarray(n_obs)


def counterfactual_paths(result: BayesResult, level: float = 0.95) -> pd.DataFrame:
    """Long frame ``unit, time, actual, counterfactual, lower, upper, gap, gap_lower,
    gap_upper, post`` (posterior mean and equal-tailed ``level`` band) for each treated unit
    of a :class:`BayesianFactorDiD` fit."""
    cf = result.idata.posterior["counterfactual"]
    const = result.idata.constant_data
    draws = cf.stack(sample=("chain", "draw")).transpose("treated_unit", "time", "sample").values
    obs = const["observed"].values
    q = [(1 - level) / 2, (1 + level) / 2]
    lo, hi = np.quantile(draws, q, axis=2)
    frames = []
    for i, u in enumerate(cf["treated_unit"].values):
        frames.append(pd.DataFrame({
            "unit": u, "time": const["period"].values, "actual": obs[i],
            "counterfactual": draws[i].mean(axis=1), "lower": lo[i], "upper": hi[i],
            "gap": obs[i] - draws[i].mean(axis=1), "gap_lower": obs[i] - hi[i],
            "gap_upper": obs[i] - lo[i], "post": const["post"].values[i]}))
    return pd.concat(frames, ignore_index=True)


def _flat(values: np.ndarray) -> np.ndarray:
    """(chain, draw, ...) -> (chain * draw, ...), chain-major."""
    return values.reshape(-1, *values.shape[2:])
