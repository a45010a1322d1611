"""Stochastic frontier MLE: formulas, recovery, the electricity reference, bad inputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from bayesdid.classical import _sfa_math as m
from bayesdid.efficiency.sfa import (
    NonPositiveValueError,
    chibar_critical,
    chibar_pvalue,
    sfa,
)
from bayesdid.errors import (
    BayesDidError,
    ColumnError,
    ConvergenceError,
    MissingValueError,
)
from bayesdid.report.sfa_plots import plot_efficiency_intervals, plot_frontier

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "reference" / "sfa"


def load_electricity() -> pd.DataFrame:
    """The shipped CSV, read directly (until the dataset is registered)."""
    df = pd.read_csv(ROOT / "data" / "electricity.csv")
    return df.assign(c=df["cost"] / df["fprice"], pl=df["lprice"] / df["fprice"],
                     pk=df["cprice"] / df["fprice"])


ELEC = {"y": "c", "x": ["output", "pl", "pk"], "frontier": "cost"}


def sim_cross(n=600, dist="half_normal", seed=0, su=0.3, sv=0.1, mu=0.0):
    rng = np.random.default_rng(seed)
    k, lab = rng.lognormal(size=n), rng.lognormal(size=n)
    if dist == "half_normal":
        u = np.abs(rng.normal(0, su, n))
    elif dist == "exponential":
        u = rng.exponential(su, n)
    else:
        u = stats.truncnorm.rvs(-mu / su, np.inf, loc=mu, scale=su, size=n, random_state=rng)
    q = np.exp(1.0 + 0.4 * np.log(k) + 0.5 * np.log(lab) + rng.normal(0, sv, n) - u)
    return pd.DataFrame({"q": q, "k": k, "l": lab}), u


# ---------------------------------------------------------------------- formulas
def _density_quad(e, sv, su, dist, mu=0.0):
    if dist == "half_normal":
        g = lambda u: 2 * stats.norm.pdf(u, 0, su)
    elif dist == "exponential":
        g = lambda u: stats.expon.pdf(u, scale=su)
    else:
        g = lambda u: stats.norm.pdf(u, mu, su) / stats.norm.cdf(mu / su)
    return integrate.quad(lambda u: g(u) * stats.norm.pdf(e + u, 0, sv), 0, np.inf)[0]


@pytest.mark.unit
@pytest.mark.parametrize("dist", m.DISTRIBUTIONS)
def test_log_densities_match_numerical_convolution(dist):
    e = np.array([-0.6, -0.2, 0.0, 0.15])
    ll = m.loglik_cross(e, 0.12, 0.3, dist, mu=0.2)
    ref = np.log([_density_quad(x, 0.12, 0.3, dist, mu=0.2) for x in e])
    np.testing.assert_allclose(ll, ref, rtol=1e-7)


@pytest.mark.unit
def test_panel_likelihood_and_conditionals_match_quadrature():
    # unit with 3 periods, u_it = h_t u_i, u_i ~ N+(mu, su^2)
    e, h, sv, su, mu = np.array([-0.3, -0.1, -0.25]), np.array([1.3, 1.1, 1.0]), 0.1, 0.3, 0.1

    def joint(u):
        return (stats.norm.pdf(u, mu, su) / stats.norm.cdf(mu / su)
                * np.prod(stats.norm.pdf(e + h * u, 0, sv)))
    dens = integrate.quad(joint, 0, np.inf)[0]
    idx = np.zeros(3, int)
    ll = m.loglik_panel(e, idx, h, 1, sv, su, mu)
    np.testing.assert_allclose(ll, np.log(dens), rtol=1e-8)
    ms, ss = m.panel_conditional(e, idx, h, 1, sv, su, mu)
    mean_u = integrate.quad(lambda u: u * joint(u), 0, np.inf)[0] / dens
    bc = integrate.quad(lambda u: np.exp(-h[0] * u) * joint(u), 0, np.inf)[0] / dens
    jl, _ = m.jlms(ms, ss)
    te, _ = m.battese_coelli(ms, ss, h[0])
    np.testing.assert_allclose([jl[0], te[0]], [mean_u, bc], rtol=1e-7)
    # Horrace-Schmidt bounds are the conditional quantiles of exp(-u)
    lo, hi = m.horrace_schmidt(ms, ss, 0.9)
    cdf = lambda c: integrate.quad(joint, 0, c)[0] / dens
    np.testing.assert_allclose([cdf(-np.log(hi[0])), cdf(-np.log(lo[0]))], [0.05, 0.95],
                               atol=1e-7)


@pytest.mark.unit
def test_chibar_square_matches_kodde_palm_table():
    crit = [chibar_critical(0.05, q) for q in (1, 2, 3)]
    np.testing.assert_allclose(crit, [2.706, 5.138, 7.045], atol=1e-3)
    assert chibar_pvalue(0.0, 1) == pytest.approx(1.0)
    assert chibar_pvalue(5.0, 1) == pytest.approx(0.5 * stats.chi2.sf(5.0, 1))


# ---------------------------------------------------------------------- recovery
@pytest.mark.unit
@pytest.mark.parametrize("dist,mu,su", [("half_normal", 0.0, 0.25), ("exponential", 0.0, 0.25),
                                        ("truncated_normal", 0.2, 0.4)])
def test_recovers_production_frontier(dist, mu, su):
    df, u = sim_cross(n=2000, dist=dist, seed=3, su=su, mu=mu)
    res = sfa(df, y="q", x=["k", "l"], distribution=dist)
    coef = res.coef.set_index("term")
    if dist == "truncated_normal":
        assert coef.loc["mu", "estimate"] == pytest.approx(mu, abs=0.15)
    assert coef.loc["ln_k", "estimate"] == pytest.approx(0.4, abs=0.03)
    assert coef.loc["ln_l", "estimate"] == pytest.approx(0.5, abs=0.03)
    assert coef.loc["sigma_v", "estimate"] == pytest.approx(0.1, abs=0.03)
    assert res.efficiency["u_jlms"].mean() == pytest.approx(u.mean(), rel=0.1)
    assert res.lr_test["p_value"] < 1e-6 and res.lr_test["df"] == 1 + (dist == "truncated_normal")
    assert stats.spearmanr(res.efficiency["te_bc"], np.exp(-u))[0] > 0.7  # lambda = 2.5
    inside = (np.exp(-u) >= res.efficiency["lower"]) & (np.exp(-u) <= res.efficiency["upper"])
    assert 0.9 < inside.mean() <= 1.0          # Horrace-Schmidt 95% bounds
    assert (res.efficiency["te_bc"] >= res.efficiency["te_jlms"]).all()  # Jensen


@pytest.mark.unit
def test_bc92_panel_recovers_decay_and_time_invariant_nests():
    rng = np.random.default_rng(4)
    n, t = 80, 8
    ui = np.abs(rng.normal(0, 0.3, n))
    years = np.arange(2001, 2001 + t)
    u = ui[:, None] * np.exp(-0.05 * (years - years[-1]))[None, :]
    k = rng.lognormal(size=(n, t))
    q = np.exp(0.5 + 0.6 * np.log(k) + rng.normal(0, 0.08, (n, t)) - u)
    df = pd.DataFrame({"firm": np.repeat(np.arange(n), t), "year": np.tile(years, n),
                       "q": q.ravel(), "k": k.ravel()})
    res = sfa(df, y="q", x=["k"], model="bc92", unit="firm", time="year")
    coef = res.coef.set_index("term")
    assert coef.loc["eta", "estimate"] == pytest.approx(0.05, abs=0.02)
    assert coef.loc["ln_k", "estimate"] == pytest.approx(0.6, abs=0.02)
    assert stats.spearmanr(res.efficiency["te_bc"], np.exp(-u.ravel()))[0] > 0.9
    ti = sfa(df, y="q", x=["k"], model="time_invariant", unit="firm", time="year")
    assert res.loglik >= ti.loglik - 1e-6 and res.lr_test["df"] == 2
    tab = res.effects()
    assert tab.loc[1, "group"] == "firm=0, year=2001" and tab.loc[0, "group"] == "overall"
    draws = res.efficiency_draws(n_draws=50, random_seed=1)
    assert draws.shape == (n * t, 50) and draws.index.names == ["firm", "year"]
    np.testing.assert_allclose(draws.mean(axis=1), res.efficiency["te_bc"], atol=0.03)


@pytest.mark.unit
def test_wrong_skew_warns_and_lr_test_accepts_no_inefficiency():
    rng = np.random.default_rng(5)
    k = rng.lognormal(size=400)
    noise = rng.normal(0, 0.1, 400) + rng.exponential(0.1, 400)  # skewed the wrong way
    df = pd.DataFrame({"k": k, "q": np.exp(1 + 0.5 * np.log(k) + noise)})
    with pytest.warns(RuntimeWarning, match="skewed the wrong way"):
        res = sfa(df, y="q", x=["k"], random_seed=1)
    assert res.lr_test["p_value"] > 0.4
    assert res.coef.set_index("term").loc["sigma_u", "estimate"] < 0.02


# ---------------------------------------------------------------------- reference
@pytest.mark.reference
@pytest.mark.parametrize("dist", ["half_normal", "exponential"])
def test_electricity_matches_independent_implementation(dist):
    expected = json.loads((REF / "expected.json").read_text())[dist]
    res = sfa(load_electricity(), **ELEC, distribution=dist)
    assert res.loglik == pytest.approx(expected["loglik"], rel=1e-3)
    coef = res.coef.set_index("term")["estimate"]
    for term, value in expected["coef"].items():
        assert coef[term] == pytest.approx(value, rel=1e-3), term
    # expected.json is what the independent implementation gives now
    spec = importlib.util.spec_from_file_location("sfa_ref_generate", REF / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    live = gen.fit(dist)
    assert live["loglik"] == pytest.approx(expected["loglik"], rel=1e-6)


@pytest.mark.reference
def test_shipped_data_reproduce_sfar_normal_gamma_efficiencies():
    """Exact normal-gamma conditional means at sfaR's published parameters."""
    df = load_electricity()
    assert len(df) == 123
    X = np.column_stack([np.ones(123), np.log(df["output"]), np.log(df["pl"]), np.log(df["pk"])])
    e = np.log(df["c"].to_numpy()) - X @ np.array([-9.397, 0.913, 0.255, -0.015])
    su, sv, p = np.exp(-2.407 / 2), np.exp(-4.643 / 2), 0.451
    w = np.linspace(0.0, 8.0**p, 40001)   # u = w^(1/P) removes the u^(P-1) singularity
    u = w ** (1 / p)
    logk = -u / su + stats.norm.logpdf((e[:, None] - u[None, :]) / sv)
    kern = np.exp(logk - logk.max(axis=1, keepdims=True))
    dens = np.trapezoid(kern, w, axis=1)
    mean_u = np.trapezoid(kern * u, w, axis=1) / dens
    te_bc = np.trapezoid(kern * np.exp(-u), w, axis=1) / dens
    assert mean_u.mean() == pytest.approx(0.135, abs=1e-3)
    assert np.exp(-mean_u).mean() == pytest.approx(0.891, abs=1e-3)
    assert te_bc.mean() == pytest.approx(0.893, abs=1e-3)
    assert special.gamma(p) > 0  # shape parameter in the valid range


@pytest.mark.unit
def test_truncated_normal_on_electricity_explains_nonconvergence():
    with pytest.raises(ConvergenceError, match="exponential"):
        sfa(load_electricity(), **ELEC, distribution="truncated_normal")


# ---------------------------------------------------------------------- bad input
@pytest.mark.unit
def test_nonpositive_and_missing_inputs_name_rows():
    df, _ = sim_cross(n=50)
    bad = df.copy()
    bad.loc[[3, 7], "k"] = [0.0, -1.0]
    with pytest.raises(NonPositiveValueError, match="'k' has 2 zero or negative") as err:
        sfa(bad, y="q", x=["k", "l"])
    assert list(err.value.rows.index) == [3, 7] and err.value.column == "k"
    zeros = df.assign(q=0.0)
    with pytest.raises(NonPositiveValueError, match="all zeros"):
        sfa(zeros, y="q", x=["k", "l"])
    miss = df.copy()
    miss.loc[5, "l"] = np.nan
    with pytest.raises(MissingValueError) as err:
        sfa(miss, y="q", x=["k", "l"])
    assert list(err.value.rows.index) == [5]
    with pytest.raises(ColumnError, match="'nope'"):
        sfa(df, y="q", x=["nope"])
    with pytest.raises(BayesDidError, match="needs unit"):
        sfa(df, y="q", x=["k"], model="bc92")
    with pytest.raises(BayesDidError, match="distance function"):
        sfa(df, y=["q", "k"], x=["l"], frontier="cost")
    assert df.equals(sim_cross(n=50)[0])  # caller's frame untouched


@pytest.mark.unit
def test_nonconvergence_raises_with_advice():
    df, _ = sim_cross(n=200)
    with pytest.raises(ConvergenceError, match="did not converge") as err:
        sfa(df, y="q", x=["k", "l"], maxiter=1, distribution="truncated_normal")
    assert "rescale" in str(err.value) or "exponential" in str(err.value)


# ---------------------------------------------------------------------- plots
@pytest.mark.unit
def test_plots_return_figures():
    df = load_electricity()
    res = sfa(df, **ELEC)
    fig = plot_frontier(res, df, "ln_output")
    assert fig.axes[0].get_xlabel() == "ln_output" and len(fig.axes[0].lines) == 1
    plt.close(fig)
    fig = plot_efficiency_intervals(res, max_points=30)
    assert len(fig.axes[0].get_yticks()) == 30
    plt.close(fig)


# ---------------------------------------------------------------------- panel draws
def sim_panel(n=40, t=6, eta=0.05, seed=7):
    """Production panel with u_it = exp(-eta (t - T)) u_i."""
    rng = np.random.default_rng(seed)
    years = np.arange(2001, 2001 + t)
    u = np.abs(rng.normal(0, 0.3, n))[:, None] * np.exp(-eta * (years - years[-1]))[None, :]
    k = rng.lognormal(size=(n, t))
    q = np.exp(0.5 + 0.6 * np.log(k) + rng.normal(0, 0.08, (n, t)) - u)
    return pd.DataFrame({"firm": np.repeat(np.arange(n), t), "year": np.tile(years, n),
                         "q": q.ravel(), "k": k.ravel()})


@pytest.mark.unit
@pytest.mark.parametrize("model", ["time_invariant", "bc92"])
def test_panel_efficiency_draws_share_one_u_per_unit(model):
    df = sim_panel()
    res = sfa(df, y="q", x=["k"], model=model, unit="firm", time="year")
    c = res.coef.set_index("term")["estimate"]
    sv, su, eta = c["sigma_v"], c["sigma_u"], c.get("eta", 0.0)
    # Battese-Coelli (1992) by hand: u_i | (all of unit i's residuals) ~ N+(mu_i*, s_i*^2)
    e = np.log(df["q"]) - c["const"] - c["ln_k"] * np.log(df["k"])
    h = np.exp(-eta * (df["year"] - df.groupby("firm")["year"].transform("max"))).to_numpy()
    sums = pd.DataFrame({"he": h * e, "hh": h**2}).groupby(df["firm"]).sum()
    den = sv**2 + su**2 * sums["hh"]
    mu_i = (-su**2 * sums["he"] / den).to_numpy()
    s_i = (su * sv / np.sqrt(den)).to_numpy()
    unit = df["firm"].to_numpy()
    mu_r, s_r = mu_i[unit], s_i[unit]
    z = mu_r / s_r
    u_hand = h * (mu_r + s_r * stats.norm.pdf(z) / stats.norm.cdf(z))
    te_hand = (np.exp(-h * mu_r + 0.5 * h**2 * s_r**2) * stats.norm.cdf(z - h * s_r)
               / stats.norm.cdf(z))
    np.testing.assert_allclose(res.efficiency["u_jlms"], u_hand, rtol=1e-9)
    np.testing.assert_allclose(res.efficiency["te_bc"], te_hand, rtol=1e-9)

    n_draws = 4000
    draws = res.efficiency_draws(n_draws=n_draws, random_seed=3)
    u_over_h = -np.log(draws.to_numpy()) / h[:, None]
    by_unit = pd.DataFrame(u_over_h).groupby(unit)
    spread = (by_unit.max() - by_unit.min()).to_numpy().max()
    if model == "time_invariant":   # one efficiency per unit and draw, exactly
        by_firm = draws.groupby(level="firm")
        assert (by_firm.max() - by_firm.min()).to_numpy().max() == 0.0
    assert spread <= 1e-12 * u_over_h.max()
    # the unit's u_i follows N+(mu_i*, s_i*^2): scipy's truncated normal as the reference
    first = u_over_h[np.flatnonzero(unit == 0)[0]]
    law = stats.truncnorm(-mu_i[0] / s_i[0], np.inf, loc=mu_i[0], scale=s_i[0])
    assert stats.kstest(first, law.cdf).pvalue > 1e-3
    mc_se = res.efficiency["te_bc_sd"].to_numpy() / np.sqrt(n_draws)
    assert np.all(np.abs(draws.mean(axis=1).to_numpy() - te_hand) < 4.5 * mc_se)
    # covariance of a unit's first and last year: E[e^-(h1+h2)u] - E[e^-h1 u] E[e^-h2 u]
    rows = np.flatnonzero(df["year"].to_numpy() == 2001), np.flatnonzero(df["year"] == 2006)
    h1, h2 = h[rows[0]], h[rows[1]]
    exact = (m.battese_coelli(mu_i, s_i, h1 + h2)[0]
             - m.battese_coelli(mu_i, s_i, h1)[0] * m.battese_coelli(mu_i, s_i, h2)[0])
    d1, d2 = draws.to_numpy()[rows[0]], draws.to_numpy()[rows[1]]
    sample = ((d1 - d1.mean(1, keepdims=True)) * (d2 - d2.mean(1, keepdims=True))).sum(1) / (
        n_draws - 1)
    assert np.mean(sample / exact) == pytest.approx(1.0, abs=0.02)


@pytest.mark.unit
def test_cross_section_draws_stay_one_per_row():
    df, _ = sim_cross(n=300, seed=2)
    res = sfa(df, y="q", x=["k", "l"])
    c = res.coef.set_index("term")["estimate"]
    mu_s, s_s = m.conditional_cross(res.efficiency["residual"].to_numpy(), c["sigma_v"],
                                    c["sigma_u"], "half_normal")
    q = np.random.default_rng(4).uniform(size=(300, 50))
    expected = np.exp(-m.u_quantile(mu_s[:, None], s_s[:, None], q))
    np.testing.assert_allclose(res.efficiency_draws(n_draws=50, random_seed=4), expected,
                               rtol=1e-12)
