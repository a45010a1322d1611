"""Bayesian event study: cohort x event-time effects and the Bayesian sensitivity analysis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayesdid import Panel
from bayesdid.did.aggregate import aggregation
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.bayes.result import BayesResult
from bayesdid.did.bayes_sensitivity import bayes_sensitivity
from bayesdid.datasets import simulate_staggered
from bayesdid.errors import BayesDidError

SMALL = dict(n_units=40, years=(2005, 2014), batches={2008: 6, 2010: 6})


@pytest.fixture(scope="module")
def sim():
    return simulate_staggered(**SMALL, random_seed=3)


@pytest.fixture(scope="module")
def panel(sim):
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


def _fake_result(columns: dict[tuple[str, str], np.ndarray], n_obs=None) -> BayesResult:
    """A BayesResult whose effect draws are given (chains x draws per effect)."""
    keys = list(columns)
    data = np.stack([columns[k] for k in keys], axis=-1)
    post = xr.Dataset({"effect": (("chain", "draw", "effect_id"), data)}, coords={
        "effect_id": [f"{e}|{g}" for e, g in keys],
        "estimand": ("effect_id", [e for e, _ in keys]),
        "group": ("effect_id", [g for _, g in keys])})
    const = xr.Dataset({"effect_n_obs": ("effect_id", n_obs or [10] * len(keys))})
    tree = xr.DataTree.from_dict({"posterior": post, "constant_data": const})
    return BayesResult.from_idata(tree, method="hierarchical_did")


# ---------------------------------------------------------------------- cohort x event time
@pytest.mark.unit
def test_cohort_by_event_time_rows_from_a_constant_posterior(panel):
    design = HierarchicalDiD(leads=3).prepare(panel)
    cells = design.cells
    agg = aggregation(cells, ["region"], event_time=True)
    np.testing.assert_allclose(agg.matrix.sum(axis=1), 1.0)
    tau = np.linspace(-1.0, 2.0, len(cells)) ** 2  # a "posterior" with one constant draw
    eff = dict(zip(agg.labels, agg.matrix @ tau))
    counts = dict(zip(agg.labels, agg.n_obs))
    cells = cells.assign(tau=tau)
    expected = {(c, k) for c, k in zip(cells["cohort"], cells["k"])}
    got = {lab for lab in agg.labels if lab.startswith("event_time|cohort=")}
    assert got == {f"event_time|cohort={c}, k={k}" for c, k in expected}
    assert len(expected) > 10 and any(k < 0 for _, k in expected)  # leads included
    for (c, k), sub in cells.groupby(["cohort", "k"]):
        label = f"event_time|cohort={c}, k={k}"
        # observation-weighted average over the cohort's region cells at k
        assert eff[label] == pytest.approx(np.average(sub["tau"], weights=sub["n_obs"]))
        assert counts[label] == sub["n_obs"].sum()
    # pooled event-time rows are unchanged: weighted over cohorts and regions
    for k, sub in cells.groupby("k"):
        assert eff[f"event_time|k={k}"] == pytest.approx(
            np.average(sub["tau"], weights=sub["n_obs"]))
    # and are the n_obs-weighted average of the cohort x event-time rows
    for k in cells["k"].unique():
        rows = [lab for lab in got if lab.endswith(f", k={k}")]
        w = np.array([counts[r] for r in rows], float)
        assert eff[f"event_time|k={k}"] == pytest.approx(
            np.average([eff[r] for r in rows], weights=w))
    # no cohort x event-time rows without event_time
    plain = aggregation(design.cells, ["region"], event_time=False)
    assert not any(e == "event_time" for e in plain.estimand)


# ---------------------------------------------------------------------- sensitivity (draws)
@pytest.mark.unit
def test_sensitivity_from_a_constant_posterior_is_a_uniform():
    """ATT fixed at a, leads fixed at +/-m: ATT - delta ~ Uniform(a - M m, a + M m)."""
    a, m, n = 0.1, 0.03, 4000
    res = _fake_result({("att", "overall"): np.full((2, n), a),
                        ("event_time", "k=-3"): np.full((2, n), 0.01),
                        ("event_time", "k=-2"): np.full((2, n), -m),
                        ("event_time", "k=0"): np.full((2, n), 0.08),
                        ("event_time", "k=1"): np.full((2, n), 0.12)})
    tab = bayes_sensitivity(res, M=[0, 0.5, 1, 2], random_seed=1).effects()
    assert tab["group"].tolist() == ["M=0", "M=0.5", "M=1", "M=2"]
    assert set(tab["estimand"]) == {"att_sensitivity"} and set(tab["interval"]) == {"eti"}
    for _, row in tab.iterrows():
        half = 0.95 * row["M"] * m  # ETI of a uniform of half-width M m
        assert row["lower"] == pytest.approx(a - half, abs=2e-3 * max(row["M"], 1e-9) + 1e-12)
        assert row["upper"] == pytest.approx(a + half, abs=2e-3 * max(row["M"], 1e-9) + 1e-12)
        assert row["se_or_sd"] == pytest.approx(row["M"] * m / np.sqrt(3), rel=0.03, abs=1e-12)
        assert row["estimate"] == pytest.approx(a, abs=1e-3)
    # per-period violations on the average of k=0,1: mean of two uniforms (narrower)
    per = bayes_sensitivity(res, M=[1], event_times=[0, 1], violation="per_period",
                            random_seed=1).effects().iloc[0]
    assert per["estimate"] == pytest.approx(0.1, abs=1e-3)
    assert per["se_or_sd"] == pytest.approx(m / np.sqrt(6), rel=0.03)


@pytest.mark.unit
def test_sensitivity_rejects_bad_input():
    res = _fake_result({("att", "overall"): np.zeros((1, 10)),
                        ("event_time", "k=0"): np.zeros((1, 10))})
    with pytest.raises(BayesDidError, match="lead"):
        bayes_sensitivity(res)
    res = _fake_result({("att", "overall"): np.zeros((1, 10)),
                        ("event_time", "k=-2"): np.zeros((1, 10))})
    with pytest.raises(BayesDidError, match="M must"):
        bayes_sensitivity(res, M=[-1])
    with pytest.raises(BayesDidError, match="k=\\[3\\]"):
        bayes_sensitivity(res, event_times=[3])
    with pytest.raises(BayesDidError, match="per_period"):
        bayes_sensitivity(res, violation="per_period")
    with pytest.raises(BayesDidError, match="BayesResult"):
        bayes_sensitivity(object())


# ---------------------------------------------------------------------- with a real fit
@pytest.fixture(scope="module")
def fit(panel):
    return HierarchicalDiD(leads=3).fit(panel, draws=300, tune=300, chains=2,
                                        random_seed=1, progress=False)


@pytest.mark.sampling
def test_fit_reports_cohort_by_event_time_effects(fit, sim):
    post = fit.idata.posterior
    agg = fit.idata.constant_data["aggregation"].values
    tau = post["tau_cell"].values.reshape(-1, agg.shape[1])
    # every reported draw is the observation-weighted average of the cell draws
    np.testing.assert_allclose(post["effect"].values.reshape(-1, agg.shape[0]), tau @ agg.T,
                               rtol=1e-10, atol=1e-12)
    eff = fit.effects()
    rows = eff[eff["group"].str.startswith("cohort=") & (eff["estimand"] == "event_time")]
    # truth: mean effect of the treated city-years of each cohort x event time
    cells = sim.tau.merge(sim.data[["city", "year", "cohort"]], on=["city", "year"])
    cells["k"] = cells["year"] - cells["cohort"].astype(int)
    truth = {f"cohort={c}, k={k}": v for (c, k), v in cells.groupby(["cohort", "k"])["tau"].mean()
             .items()}
    inside = []
    for _, row in rows.iterrows():
        k = int(row["group"].rsplit("k=", 1)[1])
        value = truth.get(row["group"], 0.0) if k >= 0 else 0.0  # no anticipation: leads 0
        inside.append(row["lower"] <= value <= row["upper"])
    assert len(rows) == 2 * 8 - 2  # cohorts 2009 (k=-3..5), 2011 (k=-3..3)
    assert np.mean(inside) >= 0.85, rows.assign(inside=inside)
    # cohort-level pre-trend probability = share of draws with both leads within tolerance
    leads = np.stack([fit.draws("event_time", f"cohort=2009, k={k}") for k in (-3, -2)])
    assert fit.pretrend_probability(0.05, cohort=2009) == pytest.approx(
        np.mean(np.all(np.abs(leads) <= 0.05, axis=0)))
    with pytest.raises(BayesDidError, match="cohort 1999"):
        fit.pretrend_probability(0.05, cohort=1999)


@pytest.mark.sampling
def test_sensitivity_on_a_fit(fit, sim):
    tab = bayes_sensitivity(fit, M=[0, 0.5, 1, 2]).effects()
    att = fit.draws("att", "overall")
    m0 = tab.iloc[0]
    # M = 0 is the unadjusted posterior, exactly
    assert m0["estimate"] == pytest.approx(att.mean(), rel=1e-12)
    assert (m0["lower"], m0["upper"]) == pytest.approx(tuple(np.quantile(att, [0.025, 0.975])))
    width = (tab["upper"] - tab["lower"]).to_numpy()
    assert np.all(np.diff(width) > 0), width
    assert np.all(np.diff(tab["se_or_sd"]) > 0)
    truth = sim.truth.set_index(["estimand", "group"])["value"][("att", "overall")]
    assert (tab["lower"] <= truth).all() and (truth <= tab["upper"]).all()
    # same seed, same numbers; HDI available too
    again = bayes_sensitivity(fit, M=[0, 0.5, 1, 2]).effects()
    pd.testing.assert_frame_equal(again, tab)
    hdi = bayes_sensitivity(fit, M=[0], interval="hdi").effects().iloc[0]
    row = fit.effect("att", "overall")
    assert (hdi["lower"], hdi["upper"]) == pytest.approx((row["lower"], row["upper"]), rel=1e-6)
    # the event-time target matches the average of the event-time draws at M = 0
    ks = list(range(4))
    sub = bayes_sensitivity(fit, M=[0], event_times=ks).effects().iloc[0]
    avg = np.mean([fit.draws("event_time", f"k={k}") for k in ks], axis=0)
    assert sub["estimate"] == pytest.approx(avg.mean(), rel=1e-12)
