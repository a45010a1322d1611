"""Paper-style regression tables with classical and Bayesian columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesdid import Panel
from bayesdid.classical import twfe
from bayesdid.checks.heterogeneity import heterogeneity
from bayesdid.synthetic.regression_control import regression_control
from bayesdid.synthetic.sdid import synthdid
from bayesdid.synthetic.synth import synth
from bayesdid.datasets import info, load
from bayesdid.errors import ComparisonError
from bayesdid.report.regression_table import fixed_effects_of, regression_table
from bayesdid.results import EffectResult


@pytest.fixture(scope="module")
def castle():
    return Panel.from_frame(load("castle"), **info("castle")["panel_kwargs"])


@pytest.fixture(scope="module")
def prop99():
    return Panel.from_frame(load("prop99"), **info("prop99")["panel_kwargs"])


@pytest.fixture(scope="module")
def prop99_sc(prop99):
    return synth(prop99, progress=False)


def _row(estimate, sd, interval="confidence", group="overall"):
    return dict(estimand="att", group=group, estimate=estimate, se_or_sd=sd,
                lower=estimate - 2 * sd, upper=estimate + 2 * sd, level=0.95,
                interval=interval, n_obs=550)


def _bayes_like(estimate, sd, method="hierarchical_did"):
    return EffectResult.from_rows([_row(estimate, sd, "hdi")], method=method)


class _Duck:
    """A result as another estimator may hand it over: effects(), method, info."""

    def __init__(self, rows, method, info):
        self._table, self.method, self.info = pd.DataFrame(rows), method, info

    def effects(self):
        return self._table.assign(method=self.method)


@pytest.mark.unit
def test_stars_follow_the_t_p_value_and_bayesian_columns_have_none(castle):
    res = twfe(castle)
    row = res.effect()
    p = 2 * stats.t.sf(abs(row["estimate"] / row["se_or_sd"]), res.info["df"])
    table = regression_table(res, _bayes_like(0.07, 0.03), depvar="l_homicide")
    frame = table.to_frame()
    stars = "***" if p < 0.01 else "**" if p < 0.05 else "*" if p < 0.1 else ""
    assert frame.iloc[0, 1] == f"{row['estimate']:.3f}{stars}"
    assert frame.iloc[0, 2] == "0.070"  # no stars on a posterior mean
    assert frame.iloc[1, 1] == f"({row['se_or_sd']:.3f})"
    assert table.coefs.loc[0, "p"] == pytest.approx(p, rel=1e-12)
    assert np.isnan(table.coefs.loc[1, "p"])


@pytest.mark.unit
def test_group_rows_and_latex_through_maketables(castle):
    by_region = heterogeneity(castle, "region")
    table = regression_table(twfe(castle), by_region, labels=["TWFE", "By region"],
                             depvar="l_homicide")
    names = list(dict.fromkeys(table.coefs["name"]))
    assert names[0] == "ATT" and "ATT: region=South" in names
    tex = table.to_latex()
    assert "TWFE" in tex and "By region" in tex and "region=South" in tex
    assert "(" in table.to_html() and "<table" in table.to_html()


@pytest.mark.unit
def test_bad_input():
    with pytest.raises(ComparisonError):
        regression_table()
    with pytest.raises(ComparisonError, match="labels"):
        regression_table(_bayes_like(0.1, 0.01), labels=["a", "b"])


@pytest.mark.unit
def test_fixed_effects_line_follows_each_estimator(prop99, prop99_sc):
    """TWFE, the hierarchical DID and PSM-DID (a TWFE on matched samples) have unit and
    time effects; SDID has them in a weighted regression; SC, regression control and the
    Bayesian SC have none. (Before: "unit, time" under every column.)"""
    results = [twfe(prop99), prop99_sc, synthdid(prop99, se=None),
               regression_control(prop99, progress=False), _bayes_like(-20.0, 5.0),
               _bayes_like(-19.0, 6.0, method="bayes_synth")]
    table = regression_table(*results, depvar="cigsale")
    fe = table.footer.loc["Fixed effects"].tolist()
    assert fe == ["unit, time", "\u2014", "unit, time (weighted)", "\u2014", "unit, time",
                  "\u2014"]
    assert "weighted two-way regression" in table.notes()
    # LaTeX: the FE indicator rows tick only the columns that have them
    tex = table.to_latex()
    unit_row = next(ln for ln in tex.splitlines() if ln.startswith("unit &"))
    assert unit_row.replace(" ", "").startswith("unit&x&-&x&-&x&-")
    psm_row = dict(_row(0.1, 0.02), group="sample=common_support")
    assert fixed_effects_of(EffectResult.from_rows([psm_row], method="psm_did")) == "unit, time"
    # the rows' own method wins over a study step's label; info can say it outright
    relabelled = EffectResult(table=prop99_sc.table, method="my_sc_step", info={})
    assert fixed_effects_of(relabelled) == "\u2014"
    told = EffectResult(table=prop99_sc.table, method="synth", info={"fixed_effects": "time"})
    assert fixed_effects_of(told) == "time"
    assert fixed_effects_of(EffectResult.from_rows([_row(1, 1)], method="my_estimator")) == ""
    # explicit override: one for all, or one per column
    assert set(regression_table(*results[:2], fixed_effects="state, year")
               .footer.loc["Fixed effects"]) == {"state, year"}
    assert regression_table(*results[:2], fixed_effects=["a", "b"]).footer.loc[
        "Fixed effects"].tolist() == ["a", "b"]
    with pytest.raises(ComparisonError, match="fixed_effects"):
        regression_table(*results[:2], fixed_effects=["a"])


@pytest.mark.unit
def test_synth_stars_come_from_its_permutation_p(prop99_sc):
    """SC's own placebo-in-space p (0.077 on Prop 99), not a normal test of estimate / sd
    (0.070). Before the change the table used the normal test."""
    own = float(prop99_sc.info["p_value"]["California"])
    row = prop99_sc.effect()
    normal = 2 * stats.norm.sf(abs(row["estimate"] / row["se_or_sd"]))
    assert abs(own - normal) > 5e-3  # the two differ, so the check below can fail
    table = regression_table(prop99_sc)
    assert table.coefs.loc[0, "p"] == pytest.approx(own, rel=1e-12)
    assert table.footer.loc["SE / sd"].iloc[0] == "placebo sd"
    assert "permutation p" in table.notes() and "Bayesian" not in table.notes()


@pytest.mark.unit
def test_own_p_value_overrides_the_normal_test():
    """A normal test would give *** (z = 5); the estimator's own p of 0.2 gives none, and
    with several treated units the overall ATT has no permutation p: no stars."""
    info = {"p_value": {"A": 0.2}, "interval_note": "placebo-in-space: ..."}
    one = EffectResult.from_rows([_row(0.5, 0.1)], method="synth", info=info)
    frame = regression_table(one).to_frame()
    assert frame.iloc[0, 1] == "0.500"
    several = EffectResult.from_rows(
        [_row(0.5, 0.1), _row(0.6, 0.1, group="unit=A"), _row(0.4, 0.1, group="unit=B")],
        method="synth", info={"p_value": {"A": 0.004, "B": 0.3}})
    table = regression_table(several)
    p = dict(zip(table.coefs["name"], table.coefs["p"]))
    assert np.isnan(p["ATT"]) and p["ATT: unit=A"] == 0.004 and p["ATT: unit=B"] == 0.3
    assert table.to_frame().iloc[:, 1].tolist()[:6:2] == ["0.500", "0.600***", "0.400"]
    # a p_value column of the effects table is the estimator's own p as well
    with_col = EffectResult.from_rows([dict(_row(0.5, 0.1), p_value=0.07)], method="twfe")
    assert regression_table(with_col).coefs.loc[0, "p"] == 0.07


@pytest.mark.unit
def test_interval_labels_other_than_confidence_hdi_eti():
    """A placebo interval is classical: no 'posterior sd', stars from the estimator's own
    p; a label the table does not know never makes a column Bayesian."""
    sc = _Duck([_row(0.5, 0.1, "placebo")], "synth", {"p_value": {"A": 0.03}})
    other = _Duck([_row(0.5, 0.1, "bootstrap_percentile")], "twfe", {})
    table = regression_table(sc, other, _bayes_like(0.4, 0.1))
    assert table.footer.loc["SE / sd"].tolist() == ["placebo sd", "SE", "posterior sd"]
    assert table.coefs["bayesian"].tolist() == [False, False, True]
    assert table.coefs.loc[0, "p"] == 0.03
    assert np.isnan(table.coefs.loc[1, "p"])  # no SE test for a non-confidence interval
    assert table.to_frame().iloc[0, 1:].tolist() == ["0.500**", "0.500", "0.400"]
