"""The compiled sampling path of BayesianSyntheticControl (disk-cached numba density + nutpie).

* the hand-written log density and gradient equal PyMC's logp / dlogp at random points,
  with and without the intercept, for one and two treated units;
* a model the density does not implement is refused (the fit then falls back to PyMC);
* nutpie and PyMC's NUTS sample the same posterior (the ATT within 4 Monte Carlo standard
  errors), results have the same form, and nutpie's draws repeat with the seed.
"""

from __future__ import annotations

import warnings

import arviz_stats as azs
import numpy as np
import pymc as pm
import pytest

from bayesdid import Panel
from bayesdid.bayes.sampling import nutpie_installed
from bayesdid.datasets.simulate_pilot import simulate_pilot_zones
from bayesdid.synthetic.bayes_pooled import prepare_design
from bayesdid.synthetic.bayes_synth import BayesianSyntheticControl
from bayesdid.synthetic.bayes_synth_nutpie import (
    UnsupportedModel,
    compile_synth_nutpie,
    synth_logp_grad,
)


@pytest.fixture(scope="module", params=[1, 2], ids=["1 treated", "2 treated"])
def panel(request):
    sim = simulate_pilot_zones(treated=request.param, random_seed=3)
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


@pytest.mark.model
@pytest.mark.parametrize("intercept", [False, True])
def test_compiled_density_equals_the_pymc_model(panel, intercept):
    est = BayesianSyntheticControl(intercept=intercept)
    design = est.prepare(panel)
    model = est._build(design)
    buf = est._user_data(design)
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    name = model.rvs_to_values[model.free_RVs[0]].name
    base = model.initial_point()[name]
    assert base.shape == (len(design.targets), design.n_donors)
    rng = np.random.default_rng(0)
    for scale in (0.5, 2.0, 6.0):  # 6: weights spread over many orders of magnitude
        z = base + rng.normal(0, scale, base.shape)
        value, grad = synth_logp_grad(z.reshape(-1), buf)
        ref = dlogp({name: z})
        assert value == pytest.approx(float(logp({name: z})), rel=1e-12, abs=1e-8)
        np.testing.assert_allclose(grad, ref, rtol=1e-10, atol=1e-8)


@pytest.mark.model
@pytest.mark.parametrize("intercept", [False, True])
def test_compiled_density_with_staggered_pre_periods_and_per_target_donors(intercept):
    # the placebo layout: each target has its own donors (the others) and here its own
    # pre-period length; post-period outcomes are NaN-free but must not enter the density
    rng = np.random.default_rng(5)
    T, D = 14, 5
    y_donors = rng.normal(size=(T, D)).cumsum(axis=0)
    pre = np.zeros((T, D), bool)
    for k in range(D):
        pre[:6 + k, k] = True
    others = np.array([[d for d in range(D) if d != k] for k in range(D)])
    design = prepare_design(y_donors, y_donors, others, pre, times=np.arange(T),
                            targets=tuple(range(D)), donor_units=tuple(range(D)),
                            outcome="y", per_donor_scale=False)
    est = BayesianSyntheticControl(intercept=intercept)
    model = est._build(design)
    buf = est._user_data(design)
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    name = model.rvs_to_values[model.free_RVs[0]].name
    for _ in range(3):
        z = rng.normal(0, 2, (D, D - 1))
        value, grad = synth_logp_grad(z.reshape(-1), buf)
        assert value == pytest.approx(float(logp({name: z})), rel=1e-12, abs=1e-8)
        np.testing.assert_allclose(grad, dlogp({name: z}), rtol=1e-10, atol=1e-8)


@pytest.mark.model
def test_compiled_density_refuses_a_model_it_does_not_implement(panel):
    est = BayesianSyntheticControl()
    design = est.prepare(panel)
    buf = est._user_data(design)
    with pm.Model() as other:
        pm.Normal("w_gamma", shape=(len(design.targets), design.n_donors))
    with pytest.raises(UnsupportedModel, match="w_gamma"):
        compile_synth_nutpie(other, buf)
    wrong = buf.copy()
    wrong[3] += 1  # the buffer's donor count differs from the model's
    with pytest.raises(UnsupportedModel, match="shape"):
        compile_synth_nutpie(est._build(design), wrong)


# ----------------------------------------------------------------------------- sampling
needs_nutpie = pytest.mark.skipif(not nutpie_installed(), reason="nutpie not installed")
FIT = dict(draws=1000, tune=500, chains=2, progress=False, random_seed=21)


@pytest.fixture(scope="module")
def both_fits():
    sim = simulate_pilot_zones(treated=1, random_seed=3)
    small = Panel.from_frame(sim.data, **sim.panel_kwargs)
    est = BayesianSyntheticControl(intercept=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {s: est.fit(small, sampler=s, **FIT) for s in ("nutpie", "pymc")}


@needs_nutpie
@pytest.mark.sampling
def test_nutpie_and_pymc_sample_the_same_posterior(both_fits):
    post = {s: r.idata.posterior for s, r in both_fits.items()}
    a = post["nutpie"]["effect"].sel(effect_id="att|overall")
    b = post["pymc"]["effect"].sel(effect_id="att|overall")
    mcse = np.hypot(float(azs.mcse(a)), float(azs.mcse(b)))
    assert abs(float(a.mean()) - float(b.mean())) < 4 * mcse
    assert abs(float(a.std()) / float(b.std()) - 1) < 0.15
    wa, wb = post["nutpie"]["w"].mean(("chain", "draw")), post["pymc"]["w"].mean(("chain", "draw"))
    assert np.abs(wa - wb).max() < 0.05  # posterior-mean weights agree


@needs_nutpie
@pytest.mark.sampling
def test_results_have_the_same_form_on_both_paths(both_fits):
    nut, pym = both_fits["nutpie"], both_fits["pymc"]
    assert nut.info["sampler"] == "nutpie" and pym.info["sampler"] == "pymc"
    assert set(nut.idata.posterior.data_vars) == set(pym.idata.posterior.data_vars)
    assert nut.idata.posterior["w"].dims == pym.idata.posterior["w"].dims
    assert "diverging" in nut.idata.sample_stats and "diverging" in pym.idata.sample_stats
    assert nut.effects().shape == pym.effects().shape


@needs_nutpie
@pytest.mark.sampling
def test_nutpie_draws_repeat_with_the_seed():
    sim = simulate_pilot_zones(treated=2, random_seed=4)
    small = Panel.from_frame(sim.data, **sim.panel_kwargs)
    est = BayesianSyntheticControl()
    kw = dict(draws=60, tune=60, chains=2, progress=False, random_seed=3, sampler="nutpie")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one, two = est.fit(small, **kw), est.fit(small, **kw)
    np.testing.assert_array_equal(one.idata.posterior["w"].values,
                                  two.idata.posterior["w"].values)
    np.testing.assert_array_equal(one.idata.posterior["effect"].values,
                                  two.idata.posterior["effect"].values)
