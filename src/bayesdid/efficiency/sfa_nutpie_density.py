"""A nutpie model of :class:`~bayesdid.efficiency.bayes_sfa.BayesianSFA` compiled once per machine.

``pm.sample(nuts_sampler="nutpie")`` compiles a fresh numba C callback for every PyMC model
(13-25 s on this machine), more than the whole LCCP-sized fit. The Bayesian frontier has one
fixed structure: QR-whitened slopes ``theta ~ N(0, s0)``, ``intercept_mean ~ N(s1, s2)``,
``sigma_v, sigma_u ~ HalfNormal`` (log transform), optional ``mu ~ N(0, mu_sd)`` (truncated
normal) and ``eta ~ N(0, eta_sd)`` (BC92), and the composed-error likelihood of
:mod:`bayesdid.efficiency._sfa_math` (cross-section: half-normal, truncated normal or
exponential; panel: BC92 / time-invariant). Here that log density and its gradient (written
out by hand: the chain rule through the closed-form likelihood) are one module-level numba
C callback cached on disk (``cache=True``); the data reach it through nutpie's user-data
pointer as one float64 buffer. The PyMC model still provides names, coords and initial
points, and stays the fallback sampler; tests check this density against PyMC's own.

Written by hand because nutpie offers no way to reuse a compiled callback across models.

>>> HEADER
16
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pymc as pm

from ..bayes.nutpie_compiled import EXPAND_SIG, LOGP_SIG, UnsupportedModel, sample_compiled

HEADER = 16
_HALF_LOG2PI = 0.5 * math.log(2 * math.pi)
_SQRT_HALF = math.sqrt(0.5)
#: 0.5 * erfc(-z / sqrt 2) == 1.0 for every z above this (it is from z ~ 8.29 on)
CDF_IS_ONE = 9.0
_DISTRIBUTIONS = {"half_normal": 0, "truncated_normal": 1, "exponential": 2}


@numba.njit(cache=True, error_model="numpy")
def lcdf_mills(z):
    """``(log Phi(z), phi(z) / Phi(z))`` accurate in both tails (one erfc; the asymptotic
    series below -30, where erfc underflows). Above :data:`CDF_IS_ONE` the erfc rounds
    ``Phi(z)`` to exactly 1.0, so the same numbers come without it (an inefficient unit of a
    half-normal frontier has z ~ u / sigma_v: most LCCP rows are there)."""
    if z > CDF_IS_ONE:
        return 0.0, math.exp(-0.5 * z * z - _HALF_LOG2PI)
    if z > -30.0:
        cdf = 0.5 * math.erfc(-z * _SQRT_HALF)
        return math.log(cdf), math.exp(-0.5 * z * z - _HALF_LOG2PI) / cdf
    r = 1.0 / (z * z)
    series = 1.0 + r * (-1.0 + r * (3.0 + r * (-15.0 + r * (105.0 - 945.0 * r))))
    return -0.5 * z * z - _HALF_LOG2PI - math.log(-z) + math.log(series), -z / series


@numba.njit(cache=True, error_model="numpy")
def log_ndtr(z):
    """log Phi(z)."""
    if z > 6.0:
        return math.log1p(-0.5 * math.erfc(z * _SQRT_HALF))
    return lcdf_mills(z)[0]


@numba.njit(cache=True, error_model="numpy")
def mills(z):
    """phi(z) / Phi(z) (the derivative of log Phi)."""
    return lcdf_mills(z)[1]


def pack_user_data(*, y, Q, sign, distribution, panel, has_eta, unit_idx, dt, n_units,
                   prior_scales, sigma_v_scale, sigma_u_scale, mu_sd, eta_sd, r_inv, x_mean,
                   x_sd) -> np.ndarray:
    """One float64 buffer: a header, then y, Q (row-major), unit index, time offsets,
    R^-1, regressor means and sds (the last three for the ``beta`` trace only)."""
    n, k = Q.shape
    parts = [np.asarray(y, float), np.asarray(Q, float).reshape(-1),
             np.asarray(unit_idx, float), np.asarray(dt, float),
             np.asarray(r_inv, float).reshape(-1), np.asarray(x_mean, float),
             np.asarray(x_sd, float)]
    total = HEADER + sum(len(p) for p in parts)
    s0, s1, s2 = (float(v) for v in prior_scales)
    header = [total, n, k, _DISTRIBUTIONS[distribution], float(panel), float(has_eta),
              n_units, float(sign), s0, s1, s2, sigma_v_scale, sigma_u_scale, mu_sd, eta_sd, 0.0]
    return np.ascontiguousarray(np.concatenate([np.array(header, float), *parts]))


@numba.njit(cache=True, error_model="numpy")
def _mean_u(su, mu, dist):
    """E[u] and its derivatives in (su, mu)."""
    if dist == 2:
        return su, 1.0, 0.0
    w = mu / su
    mw = mills(w)
    dm = -mw * (w + mw)
    return mu + su * mw, mw - w * dm, 1.0 + dm


@numba.njit(cache=True, error_model="numpy")
def sfa_logp_grad(x, buf):
    """Log density (up to an additive constant) and gradient in the unconstrained
    coordinates ``x = [theta..., intercept_mean, log sigma_v, log sigma_u, (mu), (eta)]``."""
    n, k, dist = int(buf[1]), int(buf[2]), int(buf[3])
    panel, has_eta, n_units, sign = buf[4] > 0, buf[5] > 0, int(buf[6]), buf[7]
    s0, s1, s2, tv, tu, mu_sd, eta_sd = buf[8], buf[9], buf[10], buf[11], buf[12], buf[13], buf[14]
    at = HEADER
    y = buf[at:at + n]
    at += n
    Q = buf[at:at + n * k].reshape((n, k))
    at += n * k
    uidx = buf[at:at + n]
    at += n
    dt = buf[at:at + n]
    has_mu = dist == 1
    grad = np.zeros(x.shape[0])
    theta = x[:k]
    a_m = x[k]
    sv, su = np.exp(x[k + 1]), np.exp(x[k + 2])
    j = k + 3
    mu = 0.0
    if has_mu:
        mu = x[j]
        j += 1
    eta = x[j] if has_eta else 0.0

    # priors (+ log Jacobians of the log transforms)
    logp = -0.5 * np.sum((theta / s0) ** 2) - 0.5 * ((a_m - s1) / s2) ** 2
    logp += -0.5 * (sv / tv) ** 2 + x[k + 1] - 0.5 * (su / tu) ** 2 + x[k + 2]
    grad[:k] = -theta / s0**2
    grad[k] = -(a_m - s1) / s2**2
    g_sv = -sv / tv**2
    g_su = -su / tu**2
    g_mu = 0.0
    g_eta = 0.0
    if has_mu:
        logp += -0.5 * (mu / mu_sd) ** 2
        g_mu = -mu / mu_sd**2
    if has_eta:
        logp += -0.5 * (eta / eta_sd) ** 2
        g_eta = -eta / eta_sd**2

    eu, deu_su, deu_mu = _mean_u(su, mu, dist)
    a_c = a_m + sign * eu
    e = np.empty(n)
    for i in range(n):
        fit = a_c
        for c in range(k):
            fit += Q[i, c] * theta[c]
        e[i] = sign * (y[i] - fit)
    g_e = np.empty(n)  # d loglik / d e_i

    if not panel:
        if dist == 2:
            for i in range(n):
                z = -e[i] / sv - sv / su
                lz, mz = lcdf_mills(z)
                logp += e[i] / su + lz
                g_e[i] = 1.0 / su - mz / sv
                g_sv += mz * (e[i] / sv**2 - 1.0 / su)
                g_su += -e[i] / su**2 + mz * sv / su**2
            logp += n * (-np.log(su) + sv**2 / (2 * su**2))
            g_sv += n * sv / su**2
            g_su += n * (-1.0 / su - sv**2 / su**3)
        else:
            s2_ = sv**2 + su**2
            sigma = np.sqrt(s2_)
            A = sigma * su * sv
            dA_sv = su * (s2_ + sv**2) / sigma
            dA_su = sv * (s2_ + su**2) / sigma
            w = mu / su
            logp += -n * (np.log(sigma) + _HALF_LOG2PI + log_ndtr(w))
            mw = mills(w)
            g_sv += -n * sv / s2_
            g_su += -n * su / s2_ + n * mw * mu / su**2
            g_mu += -n * mw / su
            # accumulate the sums the scale gradients need, then combine once
            s_em2 = 0.0
            s_em = 0.0
            s_mz = 0.0
            s_mzz = 0.0
            s_mze = 0.0
            for i in range(n):
                em = e[i] + mu
                z = (mu * sv**2 - e[i] * su**2) / A
                lz, mz = lcdf_mills(z)
                logp += -0.5 * em**2 / s2_ + lz
                g_e[i] = -em / s2_ - mz * su**2 / A
                s_em2 += em * em
                s_em += em
                s_mz += mz
                s_mzz += mz * z
                s_mze += mz * e[i]
            g_mu += -s_em / s2_ + s_mz * sv**2 / A
            g_sv += s_em2 * sv / s2_**2 + (2 * mu * sv * s_mz - dA_sv * s_mzz) / A
            g_su += s_em2 * su / s2_**2 + (-2 * su * s_mze - dA_su * s_mzz) / A
    else:
        s_he = np.zeros(n_units)
        s_hh = np.zeros(n_units)
        s_ee = np.zeros(n_units)
        n_t = np.zeros(n_units)
        h = np.empty(n)
        for i in range(n):
            u = int(uidx[i])
            h[i] = np.exp(-eta * dt[i])
            s_he[u] += h[i] * e[i]
            s_hh[u] += h[i] ** 2
            s_ee[u] += e[i] ** 2
            n_t[u] += 1.0
        w = mu / su
        mw = mills(w)
        lw = log_ndtr(w)
        d_he = np.empty(n_units)  # d loglik / d s_he per unit
        d_hh = np.empty(n_units)
        for u in range(n_units):
            den = sv**2 + su**2 * s_hh[u]
            rden = np.sqrt(den)
            D = su * sv * rden
            zs = (mu * sv**2 - su**2 * s_he[u]) / D
            lz, mz = lcdf_mills(zs)
            logp += (-0.5 * n_t[u] * 2 * _HALF_LOG2PI - (n_t[u] - 1) * np.log(sv)
                     - 0.5 * np.log(den) - 0.5 * s_ee[u] / sv**2 - 0.5 * mu**2 / su**2
                     + 0.5 * zs**2 + lz - lw)
            g = zs + mz
            d_he[u] = -g * su**2 / D
            d_hh[u] = -0.5 * su**2 / den - g * zs * su**2 / (2 * den)
            dD_sv = su * (den + sv**2) / rden
            dD_su = sv * (den + su**2 * s_hh[u]) / rden
            g_sv += (-(n_t[u] - 1) / sv - sv / den + s_ee[u] / sv**3
                     + g * (2 * mu * sv - zs * dD_sv) / D)
            g_su += (-su * s_hh[u] / den + mu**2 / su**3 + mw * mu / su**2
                     + g * (-2 * su * s_he[u] - zs * dD_su) / D)
            g_mu += -mu / su**2 - mw / su + g * sv**2 / D
        for i in range(n):
            u = int(uidx[i])
            g_e[i] = d_he[u] * h[i] - e[i] / sv**2
            if has_eta:
                g_eta += -dt[i] * h[i] * (d_he[u] * e[i] + 2.0 * d_hh[u] * h[i])

    # e = sign (y - a_m - sign E[u] - Q theta)
    sum_ge = 0.0
    for i in range(n):
        sum_ge += g_e[i]
        for c in range(k):
            grad[c] -= sign * g_e[i] * Q[i, c]
    grad[k] -= sign * sum_ge
    g_su -= sum_ge * deu_su
    g_mu -= sum_ge * deu_mu
    grad[k + 1] = g_sv * sv + 1.0
    grad[k + 2] = g_su * su + 1.0
    j = k + 3
    if has_mu:
        grad[j] = g_mu
        j += 1
    if has_eta:
        grad[j] = g_eta
    return logp, grad


@numba.cfunc(LOGP_SIG, cache=True, error_model="numpy")
def _logp_cfunc(dim, x_, out_, logp_, user_data_):
    head = numba.carray(user_data_, (HEADER,), np.float64)
    buf = numba.carray(user_data_, (int(head[0]),), np.float64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    logp = numba.carray(logp_, (1,))
    value, grad = sfa_logp_grad(x, buf)
    logp[0] = value
    out[:] = grad
    if not np.all(np.isfinite(grad)):
        return 3
    if not np.isfinite(value):
        return 4
    return 0


@numba.njit(cache=True, error_model="numpy")
def expand_draw(x, buf, out):
    """nutpie's trace layout: ``[x..., sigma_v, sigma_u, beta (k + 1)]``."""
    n, k, dist, sign = int(buf[1]), int(buf[2]), int(buf[3]), buf[7]
    dim = x.shape[0]
    at = HEADER + 3 * n + n * k
    r_inv = buf[at:at + k * k].reshape((k, k))
    x_mean = buf[at + k * k:at + k * k + k]
    x_sd = buf[at + k * k + k:at + k * k + 2 * k]
    out[:dim] = x
    sv, su = np.exp(x[k + 1]), np.exp(x[k + 2])
    mu = x[k + 3] if dist == 1 else 0.0
    out[dim] = sv
    out[dim + 1] = su
    slopes = r_inv @ x[:k] / x_sd
    a_c = x[k] + sign * _mean_u(su, mu, dist)[0]
    out[dim + 2] = a_c - np.dot(slopes, x_mean)
    out[dim + 3:dim + 3 + k] = slopes


@numba.cfunc(EXPAND_SIG, cache=True, error_model="numpy")
def _expand_cfunc(dim, expanded, x_, out_, user_data_):
    head = numba.carray(user_data_, (HEADER,), np.float64)
    buf = numba.carray(user_data_, (int(head[0]),), np.float64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (expanded,))
    expand_draw(x, buf, out)
    return 0


EXPECTED_PREFIX = [("theta", "NormalRV"), ("intercept_mean", "NormalRV"),
                   ("sigma_v", "HalfNormalRV"), ("sigma_u", "HalfNormalRV")]


def compile_sfa_nutpie(model: pm.Model, user_data: np.ndarray, initvals: dict):
    """A ``nutpie`` compiled model for a BayesianSFA ``model``, without per-model compilation.

    Raises :class:`UnsupportedModel` if the model's free variables are not the ones this
    density is written for (then use ``pm.sample``)."""
    from nutpie.compile_pymc import (
        CompiledPyMCModel,
        _prepare_dims_and_coords,
        _rv_dict_to_flat_array_wrapper,
        _wrap_with_lock,
    )
    from pymc.initial_point import make_initial_point_fn

    dist, has_eta = int(user_data[3]), user_data[5] > 0
    expected = EXPECTED_PREFIX + ([("mu", "NormalRV")] if dist == 1 else []) + (
        [("eta", "NormalRV")] if has_eta else [])
    free = [(rv.name, type(rv.owner.op).__name__) for rv in model.free_RVs]
    if free != expected or model.observed_RVs or [d.name for d in model.deterministics] != [
            "beta"]:
        raise UnsupportedModel(f"the compiled density covers {expected}, the model has {free}")
    k = int(user_data[2])
    values = [model.rvs_to_values[rv].name for rv in model.free_RVs]
    value_shapes = [(k,)] + [()] * (len(values) - 1)
    n_dim = k + len(values) - 1
    names = values + ["sigma_v", "sigma_u", "beta"]
    shapes = value_shapes + [(), (), (k + 1,)]
    slices, at = [], 0
    for s in shapes:
        size = int(np.prod(s)) if s else 1
        slices.append(slice(at, at + size))
        at += size
    shape_info = (names, slices, shapes)
    user_data.flags.writeable = False
    point_fn = _wrap_with_lock(make_initial_point_fn(
        model=model, overrides=initvals, default_strategy="support_point",
        jitter_rvs=set(model.free_RVs), return_transformed=True))
    initial_point_fn = _rv_dict_to_flat_array_wrapper(point_fn, names=values,
                                                      shapes=value_shapes)
    transformed = [model.rvs_to_values[rv].name for rv in model.free_RVs
                   if model.rvs_to_transforms.get(rv) is not None]
    dims, coords = _prepare_dims_and_coords(model, shape_info, transformed)
    return CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes={nm: s for nm, s in zip(names, shapes)},
        compiled_logp_func=_logp_cfunc, compiled_expand_func=_expand_cfunc,
        initial_point_func=initial_point_fn, shared_data={}, shared_var_keys={},
        user_data=user_data, n_expanded=at, shape_info=shape_info,
        logp_func=None, expand_func=None, reparameterized_names=transformed)


def sample_sfa_nutpie(model: pm.Model, user_data: np.ndarray, initvals: dict, *, draws: int,
                      tune: int, chains: int, cores: int, random_seed: int, progress: bool,
                      target_accept: float):
    """nutpie NUTS on :func:`compile_sfa_nutpie`: a DataTree in the form
    ``pm.sample(nuts_sampler="nutpie")`` returns (transformed values dropped)."""
    idata = sample_compiled(
        model, lambda: compile_sfa_nutpie(model, user_data, initvals),
        draws=draws, tune=tune, chains=chains, cores=cores, random_seed=random_seed,
        progress=progress, target_accept=target_accept)
    post = idata.posterior.to_dataset()
    post = post.drop_vars([v for v in post.data_vars if str(v).endswith("_log__")])
    attrs = dict(idata.posterior.attrs)
    idata["posterior"] = type(idata["posterior"])(post)
    idata.posterior.attrs.update(attrs)
    return idata


__all__ = ["UnsupportedModel", "compile_sfa_nutpie", "sample_sfa_nutpie", "sfa_logp_grad",
           "pack_user_data", "log_ndtr", "mills"]
