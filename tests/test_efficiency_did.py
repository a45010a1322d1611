"""Efficiency into the DID: Rubin's rules, mixtures, and the full pipeline on the simulator
(Bayesian SFA -> efficiency draws -> TWFE refitted per draw)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesdid.bayes.sfa import BayesianSFA
from bayesdid.classical.sfa import sfa
from bayesdid.classical.twfe import twfe
from bayesdid.datasets.simulate_efficiency import simulate_efficiency
from bayesdid.efficiency_did import efficiency_did, pool_draws, rubin_combine
from bayesdid.errors import ColumnError


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
    from bayesdid.bayes.did import HierarchicalDiD

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
