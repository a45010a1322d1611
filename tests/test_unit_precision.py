"""Per-unit precision scales in HierarchicalDiD: panel weights and variance classes.

Unit i's errors have variance sigma^2 / (w_i v_k): w_i its panel weight (normalised to mean
1 over rows), v_k the sampled precision of its variance class (``unit_variance="classes"``).

* exactness: the model's marginal log-likelihood (the PyMC Potential and the NumPy
  function) equals a dense multivariate normal of the outcome built from the panel's rows,
  on an unbalanced panel, AR(1) and iid, with weights and classes (1e-8);
* the nopython likelihood (direct and through PyTensor's numba backend) and the disk-cached
  nutpie density equal the NumPy reference / PyMC's own density; compiled conditional draws
  equal the NumPy loop;
* nutpie and PyMC sample the same posterior with weights and classes;
* with strong data the posterior means of the cell effects are the weighted least-squares
  estimates (pyfixest ``feols(..., weights=)``), not the unweighted ones;
* bad weights and options give typed errors; weights varying within a unit warn.
"""

from __future__ import annotations

import dataclasses
import warnings

import arviz_stats as azs
import numpy as np
import pandas as pd
import pyfixest as pf
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import stats

from bayesdid import Panel
from bayesdid.bayes.notices import warn_ignored_design
from bayesdid.bayes.sampling import nutpie_installed
from bayesdid.datasets import simulate_staggered
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.did.crossproducts import scaled_stats
from bayesdid.did.hierarchical_design import FIXED_PRIOR_SD
from bayesdid.did.hierarchical_model import LAM_FIXED, prior_precision_draws
from bayesdid.did.marginal_likelihood import marginal_loglik_np
from bayesdid.did.marginal_likelihood_numba import (
    scaled_args,
    scaled_draw_phi_nb,
    scaled_loglik_grad_nb,
)
from bayesdid.did.nutpie_density import did_logp_grad, pack_user_data
from bayesdid.did.priors import DiDPriors
from bayesdid.did.scaled_likelihood import (
    scaled_draw_phi,
    scaled_loglik_grad_np,
    scaled_loglik_pt,
)
from bayesdid.errors import BayesDidError, DesignIgnoredWarning, WeightsError

TOL = dict(rtol=1e-10, atol=1e-10)


def _frame(seed: int = 5):
    """24 cities 2005-2012, each with its own span (several run lengths), one covariate, a
    population weight per city (log-normal) and city error sds spread 6x."""
    sim = simulate_staggered(n_units=24, years=(2005, 2012), batches={2008: 5, 2010: 5},
                             n_covariates=1, random_seed=seed)
    df = sim.data.copy()
    rng = np.random.default_rng(11)
    cities = df["city"].unique()
    start = dict(zip(cities, 2005 + rng.integers(0, 3, len(cities))))
    end = dict(zip(cities, 2012 - rng.integers(0, 3, len(cities))))
    keep = (df["year"] >= df["city"].map(start)) & (df["year"] <= df["city"].map(end))
    df = df.loc[keep].copy()
    df["pop"] = df["city"].map(dict(zip(cities, np.exp(rng.normal(0, 0.8, len(cities))))))
    sd = dict(zip(cities, np.exp(rng.uniform(0, np.log(6), len(cities)))))
    df[sim.panel_kwargs["outcome"]] += df["city"].map(sd) * rng.normal(0, 0.3, len(df))
    return df, sim.panel_kwargs


@pytest.fixture(scope="module")
def weighted():
    df, kwargs = _frame()
    return Panel.from_frame(df, **kwargs, weights="pop")


def _dense_loglik(panel: Panel, sigma: float, rho: float, sd_cell: float,
                  unit_precision: dict, priors: DiDPriors) -> float:
    """log N(y; 0, Sigma) of the standardised outcome, every coefficient integrated out,
    from the panel's rows (no bayesdid design code): unit, period, covariate effects
    N(0, FIXED_PRIOR_SD^2); event-time, cohort, region effects N(0, effect_mean_sd^2);
    cell interactions N(0, sd_cell^2); AR(1) errors within unit with variance
    sigma^2 / unit_precision[unit]."""
    f = panel.data
    y = f[panel.outcome].to_numpy(float)
    y = (y - y.mean()) / y.std()
    x = f["x1"].to_numpy(float)
    x = (x - x.mean()) / x.std()
    times = np.sort(f[panel.time].unique())
    treated = f["treated"].to_numpy() == 1
    k = (f[panel.time] - f["cohort"].astype("float")).to_numpy()
    cohort = f["cohort"].astype("float").to_numpy()
    region = f["region"].to_numpy()
    post = treated & (k >= 0)
    columns = []
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
    for c, r, kk in {(c, r, kk) for c, r, kk in zip(cohort[treated], region[treated],
                                                     k[treated])}:
        columns.append(((treated & (cohort == c) & (region == r) & (k == kk)).astype(float),
                        sd_cell**2))
    Z = np.column_stack([z for z, _ in columns])
    cov = Z @ np.diag([v for _, v in columns]) @ Z.T
    period = np.searchsorted(times, f[panel.time].to_numpy())
    for u in f[panel.unit].unique():
        idx = np.flatnonzero((f[panel.unit] == u).to_numpy())
        lag = np.abs(np.subtract.outer(period[idx], period[idx]))
        block = np.eye(len(idx)) if rho == 0 else rho**lag / (1 - rho**2)
        cov[np.ix_(idx, idx)] += sigma**2 / unit_precision[u] * block
    return float(stats.multivariate_normal(np.zeros(len(y)), cov).logpdf(y))


def _unit_precisions(panel: Panel, design, ratios: np.ndarray) -> dict:
    """w_i v_k per city: weights normalised to mean 1 over rows (computed here from the
    frame), classes as the design assigned them, v = (1, ratios^-2)."""
    f = panel.data
    w = f.groupby(panel.unit, sort=False)[panel.weights].first() if panel.weights else \
        pd.Series(1.0, index=f[panel.unit].unique())
    w = w / f[panel.unit].map(w).mean()
    v = np.r_[1.0, np.asarray(ratios, float) ** -2.0]
    cls = design.scaled["unit_cls"]
    cities = pd.unique(f[panel.unit])
    return {c: w[c] * v[cls[i]] for i, c in enumerate(cities)}


def _model_loglik(model):
    """The model's ``marginal_loglik`` Potential as a function of the natural parameters."""
    (term,) = model.replace_rvs_by_values([model.named_vars["marginal_loglik"]])
    names = [n for n in ("sigma", "rho", "sd_cell", "unit_sd_ratio") if n in model.named_vars]
    fn = model.compile_fn(term, inputs=[model.rvs_to_values[model.named_vars[n]]
                                        for n in names], point_fn=False)
    to_value = {"sigma": np.log, "sd_cell": np.log, "unit_sd_ratio": np.log,
                "rho": lambda r: np.log((r + 1) / (1 - r))}
    return lambda **given: float(fn(*(to_value[n](np.asarray(given[n])) for n in names)))


CASES = [("ar1", "weights", 0.8, 0.45, 0.3, []),
         ("ar1", "weights+classes", 0.5, -0.3, 0.7, [2.0, 0.6]),
         ("ar1", "classes", 1.3, 0.8, 0.1, [3.0, 1.5]),
         ("iid", "weights+classes", 0.7, 0.0, 0.4, [0.5, 2.5])]


@pytest.mark.model
@pytest.mark.parametrize("errors, scales, sigma, rho, sd_cell, ratios", CASES)
def test_scaled_marginal_loglik_equals_dense_mvn(weighted, errors, scales, sigma, rho,
                                                 sd_cell, ratios):
    panel = weighted if "weights" in scales else Panel.from_frame(
        weighted.data, **{**_frame()[1]})
    classes = "classes" in scales
    h = HierarchicalDiD(errors=errors, unit_variance="classes" if classes else "equal",
                        variance_classes=3)
    design = h.prepare(panel)
    assert design.scaled is not None and design.scaled["n_classes"] == (3 if classes else 1)
    prec = _unit_precisions(panel, design, ratios)
    ref = _dense_loglik(panel, sigma, rho, sd_cell, prec, h.priors)
    got = _model_loglik(h.build(panel))(sigma=sigma, rho=rho, sd_cell=sd_cell,
                                        unit_sd_ratio=np.asarray(ratios, float))
    assert abs(got - ref) < 1e-8 * max(1.0, abs(ref))
    lam_phi = prior_precision_draws(design, h.priors, {"cell": np.array([sd_cell])})[0]
    v = np.r_[1.0, np.asarray(ratios, float) ** -2.0]
    np_value = scaled_loglik_grad_np(design.scaled, design.n_obs, sigma, rho, LAM_FIXED,
                                     lam_phi, v)[0]
    assert abs(np_value - ref) < 1e-8 * max(1.0, abs(ref))


@pytest.mark.model
def test_unit_scales_of_one_give_the_unscaled_likelihood(weighted):
    """Equal weights: the same value as the default (grouped) likelihood, and fit() keeps
    the default path when the panel has no weights and unit_variance='equal'."""
    plain = Panel.from_frame(weighted.data.assign(pop=3.0), **_frame()[1], weights="pop")
    design = HierarchicalDiD().prepare(plain)
    assert np.allclose(design.scaled["unit_w"], 1.0)
    lam = np.random.default_rng(0).uniform(0.1, 3, design.n_phi)
    a = scaled_loglik_grad_np(design.scaled, design.n_obs, 0.7, 0.4, LAM_FIXED, lam, np.ones(1))
    b = marginal_loglik_np(design.stats, design.n_obs, 0.7, 0.4, LAM_FIXED, lam)
    assert a[0] == pytest.approx(b, rel=1e-11)
    unweighted = Panel.from_frame(weighted.data, **_frame()[1])
    assert HierarchicalDiD().prepare(unweighted).scaled is None


def _points(design, n, seed):
    rng = np.random.default_rng(seed)
    K = design.scaled["n_classes"]
    for _ in range(n):
        sds = {b.name: rng.uniform(0.05, 3.0, 1) for b in design.random_blocks}
        yield (rng.uniform(0.2, 2.0), rng.uniform(-0.9, 0.95),
               prior_precision_draws(design, DiDPriors(), sds)[0],
               np.r_[1.0, rng.uniform(0.2, 5.0, K - 1)])


@pytest.fixture(scope="module", params=["ar1-grouped", "ar1-per-unit", "fe_year-grouped",
                                        "fe_year-per-unit"])
def scaled_design(request, weighted):
    """Weights and 3 classes; the unit-effect projection summed from group cross-products
    (Q) or per unit (G); fe='year' has no unit effect (lam_a = inf)."""
    fe_name, layout = request.param.split("-", 1)
    fe = {"fe": "year"} if fe_name == "fe_year" else {}
    design = HierarchicalDiD(unit_variance="classes", variance_classes=3, **fe).prepare(weighted)
    sc = design.scaled
    forced = scaled_stats(design, sc["unit_w"], sc["unit_cls"], 3,
                          grouped=layout == "grouped")
    assert (len(forced["Q"]) > 0) == (layout == "grouped")
    return dataclasses.replace(design, scaled=forced)


@pytest.mark.model
def test_grouped_and_per_unit_projections_agree(weighted):
    design = HierarchicalDiD(unit_variance="classes", variance_classes=3).prepare(weighted)
    sc = design.scaled
    lam = np.random.default_rng(1).uniform(0.1, 3.0, design.n_phi)
    v = np.array([1.0, 0.3, 2.2])
    a, b = (scaled_loglik_grad_np(scaled_stats(design, sc["unit_w"], sc["unit_cls"], 3,
                                               grouped=g), design.n_obs, 0.6, 0.5, LAM_FIXED,
                                  lam, v) for g in (True, False))
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, **TOL)


@pytest.mark.model
def test_numba_and_pytensor_equal_the_numpy_reference_and_finite_differences(scaled_design):
    d, sc = scaled_design, scaled_design.scaled
    lam_a = LAM_FIXED if d.unit_effect else np.inf
    s, r, lam, v = pt.dscalar(), pt.dscalar(), pt.dvector(), pt.dvector()
    out = scaled_loglik_pt(sc, d.n_obs, s, r, lam_a, lam, v)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f_nb = pytensor.function([s, r, lam, v], [out, *pytensor.grad(out, [s, r, lam, v])],
                                 mode="NUMBA")
    assert not [w for w in caught if "object mode" in str(w.message)]
    for sigma, rho, lam_phi, vv in _points(d, 3, seed=1):
        ref = scaled_loglik_grad_np(sc, d.n_obs, sigma, rho, lam_a, lam_phi, vv)
        direct = scaled_loglik_grad_nb(*scaled_args(sc), d.n_obs, lam_a, sigma, rho,
                                       lam_phi, vv)
        for a, b, c in zip(ref, direct, f_nb(sigma, rho, lam_phi, vv)):
            np.testing.assert_allclose(b, a, **TOL)
            np.testing.assert_allclose(c, a, **TOL)
    sigma, rho, lam_phi, vv = next(_points(d, 1, seed=9))
    _, g_s, g_r, _, g_v = scaled_loglik_grad_np(sc, d.n_obs, sigma, rho, lam_a, lam_phi, vv)
    f = lambda *a: scaled_loglik_grad_np(sc, d.n_obs, *a[:2], lam_a, lam_phi, a[2])[0]  # noqa
    eps = 1e-6
    assert g_s == pytest.approx((f(sigma + eps, rho, vv) - f(sigma - eps, rho, vv)) / 2 / eps,
                                rel=1e-5)
    assert g_r == pytest.approx((f(sigma, rho + eps, vv) - f(sigma, rho - eps, vv)) / 2 / eps,
                                rel=1e-5)
    e = np.r_[0.0, eps, 0.0]
    assert g_v[1] == pytest.approx((f(sigma, rho, vv + e) - f(sigma, rho, vv - e)) / 2 / eps,
                                   rel=1e-5)


@pytest.mark.model
def test_compiled_draws_equal_the_numpy_loop(scaled_design):
    d = scaled_design
    lam_a = LAM_FIXED if d.unit_effect else np.inf
    pts = list(_points(d, 5, seed=3))
    sigma, rho = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    lam, v = np.stack([p[2] for p in pts]), np.stack([p[3] for p in pts])
    ref = scaled_draw_phi(d.scaled, sigma, rho, lam_a, lam, v, np.random.default_rng(5))
    got = scaled_draw_phi_nb(d.scaled, sigma, rho, lam_a, lam, v, np.random.default_rng(5))
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.model
@pytest.mark.parametrize("errors, weights", [("iid", True), ("ar1", True), ("ar1", False)])
def test_disk_cached_nutpie_density_equals_the_pymc_model(weighted, errors, weights):
    """With weights the projection is per unit (G); classes only: per group (Q, forced
    here: the auto rule picks G on this small panel with many run lengths)."""
    panel = weighted if weights else Panel.from_frame(weighted.data, **_frame()[1])
    model_ = HierarchicalDiD(errors=errors, unit_variance="classes", variance_classes=3)
    design = model_.prepare(panel)
    if not weights:
        sc = design.scaled
        design = dataclasses.replace(design, scaled=scaled_stats(
            design, sc["unit_w"], sc["unit_cls"], 3, grouped=True))
    assert (len(design.scaled["Q"]) == 0) == weights
    model = model_._build(design)
    buf = pack_user_data(design, model_.priors, errors == "ar1")
    with pytensor.config.change_flags(linker="cvm"):
        logp, dlogp = model.compile_logp(), model.compile_dlogp()
    rvs = model.free_RVs
    sizes = [2 if rv.name == "unit_sd_ratio" else 1 for rv in rvs]
    rng = np.random.default_rng(2)
    for _ in range(5):
        x = rng.normal(0.0, 1.0, sum(sizes))
        x[0] += np.log(0.5)
        parts = np.split(x, np.cumsum(sizes)[:-1])
        point = {model.rvs_to_values[rv].name: (p if n > 1 else p[0])
                 for rv, p, n in zip(rvs, parts, sizes)}
        value, grad = did_logp_grad(x, buf)
        assert abs(value - logp(point)) < 1e-6
        np.testing.assert_allclose(grad, dlogp(point), rtol=1e-8, atol=1e-8)


@pytest.mark.model
def test_dense_model_reads_the_unit_precisions(weighted):
    """likelihood='dense' uses the same unit precisions w_i v_k: its likelihood Potential
    equals the row-wise AR(1) density with per-unit sds sigma / sqrt(w_i v_k), by hand."""
    h = HierarchicalDiD(likelihood="dense", unit_variance="classes", variance_classes=3)
    design = h.prepare(weighted)
    model = h.build(weighted)
    point = model.initial_point()
    point["unit_sd_ratio_log__"] = np.log([2.0, 0.5])
    point["sigma_log__"] = np.log(0.6)
    point["rho_interval__"] = np.log(1.4 / 0.6)  # rho = 0.4
    (term,) = model.replace_rvs_by_values([model.named_vars["loglik"]])
    value = float(model.compile_fn(term)(point))
    # by hand: every coefficient is 0 at the initial point, so the residual is y
    sc = design.scaled
    sd = 0.6 / np.sqrt(sc["unit_w"] * np.r_[1.0, 0.25, 4.0][sc["unit_cls"]])[design.unit_idx]
    y, prev = design.y, design.prev_row
    has = prev >= 0
    ref = (stats.norm(0, sd[has]).logpdf(y[has] - 0.4 * y[prev[has]]).sum()
           + stats.norm(0, sd[~has] / np.sqrt(1 - 0.16)).logpdf(y[~has]).sum())
    assert value == pytest.approx(ref, rel=1e-10)


# ----------------------------------------------------------------------------- errors
@pytest.mark.unit
def test_bad_weights_and_options_are_typed_errors(weighted):
    df, kwargs = _frame()
    df.loc[df["city"] == df["city"].iloc[0], "pop"] = 0.0
    zero = Panel.from_frame(df, **kwargs, weights="pop")
    with pytest.raises(WeightsError, match="'pop' is zero for 1 unit") as err:
        HierarchicalDiD().prepare(zero)
    assert err.value.rows is not None and (err.value.rows["pop"] == 0).all()
    for bad in ({"unit_variance": "hetero"}, {"variance_classes": 1},
                {"variance_classes": 2.5}, {"unit_variance": "classes", "errors": "student_t"}):
        with pytest.raises(BayesDidError):
            HierarchicalDiD(**bad)


@pytest.mark.unit
def test_weights_varying_within_unit_warn_and_use_the_unit_mean(weighted):
    df, kwargs = _frame()
    first = df["city"] == df["city"].iloc[0]
    base = df.loc[first, "pop"].iloc[0]
    df.loc[first, "pop"] = base * np.linspace(0.5, 1.5, first.sum())  # mean: base
    varying = Panel.from_frame(df, **kwargs, weights="pop")
    with pytest.warns(DesignIgnoredWarning, match="varies within 1 unit") as seen:
        design = HierarchicalDiD().prepare(varying)
    assert seen[0].filename == __file__
    np.testing.assert_allclose(design.scaled["unit_w"], HierarchicalDiD().prepare(weighted)
                               .scaled["unit_w"], rtol=1e-12)
    assert df.loc[first, "pop"].nunique() > 1  # the caller's frame is untouched


@pytest.mark.unit
def test_weights_are_not_reported_as_ignored(weighted):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ignored = warn_ignored_design(HierarchicalDiD(), weighted)
    assert ignored == {"cluster": "city"}
    assert all("weights" not in str(w.message) for w in seen)


# ----------------------------------------------------------------------------- sampling
needs_nutpie = pytest.mark.skipif(not nutpie_installed(), reason="nutpie not installed")


@needs_nutpie
@pytest.mark.sampling
def test_nutpie_and_pymc_sample_the_same_scaled_posterior(weighted):
    model = HierarchicalDiD(pool=("cohort",), unit_variance="classes", variance_classes=3)
    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in ("nutpie", "pymc"):
            fits[s] = model.fit(weighted, draws=800, tune=600, chains=2, random_seed=21,
                                progress=False, sampler=s)
    assert fits["nutpie"].info["sampler"] == "nutpie"
    assert fits["nutpie"].info["unit_precision"] == {"weights": "pop", "variance_classes": 3,
                                                     "units_per_class": [8, 8, 8]}
    assert {"unit_sd_ratio", "sigma"} <= set(fits["nutpie"].idata.posterior.data_vars)
    for name in ("sigma", "rho", "unit_sd_ratio"):
        a, b = (fits[s].idata.posterior[name] for s in ("nutpie", "pymc"))
        dims = [d for d in a.dims if d not in ("chain", "draw")]
        for idx in (range(a.sizes[dims[0]]) if dims else [None]):
            x = a if idx is None else a.isel({dims[0]: idx})
            y = b if idx is None else b.isel({dims[0]: idx})
            mcse = np.hypot(float(azs.mcse(x)), float(azs.mcse(y)))
            assert abs(float(x.mean()) - float(y.mean())) < 4 * mcse, name
    a, b = (fits[s].idata.posterior["effect"].sel(effect_id="att|overall")
            for s in ("nutpie", "pymc"))
    assert abs(float(a.mean()) - float(b.mean())) < 4 * np.hypot(float(azs.mcse(a)),
                                                                 float(azs.mcse(b)))
    assert abs(float(a.std()) / float(b.std()) - 1) < 0.15


def _wls_panel():
    """One adoption cohort, 120 units x 8 years, small iid errors with variance 1/w_i,
    treated units' effects grow with their weight (so WLS and OLS cell effects differ)."""
    rng = np.random.default_rng(3)
    n, years = 120, np.arange(2010, 2018)
    w = np.exp(rng.normal(0, 1, n))
    treated = np.arange(n) < 40
    tau_i = np.where(treated, 1.0 + 1.5 * (np.log(w) > 0), 0.0)
    rows = []
    for i in range(n):
        a = rng.normal()
        for t in years:
            post = treated[i] and t >= 2014
            y = a + 0.3 * (t - 2010) + post * tau_i[i] * (1 + 0.2 * (t - 2014)) \
                + rng.normal(0, 0.05 / np.sqrt(w[i]))
            rows.append((f"u{i}", t, y, w[i], 2014 if treated[i] else np.nan))
    return pd.DataFrame(rows, columns=["unit", "year", "y", "pop", "adopt"])


@needs_nutpie
@pytest.mark.sampling
def test_weights_give_the_weighted_least_squares_cell_effects():
    df = _wls_panel()
    panel = Panel.from_frame(df, unit="unit", time="year", outcome="y", weights="pop",
                             cohort="adopt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = HierarchicalDiD(pool=(), errors="iid").fit(panel, draws=500, tune=500, chains=2,
                                                         random_seed=2, progress=False)
    tau = res.idata.posterior["tau_cell"].mean(("chain", "draw")).values
    k = (df["year"] - df["adopt"]).where(df["year"] >= df["adopt"])
    for name in range(4):
        df[f"d{name}"] = (k == name).astype(float)
    fml = "y ~ d0 + d1 + d2 + d3 | unit + year"
    wls = pf.feols(fml, data=df, weights="pop").coef().to_numpy()
    ols = pf.feols(fml, data=df).coef().to_numpy()
    assert np.min(np.abs(wls - ols)) > 0.1  # the weights matter here
    np.testing.assert_allclose(tau, wls, atol=0.02)
