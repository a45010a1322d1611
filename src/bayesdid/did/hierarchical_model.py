"""build_pymc(design, ...) -> pm.Model for the hierarchical DID, in two exact forms.

* ``marginal``: NUTS sees only sigma, rho, the pooling sds (and, with variance classes,
  the classes' sd ratios); every linear coefficient is integrated out
  (:mod:`.marginal_likelihood`; with per-unit precision scales -- panel weights, variance
  classes -- :mod:`.scaled_likelihood`). Gaussian iid or AR(1) errors.
* ``dense``: every coefficient is a sampled parameter (unit effects centred, pooled effects
  non-centred). Needed for Student-t errors; the reference the marginal form is tested
  against.

Both use the same priors, so for Gaussian errors they define the same posterior.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .hierarchical_design import FIXED_PRIOR_SD, DiDDesign
from .marginal_likelihood import draw_phi, marginal_loglik_pt
from .priors import DiDPriors
from .scaled_likelihood import scaled_loglik_pt

try:  # registers the numba implementation of the marginal-likelihood Op (nutpie path)
    from .marginal_likelihood_numba import draw_phi_nb
    COMPILED_MARGINAL = True
except ImportError as exc:  # a PyTensor without the numba helpers used there
    import logging

    logging.getLogger(__name__).info("compiled marginal likelihood unavailable: %s", exc)
    draw_phi_nb, COMPILED_MARGINAL = draw_phi, False

LAM_FIXED = 1.0 / FIXED_PRIOR_SD**2


def unit_precision(design: DiDDesign) -> float:
    """Prior precision of the unit effects: infinite (effects fixed at 0) without them."""
    return LAM_FIXED if design.unit_effect else np.inf


def _coords(design: DiDDesign) -> dict[str, list]:
    coords = {k: v for k, v in design.coords.items() if k != "cell"}
    coords["cell"] = design.coords["cell"]
    return coords


def _hyperparameters(design: DiDDesign, errors: str, priors: DiDPriors):
    sigma = pm.HalfNormal("sigma", priors.sigma_sd)
    rho = pm.Uniform("rho", -1.0, 1.0) if errors == "ar1" else pt.constant(0.0)
    # Gamma(2) keeps pooling sds off zero (few cohorts/regions give little information
    # about them); it also makes their log-scale posterior nearly Gaussian for NUTS.
    sds = {b.name: pm.Gamma(f"sd_{b.name}", alpha=2.0, beta=2.0 / priors.effect_sd)
           for b in design.random_blocks}
    return sigma, rho, sds


def _precision_parts(design: DiDDesign, priors: DiDPriors):
    """Prior precision of phi as a constant vector plus one 0/1 mask per pooled block, whose
    entries take 1 / sd_block^2."""
    const = np.zeros(design.n_phi)
    masks = {}
    for b in design.blocks:
        if b.kind == "fixed":
            const[b.slice] = LAM_FIXED
        elif b.kind == "mean":
            const[b.slice] = 1.0 / priors.effect_mean_sd**2
        else:
            masks[b.name] = np.zeros(design.n_phi)
            masks[b.name][b.slice] = 1.0
    return const, masks


def prior_precision(design: DiDDesign, priors: DiDPriors, sds: dict):
    """Symbolic vector of prior precisions of phi.

    Built as constant + sum of masked terms (elementwise ops only), which PyTensor's C
    backend caches across models, unlike a join of per-block pieces.
    """
    const, masks = _precision_parts(design, priors)
    return const + sum((mask / sds[name] ** 2 for name, mask in masks.items()),
                       start=0)


def prior_precision_draws(design: DiDDesign, priors: DiDPriors, sds: dict) -> np.ndarray:
    """NumPy twin of :func:`prior_precision` for many draws: ``sds[name]`` has shape (n,)."""
    const, masks = _precision_parts(design, priors)
    n = len(next(iter(sds.values()))) if sds else 1
    lam = np.tile(const, (n, 1))
    for name, mask in masks.items():
        lam += np.outer(1.0 / sds[name] ** 2, mask)
    return lam


UNIT_SD_RATIO = "unit_sd_ratio"
UNIT_SD_RATIO_PRIOR_SD = 1.0  # LogNormal(0, 1): a class's sd within 1/7..7 x the reference


def class_precisions(design: DiDDesign):
    """Symbolic precision multipliers ``v`` of the variance classes (1 for the reference
    class 0, ``unit_sd_ratio**-2`` for the others); a constant 1 without classes."""
    K = design.scaled["n_classes"]
    if K == 1:
        return pt.ones(1)
    ratio = pm.LogNormal(UNIT_SD_RATIO, 0.0, UNIT_SD_RATIO_PRIOR_SD, shape=K - 1)
    return pt.concatenate([pt.ones(1), ratio**-2])


def row_precision(design: DiDDesign, v) -> object:
    """Per-row precision multiplier ``w_i v_k(i)`` of the dense model (1 without scales)."""
    sc = design.scaled
    return sc["unit_w"][design.unit_idx] * v[sc["unit_cls"][design.unit_idx]]


def build_marginal(design: DiDDesign, errors: str, priors: DiDPriors) -> pm.Model:
    """Marginal form: coefficients integrated out exactly (Gaussian iid or AR(1)); with
    ``design.scaled``, per-unit precision scales (:mod:`.scaled_likelihood`)."""
    with pm.Model(coords=_coords(design)) as model:
        sigma, rho, sds = _hyperparameters(design, errors, priors)
        lam_phi = prior_precision(design, priors, sds)
        if design.scaled is None:
            pm.Potential("marginal_loglik", marginal_loglik_pt(
                design.stats, design.n_obs, sigma, rho, unit_precision(design), lam_phi))
        else:
            v = class_precisions(design)
            pm.Potential("marginal_loglik", scaled_loglik_pt(
                design.scaled, design.n_obs, sigma, rho, unit_precision(design), lam_phi, v))
    return model


def build_dense(design: DiDDesign, errors: str, priors: DiDPriors) -> pm.Model:
    """Dense form: every coefficient sampled; supports iid, AR(1) and Student-t errors."""
    coords = _coords(design)
    coords["unit"] = list(range(design.n_units))
    with pm.Model(coords=coords) as model:
        sigma, rho, sds = _hyperparameters(design, errors, priors)
        if design.scaled is not None:  # unit i's error sd: sigma / sqrt(w_i v_k)
            sigma = sigma / pt.sqrt(row_precision(design, class_precisions(design)))
        a = (pm.Normal("unit_effect", 0.0, FIXED_PRIOR_SD, dims="unit") if design.unit_effect
             else pt.zeros(design.n_units))
        parts = {}
        for b in design.blocks:
            if b.kind == "fixed":
                parts[b.name] = pm.Normal(f"{b.name}_std", 0.0, FIXED_PRIOR_SD, shape=b.size)
            elif b.kind == "mean":
                parts[b.name] = pm.Normal(f"{b.name}_effect_std", 0.0, priors.effect_mean_sd,
                                          shape=b.size)
            else:  # non-centred pooled block
                parts[b.name] = sds[b.name] * pm.Normal(f"z_{b.name}", 0.0, 1.0, shape=b.size)
        phi = pt.concatenate([parts[b.name] for b in design.blocks])
        mean = a[design.unit_idx]
        fe_block = parts.get("time", parts.get("fe"))
        if fe_block is not None:  # -1 (no kept column) picks the appended zero
            padded = pt.concatenate([fe_block, pt.zeros(1)])
            for term_cols in design.fe_cols:
                mean = mean + padded[term_cols]
        if "beta" in parts:
            mean = mean + pt.dot(design.X, parts["beta"])
        for name, codes in design.random_terms:  # random_effects= (e.g. region x year)
            mean = mean + parts[name][codes]
        tau = pt.dot(design.cell_loadings, phi)
        tau = pm.Deterministic("tau_cell_std", tau, dims="cell")
        treated = np.flatnonzero(design.cell_idx >= 0)
        mean = pt.inc_subtensor(mean[treated], tau[design.cell_idx[treated]])
        resid = design.y - mean
        if errors == "student_t":
            nu = pm.Deterministic("nu", 2.0 + pm.Exponential("nu_minus_2", priors.nu_rate))
            pm.Potential("loglik", pm.logp(pm.StudentT.dist(nu=nu, mu=0.0, sigma=sigma), resid).sum())
        elif errors == "ar1":
            has_prev = np.flatnonzero(design.prev_row >= 0)
            first = np.flatnonzero(design.prev_row < 0)
            innov = resid[has_prev] - rho * resid[design.prev_row[has_prev]]
            s_cur = sigma[has_prev] if design.scaled is not None else sigma
            s_first = sigma[first] if design.scaled is not None else sigma
            pm.Potential("loglik", pm.logp(pm.Normal.dist(0.0, s_cur), innov).sum()
                         + pm.logp(pm.Normal.dist(0.0, s_first / pt.sqrt(1 - rho**2)),
                                   resid[first]).sum())
        else:
            pm.Potential("loglik", pm.logp(pm.Normal.dist(0.0, sigma), resid).sum())
    return model
