"""Slacks-based measure (Tone 2004) and super-efficiency SBM (Tone 2002) with undesirable
outputs, linearised by the Charnes-Cooper transformation (Cooper, Seiford & Tone 2007,
sec. 13.7); each DMU's programme solved by HiGHS in a hot-started batch.

>>> import numpy as np
>>> sbm(inputs=np.array([[2.0], [4.0]]), outputs=np.array([[2.0], [2.0]])).efficiency.tolist()
[1.0, 0.5]
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from ..errors import InfeasibleError
from ._dea_common import DEAResult, _Data, _check_opts, _finish, _prepare, _reference, _vrs_row, logger
from ._lp import _LPFamily

__all__ = ["sbm", "super_sbm"]


# ---------------------------------------------------------------------------- SBM
def _sbm_pieces(ev, rf, rts, super_eff):
    """Charnes-Cooper linearised (super-)SBM with undesirables; variables
    [t, L (n), S- (m), Sg (s), Sb (k)]."""
    (n, m), s, k = rf.X.shape, rf.Y.shape[1], rf.B.shape[1]
    q = s + k
    N = 1 + n + m + s + k
    sign = -1.0 if super_eff else 1.0
    blocks = [np.eye(1, N)]  # normalisation row: t -/+ mean(S+/y) = 1
    blocks.append(np.c_[np.zeros((m, 1)), -rf.X.T, -sign * np.eye(m), np.zeros((m, s + k))])
    blocks.append(np.c_[np.zeros((s, 1)), -rf.Y.T, np.zeros((s, m)), sign * np.eye(s),
                        np.zeros((s, k))])
    blocks.append(np.c_[np.zeros((k, 1)), -rf.B.T, np.zeros((k, m + s)), -sign * np.eye(k)])
    if super_eff:  # ybar = t y - Sg >= 0
        blocks.append(np.c_[np.zeros((s, 1 + n + m)), -np.eye(s), np.zeros((s, k))])
    if rts == "vrs":
        blocks.append(_vrs_row(n, m + s + k, coef_t=-1.0)[None])
    A = np.vstack(blocks)
    R = A.shape[0]
    rl, ru = np.zeros(R), np.zeros(R)
    rl[0] = ru[0] = 1.0
    if super_eff:  # xbar >= X'l, ybar <= Y'l, bbar >= B'l, ybar >= 0
        ru[1:1 + m] = np.inf
        rl[1 + m:1 + m + s] = -np.inf
        ru[1 + m + s:1 + m + s + k] = np.inf
        ru[1 + m + s + k:1 + m + 2 * s + k] = np.inf
    t_rows = list(range(1, 1 + m + s + k)) + (
        list(range(1 + m + s + k, 1 + m + 2 * s + k)) if super_eff else [])
    pos = [(r, 0) for r in t_rows] + [(0, 1 + n + m + j) for j in range(q)]
    with np.errstate(divide="ignore"):
        inv = np.where(np.c_[ev.Y, ev.B] > 0, 1.0 / np.c_[ev.Y, ev.B], 0.0) / q
    t_col = np.c_[ev.X, ev.Y, ev.B] if not super_eff else np.c_[ev.X, ev.Y, ev.B, ev.Y]
    coef = np.c_[t_col, sign * inv]
    cost = -sign / (m * ev.X)  # SBM: t - mean(S-/x); super: t + mean(S-/x)
    c = np.r_[1.0, np.zeros(N - 1)]
    fam = {"c": c, "A": A, "rl": rl, "ru": ru, "cl": np.zeros(N), "cu": np.full(N, np.inf),
           "coef_pos": pos, "rows": [], "cost_cols": np.arange(1 + n, 1 + n + m)}
    return fam, coef, cost, (n, m, s, k)


def _sbm_run(ev, rf, rts, super_eff, backend, progress, exclude=None, lambdas=False):
    """Solve the (super-)SBM programmes; z holds t, the lambdas (if asked) and the slacks,
    all still multiplied by t."""
    spec, coef, cost, dims = _sbm_pieces(ev, rf, rts, super_eff)
    n, N = dims[0], len(spec["c"])
    keep = np.r_[0, np.arange(1, 1 + n) if lambdas else np.array([], int), np.arange(1 + n, N)]
    fam = _LPFamily(**spec, backend=backend)
    K = coef.shape[0]
    st, obj, z = fam.solve_many(coef, np.zeros((K, 0)), np.zeros((K, 0)), cost, exclude=exclude,
                                keep=keep.astype(int), progress=progress,
                                desc="super-SBM" if super_eff else "SBM")
    return st, obj, z, dims


def _sbm_result(model, ev, rf, st, obj, z, dims, lambdas, on_infeasible, hint):
    n = dims[0] if lambdas else 0
    t = z[:, [0]]
    lam = z[:, 1:1 + n] / t
    slk = pd.DataFrame(z[:, 1 + n:] / t, index=ev.names,
                       columns=[f"s_{c}" for c in ev.cols["inputs"] + ev.cols["outputs"]
                                + ev.cols["bads"]])
    return _finish(model, ev, st, obj, obj, on_infeasible, ref=rf,
                   lambdas=lam if lambdas else None, slacks=slk, hint=hint)


def sbm(data: pd.DataFrame | None = None, *, inputs, outputs, bads=(),
        rts: Literal["crs", "vrs"] = "crs", reference=None, dmu: str | None = None,
        lambdas: bool = False, on_infeasible: str = "raise", backend: str = "auto",
        progress: bool = False) -> DEAResult:
    """Slacks-based measure with undesirable outputs (Tone 2004):

    ``rho = min (1 - mean(s-/x_o)) / (1 + (sum(sg/y_o) + sum(sb/b_o)) / (s1 + s2))``
    s.t. ``x_o = X'l + s-``, ``y_o = Y'l - sg``, ``b_o = B'l + sb``. Inputs and desirable
    outputs must be strictly positive; a zero bad output drops its term. ``slacks`` are
    always returned (``s_<column>``).

    >>> import numpy as np
    >>> r = sbm(inputs=np.array([[2.0], [4.0]]), outputs=np.array([[2.0], [2.0]]))
    >>> r.efficiency.round(3).tolist()
    [1.0, 0.5]
    """
    _check_opts(rts, None, on_infeasible)
    ev = _prepare(data, inputs, outputs, bads, dmu, strict_positive=True)
    rf = _reference(data, reference, inputs, outputs, bads, dmu, strict_positive=True)
    st, obj, z, dims = _sbm_run(ev, rf, rts, False, backend, progress, lambdas=lambdas)
    return _sbm_result(f"sbm_{rts}", ev, rf, st, obj, z, dims, lambdas, on_infeasible,
                       hint="a DMU outside a VRS reference technology can be infeasible")


def super_sbm(data: pd.DataFrame | None = None, *, inputs, outputs, bads=(),
              rts: Literal["crs", "vrs"] = "crs", dmu: str | None = None, tol: float = 1e-7,
              lambdas: bool = False, backend: str = "auto", progress: bool = False) -> DEAResult:
    """Super-efficiency SBM with undesirable outputs (Tone 2002, extended as in Tone 2004).

    SBM-inefficient DMUs keep their SBM score ``rho < 1``; each SBM-efficient DMU gets
    ``delta = min (1 + mean(s-/x_o)) / (1 - (sum(sg/y_o) + sum(sb/b_o)) / (s1 + s2)) >= 1``,
    the slack distance to the technology spanned by the *other* DMUs (``xbar = x_o + s-
    >= X'l``, ``0 <= ybar = y_o - sg <= Y'l``, ``bbar = b_o + sb >= B'l``). Under
    ``rts="vrs"`` that programme can be infeasible, which is expected in the literature: such
    DMUs get NaN and a logged warning (count in ``info['n_infeasible']``).

    >>> import numpy as np
    >>> X, Y = np.array([[2.0], [4.0], [3.0]]), np.array([[2.0], [2.0], [1.0]])
    >>> r = super_sbm(inputs=X, outputs=Y)
    >>> r.efficiency.round(3).tolist()
    [2.0, 0.5, 0.333]
    """
    _check_opts(rts)
    ev = _prepare(data, inputs, outputs, bads, dmu, strict_positive=True)
    st, obj, z, _ = _sbm_run(ev, ev, rts, False, backend, progress, lambdas=lambdas)
    if (st != "optimal").any():  # pragma: no cover - SBM on its own technology is feasible
        raise InfeasibleError("super-SBM: the first-stage SBM failed",
                              rows=ev.frame.iloc[np.flatnonzero(st != "optimal")])
    eff_idx = np.flatnonzero(obj >= 1 - tol)
    n = len(ev.names)
    score = obj.copy()
    status = st.copy()
    lam = z[:, 1:1 + n] / z[:, [0]] if lambdas else None
    if len(eff_idx):
        sub = _Data(ev.X[eff_idx], ev.Y[eff_idx], ev.B[eff_idx], ev.names[eff_idx], ev.cols,
                    ev.frame.iloc[eff_idx])
        st2, obj2, z2, _ = _sbm_run(sub, ev, rts, True, backend, progress,
                                    exclude=1 + eff_idx, lambdas=lambdas)
        score[eff_idx], status[eff_idx] = obj2, st2
        if lambdas:
            lam[eff_idx] = z2[:, 1:1 + n] / z2[:, [0]]
    bad = np.flatnonzero(status != "optimal")
    if len(bad):
        logger.warning("super_sbm (%s): %d efficient DMU(s) have an infeasible super-efficiency "
                       "programme (expected under VRS); reported as NaN: %s", rts, len(bad),
                       list(ev.names[bad][:10]))
    table = pd.DataFrame({"efficiency": score, "objective": score,
                          "status": status.astype(str)}, index=ev.names)
    return DEAResult(table, f"super_sbm_{rts}", lam, None, ev.names,
                     {"n_ref": n - 1, "n_infeasible": len(bad), "n_efficient": len(eff_idx)})
