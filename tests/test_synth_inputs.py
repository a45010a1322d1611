"""Bad inputs for synthetic control, synthetic DID and regression control: clear typed errors."""

from __future__ import annotations

import pandas as pd
import pytest

from bayesdid import Panel
from bayesdid.classical.regression_control import regression_control
from bayesdid.classical.sdid import synthdid
from bayesdid.classical.synth import synth
from bayesdid.datasets import info, load
from bayesdid.errors import ColumnError, DesignError, MissingValueError

KW = info("prop99")["panel_kwargs"]
ESTIMATORS = {
    "synth": lambda p, **kw: synth(p, placebo=False, progress=False, **kw),
    "sdid": lambda p, **kw: synthdid(p, se=None, **kw),
    "hcw": lambda p, **kw: regression_control(p, se="prediction", progress=False, **kw),
}


@pytest.fixture(scope="module")
def frame():
    return load("prop99")


@pytest.fixture(scope="module")
def panel(frame):
    return Panel.from_frame(frame, **KW)


@pytest.mark.unit
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_treated_unit_missing_from_donor_frame(panel, name):
    with pytest.raises(ColumnError, match="Atlantis") as err:
        ESTIMATORS[name](panel, treated=["Atlantis"])
    assert err.value.column == "state"


@pytest.mark.unit
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_donor_with_missing_pre_period_values(frame, name):
    gappy = frame[~((frame["state"] == "Utah") & frame["year"].isin([1975, 1976]))]
    panel = Panel.from_frame(gappy, **KW)
    with pytest.raises(MissingValueError, match="Utah") as err:
        ESTIMATORS[name](panel)
    assert err.value.column == "cigsale" and len(err.value.rows) == 2


@pytest.mark.unit
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_treated_unit_listed_as_donor(panel, name):
    with pytest.raises(DesignError, match="also listed as donors"):
        ESTIMATORS[name](panel, donors=["California", "Utah", "Nevada"])


@pytest.mark.unit
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_constant_outcome(frame, name):
    flat = frame.assign(cigsale=100.0)
    with pytest.raises(DesignError, match="constant"):
        ESTIMATORS[name](Panel.from_frame(flat, **KW))


@pytest.mark.unit
def test_fewer_pre_periods_than_predictors(frame):
    late = frame[frame["year"] >= 1984]  # 5 pre-periods (1984-1988)
    panel = Panel.from_frame(late, **KW)
    with pytest.raises(DesignError, match="predictors but only 5 pre-treatment periods"):
        synth(panel, lags=[1984, 1985, 1986, 1987, 1988], outcome_means=[(1984, 1986)],
              placebo=False, progress=False)
    # regression control: more regressors than the pre-period allows
    with pytest.raises(DesignError, match="needs more than 39 pre-periods"):
        regression_control(Panel.from_frame(frame, **KW), criterion=None, progress=False)
    with pytest.raises(DesignError, match="max_size=3 regressors"):
        regression_control(Panel.from_frame(frame[frame["year"] >= 1983], **KW), max_size=3,
                           progress=False)  # 6 pre-periods: AICc allows 2 regressors
    with pytest.raises(DesignError, match="too few to fit even one donor"):
        regression_control(Panel.from_frame(frame[frame["year"] >= 1985], **KW),
                           progress=False)
    # synthetic DID needs two pre-periods for its noise level
    with pytest.raises(DesignError, match="at least two pre-treatment periods"):
        synthdid(Panel.from_frame(frame[frame["year"] >= 1988], **KW), se=None)


@pytest.mark.unit
def test_bad_options(panel):
    with pytest.raises(DesignError, match="not a pre-treatment period"):
        synth(panel, lags=[1990], placebo=False, progress=False)
    with pytest.raises(ColumnError, match="not a covariate"):
        synth(panel, covariates={"retprice": None}, placebo=False, progress=False)
    with pytest.raises(DesignError, match="criterion"):
        regression_control(panel, criterion="cp", progress=False)
    with pytest.raises(DesignError, match="se must be"):
        synthdid(panel, se="wild")


@pytest.mark.unit
def test_inputs_not_mutated(frame):
    before = frame.copy()
    panel = Panel.from_frame(frame, **KW)
    synth(panel, placebo=False, progress=False)
    regression_control(panel, se="prediction", progress=False)
    pd.testing.assert_frame_equal(frame, before)
