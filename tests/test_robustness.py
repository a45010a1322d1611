"""The robustness table: other-policy controls, exclusions, a replaced outcome, each row
checked against an independent pyfixest fit on the same sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesdid import Panel
from bayesdid.did._fixest import pf
from bayesdid.checks.robustness import TABLE_COLUMNS, Spec, robustness
from bayesdid.staggered.estimators import imputation
from bayesdid.datasets.simulate import simulate_staggered
from bayesdid.errors import BayesDidError, ColumnError, DesignError, MissingValueError

SMALL = dict(n_units=60, years=(2005, 2014), batches={2008: 8, 2010: 8})


@pytest.fixture(scope="module")
def sim():
    sim = simulate_staggered(**SMALL, random_seed=6)
    df = sim.data.copy()
    rng = np.random.default_rng(1)
    # another policy from 2009 in the 8 cities of the first pilot cohort and in 10 random
    # never-treated cities, with its own effect of +0.04: it overlaps the pilot, so
    # leaving it out biases the pilot's TWFE estimate upward
    cities = (df.loc[df["cohort"] == 2009, "city"].unique().tolist()
              + rng.choice(df.loc[df["cohort"].isna(), "city"].unique(), 10,
                           replace=False).tolist())
    df["other_policy"] = ((df["year"] >= 2009) & df["city"].isin(cities)).astype(int)
    df["eco_eff"] = df["eco_eff"] + 0.04 * df["other_policy"]
    # an alternative outcome: rescaled, with extra noise
    df["eco_eff_alt"] = 2.0 * df["eco_eff"] + rng.normal(0, 0.01, len(df))
    return sim, df


def _feols(df: pd.DataFrame, outcome: str, controls: list[str]) -> tuple[float, float]:
    work = df.rename(columns={outcome: "yy"})
    fit = pf.feols(f"yy ~ treated + {' + '.join(controls)} | city + year", data=work,
                   vcov={"CRV1": "city"})
    return float(fit.coef()["treated"]), float(fit.se()["treated"])


@pytest.mark.unit
def test_robustness_table_rows_equal_independent_fits(sim):
    s, df = sim
    panel = Panel.from_frame(df.drop(columns=["other_policy", "eco_eff_alt"]),
                             **s.panel_kwargs)
    east = df.loc[df["region"] == "East", "city"].unique()[:5].tolist()
    res = robustness(panel, data=df, other_policies=["other_policy"],
                     exclude_units={"exclude 5 East cities": east},
                     exclude_periods=[2013, 2014], replace_outcome=["eco_eff_alt"],
                     specs={"alt outcome, no 2005": dict(outcome="eco_eff_alt",
                                                         exclude_periods=[2005])},
                     progress=False)
    table = res.table().set_index("spec")
    assert list(res.table().columns) == TABLE_COLUMNS
    assert table.index.tolist() == ["baseline", "control: other_policy", "exclude 5 East cities",
                                    "exclude periods", "outcome: eco_eff_alt",
                                    "alt outcome, no 2005"]
    x = ["x1", "x2", "x3"]
    expected = {
        "baseline": (df, "eco_eff", x),
        "control: other_policy": (df, "eco_eff", x + ["other_policy"]),
        "exclude 5 East cities": (df[~df["city"].isin(east)], "eco_eff", x),
        "exclude periods": (df[~df["year"].isin([2013, 2014])], "eco_eff", x),
        "outcome: eco_eff_alt": (df, "eco_eff_alt", x),
        "alt outcome, no 2005": (df[df["year"] != 2005], "eco_eff_alt", x),
    }
    for name, (sample, outcome, controls) in expected.items():
        est, se = _feols(sample, outcome, controls)
        assert table.loc[name, "estimate"] == pytest.approx(est, abs=1e-10), name
        assert table.loc[name, "se"] == pytest.approx(se, rel=1e-8), name
        assert table.loc[name, "n_obs"] == len(sample)
        assert table.loc[name, "n_units"] == sample["city"].nunique()
    # the overlapping policy biases the baseline upward; its dummy removes the bias
    truth = float(s.truth.query("estimand == 'att' and group == 'overall'")["value"].iloc[0])
    adjusted = table.loc["control: other_policy"]
    assert table.loc["baseline", "estimate"] - truth > 0.01
    assert abs(adjusted["estimate"] - truth) < 0.005
    assert adjusted["lower"] < truth < adjusted["upper"]
    assert table.loc["control: other_policy", "controls"] == "x1, x2, x3, other_policy"
    assert "5 city(s) excluded" in table.loc["exclude 5 East cities", "notes"]
    assert table.loc["outcome: eco_eff_alt", "outcome"] == "eco_eff_alt"
    assert table.loc["outcome: eco_eff_alt", "estimate"] == pytest.approx(
        2 * table.loc["baseline", "estimate"], abs=0.01)
    assert (table["p_value"].between(0, 1)).all() and (table["fe"] == "city + year").all()
    effects = res.effects()
    assert effects["group"].tolist()[0] == "spec=baseline" and len(effects) == 6
    # the exclusion is recorded in the log of the panel the spec ran on; input untouched
    assert "other_policy" not in panel.frame.columns
    log = res.info["logs"]["exclude periods"]
    assert log[:len(panel.log)] == panel.log
    assert any(e.step == "robustness" and "2013, 2014" in e.detail and e.n_affected == 120
               for e in log)
    assert "exclude 5 East cities" in res.to_markdown()


@pytest.mark.unit
def test_second_estimator_and_spec_objects(sim):
    s, df = sim
    panel = Panel.from_frame(df, **s.panel_kwargs)
    res = robustness(panel, specs=[Spec("drop 2014", exclude_periods=(2014,))],
                     estimators={"imputation": imputation}, baseline=False, progress=False)
    row = res.table().iloc[0]
    direct = imputation(Panel.from_frame(df[df["year"] != 2014], **s.panel_kwargs))
    assert row["method"] == "imputation"
    assert row["estimate"] == pytest.approx(float(direct.effect()["estimate"]), abs=1e-10)
    assert res.results[("drop 2014", "imputation")].method == direct.method


@pytest.mark.unit
def test_bad_inputs(sim):
    s, df = sim
    panel = Panel.from_frame(df.drop(columns=["other_policy"]), **s.panel_kwargs)
    with pytest.raises(ColumnError, match="data=df"):
        robustness(panel, other_policies=["other_policy"], progress=False)
    with pytest.raises(MissingValueError, match="no row") as err:
        robustness(panel, data=df.iloc[5:], other_policies=["other_policy"], progress=False)
    assert len(err.value.rows) == 5
    with pytest.raises(ColumnError, match="not in column 'city'"):
        robustness(panel, exclude_units=["Beijing"], progress=False)
    with pytest.raises(DesignError, match="specification 'early'"):
        robustness(panel, exclude_periods={"early": list(range(2005, 2009))}, progress=False)
    with pytest.raises(BayesDidError, match="string"):
        robustness(panel, replace_outcome="eco_eff_alt", progress=False)
    with pytest.raises(BayesDidError, match="unknown field"):
        robustness(panel, specs={"x": dict(outcomes="y")}, progress=False)
    with pytest.raises(BayesDidError, match="more than once"):
        robustness(panel, specs={"baseline": dict()}, progress=False)
