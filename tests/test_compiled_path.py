"""The compiled sampling path of HierarchicalDiD (numba Op + nutpie) against the reference.

* the nopython value and gradient of the marginal likelihood equal the NumPy reference to
  1e-10 on random hyperparameters (iid and AR(1) designs, balanced and unbalanced panels),
  called directly and through PyTensor's numba backend (no object-mode fallback);
* the batched conditional draws of phi equal the per-draw NumPy loop (same random stream);
* nutpie and PyMC's NUTS sample the same posterior (ATT mean within 4 Monte Carlo standard
  errors, posterior sd within 15%), results have the same form, and nutpie's draws repeat
  with the seed.
"""

from __future__ import annotations

import warnings

import arviz_stats as azs
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from bayesdid import Panel
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.did.hierarchical_model import LAM_FIXED, prior_precision_draws
from bayesdid.did.nutpie_density import (
    UnsupportedModel,
    compile_did_nutpie,
    did_logp_grad,
    pack_user_data,
)
from bayesdid.did.marginal_likelihood import draw_phi, marginal_loglik_grad_np, marginal_loglik_pt
from bayesdid.did.marginal_likelihood_numba import draw_phi_nb, marginal_loglik_grad_nb
from bayesdid.did.priors import DiDPriors
from bayesdid.bayes.sampling import choose_sampler, nutpie_installed
from bayesdid.datasets import simulate_staggered
from bayesdid.errors import BayesDidError

TOL = dict(rtol=1e-10, atol=1e-10)


def _balanced() -> Panel:
    sim = simulate_staggered(n_units=30, years=(2005, 2013), batches={2008: 6, 2010: 6},
                             n_covariates=1, random_seed=4)
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


@pytest.fixture(scope="module", params=["balanced", "unbalanced"])
def panel(request):
    return _balanced() if request.param == "balanced" else request.getfixturevalue("trimmed_panel")


def _random_points(design, errors: str, n: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        sigma = rng.uniform(0.2, 2.0)
        rho = rng.uniform(-0.9, 0.95) if errors == "ar1" else 0.0
        sds = {b.name: rng.uniform(0.05, 3.0, 1) for b in design.random_blocks}
        yield sigma, rho, prior_precision_draws(design, DiDPriors(), sds)[0]


@pytest.mark.model
@pytest.mark.parametrize("errors", ["iid", "ar1"])
def test_numba_value_and_gradient_equal_numpy_reference(panel, errors):
    design = HierarchicalDiD(errors=errors).prepare(panel)
    st = design.stats
    if panel.n_obs < 240:  # the unbalanced panel: several run lengths
        assert len(st["run_lengths"]) > 1
    for sigma, rho, lam_phi in _random_points(design, errors, 6, seed=len(st["basis"])):
        ref = marginal_loglik_grad_np(st, design.n_obs, sigma, rho, LAM_FIXED, lam_phi)
        got = marginal_loglik_grad_nb(st["basis"], st["run_lengths"], st["units_per_length"],
                                      design.n_obs, LAM_FIXED, sigma, rho, lam_phi)
        for r, g in zip(ref, got):
            np.testing.assert_allclose(g, r, **TOL)
    # impossible points give -inf, as in the reference
    assert marginal_loglik_grad_nb(st["basis"], st["run_lengths"], st["units_per_length"],
                                   design.n_obs, LAM_FIXED, 1.0, 1.0, lam_phi)[0] == -np.inf


@pytest.mark.model
def test_op_runs_nopython_under_the_numba_backend(panel):
    """Through PyTensor's numba linker (what nutpie compiles): no object-mode fallback, and
    value and gradient equal the NumPy reference."""
    design = HierarchicalDiD(errors="ar1").prepare(panel)
    s, r, lam = pt.dscalar(), pt.dscalar(), pt.dvector()
    out = marginal_loglik_pt(design.stats, design.n_obs, s, r, LAM_FIXED, lam)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = pytensor.function([s, r, lam], [out, *pytensor.grad(out, [s, r, lam])],
                              mode="NUMBA")
    assert not [w for w in caught if "object mode" in str(w.message)]
    for sigma, rho, lam_phi in _random_points(design, "ar1", 3, seed=1):
        ref = marginal_loglik_grad_np(design.stats, design.n_obs, sigma, rho, LAM_FIXED,
                                      lam_phi)
        got = f(sigma, rho, lam_phi)
        for rv, gv in zip(ref, got):
            np.testing.assert_allclose(gv, rv, **TOL)


@pytest.mark.model
@pytest.mark.parametrize(("errors", "fe"), [("iid", None), ("ar1", None), ("ar1", "year"),
                                            ("ar1", "city + region^year")])
def test_disk_cached_nutpie_density_equals_the_pymc_model(panel, errors, fe):
    """The hand-transformed density nutpie runs (priors, Jacobians, marginal likelihood)
    against PyMC's own log-density and gradient of the same model, in unconstrained space
    (a constant offset below 1e-6 is allowed: NUTS never sees constants); also without a
    unit effect (fe='year': unit precision infinite) and with region x year effects."""
    model_ = HierarchicalDiD(errors=errors, **({"fe": fe} if fe else {}))
    design = model_.prepare(panel)
    model = model_.build(panel)
    buf = pack_user_data(design, model_.priors, errors == "ar1")
    with pytensor.config.change_flags(linker="cvm"):  # the C backend: cached, fast to build
        logp, dlogp = model.compile_logp(), model.compile_dlogp()
    names = [model.rvs_to_values[rv].name for rv in model.free_RVs]
    rng = np.random.default_rng(2)
    for _ in range(5):
        x = rng.normal(0.0, 1.0, len(names))
        x[0] += np.log(0.5)
        point = {n: np.asarray(v) for n, v in zip(names, x)}
        value, grad = did_logp_grad(x, buf)
        assert abs(value - logp(point)) < 1e-6
        np.testing.assert_allclose(grad, dlogp(point), rtol=1e-8, atol=1e-8)


@pytest.mark.model
def test_batched_conditional_draws_equal_the_per_draw_loop(panel):
    design = HierarchicalDiD(errors="ar1").prepare(panel)
    points = list(_random_points(design, "ar1", 7, seed=3))
    sigma = np.array([p[0] for p in points])
    rho = np.array([p[1] for p in points])
    lam_phi = np.stack([p[2] for p in points])
    ref = draw_phi(design.stats, sigma, rho, LAM_FIXED, lam_phi, np.random.default_rng(5))
    got = draw_phi_nb(design.stats, sigma, rho, LAM_FIXED, lam_phi, np.random.default_rng(5))
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.unit
def test_sampler_choice():
    assert choose_sampler("pymc", compiled=True) == "pymc"
    assert choose_sampler("auto", compiled=False) == "pymc"
    assert choose_sampler("auto", compiled=True) == ("nutpie" if nutpie_installed() else "pymc")
    with pytest.raises(BayesDidError, match="sampler must be one of"):
        choose_sampler("stan", compiled=True)
    with pytest.raises(BayesDidError, match="sampler must be one of"):
        HierarchicalDiD().fit(_balanced(), sampler="numpyro")


@pytest.mark.model
def test_compiled_density_refuses_a_model_it_does_not_implement():
    """A model whose free variables differ (here: AR(1) model, iid density) is refused, so
    fit() falls back to nutpie through pm.sample instead of sampling a wrong density."""
    panel = _balanced()
    model_ = HierarchicalDiD(errors="ar1")
    design = model_.prepare(panel)
    with pytest.raises(UnsupportedModel, match="rho"):
        compile_did_nutpie(model_.build(panel), design, model_.priors, "iid")


# ----------------------------------------------------------------------------- sampling
needs_nutpie = pytest.mark.skipif(not nutpie_installed(), reason="nutpie not installed")
FIT = dict(draws=1000, tune=600, chains=2, progress=False)


@pytest.fixture(scope="module")
def sim_panel():
    sim = simulate_staggered(n_units=20, years=(2005, 2012), batches={2008: 5, 2010: 4},
                             random_seed=8)
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


@pytest.fixture(scope="module")
def both_fits(sim_panel):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HierarchicalDiD(pool=("cohort",))
        return {s: model.fit(sim_panel, random_seed=21, sampler=s, **FIT)
                for s in ("nutpie", "pymc")}


def _att(res):
    return res.idata.posterior["effect"].sel(effect_id="att|overall")


@needs_nutpie
@pytest.mark.sampling
def test_nutpie_and_pymc_sample_the_same_posterior(both_fits):
    a, b = _att(both_fits["nutpie"]), _att(both_fits["pymc"])
    mcse = np.hypot(float(azs.mcse(a)), float(azs.mcse(b)))
    assert abs(float(a.mean()) - float(b.mean())) < 4 * mcse
    assert abs(float(a.std()) / float(b.std()) - 1) < 0.15
    for name in ("sigma", "rho"):
        x, y = (both_fits[s].idata.posterior[name] for s in ("nutpie", "pymc"))
        assert abs(float(x.mean()) - float(y.mean())) < 4 * np.hypot(float(azs.mcse(x)),
                                                                    float(azs.mcse(y)))


@needs_nutpie
@pytest.mark.sampling
def test_results_have_the_same_form_on_both_paths(both_fits):
    nut, pym = both_fits["nutpie"], both_fits["pymc"]
    assert nut.info["sampler"] == "nutpie" and pym.info["sampler"] == "pymc"
    assert set(nut.info["convergence"]) == set(pym.info["convergence"])
    assert list(nut.diagnostics(warn=False).columns) == list(pym.diagnostics(warn=False).columns)
    assert set(nut.idata.posterior.data_vars) == set(pym.idata.posterior.data_vars)
    assert "diverging" in nut.idata.sample_stats and "diverging" in pym.idata.sample_stats
    assert nut.effects().shape == pym.effects().shape


@needs_nutpie
@pytest.mark.sampling
def test_nutpie_draws_repeat_with_the_seed(sim_panel):
    kw = dict(draws=60, tune=60, chains=2, progress=False, random_seed=3, sampler="nutpie")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = HierarchicalDiD(pool=("cohort",)).fit(sim_panel, **kw)
        two = HierarchicalDiD(pool=("cohort",)).fit(sim_panel, **kw)
    np.testing.assert_array_equal(one.idata.posterior["effect"].values,
                                  two.idata.posterior["effect"].values)


@pytest.mark.model
def test_compiled_density_is_minus_infinity_far_in_the_tails(panel):
    """Leapfrog steps can land where sigma underflows, rho rounds to +-1 or a pooling sd to
    0 or inf: the density must be -inf there (a divergence), never raise. Raising inside
    nutpie's C callback is swallowed ('Exception ignored'), leaving the outputs undefined;
    a zoo run on LCCP-shaped panels printed that 157,437 times and lost a worker."""
    model_ = HierarchicalDiD(errors="ar1")
    design = model_.prepare(panel)
    buf = pack_user_data(design, model_.priors, True)
    n = 2 + len(design.random_blocks)
    for where, value in [(0, -800.0), (0, 800.0), (1, 40.0), (1, -40.0), (2, -400.0),
                         (2, 400.0)]:
        x = np.zeros(n)
        x[where] = value
        logp, _ = did_logp_grad(x, buf)
        assert logp == -np.inf, (where, value, logp)
