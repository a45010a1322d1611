"""Exactness of the hierarchical DID's marginal likelihood on unbalanced panels.

The balanced-panel checks in ``test_bayes_did.py`` cannot see mistakes that only show when
units have different numbers of rows: the unit-effect precision is grouped by run length
and the Prais-Winsten first row moves with each unit's start. Here units start and end in
different periods, and the model's own log-likelihood term (the ``marginal_loglik``
Potential of the PyMC model, at fixed sigma, rho and pooling sd) is compared with a dense
multivariate normal density of the outcome built independently from the panel's rows:
every coefficient's prior variance and loading written out by hand from the model's
description (:mod:`bayesdid.did.hierarchical_design`), the AR(1) covariance per unit from its own
span.
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import stats

from bayesdid import Panel
from bayesdid.did.hierarchical_design import FIXED_PRIOR_SD
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.did.hierarchical_model import LAM_FIXED, prior_precision_draws
from bayesdid.did.marginal_likelihood import (
    marginal_loglik_grad_np,
    marginal_loglik_np,
    marginal_loglik_pt,
)
from bayesdid.did.priors import DiDPriors


@pytest.fixture(scope="module")
def unbalanced(trimmed_panel):
    return trimmed_panel


@pytest.fixture(scope="module")
def gappy(trimmed_gappy_panel):
    return trimmed_gappy_panel


def _dense_loglik(panel: Panel, sigma: float, rho: float, sd_cell: float,
                  priors: DiDPriors) -> float:
    """log N(y; 0, Sigma) of the standardised outcome with every coefficient integrated
    out, from the panel's rows (no bayesdid design code): unit and period effects and the
    covariate slope ~ N(0, FIXED_PRIOR_SD^2); event-time, cohort and region effects ~
    N(0, effect_mean_sd^2) (cohort and region load on post-treatment cells only); one
    interaction per (cohort, region, event time) cell ~ N(0, sd_cell^2); errors AR(1)
    within unit with a stationary start (rho = 0: iid)."""
    f = panel.data
    y = f[panel.outcome].to_numpy(float)
    y = (y - y.mean()) / y.std()
    x = f["x1"].to_numpy(float)
    x = (x - x.mean()) / x.std()
    n = len(f)
    times = np.sort(f[panel.time].unique())
    treated = f["treated"].to_numpy() == 1
    k = (f[panel.time] - f["cohort"].astype("float")).to_numpy()
    cohort = f["cohort"].astype("float").to_numpy()
    region = f["region"].to_numpy()
    post = treated & (k >= 0)

    columns: list[tuple[np.ndarray, float]] = []  # (loading on every row, prior variance)
    big, mean_var = FIXED_PRIOR_SD**2, priors.effect_mean_sd**2
    for u in f[panel.unit].unique():
        columns.append(((f[panel.unit] == u).to_numpy(float), big))
    for t in times[1:]:
        columns.append(((f[panel.time] == t).to_numpy(float), big))
    columns.append((x, big))
    for kk in np.unique(k[treated]):
        columns.append(((treated & (k == kk)).astype(float), mean_var))
    for c in np.unique(cohort[post]):
        columns.append(((post & (cohort == c)).astype(float), mean_var))
    for r in np.unique(region[post]):
        columns.append(((post & (region == r)).astype(float), mean_var))
    cells = {(c, r, kk) for c, r, kk in zip(cohort[treated], region[treated], k[treated])}
    for c, r, kk in cells:
        columns.append(((treated & (cohort == c) & (region == r) & (k == kk)).astype(float),
                        sd_cell**2))
    Z = np.column_stack([z for z, _ in columns])
    cov = Z @ np.diag([v for _, v in columns]) @ Z.T

    period = np.searchsorted(times, f[panel.time].to_numpy())
    for u in f[panel.unit].unique():
        idx = np.flatnonzero((f[panel.unit] == u).to_numpy())
        lag = np.abs(np.subtract.outer(period[idx], period[idx]))
        block = np.eye(len(idx)) if rho == 0 else rho**lag / (1 - rho**2)
        cov[np.ix_(idx, idx)] += sigma**2 * block
    assert cov.shape == (n, n)
    return float(stats.multivariate_normal(np.zeros(n), cov).logpdf(y))


def _model_loglik(model):
    """The ``marginal_loglik`` Potential of the PyMC model as a function of (sigma, rho,
    sd_cell), through the model's own value variables and transforms."""
    (term,) = model.replace_rvs_by_values([model.named_vars["marginal_loglik"]])
    names = [n for n in ("sigma", "rho", "sd_cell") if n in model.named_vars]
    fn = model.compile_fn(term, inputs=[model.rvs_to_values[model.named_vars[n]]
                                        for n in names], point_fn=False)
    to_value = {"sigma": np.log, "sd_cell": np.log,  # log transform
                "rho": lambda r: np.log((r + 1) / (1 - r))}  # Uniform(-1, 1): interval

    def loglik(sigma: float, rho: float, sd_cell: float) -> float:
        given = {"sigma": sigma, "rho": rho, "sd_cell": sd_cell}
        return float(fn(*(to_value[n](given[n]) for n in names)))

    return loglik


@pytest.fixture(scope="module")
def ar1_loglik(unbalanced):
    return _model_loglik(HierarchicalDiD(errors="ar1").build(unbalanced))


@pytest.mark.model
def test_panel_is_unbalanced_but_contiguous(unbalanced, gappy):
    sizes = unbalanced.data.groupby("city").size()
    assert not unbalanced.is_balanced and sizes.nunique() >= 4
    starts = unbalanced.data.groupby("city")["year"].min()
    assert starts.nunique() == 3 and unbalanced.missing_periods().empty
    design = HierarchicalDiD().prepare(unbalanced)
    assert len(design.stats["run_lengths"]) == sizes.nunique()  # one group per run length
    assert len(gappy.missing_periods()) == 3


@pytest.mark.model
@pytest.mark.parametrize("sigma, rho, sd_cell", [(0.8, 0.45, 0.3), (0.5, -0.3, 0.7),
                                                 (1.3, 0.8, 0.1)])
def test_ar1_marginal_loglik_equals_dense_mvn_on_unbalanced_panel(unbalanced, ar1_loglik,
                                                                  sigma, rho, sd_cell):
    priors = DiDPriors()
    h = HierarchicalDiD(errors="ar1", priors=priors)
    ref = _dense_loglik(unbalanced, sigma, rho, sd_cell, priors)
    assert ar1_loglik(sigma, rho, sd_cell) == pytest.approx(ref, rel=1e-9)
    design = h.prepare(unbalanced)
    lam_phi = prior_precision_draws(design, priors, {"cell": np.array([sd_cell])})[0]
    np_value = marginal_loglik_np(design.stats, design.n_obs, sigma, rho, LAM_FIXED, lam_phi)
    assert np_value == pytest.approx(ref, rel=1e-9)


@pytest.mark.model
@pytest.mark.parametrize("panel_name", ["unbalanced", "gappy"])
def test_iid_marginal_loglik_equals_dense_mvn_on_unbalanced_panel(panel_name, request):
    """iid errors: unequal spans and interior gaps (allowed without serial correlation)."""
    panel = request.getfixturevalue(panel_name)
    priors = DiDPriors(effect_mean_sd=0.7)
    model = HierarchicalDiD(errors="iid", priors=priors).build(panel)
    assert "rho" not in model.named_vars
    loglik = _model_loglik(model)
    for sigma, sd_cell in [(0.8, 0.3), (0.4, 1.1)]:
        ref = _dense_loglik(panel, sigma, 0.0, sd_cell, priors)
        assert loglik(sigma, 0.0, sd_cell) == pytest.approx(ref, rel=1e-9)


@pytest.mark.model
def test_ar1_gradient_on_unbalanced_panel_matches_finite_differences(unbalanced):
    design = HierarchicalDiD().prepare(unbalanced)
    lam_phi = np.random.default_rng(4).uniform(0.1, 3.0, design.n_phi)
    sigma, rho, eps = 0.7, 0.55, 1e-6

    def f(s, r):
        return marginal_loglik_np(design.stats, design.n_obs, s, r, LAM_FIXED, lam_phi)

    _, g_s, g_r, _ = marginal_loglik_grad_np(design.stats, design.n_obs, sigma, rho,
                                             LAM_FIXED, lam_phi)
    assert g_s == pytest.approx((f(sigma + eps, rho) - f(sigma - eps, rho)) / (2 * eps),
                                rel=1e-5)
    assert g_r == pytest.approx((f(sigma, rho + eps) - f(sigma, rho - eps)) / (2 * eps),
                                rel=1e-5)
    s, r = pt.dscalar(), pt.dscalar()
    out = marginal_loglik_pt(design.stats, design.n_obs, s, r, LAM_FIXED, lam_phi)
    grad = pytensor.function([s, r], pytensor.grad(out, [s, r]), mode="FAST_RUN")
    np.testing.assert_allclose(grad(sigma, rho), [g_s, g_r], rtol=1e-10)
