"""The compiled sampling path of BayesianSFA (disk-cached numba density + nutpie).

* the hand-written log density and gradient equal PyMC's (up to the additive constant) on
  random points, for every distribution x inefficiency form and both frontier signs;
* log Phi and the Mills ratio stay accurate in the far lower tail (against scipy);
* nutpie and PyMC's NUTS sample the same posterior (means within 4 Monte Carlo standard
  errors, sds within 15%), results have the same form, and nutpie's draws repeat with the
  seed.
"""

from __future__ import annotations

import math

import warnings

import arviz_stats as azs
import numpy as np
import pytest
from scipy import special

from bayesdid.bayes.sampling import nutpie_installed
from bayesdid.datasets.simulate_efficiency import simulate_efficiency
from bayesdid.efficiency.bayes_sfa import BayesianSFA
from bayesdid.efficiency.sfa_nutpie_density import (
    UnsupportedModel,
    compile_sfa_nutpie,
    CDF_IS_ONE,
    lcdf_mills,
    sfa_logp_grad,
)


@pytest.fixture(scope="module")
def sim():
    return simulate_efficiency(n_units=20, years=(2005, 2010), batches={2007: 4},
                               random_seed=2)


def _config(sim, dist, ineff, frontier):
    kw = dict(sim.params["sfa_kwargs"])
    if frontier == "cost":  # one output, no undesirable one: a plain cost frontier
        kw.update(y="gdp_pc", undesirable=(), frontier="cost")
    return BayesianSFA(**kw, distribution=dist, inefficiency=ineff)


@pytest.mark.model
@pytest.mark.parametrize("dist,ineff,frontier", [
    ("half_normal", "cross_section", "production"),
    ("truncated_normal", "cross_section", "cost"),
    ("exponential", "cross_section", "production"),
    ("exponential", "cross_section", "cost"),
    ("half_normal", "time_invariant", "cost"),
    ("truncated_normal", "bc92", "production"),
])
def test_compiled_density_equals_the_pymc_model(sim, dist, ineff, frontier):
    cfg = _config(sim, dist, ineff, frontier)
    d = cfg.prepare(sim.data)
    model = cfg._build(d)
    buf = cfg._user_data(d)
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    names = [model.rvs_to_values[rv].name for rv in model.free_RVs]
    rng = np.random.default_rng(0)
    base = model.initial_point()
    offsets = []
    for _ in range(4):
        point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in base.items()}
        x = np.concatenate([np.atleast_1d(point[n]) for n in names])
        value, grad = sfa_logp_grad(x, buf)
        ref = dlogp(point)
        np.testing.assert_allclose(grad, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
        offsets.append(value - logp(point))
    # PyMC's log-normal-cdf is itself accurate to ~1e-6 relative (test_bayes_sfa)
    assert np.ptp(offsets) < 1e-5


@pytest.mark.unit
def test_log_cdf_and_mills_ratio_in_the_tails():
    for z in (-200.0, -45.0, -30.5, -29.5, -8.0, -1.0, 0.0, 2.0, 7.0):
        lcdf, mills = lcdf_mills(z)
        assert lcdf == pytest.approx(special.log_ndtr(z), rel=1e-10, abs=1e-14)
        ref = np.exp(-0.5 * z * z - 0.5 * np.log(2 * np.pi) - special.log_ndtr(z))
        assert mills == pytest.approx(ref, rel=1e-8)


@pytest.mark.unit
def test_shortcut_above_cdf_is_one_gives_the_erfc_numbers_exactly():
    """Above CDF_IS_ONE lcdf_mills skips the erfc: Phi(z) computed by it is exactly 1.0
    there, so both branches give the same bits (checked on a grid through the cut)."""
    import numba

    @numba.njit
    def by_erfc(z):
        cdf = 0.5 * math.erfc(-z * math.sqrt(0.5))
        return cdf, math.log(cdf), math.exp(-0.5 * z * z - 0.5 * math.log(2 * math.pi)) / cdf

    for z in np.r_[np.linspace(CDF_IS_ONE - 0.7, CDF_IS_ONE + 1.0, 20001), 20.0, 38.0, 50.0]:
        cdf, lcdf, mills = by_erfc(z)
        if z > CDF_IS_ONE:
            assert cdf == 1.0
        assert lcdf_mills(z) == (lcdf, mills)


@pytest.mark.model
def test_compiled_density_refuses_a_model_it_does_not_implement(sim):
    cfg = _config(sim, "half_normal", "bc92", "production")
    d = cfg.prepare(sim.data)
    other = _config(sim, "half_normal", "cross_section", "production")
    with pytest.raises(UnsupportedModel, match="eta"):  # buffer says bc92, model has no eta
        compile_sfa_nutpie(other._build(d), cfg._user_data(d), cfg._initvals(d))


# ----------------------------------------------------------------------------- sampling
needs_nutpie = pytest.mark.skipif(not nutpie_installed(), reason="nutpie not installed")
FIT = dict(draws=1000, tune=500, chains=2, progress=False, random_seed=21)


@pytest.fixture(scope="module")
def both_fits(sim):
    # half-normal BC92: the truncated normal's mu is weakly identified on 20 units (heavy
    # posterior tails make a 2000-draw sd comparison noisy); its density is checked above
    cfg = _config(sim, "half_normal", "bc92", "production")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {s: cfg.fit(sim.data, sampler=s, **FIT) for s in ("nutpie", "pymc")}


@needs_nutpie
@pytest.mark.sampling
def test_nutpie_and_pymc_sample_the_same_posterior(both_fits):
    post = {s: r.idata.posterior for s, r in both_fits.items()}
    checks = [("sigma_v", {}), ("sigma_u", {}), ("eta", {}),
              ("beta", {"term": "const"}), ("beta", {"term": "ln_capital"}),
              ("effect", {"effect_id": 0})]   # mean efficiency
    for name, sel in checks:
        a, b = post["nutpie"][name].sel(sel), post["pymc"][name].sel(sel)
        mcse = np.hypot(float(azs.mcse(a)), float(azs.mcse(b)))
        assert abs(float(a.mean()) - float(b.mean())) < 4 * mcse, (name, sel)
        assert abs(float(a.std()) / float(b.std()) - 1) < 0.15, (name, sel)


@needs_nutpie
@pytest.mark.sampling
def test_results_have_the_same_form_on_both_paths(both_fits):
    nut, pym = both_fits["nutpie"], both_fits["pymc"]
    assert nut.info["sampler"] == "nutpie" and pym.info["sampler"] == "pymc"
    assert set(nut.idata.posterior.data_vars) == set(pym.idata.posterior.data_vars)
    assert "diverging" in nut.idata.sample_stats and "diverging" in pym.idata.sample_stats
    assert nut.effects().shape == pym.effects().shape
    assert list(nut.coef_table()["term"]) == list(pym.coef_table()["term"])
    assert nut.efficiency_draws().shape == pym.efficiency_draws().shape


@needs_nutpie
@pytest.mark.sampling
def test_nutpie_draws_repeat_with_the_seed(sim):
    cfg = _config(sim, "half_normal", "cross_section", "production")
    kw = dict(draws=60, tune=60, chains=2, progress=False, random_seed=3, sampler="nutpie")
    one, two = cfg.fit(sim.data, **kw), cfg.fit(sim.data, **kw)
    np.testing.assert_array_equal(one.idata.posterior["effect"].values,
                                  two.idata.posterior["effect"].values)
    np.testing.assert_array_equal(one.idata.posterior["beta"].values,
                                  two.idata.posterior["beta"].values)
