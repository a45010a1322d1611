"""The compiled sampling path of BayesianSyntheticControl (disk-cached numba density + nutpie).

* the hand-written log density and gradient equal PyMC's logp / dlogp at random points,
  with and without the intercept, for one and two treated units, with AR(1) and iid noise;
* a model the density does not implement is refused (the fit then falls back to PyMC);
* nutpie and PyMC's NUTS sample the same posterior (the ATT and the AR(1) coefficient
  within 4 Monte Carlo standard errors), results have the same form, and nutpie's draws
  repeat with the seed.
"""

from __future__ import annotations

import warnings

import arviz_stats as azs
import numpy as np
import pymc as pm
import pytensor
import pytest

from bayesdid import Panel
from bayesdid.bayes.sampling import nutpie_installed
from bayesdid.datasets.simulate_pilot import simulate_pilot_zones
from bayesdid.synthetic.bayes_pooled import prepare_design
from bayesdid.synthetic.bayes_synth import BayesianSyntheticControl, SynthPriors
from bayesdid.synthetic.bayes_synth_nutpie import (
    UnsupportedModel,
    compile_synth_nutpie,
    synth_logp_grad,
)


PY_MODE = pytensor.compile.mode.Mode(linker="py", optimizer="fast_compile")  # no C build


@pytest.fixture(scope="module", params=[1, 2], ids=["1 treated", "2 treated"])
def panel(request):
    sim = simulate_pilot_zones(treated=request.param, random_seed=3)
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


def _check_against_pymc(est, design, points):
    """The compiled logp and gradient against PyMC's at ``points`` (dicts of value
    variables). PyMC constant-folds ``gammaln`` of the Beta prior's normaliser to ~1e-8
    (pytensor's Python scalar impl); the compiled density uses the exact ``math.lgamma``,
    so the log density is compared up to one constant offset, itself below 1e-7 per unit."""
    model = est._build(design)
    buf = est._user_data(design)
    logp, dlogp = model.compile_logp(mode=PY_MODE), model.compile_dlogp(mode=PY_MODE)
    names = [model.rvs_to_values[rv].name for rv in model.free_RVs]
    offsets = []
    for point in points(model, names):
        x = np.concatenate([point[n].reshape(-1) for n in names])
        value, grad = synth_logp_grad(x, buf)
        offsets.append(value - float(logp(point)))
        np.testing.assert_allclose(grad, dlogp(point), rtol=1e-10, atol=1e-8)
    assert abs(offsets[0]) < 1e-7 * design.n_targets
    np.testing.assert_allclose(offsets, offsets[0], rtol=0, atol=1e-8)
    return model


@pytest.mark.model
@pytest.mark.parametrize("noise", ["ar1", "iid"])
@pytest.mark.parametrize("intercept", [False, True])
def test_compiled_density_equals_the_pymc_model(panel, intercept, noise):
    # the default Jeffreys prior on rho, and Beta(2, 2) on (rho + 1) / 2 with the intercept
    priors = SynthPriors(rho_concentration=2.0 if intercept else 0.5)
    est = BayesianSyntheticControl(intercept=intercept, noise=noise, priors=priors)
    design = est.prepare(panel)
    rng = np.random.default_rng(0)

    def points(model, names):
        base = model.initial_point()
        assert base[names[0]].shape == (len(design.targets), design.n_donors)
        for scale in (0.5, 2.0, 6.0):  # 6: weights spread over many orders of magnitude
            # the AR(1) coordinate logit((rho + 1) / 2) up to +-6: rho up to 0.995
            yield {n: base[n] + rng.normal(0, scale if n.startswith("w") else 2.0,
                                           base[n].shape) for n in names}

    model = _check_against_pymc(est, design, points)
    assert len(model.free_RVs) == (2 if noise == "ar1" else 1)


@pytest.mark.model
@pytest.mark.parametrize("noise", ["ar1", "iid"])
@pytest.mark.parametrize("intercept", [False, True])
def test_compiled_density_with_staggered_pre_periods_and_per_target_donors(intercept, noise):
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
    est = BayesianSyntheticControl(intercept=intercept, noise=noise)

    def points(model, names):
        for _ in range(3):
            yield {n: rng.normal(0, 2, (D, D - 1) if n.startswith("w") else (D,))
                   for n in names}

    _check_against_pymc(est, design, points)


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
    ra, rb = (post[s]["noise_rho"].sel(unit=post[s]["unit"].values[0])
              for s in ("nutpie", "pymc"))  # the AR(1) coefficient (noise="ar1", default)
    mcse = np.hypot(float(azs.mcse(ra)), float(azs.mcse(rb)))
    assert abs(float(ra.mean()) - float(rb.mean())) < 4 * mcse
    assert abs(float(ra.std()) / float(rb.std()) - 1) < 0.15


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
