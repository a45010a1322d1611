"""Block-wise efficiency draws (efficiency/_efficiency_draws.py) equal the whole-array
formulas of _sfa_math (to rounding): same uniforms, same conditional law, on one thread or
several."""

from __future__ import annotations

import numpy as np
import pytest

from bayesdid.efficiency import _efficiency_draws as ed
from bayesdid.efficiency import _sfa_math as m


def _params(n_draws=37, n=50, k=3, seed=0):
    r = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), r.normal(size=(n, k - 1))])
    y = X @ np.array([1.0, 0.5, -0.3]) + 0.1 * r.normal(size=n) - np.abs(0.3 * r.normal(size=n))
    beta = np.array([1.2, 0.5, -0.3]) + 0.02 * r.normal(size=(n_draws, k))
    return (y, X, beta, 0.08 + 0.02 * r.random(n_draws), 0.25 + 0.05 * r.random(n_draws),
            0.1 * r.random(n_draws), 0.05 * r.normal(size=n_draws))


@pytest.fixture(params=["one_thread", "threads"])
def small_blocks(request, monkeypatch):
    """Blocks of a few draws, so the data span many blocks (and threads, when allowed)."""
    monkeypatch.setattr(ed, "BLOCK_VALUES", 120)
    if request.param == "one_thread":
        monkeypatch.setattr(ed.os, "cpu_count", lambda: 1)
    else:
        monkeypatch.setattr(ed.os, "cpu_count", lambda: 3)


@pytest.mark.unit
@pytest.mark.parametrize("distribution", ["half_normal", "truncated_normal", "exponential"])
@pytest.mark.parametrize("sign", [1, -1])
def test_cross_section_blocks_equal_whole_array(small_blocks, distribution, sign):
    y, X, beta, sv, su, mu, _ = _params()
    got = ed.cross_section_draws(y, X, sign, beta, sv, su, mu, distribution,
                                 np.random.default_rng(4))
    e = sign * (y[None, :] - beta @ X.T)
    mu_s, s_s = m.conditional_cross(e, sv[:, None], su[:, None], distribution, mu[:, None])
    eff = np.exp(-m.draw_u(mu_s, s_s, np.random.default_rng(4)))
    # equal up to the last bit of the matrix product (BLAS kernels differ by block shape)
    np.testing.assert_allclose(got[:, 1:], eff, rtol=1e-13)
    np.testing.assert_allclose(got[:, 0], eff.mean(axis=1), rtol=1e-13)


@pytest.mark.unit
def test_panel_blocks_equal_whole_array(small_blocks):
    y, X, beta, sv, su, mu, eta = _params()
    unit_idx = np.repeat(np.arange(10), 5)[np.random.default_rng(1).permutation(50)]
    dt = -np.tile(np.arange(5.0), 10)
    got = ed.panel_draws(y, X, -1, unit_idx, 10, dt, beta, sv, su, mu, eta,
                         np.random.default_rng(6))
    e = -(y[None, :] - beta @ X.T)
    scale = np.exp(-eta[:, None] * dt[None, :])
    rng = np.random.default_rng(6)
    want = np.empty_like(e)
    for s in range(len(beta)):   # the per-draw formula of _sfa_math, one draw at a time
        mu_i, s_i = m.panel_conditional(e[s], unit_idx, scale[s], 10, sv[s], su[s], mu[s])
        q = rng.uniform(size=(1, 10))[0]   # the stream of uniform(size=(S, n_units))
        want[s] = np.exp(-scale[s] * m.u_quantile(mu_i, s_i, q)[unit_idx])
    np.testing.assert_allclose(got[:, 1:], want, rtol=1e-13)
    np.testing.assert_allclose(got[:, 0], want.mean(axis=1), rtol=1e-13)


@pytest.mark.unit
def test_row_std_in_blocks_is_numpy_std():
    from bayesdid.bayes.result import _row_std

    draws = np.random.default_rng(2).random((4, 300, 700))   # (chain, draw, effect)
    flat = draws.reshape(1200, 700).T                         # the strided view _summarise has
    np.testing.assert_array_equal(_row_std(flat, rows=64), flat.std(axis=1, ddof=1))
