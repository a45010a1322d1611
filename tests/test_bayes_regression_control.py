"""BayesianRegressionControl: horseshoe graph structure, recovery on the pilot simulator,
coefficients on the original scale, bad inputs."""

import numpy as np
import pytensor
import pytest

from bayesdid import Panel
from bayesdid.synthetic.bayes_regression_control import (
    BayesianRegressionControl,
    RegressionControlPriors,
)
from bayesdid.synthetic.bayes_pooled import SynthResult
from bayesdid.datasets.simulate_pilot import simulate_pilot_zones
from bayesdid.synthetic.donors import donor_pool
from bayesdid.errors import BayesDidError, ConvergenceWarning, DesignError


@pytest.fixture(scope="module")
def pilot():
    sim = simulate_pilot_zones(random_seed=5)
    return sim, Panel.from_frame(sim.data, **sim.panel_kwargs)


@pytest.mark.model
def test_build_is_non_centred_with_named_dims(pilot):
    _, panel = pilot
    est = BayesianRegressionControl()
    model = est.build(panel)
    free = {v.name for v in model.free_RVs}
    assert {"z", "lambda_n", "lambda_ig", "tau_n", "tau_ig", "c2", "a", "sigma_std"} == free
    assert "beta" not in free  # deterministic: z * tau * lambda_tilde
    assert model.named_vars_to_dims["beta"] == ("unit", "donor")
    assert model.named_vars_to_dims["y_pre"] == ("obs",)
    assert len(model.coords["obs"]) == 3 * 13 and len(model.coords["donor"]) == 26
    design = est.prepare(panel)
    pre = design.pre[:, 0]
    # every series standardised by its own pre-period mean and sd
    np.testing.assert_allclose(design.X[pre, 0].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(design.X[pre, 0].std(axis=0), 1.0)
    np.testing.assert_allclose(design.y[pre, 0].std(), 1.0)
    # beta at a point equals the regularised-horseshoe formula
    rng = np.random.default_rng(0)
    names = ["z", "lambda_n", "lambda_ig", "tau_n", "tau_ig", "c2", "sigma_std"]
    shapes = {"z": (3, 26), "lambda_n": (3, 26), "lambda_ig": (3, 26)}
    vals = {n: rng.uniform(0.2, 2.0, size=shapes.get(n, (3,))) for n in names}
    py_mode = pytensor.compile.mode.Mode(linker="py", optimizer="fast_compile")  # no C build
    beta = model.compile_fn(model["beta"], inputs=[model[n] for n in names],
                            mode=py_mode)(vals)
    tau0 = 3 / 23 / np.sqrt(13)
    tau = tau0 * vals["sigma_std"] * vals["tau_n"] * np.sqrt(vals["tau_ig"])
    lam = vals["lambda_n"] * np.sqrt(vals["lambda_ig"])
    c2 = vals["c2"][:, None]
    lt = np.sqrt(c2 * lam**2 / (c2 + tau[:, None] ** 2 * lam**2))
    np.testing.assert_allclose(beta, vals["z"] * tau[:, None] * lt, rtol=1e-10)


@pytest.mark.sampling
def test_pilot_truth_inside_intervals_and_coefficients(pilot):
    sim, panel = pilot
    # 2 x 300 draws do not explore the horseshoe (R-hat, ESS, divergences): it must say so
    with pytest.warns(ConvergenceWarning, match="BayesianRegressionControl"):
        res = BayesianRegressionControl().fit(panel, draws=300, tune=300, chains=2,
                                              random_seed=2, progress=False)
    assert isinstance(res, SynthResult) and res.method == "bayes_regression_control"
    eff = res.effects().set_index(["estimand", "group"])
    for _, row in sim.truth.query("estimand == 'att'").iterrows():
        got = eff.loc[("att", row["group"])]
        assert got["lower"] <= row["value"] <= got["upper"], (row["group"], got.to_dict())
        assert abs(got["estimate"] - row["value"]) < 0.08
    assert ("att_population", "overall") in eff.index
    # original-scale intercept + coefficients reproduce the synthetic mean draw by draw
    post = res.idata.posterior
    pool = donor_pool(panel)
    syn = post["synthetic"].sel(unit="Fujian").values
    rebuilt = (post["intercept"].sel(unit="Fujian").values[..., None]
               + np.einsum("cdk,tk->cdt", post["weight"].sel(unit="Fujian").values,
                           pool.y_donors))
    np.testing.assert_allclose(rebuilt, syn, rtol=1e-8)
    # shrinkage: most coefficients near zero, the pre-period fit close
    coefs = res.weights("Fujian")
    assert (coefs["mean"].abs() < 0.1).mean() > 0.5
    ppc = res.ppc()
    assert (ppc["coverage"] >= 0.75).all() and (ppc["pre_rmspe"] < 0.06).all()


@pytest.mark.unit
def test_bad_inputs(pilot):
    sim, _ = pilot
    df = sim.data.copy()
    df.loc[(df["province"] == "Beijing") & (df["year"] < 2017), "carbon_productivity"] = 1.0
    panel = Panel.from_frame(df, **sim.panel_kwargs)
    with pytest.raises(DesignError, match="Beijing"):
        BayesianRegressionControl().build(panel)
    with pytest.raises(BayesDidError, match="expected_nonzero"):
        BayesianRegressionControl(priors=RegressionControlPriors(expected_nonzero=-1))
    with pytest.raises(DesignError, match="also listed as donors"):
        BayesianRegressionControl().build(
            donor_pool(Panel.from_frame(sim.data, **sim.panel_kwargs),
                       donors=["Fujian", "Beijing"]))
