"""Exact efficiency draws ``exp(-u)`` given posterior draws of a frontier's parameters, computed
block by block.

For ``S`` parameter draws and ``N`` rows there are ``S x N`` efficiency draws (21M for the LCCP
panel at 4 x 1000). Written as whole-array NumPy expressions, each step of the formula
(residuals, conditional law, log-cdf, inverse cdf, exp) allocates an ``S x N`` temporary, and
the time goes to memory traffic and page faults rather than arithmetic. Here a block of draws
small enough to stay in cache goes through the same formulas (:mod:`._sfa_math`) and lands in
one preallocated output; blocks run on a thread pool (NumPy and scipy.special release the GIL).
Uniforms are taken from the generator in draw order, block after block, so the draws are
those of the whole-array computation (same stream, same formulas; the matrix product of
the residuals may round differently in the last bit).

>>> import numpy as np
>>> y, X = np.array([1.0, 1.2, 0.9]), np.ones((3, 1))
>>> out = cross_section_draws(y, X, 1, np.array([[1.3], [1.4]]), np.array([0.1, 0.1]),
...                           np.array([0.3, 0.3]), np.zeros(2), "half_normal",
...                           np.random.default_rng(0))
>>> out.shape, bool(np.allclose(out[:, 0], out[:, 1:].mean(axis=1)))
((2, 4), True)
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from . import _sfa_math as m

__all__ = ["cross_section_draws", "panel_draws"]

#: values per block (~1 MB of float64): the block's temporaries stay in the L2 cache
BLOCK_VALUES = 1 << 17


def _blocks(n_draws: int, width: int):
    rows = max(1, BLOCK_VALUES // max(width, 1))
    return [(s, min(n_draws, s + rows)) for s in range(0, n_draws, rows)]


def _run(work, blocks, draw_uniforms) -> None:
    """``work(s0, s1, q)`` for each block on up to ``os.cpu_count()`` threads (BLAS stays
    single-threaded: the blocks already use the cores). The uniforms ``q`` of each block are
    drawn here, in block order, with at most two blocks per thread waiting."""
    workers = min(os.cpu_count() or 1, 4, len(blocks))
    with threadpool_limits(1):
        if workers <= 1:
            for s0, s1 in blocks:
                work(s0, s1, draw_uniforms(s1 - s0))
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending = deque()
            for s0, s1 in blocks:
                if len(pending) >= 2 * workers:
                    pending.popleft().result()
                pending.append(pool.submit(work, s0, s1, draw_uniforms(s1 - s0)))
            for future in pending:
                future.result()


def cross_section_draws(y, X, sign, beta, sv, su, mu, distribution, rng):
    """``(S, N + 1)`` array: column 0 the mean efficiency over rows, then ``exp(-u)`` per row,
    ``u ~ N+(mu_star, s_star^2)`` given each draw's residuals (one uniform per row and draw,
    the stream of ``rng.uniform(size=(S, N))``)."""
    n_draws, n = beta.shape[0], len(y)
    out = np.empty((n_draws, n + 1))
    xt = np.ascontiguousarray(X.T)

    def work(s0, s1, q):
        e = sign * (y[None, :] - beta[s0:s1] @ xt)
        mu_s, s_s = m.conditional_cross(e, sv[s0:s1, None], su[s0:s1, None], distribution,
                                        mu[s0:s1, None])
        eff = np.exp(-m.u_quantile(mu_s, s_s, q))
        out[s0:s1, 1:] = eff
        out[s0:s1, 0] = eff.mean(axis=1)

    _run(work, _blocks(n_draws, n), lambda rows: rng.uniform(size=(rows, n)))
    return out


def panel_draws(y, X, sign, unit_idx, n_units, dt, beta, sv, su, mu, eta, rng):
    """As :func:`cross_section_draws` for ``u_it = exp(-eta dt_it) u_i``: ``u_i`` drawn once
    per unit and draw from its law given all the unit's residuals (Battese-Coelli 1992;
    uniforms: the stream of ``rng.uniform(size=(S, n_units))``)."""
    n_draws, n = beta.shape[0], len(y)
    out = np.empty((n_draws, n + 1))
    xt = np.ascontiguousarray(X.T)
    # per-unit sums as a sparse product (the dense one-hot product is S x N x n_units flops)
    to_units = sparse.csr_matrix((np.ones(n), (unit_idx, np.arange(n))), shape=(n_units, n))

    def work(s0, s1, q):
        e = sign * (y[None, :] - beta[s0:s1] @ xt)
        scale = np.exp(-eta[s0:s1, None] * dt[None, :])
        mu_star, s_star = m.panel_conditional_from_sums(
            (to_units @ (scale * e).T).T, (to_units @ (scale**2).T).T, sv[s0:s1, None],
            su[s0:s1, None], mu[s0:s1, None])
        eff = np.exp(-(scale * m.u_quantile(mu_star, s_star, q)[:, unit_idx]))
        out[s0:s1, 1:] = eff
        out[s0:s1, 0] = eff.mean(axis=1)

    _run(work, _blocks(n_draws, n), lambda rows: rng.uniform(size=(rows, n_units)))
    return out
