"""PSM-DID: matching balance, logit statistics against statsmodels, DID on the three samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyfixest as pf
import pytest
import statsmodels.api as sm
from matplotlib.figure import Figure

from bayesdid import Panel
from bayesdid.checks.psm import PSMResult, psm_did
from bayesdid.datasets import simulate_staggered
from bayesdid.errors import MatchingError, MissingValueError, SeparationError

TRUE_ATT = 0.05
pytestmark = pytest.mark.filterwarnings("ignore:.*singleton fixed effect:UserWarning")


@pytest.fixture(scope="module")
def sim():
    """Selection into the pilot on the covariates: x1..x3 load on the unit effect that drives
    listing and drift upward in pilot cities, so treated and controls differ (|bias| 60-80%)
    before matching. The effect is homogeneous (0.05) so TWFE on any sample targets it."""
    return simulate_staggered(
        n_units=278, years=(2005, 2016), batches={2008: 30, 2011: 30},
        cohort_effects={2008: TRUE_ATT, 2011: TRUE_ATT},
        region_effects={"East": 0, "Central": 0, "West": 0, "Northeast": 0}, slope=0.0,
        random_seed=11)


@pytest.fixture(scope="module")
def panel(sim):
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


@pytest.fixture(scope="module")
def res(panel):
    return psm_did(panel)


def _all(balance: pd.DataFrame, sample: str) -> pd.Series:
    sub = balance[(balance["period"] == "all") & (balance["sample"] == sample)]
    return sub.set_index("covariate")["pct_bias"]


@pytest.mark.unit
def test_balance_after_matching(res: PSMResult):
    before, after = _all(res.balance, "unmatched"), _all(res.balance, "matched")
    assert list(after.index) == ["x1", "x2", "x3"]
    assert (before.abs() > 50).all()  # real imbalance to remove
    assert (after.abs() < 10).all()
    red = res.balance.query("period == 'all' and sample == 'matched'")["pct_reduction"]
    assert (red > 85).all()
    per_period = res.balance.query("period != 'all' and sample == 'matched'")["pct_bias"]
    assert per_period.abs().median() < 10
    # the re-estimated logit loses its explanatory power after matching
    fit = res.logits.groupby("sample")["pseudo_r2"].mean()
    assert fit["unmatched"] > 0.1 and fit["matched"] < 0.03


@pytest.mark.reference
def test_logit_statistics_equal_statsmodels(sim, res: PSMResult):
    """Reference: statsmodels Logit on the same cross-section, before and after matching."""
    df = sim.data
    group = df["cohort"].notna().astype(float).to_numpy()
    for year in (2005, 2012, 2016):
        rows = (df["year"] == year).to_numpy()
        direct = sm.Logit(group[rows], sm.add_constant(df.loc[rows, ["x1", "x2", "x3"]]
                                                       .to_numpy())).fit(disp=0)
        ours = res.logits.query("period == @year and sample == 'unmatched'").iloc[0]
        assert ours["pseudo_r2"] == direct.prsquared
        assert ours["lr_chi2"] == direct.llr and ours["lr_p"] == direct.llr_pvalue
        assert ours["n_obs"] == 278 and ours["lr_df"] == 3
        matched = rows & res.scores["weight"].notna().to_numpy()
        after = sm.Logit(group[matched], sm.add_constant(df.loc[matched, ["x1", "x2", "x3"]]
                                                         .to_numpy())).fit(disp=0)
        ours = res.logits.query("period == @year and sample == 'matched'").iloc[0]
        assert ours["pseudo_r2"] == pytest.approx(after.prsquared, abs=1e-12)
        assert ours["lr_chi2"] == pytest.approx(after.llr, abs=1e-9)
        assert ours["n_obs"] == matched.sum()
        # scores are that logit's fitted probabilities
        assert np.allclose(res.scores.loc[rows, "pscore"], direct.predict(), atol=1e-12)


@pytest.mark.unit
def test_matching_weights_follow_psmatch2(panel, res: PSMResult):
    sc = res.scores
    treated = sc[sc["treated_group"] == 1]
    assert set(treated["weight"].dropna()) == {1.0}
    # 1:1 with replacement: a control's weight is how often it was used, integer
    ctrl = sc[(sc["treated_group"] == 0) & sc["weight"].notna()]
    assert np.allclose(ctrl["weight"], ctrl["weight"].round()) and ctrl["weight"].max() > 1
    per_year = sc.groupby(["year", "treated_group"])["weight"].sum().unstack()
    assert np.allclose(per_year[0], per_year[1])  # each matched treated row hands out 1
    # nearest neighbour within the caliper: every matched treated row has a control at
    # distance <= 0.2 sd of that year's logit
    year = 2010
    yr = sc[sc["year"] == year]
    caliper = 0.2 * yr["distance"].std(ddof=1)
    d_t = yr.loc[(yr["treated_group"] == 1) & yr["weight"].notna(), "distance"].to_numpy()
    d_c = yr.loc[yr["treated_group"] == 0, "distance"].to_numpy()
    assert (np.abs(d_t[:, None] - d_c[None, :]).min(axis=1) <= caliper).all()
    # common support: every control row, treated rows only when matched
    assert sc.loc[sc["treated_group"] == 0, "support"].all()
    assert (sc.loc[sc["treated_group"] == 1, "support"]
            == sc.loc[sc["treated_group"] == 1, "weight"].notna()).all()
    # without replacement every control is used at most once per period
    nr = psm_did(panel, replacement=False, random_seed=3)
    assert set(nr.scores["weight"].dropna()) == {1.0}
    assert (_all(nr.balance, "matched").abs() < 10).all()


@pytest.mark.reference
def test_frequency_weighted_did_equals_replicated_rows(sim, res: PSMResult):
    """Reference: pyfixest on the matched rows replicated by their matching frequency."""
    df = sim.data.assign(w=res.scores["weight"].to_numpy())
    rep = df[df["w"].notna()].loc[lambda d: d.index.repeat(d["w"].astype(int))]
    direct = pf.feols("eco_eff ~ treated + x1 + x2 + x3 | city + year", data=rep,
                      vcov={"CRV1": "city"})
    ours = res.effect("frequency_weighted")
    assert ours["estimate"] == pytest.approx(direct.coef()["treated"], abs=1e-8)
    unweighted = pf.feols("eco_eff ~ treated + x1 + x2 + x3 | city + year",
                          data=df[df["w"].notna()], vcov={"CRV1": "city"})
    assert res.effect("non_null_weights")["estimate"] == pytest.approx(
        unweighted.coef()["treated"], abs=1e-8)


@pytest.mark.unit
def test_did_on_matched_samples_recovers_effect(res: PSMResult, panel):
    eff = res.effects()
    assert eff["group"].tolist() == ["sample=non_null_weights", "sample=common_support",
                                     "sample=frequency_weighted"]
    assert (eff["estimand"] == "att").all() and (eff["method"] == "psm_did").all()
    assert ((eff["lower"] < TRUE_ATT) & (TRUE_ATT < eff["upper"])).all()
    assert (eff["estimate"] - TRUE_ATT).abs().max() < 0.015
    assert eff.loc[1, "n_obs"] > eff.loc[0, "n_obs"]  # common support keeps every control
    kern = psm_did(panel, method="kernel")
    assert (_all(kern.balance, "matched").abs() < 10).all()
    ke = kern.effects()
    assert ((ke["lower"] < TRUE_ATT) & (TRUE_ATT < ke["upper"])).all()


@pytest.mark.unit
def test_pooled_scores_and_plot(panel):
    pooled = psm_did(panel, scores="pooled", k=2)
    assert pooled.logits["period"].unique().tolist() == ["pooled"]
    assert pooled.logits.iloc[0]["n_obs"] == panel.n_obs
    assert (_all(pooled.balance, "matched").abs() < 10).all()
    fig = pooled.balance_plot()
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x1", "x2", "x3"]
    offsets = [c.get_offsets()[:, 0] for c in ax.collections]
    assert np.allclose(sorted(np.abs(offsets[1])), sorted(_all(pooled.balance, "matched").abs()))


@pytest.mark.unit
def test_perfect_separation_names_covariate_and_period(sim, panel):
    df = sim.data.copy()
    rng = np.random.default_rng(0)
    group = df["cohort"].notna().to_numpy()
    df["xsep"] = rng.normal(size=len(df))
    in_2009 = (df["year"] == 2009).to_numpy()
    df.loc[in_2009, "xsep"] = group[in_2009] * 3.0 + rng.uniform(0, 1, in_2009.sum())
    with pytest.raises(SeparationError, match=r"period 2009.*\['xsep'\]") as err:
        psm_did(panel, covariates=["x1", "xsep"], data=df)
    assert "Hint" in str(err.value) and err.value.column == "xsep"
    assert set(err.value.rows["year"]) == {2009}


@pytest.mark.unit
def test_no_match_within_caliper(panel):
    with pytest.raises(MatchingError, match="caliper") as err:
        psm_did(panel, caliper=1e-9)
    assert "widen the caliper" in str(err.value)
    assert len(err.value.rows) == 12  # one row per period with its closest distance


@pytest.mark.unit
def test_missing_covariate_shows_rows(sim, panel):
    df = sim.data.copy()
    df["lnfdi"] = 1.0
    df.loc[[5, 17], "lnfdi"] = np.nan
    with pytest.raises(MissingValueError, match="lnfdi") as err:
        psm_did(panel, covariates=["x1", "lnfdi"], data=df)
    shown = err.value.rows
    assert list(zip(shown["city"], shown["year"])) == list(
        zip(df.loc[[5, 17], "city"], df.loc[[5, 17], "year"]))
