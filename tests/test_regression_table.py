"""Paper-style regression tables with classical and Bayesian columns."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayesdid import Panel
from bayesdid.classical import twfe
from bayesdid.classical.heterogeneity import heterogeneity
from bayesdid.datasets import info, load
from bayesdid.errors import ComparisonError
from bayesdid.report.regression_table import regression_table
from bayesdid.results import EffectResult


@pytest.fixture(scope="module")
def castle():
    return Panel.from_frame(load("castle"), **info("castle")["panel_kwargs"])


def _bayes_like(estimate, sd):
    return EffectResult.from_rows([dict(estimand="att", group="overall", estimate=estimate,
                                        se_or_sd=sd, lower=estimate - 2 * sd,
                                        upper=estimate + 2 * sd, level=0.95, interval="hdi",
                                        n_obs=550)], method="hierarchical_did")


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
