"""Rambachan-Roth sensitivity (classical): identified sets, FLCI, projection sets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayesdid import Panel
from bayesdid.did.event_study import event_study
from bayesdid.did.honest_did import (
    EventStudyCoefficients,
    _design,
    _flci,
    _sd_bias_map,
    event_study_coefficients,
    honest_did,
    identified_set,
)
from bayesdid.staggered.estimators import sun_abraham
from bayesdid.datasets import simulate_staggered
from bayesdid.errors import BayesDidError, DesignError

KS = [-4, -3, -2, 0, 1, 2, 3]


def _sigma(seed: int, n: int = len(KS), scale: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n))
    return (A @ A.T / n + 0.5 * np.eye(n)) * scale**2


# ---------------------------------------------------------------------- M = 0 analytically
@pytest.mark.unit
def test_sd_with_m0_is_the_linear_extrapolation_interval():
    """Delta^SD(0) allows exactly linear differential trends: the FLCI is the GLS
    linear-extrapolation estimate +/- z * its standard error."""
    beta = np.array([0.03, 0.021, 0.009, 0.11, 0.14, 0.15, 0.19])
    t = np.array(KS) + 1
    pre, post = t < 0, t > 0
    l = np.full(post.sum(), 1 / post.sum())
    z = stats.norm.ppf(0.975)

    # (a) leads independent of lags: theta_hat = l'b_post - c_hat * l't_post, c_hat the
    # GLS slope through the origin (delta_0 = 0) of the leads
    S = _sigma(1)
    S[np.ix_(pre, post)] = 0
    S[np.ix_(post, pre)] = 0
    Spp_inv = np.linalg.inv(S[np.ix_(pre, pre)])
    tp = t[pre]
    c_hat = (tp @ Spp_inv @ beta[pre]) / (tp @ Spp_inv @ tp)
    lt = l @ t[post]
    est = l @ beta[post] - c_hat * lt
    se = np.sqrt(l @ S[np.ix_(post, post)] @ l + lt**2 / (tp @ Spp_inv @ tp))
    row = honest_did(beta, S, KS, restriction="sd", M=[0]).effects().iloc[0]
    assert row["estimate"] == pytest.approx(est, rel=1e-10)
    assert row["se_or_sd"] == pytest.approx(se, rel=1e-10)
    assert (row["lower"], row["upper"]) == pytest.approx((est - z * se, est + z * se), rel=1e-10)

    # (b) correlated leads and lags: the minimum-variance unbiased weights under a linear
    # trend, v = argmin v'Sv s.t. v_post = l, t'v = 0, from the KKT system
    S = _sigma(2)
    n_pre = int(pre.sum())
    kkt = np.zeros((n_pre + 1, n_pre + 1))
    kkt[:n_pre, :n_pre] = S[np.ix_(pre, pre)]
    kkt[:n_pre, n_pre] = kkt[n_pre, :n_pre] = tp
    rhs = np.r_[-S[np.ix_(pre, post)] @ l, -lt]
    v = np.r_[np.linalg.solve(kkt, rhs)[:n_pre], l]
    est, se = v @ beta, np.sqrt(v @ S @ v)
    row = honest_did(beta, S, KS, restriction="sd", M=[0]).effects().iloc[0]
    assert row["estimate"] == pytest.approx(est, rel=1e-10)
    assert row["upper"] - row["lower"] == pytest.approx(2 * z * se, rel=1e-10)


@pytest.mark.unit
def test_rm_with_m0_is_the_plain_interval_of_the_post_average():
    beta, S = np.linspace(-0.01, 0.2, len(KS)), _sigma(3)
    post = np.array(KS) >= 0
    l = np.full(post.sum(), 1 / post.sum())
    est, se = l @ beta[post], np.sqrt(l @ S[np.ix_(post, post)] @ l)
    row = honest_did(beta, S, KS, restriction="rm", M=[0]).effects().iloc[0]
    z = stats.norm.ppf(0.975)
    assert (row["lower"], row["upper"]) == pytest.approx((est - z * se, est + z * se), rel=1e-12)


# ---------------------------------------------------------------------- monotone in M
@pytest.mark.unit
@pytest.mark.parametrize("restriction, grid", [("rm", [0, 0.5, 1, 2]),
                                               ("sd", [0, 0.0025, 0.005, 0.01, 0.02])])
def test_intervals_widen_monotonically_in_m(restriction, grid):
    rng = np.random.default_rng(4)
    for seed in range(2):
        beta = rng.normal(0, 0.01, len(KS)) + np.r_[0, 0, 0, 0.1, 0.1, 0.1, 0.1]
        tab = honest_did(beta, _sigma(seed), KS, restriction=restriction, M=grid).effects()
        width = (tab["upper"] - tab["lower"]).to_numpy()
        assert np.all(np.diff(width) > 0), width
        # nested intervals: each contains the previous one
        assert np.all(np.diff(tab["upper"]) >= -1e-12) and np.all(np.diff(tab["lower"]) <= 1e-12)
        assert list(tab["group"]) == [f"M={m:g}" for m in grid]
        assert set(tab["estimand"]) == {"att_sensitivity"}


# ---------------------------------------------------------------------- FLCI correctness
@pytest.mark.unit
def test_flci_bias_bound_and_optimality():
    S = _sigma(5)
    d = _design(np.zeros(len(KS)), S, KS, None)
    K = _sd_bias_map(d)
    # K maps second differences to delta: delta = K w + c t has second differences w
    rng = np.random.default_rng(0)
    w, c = rng.normal(size=K.shape[1]), 0.7
    delta = K @ w + c * d.t
    path = np.r_[delta[: d.n_pre], 0.0, delta[d.n_pre:]]
    np.testing.assert_allclose(np.diff(path, 2), w, atol=1e-12)
    M, level = 0.01, 0.95
    fl = _flci(d, M, level)
    assert fl.v[d.n_pre:] == pytest.approx(d.l)
    assert fl.v @ d.t == pytest.approx(0.0, abs=1e-10)  # blind to linear trends
    # no feasible weights (t'v = 0) found at random give a shorter interval
    tp, r = d.t[: d.n_pre].astype(float), -d.l @ d.t[d.n_pre:]
    for _ in range(300):
        vp = fl.v[: d.n_pre] + rng.normal(0, 0.3, d.n_pre)
        vp += (r - tp @ vp) / (tp @ tp) * tp
        v = np.r_[vp, d.l]
        h = np.sqrt(v @ S @ v)
        other = h * stats.foldnorm.ppf(level, M * np.abs(K.T @ v).sum() / h)
        assert fl.half <= other * (1 + 1e-7)


@pytest.mark.unit
def test_flci_covers_under_the_worst_case_violation():
    """Coverage at the violation that maximises the FLCI's bias is the nominal level."""
    S = _sigma(6)
    M = 0.01
    d = _design(np.zeros(len(KS)), S, KS, None)
    fl = _flci(d, M, 0.95)
    K = _sd_bias_map(d)
    delta = K @ (M * np.sign(K.T @ fl.v)) + 0.02 * d.t  # worst case plus a linear trend
    tau = np.where(d.t > 0, 0.1 + 0.01 * d.t, 0.0)
    theta = d.l @ tau[d.n_pre:]
    draws = np.random.default_rng(1).multivariate_normal(tau + delta, S, size=20000)
    est = draws @ fl.v
    cover = np.mean(np.abs(est - theta) <= fl.half)
    assert 0.94 <= cover <= 0.96, cover


@pytest.mark.unit
def test_rm_projection_covers_under_a_violation_of_mbar_one():
    S = _sigma(7)
    t = np.array(KS) + 1
    delta = 0.01 * t  # pre changes 0.01, post changes 0.01: in Delta^RM(1)
    tau = np.where(t > 0, 0.05, 0.0)
    draws = np.random.default_rng(2).multivariate_normal(tau + delta, S, size=200)
    hits = 0
    for b in draws:
        row = honest_did(b, S, KS, restriction="rm", M=[1], n_sim=4000).effects().iloc[0]
        hits += row["lower"] <= 0.05 <= row["upper"]
    assert hits / len(draws) >= 0.95


# ---------------------------------------------------------------------- simulated panels
def _trend_panel(sigma: float, slope: float, seed: int):
    sim = simulate_staggered(n_units=150, years=(2000, 2013), batches={2005: 25, 2008: 25},
                             n_covariates=0, sigma=sigma, random_seed=seed)
    df = sim.data.copy()
    ever = df["cohort"].notna().to_numpy()
    k = (df["year"] - df["cohort"].astype("float")).to_numpy()
    df.loc[ever, "eco_eff"] += slope * (k[ever] + 1)  # differential trend, 0 at k = -1
    truth = sim.truth.set_index(["estimand", "group"])["value"]
    return Panel.from_frame(df, **sim.panel_kwargs), truth


@pytest.mark.unit
def test_identified_set_contains_the_truth_under_a_linear_pretrend():
    slope, lags = 0.02, 4
    panel, truth = _trend_panel(sigma=0.0, slope=slope, seed=8)
    es = event_study_coefficients(panel, leads=4, lags=lags)
    theta = np.mean([truth[("event_time", f"k={k}")] for k in range(lags + 1)])
    # noise-free: beta_k = tau_k + slope (k + 1) exactly
    expect = np.array([(truth[("event_time", f"k={k}")] if k >= 0 else 0.0) + slope * (k + 1)
                       for k in es.event_times])
    np.testing.assert_allclose(es.beta, expect, atol=1e-8)
    sd = identified_set(es, restriction="sd", M=[0, 0.01, 0.05])
    assert sd.loc[0, "lower"] == pytest.approx(theta, abs=1e-8)  # a point: the truth
    assert sd.loc[0, "upper"] == pytest.approx(theta, abs=1e-8)
    assert ((sd["lower"] <= theta + 1e-9) & (theta - 1e-9 <= sd["upper"])).all()
    rm = identified_set(es, restriction="rm", M=[0, 0.5, 1, 2]).set_index("M")
    inside = (rm["lower"] <= theta + 1e-9) & (theta - 1e-9 <= rm["upper"])
    # the violation grows by exactly the pre-period change each period: Mbar >= 1 needed
    assert inside.tolist() == [False, False, True, True]
    assert rm.loc[1.0, "lower"] == pytest.approx(theta, abs=1e-8)


@pytest.mark.unit
def test_sd_interval_recovers_the_truth_that_the_naive_interval_misses():
    panel, truth = _trend_panel(sigma=0.03, slope=0.02, seed=9)
    es = event_study_coefficients(panel, leads=4, lags=4)
    theta = np.mean([truth[("event_time", f"k={k}")] for k in range(5)])
    naive = honest_did(es, restriction="rm", M=[0]).effects().iloc[0]
    assert not naive["lower"] <= theta <= naive["upper"]  # biased by the trend (+0.06)
    assert naive["estimate"] - theta == pytest.approx(0.06, abs=0.02)
    sd = honest_did(es, restriction="sd", M=[0, 0.005]).effects()
    for _, row in sd.iterrows():
        assert row["lower"] <= theta <= row["upper"]
        assert row["id_lower"] <= row["id_upper"] or np.isnan(row["id_lower"])
    assert sd["n_obs"].iloc[0] == es.n_obs[es.event_times >= 0].sum()


@pytest.mark.unit
@pytest.mark.parametrize("estimator", ["sun_abraham", "event_study"])
def test_coefficients_equal_the_estimators_output(estimator):
    sim = simulate_staggered(n_units=60, years=(2004, 2013), batches={2006: 10, 2009: 10},
                             random_seed=10)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    es = event_study_coefficients(panel, leads=3, lags=3, estimator=estimator)
    if estimator == "sun_abraham":
        ref = sun_abraham(panel, leads=3, lags=3).effects()
    else:
        ref = event_study(panel, leads=3, lags=3)
        ref = ref.effects()
    ref = ref[ref["estimand"] == "event_time"].set_index("group")
    labels = [f"k={k}" for k in es.event_times]
    assert labels == list(ref.index)
    np.testing.assert_allclose(es.beta, ref.loc[labels, "estimate"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(es.se(), ref.loc[labels, "se_or_sd"], rtol=1e-7)
    assert np.allclose(es.sigma, es.sigma.T)


# ---------------------------------------------------------------------- bad input
@pytest.mark.unit
def test_bad_inputs_are_typed_errors():
    beta, S = np.zeros(len(KS)), _sigma(0)
    with pytest.raises(DesignError, match="reference"):
        honest_did(np.zeros(3), np.eye(3), [-2, -1, 0])
    with pytest.raises(DesignError, match="missing \\[-3\\]"):
        honest_did(np.zeros(3), np.eye(3), [-4, -2, 0])
    with pytest.raises(DesignError, match="at least one lead"):
        honest_did(np.zeros(2), np.eye(2), [0, 1])
    with pytest.raises(BayesDidError, match="sigma"):
        honest_did(beta, np.eye(3), KS)
    with pytest.raises(BayesDidError, match="positive semi-definite"):
        honest_did(beta, -np.eye(len(KS)), KS)
    with pytest.raises(BayesDidError, match="M must"):
        honest_did(beta, S, KS, M=[-1])
    with pytest.raises(BayesDidError, match="restriction"):
        honest_did(beta, S, KS, restriction="rmsd")
    with pytest.raises(BayesDidError, match="weights"):
        honest_did(beta, S, KS, l=[1, 0])
    with pytest.raises(BayesDidError, match="event_times"):
        honest_did(beta, S)
    es = EventStudyCoefficients(np.array(KS), beta, S, "x")
    assert len(honest_did(es, M=[0, 1]).effects()) == 2
