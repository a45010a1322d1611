"""The factor model's log-density as one numba C callback, compiled once per machine (nutpie).

``nutpie.compile_pymc_model`` compiles a fresh numba callback per PyMC model (tens of
seconds here), and PyTensor's graph of the Woodbury likelihood costs ~1 ms per gradient
(hundreds of small Ops). The model has one fixed structure, so its log-density and
gradient are written here by hand in the unconstrained coordinates
``x = [log sigma, log sd_unit, log tau (K), F (T*K, row-major)]`` with PyMC's log
transforms and Jacobians (the period effects ``b`` are integrated out, as in the PyMC graph); every panel-specific number (pattern groups' counts, means and
scatters, prior scales) reaches the cached callback through nutpie's user-data buffer, as
in :mod:`bayesdid.did.nutpie_density`. Per pattern group of length ``s`` the gradient of
``-n/2 log|S| - 1/2 tr(S^-1 (W + n d d'))`` with ``S = L L' + sigma^2 I`` is
``G = -1/2 (n S^-1 - S^-1 (W + n d d' + n V) S^-1)`` with ``d`` the group mean minus the
posterior mean ``m`` of ``b`` and ``V`` its posterior covariance (the envelope theorem):
``dL = 2 c^2 G L`` (``c`` the group's prior-sd multiplier), ``d sigma^2 = tr G``. Tests check it against PyMC's own density of the same model.

>>> header_size()
10
"""

from __future__ import annotations

import numba
import numpy as np
import pymc as pm

from ..bayes.nutpie_compiled import EXPAND_SIG, LOGP_SIG, sample_compiled
from ..bayes.small_linalg import spd_inverse

_HEADER = 10


def header_size() -> int:
    return _HEADER


def pack_user_data(design, model_cfg) -> np.ndarray:
    """One float64 buffer: header then, per pattern group, ``[s, n, scale, mean (s),
    W (s*s)]`` (``scale``: the prior-sd multiplier of its units' effects and loadings)."""
    T, K, pr = design.n_periods, model_cfg.max_factors, model_cfg.priors
    parts = []
    for g in design.groups:
        scale = pr.treated_scale if g.treated else 1.0
        parts += [np.array([g.length, g.n, scale], float), g.mean, g.scatter.reshape(-1)]
    body = np.concatenate(parts)
    header = [_HEADER + len(body), T, K, len(design.groups), pr.time_sd,
              pr.noise_sd, pr.unit_sd, pr.factor_scale, pr.shrink, 0.0]
    return np.ascontiguousarray(np.concatenate([np.array(header, float), body]))


@numba.njit(cache=True, error_model="numpy")
def factor_logp_grad(x, buf):
    """Log density (up to constants) and gradient in the unconstrained coordinates
    ``x = [log sigma, log sd_unit, log tau (K), F (T*K)]`` (``b`` integrated out)."""
    T, K, n_groups = int(buf[1]), int(buf[2]), int(buf[3])
    time_sd, noise_sd, unit_sd, f_scale, shrink = buf[4], buf[5], buf[6], buf[7], buf[8]
    grad = np.zeros(x.shape[0])
    sigma = np.exp(x[0])
    sd_unit = np.exp(x[1])
    tau = np.exp(x[2:2 + K])
    F = x[2 + K:].reshape((T, K))
    logp = -0.5 * (sigma / noise_sd) ** 2 + x[0]
    logp += -0.5 * (sd_unit / unit_sd) ** 2 + x[1]
    for k in range(K):
        scale = f_scale * shrink ** k
        logp += -0.5 * (tau[k] / scale) ** 2 + x[2 + k]
        grad[2 + k] = -(tau[k] / scale) ** 2 + 1.0
    for t in range(T):
        for k in range(K):
            logp -= 0.5 * F[t, k] ** 2
            grad[2 + K + t * K + k] = -F[t, k]
    r = K + 1
    L = np.empty((T, r))
    for t in range(T):
        L[t, 0] = sd_unit
        for k in range(K):
            L[t, k + 1] = F[t, k] * tau[k]
    s2 = sigma * sigma
    Sis = np.zeros((n_groups, T, T))
    P = np.eye(T) / time_sd ** 2
    h = np.zeros(T)
    at = _HEADER
    offsets = np.empty(n_groups, np.int64)
    for g in range(n_groups):
        offsets[g] = at
        s, n, c = int(buf[at]), buf[at + 1], buf[at + 2]
        mean = buf[at + 3:at + 3 + s]
        W = buf[at + 3 + s:at + 3 + s + s * s].reshape((s, s))
        at += 3 + s + s * s
        Ls = L[:s] * c
        S = Ls @ Ls.T
        for i in range(s):
            S[i, i] += s2
        ok, logdet, Si = spd_inverse(S)
        if not ok:
            return -np.inf, grad
        Sis[g, :s, :s] = Si
        P[:s, :s] += n * Si
        h[:s] += n * (Si @ mean)
        logp += -0.5 * (n * (s * np.log(2 * np.pi) + logdet) + np.trace(Si @ W))
    ok, logdet_P, V = spd_inverse(P)
    if not ok:
        return -np.inf, grad
    m = V @ h
    logp += -0.5 * (m @ m) / time_sd ** 2 - 0.5 * logdet_P - T * np.log(time_sd)
    dL = np.zeros((T, r))
    d_s2 = 0.0
    for g in range(n_groups):
        at = offsets[g]
        s, n, c = int(buf[at]), buf[at + 1], buf[at + 2]
        mean = buf[at + 3:at + 3 + s]
        W = buf[at + 3 + s:at + 3 + s + s * s].reshape((s, s))
        Si = Sis[g, :s, :s].copy()
        d = mean - m[:s]
        logp -= 0.5 * n * (d @ (Si @ d))
        Q = W + n * np.outer(d, d) + n * V[:s, :s]
        G = -0.5 * (n * Si - Si @ Q @ Si)
        dL[:s] += 2.0 * c * c * (G @ L[:s])
        d_s2 += np.trace(G)
    grad[0] += -(sigma / noise_sd) ** 2 + 1.0 + 2.0 * s2 * d_s2
    grad[1] += -(sd_unit / unit_sd) ** 2 + 1.0 + sd_unit * dL[:, 0].sum()
    for k in range(K):
        acc = 0.0
        for t in range(T):
            acc += dL[t, k + 1] * F[t, k]
            grad[2 + K + t * K + k] += dL[t, k + 1] * tau[k]
        grad[2 + k] += tau[k] * acc
    return logp, grad


@numba.cfunc(LOGP_SIG, cache=True, error_model="numpy")
def _logp_cfunc(dim, x_, out_, logp_, user_data_):
    head = numba.carray(user_data_, (_HEADER,), np.float64)
    buf = numba.carray(user_data_, (int(head[0]),), np.float64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    logp = numba.carray(logp_, (1,))
    value, grad = factor_logp_grad(x, buf)
    logp[0] = value
    out[:] = grad
    if not np.all(np.isfinite(grad)):
        return 3
    if not np.isfinite(value):
        return 4
    return 0


@numba.cfunc(EXPAND_SIG, cache=True, error_model="numpy")
def _expand_cfunc(dim, expanded, x_, out_, user_data_):
    """[log sigma, log sd_unit, log tau, sigma, sd_unit, tau, F]: nutpie's trace layout
    (the log-transformed values, then every variable on its own scale)."""
    head = numba.carray(user_data_, (_HEADER,), np.float64)
    K = int(head[2])
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (expanded,))
    n_log = 2 + K
    for i in range(n_log):
        out[i] = x[i]
    for i in range(dim):
        out[n_log + i] = np.exp(x[i]) if i < n_log else x[i]
    return 0


def compile_factor_nutpie(model: pm.Model, design, model_cfg):
    """A nutpie compiled model for :meth:`BayesianFactorDiD._build`'s ``model`` without
    per-model compilation (the cached callbacks above)."""
    from nutpie.compile_pymc import (
        CompiledPyMCModel,
        _prepare_dims_and_coords,
        _rv_dict_to_flat_array_wrapper,
        _wrap_with_lock,
    )
    from pymc.initial_point import make_initial_point_fn

    T, K = design.n_periods, model_cfg.max_factors
    free = [rv.name for rv in model.free_RVs]
    if free != ["sigma", "sd_unit", "tau", "F"]:
        raise ValueError(f"unexpected free variables {free}")
    values = [model.rvs_to_values[rv].name for rv in model.free_RVs]
    shapes = [(), (), (K,), (T, K)]
    sizes = [int(np.prod(s)) for s in shapes]
    n_dim = sum(sizes)
    logs = values[:3]
    names = logs + free  # the log-transformed values, then every variable
    out_shapes = shapes[:3] + shapes
    slices, at = [], 0
    for size in sizes[:3] + sizes:
        slices.append(slice(at, at + size))
        at += size
    shape_info = (names, slices, out_shapes)
    user_data = pack_user_data(design, model_cfg)
    user_data.flags.writeable = False
    point_fn = _wrap_with_lock(make_initial_point_fn(
        model=model, default_strategy="support_point", jitter_rvs=set(model.free_RVs),
        return_transformed=True))
    initial_point_fn = _rv_dict_to_flat_array_wrapper(point_fn, names=values, shapes=shapes)
    dims, coords = _prepare_dims_and_coords(model, shape_info, logs)
    return CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords, _shapes=dict(zip(names, out_shapes)),
        compiled_logp_func=_logp_cfunc, compiled_expand_func=_expand_cfunc,
        initial_point_func=initial_point_fn, shared_data={}, shared_var_keys={},
        user_data=user_data, n_expanded=at, shape_info=shape_info,
        logp_func=None, expand_func=None, reparameterized_names=logs)


def sample_factor_nutpie(model: pm.Model, design, model_cfg, *, draws: int, tune: int,
                         chains: int, cores: int, random_seed: int, progress: bool,
                         target_accept: float):
    """nutpie NUTS on :func:`compile_factor_nutpie`, returned as ``pm.sample`` would."""
    return sample_compiled(
        model, lambda: compile_factor_nutpie(model, design, model_cfg),
        draws=draws, tune=tune, chains=chains, cores=cores, random_seed=random_seed,
        progress=progress, target_accept=target_accept)


__all__ = ["compile_factor_nutpie", "sample_factor_nutpie", "factor_logp_grad",
           "pack_user_data"]
