"""BayesianSFA: model structure, log-density against the NumPy likelihood, and a short
NUTS run on the Christensen-Greene electricity data checked against the MLE."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from bayesdid.efficiency.bayes_sfa import BayesianSFA, BayesSFAResult, SFAPriors
from bayesdid.classical import _sfa_math as m
from bayesdid.efficiency.sfa import NonPositiveValueError, sfa
from bayesdid.datasets.simulate_efficiency import simulate_efficiency
from bayesdid.errors import BayesDidError
from bayesdid.report.sfa_plots import plot_efficiency_intervals, plot_frontier

ROOT = Path(__file__).resolve().parents[1]
ELEC = {"y": "c", "x": ["output", "pl", "pk"], "frontier": "cost"}


def load_electricity() -> pd.DataFrame:
    """The shipped CSV, read directly (until the dataset is registered)."""
    df = pd.read_csv(ROOT / "data" / "electricity.csv")
    return df.assign(c=df["cost"] / df["fprice"], pl=df["lprice"] / df["fprice"],
                     pk=df["cprice"] / df["fprice"])


def _potential_and_reference(model_cfg: BayesianSFA, data: pd.DataFrame):
    d = model_cfg.prepare(data)
    model = model_cfg.build(data)
    pot = model.replace_rvs_by_values(model.potentials)[0]
    fn = model.compile_fn(pot, inputs=model.value_vars, point_fn=True)
    point = {k: v + 0.1 for k, v in model.initial_point().items()}
    beta_out = model.replace_rvs_by_values([model["beta"]])[0]
    beta = model.compile_fn(beta_out, inputs=model.value_vars, point_fn=True,
                            on_unused_input="ignore")(point)
    sv, su = np.exp(point["sigma_v_log__"]), np.exp(point["sigma_u_log__"])
    mu = point.get("mu", 0.0)
    e = d.sign * (d.y - d.X @ beta)
    if model_cfg.inefficiency == "cross_section":
        ref = m.loglik_cross(e, sv, su, model_cfg.distribution, mu).sum()
    else:
        last = np.zeros(d.n_units)
        np.maximum.at(last, d.unit_idx, d.time_values)
        h = np.exp(-point.get("eta", 0.0) * (d.time_values - last[d.unit_idx]))
        ref = m.loglik_panel(e, d.unit_idx, h, d.n_units, sv, su, mu).sum()
    return float(fn(point)), float(ref)


@pytest.mark.model
@pytest.mark.parametrize("dist,ineff", [("half_normal", "cross_section"),
                                        ("exponential", "cross_section"),
                                        ("truncated_normal", "cross_section"),
                                        ("half_normal", "time_invariant"),
                                        ("truncated_normal", "bc92")])
def test_log_density_matches_numpy_likelihood(dist, ineff):
    sim = simulate_efficiency(n_units=15, years=(2005, 2010), batches={2007: 4}, random_seed=2)
    cfg = BayesianSFA(**sim.params["sfa_kwargs"], distribution=dist, inefficiency=ineff)
    value, ref = _potential_and_reference(cfg, sim.data)
    assert value == pytest.approx(ref, rel=1e-6)


@pytest.mark.model
def test_build_structure_and_config():
    sim = simulate_efficiency(n_units=12, years=(2005, 2009), batches={2007: 3}, random_seed=3)
    cfg = BayesianSFA(**sim.params["sfa_kwargs"], inefficiency="bc92")
    model = cfg.build(sim.data)
    assert {v.name for v in model.free_RVs} == {"theta", "intercept_mean", "sigma_v",
                                                "sigma_u", "eta"}
    assert list(model.coords["term"]) == ["const", "ln_capital", "ln_labour", "ln_tech",
                                          "ln_energy", "ln_green/gdp_pc", "ln_aqi"]
    assert cfg.config()["priors"] == SFAPriors().to_dict()
    with pytest.raises(BayesDidError, match="half_normal"):
        BayesianSFA("q", ["k"], distribution="exponential", inefficiency="bc92")
    with pytest.raises(BayesDidError, match="needs unit"):
        BayesianSFA("q", ["k"], inefficiency="bc92").build(pd.DataFrame({"q": [1.0, 2.0],
                                                                          "k": [1.0, 3.0]}))
    bad = sim.data.copy()
    bad.loc[4, "energy"] = 0.0
    with pytest.raises(NonPositiveValueError, match="'energy'"):
        cfg.build(bad)


@pytest.mark.sampling
def test_electricity_posterior_within_two_sd_of_mle(tmp_path):
    df = load_electricity()
    mle = sfa(df, **ELEC).coef.set_index("term")
    res = BayesianSFA(**ELEC).fit(df, draws=500, tune=500, chains=2, cores=1,
                                  random_seed=11, progress=False)
    assert isinstance(res, BayesSFAResult)
    post = res.coef_table().set_index("term")
    for term in ["const", "ln_output", "ln_pl", "ln_pk", "sigma_v", "sigma_u"]:
        z = abs(post.loc[term, "mean"] - mle.loc[term, "estimate"]) / post.loc[term, "sd"]
        assert z < 2, (term, z)
    draws = res.efficiency_draws()
    assert draws.shape == (123, 1000) and ((draws > 0) & (draws <= 1)).all().all()
    mle_eff = sfa(df, **ELEC).efficiency["te_bc"].to_numpy()
    assert np.corrcoef(draws.mean(axis=1), mle_eff)[0, 1] > 0.99
    tab = res.effects()
    assert tab.loc[0, "group"] == "overall" and tab.loc[1, "group"] == "obs=0"
    assert (tab["estimand"] == "efficiency").all() and len(tab) == 124
    diag = res.diagnostics(warn=False)
    assert diag.loc[diag["parameter"] == "sigma_u", "r_hat"].iloc[0] < 1.05
    path = res.save(tmp_path / "sfa.nc")  # netCDF round trip keeps the draws
    back = BayesSFAResult.load(path)
    np.testing.assert_allclose(back.efficiency_draws().to_numpy(), draws.to_numpy())
    fig = plot_efficiency_intervals(res, max_points=20)
    assert fig.axes[0].get_xlabel().startswith("efficiency (hdi")
    plt.close(fig)
    fig = plot_frontier(res, df)
    assert fig.axes[0].get_xlabel() == "ln_output"
    plt.close(fig)


# ---------------------------------------------------------------------- panel draws
def _constant_posterior(cfg: BayesianSFA, data: pd.DataFrame, params: dict, n_draws: int,
                        seed: int = 5):
    """Efficiency draws of ``cfg`` under a posterior that puts all its mass on ``params``
    (the exact post-hoc draws of u, without NUTS)."""
    import xarray as xr

    d = cfg.prepare(data)
    full = lambda v: np.full((1, n_draws), float(v))
    post = xr.Dataset({"beta": (("chain", "draw", "term"),
                                np.broadcast_to(params["beta"], (1, n_draws, d.X.shape[1])))},
                      coords={"chain": [0], "draw": np.arange(n_draws), "term": list(d.names)})
    for name in ("sigma_v", "sigma_u", "mu", "eta"):
        if name in params:
            post[name] = (("chain", "draw"), full(params[name]))
    idata = cfg._add_efficiency(xr.DataTree.from_dict({"posterior": post}), d, seed)
    return d, BayesSFAResult.from_idata(idata, method="test", info={}).efficiency_draws()


def _fixed_params(cfg: BayesianSFA, data: pd.DataFrame) -> dict:
    """A parameter point near the data: OLS slopes, the intercept shifted by E[u]."""
    d = cfg.prepare(data)
    beta = np.linalg.lstsq(d.X, d.y, rcond=None)[0]
    beta[0] += d.sign * 0.3 * np.sqrt(2 / np.pi)
    return {"beta": beta, "sigma_v": 0.05, "sigma_u": 0.3}


@pytest.mark.unit
@pytest.mark.parametrize("dist,ineff", [("half_normal", "time_invariant"),
                                        ("truncated_normal", "bc92")])
def test_panel_efficiency_draws_share_one_u_per_unit(dist, ineff):
    sim = simulate_efficiency(n_units=30, years=(2005, 2012), batches={2007: 6}, random_seed=4)
    cfg = BayesianSFA(**sim.params["sfa_kwargs"], distribution=dist, inefficiency=ineff)
    params = _fixed_params(cfg, sim.data)
    if ineff == "bc92":
        params.update(eta=0.04, mu=0.1)
    n_draws = 4000
    d, draws = _constant_posterior(cfg, sim.data, params, n_draws)
    assert draws.shape == (240, n_draws) and draws.index.names == ["city", "year"]
    # the exact conditional: u_i | (all of unit i's residuals), BC92 pooling of the rows
    h = np.exp(-params.get("eta", 0.0) * (d.time_values - 2012))
    e = d.sign * (d.y - d.X @ params["beta"])   # distance function: sign -1
    mu_i, s_i = m.panel_conditional(e, d.unit_idx, h, d.n_units, params["sigma_v"],
                                    params["sigma_u"], params.get("mu", 0.0))
    u_over_h = -np.log(draws.to_numpy()) / h[:, None]
    by_unit = pd.DataFrame(u_over_h).groupby(d.unit_idx)
    assert (by_unit.max() - by_unit.min()).to_numpy().max() <= 1e-12 * u_over_h.max()
    if ineff == "time_invariant":   # one efficiency per unit and draw, exactly
        by_city = draws.groupby(level="city")
        assert (by_city.max() - by_city.min()).to_numpy().max() == 0.0
    te, te_sd = m.battese_coelli(mu_i[d.unit_idx], s_i[d.unit_idx], h)
    mc_se = te_sd / np.sqrt(n_draws)
    assert np.all(np.abs(draws.mean(axis=1).to_numpy() - te) < 4.5 * mc_se)
    # a unit's first and last years move together: Cov = E[e^-(h1+h2)u] - E[e^-h1 u]E[e^-h2 u]
    r1, r2 = np.flatnonzero(d.time_values == 2005), np.flatnonzero(d.time_values == 2012)
    exact = (m.battese_coelli(mu_i, s_i, h[r1] + h[r2])[0]
             - m.battese_coelli(mu_i, s_i, h[r1])[0] * m.battese_coelli(mu_i, s_i, h[r2])[0])
    sample = np.array([np.cov(a, b)[0, 1] for a, b in zip(draws.to_numpy()[r1],
                                                          draws.to_numpy()[r2])])
    assert np.mean(sample / exact) == pytest.approx(1.0, abs=0.02)


@pytest.mark.unit
def test_cross_section_draws_stay_one_per_row():
    sim = simulate_efficiency(n_units=20, years=(2005, 2010), batches={2007: 4}, random_seed=2)
    cfg = BayesianSFA(**sim.params["sfa_kwargs"])
    params = _fixed_params(cfg, sim.data)
    d, draws = _constant_posterior(cfg, sim.data, params, 50, seed=9)
    e = d.sign * (d.y - d.X @ params["beta"])
    mu_s, s_s = m.conditional_cross(e, params["sigma_v"], params["sigma_u"], "half_normal")
    q = np.random.default_rng([9, 104729]).uniform(size=(50, len(e)))
    expected = np.exp(-m.u_quantile(mu_s, s_s, q)).T   # one uniform per row and draw
    np.testing.assert_allclose(draws.to_numpy(), expected, rtol=1e-12)
