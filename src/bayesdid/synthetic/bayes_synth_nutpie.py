"""BayesianSyntheticControl's log-density as one numba C callback, compiled once per machine.

``pm.sample`` spends ~70 leapfrog steps per draw in Python on Prop 99, and
``nutpie.compile_pymc_model`` compiles a fresh numba callback per PyMC model. The model
(:meth:`~bayesdid.synthetic.bayes_synth.BayesianSyntheticControl.build`) has one fixed
structure, so its log-density and gradient are written here by hand in PyMC's
unconstrained coordinates ``z = log w_gamma`` (K targets x D donors, row-major):

* ``w_gamma ~ Gamma(c, 1)`` with the log transform: ``c z - exp(z) - lgamma(c)`` per entry;
* the marginal potential ``-sum_k (a0 + n_k / 2) log(b0 + rss_k / 2)`` with
  ``w = softmax(z)`` per target, ``rss_k`` the masked pre-period residual sum of squares
  (minus ``(sum r)^2 / (n_k + 1 / kappa2)`` with an intercept).

With ``e = mask * (r - [intercept] sum r / (n_k + 1/kappa2))`` the gradient of the
potential in ``w`` is ``u_kd = (a0 + n_k/2) / (b0 + rss_k/2) * sum_t e_tk X_tkd`` and, by
the softmax Jacobian, ``w_kd (u_kd - sum_j w_kj u_kj)`` in ``z``. Every panel-specific
number reaches the cached callback through nutpie's user-data buffer, as in
:mod:`bayesdid.did.nutpie_density`. Written by hand because nutpie offers no way to reuse a
compiled callback across models; tests check it against PyMC's own logp and dlogp.

>>> header_size()
9
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pymc as pm

from ..bayes.nutpie_compiled import EXPAND_SIG, LOGP_SIG, UnsupportedModel, sample_compiled

_HEADER = 9


def header_size() -> int:
    return _HEADER


def pack_user_data(design, *, concentration: float, a0: float, b0: float,
                   kappa2: float) -> np.ndarray:
    """One float64 buffer: ``[total, T, K, D, concentration, a0, b0, 1/kappa2 (0: no
    intercept), intercept]`` then ``X`` (T*K*D), ``y`` (T*K) and the pre-period mask
    (T*K), all row-major; ``y`` and ``X`` are zeroed outside the mask (they are masked out
    of the likelihood anyway)."""
    T, K, D = design.X.shape
    mask = design.pre.astype(float)
    X = np.where(design.pre[:, :, None], design.X, 0.0)
    y = np.where(design.pre, design.y, 0.0)
    intercept = kappa2 > 0
    header = [0.0, T, K, D, concentration, a0, b0, 1.0 / kappa2 if intercept else 0.0,
              float(intercept)]
    buf = np.concatenate([np.array(header, float), X.reshape(-1), y.reshape(-1),
                          mask.reshape(-1)])
    buf[0] = len(buf)
    return np.ascontiguousarray(buf)


@numba.njit(cache=True, error_model="numpy")
def synth_logp_grad(x, buf):
    """Log density (PyMC's, constants included) and gradient in ``x = log w_gamma``
    (K x D, row-major)."""
    T, K, D = int(buf[1]), int(buf[2]), int(buf[3])
    conc, a0, b0, inv_kappa2, intercept = buf[4], buf[5], buf[6], buf[7], buf[8] > 0
    at = _HEADER
    X = buf[at:at + T * K * D].reshape((T, K, D))
    at += T * K * D
    y = buf[at:at + T * K].reshape((T, K))
    at += T * K
    mask = buf[at:at + T * K].reshape((T, K))
    z = x.reshape((K, D))
    grad = np.empty(x.shape[0])
    g2 = grad.reshape((K, D))
    lg = math.lgamma(conc)
    logp = 0.0
    w = np.empty(D)
    u = np.empty(D)
    e = np.empty(T)
    for k in range(K):
        zmax = z[k, 0]
        for d in range(D):
            logp += conc * z[k, d] - np.exp(z[k, d]) - lg
            if z[k, d] > zmax:
                zmax = z[k, d]
        tot = 0.0
        for d in range(D):
            w[d] = np.exp(z[k, d] - zmax)
            tot += w[d]
        for d in range(D):
            w[d] /= tot
        n = 0.0
        rss = 0.0
        rsum = 0.0
        for t in range(T):
            fit = 0.0
            for d in range(D):
                fit += X[t, k, d] * w[d]
            e[t] = (y[t, k] - fit) * mask[t, k]
            n += mask[t, k]
            rss += e[t] * e[t]
            rsum += e[t]
        if intercept:
            prec = n + inv_kappa2
            rss -= rsum * rsum / prec
            shift = rsum / prec
            for t in range(T):
                e[t] -= shift * mask[t, k]
        shape = a0 + n / 2
        logp -= shape * np.log(b0 + rss / 2)
        q = shape / (b0 + rss / 2)
        ubar = 0.0
        for d in range(D):
            acc = 0.0
            for t in range(T):
                acc += e[t] * X[t, k, d]
            u[d] = q * acc
            ubar += w[d] * u[d]
        for d in range(D):
            g2[k, d] = conc - np.exp(z[k, d]) + w[d] * (u[d] - ubar)
    return logp, grad


@numba.cfunc(LOGP_SIG, cache=True, error_model="numpy")
def _logp_cfunc(dim, x_, out_, logp_, user_data_):
    head = numba.carray(user_data_, (_HEADER,), np.float64)
    buf = numba.carray(user_data_, (int(head[0]),), np.float64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    logp = numba.carray(logp_, (1,))
    value, grad = synth_logp_grad(x, buf)
    logp[0] = value
    out[:] = grad
    if not np.all(np.isfinite(grad)):
        return 3
    if not np.isfinite(value):
        return 4
    return 0


@numba.cfunc(EXPAND_SIG, cache=True, error_model="numpy")
def _expand_cfunc(dim, expanded, x_, out_, user_data_):
    """``[log w_gamma, w_gamma, w]`` (each K x D): nutpie's trace layout (the transformed
    value, the variable, the deterministic ``w = w_gamma / sum(w_gamma)``)."""
    head = numba.carray(user_data_, (_HEADER,), np.float64)
    K, D = int(head[2]), int(head[3])
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (expanded,))
    for i in range(dim):
        out[i] = x[i]
        out[dim + i] = np.exp(x[i])
    for k in range(K):
        tot = 0.0
        for d in range(D):
            tot += out[dim + k * D + d]
        for d in range(D):
            out[2 * dim + k * D + d] = out[dim + k * D + d] / tot
    return 0


def compile_synth_nutpie(model: pm.Model, user_data: np.ndarray):
    """A nutpie compiled model for a BayesianSyntheticControl ``model`` without per-model
    compilation (the cached callbacks above).

    Raises :class:`UnsupportedModel` if the model is not the one this density implements
    (free ``w_gamma`` (Gamma), deterministic ``w``, one potential; shapes as the buffer)."""
    from nutpie.compile_pymc import (
        CompiledPyMCModel,
        _prepare_dims_and_coords,
        _rv_dict_to_flat_array_wrapper,
        _wrap_with_lock,
    )
    from pymc.initial_point import make_initial_point_fn

    free = {rv.name: type(rv.owner.op).__name__ for rv in model.free_RVs}
    dets = [v.name for v in model.deterministics]
    pots = [v.name for v in model.potentials]
    if (free != {"w_gamma": "GammaRV"} or dets != ["w"] or pots != ["marginal_loglik"]
            or model.observed_RVs):
        raise UnsupportedModel(f"the compiled density covers w_gamma (Gamma), w and "
                               f"marginal_loglik; the model has {free}, {dets}, {pots}")
    K, D = int(user_data[2]), int(user_data[3])
    shape = tuple(int(s) for s in model.free_RVs[0].shape.eval())
    if shape != (K, D):
        raise UnsupportedModel(f"w_gamma has shape {shape}, the buffer ({K}, {D})")
    value = model.rvs_to_values[model.free_RVs[0]].name
    n_dim = K * D
    names = [value, "w_gamma", "w"]
    shape_info = (names, [slice(i * n_dim, (i + 1) * n_dim) for i in range(3)], [shape] * 3)
    user_data = np.ascontiguousarray(user_data, dtype=float).copy()
    user_data.flags.writeable = False
    point_fn = _wrap_with_lock(make_initial_point_fn(
        model=model, default_strategy="support_point", jitter_rvs=set(model.free_RVs),
        return_transformed=True))
    initial_point_fn = _rv_dict_to_flat_array_wrapper(point_fn, names=[value], shapes=[shape])
    dims, coords = _prepare_dims_and_coords(model, shape_info, [value])
    return CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords, _shapes=dict(zip(names, [shape] * 3)),
        compiled_logp_func=_logp_cfunc, compiled_expand_func=_expand_cfunc,
        initial_point_func=initial_point_fn, shared_data={}, shared_var_keys={},
        user_data=user_data, n_expanded=3 * n_dim, shape_info=shape_info,
        logp_func=None, expand_func=None, reparameterized_names=[value])


def sample_synth_nutpie(model: pm.Model, user_data: np.ndarray, *, draws: int, tune: int,
                        chains: int, cores: int, random_seed: int, progress: bool,
                        target_accept: float):
    """nutpie NUTS on :func:`compile_synth_nutpie`, returned as ``pm.sample`` would."""
    return sample_compiled(
        model, lambda: compile_synth_nutpie(model, user_data),
        draws=draws, tune=tune, chains=chains, cores=cores, random_seed=random_seed,
        progress=progress, target_accept=target_accept)


__all__ = ["UnsupportedModel", "compile_synth_nutpie", "sample_synth_nutpie",
           "synth_logp_grad", "pack_user_data"]
