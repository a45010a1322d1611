"""The marginal DID likelihood with per-unit precision scales, exact.

Same model as :mod:`.marginal_likelihood` except that unit ``i``'s AR(1) errors have
variance ``sigma^2 / u_i`` with ``u_i = w_i v_k``: ``w_i`` a fixed precision weight (the
panel weight of the unit) and ``v_k`` the sampled precision multiplier of the unit's
variance class ``k`` (``v`` is all ones without classes). Scaling unit ``i``'s precision by
``u_i`` multiplies its whitened cross-products and residual quadratic form by ``u_i`` and
adds ``T_i/2 log u_i`` to the log-likelihood; the unit effect's data precision becomes
``u_i D_L / s``. The A-parts are summed per class (``v`` enters linearly); the unit-effect
projection (``u_i^2 / (u_i D_L + lam_a s)`` is not linear in ``u_i``) is summed over groups
of units sharing run length, weight and class: from each group's 9 cross-products ``Q``
or, one unit per group, from the unit's own rows ``G``
(:func:`bayesdid.did.crossproducts.scaled_stats`).
Written by hand for the same reason as the unscaled form (no library has this
sufficient-statistic likelihood).

With every ``u_i = 1`` the value equals :func:`.marginal_likelihood.marginal_loglik_np`:

>>> import numpy as np
>>> from bayesdid import Panel
>>> from bayesdid.did.hierarchical import HierarchicalDiD
>>> from bayesdid.did.crossproducts import scaled_stats
>>> from bayesdid.did.marginal_likelihood import marginal_loglik_np
>>> from bayesdid.datasets import simulate_staggered
>>> sim = simulate_staggered(n_units=12, years=(2005, 2010), batches={2008: 4}, random_seed=1)
>>> design = HierarchicalDiD().prepare(Panel.from_frame(sim.data, **sim.panel_kwargs))
>>> sc = scaled_stats(design, np.ones(12), np.zeros(12, int), 1)
>>> lam = np.ones(design.n_phi)
>>> a = scaled_loglik_grad_np(sc, design.n_obs, 0.5, 0.3, 0.01, lam, np.ones(1))[0]
>>> bool(np.isclose(a, marginal_loglik_np(design.stats, design.n_obs, 0.5, 0.3, 0.01, lam)))
True
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from scipy.linalg import lapack

from .marginal_likelihood import LOG_2PI

SCALED_KEYS = ("basis", "Q", "G", "T", "w", "cls", "count")


def _parts(sc: dict, rho: float, s: float, lam_a: float, v: np.ndarray):
    """S (m+1 x m+1) and the per-class / per-unit pieces its derivatives need."""
    K, m1 = len(v), sc["size"]
    B = sc["basis"].reshape(K, 4, m1 * m1)
    a = np.array([1.0, -rho, rho**2, 1 - rho**2])
    Bk = np.einsum("j,kjx->kx", a, B)  # B_k(rho): class k's whitened cross-product
    S = (v @ Bk).reshape(m1, m1)
    T = sc["T"]
    u = sc["w"] * v[sc["cls"]]
    D = (1 - rho**2) + (T - 1) * (1 - rho) ** 2
    dD = -2 * rho - 2 * (T - 1) * (1 - rho)
    out = {"Bk": Bk, "B": B, "u": u, "D": D, "dD": dD}
    if np.isfinite(lam_a):
        c = np.array([1 - rho**2, 1 - rho, -rho * (1 - rho)])
        den = u * D + lam_a * s
        kappa = u**2 / den
        if len(sc["Q"]):  # grouped: sum_ab c_a c_b Q_j(a, b) per group
            Qr = sc["Q"].reshape(len(T), 9, m1 * m1)
            S = S - np.einsum("j,a,jax->x", kappa, np.outer(c, c).ravel(), Qr).reshape(m1, m1)
        else:
            g = np.einsum("a,nax->nx", c, sc["G"])
            S = S - (g.T * kappa) @ g
            out["g"] = g
        out.update(c=c, den=den, kappa=kappa)
    return S, out


def scaled_crossproduct_np(sc: dict, rho: float, s: float, lam_a: float,
                           v: np.ndarray) -> np.ndarray:
    """The GLS 'within' cross-product of [Z | y] with per-unit precision scales."""
    return _parts(sc, rho, s, lam_a, np.asarray(v, float))[0]


def scaled_loglik_grad_np(sc: dict, n_obs: int, sigma: float, rho: float, lam_a: float,
                          lam_phi: np.ndarray, v: np.ndarray):
    """(logp, d/dsigma, d/drho, d/dlam_phi, d/dv), every coefficient integrated out.

    With V = [[P + m m', -m], [-m', 1]] (P = H^-1, m = P b), every derivative of the
    data part through S is ``-1/2 tr(V dS) / s`` and through s at fixed S
    ``+1/2 tr(V S) / s^2`` (see :mod:`.marginal_likelihood_numba`).
    """
    v = np.asarray(v, float)
    K = len(v)
    s = sigma**2
    bad = (-np.inf, 0.0, 0.0, np.zeros_like(lam_phi), np.zeros(K))
    if not (abs(rho) < 1 and 0 < s < np.inf and np.all(np.isfinite(lam_phi))
            and np.all(v > 0) and np.all(np.isfinite(v))):
        return bad
    S, q = _parts(sc, rho, s, lam_a, v)
    p = len(lam_phi)
    H = S[:p, :p] / s
    H.flat[:: p + 1] += lam_phi
    L, info = lapack.dpotrf(H, lower=1, clean=1)
    if info != 0:
        return bad
    P, _ = lapack.dpotri(L, lower=1)
    P = np.tril(P) + np.tril(P, -1).T
    b = S[:p, p] / s
    mean = P @ b
    T, u, D, dD, cls, count = sc["T"], q["u"], q["D"], q["dD"], sc["cls"], sc["count"]
    n_units = count.sum()
    no_unit = not np.isfinite(lam_a)
    unit_terms = 0.0 if no_unit else 0.5 * np.sum(
        count * (np.log(lam_a) - np.log(u * D / s + lam_a)))
    logp = (-0.5 * n_obs * (LOG_2PI + np.log(s)) + 0.5 * np.sum(count * T * np.log(u))
            + 0.5 * n_units * np.log(1 - rho**2) + unit_terms
            + 0.5 * np.sum(np.log(lam_phi)) - np.sum(np.log(np.diagonal(L)))
            - 0.5 * S[p, p] / s + 0.5 * b @ mean)
    m1 = p + 1
    V = np.empty((m1, m1))
    V[:p, :p] = P + np.outer(mean, mean)
    V[:p, p] = V[p, :p] = -mean
    V[p, p] = 1.0
    vecV = V.ravel()
    tr_S = float(np.sum(V * S))
    tr_B = q["Bk"] @ vecV  # tr(V B_k), one per class
    dB = np.einsum("j,kjx->kx", np.array([0.0, -1.0, 2 * rho, -2 * rho]), q["B"])
    tr_rho = float(v @ (dB @ vecV))
    tr_s = 0.0
    tr_v = tr_B.copy()
    g_s_unit, g_rho_unit = 0.0, 0.0
    g_v_unit = np.zeros(K)
    if not no_unit:
        den, kappa, c = q["den"], q["kappa"], q["c"]
        dc = np.array([-2 * rho, -1.0, -(1 - 2 * rho)])
        if "g" in q:
            gV = q["g"] @ V
            qf = np.einsum("nx,nx->n", gV, q["g"])  # g_i' V g_i
            dg = np.einsum("a,nax->nx", dc, sc["G"])
            r = np.einsum("nx,nx->n", gV, dg)  # dg_i' V g_i
        else:  # per group: sums over its units, from tr(V Q_j(a, b))
            trQ = (sc["Q"] @ vecV).reshape(len(T), 9)
            qf = trQ @ np.outer(c, c).ravel()
            r = trQ @ np.outer(dc, c).ravel()
        dk_du = u * (u * D + 2 * lam_a * s) / den**2
        dk_ds = -(u**2) * lam_a / den**2
        dk_drho = -(u**3) * dD / den**2
        tr_s -= dk_ds @ qf
        tr_rho -= dk_drho @ qf + 2 * kappa @ r
        tr_v -= np.bincount(cls, weights=dk_du * sc["w"] * qf, minlength=K)
        g_s_unit = 0.5 * np.sum(count * u * D / (s * den))
        g_rho_unit = -0.5 * np.sum(count * u * dD / den)
        g_v_unit = -0.5 * np.bincount(cls, weights=count * sc["w"] * D / den, minlength=K)
    g_s = -0.5 * n_obs / s + g_s_unit - 0.5 * tr_s / s + 0.5 * tr_S / s**2
    g_rho = -n_units * rho / (1 - rho**2) + g_rho_unit - 0.5 * tr_rho / s
    g_v = (0.5 * np.bincount(cls, weights=count * T, minlength=K) / v + g_v_unit
           - 0.5 * tr_v / s)
    g_lam = 0.5 / lam_phi - 0.5 * np.diagonal(P) - 0.5 * mean**2
    return float(logp), float(g_s * 2 * sigma), float(g_rho), g_lam, g_v


def scaled_draw_phi(sc: dict, sigma: np.ndarray, rho: np.ndarray, lam_a: float,
                    lam_phi: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One exact conditional draw of phi per hyperparameter draw (rows of the inputs)."""
    out = np.empty((len(sigma), lam_phi.shape[1]))
    p = lam_phi.shape[1]
    for i in range(len(sigma)):
        s = sigma[i] ** 2
        S = scaled_crossproduct_np(sc, rho[i], s, lam_a, v[i])
        H = S[:p, :p] / s + np.diag(lam_phi[i])
        L = np.linalg.cholesky(H)
        mean, _ = lapack.dpotrs(L, S[:p, p] / s, lower=1)
        z, _ = lapack.dtrtrs(L, rng.standard_normal(p), lower=1, trans=1)
        out[i] = mean + z
    return out


class ScaledMarginalLoglik(Op):
    """PyTensor Op of :func:`scaled_loglik_grad_np` (value and analytic gradient).

    Inputs: sigma, rho, lam_phi, v (class precisions) and the arrays of
    :data:`SCALED_KEYS` (shared variables). :mod:`.marginal_likelihood_numba` registers
    the nopython implementation used by the numba backend (nutpie).
    """

    __props__ = ("n_obs", "lam_a")

    def __init__(self, n_obs: int, lam_a: float):
        self.n_obs, self.lam_a = int(n_obs), float(lam_a)

    def make_node(self, sigma, rho, lam_phi, v, basis, Q, G, T, w, cls, count):
        f = lambda x: pt.as_tensor_variable(x, dtype="float64")  # noqa: E731
        inputs = [f(sigma), f(rho), f(lam_phi), f(v), f(basis), f(Q), f(G), f(T), f(w),
                  pt.as_tensor_variable(cls, dtype="int64"), f(count)]
        outputs = [pt.dscalar(), pt.dscalar(), pt.dscalar(), pt.dvector(), pt.dvector()]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, outputs):
        sigma, rho, lam_phi, v, *data = inputs
        sc = dict(zip(SCALED_KEYS, data), size=len(lam_phi) + 1)
        try:
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                res = scaled_loglik_grad_np(sc, self.n_obs, float(sigma), float(rho),
                                            self.lam_a, lam_phi, v)
            if not np.isfinite(res[0]):
                raise FloatingPointError
        except (OverflowError, FloatingPointError, ZeroDivisionError, np.linalg.LinAlgError):
            res = (-np.inf, 0.0, 0.0, np.zeros(len(lam_phi)), np.zeros(len(v)))
        for o, val in zip(outputs, res):
            o[0] = np.asarray(val, dtype="float64")

    def pullback(self, inputs, outputs, cotangents):
        _, g_sigma, g_rho, g_lam, g_v = outputs
        gz = cotangents[0]
        for extra in cotangents[1:]:
            if not isinstance(extra.type, DisconnectedType):
                raise NotImplementedError("only the log-likelihood output is differentiable")
        return [gz * g_sigma, gz * g_rho, gz * g_lam, gz * g_v,
                *[DisconnectedType()() for _ in inputs[4:]]]

    def connection_pattern(self, node):
        return [[True, False, False, False, False]] * 4 + [[False] * 5] * len(SCALED_KEYS)


def scaled_data(sc: dict) -> tuple:
    """The scaled cross-product arrays as PyTensor shared variables."""
    return tuple(pytensor.shared(np.ascontiguousarray(sc[k], dtype="int64" if k == "cls"
                                                      else "float64"), name=f"did_scaled_{k}")
                 for k in SCALED_KEYS)


def scaled_loglik_pt(sc: dict, n_obs: int, sigma, rho, lam_a: float, lam_phi, v):
    """Symbolic value of :class:`ScaledMarginalLoglik`."""
    return ScaledMarginalLoglik(n_obs, lam_a)(sigma, rho, lam_phi, v, *scaled_data(sc))[0]
