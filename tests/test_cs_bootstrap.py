"""Callaway-Sant'Anna multiplier bootstrap and uniform (sup-t) bands.

bayesdid.staggered.callaway_santanna(bootstrap=, uniform=, multiplier=, random_seed=) and
bayesdid.staggered._bootstrap. No stored csdid bootstrap reference exists (the stored
csdid JSONs are analytic, bstrap=False; bootstrap draws cannot match across RNGs), so the
bootstrap is checked against the analytic influence-function SEs (same variance) and
against known truth (joint coverage of the uniform band over simulated panels).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesdid import Panel
from bayesdid.staggered._bootstrap import bootstrap_se, multiplier_draws, sup_t_crit
from bayesdid.staggered.callaway_santanna import callaway_santanna
from bayesdid.datasets import simulate_staggered
from bayesdid.errors import BayesDidError, ColumnError

SIM = {"n_units": 400, "years": (2005, 2016), "batches": {2008: 60, 2011: 60},
       "n_covariates": 0, "random_seed": 5}
Z95 = stats.norm.ppf(0.975)


def _panel(**kw):
    sim = simulate_staggered(**{**SIM, **kw})
    return sim, Panel.from_frame(sim.data, **sim.panel_kwargs)


@pytest.fixture(scope="module")
def fits():
    _sim, panel = _panel()
    analytic = callaway_santanna(panel)
    boot = callaway_santanna(panel, bootstrap=999, uniform=True, random_seed=1)
    return panel, analytic, boot


# ------------------------------------------------------------------ numpy layer
@pytest.mark.unit
def test_multiplier_draws_match_analytic_variance_and_clusters():
    rng = np.random.default_rng(0)
    psi = rng.normal(size=(600, 3)) * np.array([1.0, 2.0, 0.5])
    analytic = np.sqrt((psi**2).sum(0)) / 600
    for kind in ("rademacher", "mammen"):
        dev = multiplier_draws(psi, draws=4000, multiplier=kind, random_seed=2)
        assert dev.shape == (4000, 3)
        np.testing.assert_allclose(bootstrap_se(dev), analytic, rtol=0.06)
        # the standard deviation (not only the IQR) matches too; mean is ~0
        np.testing.assert_allclose(dev.std(0), analytic, rtol=0.05)
        assert np.all(np.abs(dev.mean(0)) < 4 * analytic / np.sqrt(4000))
    # clusters of 3 rows: one multiplier per cluster, variance of cluster sums
    codes = np.repeat(np.arange(200), 3)
    dev = multiplier_draws(psi, draws=4000, clusters=codes, random_seed=2)
    sums = np.stack([np.bincount(codes, weights=psi[:, j]) for j in range(3)], axis=1)
    np.testing.assert_allclose(dev.std(0), np.sqrt((sums**2).sum(0)) / 600, rtol=0.05)
    # chunking does not change the draws' distribution; same seed, same draws
    np.testing.assert_array_equal(multiplier_draws(psi, draws=50, random_seed=7),
                                  multiplier_draws(psi, draws=50, random_seed=7))


@pytest.mark.unit
def test_sup_t_crit_independent_and_identical_columns():
    # K independent N(0,1): crit = quantile of max|Z| = Phi^-1((1 + 0.95^(1/K)) / 2)
    rng = np.random.default_rng(3)
    dev = rng.normal(size=(20000, 5))
    crit = sup_t_crit(dev, np.ones(5), 0.95)
    assert crit == pytest.approx(stats.norm.ppf((1 + 0.95 ** (1 / 5)) / 2), abs=0.03)
    # perfectly correlated columns: the band is the pointwise one
    same = np.repeat(dev[:, :1], 4, axis=1)
    assert sup_t_crit(same, np.ones(4), 0.95) == pytest.approx(Z95, abs=0.03)
    assert np.isnan(sup_t_crit(dev, np.full(5, np.nan), 0.95))


# ------------------------------------------------------------------ estimator
@pytest.mark.unit
def test_bootstrap_se_close_to_analytic(fits):
    _, analytic, boot = fits
    a, b = analytic.effects(), boot.effects()
    assert list(a["group"]) == list(b["group"]) and len(a) == 47
    np.testing.assert_array_equal(a["estimate"], b["estimate"])  # point estimates untouched
    ratio = (b["se_or_sd"] / a["se_or_sd"]).to_numpy()
    assert np.all(np.abs(ratio - 1) < 0.10), np.round(ratio, 3)
    assert abs(np.median(ratio) - 1) < 0.04
    for key in ("group", "dynamic", "calendar"):  # R's overall summaries
        assert boot.info["summaries"][key][1] == pytest.approx(
            analytic.info["summaries"][key][1], rel=0.10)
    assert (a["band"] == "pointwise").all() and analytic.info["bootstrap"] is None


@pytest.mark.unit
def test_uniform_band_wider_than_pointwise(fits):
    boot = fits[2]
    tab = boot.effects()
    info = boot.info["bootstrap"]
    assert info["draws"] == 999 and info["multiplier"] == "rademacher"
    assert info["n_clusters"] == 400 and info["uniform"] is True
    assert set(info["crit"]) == {"att_gt", "group", "dynamic", "calendar"}
    # 22 ATT(g,t), 14 event times, 8 calendar years, 2 cohorts: sup-t > pointwise z
    for key in ("att_gt", "dynamic", "calendar"):
        assert 2.2 < info["crit"][key] < 3.5
    assert Z95 < info["crit"]["group"] < 2.6
    uni = tab[tab["band"] == "uniform"]
    assert len(uni) == len(tab) - 1  # every row but the single overall ATT
    overall = tab[(tab["estimand"] == "att") & (tab["group"] == "overall")].iloc[0]
    assert overall["band"] == "pointwise"
    assert overall["upper"] - overall["estimate"] == pytest.approx(Z95 * overall["se_or_sd"])
    half = (uni["upper"] - uni["lower"]) / 2
    assert (half > Z95 * uni["se_or_sd"] * 1.1).all()
    assert (tab["interval"] == "confidence").all()
    ev = tab[tab["estimand"] == "event_time"]
    np.testing.assert_allclose(ev["upper"] - ev["estimate"],
                               info["crit"]["dynamic"] * ev["se_or_sd"], rtol=1e-12)


@pytest.mark.unit
def test_seeds_options_and_clusters(fits):
    panel, analytic, boot = fits
    again = callaway_santanna(panel, bootstrap=999, uniform=True, random_seed=1)
    pd.testing.assert_frame_equal(again.effects(), boot.effects())
    other = callaway_santanna(panel, bootstrap=999, uniform=True, random_seed=2).effects()
    assert not np.allclose(other["se_or_sd"], boot.effects()["se_or_sd"])
    # pointwise bootstrap: z * bootstrap se; same draws (same seed) as the uniform run
    point = callaway_santanna(panel, bootstrap=999, random_seed=1).effects()
    assert (point["band"] == "pointwise").all()
    np.testing.assert_array_equal(point["se_or_sd"], boot.effects()["se_or_sd"])
    np.testing.assert_allclose(point["upper"] - point["estimate"], Z95 * point["se_or_sd"])
    # uniform=True alone: 999 draws; bootstrap=True: 999 draws; Mammen multipliers
    only = callaway_santanna(panel, uniform=True, random_seed=1, aggregate="dynamic")
    assert only.info["bootstrap"]["draws"] == 999
    mam = callaway_santanna(panel, bootstrap=True, multiplier="mammen", random_seed=1,
                            aggregate="dynamic").effects()
    key = ["estimand", "group"]
    ref = analytic.effects().set_index(key)["se_or_sd"]
    ratio = mam.set_index(key)["se_or_sd"] / ref.loc[mam.set_index(key).index]
    assert len(ratio) == 22 + 14 and np.all(np.abs(ratio - 1) < 0.12)
    # clustered by pairs of units: bootstrap SE ~ analytic clustered SE, one draw per pair
    df = panel.data
    df["pair"] = pd.factorize(df["city"])[0] // 2
    pp = Panel.from_frame(df, unit="city", time="year", outcome="eco_eff", cohort="cohort",
                         cluster="pair")
    a_cl = callaway_santanna(pp, aggregate="dynamic").effects()  # panel cluster: pair
    b_cl = callaway_santanna(pp, cluster="pair", aggregate="dynamic", bootstrap=999,
                             random_seed=3)
    assert b_cl.info["bootstrap"]["n_clusters"] == 200 and b_cl.info["cluster"] == "pair"
    ratio = b_cl.effects()["se_or_sd"].to_numpy() / a_cl["se_or_sd"].to_numpy()
    assert np.all(np.abs(ratio - 1) < 0.12)


@pytest.mark.unit
def test_bad_bootstrap_options(fits):
    panel = fits[0]
    for bad in (-1, "999", 2.5):
        with pytest.raises(BayesDidError, match="bootstrap"):
            callaway_santanna(panel, bootstrap=bad)
    with pytest.raises(BayesDidError, match="too few"):
        callaway_santanna(panel, bootstrap=10)
    with pytest.raises(BayesDidError, match="multiplier"):
        callaway_santanna(panel, bootstrap=100, multiplier="webb")
    with pytest.raises(BayesDidError, match="uniform"):
        callaway_santanna(panel, uniform="yes")
    with pytest.raises(ColumnError, match="not in the panel"):
        callaway_santanna(panel, cluster="state")
    with pytest.raises(BayesDidError, match="constant within unit") as err:
        callaway_santanna(panel, cluster="year")
    assert err.value.rows is not None and len(err.value.rows) > 0


@pytest.mark.slow
def test_uniform_band_joint_coverage_over_panels():
    """Over 40 simulated panels the uniform band covers all 11 event-time effects jointly
    in ~95% of panels, the pointwise intervals far less often (truth: sim.truth for
    k >= 0, zero for the pre-period pseudo-ATTs; no covariates, so parallel trends hold)."""
    joint_uniform = joint_pointwise = 0
    reps = 40
    for seed in range(reps):
        sim = simulate_staggered(n_units=150, years=(2005, 2014),
                                 batches={2007: 25, 2009: 25}, n_covariates=0,
                                 random_seed=100 + seed)
        panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
        tab = callaway_santanna(panel, method="reg", aggregate="dynamic", bootstrap=499,
                                uniform=True, random_seed=seed).effects()
        ev = tab[tab["estimand"] == "event_time"].set_index("group")
        truth = sim.truth[sim.truth["estimand"] == "event_time"].set_index("group")["value"]
        truth = truth.reindex(ev.index).fillna(0.0)  # pre-periods: no effect
        inside = (ev["lower"] <= truth) & (truth <= ev["upper"])
        half = ev["se_or_sd"] * Z95
        inside_pw = (ev["estimate"] - half <= truth) & (truth <= ev["estimate"] + half)
        assert len(ev) == 11 and (ev["band"] == "uniform").all()
        joint_uniform += bool(inside.all())
        joint_pointwise += bool(inside_pw.all())
    assert joint_uniform / reps >= 0.85
    assert joint_pointwise < joint_uniform
    assert joint_pointwise / reps <= 0.8
