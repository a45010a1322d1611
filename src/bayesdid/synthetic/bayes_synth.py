"""BayesianSyntheticControl: Dirichlet simplex donor weights, noise learned, gap posterior.

Model, for each treated unit ``j`` (standardised by the mean and sd of its donors'
pre-period outcomes, so the priors are unit-free; results are on the original scale)::

    y[j, t] = sum_d w[j, d] * Y[d, t] (+ b[j]) + e[j, t],   t a pre-period of j
    e[j, t] = rho_j e[j, t-1] + sigma_j z[j, t],  z ~ N(0, 1), stationary    (noise="ar1")
    w[j]    ~ Dirichlet(concentration)    (rho_j + 1) / 2 ~ Beta(rho_concentration, same)
    sigma_j^2 ~ InvGamma(noise_df / 2, noise_df * noise_scale^2 / 2)
    b[j] | sigma_j ~ N(0, (intercept_scale * sigma_j)^2)                  (intercept=True)

``noise="iid"`` fixes ``rho_j = 0``. The AR(1) likelihood (exact, Prais-Winsten) and the
post-period noise paths: :mod:`bayesdid.synthetic.bayes_synth_ar1`.

Sampling: the Dirichlet is written as normalised Gamma variables (``w = g / sum(g)``,
``g ~ Gamma(concentration, 1)``, sampled on the log scale), which keeps sparse weights
(concentration < 1) far easier for NUTS than the stick-breaking simplex; ``sigma`` and
``b`` are integrated out exactly (normal-inverse-gamma conjugacy), so NUTS sees only the
weights (and ``rho``), and are drawn afterwards from their exact conditionals. The post-periods never
inform the weights. Counterfactual, gap, ATT and the pooling of several treated units:
see :mod:`bayesdid.synthetic.bayes_pooled`.

:meth:`BayesianSyntheticControl.placebo` is the Bayesian placebo-in-space: every donor in
turn is the "treated" unit (its donors: the other donors), all fitted in one joint model.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from .donors import DonorPool
from ..errors import BayesDidError
from ..panel import Panel
from ..did.priors import PositivePriors
from ..bayes.model import BayesianModel, panel_first
from ..bayes.notices import warn_ignored_design
from ..results import Result, check_interval, check_level, tidy_table
from ..bayes.sampling import choose_sampler, resolve_seed, sample
from .donor_checks import warn_donor_pool
from .bayes_synth_ar1 import ar1_conditionals, ar1_marginal_loglik, ar1_noise_paths, rho_prior
from .bayes_pooled import (
    SynthDesign,
    SynthResult,
    as_pool,
    assemble,
    design_from_pool,
    prepare_design,
)

__all__ = ["BayesianSyntheticControl", "BayesPlaceboResult", "SynthPriors"]

logger = logging.getLogger(__name__)

POOLING = ("partial", "none")
NOISE = ("ar1", "iid")


def sample_synth(model: pm.Model, **kwargs):
    """:func:`bayesdid.bayes.sampling.sample` with the mass matrix adapted from gradients
    (``adapt_diag_grad``): on the sparse-simplex posterior of Prop 99 it halves the leapfrog
    steps per draw (48 vs 117). ``sampler="nutpie"`` adapts its own mass matrix."""
    if kwargs.get("sampler", "pymc") == "pymc":
        kwargs.setdefault("init", "jitter+adapt_diag_grad")
    return sample(model, **kwargs)


def _check_positive(**values) -> None:
    for name, v in values.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v) or v <= 0:
            raise BayesDidError(f"{name} must be a positive number, got {v!r}")


@dataclass(frozen=True)
class SynthPriors(PositivePriors):
    """Prior settings of :class:`BayesianSyntheticControl` (JSON-serialisable; every field a
    positive, finite number). Scales are in units of the standardisation scale (the donors'
    pre-period sd), so the defaults do not depend on the outcome's units.

    concentration : Dirichlet concentration of the donor weights. Below 1 favours few
        donors (as classical SC finds); 1 is uniform on the simplex, which on 38 donors
        pulls the weights towards an equal-weight average and fits the pre-period poorly.
    noise_scale, noise_df : scaled-inverse-chi-squared prior of the noise variance
        ``sigma^2`` (``noise_scale`` in units of the donors' pre-period sd).
    intercept_scale : prior sd of the level shift ``b`` in units of ``sigma``
        (``intercept=True`` only).
    effect_sd, pooling_sd : priors of the pooled mean and between-unit sd of the effect
        (several treated units, ``pooling="partial"``).
    rho_concentration : ``(rho + 1) / 2 ~ Beta(rho_concentration, rho_concentration)``,
        the AR(1) coefficient of the noise (``noise="ar1"``). 0.5 (default) is the
        Jeffreys prior of a stationary AR(1), ``p(rho) ~ (1 - rho^2)^(-1/2)`` (the
        square root of its Fisher information per period, ``1 / (1 - rho^2)``); 1 is flat
        on (-1, 1) (the default before); larger values pull rho toward 0 (2: ``p(rho) ~
        1 - rho^2``), which with 13 pre-periods biased rho down (posterior mean 0.38 for a
        true 0.5) and left the ATT intervals too narrow. With few pre-periods the weights
        absorb the slow part of the noise and rho's posterior is pulled toward 0; the
        flat prior's per-unit ATT intervals then under-covered at a persistent true rho
        (0.925 at rho 0.5 on 400 pilot-zone panels), Jeffreys' cover 0.937 (0.945 at
        rho 0) for 4-5% wider intervals (benchmarks/results/synth_coverage_h_bsc.md).

    >>> SynthPriors(concentration=0.5).noise_scale
    0.1
    """

    concentration: float = 0.3
    noise_scale: float = 0.1
    noise_df: float = 2.0
    intercept_scale: float = 10.0
    effect_sd: float = 1.0
    pooling_sd: float = 0.5
    rho_concentration: float = 0.5


class BayesianSyntheticControl(BayesianModel):
    """Bayesian synthetic control with Dirichlet (simplex) donor weights.

    Parameters
    ----------
    intercept : add a unit-specific level shift ``b`` (a "demeaned" synthetic control).
    pooling : ``"partial"`` (several treated units: per-unit ATTs shrunk toward a common
        mean, see :mod:`~bayesdid.synthetic.bayes_pooled`) or ``"none"``.
    noise : ``"ar1"`` (default: stationary AR(1) noise with a per-unit coefficient
        ``noise_rho``, in the weight likelihood and the post-period counterfactual) or
        ``"iid"`` (``rho = 0``: the model before issue 14; its post-period intervals are
        too narrow when the noise is persistent).
    priors : :class:`SynthPriors` (weight concentration, noise, intercept and effect
        pooling priors). The loose keywords ``concentration``, ``noise_scale``,
        ``noise_df``, ``intercept_scale``, ``effect_sd`` and ``pooling_sd`` still work for
        this release (instead of ``priors``, not with it; with a FutureWarning).

    Examples
    --------
    >>> from bayesdid.datasets.simulate_pilot import simulate_pilot_zones
    >>> sim = simulate_pilot_zones(treated=1, random_seed=3)
    >>> panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    >>> est = BayesianSyntheticControl(priors=SynthPriors(concentration=0.5))
    >>> est.build(panel).named_vars_to_dims["w"]
    ('unit', 'donor')
    """

    priors_class = SynthPriors

    def __init__(self, intercept: bool = False, *,
                 pooling: Literal["partial", "none"] = "partial",
                 noise: Literal["ar1", "iid"] = "ar1",
                 priors: SynthPriors | None = None,
                 concentration: float | None = None, noise_scale: float | None = None,
                 noise_df: float | None = None, intercept_scale: float | None = None,
                 effect_sd: float | None = None, pooling_sd: float | None = None):
        self.priors = self._resolve_priors(
            priors, concentration=concentration, noise_scale=noise_scale, noise_df=noise_df,
            intercept_scale=intercept_scale, effect_sd=effect_sd, pooling_sd=pooling_sd)
        if pooling not in POOLING:
            raise BayesDidError(f"pooling must be one of {POOLING}, got {pooling!r}")
        if noise not in NOISE:
            raise BayesDidError(f"noise must be one of {NOISE}, got {noise!r}")
        self.intercept = bool(intercept)
        self.pooling = pooling
        self.noise = noise

    def config(self) -> dict:
        return {"intercept": self.intercept, "pooling": self.pooling, "noise": self.noise,
                "priors": self.priors.to_dict()}

    # ------------------------------------------------------------------ graph
    @panel_first
    def prepare(self, panel: Panel | DonorPool) -> SynthDesign:
        """The standardised arrays for ``panel`` (a Panel or a :func:`donor_pool`)."""
        return design_from_pool(as_pool(panel), per_donor_scale=False)

    @panel_first
    def build(self, panel: Panel | DonorPool) -> pm.Model:
        """The PyMC model (pure: no sampling). Free variables: ``w_gamma`` (unit, donor)
        and, with ``noise="ar1"``, ``noise_rho_beta`` (unit); deterministic ``w`` (unit,
        donor), the simplex weights, and ``noise_rho`` (unit); a potential holding the
        pre-period log-likelihood with ``sigma`` (and ``b``) integrated out."""
        return self._build(self.prepare(panel))

    def _priors(self) -> tuple[float, float, float]:
        p = self.priors
        a0 = p.noise_df / 2
        b0 = p.noise_df * p.noise_scale**2 / 2
        kappa2 = p.intercept_scale**2 if self.intercept else 0.0
        return a0, b0, kappa2

    def _build(self, design: SynthDesign) -> pm.Model:
        a0, b0, kappa2 = self._priors()
        n_pre = design.pre.sum(axis=0).astype(float)
        coords = {"unit": [str(u) for u in design.targets], "donor_slot": np.arange(design.n_donors)}
        if design.shared_donors:
            coords["donor"] = [str(design.donor_units[i]) for i in design.donor_idx[0]]
        dims = ("unit", "donor" if design.shared_donors else "donor_slot")
        mask = design.pre.astype(float)
        with pm.Model(coords=coords) as model:
            g = pm.Gamma("w_gamma", alpha=self.priors.concentration, beta=1.0, dims=dims)
            w = pm.Deterministic("w", g / g.sum(axis=1, keepdims=True), dims=dims)
            fit = (pt.as_tensor(design.X) * w[None, :, :]).sum(axis=2)  # (T, K)
            resid = (design.y - fit) * mask
            if self.noise == "ar1":
                rho = rho_prior(self.priors.rho_concentration, dims="unit")
                pm.Potential("marginal_loglik", ar1_marginal_loglik(
                    resid, design.pre, rho, a0=a0, b0=b0, kappa2=kappa2))
                return model
            rss = (resid**2).sum(axis=0)
            if self.intercept:  # b | sigma integrated out: shrink the residual mean
                rss = rss - resid.sum(axis=0) ** 2 / (n_pre + 1.0 / kappa2)
            pm.Potential("marginal_loglik", -((a0 + n_pre / 2) * pt.log(b0 + rss / 2)).sum())
        return model

    # ------------------------------------------------------------------ fit
    @panel_first
    def fit(self, panel: Panel | DonorPool, *, draws: int = 1000, tune: int = 1000,
            chains: int = 4, cores: int | None = None, random_seed: int | None = None,
            progress: bool = True, target_accept: float = 0.9,
            sampler: Literal["auto", "nutpie", "pymc"] = "auto") -> SynthResult:
        """Sample the weights' posterior and return a :class:`SynthResult` with
        ``att`` (per unit and ``overall``), ``gap`` (per unit and period) and weights.

        ``sampler="auto"`` runs nutpie on a disk-cached compiled density
        (:mod:`.bayes_synth_nutpie`: no per-model compilation, no Python per NUTS step)
        when nutpie is installed, else PyMC's NUTS; ``"nutpie"`` / ``"pymc"`` force one
        (``result.info['sampler']`` records which ran). Both sample the same posterior; the
        same seed gives the same draws on a given sampler."""
        use = choose_sampler(sampler, compiled=True)
        random_seed = resolve_seed(random_seed)
        pool = as_pool(panel)
        design = self.prepare(pool)
        warn_ignored_design(self, panel)
        warn_donor_pool(pool)
        return self._fit(design, draws=draws, tune=tune, chains=chains, cores=cores,
                         random_seed=random_seed, progress=progress,
                         target_accept=target_accept, method="bayes_synth", sampler=use)

    def _fit(self, design: SynthDesign, *, method: str, sampler: str, **kw) -> SynthResult:
        model = self._build(design)
        idata = None
        if sampler == "nutpie":
            from .bayes_synth_nutpie import UnsupportedModel, sample_synth_nutpie

            try:
                idata = sample_synth_nutpie(
                    model, self._user_data(design),
                    **{**kw, "cores": kw["cores"] or min(kw["chains"], os.cpu_count() or 1)})
            except UnsupportedModel as exc:  # nutpie through PyMC (compiles this model)
                logger.info("BayesianSyntheticControl: %s; nutpie via pm.sample instead", exc)
        compiled = idata is not None
        if idata is None:
            idata = sample_synth(model, sampler=sampler, **kw)
        seed = kw["random_seed"]
        w = _flat(idata.posterior["w"].values)  # (S, K, D)
        rho = (_flat(idata.posterior["noise_rho"].values) if self.noise == "ar1"
               else np.zeros(w.shape[:2]))
        mean_std, sigma_std, b_std, noise_std = self._conditionals(design, w, rho, seed)
        info = self.fit_info(
            random_seed=seed, draws=kw["draws"], tune=kw["tune"], chains=kw["chains"],
            treated_units=list(map(str, design.targets)),
            donor_units=list(map(str, design.donor_units)),
            n_pre=design.pre.sum(axis=0).tolist(),
            sampled_vars=["w_gamma", "w", "sigma", "intercept"]
            + (["noise_rho"] if self.noise == "ar1" else []), sampler=sampler,
            compiled_density=compiled)
        intercept = b_std * design.y_scale[None, :] if self.intercept else None
        return assemble(idata, design, mean_std, sigma_std, pooling=self.pooling,
                        effect_sd=self.priors.effect_sd, pooling_sd=self.priors.pooling_sd,
                        seed=seed, method=method, info=info, weights=w, intercept=intercept,
                        noise_std=noise_std)

    def _user_data(self, design: SynthDesign) -> np.ndarray:
        """The numbers of :meth:`_build`'s graph as the compiled density's buffer."""
        from .bayes_synth_nutpie import pack_user_data

        a0, b0, kappa2 = self._priors()
        return pack_user_data(design, concentration=self.priors.concentration, a0=a0, b0=b0,
                              kappa2=kappa2, rho_concentration=self.priors.rho_concentration
                              if self.noise == "ar1" else None)

    def _conditionals(self, design: SynthDesign, w: np.ndarray, rho: np.ndarray, seed: int):
        """Exact draws of sigma (and b) given each draw of the weights and rho; the
        synthetic mean; the counterfactual's noise paths (all standardised)."""
        a0, b0, kappa2 = self._priors()
        rng = np.random.default_rng([seed, 1729])
        fit = np.einsum("tkd,skd->skt", design.X, w)  # (S, K, T)
        resid = (design.y.T[None] - fit) * design.pre.T[None]
        sigma, b = ar1_conditionals(resid, design.pre, rho, a0=a0, b0=b0, kappa2=kappa2,
                                    rng=rng)
        mean = fit + b[:, :, None]
        n_pre = design.pre.sum(axis=0)
        last = (design.y.T[None] - mean)[:, np.arange(len(n_pre)), n_pre - 1]
        noise = ar1_noise_paths(last, n_pre, rho, sigma, design.y.shape[0], rng)
        return mean, sigma, b, noise

    # ------------------------------------------------------------------ placebo
    @panel_first
    def placebo(self, panel: Panel | DonorPool, *, unit=None, draws: int = 500,
                tune: int = 500, chains: int = 2, cores: int | None = None,
                random_seed: int | None = None, progress: bool = True,
                target_accept: float = 0.9,
                sampler: Literal["auto", "nutpie", "pymc"] = "auto") -> BayesPlaceboResult:
        """Bayesian placebo-in-space for treated ``unit`` (default: the first).

        Every donor is in turn the "treated" unit, its donors the other donors, with the
        treated unit's pre-periods; all placebos are fitted in one joint model (one
        compile, one sampling run; the units are independent given the data). The treated
        unit is refitted alone with the same settings (``pooling="none"``). Each placebo's
        ATT posterior is compared with the treated unit's: see :class:`BayesPlaceboResult`.
        Like :meth:`fit`, it warns once (``DesignIgnoredWarning``) when the panel has a
        ``cluster`` or ``weights`` column: the placebo fits use neither. ``sampler``: as in
        :meth:`fit`.
        """
        use = choose_sampler(sampler, compiled=True)
        random_seed = resolve_seed(random_seed)
        pool = as_pool(panel)
        warn_ignored_design(self, panel)
        j = 0 if unit is None else _index(pool.treated_units, unit)
        D = pool.n_donors
        if D < 3:
            raise BayesDidError(f"placebo-in-space needs at least 3 donors, got {D}")
        pre = pool.pre_periods(j)
        others = np.array([[d for d in range(D) if d != k] for k in range(D)])
        targets = (pool.treated_units[j], *pool.donor_units)
        placebo_design = prepare_design(
            pool.y_donors, pool.y_donors, others, np.tile(pre[:, None], (1, D)), times=pool.times,
            targets=pool.donor_units, donor_units=pool.donor_units, outcome=pool.outcome,
            per_donor_scale=False)
        kw = dict(draws=draws, tune=tune, chains=chains, cores=cores,
                  random_seed=random_seed, progress=progress, target_accept=target_accept,
                  sampler=use)
        single = DonorPool(times=pool.times, treated_units=(pool.treated_units[j],),
                           donor_units=pool.donor_units, y_treated=pool.y_treated[:, [j]],
                           y_donors=pool.y_donors, start=pool.start[[j]], outcome=pool.outcome,
                           time_name=pool.time_name)
        no_pool = BayesianSyntheticControl(self.intercept, pooling="none", noise=self.noise,
                                           priors=self.priors)
        treated_fit = no_pool._fit(design_from_pool(single, per_donor_scale=False),
                                   method="bayes_synth", **kw)
        placebo_fit = no_pool._fit(placebo_design, method="bayes_synth_placebo", **kw)
        return BayesPlaceboResult.from_fits(treated_fit, placebo_fit, targets, pre)


def _index(units: tuple, unit) -> int:
    if unit not in units:
        raise BayesDidError(f"unit {unit!r} is not a treated unit: {list(units)}")
    return units.index(unit)


def _flat(values: np.ndarray) -> np.ndarray:
    """(chain, draw, ...) -> (chain * draw, ...), chain-major."""
    return values.reshape(-1, *values.shape[2:])


@dataclass(frozen=True, eq=False, repr=False)
class BayesPlaceboResult(Result):
    """Bayesian placebo-in-space.

    A :class:`~bayesdid.results.Result`, not an EffectResult: one row per placebo unit
    (posterior ATT and RMSPE) beside the treated unit, for a permutation p-value.

    Attributes
    ----------
    table : one row per unit (the treated unit first, ``placebo=False``): posterior mean,
        sd and 95% equal-tailed interval of the ATT; pre/post RMSPE of the posterior-mean
        gap and their ratio.
    gaps : (n_units, T) posterior-mean gap paths, rows in ``table`` order (spaghetti plot).
    att_draws : (n_units, S) ATT draws.
    times : periods; ``pre`` : boolean pre-period mask.
    p_value : share of all units (treated included) whose |posterior-mean ATT| is at least
        the treated unit's (the permutation p-value of ADH, on the ATT).
    p_value_ratio : the same on the post/pre RMSPE ratio.
    prob_more_extreme : posterior probability that a random placebo's |ATT| exceeds the
        treated unit's, draw by draw.
    """

    table: pd.DataFrame
    gaps: np.ndarray
    att_draws: np.ndarray
    times: np.ndarray
    pre: np.ndarray
    p_value: float
    p_value_ratio: float
    prob_more_extreme: float

    @classmethod
    def from_fits(cls, treated: SynthResult, placebo: SynthResult, targets, pre) -> BayesPlaceboResult:
        rows, gaps, draws = [], [], []
        for res in (treated, placebo):
            for u in res.idata.posterior["unit"].values:
                path = res.path(u)
                d = res.draws("att", "overall" if res is treated else f"unit={u}")
                g = path["gap"].to_numpy()
                pre_rmspe = float(np.sqrt((g[pre] ** 2).mean()))
                post_rmspe = float(np.sqrt((g[~pre] ** 2).mean()))
                rows.append(dict(unit=str(u), placebo=res is placebo, att=d.mean(),
                                 sd=d.std(ddof=1), lower=np.quantile(d, 0.025),
                                 upper=np.quantile(d, 0.975), pre_rmspe=pre_rmspe,
                                 post_rmspe=post_rmspe,
                                 ratio=post_rmspe / max(pre_rmspe, 1e-12)))
                gaps.append(g)
                draws.append(d)
        table = pd.DataFrame(rows)
        att = table["att"].abs().to_numpy()
        ratio = table["ratio"].to_numpy()
        draws = np.asarray(draws)
        more = (np.abs(draws[1:]) >= np.abs(draws[0])[None, :]).mean()
        return cls(table=table, gaps=np.asarray(gaps), att_draws=draws,
                   times=np.asarray(treated.idata.posterior["time"].values), pre=pre,
                   p_value=float((att >= att[0]).mean()),
                   p_value_ratio=float((ratio >= ratio[0]).mean()),
                   prob_more_extreme=float(more))

    method = "bayes_placebo"

    def effects(self, level: float | None = None, interval: str | None = None) -> pd.DataFrame:
        """``att``/``overall`` (the treated unit) and one ``placebo``/``unit=<u>`` row per
        placebo unit: posterior mean, sd and equal-tailed ``level`` interval (default 0.95)
        of the ATT draws."""
        check_level(level)
        check_interval(self, interval, ("eti",))
        level = 0.95 if level is None else level
        q = np.quantile(self.att_draws, [(1 - level) / 2, (1 + level) / 2], axis=1)
        return tidy_table(pd.DataFrame({
            "estimand": np.where(self.table["placebo"], "placebo", "att"),
            "group": ["overall" if not p else f"unit={u}"
                      for u, p in zip(self.table["unit"], self.table["placebo"])],
            "estimate": self.att_draws.mean(axis=1),
            "se_or_sd": self.att_draws.std(axis=1, ddof=1),
            "lower": q[0], "upper": q[1], "level": level, "interval": "eti",
            "method": self.method, "n_obs": pd.array([None] * len(self.table), "Int64")}))

    def summary(self) -> pd.DataFrame:
        """One row per unit (the treated unit first): ATT and RMSPEs (:attr:`table`)."""
        return self.table.copy()

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def _describe(self) -> str:
        return (f"units={len(self.table)} p_value={self.p_value:.3f} "
                f"p_value_ratio={self.p_value_ratio:.3f} "
                f"prob_more_extreme={self.prob_more_extreme:.3f}")

    def report(self, digits: int = 3) -> str:
        head = (f"p-value (|ATT|) {self.p_value:.3f}; p-value (RMSPE ratio) "
                f"{self.p_value_ratio:.3f}; P(|placebo ATT| >= |ATT|) "
                f"{self.prob_more_extreme:.3f}\n")
        return head + self.table.to_markdown(index=False, floatfmt=f".{digits}f")

    def plot(self, ax=None, **kwargs):
        """Placebo-in-space: every placebo unit's posterior-mean gap (grey) and the treated
        unit's (see :func:`bayesdid.report.synth_plots.placebo_space_plot`). Returns a
        Figure."""
        from types import SimpleNamespace

        from ..report.synth_plots import placebo_space_plot

        treated = str(self.table["unit"].iloc[0])
        post = ~np.asarray(self.pre, bool)
        path = pd.DataFrame({"unit": treated, "time": self.times, "actual": np.nan,
                             "counterfactual": np.nan, "gap": self.gaps[0], "post": post})
        gaps = pd.concat([pd.DataFrame({"unit": treated, "placebo": u, "time": self.times,
                                        "gap": g})
                          for u, g in zip(self.table["unit"].iloc[1:], self.gaps[1:])],
                         ignore_index=True)
        return placebo_space_plot(SimpleNamespace(path=path, placebo_gaps=gaps), ax=ax,
                                  **kwargs)
