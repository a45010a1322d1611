"""Group x time random effects: ``HierarchicalDiD(random_effects="region^year")``.

The new block is checked the way ``test_marginal_unbalanced.py`` checks the rest of the
model: the PyMC model's ``marginal_loglik`` Potential (sigma, rho and both pooling sds
fixed) against a dense multivariate normal density of the outcome whose covariance is
written out by hand from the panel's rows (region x year dummies with variance
``sd_re^2`` added), on an unbalanced panel; then the compiled (nutpie) density against
PyMC's, the dense form's likelihood against a by-hand residual, and the typed errors.
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytest
from scipy import stats

from bayesdid import Panel
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.did.hierarchical_design import FIXED_PRIOR_SD
from bayesdid.did.nutpie_density import did_logp_grad, pack_user_data
from bayesdid.did.priors import DiDPriors
from bayesdid.errors import BayesDidError, ColumnError, DesignError

RE = "region^year"


def _dense_loglik(panel: Panel, sigma: float, rho: float, sd_cell: float, sd_re: float,
                  priors: DiDPriors) -> float:
    """log N(y; 0, Sigma) of the standardised outcome, every coefficient integrated out,
    from the panel's rows only: unit, period effects and covariate ~ N(0, FIXED_PRIOR_SD^2);
    event-time, cohort, region treatment effects ~ N(0, effect_mean_sd^2); cell
    interactions ~ N(0, sd_cell^2); one region x year effect per observed pair
    ~ N(0, sd_re^2); AR(1) errors with a stationary start."""
    f = panel.data
    y = f[panel.outcome].to_numpy(float)
    y = (y - y.mean()) / y.std()
    x = f["x1"].to_numpy(float)
    x = (x - x.mean()) / x.std()
    times = np.sort(f[panel.time].unique())
    treated = f["treated"].to_numpy() == 1
    cohort = f["cohort"].astype("float").to_numpy()
    k = f[panel.time].to_numpy() - cohort
    region, year = f["region"].to_numpy(), f[panel.time].to_numpy()
    post = treated & (k >= 0)
    big, mean_var = FIXED_PRIOR_SD**2, priors.effect_mean_sd**2
    cols: list[tuple[np.ndarray, float]] = []
    cols += [((f[panel.unit] == u).to_numpy(float), big) for u in f[panel.unit].unique()]
    cols += [((year == t).astype(float), big) for t in times[1:]]
    cols.append((x, big))
    cols += [((treated & (k == kk)).astype(float), mean_var) for kk in np.unique(k[treated])]
    cols += [((post & (cohort == c)).astype(float), mean_var) for c in np.unique(cohort[post])]
    cols += [((post & (region == r)).astype(float), mean_var) for r in np.unique(region[post])]
    cells = {(c, r, kk) for c, r, kk in zip(cohort[treated], region[treated], k[treated])}
    cols += [((treated & (cohort == c) & (region == r) & (k == kk)).astype(float), sd_cell**2)
             for c, r, kk in cells]
    pairs = {(r, t) for r, t in zip(region, year)}
    cols += [(((region == r) & (year == t)).astype(float), sd_re**2) for r, t in pairs]
    Z = np.column_stack([z for z, _ in cols])
    cov = Z @ np.diag([v for _, v in cols]) @ Z.T
    period = np.searchsorted(times, year)
    for u in f[panel.unit].unique():
        idx = np.flatnonzero((f[panel.unit] == u).to_numpy())
        lag = np.abs(np.subtract.outer(period[idx], period[idx]))
        cov[np.ix_(idx, idx)] += sigma**2 * (np.eye(len(idx)) if rho == 0
                                             else rho**lag / (1 - rho**2))
    return float(stats.multivariate_normal(np.zeros(len(y)), cov).logpdf(y))


def _potential(model, name: str):
    """A model Potential as a function of the named free variables' constrained values."""
    (term,) = model.replace_rvs_by_values([model.named_vars[name]])
    names = [rv.name for rv in model.free_RVs]
    fn = model.compile_fn(term, inputs=[model.rvs_to_values[rv] for rv in model.free_RVs],
                          point_fn=False, on_unused_input="ignore")
    to_value = {"rho": lambda r: np.log((r + 1) / (1 - r))}

    def value(**given) -> float:
        return float(fn(*(to_value.get(n, np.log)(given[n]) for n in names)))

    return value, names


@pytest.mark.model
@pytest.mark.parametrize("errors", ["ar1", "iid"])
def test_marginal_loglik_with_region_year_effects_equals_dense_mvn(trimmed_panel, errors):
    priors = DiDPriors(effect_mean_sd=0.8)
    h = HierarchicalDiD(errors=errors, priors=priors, random_effects=RE)
    design = h.prepare(trimmed_panel)
    f = trimmed_panel.data
    assert design.block("re_region_year").size == len(f[["region", "year"]].drop_duplicates())
    loglik, names = _potential(h.build(trimmed_panel), "marginal_loglik")
    assert "sd_re_region_year" in names
    for sigma, rho, sd_cell, sd_re in [(0.8, 0.45, 0.3, 0.2), (0.5, -0.3, 0.7, 1.1),
                                       (1.2, 0.8, 0.1, 0.05)]:
        rho = rho if errors == "ar1" else 0.0
        ref = _dense_loglik(trimmed_panel, sigma, rho, sd_cell, sd_re, priors)
        got = loglik(sigma=sigma, rho=rho, sd_cell=sd_cell, sd_re_region_year=sd_re)
        assert got == pytest.approx(ref, rel=1e-8, abs=1e-8)
    # the block matters: a tiny sd_re is the model without it, a large one is not
    base, _ = _potential(HierarchicalDiD(errors=errors, priors=priors).build(trimmed_panel),
                         "marginal_loglik")
    kw = dict(sigma=0.7, rho=0.3 if errors == "ar1" else 0.0, sd_cell=0.4)
    assert loglik(**kw, sd_re_region_year=1e-6) == pytest.approx(base(**kw), rel=1e-8)
    assert abs(loglik(**kw, sd_re_region_year=0.5) - base(**kw)) > 1.0


@pytest.mark.model
@pytest.mark.parametrize(("errors", "fe"), [("ar1", None), ("iid", None),
                                            ("ar1", "year")])
def test_compiled_density_equals_pymc_with_random_effects(trimmed_panel, errors, fe):
    """nutpie's disk-cached density (one more GammaRV sd, no code change) against PyMC's
    log-density and gradient in unconstrained space; also without a unit effect."""
    re, panel = RE, trimmed_panel
    kwargs = {"fe": fe} if fe else {}
    h = HierarchicalDiD(errors=errors, random_effects=re, **kwargs)
    design = h.prepare(panel)
    model = h.build(panel)
    assert [b.name for b in design.random_blocks] == ["cell", "re_" + re.replace("^", "_")]
    buf = pack_user_data(design, h.priors, errors == "ar1")
    with pytensor.config.change_flags(linker="cvm"):
        logp, dlogp = model.compile_logp(), model.compile_dlogp()
    names = [model.rvs_to_values[rv].name for rv in model.free_RVs]
    rng = np.random.default_rng(3)
    for _ in range(4):
        x = rng.normal(0.0, 1.0, len(names))
        point = {n: np.asarray(v) for n, v in zip(names, x)}
        value, grad = did_logp_grad(x, buf)
        assert abs(value - logp(point)) < 1e-6
        np.testing.assert_allclose(grad, dlogp(point), rtol=1e-8, atol=1e-8)


@pytest.mark.model
def test_dense_form_adds_the_region_year_effect_to_each_row(trimmed_panel):
    """The dense model's iid likelihood at a random point equals a by-hand residual whose
    mean includes sd_re * z_re[region, year] of each row."""
    h = HierarchicalDiD(errors="iid", likelihood="dense", random_effects=RE)
    design = h.prepare(trimmed_panel)
    model = h.build(trimmed_panel)
    rng = np.random.default_rng(5)
    point = {}
    for rv in model.free_RVs:
        shape = model.initial_point()[model.rvs_to_values[rv].name].shape
        point[model.rvs_to_values[rv].name] = rng.normal(0, 0.5, shape)
    (term,) = model.replace_rvs_by_values([model.named_vars["loglik"]])
    got = model.compile_fn(term, point_fn=True, on_unused_input="ignore")(point)
    f = trimmed_panel.data
    sd_re = np.exp(point["sd_re_region_year_log__"])
    sd_cell = np.exp(point["sd_cell_log__"])
    sigma = np.exp(point["sigma_log__"])
    re_level = {key: i for i, key in enumerate(
        sorted({(r, t) for r, t in zip(f["region"], f["year"])}))}
    re_idx = np.array([re_level[(r, t)] for r, t in zip(f["region"], f["year"])])
    t_idx = np.searchsorted(np.sort(f["year"].unique()), f["year"].to_numpy())
    mean = (point["unit_effect"][design.unit_idx]
            + np.r_[0.0, point["time_std"]][t_idx]
            + design.X @ point["beta_std"]
            + sd_re * point["z_re_region_year"][re_idx])
    phi = np.concatenate([point[f"{b.name}_std"] if b.kind == "fixed" else
                          point[f"{b.name}_effect_std"] if b.kind == "mean" else
                          (sd_cell if b.name == "cell" else sd_re) * point[f"z_{b.name}"]
                          for b in design.blocks])
    tau = design.cell_loadings @ phi
    treated = design.cell_idx >= 0
    mean[treated] += tau[design.cell_idx[treated]]
    ref = stats.norm(0, sigma).logpdf(design.y - mean).sum()
    assert float(got) == pytest.approx(ref, rel=1e-10)


@pytest.mark.model
def test_typed_errors_and_config(trimmed_panel):
    with pytest.raises(DesignError, match="also a fixed effect") as exc:
        HierarchicalDiD(fe="city + region^year", random_effects="region^year").prepare(
            trimmed_panel)
    assert exc.value.column == "year"
    with pytest.raises(DesignError, match="unit column") as exc:
        HierarchicalDiD(random_effects="city^year").prepare(trimmed_panel)
    assert exc.value.column == "city"
    with pytest.raises(DesignError, match="also a fixed effect"):  # year is in the default fe
        HierarchicalDiD(random_effects="time").prepare(trimmed_panel)
    with pytest.raises(ColumnError, match="province"):
        HierarchicalDiD(random_effects="province^year").prepare(trimmed_panel)
    for bad in (["region", "year"], "", "  "):
        with pytest.raises(BayesDidError, match="random_effects"):
            HierarchicalDiD(random_effects=bad)
    # random_effects=None keeps the hash of the model before "auto" became the default
    assert "random_effects" not in HierarchicalDiD(random_effects=None).config()
    assert HierarchicalDiD(random_effects=RE).config()["random_effects"] == RE
    before = trimmed_panel.data.copy()
    HierarchicalDiD(random_effects=RE).prepare(trimmed_panel)
    assert trimmed_panel.data.equals(before)  # nothing the user passed is mutated
