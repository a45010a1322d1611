"""Bad inputs for synthetic control, synthetic DID and regression control: clear typed errors."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from bayesdid import Panel
from bayesdid.synthetic.regression_control import regression_control
from bayesdid.synthetic.sdid import synthdid
from bayesdid.synthetic.synth import synth
from bayesdid.datasets import info, load
from bayesdid.errors import ColumnError, DesignError, MissingValueError, SpecError

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


@pytest.mark.unit
def test_mspe_periods_after_treatment_need_consent(panel):
    kw = {"lags": [1975, 1980, 1988], "placebo": False, "progress": False}
    with pytest.raises(DesignError, match=r"mspe_periods \[1989, 1990\] are at or after the "
                                          r"treatment start of 'California'") as err:
        synth(panel, mspe_periods=range(1985, 1991), **kw)
    assert err.value.column == "time"
    assert "allow_post_mspe=True" in str(err.value)
    res = synth(panel, mspe_periods=range(1985, 1991), allow_post_mspe=True, **kw)
    assert res.predictor_weights["California"].sum() == pytest.approx(1.0)
    with pytest.raises(DesignError, match=r"mspe_periods \[1960\] are not periods"):
        synth(panel, mspe_periods=[1960, 1980], **kw)
    with pytest.raises(DesignError, match="no V is searched"):
        synth(panel, mspe_periods=[1980, 1985], placebo=False, progress=False)
    with pytest.raises(DesignError, match="no V is searched"):
        synth(panel, mspe_periods=[1980, 1985], v="equal", **kw)


@pytest.mark.unit
def test_bad_predictor_periods(panel):
    kw = {"placebo": False, "progress": False}
    with pytest.raises(DesignError, match=r"outcome periods 1988,1990-1992 reach past the "
                                          r"treatment start"):
        synth(panel, outcome_means=[[1988, 1990, 1991, 1992]], **kw)
    with pytest.raises(DesignError, match=r"periods \[1901\] for predictor 'y' are not"):
        synth(panel, outcome_means=[[1901, 1980]], **kw)
    with pytest.raises(DesignError, match=r"a tuple is a \(start, end\) window") as err:
        synth(panel, outcome_means=[(1975, 1980, 1985)], **kw)
    assert "as a list" in str(err.value)
    with pytest.raises(DesignError, match="non-empty list of periods"):
        synth(panel, outcome_means=[[]], **kw)
    with pytest.raises(DesignError, match="n_starts must be a positive integer"):
        synth(panel, lags=[1980, 1988], n_starts=0, **kw)
    with pytest.raises(DesignError, match="non-negative numbers with a positive sum"):
        synth(panel, lags=[1980, 1988], v=[0.0, 0.0], **kw)


@pytest.mark.pipeline
def test_study_step_takes_predictor_forms_and_mspe_window(tmp_path):
    from bayesdid.study import loads_study, run_study
    from bayesdid.study.steps_synth import _periods

    assert _periods("1988,1990-1992", "p") == [1988, 1990, 1991, 1992]
    assert _periods("1980-1988", "p") == (1980, 1988) and _periods("pre", "p") is None
    assert _periods([1975, 1980], "p") == [1975, 1980]
    with pytest.raises(SpecError, match="cannot read periods"):
        _periods("1980 to 1988", "steps[0].outcome_means[0]")
    text = """
    [study]
    name = "p99"
    [data]
    dataset = "prop99"
    [[steps]]
    kind = "synth"
    lags = [1975, 1988]
    outcome_means = ["1980-1984", "1985,1987-1988"]
    mspe_periods = [1980, 1981, 1982, 1983, 1984, 1985, 1986, 1987, 1988]
    placebo = false
    """
    res = run_study(loads_study(textwrap.dedent(text)), tmp_path, progress=False)
    weights = pd.read_csv(res.paths["table_synth_weights"])
    assert weights["California"].sum() == pytest.approx(1.0)
    bad = textwrap.dedent(text).replace("mspe_periods = [1980,", "mspe_periods = [1990,")
    with pytest.raises(DesignError, match=r"mspe_periods \[1990\] are at or after"):
        run_study(loads_study(bad), tmp_path / "bad", progress=False)
