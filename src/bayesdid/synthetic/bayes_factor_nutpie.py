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
``dL = 2 c^2 G L`` (``c`` the group's prior-sd multiplier), ``d sigma^2 = tr G``. With
``k`` covariates, ``beta`` joins ``b`` in the integrated block ``theta = (b, beta)``
(:mod:`.bayes_factor_design`) and ``W + n d d' + n V`` becomes the posterior expectation of
the residuals' scatter: ``W(beta_m) + n d d' + n A V A' + sum_jl V_beta[j, l] XX[j, l]``
with ``A = [I, Xbar]`` (Fisher's identity). With pooled cell effects (``effects="pooled"``)
their coefficients ``eta`` join the block too (``A = [I, Xbar, effect_map]``), the
coordinates gain ``log cell_sd`` after ``log tau`` and its gradient is
``sum_cells (E[dev^2] / cell_sd^2 - 1)`` plus the prior's. Tests check it against PyMC's
own density of the same model.

>>> header_size()
16
"""

from __future__ import annotations

import numba
import numpy as np
import pymc as pm

from ..bayes.nutpie_compiled import EXPAND_SIG, LOGP_SIG, sample_compiled
from ..bayes.small_linalg import spd_inverse

_HEADER = 16


def header_size() -> int:
    return _HEADER


def pack_user_data(design, model_cfg) -> np.ndarray:
    """One float64 buffer: header then, per pattern group, ``[s, n, scale, mean (s),
    W (s*s), Xbar (s*k), XY (k*s*s), XX (k*k*s*s), effect_map (s*E)]`` (``scale``: the
    prior-sd multiplier of its units' effects and loadings; k covariates and E pooled
    effect coefficients, none without)."""
    T, K, pr = design.n_periods, model_cfg.max_factors, model_cfg.priors
    parts = []
    for g in design.groups:
        scale = pr.treated_scale if g.treated else 1.0
        parts += [np.array([g.length, g.n, scale], float), g.mean, g.scatter.reshape(-1),
                  g.xmean.reshape(-1), g.xy.reshape(-1), g.xx.reshape(-1)]
        if g.n_eff:
            parts.append(g.effect_map.reshape(-1))
    body = np.concatenate(parts)
    pooled = design.pooled
    n_eff = 0 if pooled is None else len(pooled.names)
    n_add = 0 if pooled is None else pooled.n_additive
    header = [_HEADER + len(body), T, K, len(design.groups), pr.time_sd,
              pr.noise_sd, pr.unit_sd, pr.factor_scale, pr.shrink, design.n_cov,
              pr.covariate_sd, n_eff, n_add, pr.effect_mean_sd, pr.effect_sd, 0.0]
    return np.ascontiguousarray(np.concatenate([np.array(header, float), body]))


@numba.njit(cache=True, error_model="numpy")
def _group(buf, at, s, q, e):
    """Views of one pattern group's statistics in ``buf`` and the next group's offset."""
    at += 3
    mean = buf[at:at + s]
    at += s
    W = buf[at:at + s * s].reshape((s, s))
    at += s * s
    xbar = buf[at:at + s * q].reshape((s, q))
    at += s * q
    xy = buf[at:at + q * s * s].reshape((q, s, s))
    at += q * s * s
    xx = buf[at:at + q * q * s * s].reshape((q, q, s, s))
    at += q * q * s * s
    emap = buf[at:at + s * e].reshape((s, e))
    at += s * e
    return mean, W, xbar, xy, xx, emap, at


@numba.njit(cache=True, error_model="numpy")
def _extra_rows(s, q, e, xbar, emap):
    """``Z = [Xbar, effect_map]`` (s x (q + e)): the group's design rows beyond ``b``."""
    Z = np.empty((s, q + e))
    for i in range(s):
        for j in range(q):
            Z[i, j] = xbar[i, j]
        for j in range(e):
            Z[i, q + j] = emap[i, j]
    return Z


@numba.njit(cache=True, error_model="numpy")
def _frobenius(A, B):
    """``sum(A * B)`` without a temporary."""
    acc = 0.0
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            acc += A[i, j] * B[i, j]
    return acc


@numba.njit(cache=True, error_model="numpy")
def factor_logp_grad(x, buf):
    """Log density (up to constants) and gradient in the unconstrained coordinates
    ``x = [log sigma, log sd_unit, log tau (K), F (T*K)]`` (``b`` and ``beta`` integrated
    out)."""
    T, K, n_groups, q = int(buf[1]), int(buf[2]), int(buf[3]), int(buf[9])
    time_sd, noise_sd, unit_sd, f_scale, shrink = buf[4], buf[5], buf[6], buf[7], buf[8]
    cov_sd = buf[10]
    e, n_add, eff_mean_sd, eff_sd = int(buf[11]), int(buf[12]), buf[13], buf[14]
    grad = np.zeros(x.shape[0])
    sigma = np.exp(x[0])
    sd_unit = np.exp(x[1])
    tau = np.exp(x[2:2 + K])
    at_F = 2 + K + (1 if e > 0 else 0)
    F = x[at_F:].reshape((T, K))
    logp = -0.5 * (sigma / noise_sd) ** 2 + x[0]
    logp += -0.5 * (sd_unit / unit_sd) ** 2 + x[1]
    for k in range(K):
        scale = f_scale * shrink ** k
        logp += -0.5 * (tau[k] / scale) ** 2 + x[2 + k]
        grad[2 + k] = -(tau[k] / scale) ** 2 + 1.0
    for t in range(T):
        for k in range(K):
            logp -= 0.5 * F[t, k] ** 2
            grad[at_F + t * K + k] = -F[t, k]
    cell_sd = 1.0
    if e > 0:  # Gamma(2, 2 / effect_sd) on cell_sd, log transform
        cell_sd = np.exp(x[2 + K])
        rate = 2.0 / eff_sd
        logp += 2.0 * x[2 + K] - rate * cell_sd
        grad[2 + K] = 2.0 - rate * cell_sd
    r = K + 1
    L = np.empty((T, r))
    for t in range(T):
        L[t, 0] = sd_unit
        for k in range(K):
            L[t, k + 1] = F[t, k] * tau[k]
    s2 = sigma * sigma
    D = T + q + e
    prior = np.empty(D)  # prior precisions of theta = (b, beta, eta)
    prior[:T] = 1.0 / time_sd ** 2
    prior[T:T + q] = 1.0 / cov_sd ** 2
    prior[T + q:T + q + n_add] = 1.0 / eff_mean_sd ** 2
    prior[T + q + n_add:] = 1.0 / cell_sd ** 2
    Sis = np.zeros((n_groups, T, T))
    cg = np.zeros((n_groups, q))  # tr(S^-1 XY[j]), tr(S^-1 XX[j, l]), tr(S^-1 W) per group
    Mg = np.zeros((n_groups, q, q))
    trW = np.zeros(n_groups)
    P = np.diag(prior)
    h = np.zeros(D)
    at = _HEADER
    offsets = np.empty(n_groups, np.int64)
    for g in range(n_groups):
        offsets[g] = at
        s, n, c = int(buf[at]), buf[at + 1], buf[at + 2]
        mean, W, xbar, xy, xx, emap, at = _group(buf, at, s, q, e)
        Ls = L[:s] * c
        S = Ls @ Ls.T
        for i in range(s):
            S[i, i] += s2
        ok, logdet, Si = spd_inverse(S)
        if not ok:
            return -np.inf, grad
        Sis[g, :s, :s] = Si
        Sim = Si @ mean
        P[:s, :s] += n * Si
        h[:s] += n * Sim
        if q + e > 0:  # the design rows A = [I, Z] beyond b
            Z = _extra_rows(s, q, e, xbar, emap)
            Zt = np.ascontiguousarray(Z.T)
            SiZ = Si @ Z
            P[:s, T:] += n * SiZ
            P[T:, :s] += n * SiZ.T
            P[T:, T:] += n * (Zt @ SiZ)
            h[T:] += n * (Zt @ Sim)
        for j in range(q):
            cg[g, j] = _frobenius(Si, xy[j])
            h[T + j] += cg[g, j]
            for l in range(q):
                Mg[g, j, l] = _frobenius(Si, xx[j, l])
                P[T + j, T + l] += Mg[g, j, l]
        trW[g] = _frobenius(Si, W)
        logp += -0.5 * n * (s * np.log(2 * np.pi) + logdet)
    ok, logdet_P, V = spd_inverse(P)
    if not ok:
        return -np.inf, grad
    m = V @ h
    beta = m[T:T + q]
    logp += -0.5 * np.sum(prior * m * m) - 0.5 * logdet_P + 0.5 * np.sum(np.log(prior))
    if e > 0:
        acc = 0.0
        for j in range(T + q + n_add, D):
            acc += (m[j] * m[j] + V[j, j]) / cell_sd ** 2 - 1.0
        grad[2 + K] += acc
    dL = np.zeros((T, r))
    d_s2 = 0.0
    for g in range(n_groups):
        at = offsets[g]
        s, n, c = int(buf[at]), buf[at + 1], buf[at + 2]
        mean, W, xbar, xy, xx, emap, _ = _group(buf, at, s, q, e)
        Si = Sis[g, :s, :s].copy()
        d = mean - m[:s]
        AVA = V[:s, :s].copy()  # A V A' with A = [I, Z]
        if q + e > 0:
            Z = _extra_rows(s, q, e, xbar, emap)
            d -= Z @ m[T:]
            ZVb = Z @ np.ascontiguousarray(V[T:, :s])
            AVA += ZVb + ZVb.T + (Z @ np.ascontiguousarray(V[T:, T:])) @ np.ascontiguousarray(Z.T)
        # tr(S^-1 W(beta)) from the traces of the first pass
        quad = trW[g]
        for j in range(q):
            quad -= 2.0 * beta[j] * cg[g, j]
            for l in range(q):
                quad += beta[j] * beta[l] * Mg[g, j, l]
        logp -= 0.5 * (quad + n * (d @ (Si @ d)))
        # Q = E[sum_i r_i r_i'] = W(beta) + n d d' + n A V A' + sum_jl V_jl XX[j, l]
        Q = W + n * np.outer(d, d) + n * AVA
        for j in range(q):
            for a in range(s):
                for c2 in range(s):
                    Q[a, c2] -= beta[j] * (xy[j, a, c2] + xy[j, c2, a])
            for l in range(q):
                w = beta[j] * beta[l] + V[T + j, T + l]
                for a in range(s):
                    for c2 in range(s):
                        Q[a, c2] += w * xx[j, l, a, c2]
        G = -0.5 * (n * Si - Si @ Q @ Si)
        dL[:s] += 2.0 * c * c * (G @ L[:s])
        d_s2 += np.trace(G)
    grad[0] += -(sigma / noise_sd) ** 2 + 1.0 + 2.0 * s2 * d_s2
    grad[1] += -(sd_unit / unit_sd) ** 2 + 1.0 + sd_unit * dL[:, 0].sum()
    for k in range(K):
        acc = 0.0
        for t in range(T):
            acc += dL[t, k + 1] * F[t, k]
            grad[at_F + t * K + k] += dL[t, k + 1] * tau[k]
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
    """[log sigma, log sd_unit, log tau, (log cell_sd,) sigma, sd_unit, tau, (cell_sd,) F]:
    nutpie's trace layout
    (the log-transformed values, then every variable on its own scale)."""
    head = numba.carray(user_data_, (_HEADER,), np.float64)
    K = int(head[2])
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (expanded,))
    n_log = 2 + K + (1 if head[11] > 0 else 0)
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
    pooled = design.pooled is not None
    free = [rv.name for rv in model.free_RVs]
    expected = ["sigma", "sd_unit", "tau", *(["cell_sd"] if pooled else []), "F"]
    if free != expected:
        raise ValueError(f"unexpected free variables {free}")
    values = [model.rvs_to_values[rv].name for rv in model.free_RVs]
    shapes = [(), (), (K,), *([()] if pooled else []), (T, K)]
    sizes = [int(np.prod(s)) for s in shapes]
    n_dim = sum(sizes)
    n_log = len(shapes) - 1
    logs = values[:n_log]
    names = logs + free  # the log-transformed values, then every variable
    out_shapes = shapes[:n_log] + shapes
    slices, at = [], 0
    for size in sizes[:n_log] + sizes:
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
