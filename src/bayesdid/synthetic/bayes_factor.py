"""BayesianFactorDiD: a Bayesian interactive-fixed-effects (latent factor) counterfactual model.

The Bayesian twin of :func:`~bayesdid.synthetic.ife.ife` (cf. Pang, Liu & Xu 2022, bpCausal).
Untreated outcomes follow period effects + unit effects + ``K`` latent factors with
shrinkage over factors (see :mod:`.bayes_factor_design`)::

    y_it(0) = b_t + a_i + lambda_i' F_t + e_it,   lambda_ik ~ N(0, tau_k^2),
    F_tk ~ N(0, 1),   tau_k ~ HalfNormal(factor_scale * shrink^k),   e_it ~ N(0, sigma^2)

The geometric prior scales of ``tau`` are a cumulative-shrinkage prior: later factors are
switched off unless the data need them, so ``max_factors`` is an upper bound, not a choice.
What makes it fast: the unit effects, loadings and period effects ``b`` are integrated out
exactly, so NUTS sees only ``F`` (T x K), ``tau``, ``sd_unit`` and ``sigma``; the likelihood
is one small factorisation per adoption cohort plus one T x T per gradient whatever the
number of units, and nutpie runs it as a numba density compiled once per machine
(:mod:`.bayes_factor_nutpie`). ``b`` is drawn afterwards from its exact conditional. Treated cells never
enter the likelihood (imputation); per posterior draw, each treated unit's loadings are
drawn from their exact Gaussian conditional given its untreated periods, its counterfactual
``y(0)`` from the model (noise included), and cell effects are ``y - y(0)``.

Effects are reported in HierarchicalDiD's schema (overall, cohort, group, cohort x group,
event time, cohort x event time, and per treated unit), each an observation-weighted
average of treated-cell effects; the cell effects are *not* partially pooled (each is its
own imputation). The factors' rotation and sign are not identified, so convergence
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
    priors : :class:`FactorPriors` (factor shrinkage, period/unit/noise scales and how much
        wider the treated units' loadings are allowed to be).

    Examples
    --------
    >>> BayesianFactorDiD(max_factors=3)
    BayesianFactorDiD(max_factors=3, pool=None, priors={'factor_scale': 1.0, 'shrink': 0.5, 'time_sd': 2.0, 'unit_sd': 2.0, 'noise_sd': 1.0, 'treated_scale': 3.0})
    """

    priors_class = FactorPriors

    def __init__(self, max_factors: int = 4, pool: tuple[str, ...] | None = None,
                 priors: FactorPriors | None = None):
        if (not isinstance(max_factors, int | np.integer) or isinstance(max_factors, bool)
                or max_factors < 1):
            raise BayesDidError(f"max_factors must be a positive integer, got {max_factors!r}")
        if isinstance(pool, str):
            raise BayesDidError("pool takes a tuple of column names, not a string")
        self.max_factors = int(max_factors)
        self.pool = None if pool is None else tuple(pool)
        self.priors = self._resolve_priors(priors)

    def config(self) -> dict:
        return {"max_factors": self.max_factors, "pool": self.pool,
                "priors": self.priors.to_dict()}

    # ------------------------------------------------------------------ graph
    def prepare(self, panel: Panel) -> FactorDesign:
        """The model's arrays for ``panel`` (no PyMC)."""
        if not isinstance(panel, Panel):
            raise BayesDidError(f"expected a bayesdid Panel, got {type(panel).__name__}; "
                                "build one with Panel.from_frame(df, ...)")
        pool = tuple(g for g in (self.pool if self.pool is not None else panel.groups)
                     if g != "cohort")
        return prepare_factor(panel, pool)

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
            F = pm.Normal("F", 0.0, 1.0, dims=("time", "factor"))
            L = pt.concatenate([pt.ones((T, 1)) * sd_unit, F * tau[None, :]], axis=1)
            pm.Potential("marginal_loglik", _loglik_graph(design, L, sigma, self.priors.time_sd,
                                                          self.priors.treated_scale))
        return model

    # ------------------------------------------------------------------ fit
    def fit(self, panel: Panel, *, draws: int = 1000, tune: int = 1000, chains: int = 4,
            cores: int | None = None, random_seed: int | None = None, progress: bool = True,
            target_accept: float = 0.9,
            sampler: Literal["auto", "nutpie", "pymc"] = "auto") -> BayesResult:
        """Sample the posterior and return a :class:`BayesResult` whose ``idata.posterior``
        also holds ``counterfactual`` (chain, draw, treated_unit, time; original scale,
        noise included after adoption), ``time_effect`` and ``noise_sd``.
        :func:`counterfactual_paths` summarises the paths. ``sampler="auto"`` (or
        ``"nutpie"``) runs nutpie on a log-density compiled once per machine
        (:mod:`.bayes_factor_nutpie`); ``"pymc"`` runs PyMC's NUTS on the same posterior."""
        use = choose_sampler(sampler, compiled=True)
        random_seed = resolve_seed(random_seed)
        design = self.prepare(panel)
        warn_ignored_design(self, panel)
        if panel.covariates:
            import warnings

            from ..errors import DesignIgnoredWarning
            warnings.warn(f"BayesianFactorDiD does not model covariates {list(panel.covariates)}"
                          "; the latent factors stand in for them", DesignIgnoredWarning,
                          stacklevel=2)
        model = self._build(design)
        cores = cores or min(chains, os.cpu_count() or 1)
        kw = dict(draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                  progress=progress, target_accept=target_accept, cores=cores)
        if use == "nutpie":
            from .bayes_factor_nutpie import sample_factor_nutpie

            idata = sample_factor_nutpie(model, design, self, **kw)
        else:
            idata = sample(model, sampler=use, **kw)
        idata, b = self._add_effects(idata, design, panel, random_seed)
        info = self.fit_info(random_seed=random_seed, draws=draws, tune=tune, chains=chains,
                             sampler=use, compiled_density=use == "nutpie",
                             n_units=len(design.fm.units),
                             n_treated=len(design.fm.treated_rows),
                             treated_units=[str(u) for u in design.fm.units[design.fm.treated_rows]],
                             sampled_vars=["sigma", "sd_unit", "time_effect"],
                             convergence_on="identified quantities (sigma, sd_unit, "
                                            "time_effect, effects); F and tau are not "
                                            "rotation/sign identified",
                             pooling="none (cell effects unpooled)")
        info["ppc"] = factor_residual_checks(design, idata, b, self.priors.treated_scale,
                                             seed=random_seed)
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
        m, V, _, _ = time_effect_posterior(design.groups, L, sigma, self.priors.time_sd,
                                           self.priors.treated_scale)
        b = m + np.einsum("sij,sj->si", np.linalg.cholesky(V), rng.standard_normal(m.shape))
        y0 = counterfactual_draws(design, b, L * self.priors.treated_scale, sigma, rng)
        fm = design.fm
        y0_orig = design.y_loc + design.y_scale * y0  # (S, n_treated, T)
        rows = np.searchsorted(fm.treated_rows, design.cells["unit_row"].to_numpy())
        t = design.cells["t"].to_numpy()
        gap = fm.Y[fm.treated_rows][rows, t][None, :] - y0_orig[:, rows, t]  # (S, cells)
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
        ds = ds.assign(new).assign_coords(effect_id=labels, treated_unit=treated,
                                          estimand=("effect_id", estimand),
                                          group=("effect_id", group))
        const = xr.Dataset(
            {"effect_n_obs": ("effect_id", n_obs),
             "observed": (("treated_unit", "time"), fm.Y[fm.treated_rows]),
             "post": (("treated_unit", "time"), ~fm.untreated[fm.treated_rows]),
             "period": ("time", fm.times)},
            coords={"effect_id": labels, "treated_unit": treated,
                    "time": ds["time"].values})
        idata["posterior"] = xr.DataTree(ds)
        idata["constant_data"] = xr.DataTree(const)
        return idata, b

    def _loadings(self, ds) -> np.ndarray:
        """(S, T, K+1) draws of ``L = [sd_unit 1, tau_k F_k]``."""
        F = _flat(ds["F"].values)
        tau = _flat(ds["tau"].values)
        sd_unit = _flat(ds["sd_unit"].values)
        ones = np.ones((F.shape[0], F.shape[1], 1)) * sd_unit[:, None, None]
        return np.concatenate([ones, F * tau[:, None, :]], axis=2)


def _loglik_graph(design: FactorDesign, L, sigma, time_sd: float, treated_scale: float):
    """The exact marginal log-likelihood, period effects integrated out (see
    :func:`~.bayes_factor_design.marginal_loglik_np`, its NumPy twin)."""
    T = design.n_periods
    s2 = sigma ** 2
    P = pt.eye(T) / time_sd ** 2
    h = pt.zeros(T)
    total = -T * np.log(time_sd)
    parts = []
    for g in design.groups:
        Lg = L[: g.length] * (treated_scale if g.treated else 1.0)
        C = pt.linalg.cholesky(Lg @ Lg.T + s2 * pt.eye(g.length))
        Si = pt.linalg.cho_solve((C, True), pt.eye(g.length))
        P = pt.set_subtensor(P[: g.length, : g.length], P[: g.length, : g.length] + g.n * Si)
        h = pt.set_subtensor(h[: g.length], h[: g.length] + g.n * (Si @ g.mean))
        total = total - 0.5 * (g.n * (g.length * np.log(2 * np.pi)
                                      + 2 * pt.log(pt.diag(C)).sum())
                               + pt.trace(Si @ g.scatter))
        parts.append((g, Si))
    CP = pt.linalg.cholesky(P)
    m = pt.linalg.cho_solve((CP, True), h)
    total = total - 0.5 * (m @ m) / time_sd ** 2 - pt.log(pt.diag(CP)).sum()
    for g, Si in parts:
        d = pt.as_tensor(g.mean) - m[: g.length]
        total = total - 0.5 * g.n * (d @ Si @ d)
    return total


def counterfactual_draws(design: FactorDesign, b: np.ndarray, L: np.ndarray,
                         sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(S, n_treated, T) standardised ``y(0)`` draws of the treated units (``L``: their
    loadings' scale, treated_scale included): per draw, the
    unit effect and loadings from their exact conditional given the unit's untreated
    periods; fitted mean before adoption, mean + noise from adoption on."""
    fm = design.fm
    S, T, r = L.shape
    out = np.empty((S, len(fm.treated_rows), T))
    s2 = sigma ** 2
    for pos_start in np.unique(fm.start[fm.treated_rows]):
        pos = np.flatnonzero(fm.start[fm.treated_rows] == pos_start)
        s = int(pos_start)
        y = design.Y[fm.treated_rows[pos], :s]  # (n, s)
        Lp = L[:, :s]  # (S, s, r)
        M = np.eye(r)[None] + np.einsum("zsi,zsj->zij", Lp, Lp) / s2[:, None, None]
        C = np.linalg.cholesky(M)
        d = y[None] - b[:, None, :s]  # (S, n, s)
        rhs = np.einsum("zsi,zns->zin", Lp, d) / s2[:, None, None]  # (S, r, n)
        mean = np.linalg.solve(M, rhs)
        # z = mean + C^{-T} eps has covariance M^{-1}
        eps = rng.standard_normal(mean.shape)
        z = mean + np.linalg.solve(np.swapaxes(C, 1, 2), eps)
        fitted = b[:, None, :] + np.einsum("zti,zin->znt", L, z)
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
