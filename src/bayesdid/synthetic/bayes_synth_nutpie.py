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
the softmax Jacobian, ``w_kd (u_kd - sum_j w_kj u_kj)`` in ``z``.

With AR(1) noise (``noise="ar1"``, :mod:`.bayes_synth_ar1`) the coordinates are
``[z, v]`` with ``v = logit(u)``, ``rho = 2u - 1`` per target (PyMC's log-odds transform of
``noise_rho_beta ~ Beta(a, a)``: ``a log u + a log(1 - u) - log B(a, a)``); the residuals
are Prais-Winsten transformed, ``e = P (r - beta)`` with ``beta = c'P r / m`` the
intercept's conditional mean (0 without intercept), and ``rss = e'e + beta^2 / kappa2``
(``= min_b ||P(r - b)||^2 + b^2 / kappa2``, so by the envelope theorem
``d rss / d rho = 2 e' (dP/drho) (r - beta)``); ``P' e`` replaces ``e`` in ``u_kd``. Every panel-specific
number reaches the cached callback through nutpie's user-data buffer, as in
:mod:`bayesdid.did.nutpie_density`. Written by hand because nutpie offers no way to reuse a
compiled callback across models; tests check it against PyMC's own logp and dlogp.

>>> header_size()
11
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pymc as pm

from ..bayes.nutpie_compiled import EXPAND_SIG, LOGP_SIG, UnsupportedModel, sample_compiled
from .bayes_synth_ar1 import prefix_masks

_HEADER = 11


def header_size() -> int:
    return _HEADER


def pack_user_data(design, *, concentration: float, a0: float, b0: float,
                   kappa2: float, rho_concentration: float | None = None) -> np.ndarray:
    """One float64 buffer: ``[total, T, K, D, concentration, a0, b0, 1/kappa2 (0: no
    intercept), intercept, ar1, rho_concentration]`` then ``X`` (T*K*D), ``y`` (T*K) and
    the pre-period mask (T*K), all row-major; ``y`` and ``X`` are zeroed outside the mask
    (they are masked out of the likelihood anyway). ``rho_concentration=None``: iid
    noise; else AR(1) noise (the pre-periods must then be a prefix of each column)."""
    T, K, D = design.X.shape
    mask = design.pre.astype(float)
    X = np.where(design.pre[:, :, None], design.X, 0.0)
    y = np.where(design.pre, design.y, 0.0)
    intercept = kappa2 > 0
    ar1 = rho_concentration is not None
    if ar1:
        prefix_masks(design.pre)  # raises unless the pre-periods are consecutive from t=0
    header = [0.0, T, K, D, concentration, a0, b0, 1.0 / kappa2 if intercept else 0.0,
              float(intercept), float(ar1), rho_concentration if ar1 else 0.0]
    buf = np.concatenate([np.array(header, float), X.reshape(-1), y.reshape(-1),
                          mask.reshape(-1)])
    buf[0] = len(buf)
    return np.ascontiguousarray(buf)


@numba.njit(cache=True, error_model="numpy")
def synth_logp_grad(x, buf):
    """Log density (PyMC's, constants included) and gradient in ``x = [log w_gamma (K x D,
    row-major), logit((noise_rho + 1) / 2) (K; AR(1) noise only)]``."""
    T, K, D = int(buf[1]), int(buf[2]), int(buf[3])
    conc, a0, b0, inv_kappa2, intercept = buf[4], buf[5], buf[6], buf[7], buf[8] > 0
    ar1, rconc = buf[9] > 0, buf[10]
    at = _HEADER
    X = buf[at:at + T * K * D].reshape((T, K, D))
    at += T * K * D
    y = buf[at:at + T * K].reshape((T, K))
    at += T * K
    mask = buf[at:at + T * K].reshape((T, K))
    z = x[:K * D].reshape((K, D))
    grad = np.zeros(x.shape[0])
    g2 = grad[:K * D].reshape((K, D))
    lg = math.lgamma(conc)
    lbeta = 2.0 * math.lgamma(rconc) - math.lgamma(2.0 * rconc) if ar1 else 0.0
    logp = 0.0
    w = np.empty(D)
    u = np.empty(D)
    r = np.empty(T)
    e = np.empty(T)
    pe = np.empty(T)
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
        rho, s, drho = 0.0, 1.0, 0.0
        if ar1:
            v = x[K * D + k]
            if v > 0:  # u = 1 / (1 + exp(-v)), 1 - u, stably
                ev = np.exp(-v)
                uu, um = 1.0 / (1.0 + ev), ev / (1.0 + ev)
            else:
                ev = np.exp(v)
                uu, um = ev / (1.0 + ev), 1.0 / (1.0 + ev)
            rho = uu - um
            s = 2.0 * np.sqrt(uu * um)  # sqrt(1 - rho^2)
            drho = 2.0 * uu * um  # d rho / d v
            # Beta(a, a) prior with the log-odds Jacobian, and 1/2 log(1 - rho^2)
            logp += rconc * (np.log(uu) + np.log(um)) - lbeta
            logp += 0.5 * (np.log(4.0) + np.log(uu) + np.log(um))
            grad[K * D + k] = (rconc + 0.5) * (um - uu)
        n = 0.0
        for t in range(T):
            fit = 0.0
            for d in range(D):
                fit += X[t, k, d] * w[d]
            r[t] = (y[t, k] - fit) * mask[t, k]
            n += mask[t, k]
        beta = 0.0
        m = 0.0
        if intercept:  # beta = c'Pr / m, c = P 1 (mask is a prefix when ar1)
            ce, cc = 0.0, 0.0
            for t in range(T):
                if mask[t, k] == 0:
                    continue
                first = t == 0 or mask[t - 1, k] == 0
                c = s if first else 1.0 - rho
                et = s * r[t] if first else r[t] - rho * r[t - 1]
                ce += c * et
                cc += c * c
            m = cc + inv_kappa2
            beta = ce / m
        rss = beta * beta * inv_kappa2 if intercept else 0.0
        dq = 0.0  # d rss / d rho
        for t in range(T):
            e[t] = 0.0
            if mask[t, k] == 0:
                continue
            first = t == 0 or mask[t - 1, k] == 0
            if first:
                e[t] = s * (r[t] - beta)
                if ar1:
                    dq += 2.0 * e[t] * (-rho / s) * (r[t] - beta)
            else:
                e[t] = (r[t] - beta) - rho * (r[t - 1] - beta)
                dq += 2.0 * e[t] * (-(r[t - 1] - beta))
            rss += e[t] * e[t]
        for t in range(T):  # P'e
            pe[t] = 0.0
            if mask[t, k] == 0:
                continue
            first = t == 0 or mask[t - 1, k] == 0
            pe[t] = s * e[t] if first else e[t]
            if t + 1 < T and mask[t + 1, k] > 0:
                pe[t] -= rho * e[t + 1]
        shape = a0 + n / 2
        logp -= shape * np.log(b0 + rss / 2)
        q = shape / (b0 + rss / 2)
        if ar1:
            dl = -0.5 * q * dq
            if intercept:  # -1/2 log m, dm/drho = -2 rho - 2 (n - 1)(1 - rho)
                logp -= 0.5 * np.log(m)
                dl += (rho + (n - 1.0) * (1.0 - rho)) / m
            grad[K * D + k] += dl * drho
        ubar = 0.0
        for d in range(D):
            acc = 0.0
            for t in range(T):
                acc += pe[t] * X[t, k, d]
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
    """nutpie's trace layout: the transformed values ``[log w_gamma (K x D), logit u (K)]``,
    the variables ``[w_gamma, u]`` and the deterministics ``[w = w_gamma / sum(w_gamma),
    noise_rho = 2u - 1]`` (the ``u`` blocks with AR(1) noise only)."""
    head = numba.carray(user_data_, (_HEADER,), np.float64)
    K, D = int(head[2]), int(head[3])
    n_w = K * D
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (expanded,))
    for i in range(dim):
        out[i] = x[i]
    for i in range(n_w):
        out[dim + i] = np.exp(x[i])
    for i in range(n_w, dim):
        out[dim + i] = 1.0 / (1.0 + np.exp(-x[i]))
    for k in range(K):
        tot = 0.0
        for d in range(D):
            tot += out[dim + k * D + d]
        for d in range(D):
            out[2 * dim + k * D + d] = out[dim + k * D + d] / tot
    for i in range(n_w, dim):
        out[2 * dim + i] = 2.0 * out[dim + i] - 1.0
    return 0


def compile_synth_nutpie(model: pm.Model, user_data: np.ndarray):
    """A nutpie compiled model for a BayesianSyntheticControl ``model`` without per-model
    compilation (the cached callbacks above).

    Raises :class:`UnsupportedModel` if the model is not the one this density implements
    (free ``w_gamma`` (Gamma) and, with AR(1) noise, ``noise_rho_beta`` (Beta);
    deterministic ``w`` (and ``noise_rho``), one potential; shapes as the buffer)."""
    from nutpie.compile_pymc import (
        CompiledPyMCModel,
        _prepare_dims_and_coords,
        _rv_dict_to_flat_array_wrapper,
        _wrap_with_lock,
    )
    from pymc.initial_point import make_initial_point_fn

    ar1 = bool(user_data[9] > 0)
    free = {rv.name: type(rv.owner.op).__name__ for rv in model.free_RVs}
    dets = [v.name for v in model.deterministics]
    pots = [v.name for v in model.potentials]
    want_free = {"w_gamma": "GammaRV", **({"noise_rho_beta": "BetaRV"} if ar1 else {})}
    want_dets = ["w", "noise_rho"] if ar1 else ["w"]
    if (free != want_free or dets != want_dets or pots != ["marginal_loglik"]
            or model.observed_RVs):
        raise UnsupportedModel(f"the compiled density covers {want_free}, {want_dets} and "
                               f"marginal_loglik; the model has {free}, {dets}, {pots}")
    K, D = int(user_data[2]), int(user_data[3])
    shapes = [tuple(int(s) for s in rv.shape.eval()) for rv in model.free_RVs]
    if shapes != [(K, D), (K,)][:len(shapes)]:
        raise UnsupportedModel(f"w_gamma has shape {shapes[0]}, the buffer ({K}, {D})")
    values = [model.rvs_to_values[rv].name for rv in model.free_RVs]
    sizes = [int(np.prod(sh)) for sh in shapes]
    n_dim = sum(sizes)
    names = values + [rv.name for rv in model.free_RVs] + want_dets
    all_shapes = shapes * 3
    offsets = np.concatenate([[0], np.cumsum(sizes * 3)])
    slices = [slice(int(a), int(b)) for a, b in zip(offsets[:-1], offsets[1:])]
    shape_info = (names, slices, all_shapes)
    user_data = np.ascontiguousarray(user_data, dtype=float).copy()
    user_data.flags.writeable = False
    point_fn = _wrap_with_lock(make_initial_point_fn(
        model=model, default_strategy="support_point", jitter_rvs=set(model.free_RVs),
        return_transformed=True))
    initial_point_fn = _rv_dict_to_flat_array_wrapper(point_fn, names=values, shapes=shapes)
    dims, coords = _prepare_dims_and_coords(model, shape_info, values)
    return CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords, _shapes=dict(zip(names, all_shapes)),
        compiled_logp_func=_logp_cfunc, compiled_expand_func=_expand_cfunc,
        initial_point_func=initial_point_fn, shared_data={}, shared_var_keys={},
        user_data=user_data, n_expanded=3 * n_dim, shape_info=shape_info,
        logp_func=None, expand_func=None, reparameterized_names=values)


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
