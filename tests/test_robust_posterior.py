"""Cluster-robust (sandwich) posterior of HierarchicalDiD (bayesdid.did.robust_posterior)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bayesdid import Panel
from bayesdid.calibration import robust_redraw
from bayesdid.datasets import simulate_staggered
from bayesdid.did.hierarchical import HierarchicalDiD, RobustFallbackWarning
from bayesdid.did.marginal_likelihood import conditional_np
from bayesdid.did.robust_posterior import (
    TooFewClustersError,
    cluster_index,
    n_treated_clusters,
    sandwich_covariance,
    sandwich_draws,
)
from bayesdid.errors import BayesDidError, DesignError

FIT = dict(draws=150, tune=150, chains=2, random_seed=5, progress=False)


def _panel(n_units=24, years=(2005, 2011), batches=None, seed=1, cluster=None):
    sim = simulate_staggered(n_units=n_units, years=years,
                             batches=batches or {2008: 4, 2009: 4}, random_seed=seed)
    kwargs = dict(sim.panel_kwargs)
    if cluster is not None:
        kwargs["cluster"] = cluster
    return Panel.from_frame(sim.data, **kwargs), sim


def _hand_gls_crv1(panel, design, clusters, sigma, rho):
    """GLS with explicit unit dummies and a dense AR(1) covariance per unit, and its CRV1
    sandwich, written from the textbook formulas (no code shared with the module)."""
    frame = panel.frame
    units = frame[panel.unit].to_numpy()
    levels = list(dict.fromkeys(units))
    dummies = (units[:, None] == np.array(levels)[None, :]).astype(float)
    X = np.hstack([dummies, design.Z.toarray()])
    n = len(frame)
    omega = np.zeros((n, n))
    t = frame[panel.time].to_numpy()
    for u in levels:
        rows = np.flatnonzero(units == u)
        lag = np.abs(t[rows][:, None] - t[rows][None, :])
        cov = sigma**2 * rho**lag / (1 - rho**2)
        omega[np.ix_(rows, rows)] = np.linalg.inv(cov)
    bread = np.linalg.pinv(X.T @ omega @ X)  # the pooled decomposition is collinear
    coef = bread @ X.T @ omega @ design.y
    e = design.y - X @ coef
    G = clusters.max() + 1
    meat = np.zeros((X.shape[1], X.shape[1]))
    for c in range(G):
        rows = np.flatnonzero(clusters == c)
        u = X[rows].T @ omega[np.ix_(rows, rows)] @ e[rows]
        meat += np.outer(u, u)
    crv1 = G / (G - 1) * bread @ meat @ bread
    k = len(levels)
    return coef[k:], bread[k:, k:], crv1[k:, k:]


@pytest.mark.model
@pytest.mark.parametrize("cluster", [None, "region"])
def test_sandwich_equals_hand_crv1_of_gls_under_flat_priors(cluster):
    """Under (nearly) flat priors the conditional mean is GLS and the sandwich is GLS's CRV1,
    compared on what the data identify: every cell effect and the covariate slopes (the
    pooled decomposition event + cohort + region + cell is collinear without its prior)."""
    panel, _ = _panel(cluster=cluster)
    design = HierarchicalDiD().prepare(panel)
    clusters = cluster_index(design, panel)
    assert clusters.max() + 1 == (4 if cluster else 24)
    sigma, rho, flat = 0.4, 0.35, 1e-8
    mean, model_cov, sandwich = sandwich_covariance(design, clusters, sigma, rho, flat,
                                                    np.full(design.n_phi, flat))
    coef, bread, crv1 = _hand_gls_crv1(panel, design, clusters, sigma, rho)
    beta = np.eye(design.n_phi)[design.block("beta").slice]
    E = np.vstack([design.cell_loadings, beta])  # estimable contrasts of phi
    np.testing.assert_allclose(E @ mean, E @ coef, rtol=1e-5, atol=1e-7)
    # the 1e-8 prior leaves H near-singular, so rounding (which differs between BLAS
    # builds and CPUs) moves small entries by ~1e-8 of the largest: atol on that scale
    for ours, hand in ((model_cov, bread), (sandwich, crv1)):
        ref = E @ hand @ E.T
        np.testing.assert_allclose(E @ ours @ E.T, ref, rtol=1e-5, atol=1e-7 * np.abs(ref).max())
    assert not np.allclose(E @ sandwich @ E.T, E @ model_cov @ E.T, rtol=0.05)  # it adjusts


@pytest.mark.model
def test_draws_have_the_sandwich_covariance_and_are_reproducible():
    panel, _ = _panel()
    design = HierarchicalDiD().prepare(panel)
    clusters = cluster_index(design, panel)
    lam = np.full(design.n_phi, 0.5)
    n = 2000
    args = (design, clusters, np.full(n, 0.4), np.full(n, 0.3), 1e-4, lam)
    draws = sandwich_draws(*args, np.random.default_rng(3), min_treated_clusters=8)
    again = sandwich_draws(*args, np.random.default_rng(3), min_treated_clusters=8)
    np.testing.assert_array_equal(draws, again)
    mean, _, cov = sandwich_covariance(design, clusters, 0.4, 0.3, 1e-4, lam)
    att = design.cell_loadings[0]  # one cell's effect: a linear contrast of phi
    np.testing.assert_allclose((draws @ att).mean(), mean @ att, atol=4 * np.sqrt(att @ cov @ att / n))
    assert (draws @ att).var() == pytest.approx(att @ cov @ att, rel=0.1)


@pytest.mark.slow
def test_sandwich_tracks_the_sampling_variance_under_ar2_where_the_model_variance_does_not():
    """Coverage-relevant check without MCMC. Errors AR(2) (roots 0.9 and 0.5, as in the
    zoo), hyperparameters fixed at the AR(1) values that fit them best (rho = the lag-1
    autocorrelation, sigma its innovation sd). Over 100 simulated panels the spread of the
    conditional mean of the overall effect matches the mean sandwich variance, while the
    model-based variance H^-1 is much too small."""
    sim = simulate_staggered(n_units=40, years=(2004, 2014), batches={2007: 8, 2010: 8},
                             sigma=0.0, random_seed=2)
    n_units, n_t = sim.data["city"].nunique(), sim.data["year"].nunique()
    rng = np.random.default_rng(11)
    estimates, sand_var, model_var = [], [], []
    for _ in range(100):
        path = np.zeros((n_units, n_t + 60))
        eps = rng.standard_normal(path.shape) * 0.05
        for j in range(2, path.shape[1]):
            path[:, j] = 1.4 * path[:, j - 1] - 0.45 * path[:, j - 2] + eps[:, j]
        err = path[:, 60:]
        df = sim.data.assign(eco_eff=sim.data["eco_eff"] + err.reshape(-1))
        panel = Panel.from_frame(df, **sim.panel_kwargs)
        design = HierarchicalDiD().prepare(panel)
        rho = np.corrcoef(err[:, 1:].ravel(), err[:, :-1].ravel())[0, 1]
        sigma = np.std(err[:, 1:] - rho * err[:, :-1]) / design.y_scale
        contrast = design.cell_loadings.T @ (design.cells["n_obs"].to_numpy()
                                             * design.cells["post"].to_numpy())
        mean, cov_model, cov = sandwich_covariance(design, cluster_index(design, panel), sigma,
                                                   rho, 1e-6, np.full(design.n_phi, 1e-6))
        estimates.append(mean @ contrast)
        sand_var.append(contrast @ cov @ contrast)
        model_var.append(contrast @ cov_model @ contrast)
    empirical = np.var(estimates)
    assert 0.75 < np.mean(sand_var) / empirical < 1.3  # 0.87 at these seeds
    assert np.mean(model_var) / empirical < 0.7  # 0.57 at these seeds


@pytest.mark.sampling
def test_one_treated_unit_warns_and_reports_the_model_based_posterior():
    panel, _ = _panel(n_units=30, batches={2008: 1})
    design = HierarchicalDiD().prepare(panel)
    clusters = cluster_index(design, panel)
    assert n_treated_clusters(design, clusters) == 1
    with pytest.raises(TooFewClustersError, match="only 1 cluster"):
        sandwich_draws(design, clusters, np.ones(2), np.zeros(2), 1e-4,
                       np.ones(design.n_phi), np.random.default_rng(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = HierarchicalDiD().fit(panel, **FIT)
    with pytest.warns(RobustFallbackWarning, match="model-based posterior"):
        robust = HierarchicalDiD(robust="cluster").fit(panel, **FIT)
    assert robust.info["robust"].startswith("model-based (only 1 cluster")
    np.testing.assert_array_equal(robust.draws(), default.draws())


@pytest.mark.sampling
def test_robust_fit_reproducible_and_equal_to_the_zoo_redraw():
    panel, _ = _panel(n_units=40, batches={2008: 6, 2009: 6})
    model = HierarchicalDiD(robust="cluster", min_treated_clusters=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = model.fit(panel, **FIT)
        b = model.fit(panel, **FIT)
        default = HierarchicalDiD().fit(panel, **FIT)
    assert a.info["robust"] == "cluster-robust sandwich (clusters: city)"
    assert a.info["config"]["robust"] == "cluster"
    np.testing.assert_array_equal(a.draws(), b.draws())
    np.testing.assert_array_equal(robust_redraw(default, panel, 5).draws(), a.draws())
    assert not np.array_equal(a.draws(), default.draws())
    assert "robust" not in HierarchicalDiD().config()  # earlier configs keep their hash


@pytest.mark.unit
def test_bad_options_and_clusters_that_cut_units_are_typed_errors():
    with pytest.raises(BayesDidError, match="robust must be one of"):
        HierarchicalDiD(robust="hc1")
    with pytest.raises(BayesDidError, match="marginal form"):
        HierarchicalDiD(robust="cluster", errors="student_t")
    with pytest.raises(BayesDidError, match="min_treated_clusters"):
        HierarchicalDiD(robust="cluster", min_treated_clusters=1)
    panel, _ = _panel(cluster="year")
    design = HierarchicalDiD().prepare(panel)
    with pytest.raises(DesignError, match="varies within unit") as err:
        cluster_index(design, panel)
    assert err.value.column == "year" and len(err.value.rows) > 0


@pytest.mark.unit
def test_robust_with_weights_or_variance_classes_raises_before_sampling():
    sim = simulate_staggered(n_units=16, years=(2005, 2010), batches={2008: 5}, random_seed=3)
    df = sim.data.assign(w=lambda d: 1.0 + d["city"].astype("category").cat.codes % 3)
    weighted = Panel.from_frame(df, **sim.panel_kwargs, weights="w")
    with pytest.raises(BayesDidError, match="weights 'w'"):
        HierarchicalDiD(robust="cluster").fit(weighted, draws=10, tune=10, chains=1)
    plain = Panel.from_frame(sim.data, **sim.panel_kwargs)
    with pytest.raises(BayesDidError, match="classes"):
        HierarchicalDiD(robust="cluster", unit_variance="classes").fit(plain, draws=10,
                                                                        tune=10, chains=1)
