"""The block-arrow marginal likelihood (did/block_marginal.py) against the dense one.

* the layout is exact: the cells' groups are not coupled in any cross-product, and the
  compact basis gives the dense cross-products on every block kept;
* value and gradient equal :func:`marginal_loglik_grad_nb` to 1e-10 on random
  hyperparameters (event study with leads, default cells, iid / AR(1), balanced and
  unbalanced panels, without unit effects, with region x year fixed or random effects),
  and nutpie's
  callback gives the same density and gradient on the block and the dense buffer;
* the conditional draws are exact: with z = 0 the draw is the conditional mean, and the
  map z -> draw has covariance H^-1 (so the draws have the dense path's distribution);
  same seed, same draws;
* a design without the structure keeps the dense path; the layout is the cheapest
  candidate by the cost model, and pooled region x year effects stay in the tail (their
  region's group) instead of filling the dense head;
* nutpie (block kernel) and PyMC's NUTS sample the same event-study posterior.
"""

from __future__ import annotations

import warnings

import arviz_stats as azs
import numpy as np
import pytest

from bayesdid import Panel
from bayesdid.bayes.sampling import nutpie_installed
from bayesdid.datasets import simulate_staggered
from bayesdid.did.block_marginal import (
    _candidate_tails,
    _merged_weights,
    block_draw_batch_nb,
    block_layout,
    block_loglik_grad_nb,
    draw_phi_block,
    layout_arrays,
    layout_cost,
)
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.did.hierarchical_model import prior_precision_draws, unit_precision
from bayesdid.did.marginal_likelihood import conditional_np
from bayesdid.did.marginal_likelihood_numba import _weights, marginal_loglik_grad_nb
from bayesdid.did.nutpie_density import did_logp_grad, pack_user_data
from bayesdid.did.priors import DiDPriors

TOL = dict(rtol=1e-10, atol=1e-10)


@pytest.fixture(autouse=True)
def small_designs_too(monkeypatch):
    """The test designs are small (p < MIN_P): use the block layout for them anyway."""
    monkeypatch.setattr("bayesdid.did.block_marginal.MIN_P", 0)


@pytest.fixture(scope="module")
def event_panel() -> Panel:
    sim = simulate_staggered(n_units=48, years=(2004, 2014), batches={2008: 8, 2011: 8},
                             n_covariates=1, random_seed=6)
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


CONFIGS = [dict(leads=3), dict(leads=3, errors="iid"), dict(), dict(leads=3, fe="year"),
           dict(leads=3, fe="city + region^year"), dict(leads=3, random_effects="region^year")]


def _points(design, n: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        sds = {b.name: rng.uniform(0.02, 3.0, 1) for b in design.random_blocks}
        yield (rng.uniform(0.2, 2.0), rng.uniform(-0.9, 0.95),
               prior_precision_draws(design, DiDPriors(), sds)[0])


@pytest.mark.model
@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
def test_layout_is_exact(event_panel, cfg):
    design = HierarchicalDiD(**cfg).prepare(event_panel)
    layout = block_layout(design, min_p=0)
    assert layout is not None
    p = design.n_phi
    basis = design.stats["basis"].reshape(-1, p + 1, p + 1)
    assert sorted(np.r_[layout.head, layout.tail]) == list(range(p))
    groups = np.zeros(p, int) - 1
    for g in range(len(layout.starts) - 1):
        groups[layout.tail[layout.starts[g]:layout.starts[g + 1]]] = g
    tail = layout.tail
    other = groups[tail][:, None] != groups[tail][None, :]
    assert np.all(basis[:, tail][:, :, tail][:, other] == 0.0)
    # the compact cross-products at some (rho, sigma^2) are the dense ones on the blocks
    run_lengths, lam_a = design.stats["run_lengths"], unit_precision(design)
    S = (_weights(len(basis), run_lengths, lam_a, 0.3, 0.6)[0][0] @ basis.reshape(
        len(basis), -1)).reshape(p + 1, p + 1)
    Sc = _merged_weights(run_lengths, lam_a, 0.3, 0.6)[0][0] @ layout.basis
    hy = np.r_[layout.head, p]
    blocks = [S[np.ix_(hy, hy)], S[np.ix_(tail, hy)]] + [
        S[np.ix_(tail[a:b], tail[a:b])] for a, b in zip(layout.starts[:-1], layout.starts[1:])]
    np.testing.assert_allclose(Sc, np.concatenate([x.ravel() for x in blocks]), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.model
@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
@pytest.mark.parametrize("which", ["balanced", "unbalanced"])
def test_block_value_and_gradient_equal_the_dense_kernel(event_panel, trimmed_panel, cfg,
                                                         which):
    panel = event_panel if which == "balanced" else trimmed_panel
    design = HierarchicalDiD(**cfg).prepare(panel)
    layout = block_layout(design, min_p=0)
    st, lam_a = design.stats, unit_precision(design)
    for sigma, rho, lam in _points(design, 5, seed=design.n_phi):
        if cfg.get("errors") == "iid":
            rho = 0.0
        ref = marginal_loglik_grad_nb(st["basis"], st["run_lengths"], st["units_per_length"],
                                      design.n_obs, lam_a, sigma, rho, lam)
        got = block_loglik_grad_nb(*layout_arrays(layout), st["run_lengths"],
                                   st["units_per_length"], design.n_obs, lam_a, sigma, rho,
                                   lam)
        for r, g in zip(ref, got):
            np.testing.assert_allclose(g, r, **TOL)
    assert block_loglik_grad_nb(*layout_arrays(layout), st["run_lengths"],
                                st["units_per_length"], design.n_obs, lam_a, 1.0, 1.0,
                                lam)[0] == -np.inf


@pytest.mark.model
@pytest.mark.parametrize("errors", ["iid", "ar1"])
def test_nutpie_callback_is_the_same_on_both_layouts(event_panel, errors):
    model_ = HierarchicalDiD(leads=3, errors=errors)
    design = model_.prepare(event_panel)
    dense = pack_user_data(design, model_.priors, errors == "ar1", block=False)
    block = pack_user_data(design, model_.priors, errors == "ar1")
    assert len(block) < len(dense)
    rng = np.random.default_rng(4)
    for _ in range(5):
        x = rng.normal(0.0, 1.0, 2 + (errors == "ar1"))  # log sigma, (rho), log sd_cell
        v_dense, g_dense = did_logp_grad(x, dense)
        v_block, g_block = did_logp_grad(x, block)
        np.testing.assert_allclose(v_block, v_dense, **TOL)
        np.testing.assert_allclose(g_block, g_dense, **TOL)


@pytest.mark.model
def test_block_callback_is_minus_infinity_far_in_the_tails(event_panel):
    """As the dense one (test_compiled_path): -inf where sigma underflows, rho rounds to
    +-1 or the pooling sd to 0 or inf; never an exception inside nutpie's callback."""
    model_ = HierarchicalDiD(leads=3)
    buf = pack_user_data(model_.prepare(event_panel), model_.priors, True)
    assert buf[13] > 0
    for where, value in [(0, -800.0), (0, 800.0), (1, 40.0), (1, -40.0), (2, -400.0),
                         (2, 400.0)]:
        x = np.zeros(3)
        x[where] = value
        assert did_logp_grad(x, buf)[0] == -np.inf, (where, value)


@pytest.mark.model
@pytest.mark.parametrize("cfg", [dict(leads=3), dict(leads=3, fe="year")], ids=str)
def test_block_draws_are_exact(event_panel, cfg):
    design = HierarchicalDiD(**cfg).prepare(event_panel)
    layout = block_layout(design, min_p=0)
    p, lam_a = design.n_phi, unit_precision(design)
    sigma, rho, lam = next(_points(design, 1, seed=11))
    z = np.vstack([np.zeros(p), np.eye(p)])
    n = len(z)
    out = block_draw_batch_nb(*layout_arrays(layout), design.stats["run_lengths"], lam_a,
                              np.full(n, sigma), np.full(n, rho), np.tile(lam, (n, 1)), z)
    H, _, mean, _ = conditional_np(design.stats, sigma, rho, lam_a, lam)
    np.testing.assert_allclose(out[0], mean, rtol=1e-9, atol=1e-9)
    M = (out[1:] - out[0]).T  # column j: the draw's response to z = e_j
    np.testing.assert_allclose(M @ M.T, np.linalg.inv(H), rtol=1e-8, atol=1e-9)


@pytest.mark.model
def test_draw_phi_block_repeats_with_the_seed(event_panel):
    design = HierarchicalDiD(leads=3).prepare(event_panel)
    pts = list(_points(design, 4, seed=2))
    args = (np.array([q[0] for q in pts]), np.array([q[1] for q in pts]),
            unit_precision(design), np.stack([q[2] for q in pts]))
    one = draw_phi_block(design, *args[:2], args[2], args[3], np.random.default_rng(9))
    two = draw_phi_block(design, *args[:2], args[2], args[3], np.random.default_rng(9))
    np.testing.assert_array_equal(one, two)
    assert np.all(np.isfinite(one))


@pytest.mark.model
def test_designs_without_the_structure_keep_the_dense_path(event_panel):
    """Cell groups above ``max_group``, or fewer than ``min_p`` coefficients: no layout;
    ``block=False`` packs nutpie's buffer with the dense basis (header slot 13 = 0)."""
    model_ = HierarchicalDiD(leads=3)
    design = model_.prepare(event_panel)
    assert block_layout(design, max_group=1) is None
    assert block_layout(design, min_p=design.n_phi + 1) is None
    assert pack_user_data(design, model_.priors, True, block=False)[13] == 0
    n_compact = block_layout(design).basis.shape[1]
    assert pack_user_data(design, model_.priors, True)[13] == n_compact


@pytest.mark.model
@pytest.mark.parametrize("leads", [0, 6])
def test_region_year_effects_are_region_groups_not_head(leads):
    """LCCP shape (278 x 19, 4 regions): with ``random_effects="region^year"`` the region-
    year columns join their region's cells (one tail group per region, 43 columns; 58 with
    6 leads, which the former 48-column cap sent with everything else into a 218-column
    head), the head is that of the design without them, and the layout is the cheapest
    of the candidates by :func:`layout_cost`."""
    sim = simulate_staggered(random_seed=0)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    plain = block_layout(HierarchicalDiD(leads=leads).prepare(panel))
    design = HierarchicalDiD(leads=leads, random_effects="region^year").prepare(panel)
    layout = block_layout(design)
    np.testing.assert_array_equal(layout.head, plain.head)
    re_cols = np.arange(design.n_phi)[design.block("re_region_year").slice]
    assert np.isin(re_cols, layout.tail).all()
    assert len(layout.starts) - 1 == 4
    p = design.n_phi
    pattern = np.any(design.stats["basis"].reshape(-1, p + 1, p + 1) != 0.0, axis=0)
    n_rows = layout.basis.shape[0]
    costs = [layout_cost(p - len(c), np.bincount(lab)[np.unique(lab)], n_rows)
             for c, lab in _candidate_tails(pattern, design.random_blocks, 10**6)]
    assert len(costs) > 2
    assert layout_cost(len(layout.head), np.diff(layout.starts), n_rows) == min(costs)


@pytest.mark.sampling
@pytest.mark.skipif(not nutpie_installed(), reason="nutpie not installed")
def test_event_study_posterior_is_the_same_on_nutpie_and_pymc():
    """The compiled path (block kernel) and PyMC's NUTS on the NumPy Op sample the same
    event-study posterior: hyperparameters and the placebo lead within 4 Monte Carlo
    standard errors, posterior sds within 15%."""
    sim = simulate_staggered(n_units=24, years=(2005, 2012), batches={2008: 6, 2010: 5},
                             random_seed=8)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    model_ = HierarchicalDiD(leads=2, pool=("cohort",))
    assert block_layout(model_.prepare(panel)) is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {s: model_.fit(panel, draws=1000, tune=600, chains=2, progress=False,
                              random_seed=21, sampler=s) for s in ("nutpie", "pymc")}
    assert fits["nutpie"].info["sampler"] == "nutpie"
    post = {s: f.idata.posterior for s, f in fits.items()}
    lead = [e for e in post["pymc"]["effect_id"].values if "k=-2" in str(e)][0]
    for get in (lambda p: p["sigma"], lambda p: p["rho"], lambda p: p["sd_cell"],
                lambda p: p["effect"].sel(effect_id=lead),
                lambda p: p["effect"].sel(effect_id="att|overall")):
        a, b = get(post["nutpie"]), get(post["pymc"])
        mcse = np.hypot(float(azs.mcse(a)), float(azs.mcse(b)))
        assert abs(float(a.mean()) - float(b.mean())) < 4 * mcse
        assert abs(float(a.std()) / float(b.std()) - 1) < 0.15
