"""The marginal DID likelihood on its block-arrow structure: a small dense head plus many
small diagonal blocks, nopython (the nutpie density's fast path).

Every treated cell belongs to one (cohort, pooled group) and every unit to one cohort and
group, so the cross-products of the pooled cell columns with each other vanish between
groups (the AR(1) transform and the unit-effect projection stay within a unit): ordered as
``[cells by group | head]`` (head: period, covariate, event, cohort and group columns),

    H = [[C, B], [B', A]],   C = blockdiag(C_1, ..., C_G)   (each C_g at most ~20 x 20).

Pooled group x period effects (``random_effects="region^year"``) couple a region's cells
of every cohort with its region-years: then the groups are the regions (43 columns each
for the LCCP design, 58 with 6 leads), or the region-years join the head, whichever
:func:`layout_cost` finds cheaper (the regions, in every design measured).

Then ``log|H| = sum log|C_g| + log|A - B'C^-1 B|`` and the inverse is needed only where the
cross-products are non-zero (the gradient's traces tr(P dS)): the head block, the
head x cell block and the diagonal blocks of the cells,

    P_AA = (A - B'C^-1 B)^-1,  P_CA = -C^-1 B P_AA,  P_gg = C_g^-1 + (C^-1 B)_g P_AA (C^-1 B)_g'.

For the LCCP event study with 6 leads (p = 184: a 44-column head, 11 groups of <= 16 cells)
this replaces a 184 x 184 Cholesky plus inverse (the dense path's cost) by 11 small ones, a
44 x 44 one and a few thin products, and the cross-product basis is stored on the blocks
only (10 x 10,201 numbers instead of 13 x 34,225): 3.3x less time per log-density and
gradient (``benchmarks/bench_event_study.py``). The conditional draws of phi after NUTS use
the same factorisation (:func:`block_draw_batch_nb`). The value and gradient are those of
:func:`bayesdid.did.marginal_likelihood_numba.marginal_loglik_grad_nb` (tests: 1e-10); the
layout is found from the basis' sparsity pattern and checked exact, so a design without the
structure keeps the dense path. Written by hand: no nopython library offers a structured
(block-arrow) Cholesky with selected inverse.

>>> import numpy as np
>>> from bayesdid import Panel
>>> from bayesdid.did.hierarchical import HierarchicalDiD
>>> from bayesdid.did.marginal_likelihood_numba import marginal_loglik_grad_nb
>>> from bayesdid.datasets import simulate_staggered
>>> sim = simulate_staggered(n_units=40, years=(2005, 2012), batches={2008: 8, 2010: 8},
...                          random_seed=1)
>>> design = HierarchicalDiD().prepare(Panel.from_frame(sim.data, **sim.panel_kwargs))
>>> layout = block_layout(design, min_p=0)  # a small design: the dense path by default
>>> st, lam = design.stats, np.ones(design.n_phi)
>>> fast = block_loglik_grad_nb(*layout_arrays(layout), st["run_lengths"],
...                             st["units_per_length"], design.n_obs, 0.01, 0.5, 0.3, lam)
>>> ref = marginal_loglik_grad_nb(st["basis"], st["run_lengths"], st["units_per_length"],
...                               design.n_obs, 0.01, 0.5, 0.3, lam)
>>> bool(np.isclose(fast[0], ref[0], rtol=1e-12) and np.allclose(fast[3], ref[3]))
True
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import cache
from itertools import combinations

import numba
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from threadpoolctl import threadpool_limits

from ..bayes import native
from ..bayes.small_linalg import small_spd_inverse
from .marginal_likelihood_numba import (
    _cholesky_in_place,
    _inverse_from_factor,
    _loglik_and_scalar_grad,
    _weights,
    draw_phi_nb,
    scaled_args,
    scaled_draw_phi_nb,
)

__all__ = ["BlockLayout", "block_layout", "layout_cost", "layout_from_groups",
           "layout_arrays", "block_loglik_grad_nb", "block_draw_batch_nb", "draw_phi_block",
           "draw_phi_scaled", "MAX_GROUP", "MIN_P", "NATIVE_SOURCE", "native_draws"]

#: largest diagonal block considered for the tail (a bigger connected group of pooled
#: columns joins the head); below it :func:`layout_cost` decides
MAX_GROUP = 128
#: fewest coefficients for the block layout: below, the dense kernel is as fast or faster
#: (castle, p = 51: equal; a 20 x 2 DiD, p = 11: dense 2x faster, per-call overheads)
MIN_P = 64
#: the C twin of this module's log density and draws (relative to the package), built by
#: :func:`bayesdid.bayes.native.load`; the numba functions here are its fallback
NATIVE_SOURCE = native.DID_SOURCE
#: the (a <= b) pairs of the unit projection's Q_L(a, b) rows kept in the compact basis
_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


@dataclass(frozen=True)
class BlockLayout:
    """Index sets of the block-arrow order and the basis restricted to its blocks.

    ``head``: columns of the dense head; ``tail``: pooled columns ordered by group, group g
    being ``tail[starts[g]:starts[g + 1]]``; ``basis``: (rows, n_compact) cross-product
    basis on [head+y x head+y, tail x head+y, each group's block], row-major, with the
    rows Q_L(a, b) and Q_L(b, a) summed (:data:`_PAIRS`)."""

    head: np.ndarray
    tail: np.ndarray
    starts: np.ndarray
    basis: np.ndarray


@numba.njit(cache=True, error_model="numpy")
def _merged_weights(run_lengths, lam_a, s, rho):
    """:func:`.marginal_likelihood_numba._weights` on the compact basis' rows (the first
    four, then per run length the six pairs a <= b of Q_L(a, b))."""
    n_runs = run_lengths.shape[0]
    w, D, dD = _weights(4 + 9 * n_runs, run_lengths, lam_a, s, rho)
    out = np.empty((3, 4 + 6 * n_runs))
    for i in range(3):  # element loops: a slice assignment compiles an error message
        for j in range(4):
            out[i, j] = w[i, j]
        for li in range(n_runs):
            j = 0
            for a in range(3):
                for b in range(a, 3):
                    out[i, 4 + 6 * li + j] = w[i, 4 + 9 * li + 3 * a + b]
                    j += 1
    return out, D, dD


def layout_cost(n_head: int, group_sizes, n_rows: int) -> float:
    """Estimated cost (microseconds on the development machine; only ratios matter) of
    one :func:`block_loglik_grad_nb` call on a layout with a head of ``n_head`` columns and
    tail groups of ``group_sizes`` (``n_rows``: rows of the compact basis). One weight per
    part of the kernel, fitted to 48 timed layouts of LCCP-shaped designs with and without
    leads and region x year effects (max error 7%): the compact basis products
    (memory-bound), the groups' hand-written inverses, C^-1 B and the groups' blocks of the
    inverse, B'C^-1 B and C^-1 B P_AA, the head's Cholesky and inverse, and a per-group
    overhead."""
    n = np.asarray(group_sizes, dtype=float)
    a1 = n_head + 1.0
    pc = n.sum()
    sq = float(np.dot(n, n))
    return (3.7e-4 * 2.0 * n_rows * (a1 * a1 + pc * a1 + sq) + 1.8e-4 * float(np.sum(n ** 3))
            + 2.8e-5 * sq * (a1 + n_head) + 2.3e-5 * pc * (a1 * a1 + n_head * n_head)
            + 1.9e-5 * n_head ** 3 + 0.21 * len(n))


def _candidate_tails(pattern, blocks, max_group):
    """(tail columns, their group labels) of every layout considered: for each choice of
    pooled blocks kept as tail candidates (the others join the head), the connected
    components of the candidates' non-zero pattern, keeping those up to each size cap
    (components above it join the head). Each is exact by construction."""
    for r in range(len(blocks), 0, -1):
        for chosen in combinations(blocks, r):
            cand = np.concatenate([np.arange(b.start, b.start + b.size) for b in chosen])
            if len(cand) < 2:
                continue
            n_comp, labels = connected_components(
                csr_matrix(pattern[np.ix_(cand, cand)]), directed=False)
            sizes = np.bincount(labels, minlength=n_comp)
            for cap in np.unique(sizes[sizes <= max_group]):
                keep = sizes[labels] <= cap
                if keep.sum() >= 2:
                    yield cand[keep], labels[keep]


def block_layout(design, max_group: int = MAX_GROUP,
                 min_p: int | None = None) -> BlockLayout | None:
    """The cheapest block-arrow layout of ``design``'s cross-products by
    :func:`layout_cost`, or ``None`` when none applies (fewer than ``min_p`` (default
    :data:`MIN_P`) coefficients, no pooled block, or every group of coupled pooled columns
    above ``max_group``).

    Candidates for the tail are the pooled (``random``) blocks' columns, grouped by the
    connected components of the basis' non-zero pattern among them, so dropping the
    entries between groups is exact by construction. Which pooled blocks take part, and
    which components are small enough to stay in the tail, is chosen by the cost model:
    with ``random_effects="region^year"`` the region-year columns join their region's cells
    (one group per region) when that is cheaper than a larger head, and the event study's
    larger region groups (cells of all leads plus 19 region-years) are weighed against
    putting the region-years in the head and the (cohort, region) cells in the tail."""
    st = design.stats
    p = design.n_phi
    m1 = p + 1
    if not design.random_blocks or p < (MIN_P if min_p is None else min_p):
        return None
    basis = np.asarray(st["basis"], dtype=float).reshape(-1, m1, m1)
    pattern = np.any(basis != 0.0, axis=0)
    n_rows = 4 + 6 * ((basis.shape[0] - 4) // 9)
    best, best_cost = None, np.inf
    for cand, labels in _candidate_tails(pattern, design.random_blocks, max_group):
        cost = layout_cost(p - len(cand), np.bincount(labels)[np.unique(labels)], n_rows)
        if cost < best_cost:
            best, best_cost = (cand, labels), cost
    if best is None:
        return None
    return layout_from_groups(design, *best)


def layout_from_groups(design, tail: np.ndarray, labels: np.ndarray) -> BlockLayout:
    """The :class:`BlockLayout` with tail columns ``tail`` grouped by ``labels`` (the rest
    in the head), whose groups must not be coupled (as :func:`block_layout` finds them;
    the benchmarks use this to time other choices)."""
    p = design.n_phi
    m1 = p + 1
    basis = np.asarray(design.stats["basis"], dtype=float).reshape(-1, m1, m1)
    cand, labels = np.asarray(tail), np.asarray(labels)
    order = np.lexsort((cand, labels))
    tail = cand[order]
    tail_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, tail_labels[1:] != tail_labels[:-1], True])
    head = np.setdiff1d(np.arange(p), tail)
    hy = np.r_[head, p]
    R = basis.shape[0]
    parts = [basis[:, hy][:, :, hy].reshape(R, -1), basis[:, tail][:, :, hy].reshape(R, -1)]
    for g in range(len(starts) - 1):
        idx = tail[starts[g]:starts[g + 1]]
        parts.append(basis[:, idx][:, :, idx].reshape(R, -1))
    compact = np.hstack(parts)
    # Q_L(a, b) and Q_L(b, a) always carry the same weight (c_a c_b): one row for both
    n_runs = (R - 4) // 9
    rows = [compact[:4]]
    for li in range(n_runs):
        q = compact[4 + 9 * li:13 + 9 * li]
        rows += [q[3 * a + b] + (q[3 * b + a] if a != b else 0.0) for a, b in _PAIRS]
    compact = np.ascontiguousarray(np.vstack(rows))
    return BlockLayout(head=head, tail=tail, starts=starts, basis=compact)


def layout_arrays(layout: BlockLayout) -> tuple:
    """(basis, head, tail, starts) as the nopython functions take them."""
    return (layout.basis, layout.head.astype(np.int64), layout.tail.astype(np.int64),
            layout.starts.astype(np.int64))


@numba.njit(cache=True, error_model="numpy")
def _factor(Sc, s, lam_phi, head, tail, starts, cfac):
    """Factor H on the block-arrow layout from the compact cross-products ``Sc``.

    ``cfac``: empty, or (for the draws) as long as the C_g blocks (never empty: the layout
    has at least two tail columns) and then filled with their Cholesky factors (flat, C
    view: upper triangle L_g'). Returns ok, half log|H|, C_g^-1 per group (flat),
    X = C^-1 [B, b_C], P_AA (for the draws: the factor of its inverse, the Schur complement
    A - B'C^-1 B, instead), r_A = b_A - B'C^-1 b_C and b_C'C^-1 b_C."""
    pa, pc = head.shape[0], tail.shape[0]
    a1 = pa + 1
    n_hh = a1 * a1
    Bf = Sc[n_hh:n_hh + pc * a1].reshape((pc, a1)) / s
    X = np.empty((pc, a1))
    cinv = np.empty(Sc.shape[0] - n_hh - pc * a1)
    for_draws = cfac.shape[0] > 0  # a runtime flag: one specialisation for both callers
    half_logdet = 0.0
    off = n_hh + pc * a1
    at = 0
    for g in range(starts.shape[0] - 1):
        lo, hi = starts[g], starts[g + 1]
        n = hi - lo
        C = Sc[off:off + n * n].reshape((n, n)) / s
        for i in range(n):
            C[i, i] += lam_phi[tail[lo + i]]
        fac = cfac[at:at + n * n].reshape((n, n)) if for_draws else np.empty((0, 0))
        ok, half = small_spd_inverse(C, fac)
        if not ok:
            return False, 0.0, cinv, X, X, X[0], 0.0
        half_logdet += half
        for i in range(n):
            for j in range(n):
                cinv[at + i * n + j] = C[i, j]
        np.dot(C, Bf[lo:hi], X[lo:hi])
        off += n * n
        at += n * n
    G = np.dot(Bf.T, X)
    Shh = Sc[:n_hh].reshape((a1, a1))
    P = np.empty((pa, pa))
    r = np.empty(pa)
    for i in range(pa):
        for j in range(pa):
            P[i, j] = Shh[i, j] / s - G[i, j]
        P[i, i] += lam_phi[head[i]]
        r[i] = Shh[i, pa] / s - G[i, pa]
    if pa > 0:
        if not _cholesky_in_place(P):
            return False, 0.0, cinv, X, X, X[0], 0.0
        for i in range(pa):
            half_logdet += np.log(P[i, i])
        if not for_draws and not _inverse_from_factor(P):
            return False, 0.0, cinv, X, X, X[0], 0.0
    return True, half_logdet, cinv, X, P, r, G[pa, pa]


@numba.njit(cache=True, error_model="numpy")
def block_loglik_grad_nb(basis, head, tail, starts, run_lengths, units_per_length, n_obs,
                         lam_a, sigma, rho, lam_phi):
    """(logp, d/dsigma, d/drho, d/dlam_phi): :func:`.marginal_loglik_grad_nb` on the
    block-arrow layout of :func:`block_layout` (same value and gradient)."""
    p = lam_phi.shape[0]
    pa, pc = head.shape[0], tail.shape[0]
    a1 = pa + 1
    n_hh = a1 * a1
    g_lam = np.zeros(p)
    s = sigma * sigma
    if not (abs(rho) < 1.0 and s > 0.0 and s < np.inf and np.all(np.isfinite(lam_phi))):
        return -np.inf, 0.0, 0.0, g_lam
    w, D, dD = _merged_weights(run_lengths, lam_a, s, rho)
    Sc = np.dot(w[0], basis)
    ok, half_logdet, cinv, X, P, r, quad_c = _factor(Sc, s, lam_phi, head, tail, starts,
                                                      np.empty(0))
    if not ok:
        return -np.inf, 0.0, 0.0, g_lam
    m_a = np.dot(P, r)
    XA = np.empty((pc, pa))  # X[:, :pa], contiguous (a loop: one overload fewer to compile)
    for c in range(pc):
        for j in range(pa):
            XA[c, j] = X[c, j]
    m_c = X[:, pa] - np.dot(XA, m_a)
    Y = np.dot(XA, P)  # C^-1 B P_AA = -P_CA
    # V = [[P + m m', -m], [-m', 1]] on the compact layout (off-diagonal blocks twice)
    V = np.empty(Sc.shape[0])
    for i in range(pa):
        for j in range(pa):
            V[i * a1 + j] = P[i, j] + m_a[i] * m_a[j]
        V[i * a1 + pa] = -m_a[i]
        V[pa * a1 + i] = -m_a[i]
        g_lam[head[i]] = 0.5 / lam_phi[head[i]] - 0.5 * P[i, i] - 0.5 * m_a[i] ** 2
    V[n_hh - 1] = 1.0
    for c in range(pc):
        for j in range(pa):
            V[n_hh + c * a1 + j] = 2.0 * (m_c[c] * m_a[j] - Y[c, j])
        V[n_hh + c * a1 + pa] = -2.0 * m_c[c]
    off = n_hh + pc * a1
    at = 0
    for g in range(starts.shape[0] - 1):
        lo, hi = starts[g], starts[g + 1]
        n = hi - lo
        Pg = np.dot(Y[lo:hi], XA[lo:hi].T)
        for i in range(n):
            for j in range(n):
                Pg[i, j] += cinv[at + i * n + j]
                V[off + i * n + j] = Pg[i, j] + m_c[lo + i] * m_c[lo + j]
            k = tail[lo + i]
            g_lam[k] = 0.5 / lam_phi[k] - 0.5 * Pg[i, i] - 0.5 * m_c[lo + i] ** 2
        off += n * n
        at += n * n
    u = np.dot(basis, V)
    logp, g_sigma, g_rho = _loglik_and_scalar_grad(
        n_obs, s, sigma, rho, lam_a, D, dD, units_per_length, lam_phi, half_logdet,
        Sc[n_hh - 1], quad_c + np.dot(r, m_a), np.dot(w[0], u), np.dot(w[1], u),
        np.dot(w[2], u))
    return logp, g_sigma, g_rho, g_lam


@numba.njit(cache=True, error_model="numpy")
def _upper_solve(U, v, out):
    """out = U^-1 v for the upper triangle U of a C-ordered factor (back substitution)."""
    n = v.shape[0]
    for i in range(n - 1, -1, -1):
        acc = v[i]
        for k in range(i + 1, n):
            acc -= U[i, k] * out[k]
        out[i] = acc / U[i, i]


@numba.njit(cache=True, error_model="numpy")
def block_draw_batch_nb(basis, head, tail, starts, run_lengths, lam_a, sigma, rho, lam_phi,
                        z):
    """Exact draws of phi given each hyperparameter draw (rows) on the block-arrow layout:
    phi_A = m_A + U^-1 z_A with U'U the Schur complement A - B'C^-1 B (the precision of
    phi_A's marginal), then phi_C | phi_A ~ N(C^-1 (b_C - B phi_A), C^-1) group by group,
    phi_g = ... + U_g^-1 z_g. Same distribution as
    :func:`.marginal_likelihood_numba.conditional_factor_batch_nb`, another map from z."""
    n_draws, p = lam_phi.shape
    pa, pc = head.shape[0], tail.shape[0]
    out = np.empty((n_draws, p))
    y = np.empty(pa)
    cfac = np.empty(basis.shape[1] - (pa + 1) ** 2 - pc * (pa + 1))
    phi_a = np.empty(pa)
    for d in range(n_draws):
        s = sigma[d] ** 2
        w, _, _ = _merged_weights(run_lengths, lam_a, s, rho[d])
        Sc = np.dot(w[0], basis)
        ok, _, _, X, U, r, _ = _factor(Sc, s, lam_phi[d], head, tail, starts, cfac)
        if not ok:
            out[d, :] = np.nan
            continue
        for i in range(pa):  # U'y = r (forward), then U phi_A = y + z_A
            acc = r[i]
            for k in range(i):
                acc -= U[k, i] * y[k]
            y[i] = acc / U[i, i]
        for i in range(pa):
            y[i] += z[d, head[i]]
        _upper_solve(U, y, phi_a)
        at = 0
        for g in range(starts.shape[0] - 1):
            lo, hi = starts[g], starts[g + 1]
            n = hi - lo
            Ug = cfac[at:at + n * n].reshape((n, n))
            zg = np.empty(n)
            for i in range(n):
                zg[i] = z[d, tail[lo + i]]
            noise = np.empty(n)
            _upper_solve(Ug, zg, noise)
            for i in range(n):
                c = lo + i
                acc = X[c, pa] + noise[i]
                for j in range(pa):
                    acc -= X[c, j] * phi_a[j]
                out[d, tail[c]] = acc
            at += n * n
        for i in range(pa):
            out[d, head[i]] = phi_a[i]
    return out


@cache
def native_draws():
    """``(block, dense, scaled)``: ``bayesdid_block_draws``, ``bayesdid_dense_draws`` and
    ``bayesdid_scaled_draws`` of :data:`NATIVE_SOURCE`, the C twins of
    :func:`block_draw_batch_nb`, :func:`.marginal_likelihood_numba.conditional_factor_batch_nb`
    and :func:`.marginal_likelihood_numba.scaled_conditional_batch_nb`, or ``None`` where
    they cannot be built."""
    lib = native.load(NATIVE_SOURCE)
    if lib is None:
        return None
    block, dense, scaled = (getattr(lib.handle, f"bayesdid_{kind}_draws")
                            for kind in ("block", "dense", "scaled"))
    i64, ptr, dbl = ctypes.c_int64, ctypes.c_void_p, ctypes.c_double
    block.argtypes = [i64] * 6 + [ptr] * 5 + [dbl, i64] + [ptr] * 5
    dense.argtypes = [i64] * 3 + [ptr] * 2 + [dbl, i64] + [ptr] * 5
    scaled.argtypes = [i64] * 4 + [ptr] * 6 + [dbl, i64] + [ptr] * 6
    block.restype = dense.restype = scaled.restype = i64
    return block, dense, scaled


def _contiguous(*arrays):
    return [np.ascontiguousarray(a, dtype=np.int64 if np.asarray(a).dtype.kind in "iu"
                                 else float) for a in arrays]


def _draws_c(fn, leading: tuple, arrays: list, lam_a: float, hyper: list) -> np.ndarray:
    """Call a C draws kernel: ``fn(*leading, *arrays, lam_a, n_draws, *hyper, out)``
    (``hyper[2]`` is lam_phi: draws x p, the shape of the output)."""
    out = np.empty(hyper[2].shape)
    status = fn(*leading, *(a.ctypes.data for a in arrays), float(lam_a), hyper[2].shape[0],
                *(a.ctypes.data for a in (*hyper, out)))
    if status != 0:
        raise MemoryError("the C draws kernel could not allocate its workspace")
    return out


def draw_phi_block(design, sigma: np.ndarray, rho: np.ndarray, lam_a: float,
                   lam_phi: np.ndarray, rng: np.random.Generator,
                   use_native: bool = True) -> np.ndarray:
    """Exact conditional draws of phi (rows: hyperparameter draws) on the block-arrow
    layout when ``design`` has it (:func:`block_draw_batch_nb`), else on the dense
    cross-products (:func:`.marginal_likelihood_numba.draw_phi_nb`); one standard normal
    (draws x p) array from ``rng`` either way (same seed, same draws). Their C twins
    (:func:`native_draws`) draw where they build (and ``use_native``): same draws to
    rounding. BLAS runs single-threaded: the matrices are small, and threads only contend."""
    layout = block_layout(design)
    fns = native_draws() if use_native else None
    lam_phi = np.ascontiguousarray(lam_phi, dtype=float)
    run_lengths = np.asarray(design.stats["run_lengths"], dtype=float)
    if layout is None and fns is None:
        with threadpool_limits(1):
            return draw_phi_nb(design.stats, sigma, rho, lam_a, lam_phi, rng)
    z = rng.standard_normal(lam_phi.shape)
    hyper = _contiguous(sigma, rho) + [lam_phi, z]
    with threadpool_limits(1):
        if layout is None:
            basis, rl = _contiguous(design.stats["basis"], run_lengths)
            return _draws_c(fns[1], (lam_phi.shape[1], basis.shape[0], len(rl)), [basis, rl],
                            lam_a, hyper)
        arrays = _contiguous(*layout_arrays(layout), run_lengths)
        if fns is None:
            return block_draw_batch_nb(*arrays, float(lam_a), *hyper)
        basis, head, _, starts, rl = arrays
        return _draws_c(fns[0], (lam_phi.shape[1], len(head), len(starts) - 1, basis.shape[0],
                                 len(rl), basis.shape[1]), arrays, lam_a, hyper)


def draw_phi_scaled(sc: dict, sigma: np.ndarray, rho: np.ndarray, lam_a: float,
                    lam_phi: np.ndarray, v: np.ndarray, rng: np.random.Generator,
                    use_native: bool = True) -> np.ndarray:
    """Exact conditional draws of phi with per-unit precision scales (``sc``: the
    ``design.scaled`` cross-products; ``v``: draws x classes precisions), in C where it
    builds (and ``use_native``), else :func:`.marginal_likelihood_numba.scaled_draw_phi_nb`;
    one standard normal (draws x p) array from ``rng`` either way (same seed, same draws)."""
    fns = native_draws() if use_native else None
    if fns is None:
        with threadpool_limits(1):
            return scaled_draw_phi_nb(sc, sigma, rho, lam_a, lam_phi, v, rng)
    lam_phi = np.ascontiguousarray(lam_phi, dtype=float)
    z = rng.standard_normal(lam_phi.shape)
    arrays = list(scaled_args(sc)[:6])  # basis, Q, G, T, w, cls
    v = np.ascontiguousarray(v, dtype=float)
    hyper = _contiguous(sigma, rho) + [lam_phi, v, z]
    _, Q, _, T, _, _ = arrays
    with threadpool_limits(1):
        return _draws_c(fns[2], (lam_phi.shape[1], v.shape[1], len(T), int(len(Q) > 0)),
                        arrays, lam_a, hyper)
