"""Data envelopment analysis: CCR/BCC, directional distance with undesirable outputs, SBM.

Every model is an envelopment-form linear programme per decision-making unit (DMU), solved
by HiGHS. The programmes of one reference technology differ only in a handful of
coefficients (the evaluated DMU's column and right-hand side), so the model is built once
and only those pieces change between DMUs (:class:`_LPFamily`); HiGHS keeps its basis
between solves (a hot start). This uses scipy's bundled HiGHS bindings
(``scipy.optimize._highspy``, shipped with scipy >= 1.15) and falls back to
:func:`scipy.optimize.linprog` (``method="highs"``) with a prebuilt sparse matrix when
those bindings are absent.

Models (``rts="crs"`` constant / ``"vrs"`` variable returns to scale):

* :func:`dea` -- radial CCR (crs) and BCC (vrs), input or output oriented (Charnes,
  Cooper & Rhodes 1978; Banker, Charnes & Cooper 1984); optional max-slack second stage.
* :func:`ddf` -- directional distance function with undesirable outputs (Chung, Färe &
  Grosskopf 1997): ``max beta`` s.t. ``X'l <= x - beta gx``, ``Y'l >= y + beta gy``,
  ``B'l = b - beta gb`` (weak disposability of the bad output); default direction
  ``g = (0, y, b)``. Efficiency ``1 / (1 + beta)``.
* :func:`sbm` -- slacks-based measure with undesirable outputs (Tone 2004; Cooper, Seiford
  & Tone 2007, sec. 13.7), linearised by the Charnes-Cooper transformation.
* :func:`super_sbm` -- super-efficiency SBM (Tone 2002) with undesirable outputs: SBM for
  inefficient DMUs, the super-efficiency ``delta >= 1`` for efficient ones.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"y": [1, 2, 3, 1, 2], "x1": [2, 2, 6, 3, 6], "x2": [5, 4, 6, 2, 2]})
>>> dea(df, inputs=["x1", "x2"], outputs=["y"]).efficiency.round(3).tolist()
[0.5, 1.0, 0.833, 0.714, 1.0]
"""


from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from ..errors import BayesDidError, DesignError
from ._dea_common import DEAResult, _Data, _check_opts, _finish, _prepare, _reference, _vrs_row
from ._lp import _LPFamily, lp_backend
from .sbm import sbm, super_sbm

__all__ = ["DEAResult", "ddf", "dea", "lp_backend", "sbm", "super_sbm"]


# ---------------------------------------------------------------------------- CCR / BCC
def dea(data: pd.DataFrame | None = None, *, inputs, outputs, rts: Literal["crs", "vrs"] = "crs",
        orientation: Literal["input", "output"] = "input", reference=None, dmu: str | None = None,
        slacks: bool = False, lambdas: bool = False, on_infeasible: str = "raise",
        backend: str = "auto", progress: bool = False) -> DEAResult:
    """Radial DEA: CCR (``rts="crs"``) or BCC (``rts="vrs"``), envelopment form.

    Input orientation: ``min theta`` s.t. ``X'l <= theta x_o``, ``Y'l >= y_o``; output
    orientation: ``max eta`` s.t. ``X'l <= x_o``, ``Y'l >= eta y_o``, efficiency ``1/eta``.
    ``slacks=True`` adds the second stage (max sum of slacks at the radial optimum).
    ``reference`` evaluates the DMUs of ``data`` against another technology (a frame with
    the same columns, or ``(X, Y)`` arrays). ``inputs``/``outputs`` are column names of
    ``data`` or, with ``data=None``, arrays (DMUs x variables).
    """
    _check_opts(rts, orientation, on_infeasible)
    ev = _prepare(data, inputs, outputs, None, dmu)
    rf = _reference(data, reference, inputs, outputs, None, dmu)
    (n, m), s = rf.X.shape, rf.Y.shape[1]
    A = np.vstack([np.c_[np.zeros(m), rf.X.T], np.c_[np.zeros(s), rf.Y.T]])
    if rts == "vrs":
        A = np.vstack([A, _vrs_row(n, 0)])
    R = A.shape[0]
    rl, ru = np.full(R, -np.inf), np.full(R, np.inf)
    if rts == "vrs":
        rl[-1] = ru[-1] = 1.0
    K = len(ev.names)
    if orientation == "input":  # rows: X'l - theta x <= 0 ; Y'l >= y
        c = np.r_[1.0, np.zeros(n)]
        pos = [(i, 0) for i in range(m)]
        coef = -ev.X
        rows = np.arange(m + s)
        vr_l = np.c_[np.full((K, m), -np.inf), ev.Y]
        vr_u = np.c_[np.zeros((K, m)), np.full((K, s), np.inf)]
    else:  # rows: X'l <= x ; Y'l - eta y >= 0
        c = np.r_[-1.0, np.zeros(n)]
        pos = [(m + r, 0) for r in range(s)]
        coef = -ev.Y
        rows = np.arange(m + s)
        vr_l = np.c_[np.full((K, m), -np.inf), np.zeros((K, s))]
        vr_u = np.c_[ev.X, np.full((K, s), np.inf)]
    fam = _LPFamily(c, A, rl, ru, np.r_[-np.inf, np.zeros(n)], np.full(n + 1, np.inf),
                    coef_pos=pos, rows=rows, cost_cols=[], backend=backend)
    st, obj, z = fam.solve_many(coef, vr_l, vr_u, np.zeros((K, 0)), progress=progress,
                                keep=np.arange(1, n + 1) if lambdas else None,
                                desc=f"DEA {rts}")
    obj = obj if orientation == "input" else 0.0 - obj
    eff = obj if orientation == "input" else 1.0 / obj
    model = f"dea_{'ccr' if rts == 'crs' else 'bcc'}_{orientation}"
    lam = z if lambdas else None
    slk = _radial_slacks(ev, rf, obj, orientation, rts, backend) if slacks else None
    return _finish(model, ev, st, obj, eff, on_infeasible, ref=rf, lambdas=lam, slacks=slk,
                   hint="a DMU outside a VRS reference technology can be infeasible; "
                        "use rts='crs' or on_infeasible='nan'")


def _radial_slacks(ev, rf, obj, orientation, rts, backend):
    """Second stage: max sum of slacks with the radial score fixed (Cooper et al. 2007, 3.3)."""
    (n, m), s = rf.X.shape, rf.Y.shape[1]
    A = np.block([[rf.X.T, np.eye(m), np.zeros((m, s))], [rf.Y.T, np.zeros((s, m)), -np.eye(s)]])
    if rts == "vrs":
        A = np.vstack([A, np.r_[np.ones(n), np.zeros(m + s)]])
    R = A.shape[0]
    rl, ru = np.ones(R), np.ones(R)
    c = np.r_[np.zeros(n), -np.ones(m + s)]
    th = np.where(np.isfinite(obj), obj, 0.0)[:, None]
    rhs = np.c_[ev.X * th, ev.Y] if orientation == "input" else np.c_[ev.X, ev.Y * th]
    fam = _LPFamily(c, A, rl, ru, np.zeros(n + m + s), np.full(n + m + s, np.inf),
                    coef_pos=[], rows=np.arange(m + s), cost_cols=[], backend=backend)
    K = len(ev.names)
    _, _, z = fam.solve_many(np.zeros((K, 0)), rhs, rhs, np.zeros((K, 0)),
                             keep=np.arange(n, n + m + s), desc="slacks")
    cols = [f"s_{c}" for c in ev.cols["inputs"]] + [f"s_{c}" for c in ev.cols["outputs"]]
    return pd.DataFrame(z, index=ev.names, columns=cols)


# ---------------------------------------------------------------------------- DDF
def _direction(direction, ev):
    """Per-DMU direction vectors (gx, gy, gb) from ('zero'|'own'|array) triples."""
    spec = direction if direction is not None else ("zero", "own", "own")
    if len(spec) != 3:
        raise BayesDidError("direction takes three parts (gx, gy, gb), e.g. ('zero', 'own', 'own')")
    out = []
    for part, M in zip(spec, (ev.X, ev.Y, ev.B)):
        if isinstance(part, str):
            if part not in ("zero", "own"):
                raise BayesDidError(f"direction parts are 'zero', 'own' or arrays; got {part!r}")
            out.append(np.zeros_like(M) if part == "zero" else M.copy())
        else:
            out.append(np.broadcast_to(np.asarray(part, float), M.shape).copy())
    return out


def _ddf_lp(rf, ev, gx, gy, gb, rts, bad_disposability, backend, progress, lambdas=False):
    (n, m), s, k = rf.X.shape, rf.Y.shape[1], rf.B.shape[1]
    # rows: gx b + X'l <= x ;  gy b - Y'l <= -y ;  gb b + B'l = b (weak) or <= b (strong)
    A = np.vstack([np.c_[np.zeros(m), rf.X.T], np.c_[np.zeros(s), -rf.Y.T],
                   np.c_[np.zeros(k), rf.B.T]])
    if rts == "vrs":
        A = np.vstack([A, _vrs_row(n, 0)])
    R = A.shape[0]
    rl, ru = np.full(R, -np.inf), np.full(R, np.inf)
    if rts == "vrs":
        rl[-1] = ru[-1] = 1.0
    K = ev.X.shape[0]
    pos = [(i, 0) for i in range(m + s + k)]
    coef = np.c_[gx, gy, gb]
    weak = bad_disposability == "weak"
    vr_l = np.c_[np.full((K, m + s), -np.inf), ev.B if weak else np.full((K, k), -np.inf)]
    vr_u = np.c_[ev.X, -ev.Y, ev.B]
    fam = _LPFamily(np.r_[-1.0, np.zeros(n)], A, rl, ru, np.r_[-np.inf, np.zeros(n)],
                    np.full(n + 1, np.inf), coef_pos=pos, rows=np.arange(m + s + k),
                    cost_cols=[], backend=backend)
    st, obj, z = fam.solve_many(coef, vr_l, vr_u, np.zeros((K, 0)),
                                keep=np.arange(1, n + 1) if lambdas else None,
                                progress=progress, desc="DDF")
    return st, 0.0 - obj, z


def ddf(data: pd.DataFrame | None = None, *, inputs, outputs, bads=(), direction=None,
        rts: Literal["crs", "vrs"] = "crs", bad_disposability: Literal["weak", "strong"] = "weak",
        reference=None, dmu: str | None = None, lambdas: bool = False,
        on_infeasible: str = "raise", backend: str = "auto", progress: bool = False) -> DEAResult:
    """Directional distance function with undesirable outputs (Chung, Färe & Grosskopf 1997).

    ``max beta`` s.t. ``X'l <= x_o - beta gx``, ``Y'l >= y_o + beta gy``,
    ``B'l = b_o - beta gb`` (``bad_disposability="weak"``; ``"strong"`` uses ``<=``),
    ``l >= 0`` (+ ``sum(l) = 1`` under ``rts="vrs"``). ``direction=(gx, gy, gb)``, each
    ``"zero"``, ``"own"`` (the DMU's own values) or an array; default ``("zero", "own",
    "own")``, i.e. ``g = (0, y, -b)``. ``objective`` is beta (0 on the frontier; negative
    for a DMU above a reference technology it does not belong to); ``efficiency`` is
    ``1/(1+beta)``.

    >>> import numpy as np
    >>> r = ddf(inputs=np.array([[1.0], [1.0]]), outputs=np.array([[2.0], [1.0]]),
    ...         bads=np.array([[1.0], [1.0]]))
    >>> r.table["objective"].round(4).tolist()
    [0.0, 0.3333]
    """
    _check_opts(rts, None, on_infeasible)
    if bad_disposability not in ("weak", "strong"):
        raise BayesDidError("bad_disposability must be 'weak' or 'strong', "
                            f"got {bad_disposability!r}")
    ev = _prepare(data, inputs, outputs, bads, dmu)
    rf = _reference(data, reference, inputs, outputs, bads, dmu)
    gx, gy, gb = _direction(direction, ev)
    zero = ~((np.c_[gx, gy, gb] != 0).any(axis=1))
    if zero.any():
        raise DesignError(f"{int(zero.sum())} DMU(s) have a zero direction vector (beta would be "
                          "unbounded)", rows=ev.frame.iloc[np.flatnonzero(zero)]
                          if len(ev.frame) == len(zero) else None,
                          hint="these DMUs have zero good and bad outputs; drop them or pass a "
                               "fixed direction array")
    st, beta, z = _ddf_lp(rf, ev, gx, gy, gb, rts, bad_disposability, backend, progress,
                          lambdas=lambdas)
    return _finish(f"ddf_{rts}", ev, st, beta, 1.0 / (1.0 + beta), on_infeasible, ref=rf,
                   lambdas=z if lambdas else None,
                   hint="mixed-period or VRS directional distances can be infeasible; "
                        "pass on_infeasible='nan' to get NaN instead")


def _ddf_arrays(Xr, Yr, Br, Xe, Ye, Be, *, direction=None, rts="crs", bad_disposability="weak",
                backend="auto", progress=False) -> tuple[np.ndarray, np.ndarray]:
    """beta and status of DMUs (Xe, Ye, Be) against technology (Xr, Yr, Br); arrays
    DMUs x variables, already validated. Used by the Malmquist-Luenberger index."""
    names = pd.RangeIndex(Xe.shape[0])
    ev = _Data(Xe, Ye, Be, names, {}, pd.DataFrame(index=names))
    rf = _Data(Xr, Yr, Br, pd.RangeIndex(Xr.shape[0]), {}, pd.DataFrame())
    gx, gy, gb = _direction(direction, ev)
    st, beta, _ = _ddf_lp(rf, ev, gx, gy, gb, rts, bad_disposability, backend, progress)
    return np.where(st == "optimal", beta, np.nan), st
