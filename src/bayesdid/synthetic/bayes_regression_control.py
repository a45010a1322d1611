"""BayesianRegressionControl: the regression control method with a regularised horseshoe.

Hsiao, Ching & Wan (2012) regress a treated unit's pre-period outcome on the control
units' outcomes and pick the controls by an information criterion over best subsets.
Here every control enters, and a regularised horseshoe prior (Piironen & Vehtari 2017)
shrinks the coefficients of irrelevant controls to zero instead of searching subsets.
For each treated unit ``j`` (outcome and every donor standardised by their own
pre-period mean and sd; results on the original scale)::

    y[j, t]   = a[j] + sum_d beta[j, d] * x[d, t] + e[j, t],   e ~ N(0, sigma_j^2)
    beta      = z * tau_j * lambda_tilde,   z ~ N(0, 1)            (non-centred)
    lambda_tilde^2 = c_j^2 lambda^2 / (c_j^2 + tau_j^2 lambda^2)
    lambda ~ HalfCauchy(1),  tau_j ~ HalfCauchy(tau0_j),  tau0_j = p0 / (D - p0) * sigma_j / sqrt(n_j)
    c_j^2 ~ InvGamma(slab_df / 2, slab_df * slab_scale^2 / 2)
    a[j] ~ N(0, 1),  sigma_j ~ HalfNormal(noise_sd)

(``p0``, ``slab_scale``, ``slab_df``, ``noise_sd``: :class:`RegressionControlPriors`.)

The half-Cauchy scales are written as ``HalfNormal * sqrt(InvGamma(1/2, 1/2))`` (the
auxiliary-variable form brms uses), which NUTS explores with fewer divergences. Gap, ATT
and pooling as for :class:`~bayesdid.synthetic.bayes_synth.BayesianSyntheticControl`
(:mod:`bayesdid.synthetic.bayes_pooled`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .donors import DonorPool
from ..errors import BayesDidError
from ..panel import Panel
from ..bayes.model import BayesianModel, panel_first
from ..did.priors import PositivePriors
from ..bayes.notices import warn_ignored_design
from ..bayes.sampling import resolve_seed
from .bayes_synth import POOLING, _flat, sample_synth
from .bayes_pooled import BayesSynthResult, SynthDesign, as_pool, assemble, design_from_pool

__all__ = ["BayesianRegressionControl", "RegressionControlPriors"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegressionControlPriors(PositivePriors):
    """Prior settings of :class:`BayesianRegressionControl` (all positive; outcome and
    donors standardised by their own pre-period mean and sd).

    expected_nonzero : prior guess ``p0`` of the number of relevant donors (sets the
        horseshoe's global scale ``tau0``).
    slab_scale, slab_df : the slab that caps large coefficients.
    noise_sd : half-normal prior scale of the noise sd ``sigma``.
    effect_sd, pooling_sd : priors of the pooled mean and the between-unit sd of the
        effect (several treated units, ``pooling="partial"``), in units of the
        standardisation scale (see :mod:`bayesdid.synthetic.bayes_pooled`).

    >>> RegressionControlPriors(expected_nonzero=5).expected_nonzero
    5.0
    """

    expected_nonzero: float = 3.0
    slab_scale: float = 2.0
    slab_df: float = 4.0
    noise_sd: float = 0.5
    effect_sd: float = 1.0
    pooling_sd: float = 0.5


class BayesianRegressionControl(BayesianModel):
    """Regression control method (HCW 2012) with a regularised horseshoe on all donors.

    Parameters
    ----------
    pooling : as for :class:`~bayesdid.synthetic.bayes_synth.BayesianSyntheticControl`.
    priors : :class:`RegressionControlPriors` (``expected_nonzero``, ``slab_scale``,
        ``slab_df``, ``noise_sd``, ``effect_sd``, ``pooling_sd``). Giving those as
        keywords of the model still works for one release, with a FutureWarning.

    Examples
    --------
    >>> from bayesdid.datasets.simulate_pilot import simulate_pilot_zones
    >>> sim = simulate_pilot_zones(treated=2, random_seed=3)
    >>> panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    >>> model = BayesianRegressionControl().build(panel)
    >>> model.named_vars_to_dims["beta"], len(model.coords["obs"])
    (('unit', 'donor'), 26)
    """

    priors_class = RegressionControlPriors

    def __init__(self, expected_nonzero: float | None = None,
                 slab_scale: float | None = None, slab_df: float | None = None,
                 noise_sd: float | None = None,
                 pooling: Literal["partial", "none"] = "partial",
                 effect_sd: float | None = None, pooling_sd: float | None = None, *,
                 priors: RegressionControlPriors | None = None):
        if pooling not in POOLING:
            raise BayesDidError(f"pooling must be one of {POOLING}, got {pooling!r}")
        self.pooling = pooling
        self.priors = self._resolve_priors(
            priors, expected_nonzero=expected_nonzero, slab_scale=slab_scale,
            slab_df=slab_df, noise_sd=noise_sd, effect_sd=effect_sd, pooling_sd=pooling_sd)

    def config(self) -> dict:
        return {"pooling": self.pooling, "priors": self.priors.to_dict()}

    @panel_first
    def prepare(self, panel: Panel | DonorPool) -> SynthDesign:
        """Standardised arrays (each series by its own pre-period mean and sd)."""
        return design_from_pool(as_pool(panel), per_donor_scale=True)

    @panel_first
    def build(self, panel: Panel | DonorPool) -> pm.Model:
        """The PyMC model (pure: no sampling); observed ``y_pre`` over the pre-period cells
        (dim ``obs``), coefficients ``beta`` (unit, donor)."""
        return self._build(self.prepare(panel))

    def _build(self, design: SynthDesign) -> pm.Model:
        p = self.priors
        D = design.n_donors
        t_idx, k_idx = np.nonzero(design.pre)
        n_pre = design.pre.sum(axis=0).astype(float)
        p0 = min(p.expected_nonzero, D - 0.5)
        tau0 = p0 / (D - p0) / np.sqrt(n_pre)
        coords = {"unit": [str(u) for u in design.targets],
                  "donor": [str(design.donor_units[i]) for i in design.donor_idx[0]],
                  "obs": np.arange(len(t_idx))}
        with pm.Model(coords=coords) as model:
            sigma = pm.HalfNormal("sigma_std", p.noise_sd, dims="unit")
            a = pm.Normal("a", 0.0, 1.0, dims="unit")
            tau_n = pm.HalfNormal("tau_n", 1.0, dims="unit")
            tau_ig = pm.InverseGamma("tau_ig", 0.5, 0.5, dims="unit")
            tau = tau0 * sigma * tau_n * pt.sqrt(tau_ig)
            lam_n = pm.HalfNormal("lambda_n", 1.0, dims=("unit", "donor"))
            lam_ig = pm.InverseGamma("lambda_ig", 0.5, 0.5, dims=("unit", "donor"))
            lam = lam_n * pt.sqrt(lam_ig)
            c2 = pm.InverseGamma("c2", p.slab_df / 2, p.slab_df * p.slab_scale**2 / 2,
                                 dims="unit")
            lam_tilde = pt.sqrt(c2[:, None] * lam**2 / (c2[:, None] + tau[:, None] ** 2 * lam**2))
            z = pm.Normal("z", 0.0, 1.0, dims=("unit", "donor"))
            beta = pm.Deterministic("beta", z * tau[:, None] * lam_tilde, dims=("unit", "donor"))
            X_obs = design.X[t_idx, k_idx, :]  # (n_obs, D)
            mu = a[k_idx] + (X_obs * beta[k_idx]).sum(axis=1)
            pm.Normal("y_pre", mu, sigma[k_idx], observed=design.y[t_idx, k_idx], dims="obs")
        return model

    @panel_first
    def fit(self, panel: Panel | DonorPool, *, draws: int = 1000, tune: int = 1000,
            chains: int = 4, cores: int | None = None, random_seed: int | None = None,
            progress: bool = True, target_accept: float = 0.95) -> BayesSynthResult:
        """Sample and return a :class:`~bayesdid.synthetic.bayes_pooled.BayesSynthResult`;
        its ``weight`` variable holds the coefficients on the original scale
        (``weights()`` lists them). ``panel``: a
        :class:`~bayesdid.panel.Panel` or a :func:`~bayesdid.synthetic.donors.donor_pool`."""
        random_seed = resolve_seed(random_seed)
        design = self.prepare(panel)
        warn_ignored_design(self, panel)
        model = self._build(design)
        idata = sample_synth(model, draws=draws, tune=tune, chains=chains, cores=cores,
                       random_seed=random_seed, progress=progress, target_accept=target_accept)
        post = idata.posterior
        beta = _flat(post["beta"].values)  # (S, K, D), standardised
        a = _flat(post["a"].values)
        sigma = _flat(post["sigma_std"].values)
        mean_std = a[:, :, None] + np.einsum("tkd,skd->skt", design.X, beta)
        ratio = design.y_scale[None, :, None] / design.x_scale[None]
        coef = beta * ratio
        intercept = design.y_center[None] + design.y_scale[None] * a - (
            coef * design.x_center[None]).sum(axis=2)
        info = self.fit_info(
            random_seed=random_seed, draws=draws, tune=tune, chains=chains,
            treated_units=list(map(str, design.targets)),
            donor_units=list(map(str, design.donor_units)),
            n_pre=design.pre.sum(axis=0).tolist(),
            # every sampled parameter (horseshoe global and local scales included) and the
            # coefficients and intercepts on the original scale
            sampled_vars=[rv.name for rv in model.free_RVs] + ["weight", "intercept"])
        return assemble(idata, design, mean_std, sigma, pooling=self.pooling,
                        effect_sd=self.priors.effect_sd, pooling_sd=self.priors.pooling_sd,
                        seed=random_seed, method="bayes_regression_control", info=info,
                        weights=coef, intercept=intercept)
