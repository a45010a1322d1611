"""AR(1) noise of BayesianSyntheticControl (issue 14 item 4), no sampling.

* the Prais-Winsten marginal likelihood of the PyMC graph equals the one written with the
  AR(1) covariance matrix (a multivariate t after integrating sigma^2 and b), up to a
  constant, over random weights and rho, with and without the intercept;
* the conditional draws of sigma and b match the GLS formulas; at rho = 0 the iid ones;
* the post-period noise paths continue the last pre-period residual with the AR(1)
  mean and variance; pre-period paths are stationary;
* options, config and errors.
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytest

from bayesdid import Panel
from bayesdid.datasets.simulate_pilot import simulate_pilot_zones
from bayesdid.errors import BayesDidError, DesignError
from bayesdid.synthetic.bayes_pooled import prepare_design
from bayesdid.synthetic.bayes_synth import BayesianSyntheticControl
from bayesdid.synthetic.bayes_synth_ar1 import ar1_conditionals, ar1_noise_paths, prefix_masks

PY_MODE = pytensor.compile.mode.Mode(linker="py", optimizer="fast_compile")  # no C build


@pytest.fixture(scope="module")
def pilot():
    sim = simulate_pilot_zones(treated=2, random_seed=7, noise_rho=0.5)
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


def _ar1_cov(n: int, rho: float, kappa2: float) -> np.ndarray:
    """Cov of the residual over sigma^2: stationary AR(1) plus the integrated level b."""
    lag = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    return rho**lag / (1 - rho**2) + kappa2 * np.ones((n, n))


@pytest.mark.model
@pytest.mark.parametrize("intercept", [False, True])
def test_marginal_likelihood_equals_the_covariance_form(pilot, intercept):
    est = BayesianSyntheticControl(intercept=intercept)
    design = est.prepare(pilot)
    model = est._build(design)
    assert [v.name for v in model.free_RVs] == ["w_gamma", "noise_rho_beta"]
    f = model.compile_fn(model["marginal_loglik"],
                         inputs=[model["w_gamma"], model["noise_rho_beta"]], mode=PY_MODE)
    a0, b0, kappa2 = est._priors()
    rng = np.random.default_rng(1)
    diffs = []
    for _ in range(6):
        g = rng.gamma(0.3, size=(2, design.n_donors)) + 1e-3
        u = rng.uniform(0.03, 0.97, size=2)
        got = float(f({"w_gamma": g, "noise_rho_beta": u}))
        w, rho = g / g.sum(axis=1, keepdims=True), 2 * u - 1
        expected = 0.0
        for k in range(2):
            pre = design.pre[:, k]
            r = design.y[pre, k] - design.X[pre, k] @ w[k]
            # r | sigma^2 ~ N(0, sigma^2 M); sigma^2 ~ InvGamma(a0, b0) -> multivariate t
            M = _ar1_cov(pre.sum(), rho[k], kappa2)
            _, logdet = np.linalg.slogdet(M)
            expected += (-0.5 * logdet
                         - (a0 + pre.sum() / 2) * np.log(b0 + r @ np.linalg.solve(M, r) / 2))
        diffs.append(got - expected)
    # equal up to a constant (+1/2 log kappa2 per unit with an intercept, else 0)
    const = 0.5 * np.log(kappa2) * 2 if intercept else 0.0
    np.testing.assert_allclose(diffs, const, atol=1e-8)


@pytest.mark.unit
def test_conditional_draws_of_sigma_and_b_are_the_gls_ones():
    rng = np.random.default_rng(2)
    T, n, rho, kappa2, a0, b0 = 9, 7, 0.6, 4.0, 1.0, 0.01
    pre = np.zeros((T, 1), bool)
    pre[:n] = True
    r = np.where(pre.T, rng.normal(size=(1, T)).cumsum(axis=1) + 0.8, 0.0)
    S = 200_000
    resid = np.broadcast_to(r, (S, 1, T))
    sigma, b = ar1_conditionals(resid, pre, np.full((S, 1), rho), a0=a0, b0=b0,
                                kappa2=kappa2, rng=rng)
    # closed forms from the AR(1) correlation matrix R (GLS): b | sigma, r is normal with
    # mean 1'R^-1 r / (1'R^-1 1 + 1/kappa2); sigma^2 | r is InvGamma(a0 + n/2, b0 + Q/2)
    Rinv = np.linalg.inv(_ar1_cov(n, rho, 0.0))
    x, one = r[0, :n], np.ones(n)
    prec = one @ Rinv @ one + 1 / kappa2
    b_mean = one @ Rinv @ x / prec
    q = x @ Rinv @ x - (one @ Rinv @ x) ** 2 / prec
    assert b.mean() == pytest.approx(b_mean, abs=4 * b.std() / np.sqrt(S))
    inv_s2 = 1 / sigma[:, 0] ** 2
    assert inv_s2.mean() == pytest.approx((a0 + n / 2) / (b0 + q / 2), rel=0.01)
    # rho = 0: the iid formulas (mean of r shrunk by the prior, rss about it)
    sigma0, b0_draws = ar1_conditionals(resid, pre, np.zeros((S, 1)), a0=a0, b0=b0,
                                        kappa2=kappa2, rng=rng)
    assert b0_draws.mean() == pytest.approx(x.sum() / (n + 1 / kappa2), abs=0.01)
    rss = x @ x - x.sum() ** 2 / (n + 1 / kappa2)
    assert (1 / sigma0**2).mean() == pytest.approx((a0 + n / 2) / (b0 + rss / 2), rel=0.01)


@pytest.mark.unit
def test_noise_paths_continue_the_last_residual():
    rng = np.random.default_rng(3)
    S, T, n_pre, rho, sigma, last = 200_000, 10, 6, 0.7, 0.5, 1.3
    paths = ar1_noise_paths(np.full((S, 1), last), np.array([n_pre]), np.full((S, 1), rho),
                            np.full((S, 1), sigma), T, rng)[:, 0]
    # pre-periods: a stationary replicate
    np.testing.assert_allclose(paths[:, :n_pre].std(axis=0), sigma / np.sqrt(1 - rho**2),
                               rtol=0.01)
    assert abs(np.corrcoef(paths[:, 2], paths[:, 3])[0, 1] - rho) < 0.01
    # post-periods: the mean over h = 4 post years, given the last pre-period residual
    h = T - n_pre
    mean_post = paths[:, n_pre:].mean(axis=1)
    expected_mean = last * sum(rho**j for j in range(1, h + 1)) / h
    # the mean of an AR(1) continuation: sum_j z_j * (sum_{i<=h-j} rho^i) sigma / h
    expected_var = sigma**2 / h**2 * sum(sum(rho**i for i in range(h - j + 1)) ** 2
                                         for j in range(1, h + 1))
    assert mean_post.mean() == pytest.approx(expected_mean, abs=0.005)
    assert mean_post.var() == pytest.approx(expected_var, rel=0.02)
    # the same variance with iid noise is sigma^2 / h: persistence widens the ATT interval
    assert expected_var > 2.2 * sigma**2 / h


@pytest.mark.unit
def test_options_config_and_errors(pilot):
    ar1, iid = BayesianSyntheticControl(), BayesianSyntheticControl(noise="iid")
    assert ar1.config()["noise"] == "ar1" and iid.config()["noise"] == "iid"
    assert ar1.config()["priors"]["rho_concentration"] == 0.5  # Jeffreys
    assert [v.name for v in iid.build(pilot).free_RVs] == ["w_gamma"]
    assert "noise_rho" in ar1.build(pilot).named_vars
    with pytest.raises(BayesDidError, match="noise must be one of"):
        BayesianSyntheticControl(noise="ar2")
    # pre-periods that are not the first periods: the AR(1) cannot be written; iid can
    rng = np.random.default_rng(0)
    y = rng.normal(size=(8, 4)).cumsum(axis=0)
    pre = np.zeros((8, 1), bool)
    pre[[0, 1, 2, 4, 5]] = True
    design = prepare_design(y[:, :1], y[:, 1:], np.array([[0, 1, 2]]), pre,
                            times=np.arange(8), targets=("a",), donor_units=("b", "c", "d"),
                            outcome="y", per_donor_scale=False)
    with pytest.raises(DesignError, match="consecutive"):
        ar1._build(design)
    with pytest.raises(DesignError, match="consecutive"):
        ar1._user_data(design)
    iid._build(design)
    first, rest = prefix_masks(np.array([[1, 1], [1, 1], [0, 1]], bool))
    assert first.sum(axis=0).tolist() == [1, 1] and rest.sum(axis=0).tolist() == [1, 2]
