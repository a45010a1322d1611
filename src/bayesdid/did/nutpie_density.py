"""A nutpie model of the marginal HierarchicalDiD that is compiled once per machine.

``nutpie.compile_pymc_model`` wraps each PyMC model's log-density in a freshly compiled
numba C callback (measured 5-19 s per fit on this machine, whatever the panel size), which
dominates small fits. The marginal DID has one fixed structure: sigma ~ HalfNormal,
rho ~ Uniform(-1, 1) (AR(1) only), one Gamma(2, 2 / effect_sd) sd per pooled block, and the
marginal likelihood of :mod:`.marginal_likelihood_numba`. Here that log-density, with PyMC's
transforms (log for sigma and the sds, interval for rho) and their Jacobians, is one
module-level numba C callback cached on disk (``cache=True``); every panel-specific number
(cross-products, prior precisions, prior scales) reaches it through nutpie's user-data
pointer as one float64 buffer. The PyMC model still provides names, coords, initial
points and the fallback sampler; tests check this density against PyMC's own.

Written by hand because nutpie offers no way to reuse a compiled callback across models.

>>> layout_header_size()
16
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pymc as pm

from ..bayes.nutpie_compiled import EXPAND_SIG, LOGP_SIG, UnsupportedModel, sample_compiled
from .hierarchical_model import _precision_parts, unit_precision
from .block_marginal import block_layout, block_loglik_grad_nb
from .marginal_likelihood_numba import marginal_loglik_grad_nb, scaled_loglik_grad_nb

_HEADER = 16
LOG_HALF_NORMAL_CONST = float(np.log(2.0) - 0.5 * np.log(2 * np.pi))


def layout_header_size() -> int:
    return _HEADER


def pack_user_data(design, priors, has_rho: bool, block: bool = True) -> np.ndarray:
    """One float64 buffer: header, prior precision constants and masks, cross-products.

    Header slot 11 is the number of variance classes of the per-unit precision scales
    (0: none; then slot 10 is the number of run lengths, else the number of projection
    groups, slot 12 whether they are grouped (Q) or per unit (G), and the cross-products
    are those of :func:`bayesdid.did.crossproducts.scaled_stats`).

    Without scales, when the cross-products have the block-arrow structure of
    :func:`.block_marginal.block_layout` (``block=True``, the default), the basis is stored
    on that layout: slot 13 is its number of columns (0: the dense (p+1)^2 basis), slot 14
    the head size, slot 15 the number of cell groups, and the head, tail and group starts
    follow the run lengths."""
    const, masks = _precision_parts(design, priors)
    mask_rows = np.array([masks[b.name] for b in design.random_blocks]).reshape(-1)
    sc = design.scaled
    st = design.stats if sc is None else sc
    basis = np.ascontiguousarray(st["basis"], dtype=float).reshape(-1)
    layout = block_layout(design) if block and sc is None else None
    block_slots = [0.0, 0.0, 0.0]
    n_rows = st["basis"].shape[0]
    if sc is None:
        parts = [const, mask_rows, basis, st["run_lengths"], st["units_per_length"]]
        n_runs, n_classes = len(st["run_lengths"]), 0
        if layout is not None:
            parts[2] = layout.basis.reshape(-1)
            parts += [layout.head.astype(float), layout.tail.astype(float),
                      layout.starts.astype(float)]
            block_slots = [layout.basis.shape[1], len(layout.head), len(layout.starts) - 1]
            n_rows = layout.basis.shape[0]
    else:
        parts = [const, mask_rows, basis, np.ascontiguousarray(sc["Q"], float).reshape(-1),
                 np.ascontiguousarray(sc["G"], float).reshape(-1),
                 sc["T"], sc["w"], sc["cls"].astype(float), sc["count"]]
        n_runs, n_classes = len(sc["T"]), sc["n_classes"]
    total = _HEADER + sum(len(p) for p in parts)
    header = [total, design.n_obs, unit_precision(design), priors.sigma_sd, 2.0,
              2.0 / priors.effect_sd,
              float(has_rho), len(design.random_blocks), design.n_phi, n_rows,
              n_runs, float(n_classes), float(sc is not None and len(sc["Q"]) > 0),
              *block_slots]
    return np.ascontiguousarray(np.concatenate([np.array(header, dtype=float), *parts]))


@numba.njit(cache=True, error_model="numpy")
def did_logp_grad(x, buf):
    """Log density (up to PyMC's constants, see :func:`did_logp_offset`) and gradient in
    the unconstrained coordinates ``x = [log sigma, (logit rho'), log sd_1, ...,
    (log unit_sd_ratio_1, ...)]``."""
    n_obs, lam_a, sigma_sd = buf[1], buf[2], buf[3]
    g_alpha, g_beta = buf[4], buf[5]
    has_rho, R, p, K, nL = int(buf[6]), int(buf[7]), int(buf[8]), int(buf[9]), int(buf[10])
    n_classes = int(buf[11])
    n_compact, n_head, n_groups = int(buf[13]), int(buf[14]), int(buf[15])
    at = _HEADER
    const = buf[at:at + p]
    at += p
    masks = buf[at:at + R * p].reshape((R, p))
    at += R * p
    m1 = p + 1
    n_cols = n_compact if n_compact > 0 else m1 * m1
    basis = buf[at:at + K * n_cols].reshape((K, n_cols))
    at += K * n_cols
    run_lengths = buf[at:at + nL]
    units_per_length = buf[at + nL:at + 2 * nL]
    head_idx = tail_idx = starts = np.empty(0, np.int64)
    if n_compact > 0:  # block layout: head, tail (p - head), group starts
        at_idx = at + 2 * nL
        head_idx = buf[at_idx:at_idx + n_head].astype(np.int64)
        tail_idx = buf[at_idx + n_head:at_idx + p].astype(np.int64)
        starts = buf[at_idx + p:at_idx + p + n_groups + 1].astype(np.int64)
    grad = np.zeros(x.shape[0])
    if n_classes > 0:  # per-unit scales: nL is the number of projection groups
        nQ = 9 * nL if buf[12] > 0 else 0
        nG = 0 if buf[12] > 0 else nL
        Q = buf[at:at + nQ * m1 * m1].reshape((nQ, m1 * m1))
        at += nQ * m1 * m1
        G = buf[at:at + nG * 3 * m1].reshape((nG, 3, m1))
        at += nG * 3 * m1
        T = buf[at:at + nL]
        w = buf[at + nL:at + 2 * nL]
        cls = buf[at + 2 * nL:at + 3 * nL].astype(np.int64)
        count = buf[at + 3 * nL:at + 4 * nL]

    sigma = np.exp(x[0])
    logp = LOG_HALF_NORMAL_CONST - np.log(sigma_sd) - 0.5 * (sigma / sigma_sd) ** 2 + x[0]
    d_sigma = -sigma / sigma_sd**2
    rho = 0.0
    drho_dx = 0.0
    k = 1
    if has_rho:
        z = x[1]
        sig = 1.0 / (1.0 + np.exp(-z)) if z >= 0 else np.exp(z) / (1.0 + np.exp(z))
        rho = -1.0 + 2.0 * sig
        drho_dx = 2.0 * sig * (1.0 - sig)
        # Uniform(-1, 1) density -log 2 plus the interval transform's log Jacobian
        # log 2 + log sig + log(1 - sig)
        logp += np.log(sig) + np.log1p(-sig)
        grad[1] = 1.0 - 2.0 * sig
        k = 2
    lam_phi = const.copy()
    sds = np.exp(x[k:k + R])
    for r in range(R):
        lam_phi += masks[r] / sds[r] ** 2
        logp += (g_alpha * np.log(g_beta) - math.lgamma(g_alpha)
                 + (g_alpha - 1) * np.log(sds[r]) - g_beta * sds[r] + x[k + r])
    if n_classes > 0:
        # unit_sd_ratio ~ LogNormal(0, 1) on the log scale: Normal(0, 1) with the
        # log-transform Jacobian; class precision v_j = ratio_j^-2 (class 0: 1)
        j0 = k + R
        v = np.ones(n_classes)
        for j in range(1, n_classes):
            xj = x[j0 + j - 1]
            v[j] = np.exp(-2.0 * xj)
            logp += -0.5 * xj * xj - 0.5 * np.log(2 * np.pi)
        ll, g_sig, g_rho, g_lam, g_v = scaled_loglik_grad_nb(
            basis, Q, G, T, w, cls, count, n_obs, lam_a, sigma, rho, lam_phi, v)
        for j in range(1, n_classes):
            grad[j0 + j - 1] = -x[j0 + j - 1] - 2.0 * v[j] * g_v[j]
    elif n_compact > 0:
        ll, g_sig, g_rho, g_lam = block_loglik_grad_nb(
            basis, head_idx, tail_idx, starts, run_lengths, units_per_length, n_obs, lam_a,
            sigma, rho, lam_phi)
    else:
        ll, g_sig, g_rho, g_lam = marginal_loglik_grad_nb(
            basis, run_lengths, units_per_length, n_obs, lam_a, sigma, rho, lam_phi)
    logp += ll
    grad[0] = (d_sigma + g_sig) * sigma + 1.0
    if has_rho:
        grad[1] += g_rho * drho_dx
    for r in range(R):
        d_sd = (g_alpha - 1) / sds[r] - g_beta - 2.0 / sds[r] ** 3 * np.dot(g_lam, masks[r])
        grad[k + r] = d_sd * sds[r] + 1.0
    return logp, grad


@numba.cfunc(LOGP_SIG, cache=True, error_model="numpy")
def _logp_cfunc(dim, x_, out_, logp_, user_data_):
    head = numba.carray(user_data_, (_HEADER,), np.float64)
    buf = numba.carray(user_data_, (int(head[0]),), np.float64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    logp = numba.carray(logp_, (1,))
    value, grad = did_logp_grad(x, buf)
    logp[0] = value
    out[:] = grad
    if not np.all(np.isfinite(grad)):
        return 3
    if not np.isfinite(value):
        return 4
    return 0


@numba.cfunc(EXPAND_SIG, cache=True, error_model="numpy")
def _expand_cfunc(dim, expanded, x_, out_, user_data_):
    """[unconstrained x..., sigma, (rho), sd_1, ...]: nutpie's trace layout."""
    head = numba.carray(user_data_, (_HEADER,), np.float64)
    has_rho = int(head[6])
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (expanded,))
    for i in range(dim):
        out[i] = x[i]
    for i in range(dim):
        if has_rho and i == 1:
            out[dim + i] = -1.0 + 2.0 / (1.0 + np.exp(-x[i]))
        else:
            out[dim + i] = np.exp(x[i])
    return 0


def compile_did_nutpie(model: pm.Model, design, priors, errors: str, block: bool = True):
    """A ``nutpie`` compiled model for the marginal HierarchicalDiD ``model`` (built by
    :func:`bayesdid.did.hierarchical_model.build_marginal`), without any per-model compilation.
    ``block=False`` keeps the dense cross-products even where the block-arrow layout
    applies (the benchmarks' like-for-like baseline).

    Raises :class:`UnsupportedModel` if the model's free variables are not the ones this
    density is written for (then use ``pm.sample``)."""
    from nutpie.compile_pymc import (
        CompiledPyMCModel,
        _prepare_dims_and_coords,
        _rv_dict_to_flat_array_wrapper,
        _wrap_with_lock,
    )
    from pymc.initial_point import make_initial_point_fn

    from .hierarchical_model import UNIT_SD_RATIO

    has_rho = errors == "ar1"
    n_classes = 0 if design.scaled is None else design.scaled["n_classes"]
    expected = {"sigma": "HalfNormalRV", **({"rho": "UniformRV"} if has_rho else {}),
                **{f"sd_{b.name}": "GammaRV" for b in design.random_blocks},
                **({UNIT_SD_RATIO: "LogNormalRV"} if n_classes > 1 else {})}
    free = {rv.name: type(rv.owner.op).__name__ for rv in model.free_RVs}
    if list(free.items()) != list(expected.items()) or model.deterministics or model.observed_RVs:
        raise UnsupportedModel(f"the compiled density covers {expected}, the model has {free}")
    values = [model.rvs_to_values[rv].name for rv in model.free_RVs]
    shapes = [(n_classes - 1,) if name == UNIT_SD_RATIO else () for name in free]
    sizes = [int(np.prod(s)) for s in shapes]
    n_dim = sum(sizes)
    names = values + list(free)
    starts = np.cumsum([0, *sizes, *sizes])
    shape_info = (names, [slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])],
                  shapes + shapes)
    user_data = pack_user_data(design, priors, has_rho, block=block)
    user_data.flags.writeable = False
    point_fn = _wrap_with_lock(make_initial_point_fn(
        model=model, default_strategy="support_point", jitter_rvs=set(model.free_RVs),
        return_transformed=True))
    initial_point_fn = _rv_dict_to_flat_array_wrapper(point_fn, names=values, shapes=shapes)
    dims, coords = _prepare_dims_and_coords(model, shape_info, values)
    return CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes=dict(zip(names, shapes + shapes)),
        compiled_logp_func=_logp_cfunc, compiled_expand_func=_expand_cfunc,
        initial_point_func=initial_point_fn, shared_data={}, shared_var_keys={},
        user_data=user_data, n_expanded=2 * n_dim, shape_info=shape_info,
        logp_func=None, expand_func=None, reparameterized_names=values)


def sample_did_nutpie(model: pm.Model, design, priors, errors: str, *, draws: int, tune: int,
                      chains: int, cores: int, random_seed: int, progress: bool,
                      target_accept: float):
    """nutpie NUTS on :func:`compile_did_nutpie`: a DataTree in the form
    ``pm.sample(nuts_sampler="nutpie")`` returns (same attrs as :func:`.sampling.sample`)."""
    return sample_compiled(
        model, lambda: compile_did_nutpie(model, design, priors, errors),
        draws=draws, tune=tune, chains=chains, cores=cores, random_seed=random_seed,
        progress=progress, target_accept=target_accept)


__all__ = ["UnsupportedModel", "compile_did_nutpie", "sample_did_nutpie", "did_logp_grad",
           "pack_user_data"]
