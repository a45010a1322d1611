"""A nutpie model of the marginal HierarchicalDiD that is compiled once per machine.

``nutpie.compile_pymc_model`` wraps each PyMC model's log-density in a freshly compiled
numba C callback (measured 5-19 s per fit on this machine, whatever the panel size), which
dominates small fits. The marginal DID has one fixed structure: sigma ~ HalfNormal,
rho ~ Uniform(-1, 1) (AR(1) only), one Gamma(2, 2 / effect_sd) sd per pooled block, and the
marginal likelihood of :mod:`.marginal_likelihood_numba`. Here that log-density, with PyMC's
transforms (log for sigma and the sds, interval for rho) and their Jacobians, is a numba C
callback cached on disk (``cache=True``), one per likelihood kernel (:data:`KERNELS`: dense,
block-arrow, per-unit scaled), each compiled only when a fit first needs it (nothing
compiles at import). All three also exist in C (``marginal_density.c``,
:func:`native_callbacks`): built by the system compiler in under a second where numba takes
5-16 s per kernel, they are what fits use when they build, and the numba callbacks are the
fallback (tests hold the two to 1e-10). Every
panel-specific number (cross-products, prior precisions, prior scales) reaches the
callback through nutpie's user-data pointer as one float64 buffer. The PyMC model still
provides names, coords, initial points and the fallback sampler; tests check this density
against PyMC's own.

Written by hand because nutpie offers no way to reuse a compiled callback across models.

>>> layout_header_size()
16
"""

from __future__ import annotations

import math
from functools import cache

import numba
import numpy as np
import pymc as pm

from ..bayes import native
from ..bayes.nutpie_compiled import (
    EXPAND_SIG,
    LOGP_SIG,
    UnsupportedModel,
    lazy_cfunc,
    sample_compiled,
)
from .hierarchical_model import _precision_parts, unit_precision
from .block_marginal import NATIVE_SOURCE, block_layout, block_loglik_grad_nb
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


@numba.njit(cache=True, error_model="numpy", inline="always")
def _hyper_prior(x, buf):
    """The priors of sigma, rho and the pooled sds with their transforms' Jacobians: logp,
    the gradient so far (rho's prior part only), sigma, rho, drho/dx, the sds and the
    prior precisions lam_phi of the coefficients they imply."""
    sigma_sd, g_alpha, g_beta = buf[3], buf[4], buf[5]
    has_rho, R, p = int(buf[6]), int(buf[7]), int(buf[8])
    const = buf[_HEADER:_HEADER + p]
    masks = buf[_HEADER + p:_HEADER + p + R * p].reshape((R, p))
    grad = np.zeros(x.shape[0])
    sigma = np.exp(x[0])
    logp = LOG_HALF_NORMAL_CONST - np.log(sigma_sd) - 0.5 * (sigma / sigma_sd) ** 2 + x[0]
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
    return logp, grad, sigma, rho, drho_dx, sds, lam_phi


@numba.njit(cache=True, error_model="numpy", inline="always")
def _chain_rule(buf, logp, grad, sigma, drho_dx, sds, ll, g_sig, g_rho, g_lam):
    """Add the marginal log-likelihood ``ll`` and carry its derivatives in sigma, rho and
    lam_phi to the unconstrained coordinates."""
    sigma_sd, g_alpha, g_beta = buf[3], buf[4], buf[5]
    has_rho, R, p = int(buf[6]), int(buf[7]), int(buf[8])
    masks = buf[_HEADER + p:_HEADER + p + R * p].reshape((R, p))
    k = 2 if has_rho else 1
    logp += ll
    grad[0] = (-sigma / sigma_sd**2 + g_sig) * sigma + 1.0
    if has_rho:
        grad[1] += g_rho * drho_dx
    for r in range(R):
        d_sd = (g_alpha - 1) / sds[r] - g_beta - 2.0 / sds[r] ** 3 * np.dot(g_lam, masks[r])
        grad[k + r] = d_sd * sds[r] + 1.0
    return logp, grad


@numba.njit(cache=True, error_model="numpy", inline="always")
def _basis(buf):
    """The cross-product basis (rows x columns) and the buffer offset just past it."""
    R, p, K, n_compact = int(buf[7]), int(buf[8]), int(buf[9]), int(buf[13])
    n_cols = n_compact if n_compact > 0 else (p + 1) * (p + 1)
    at = _HEADER + p + R * p
    return buf[at:at + K * n_cols].reshape((K, n_cols)), at + K * n_cols


@numba.njit(cache=True, error_model="numpy", inline="always")
def dense_logp_grad(x, buf):
    """:func:`did_logp_grad` on the dense (p+1)^2 basis."""
    logp, grad, sigma, rho, drho_dx, sds, lam_phi = _hyper_prior(x, buf)
    basis, at = _basis(buf)
    nL = int(buf[10])
    ll, g_sig, g_rho, g_lam = marginal_loglik_grad_nb(
        basis, buf[at:at + nL], buf[at + nL:at + 2 * nL], buf[1], buf[2], sigma, rho, lam_phi)
    return _chain_rule(buf, logp, grad, sigma, drho_dx, sds, ll, g_sig, g_rho, g_lam)


@numba.njit(cache=True, error_model="numpy", inline="always")
def block_logp_grad(x, buf):
    """:func:`did_logp_grad` on the block-arrow layout (header slots 13-15)."""
    logp, grad, sigma, rho, drho_dx, sds, lam_phi = _hyper_prior(x, buf)
    basis, at = _basis(buf)
    p, nL, n_head, n_groups = int(buf[8]), int(buf[10]), int(buf[14]), int(buf[15])
    at_idx = at + 2 * nL  # head, tail (p - head), group starts
    head_idx = buf[at_idx:at_idx + n_head].astype(np.int64)
    tail_idx = buf[at_idx + n_head:at_idx + p].astype(np.int64)
    starts = buf[at_idx + p:at_idx + p + n_groups + 1].astype(np.int64)
    ll, g_sig, g_rho, g_lam = block_loglik_grad_nb(
        basis, head_idx, tail_idx, starts, buf[at:at + nL], buf[at + nL:at + 2 * nL], buf[1],
        buf[2], sigma, rho, lam_phi)
    return _chain_rule(buf, logp, grad, sigma, drho_dx, sds, ll, g_sig, g_rho, g_lam)


@numba.njit(cache=True, error_model="numpy", inline="always")
def scaled_logp_grad(x, buf):
    """:func:`did_logp_grad` with per-unit precision scales (header slot 11 > 0): slot 10
    is the number of projection groups, and the unit_sd_ratio coordinates follow the sds."""
    logp, grad, sigma, rho, drho_dx, sds, lam_phi = _hyper_prior(x, buf)
    basis, at = _basis(buf)
    p, nL, n_classes = int(buf[8]), int(buf[10]), int(buf[11])
    m1 = p + 1
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
    # unit_sd_ratio ~ LogNormal(0, 1) on the log scale: Normal(0, 1) with the
    # log-transform Jacobian; class precision v_j = ratio_j^-2 (class 0: 1)
    j0 = (2 if buf[6] > 0 else 1) + int(buf[7])
    v = np.ones(n_classes)
    for j in range(1, n_classes):
        xj = x[j0 + j - 1]
        v[j] = np.exp(-2.0 * xj)
        logp += -0.5 * xj * xj - 0.5 * np.log(2 * np.pi)
    ll, g_sig, g_rho, g_lam, g_v = scaled_loglik_grad_nb(
        basis, Q, G, T, w, cls, count, buf[1], buf[2], sigma, rho, lam_phi, v)
    for j in range(1, n_classes):
        grad[j0 + j - 1] = -x[j0 + j - 1] - 2.0 * v[j] * g_v[j]
    return _chain_rule(buf, logp, grad, sigma, drho_dx, sds, ll, g_sig, g_rho, g_lam)


@numba.njit(cache=True, error_model="numpy")
def did_logp_grad(x, buf):
    """Log density (up to PyMC's constants, see :func:`did_logp_offset`) and gradient in
    the unconstrained coordinates ``x = [log sigma, (logit rho'), log sd_1, ...,
    (log unit_sd_ratio_1, ...)]``, on whichever kernel ``buf`` is packed for (compiles all
    three: the samplers' callbacks call one of :data:`KERNELS` directly)."""
    if buf[11] > 0:
        return scaled_logp_grad(x, buf)
    if buf[13] > 0:
        return block_logp_grad(x, buf)
    return dense_logp_grad(x, buf)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _store(value, grad, out, logp):
    """Write the value and gradient for nutpie; its status code (3: gradient, 4: value not
    finite). An element loop: a slice assignment compiles numba's shape-mismatch message."""
    logp[0] = value
    for i in range(grad.shape[0]):
        out[i] = grad[i]
    if not np.all(np.isfinite(grad)):
        return 3
    if not np.isfinite(value):
        return 4
    return 0


# The C callbacks (LOGP_SIG), one per kernel, so that a fit compiles only the kernel it
# samples on (:func:`kernel_of`). Plain functions: :func:`.nutpie_compiled.lazy_cfunc`
# compiles one on first use (cached on disk); a cfunc compiles its whole call tree eagerly.
def _dense_logp_cfunc(dim, x_, out_, logp_, user_data_):
    head = numba.carray(user_data_, (_HEADER,), np.float64)
    buf = numba.carray(user_data_, (int(head[0]),), np.float64)
    value, grad = dense_logp_grad(numba.carray(x_, (dim,)), buf)
    return _store(value, grad, numba.carray(out_, (dim,)), numba.carray(logp_, (1,)))


def _block_logp_cfunc(dim, x_, out_, logp_, user_data_):
    head = numba.carray(user_data_, (_HEADER,), np.float64)
    buf = numba.carray(user_data_, (int(head[0]),), np.float64)
    value, grad = block_logp_grad(numba.carray(x_, (dim,)), buf)
    return _store(value, grad, numba.carray(out_, (dim,)), numba.carray(logp_, (1,)))


def _scaled_logp_cfunc(dim, x_, out_, logp_, user_data_):
    head = numba.carray(user_data_, (_HEADER,), np.float64)
    buf = numba.carray(user_data_, (int(head[0]),), np.float64)
    value, grad = scaled_logp_grad(numba.carray(x_, (dim,)), buf)
    return _store(value, grad, numba.carray(out_, (dim,)), numba.carray(logp_, (1,)))


#: the kernels of the marginal likelihood and the C callback that samples on each
KERNELS = {"dense": _dense_logp_cfunc, "block": _block_logp_cfunc,
           "scaled": _scaled_logp_cfunc}


def kernel_of(user_data: np.ndarray) -> str:
    """Which kernel a :func:`pack_user_data` buffer is packed for: ``"scaled"`` (per-unit
    precision scales), ``"block"`` (block-arrow layout) or ``"dense"``."""
    if user_data[11] > 0:
        return "scaled"
    return "block" if user_data[13] > 0 else "dense"


def _expand_cfunc(dim, expanded, x_, out_, user_data_):
    """[unconstrained x..., sigma, (rho), sd_1, ...]: nutpie's trace layout (EXPAND_SIG)."""
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


#: the expand callback (EXPAND_SIG), the same for every kernel
EXPAND = _expand_cfunc


@cache
def native_callbacks():
    """``(logp, expand)``: the C callbacks built from :data:`NATIVE_SOURCE` (objects with the
    ``address`` nutpie calls; one logp serves every kernel of :data:`KERNELS`: the buffer
    says which), or ``None`` where they cannot be built (see
    :func:`bayesdid.bayes.native.load`): then the numba callbacks of :data:`KERNELS` serve."""
    lib = native.load(NATIVE_SOURCE)
    if lib is None:
        return None
    return lib.symbol("bayesdid_logp"), lib.symbol("bayesdid_expand")


def callbacks_for(kernel: str, use_native: bool = True):
    """The (logp, expand) callbacks a fit on ``kernel`` samples with: the C ones where they
    build (and ``use_native``), else numba's, compiled on first use."""
    if use_native and (built := native_callbacks()) is not None:
        return built
    return lazy_cfunc(KERNELS[kernel], LOGP_SIG), lazy_cfunc(EXPAND, EXPAND_SIG)


def compile_did_nutpie(model: pm.Model, design, priors, errors: str, block: bool = True,
                       use_native: bool = True):
    """A ``nutpie`` compiled model for the marginal HierarchicalDiD ``model`` (built by
    :func:`bayesdid.did.hierarchical_model.build_marginal`), without any per-model compilation.
    ``block=False`` keeps the dense cross-products even where the block-arrow layout
    applies (the benchmarks' like-for-like baseline); ``use_native=False`` samples with
    numba's callback instead of the C one (:func:`callbacks_for`).

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
    logp_cfunc, expand_cfunc = callbacks_for(kernel_of(user_data), use_native)
    point_fn = _wrap_with_lock(make_initial_point_fn(
        model=model, default_strategy="support_point", jitter_rvs=set(model.free_RVs),
        return_transformed=True))
    initial_point_fn = _rv_dict_to_flat_array_wrapper(point_fn, names=values, shapes=shapes)
    dims, coords = _prepare_dims_and_coords(model, shape_info, values)
    return CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes=dict(zip(names, shapes + shapes)),
        compiled_logp_func=logp_cfunc, compiled_expand_func=expand_cfunc,
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


__all__ = ["EXPAND", "KERNELS", "NATIVE_SOURCE", "UnsupportedModel",
           "block_logp_grad", "callbacks_for", "compile_did_nutpie", "dense_logp_grad", "did_logp_grad",
           "kernel_of", "native_callbacks", "pack_user_data", "sample_did_nutpie",
           "scaled_logp_grad"]
