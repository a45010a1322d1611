"""Efficiency into the DID: Rubin's rules, mixtures, and the full pipeline on the simulator
(Bayesian SFA -> efficiency draws -> TWFE refitted per draw)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesdid.efficiency.bayes_sfa import BayesianSFA
from bayesdid.classical import _sfa_math as m
from bayesdid.efficiency.sfa import frontier_design, sfa
from bayesdid.did.twfe import twfe
from bayesdid.datasets.simulate_efficiency import simulate_efficiency
from bayesdid.efficiency.efficiency_did import efficiency_did, pool_draws, rubin_combine
from bayesdid.errors import ColumnError
from bayesdid.panel import Panel


@pytest.mark.unit
def test_rubin_rules_by_hand():
    est, se = np.array([0.10, 0.14, 0.12, 0.08]), np.array([0.02, 0.03, 0.025, 0.02])
    out = rubin_combine(est, se, level=0.9)
    w, b = np.mean(se**2), np.var(est, ddof=1)
    t = w + 1.25 * b
    df = 3 / (1.25 * b / t) ** 2
    assert out["se"] == pytest.approx(np.sqrt(t))
    assert out["df"] == pytest.approx(df)
    assert out["upper"] == pytest.approx(0.11 + stats.t.ppf(0.95, df) * np.sqrt(t))
    small = rubin_combine(est, se, df_complete=20)
    assert small["df"] < out["df"]  # Barnard-Rubin never exceeds the large-sample df


@pytest.mark.unit
def test_pooled_mixture_moments():
    rng = np.random.default_rng(0)
    parts = [rng.normal(mu, 1.0, 4000) for mu in (0.0, 2.0)]
    out = pool_draws(parts, level=0.95)
    assert out["estimate"] == pytest.approx(1.0, abs=0.05)
    assert out["se"] == pytest.approx(np.sqrt(2.0), abs=0.05)  # 1 + var of the means
    assert out["lower"] < -1.0 and out["upper"] > 3.0


@pytest.fixture(scope="module")
def sim_and_fit():
    sim = simulate_efficiency(n_units=60, years=(2008, 2017), batches={2010: 10, 2012: 10},
                              random_seed=2)
    res = BayesianSFA(**sim.params["sfa_kwargs"]).fit(
        sim.data, draws=300, tune=300, chains=2, cores=1, random_seed=1, progress=False)
    return sim, res


@pytest.mark.pipeline
def test_propagated_did_covers_truth_and_is_wider(sim_and_fit):
    sim, res = sim_and_fit
    draws = res.efficiency_draws()
    assert draws.shape == (600, 600)
    rho = stats.spearmanr(draws.mean(axis=1), sim.data["efficiency"])[0]
    assert rho >= 0.8
    out = efficiency_did(res, sim.data, twfe, panel_kwargs=sim.panel_kwargs, n_draws=20,
                         random_seed=3, progress=False)
    truth = sim.truth.query("estimand == 'att' and group == 'overall'")["value"].iloc[0]
    row = out.effect("att", "overall")
    assert row["lower"] <= truth <= row["upper"]
    cmp = out.comparison().iloc[0]
    assert cmp["width_ratio"] > 1.0
    assert out.info["combine"] == "rubin" and row["method"] == "twfe+propagated"
    assert 0 < out.effects()["fraction_missing"].iloc[0] < 1


@pytest.mark.pipeline
def test_classical_frontier_draws_and_bad_index(sim_and_fit):
    sim, _ = sim_and_fit
    mle = sfa(sim.data, **sim.params["sfa_kwargs"])
    assert stats.spearmanr(mle.efficiency["te_bc"], sim.data["efficiency"])[0] >= 0.8
    out = efficiency_did(mle, sim.data, twfe, panel_kwargs=sim.panel_kwargs, n_draws=10,
                         progress=False)
    assert out.comparison()["width_ratio"].iloc[0] > 1.0
    draws = mle.efficiency_draws(n_draws=20).iloc[:-5]
    with pytest.raises(ColumnError, match="no efficiency draw"):
        efficiency_did(draws, sim.data, twfe, panel_kwargs=sim.panel_kwargs, n_draws=5,
                       progress=False)
    unnamed = pd.DataFrame(draws.to_numpy())
    with pytest.raises(ColumnError, match="indexed by"):
        efficiency_did(unnamed, sim.data, twfe, panel_kwargs=sim.panel_kwargs, n_draws=5,
                       progress=False)


@pytest.mark.pipeline
def test_bayesian_did_is_pooled_as_a_mixture(sim_and_fit):
    from bayesdid.did.hierarchical import HierarchicalDiD

    sim, res = sim_and_fit

    def hdid(panel):
        return HierarchicalDiD(errors="iid").fit(panel, draws=150, tune=150, chains=1, cores=1,
                                                 random_seed=5, progress=False)

    out = efficiency_did(res, sim.data, hdid, panel_kwargs=sim.panel_kwargs, n_draws=2,
                         random_seed=4, progress=False)
    assert out.info["combine"] == "mixture"
    row = out.effect("att", "overall")
    assert row["interval"] == "hdi" and row["method"] == "hierarchical_did+propagated"
    truth = sim.truth.query("estimand == 'att' and group == 'overall'")["value"].iloc[0]
    assert row["lower"] <= truth <= row["upper"]
    assert out.comparison().query("group == 'overall'")["width_ratio"].iloc[0] > 0.9


# ---------------------------------------------------------------------- panel frontiers
def _twfe_weights(data: pd.DataFrame) -> np.ndarray:
    """TWFE's ATT is ``w @ y`` (Frisch-Waugh-Lovell): ``w`` is the treatment dummy
    residualised on city and year dummies, divided by its sum of squares."""
    units, years = pd.factorize(data["city"])[0], pd.factorize(data["year"])[0]
    X = np.column_stack([np.eye(units.max() + 1)[units], np.eye(years.max() + 1)[years][:, 1:]])
    d = data["treated"].to_numpy(float)
    r = d - X @ np.linalg.lstsq(X, d, rcond=None)[0]
    return r / (r @ r)


def _did_moments(w, e, unit_idx, h, sv, su, mu=0.0):
    """Exact mean and variance of ``sum_it w_it exp(-h_it u_i)`` given the frontier's
    parameters: ``u_i ~ N+(mu_i*, s_i*^2)`` independent over units, and within a unit
    ``Cov = E[exp(-(h_s + h_t) u_i)] - E[exp(-h_s u_i)] E[exp(-h_t u_i)]`` (balanced panel,
    rows sorted by unit then year)."""
    n_u = int(unit_idx.max()) + 1
    mu_i, s_i = m.panel_conditional(e, unit_idx, h, n_u, sv, su, mu)
    H, W = h.reshape(n_u, -1), w.reshape(n_u, -1)
    e1 = m.battese_coelli(mu_i[:, None], s_i[:, None], H)[0]
    e2 = m.battese_coelli(mu_i[:, None, None], s_i[:, None, None], H[:, :, None] + H[:, None, :])[0]
    cov = e2 - e1[:, :, None] * e1[:, None, :]
    return float(np.sum(W * e1)), float(np.einsum("it,its,is->", W, cov, W))


def _between(out, n_draws: int) -> float:
    """Rubin's between-draw variance B, from T = W + (1 + 1/M) B and gamma = (1 + 1/M) B / T."""
    row = out.effects().iloc[0]
    return float(row["fraction_missing"] * row["se_or_sd"] ** 2 / (1 + 1 / n_draws))


@pytest.mark.pipeline
def test_time_invariant_frontier_gives_a_zero_did_and_warns(sim_and_fit):
    sim, _ = sim_and_fit
    mle = sfa(sim.data, **sim.params["sfa_kwargs"], model="time_invariant")
    with pytest.warns(RuntimeWarning, match="do not change over time within any 'city'"):
        out = efficiency_did(mle, sim.data, twfe, panel_kwargs=sim.panel_kwargs, n_draws=5,
                             random_seed=3, progress=False)
    row = out.effect("att", "overall")
    # unit effects absorb a per-unit efficiency: every refit's ATT is zero
    assert abs(row["estimate"]) < 1e-12 and row["upper"] - row["lower"] < 1e-12


@pytest.mark.pipeline
def test_bc92_mle_propagation_carries_the_per_unit_variance(sim_and_fit):
    sim, _ = sim_and_fit
    data = sim.data
    mle = sfa(data, **sim.params["sfa_kwargs"], model="bc92")
    c = mle.coef.set_index("term")["estimate"]
    d = frontier_design(data, **sim.params["sfa_kwargs"])
    e = d.sign * (d.y - d.X @ c[list(d.names)].to_numpy())
    h = np.exp(-c["eta"] * (d.time_values - 2017))
    w = _twfe_weights(data)
    direct = twfe(Panel.from_frame(data, **sim.panel_kwargs)).effect()["estimate"]
    assert w @ data["efficiency"].to_numpy() == pytest.approx(direct, rel=1e-9)
    _, b_exact = _did_moments(w, e, d.unit_idx, h, c["sigma_v"], c["sigma_u"])
    n_draws = 40
    out = efficiency_did(mle, data, twfe, panel_kwargs=sim.panel_kwargs, n_draws=n_draws,
                         random_seed=3, progress=False)
    # B / B_exact ~ chi2(39) / 39: 99.9% of it lies in [0.42, 1.92]
    assert 0.42 < _between(out, n_draws) / b_exact < 1.92
    assert out.comparison()["width_ratio"].iloc[0] > 1.0


@pytest.fixture(scope="module")
def bc92_fit(sim_and_fit):
    sim, _ = sim_and_fit
    with warnings.catch_warnings():  # 2 x 300 draws: a few efficiencies have R-hat ~1.03
        warnings.filterwarnings("ignore", message=".*may not have converged")
        res = BayesianSFA(**sim.params["sfa_kwargs"], inefficiency="bc92").fit(
            sim.data, draws=300, tune=300, chains=2, cores=1, random_seed=1, progress=False)
    return sim, res


@pytest.mark.pipeline
def test_bc92_posterior_propagation_carries_the_per_unit_variance(bc92_fit):
    sim, res = bc92_fit
    data = sim.data
    d = frontier_design(data, **sim.params["sfa_kwargs"])
    post = res.idata.posterior.to_dataset().stack(sample=("chain", "draw")).transpose("sample", ...)
    w = _twfe_weights(data)
    moments = np.array([
        _did_moments(w, d.sign * (d.y - d.X @ beta), d.unit_idx,
                     np.exp(-eta * (d.time_values - 2017)), sv, su)
        for beta, sv, su, eta in zip(post["beta"].values, post["sigma_v"].values,
                                     post["sigma_u"].values, post["eta"].values)])
    # law of total variance over the posterior: E[Var(ATT | theta)] + Var(E[ATT | theta])
    b_ref = moments[:, 1].mean() + moments[:, 0].var(ddof=1)
    att_draws = w @ res.efficiency_draws().to_numpy()   # TWFE is linear in the outcome
    assert 0.75 < att_draws.var(ddof=1) / b_ref < 1.33   # 600 draws (autocorrelated)
    n_draws = 20
    out = efficiency_did(res, data, twfe, panel_kwargs=sim.panel_kwargs, n_draws=n_draws,
                         random_seed=3, progress=False)
    assert 0.26 < _between(out, n_draws) / b_ref < 2.42   # chi2(19) / 19, 99.9%
    assert out.comparison()["width_ratio"].iloc[0] > 1.0
