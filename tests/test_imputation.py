"""BJS imputation (issue 13): panels whose late periods keep a single untreated unit, the
typed error when a treated period has no untreated observation, and the two variances (BJS
leave-out conservative, Gardner two-stage) checked against independent dense computations
and against pyfixest's did2s where did2s runs."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from bayesdid import Panel
from bayesdid.did._fixest import pf
from bayesdid.staggered._imputation import TwoWayLS, fit_imputation
from bayesdid.staggered.estimators import imputation
from bayesdid.datasets import simulate_staggered
from bayesdid.errors import BayesDidError, DesignError
from bayesdid.panel import LogEntry

YEARS = range(2000, 2011)


def _one_left(n_units=50, *, never=True, seed=0, hetero=True, sigma=0.5, weights=False):
    """Staggered panel, n_units x 2000..2010, cohorts 2003..2009 at random, one unit adopting
    in 2010 and one unit untreated throughout: in 2010 a single unit is untreated. With
    ``never=False`` that last unit adopts in 2011, after the sample (the raw data have no
    never-treated unit; Panel codes it never-treated). A covariate ``x`` enters the outcome."""
    rng = np.random.default_rng(seed)
    cohorts = np.r_[rng.choice(np.arange(2003, 2010), n_units - 2), 2010,
                    np.nan if never else 2011]
    alpha, lam = rng.normal(size=n_units), rng.normal(size=len(YEARS))
    rows = []
    for i, g in enumerate(cohorts):
        for j, t in enumerate(YEARS):
            d = t >= g
            tau = (1.0 + (0.1 * (t - g) + 0.05 * (g - 2003) if hetero else 0.0)) if d else 0.0
            x = rng.normal() + 0.1 * j
            rows.append((f"u{i:02d}", t, alpha[i] + lam[j] + 0.3 * x + tau
                         + sigma * rng.normal(), x, g, rng.uniform(0.5, 2.0), i % 10))
    df = pd.DataFrame(rows, columns=["unit", "year", "y", "x", "g", "w", "state"])
    kw = {"unit": "unit", "time": "year", "outcome": "y", "cohort": "g",
          "covariates": ["x"], "weights": "w" if weights else None}
    return df, kw


def _dense(panel: Panel, weights: str | None = None):
    """By-hand imputation: dense (weighted) least squares on the untreated rows."""
    f = panel.data
    d = f["treated"].to_numpy(bool)
    w = f[weights].to_numpy(float) if weights else np.ones(len(f))
    z = np.hstack([pd.get_dummies(f[panel.unit]).to_numpy(float),
                   pd.get_dummies(f[panel.time]).to_numpy(float),
                   f[list(panel.covariates)].to_numpy(float)])
    y = f[panel.outcome].to_numpy(float)
    sw = np.sqrt(w[~d])
    b = np.linalg.lstsq(z[~d] * sw[:, None], y[~d] * sw, rcond=None)[0]
    treated = f.loc[d].assign(tau=(y - z @ b)[d], w_=w[d])
    treated["k"] = (treated[panel.time] - treated["cohort"]).astype(int)

    def mean(g):
        return float(np.sum(g["w_"] * g["tau"]) / g["w_"].sum())

    out = {("att", "overall"): mean(treated)}
    out |= {("att", f"cohort={int(c)}"): mean(g) for c, g in treated.groupby("cohort")}
    out |= {("event_time", f"k={k}"): mean(g) for k, g in treated.groupby("k")}
    return out, z, y, w, d


# ------------------------------------------------------------------ the failing shape
@pytest.mark.unit
@pytest.mark.parametrize("never, weights", [(True, False), (False, False), (True, True)])
def test_one_untreated_unit_left_equals_by_hand_imputation(never, weights):
    """Before the fix: pyfixest's did2s dropped the singleton 2010 year effect and failed
    with ``ValueError: operands could not be broadcast together with shapes (500,) (550,)``."""
    df, kw = _one_left(never=never, weights=weights)
    panel = Panel.from_frame(df, **kw)
    f = panel.frame
    assert ((f["year"] == 2010) & (f["treated"] == 0)).sum() == 1
    assert df["g"].isna().any() == never
    res = imputation(panel)
    expected, *_ = _dense(panel, kw["weights"])
    got = res.effects().set_index(["estimand", "group"])
    assert set(got.index) == set(expected)
    for key, value in expected.items():
        assert got.loc[key, "estimate"] == pytest.approx(value, abs=1e-10), key
    finite = got.drop(("att", "cohort=2010"))  # one unit: no clustered SE
    assert (finite["se_or_sd"] > 0).all() and (finite["se_bjs"] > 0).all()
    assert np.isnan(got.loc[("att", "cohort=2010"), ["se_or_sd", "se_bjs", "se_gardner"]]
                    .astype(float)).all()
    assert res.info["single_cluster_periods"] == [2010]
    assert res.info["thin_periods"] == {2009: 2, 2010: 1}  # untreated clusters (< 5)
    share = res.info["thin_period_weight"]
    t1 = f.loc[f["treated"] == 1]
    w1 = df.set_index(["unit", "year"])["w"].reindex(pd.MultiIndex.from_frame(
        t1[["unit", "year"]])).to_numpy() if weights else np.ones(len(t1))
    assert share["att: overall"] == pytest.approx(
        w1[t1["year"].to_numpy() >= 2009].sum() / w1.sum(), abs=1e-4)
    assert share["att: cohort=2010"] == 1.0 and "att: cohort=2003" in share


@pytest.mark.unit
def test_single_cluster_period_is_flagged(caplog):
    df, kw = _one_left()
    with caplog.at_level(logging.WARNING):
        res = imputation(Panel.from_frame(df, **kw))
    assert any("fewer than 5 untreated clusters" in r.getMessage()
               and "{2009: 2, 2010: 1}" in r.getMessage() and "too small" in r.getMessage()
               for r in caplog.records)
    assert res.info["bjs_averaging"]["att: cohort=2010"] == "undefined"


# ------------------------------------------------------------------ not imputable
def _treated_2010_panel():
    """Every unit but one treated in 2010 (the one-left shape, no covariate)."""
    df, kw = _one_left(n_units=20, seed=2)
    return df, {**kw, "covariates": []}


@pytest.mark.unit
def test_period_without_untreated_observation_raises_naming_it():
    # the sub-setting route (heterogeneity, placebo and PSM samples use with_frame): the
    # only untreated unit of 2010 is not in the subsample
    df, kw = _treated_2010_panel()
    panel = Panel.from_frame(df, **kw)
    f = panel.frame
    last = f.loc[(f["year"] == 2010) & (f["treated"] == 0), "unit"].item()
    sub = panel.with_frame(f[f["unit"] != last], LogEntry("subsample", "drop", 11))
    with pytest.raises(DesignError, match=r"period\(s\) \[2010\] of column 'year' have no "
                                          r"untreated observation") as err:
        imputation(sub)
    assert err.value.column == "year"
    assert set(err.value.rows["year"]) == {2010} and len(err.value.rows) == 19


@pytest.mark.unit
def test_period_with_only_zero_weight_untreated_rows_raises():
    df, kw = _treated_2010_panel()
    last = df.loc[(df["year"] == 2010) & (df["g"].isna() | (df["g"] > 2010)), "unit"]
    df.loc[(df["year"] == 2010) & df["unit"].isin(last), "w"] = 0.0
    panel = Panel.from_frame(df, **{**kw, "weights": "w"})
    with pytest.raises(DesignError, match=r"\[2010\] of column 'year' have no untreated "
                                          r"observation with positive weight \('w'\)"):
        imputation(panel)


@pytest.mark.unit
def test_disconnected_untreated_cells_raise_naming_the_period():
    # the only untreated row of 2010 belongs to a unit observed in 2010 only: the 2010 year
    # effect and that unit's effect are identified only jointly
    df, kw = _treated_2010_panel()
    last = df.loc[df["g"].isna(), "unit"].unique().item()
    df = df[(df["unit"] != last) | (df["year"] == 2010)]
    panel = Panel.from_frame(df, **kw)
    with pytest.raises(DesignError, match=r"in period\(s\) \[2010\] of column 'year' the "
                                          r"untreated observations do not identify"):
        imputation(panel)


# ------------------------------------------------------------------ variances
def _dense_variances(z, y, w, d, cl, wtr, avg_groups):
    """Independent dense construction: v = -W0 Z0 pinv(Z0'W0Z0) Z1' w on untreated rows,
    BJS leave-out averages by explicit loops over groups and clusters (Stata's rule for
    when a leave-out is undefined), Gardner's residual tau - estimate."""
    z0, z1, w0 = z[~d], z[d], w[~d]
    b = np.linalg.pinv(z0.T @ (w0[:, None] * z0)) @ (z0.T @ (w0 * y[~d]))
    resid = y - z @ b
    tau, e0 = resid[d], resid[~d]
    cl0, cl1 = cl[~d], cl[d]
    out = []
    for col in wtr.T:
        v0 = -w0 * (z0 @ np.linalg.pinv(z0.T @ (w0[:, None] * z0)) @ (z1.T @ col))
        est = float(col @ tau)
        avg = np.full(tau.size, np.nan)
        for i in np.flatnonzero(col):
            for groups in avg_groups:
                members = np.flatnonzero(groups == groups[i])
                wc = {c: col[members[cl1[members] == c]].sum() for c in np.unique(cl1[members])}
                sc = {c: (col * tau)[members[cl1[members] == c]].sum() for c in wc}
                tot = sum(v**2 for v in wc.values())
                if any(v != 0 and tot - v**2 <= 1e-5 * tot for v in wc.values()):
                    continue
                others = [c for c in wc if c != cl1[i]]
                avg[i] = (sum(wc[c] * sc[c] for c in others)
                          / sum(wc[c] ** 2 for c in others))
                break
        se = {}
        for name, eps1 in (("bjs", tau - avg), ("gardner", tau - est)):
            score = [np.sum(v0[cl0 == c] * e0[cl0 == c])
                     + np.sum((col * eps1)[(cl1 == c) & (col != 0)]) for c in np.unique(cl)]
            se[name] = float(np.sqrt(np.sum(np.square(score))))
        out.append((est, se["bjs"], se["gardner"]))
    return np.array(out)


def _labels_and_weights(panel, w, d):
    f = panel.frame
    cohort = f["cohort"].astype(float).to_numpy()[d]
    k = f["rel_time"].astype(float).to_numpy()[d]
    specs = [("att", "overall", np.ones(d.sum(), bool))]
    specs += [("att", f"cohort={int(g)}", cohort == g) for g in np.unique(cohort)]
    specs += [("event_time", f"k={int(j)}", k == j) for j in np.unique(k)]
    wtr = np.column_stack([np.where(m, w[d], 0.0) / w[d][m].sum() for *_, m in specs])
    cell = pd.factorize(pd.MultiIndex.from_arrays([cohort, k]))[0]
    return specs, wtr, [cell, pd.factorize(k)[0], np.zeros(d.sum(), int)]


@pytest.mark.reference
@pytest.mark.parametrize("weights, cluster", [(False, None), (True, "state")])
def test_bjs_and_gardner_se_equal_dense_construction(weights, cluster):
    # small panel, heterogeneous effects, a covariate; clustered by unit, then by state
    # (10 states) with weights; includes the one-untreated-unit year and a one-unit cohort,
    # so the event-time fallback of the BJS averages is exercised
    df, kw = _one_left(n_units=16, seed=5, weights=weights)
    panel = Panel.from_frame(df, **{**kw, "cluster": cluster})
    res = imputation(panel).effects().set_index(["estimand", "group"])
    _, z, y, w, d = _dense(panel, kw["weights"])
    cl = pd.factorize(panel.frame[cluster or "unit"])[0]
    specs, wtr, groups = _labels_and_weights(panel, w, d)
    ref = _dense_variances(z, y, w, d, cl, wtr, groups)
    assert len(res) == len(specs)
    for (estimand, group, _), (est, bjs, gardner) in zip(specs, ref):
        row = res.loc[(estimand, group)]
        assert row["estimate"] == pytest.approx(est, abs=1e-10)
        if np.isnan(bjs):
            assert np.isnan(row["se_bjs"])
            continue
        assert row["se_bjs"] == pytest.approx(bjs, rel=1e-10, abs=1e-12), (estimand, group)
        assert row["se_gardner"] == pytest.approx(gardner, rel=1e-10, abs=1e-12)
        assert row["se_or_sd"] == row["se_bjs"]
    # no SE exactly where one cluster holds all the weight: cohorts within one cluster
    f = panel.frame
    one = f.groupby("cohort")[cluster or "unit"].nunique().loc[lambda n: n == 1].index
    assert set(res.index[res["se_bjs"].isna()]) == {("att", f"cohort={g}") for g in one}
    assert len(one) == 3


@pytest.mark.reference
def test_gardner_se_equals_pyfixest_did2s_where_did2s_runs():
    sim = simulate_staggered(n_units=200, years=(2005, 2016), batches={2008: 30, 2011: 30},
                             random_seed=11)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    res = imputation(panel, vcov="gardner")
    df = panel.data.assign(d=lambda x: x["treated"].astype(bool),
                           uid=lambda x: pd.factorize(x["city"])[0])
    fit = pf.did2s(df, yname="eco_eff", first_stage="~ x1 + x2 + x3 | uid + year",
                   second_stage="~ d", treatment="d", cluster="uid")
    row = res.effect()
    assert row["estimate"] == pytest.approx(float(fit.coef()["d"]), abs=1e-9)
    assert row["se_or_sd"] == pytest.approx(float(fit.se()["d"]), rel=1e-8)
    assert row["se_gardner"] == row["se_or_sd"] and res.info["vcov"] == "gardner"
    assert row["se_bjs"] != row["se_gardner"]


@pytest.mark.unit
def test_bjs_close_to_gardner_under_homogeneous_iid_effects():
    """Constant effect, iid noise, 300 units: both variances estimate the same thing; the
    leave-out BJS is a little larger (conservative in cells of ~15-40 units)."""
    df, kw = _one_left(n_units=300, seed=7, hetero=False, never=True)
    df = df[df["year"] < 2009]  # keep many untreated units in every period
    res = imputation(Panel.from_frame(df, **kw)).effects()
    ratio = res["se_bjs"] / res["se_gardner"]
    overall = float(ratio.iloc[0])
    assert 1.0 < overall < 1.05  # measured 1.007
    assert ratio.between(0.95, 1.15).all(), ratio.round(3).tolist()


@pytest.mark.unit
def test_vcov_option_and_schema():
    df, kw = _one_left(n_units=30, seed=3)
    panel = Panel.from_frame(df, **kw)
    bjs, gardner = imputation(panel), imputation(panel, vcov="gardner")
    tb, tg = bjs.effects(), gardner.effects()
    np.testing.assert_array_equal(tb["estimate"], tg["estimate"])
    np.testing.assert_array_equal(tb["se_or_sd"], tb["se_bjs"])
    np.testing.assert_array_equal(tg["se_or_sd"], tg["se_gardner"])
    assert bjs.info["vcov"] == "bjs" and "Theorem 3" in bjs.info["vcov_detail"]["bjs"]
    assert bjs.info["df"] == 29 and bjs.info["n_clusters"] == 30
    row = tb.iloc[0]
    q = (row["upper"] - row["estimate"]) / row["se_or_sd"]
    assert q == pytest.approx(2.0452296421327034, rel=1e-9)  # t(29) 97.5% quantile
    with pytest.raises(BayesDidError, match="vcov must be one of"):
        imputation(panel, vcov="hc1")


# ------------------------------------------------------------------ NumPy layer
@pytest.mark.unit
def test_weights_represent_the_estimator_and_cancel_the_fixed_effects():
    """tau_w = v'y exactly, and v sums to zero within every unit and every period once
    weighted by the observation weights (BJS: the estimator is invariant to the FEs)."""
    df, kw = _one_left(n_units=25, seed=4, weights=True)
    panel = Panel.from_frame(df, **kw)
    _, z, y, w, d = _dense(panel, "w")
    f = panel.frame
    unit, time = pd.factorize(f["unit"])[0], pd.factorize(f["year"], sort=True)[0]
    ls = TwoWayLS.fit(unit, time, f[["x"]].to_numpy(), w, ~d)
    assert not ls.unidentified(d).any()
    specs, wtr, groups = _labels_and_weights(panel, w, d)
    fit = fit_imputation(ls, y, w, d, unit, wtr, groups)
    np.testing.assert_allclose(fit.v.T @ y, fit.estimate, atol=1e-10)
    np.testing.assert_allclose(z.T @ fit.v, 0.0, atol=1e-10)  # units, periods and x
    np.testing.assert_allclose(fit.v[d], wtr, atol=0)


@pytest.mark.unit
def test_unidentified_rows_found_by_the_null_space():
    # units 0-1 untreated in periods 0-1 only, units 2-3 in periods 2-3 only: two disconnected
    # blocks, so every treated (cross-block) row is unidentified; one more untreated row
    # (unit 0, period 2) links the blocks
    unit = np.repeat(np.arange(4), 4)
    time = np.tile(np.arange(4), 4)
    untreated = np.r_[[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]].astype(bool)
    ls = TwoWayLS.fit(unit, time, np.zeros((16, 0)), np.ones(16), untreated)
    bad = ls.unidentified(~untreated)
    assert bad.all()
    ls_linked = TwoWayLS.fit(unit, time, np.zeros((16, 0)), np.ones(16),
                             untreated | (np.arange(16) == 2))
    assert not ls_linked.unidentified(~untreated & (np.arange(16) != 2)).any()
