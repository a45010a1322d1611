"""Tests of bayesdid.Panel: input validation, no mutation, derived design columns,
transformations (winsorize, interpolate) and the shipped data."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from bayesdid import errors
from bayesdid.datasets import info, load, simulate_staggered
from bayesdid.errors import (
    BayesDidError,
    ColumnError,
    DesignError,
    DuplicateRowsError,
    EmptyPanelError,
    MissingValueError,
    NonFiniteValueError,
    PolicyListError,
    TimeColumnError,
    TreatmentError,
    WeightsError,
)
from bayesdid.panel import Panel

YEARS = list(range(2000, 2006))
UNITS = list("abcdef")
# first treated period per unit; d, e, f never treated
COHORT = {"a": 2002, "b": 2002, "c": 2004}
KW = dict(unit="unit", time="year", outcome="y")


def make_frame(shuffle: bool = True) -> pd.DataFrame:
    """6 units x 6 years; rows shuffled and labelled 1000+ so that error rows can be
    matched back to the caller's frame by label."""
    rng = np.random.default_rng(0)
    rows = []
    for i, u in enumerate(UNITS):
        for t in YEARS:
            c = COHORT.get(u)
            rows.append({
                "unit": u, "year": t, "y": float(10 * i + (t - 2000)) + rng.normal(0, 0.1),
                "d": int(c is not None and t >= c), "g": c if c is not None else 0,
                "x": rng.normal(), "w": 1.0 + i, "region": "north" if i % 2 else "south",
            })
    df = pd.DataFrame(rows)
    if shuffle:
        df = df.sample(frac=1.0, random_state=1)
    df.index = 1000 + np.arange(len(df))
    return df


def labels(df: pd.DataFrame, mask) -> list:
    return sorted(df.index[mask])


def build(df, **kw):
    args = {**KW, "treat": "d", **kw}
    return Panel.from_frame(df, **{k: v for k, v in args.items() if v is not None})


# ---------------------------------------------------------------------- bad inputs
def _dup(df):
    extra = df.loc[(df.unit == "d") & (df.year == 2003)].copy()
    extra.index = [5000]
    return pd.concat([df, extra]), {}, DuplicateRowsError, "unit", [
        *labels(df, (df.unit == "d") & (df.year == 2003)), 5000]


def _switch_off(df):
    df.loc[(df.unit == "a") & (df.year == 2004), "d"] = 0
    return df, {}, TreatmentError, "d", labels(df, df.unit == "a")


def _time_text(df):
    df["year"] = df["year"].astype(object)
    df.loc[(df.unit == "b") & (df.year == 2001), "year"] = "two thousand one"
    return df, {}, TimeColumnError, "year", labels(df, df.year == "two thousand one")


def _time_irregular_dates(df):
    # yearly dates (Jan 1) and one mid-year date: fits no yearly/quarterly/monthly axis
    odd = (df.unit == "b") & (df.year == 2001)
    df["year"] = pd.to_datetime(df["year"].astype(str), format="%Y")
    df.loc[odd, "year"] = pd.Timestamp("2001-06-15")
    return df, {}, TimeColumnError, "year", labels(df, odd)


def _time_missing(df):
    df["year"] = df["year"].astype(float)
    df.loc[(df.unit == "e") & (df.year == 2003), "year"] = np.nan
    return df, {}, TimeColumnError, "year", labels(df, df.year.isna())


def _time_fractional(df):
    df["year"] = df["year"].astype(float)
    df.loc[(df.unit == "e") & (df.year == 2003), "year"] = 2003.5
    return df, {}, TimeColumnError, "year", labels(df, df.year == 2003.5)


def _y_missing(df):
    df.loc[(df.unit == "c") & (df.year == 2002), "y"] = np.nan
    return df, {}, MissingValueError, "y", labels(df, df.y.isna())


def _unit_missing(df):
    df["unit"] = df["unit"].astype(object)
    df.loc[df.index[3], "unit"] = None
    return df, {}, MissingValueError, "unit", [df.index[3]]


def _x_inf(df):
    df.loc[(df.unit == "f") & (df.year == 2001), "x"] = np.inf
    df.loc[(df.unit == "a") & (df.year == 2005), "x"] = -np.inf
    return df, {"covariates": ["x"]}, NonFiniteValueError, "x", labels(df, np.isinf(df.x))


def _x_text(df):
    df["x"] = df["x"].astype(object)
    df.loc[(df.unit == "f") & (df.year == 2001), "x"] = "n/a"
    return df, {"covariates": ["x"]}, ColumnError, "x", labels(df, df.x == "n/a")


def _no_pre(df):
    df.loc[df.unit == "e", "d"] = 1  # e treated in every period
    return df, {}, DesignError, "unit", labels(df, df.unit == "e")


def _no_comparison(df):
    df.loc[df.year == 2005, "d"] = 1  # every unit treated in 2005
    return df, {}, DesignError, "year", labels(df, df.year == 2005)


def _no_treated(df):
    df["d"] = 0
    return df, {}, TreatmentError, "unit", None


def _absent_unit(df):
    return df, {"treat": None, "policy_lists": {2001: ["a", "b"], 2003: ["c", "zz"]}}, \
        PolicyListError, "unit", "zz"


def _listed_twice(df):
    return df, {"treat": None, "policy_lists": {2001: ["a", "b"], 2003: ["c", "a"]}}, \
        PolicyListError, "unit", "a"


def _weights_negative(df):
    df.loc[(df.unit == "b") & (df.year == 2000), "w"] = -1.0
    return df, {"weights": "w"}, WeightsError, "w", labels(df, df.w < 0)


def _weights_nan(df):
    df.loc[(df.unit == "d") & (df.year == 2002), "w"] = np.nan
    return df, {"weights": "w"}, WeightsError, "w", labels(df, df.w.isna())


def _weights_zero(df):
    df["w"] = 0.0
    return df, {"weights": "w"}, WeightsError, "w", None


def _single_period(df):
    return df.loc[df.year == 2003], {}, TimeColumnError, "year", None


def _treat_not_binary(df):
    df.loc[(df.unit == "c") & (df.year == 2005), "d"] = 2
    return df, {}, TreatmentError, "d", labels(df, df.d == 2)


def _treat_missing(df):
    df["d"] = df["d"].astype(float)
    df.loc[(df.unit == "c") & (df.year == 2005), "d"] = np.nan
    return df, {}, MissingValueError, "d", labels(df, df.d.isna())


def _cohort_varies(df):
    df.loc[(df.unit == "c") & (df.year == 2005), "g"] = 2005
    return df, {"treat": None, "cohort": "g"}, ColumnError, "g", labels(df, df.unit == "c")


def _cohort_text(df):
    df["g"] = df["g"].astype(object)
    df.loc[df.unit == "c", "g"] = "late"
    return df, {"treat": None, "cohort": "g"}, ColumnError, "g", labels(df, df.unit == "c")


def _group_varies(df):
    df.loc[(df.unit == "f") & (df.year == 2002), "region"] = "east"
    return df, {"groups": ["region"]}, ColumnError, "region", labels(df, df.unit == "f")


def _group_missing(df):
    df.loc[(df.unit == "f") & (df.year == 2002), "region"] = None
    return df, {"groups": ["region"]}, MissingValueError, "region", labels(df, df.region.isna())


def _cluster_missing(df):
    df.loc[(df.unit == "f") & (df.year == 2002), "region"] = None
    return df, {"cluster": "region"}, MissingValueError, "region", labels(df, df.region.isna())


def _derived_name(df):
    df = df.rename(columns={"x": "rel_time"})
    return df, {"covariates": ["rel_time"]}, ColumnError, "rel_time", None


def _duplicate_column(df):
    df = pd.concat([df, df[["y"]]], axis=1)
    return df, {}, ColumnError, "y", None


BAD = {
    "duplicate unit-time": _dup,
    "treatment switches off": _switch_off,
    "non-numeric time": _time_text,
    "irregular datetime time": _time_irregular_dates,
    "missing time": _time_missing,
    "fractional time": _time_fractional,
    "missing outcome": _y_missing,
    "missing unit": _unit_missing,
    "inf in covariate": _x_inf,
    "text in covariate": _x_text,
    "no pre-period": _no_pre,
    "no untreated comparison cells": _no_comparison,
    "no treated cells": _no_treated,
    "policy list names absent unit": _absent_unit,
    "unit listed twice": _listed_twice,
    "negative weights": _weights_negative,
    "NaN weights": _weights_nan,
    "all-zero weights": _weights_zero,
    "single time period": _single_period,
    "treat not 0/1": _treat_not_binary,
    "treat missing": _treat_missing,
    "cohort varies within unit": _cohort_varies,
    "cohort not numeric": _cohort_text,
    "group varies within unit": _group_varies,
    "group missing": _group_missing,
    "cluster missing": _cluster_missing,
    "column named like a derived one": _derived_name,
    "duplicate column name": _duplicate_column,
}


@pytest.mark.unit
@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_raises_typed_error_naming_column_and_rows(case):
    df, kw, cls, column, expected_rows = BAD[case](make_frame())
    with pytest.raises(cls) as info_:
        build(df, **kw)
    err = info_.value
    assert type(err) is cls, f"{case}: got {type(err).__name__}, want {cls.__name__}"
    assert isinstance(err, ValueError) and isinstance(err, BayesDidError)
    assert err.column == column
    assert repr(column) in str(err), str(err)
    if expected_rows is None:
        return
    assert isinstance(err.rows, pd.DataFrame)
    assert "Offending rows" in str(err)
    if isinstance(expected_rows, str):  # policy-list errors: rows are the listings at fault
        assert set(err.rows["unit"]) == {expected_rows}
        assert "batch" in err.rows.columns
    else:  # rows carry the caller's row labels
        assert sorted(err.rows.index) == sorted(expected_rows)
        if column in err.rows.columns and column in df.columns and df[column].ndim == 1:
            shown = err.rows[column].astype(object)
            orig = df.loc[err.rows.index, column].astype(object)
            assert all((a == b) or (pd.isna(a) and pd.isna(b)) for a, b in zip(shown, orig))


@pytest.mark.unit
def test_listed_twice_shows_both_batches():
    with pytest.raises(PolicyListError) as e:
        build(make_frame(), treat=None, policy_lists={2001: ["a", "b"], 2003: ["c", "a"]})
    assert e.value.rows["batch"].tolist() == [2001, 2003]
    assert "'a'" in str(e.value)


@pytest.mark.unit
def test_unknown_column_hints():
    df = make_frame()
    with pytest.raises(ColumnError) as e:
        build(df, outcome="Y")
    err = e.value
    assert err.column == "Y" and type(err) is ColumnError
    assert "did you mean 'y'?" in str(err)
    assert "outcome=" in str(err)
    with pytest.raises(ColumnError, match="did you mean 'region'"):
        build(df, groups=["regoin"])
    with pytest.raises(ColumnError, match="available columns: unit, year"):
        build(df, covariates=["zzz_nothing_like_it"])


@pytest.mark.unit
@pytest.mark.parametrize("given", [
    {"cohort": "g"},
    {"policy_lists": {2001: ["a"]}},
])
def test_more_than_one_treatment_spec(given):
    with pytest.raises(TreatmentError) as e:
        build(make_frame(), **given)  # treat="d" is always passed by build
    assert type(e.value) is TreatmentError
    assert "exactly one" in str(e.value) and "'d'" in str(e.value)
    assert e.value.column == "d"


@pytest.mark.unit
def test_no_treatment_spec():
    with pytest.raises(TreatmentError, match="exactly one"):
        Panel.from_frame(make_frame(), **KW)


@pytest.mark.unit
@pytest.mark.parametrize("obj", [None, {"unit": ["a"]}, np.zeros((3, 3)), pd.Series([1.0])])
def test_non_dataframe_input(obj):
    with pytest.raises(BayesDidError, match="expected a pandas DataFrame") as e:
        Panel.from_frame(obj, **KW, treat="d")
    assert isinstance(e.value, ValueError)


@pytest.mark.unit
def test_empty_frame():
    empty = make_frame().iloc[0:0]
    with pytest.raises(EmptyPanelError) as e:
        build(empty)
    assert type(e.value) is EmptyPanelError and isinstance(e.value, ValueError)
    with pytest.raises(EmptyPanelError):
        Panel.from_frame(pd.DataFrame(), **KW, treat="d")


@pytest.mark.unit
@pytest.mark.parametrize("bad", [(0.99, 0.01), (-0.1, 0.9), (0.1,), "abc", (0.0, 1.5)])
def test_bad_winsorize_quantiles(bad):
    with pytest.raises(BayesDidError, match="winsorize"):
        build(make_frame(), winsorize=bad)


@pytest.mark.unit
@pytest.mark.parametrize("bad", [{2001: "a"}, {"late": ["a"]}, {2001.5: ["a"]}, {}, [2001, ["a"]]])
def test_malformed_policy_lists(bad):
    with pytest.raises(PolicyListError):
        build(make_frame(), treat=None, policy_lists=bad)


@pytest.mark.unit
def test_bad_start_and_string_groups():
    with pytest.raises(TreatmentError, match="start"):
        build(make_frame(), treat=None, policy_lists={2001: ["a"]}, start="next year")
    with pytest.raises(ColumnError, match=r"groups=\['region'\]"):
        build(make_frame(), groups="region")


@pytest.mark.unit
def test_all_errors_are_value_errors():
    """Every error is a ValueError; the module's warnings (ConvergenceWarning, ...) are
    warnings, and nothing else is exported."""
    exported = [getattr(errors, name) for name in errors.__all__]
    warns = [c for c in exported if issubclass(c, Warning)]
    assert {c.__name__ for c in warns} == {"ConvergenceWarning", "DesignIgnoredWarning",
                                           "ModelCheckWarning"}
    for cls in exported:
        if cls not in warns:
            assert issubclass(cls, errors.BayesDidError) and issubclass(cls, ValueError), cls


@pytest.mark.unit
def test_error_message_is_readable():
    df = make_frame()
    df.loc[(df.unit == "c") & (df.year == 2002), "y"] = np.nan
    with pytest.raises(MissingValueError) as e:
        build(df)
    text = str(e.value)
    lines = text.splitlines()
    assert lines[0] == "column 'y' has 1 missing value(s)"
    assert lines[1].startswith("Hint: pass interpolate=True")
    assert lines[2] == "Offending rows (1):"
    assert "NaN" in lines[4] and len(lines) == 5
    # long offenders are truncated
    df = make_frame()
    df["y"] = np.nan
    with pytest.raises(MissingValueError) as e:
        build(df)
    assert "... and 26 more row(s)" in str(e.value)
    assert len(e.value.rows) == 36


# ---------------------------------------------------------------------- no mutation
@pytest.mark.unit
@pytest.mark.parametrize("kw", [
    {},
    {"covariates": ["x"], "groups": ["region"], "weights": "w", "cluster": "unit"},
    {"treat": None, "cohort": "g", "winsorize": (0.01, 0.99), "covariates": ["x"]},
    {"treat": None, "policy_lists": {2001: ["a", "b"], 2003: ["c"]}, "interpolate": True,
     "winsorize": (0.05, 0.95), "covariates": ["x"], "weights": "w"},
])
def test_caller_frame_not_mutated(kw):
    df = make_frame()
    df.loc[(df.unit == "d") & (df.year == 2003), "y"] = np.nan  # interior gap
    df["w"] = df["w"].astype("float32")
    df["year"] = df["year"].astype("int32")
    original = copy.deepcopy(df)
    if kw.get("interpolate"):
        build(df, **kw)
    else:
        with pytest.raises(MissingValueError):
            build(df, **kw)
        df.loc[(df.unit == "d") & (df.year == 2003), "y"] = 1.0
        original = copy.deepcopy(df)
        build(df, **kw)
    pdt.assert_frame_equal(df, original, check_dtype=True, check_index_type=True,
                           check_column_type=True, check_exact=True)


@pytest.mark.unit
def test_failed_builds_do_not_mutate():
    for case in ("negative weights", "treatment switches off", "non-numeric time"):
        df, kw, cls, _, _ = BAD[case](make_frame())
        original = copy.deepcopy(df)
        with pytest.raises(cls):
            build(df, **kw)
        pdt.assert_frame_equal(df, original, check_exact=True)


@pytest.mark.unit
def test_data_is_a_copy():
    p = build(make_frame(), covariates=["x"])
    before = p.data
    got = p.data
    got["y"] = 0.0
    got.loc[got.index[0], "treated"] = 99
    del got["cohort"]
    pdt.assert_frame_equal(p.data, before)
    assert p.data is not p.data


# ---------------------------------------------------------------------- derived columns
DERIVED = ["unit", "year", "treated", "cohort", "rel_time", "never_treated"]


@pytest.mark.unit
def test_treat_cohort_policy_lists_agree():
    df = make_frame()
    by_treat = build(df).data[DERIVED]
    by_cohort = build(df, treat=None, cohort="g").data[DERIVED]
    by_lists_next = build(df, treat=None, policy_lists={2001: ["a", "b"], 2003: ["c"]},
                          start="next_year").data[DERIVED]
    by_lists_same = build(df, treat=None, policy_lists={2002: ["a", "b"], 2004: ["c"]},
                          start="same_year").data[DERIVED]
    for other in (by_cohort, by_lists_next, by_lists_same):
        pdt.assert_frame_equal(by_treat, other)
    # and the values themselves
    t = by_treat.set_index(["unit", "year"])
    assert t.loc[("a", 2001), "treated"] == 0 and t.loc[("a", 2002), "treated"] == 1
    assert t.loc[("c", 2003), "rel_time"] == -1 and t.loc[("c", 2005), "rel_time"] == 1
    assert t.loc[("a", 2000), "rel_time"] == -2
    assert t.loc[("d", 2003), "cohort"] is pd.NA and t.loc[("d", 2003), "rel_time"] is pd.NA
    assert t["never_treated"].groupby("unit").first().to_dict() == {
        "a": False, "b": False, "c": False, "d": True, "e": True, "f": True}
    assert str(by_treat["cohort"].dtype) == "Int64"
    expected_d = [int(COHORT.get(u, 9999) <= y) for u, y in zip(by_treat.unit, by_treat.year)]
    assert by_treat["treated"].tolist() == expected_d


@pytest.mark.unit
def test_output_sorted_and_keeps_user_columns():
    p = build(make_frame(), covariates=["x"], groups=["region"], weights="w")
    d = p.data
    assert list(d.index) == list(range(len(d)))
    assert d[["unit", "year"]].equals(d[["unit", "year"]].sort_values(["unit", "year"]))
    assert {"unit", "year", "y", "d", "x", "region", "w"} <= set(d.columns)
    assert p.cohorts == [2002, 2004]
    assert p.units.tolist() == UNITS and p.times.tolist() == YEARS
    assert p.n_obs == 36 and p.is_balanced


@pytest.mark.unit
def test_start_shifts_cohort_by_one():
    lists = {2001: ["a", "b"], 2003: ["c"]}
    nxt = build(make_frame(), treat=None, policy_lists=lists, start="next_year")
    same = build(make_frame(), treat=None, policy_lists=lists, start="same_year")
    assert nxt.cohorts == [2002, 2004] and same.cohorts == [2001, 2003]
    treated = ~nxt.data["never_treated"]
    assert (nxt.data.loc[treated, "cohort"] == same.data.loc[treated, "cohort"] + 1).all()
    assert (nxt.data["rel_time"] == same.data["rel_time"] - 1).fillna(True).all()
    assert nxt.start == "next_year" and same.start == "same_year"
    assert any(e.step == "policy_lists" for e in nxt.log)


@pytest.mark.unit
def test_policy_lists_accept_arrays_and_tuples():
    a = build(make_frame(), treat=None, policy_lists={2001: np.array(["a", "b"]), 2003: ("c",)})
    b = build(make_frame(), treat=None, policy_lists={2001: ["a", "b"], 2003: ["c"]})
    pdt.assert_frame_equal(a.data, b.data)


@pytest.mark.unit
@pytest.mark.parametrize("never", [0, np.nan, np.inf])
def test_cohort_never_treated_codes(never):
    df = make_frame()
    df["g"] = df["g"].astype(float)
    df.loc[df.g == 0, "g"] = never
    p = build(df, treat=None, cohort="g")
    pdt.assert_frame_equal(p.data[DERIVED], build(make_frame()).data[DERIVED])


@pytest.mark.unit
def test_cohort_after_sample_is_never_treated_and_logged():
    df = make_frame()
    df.loc[df.unit == "f", "g"] = 2010  # listed, but first treated after the panel ends
    p = build(df, treat=None, cohort="g")
    assert p.cohorts == [2002, 2004]
    f = p.data.loc[p.data.unit == "f"]
    assert f["never_treated"].all() and f["cohort"].isna().all() and (f["treated"] == 0).all()
    entry = next(e for e in p.log if e.step == "cohort_after_sample")
    assert entry.n_affected == 1 and "2010" in entry.detail


@pytest.mark.unit
def test_unbalanced_panel_and_to_xarray():
    df = make_frame()
    drop = ((df.unit == "d") & df.year.isin([2002, 2003])) | ((df.unit == "a") & (df.year == 2005))
    p = build(df.loc[~drop], covariates=["x"], groups=["region"], weights="w")
    assert not p.is_balanced and p.n_obs == 33
    ds = p.to_xarray()
    assert ds["y"].dims == ("unit", "time")
    assert ds.sizes == {"unit": 6, "time": 6}
    assert ds["unit"].values.tolist() == UNITS and ds["time"].values.tolist() == YEARS
    for u, t in [("d", 2002), ("d", 2003), ("a", 2005)]:
        cell = ds.sel(unit=u, time=t)
        assert np.isnan(cell["y"]) and np.isnan(cell["treated"]) and np.isnan(cell["x"])
        assert not bool(cell["observed"])
    assert int(ds["observed"].sum()) == 33
    # present cells carry the frame's values
    row = df.loc[(df.unit == "c") & (df.year == 2004)].iloc[0]
    assert float(ds["y"].sel(unit="c", time=2004)) == row["y"]
    assert float(ds["treated"].sel(unit="c", time=2004)) == 1.0
    assert float(ds["w"].sel(unit="c", time=2004)) == row["w"]
    assert np.isnan(ds["cohort"].sel(unit="d")) and float(ds["cohort"].sel(unit="a")) == 2002
    assert ds["region"].sel(unit="b").item() == "north"
    # the balanced panel has no NaN and is_balanced
    full = build(df)
    assert full.is_balanced and not np.isnan(full.to_xarray()["y"].values).any()


@pytest.mark.unit
def test_unbalanced_treat_with_gap_still_adopts_once():
    df = make_frame()
    gap = (df.unit == "a") & (df.year == 2003)  # a treated from 2002, 2003 row absent
    p = build(df.loc[~gap])
    a = p.data.loc[p.data.unit == "a"]
    assert a["year"].tolist() == [2000, 2001, 2002, 2004, 2005]
    assert a["treated"].tolist() == [0, 0, 1, 1, 1] and (a["cohort"] == 2002).all()


# ---------------------------------------------------------------------- transformations
@pytest.mark.unit
def test_winsorize_clips_and_logs():
    df = make_frame()
    df.loc[(df.unit == "b") & (df.year == 2003), "y"] = 1e6
    df.loc[(df.unit == "e") & (df.year == 2000), "y"] = -1e6
    df.loc[(df.unit == "f") & (df.year == 2004), "x"] = 50.0
    p = build(df, covariates=["x"], winsorize=(0.01, 0.99))
    lo, hi = np.quantile(df["y"], [0.01, 0.99])
    d = p.data.set_index(["unit", "year"])
    assert d.loc[("b", 2003), "y"] == pytest.approx(hi)
    assert d.loc[("e", 2000), "y"] == pytest.approx(lo)
    assert d["y"].max() == pytest.approx(hi) and d["y"].min() == pytest.approx(lo)
    # untouched values are unchanged
    inside = df.set_index(["unit", "year"])["y"].between(lo, hi)
    orig = df.set_index(["unit", "year"])["y"]
    pdt.assert_series_equal(d["y"][inside.reindex(d.index)],
                            orig[inside].reindex(d.index[inside.reindex(d.index)]),
                            check_names=False)
    entries = {e.detail.split(":")[0]: e for e in p.log if e.step == "winsorize"}
    assert set(entries) == {"y", "x"}
    assert entries["y"].n_affected == int(((orig < lo) | (orig > hi)).sum()) == 2
    assert entries["x"].n_affected == 2 and "clipped 2" in entries["x"].detail
    assert "winsorize" in repr(p)


@pytest.mark.unit
def test_interpolate_fills_interior_gaps_linearly():
    df = make_frame()
    c = df.unit == "c"
    df.loc[c, "y"] = df.loc[c, "year"].map({2000: 1.0, 2001: 2.0, 2002: np.nan, 2003: np.nan,
                                              2004: 8.0, 2005: 9.0})
    df.loc[(df.unit == "e") & (df.year == 2002), "x"] = np.nan
    p = build(df, covariates=["x"], interpolate=True)
    got = p.data.set_index(["unit", "year"])
    assert got.loc["c", "y"].tolist() == [1.0, 2.0, 4.0, 6.0, 8.0, 9.0]
    x_e = df.loc[df.unit == "e"].set_index("year")["x"]
    assert got.loc[("e", 2002), "x"] == pytest.approx((x_e[2001] + x_e[2003]) / 2)
    steps = {e.detail.split(":")[0]: e.n_affected for e in p.log if e.step == "interpolate"}
    assert steps == {"y": 2, "x": 1}


@pytest.mark.unit
def test_interpolate_uses_time_not_row_position():
    df = make_frame()
    keep = ~((df.unit == "d") & (df.year == 2002))  # absent row
    d = df.unit == "d"
    df.loc[d, "y"] = df.loc[d, "year"].map({2000: 0.0, 2001: 10.0, 2003: np.nan,
                                              2004: 40.0, 2005: 50.0, 2002: 20.0})
    p = build(df.loc[keep], interpolate=True)
    assert p.data.set_index(["unit", "year"]).loc[("d", 2003), "y"] == pytest.approx(30.0)


@pytest.mark.unit
@pytest.mark.parametrize("edge_year", [2000, 2005])
def test_interpolate_leaves_edge_gaps(edge_year):
    df = make_frame()
    df.loc[(df.unit == "c") & (df.year == 2002), "y"] = np.nan  # interior: filled
    edge = (df.unit == "f") & (df.year == edge_year)
    df.loc[edge, "y"] = np.nan
    with pytest.raises(MissingValueError) as e:
        build(df, interpolate=True)
    assert e.value.column == "y"
    assert list(e.value.rows.index) == list(df.index[edge])


def _drop(df, pairs):
    gone = np.zeros(len(df), bool)
    for unit, year in pairs:
        gone |= ((df.unit == unit) & (df.year == year)).to_numpy()
    return df.loc[~gone]


# interior gaps: a (treated 2002) misses 2001; c (treated 2004) misses its first treated
# year; d (never treated) misses 2002-2003. Edge gaps: e starts 2001, f ends 2004.
GAPS = [("a", 2001), ("c", 2004), ("d", 2002), ("d", 2003), ("e", 2000), ("f", 2005)]


@pytest.mark.unit
def test_missing_periods_lists_interior_gaps_only():
    p = build(_drop(make_frame(), GAPS))
    assert p.missing_periods().to_dict("list") == {"unit": ["a", "c", "d", "d"],
                                                   "year": [2001, 2004, 2002, 2003]}
    assert build(make_frame()).missing_periods().empty
    # the grid is the periods observed at all: biennial data have no gaps
    biennial = make_frame().query("year % 2 == 0")
    assert build(biennial).missing_periods().empty


@pytest.mark.unit
def test_interpolate_adds_missing_interior_periods():
    """interpolate=True adds the interior missing periods (not the edges), interpolates
    outcome and covariates linearly in time, carries the other columns from the previous
    period, and logs units and periods. (Before: the rows stayed missing, so AR(1) models
    refused the panel with a hint to pass interpolate=True.)"""
    df = _drop(make_frame(), GAPS)
    original = df.copy()
    p = build(df, covariates=["x"], groups=["region"], weights="w", interpolate=True)
    pdt.assert_frame_equal(df, original)
    assert p.n_obs == 36 - 2 and p.missing_periods().empty
    got = p.data.set_index(["unit", "year"])
    assert ("e", 2000) not in got.index and ("f", 2005) not in got.index  # no extrapolation
    full = make_frame().set_index(["unit", "year"]).sort_index()
    for unit, year in [("a", 2001), ("c", 2004), ("d", 2002), ("d", 2003)]:
        ys = full.loc[unit, "y"].drop([y for u, y in GAPS if u == unit])
        xs = full.loc[unit, "x"].drop([y for u, y in GAPS if u == unit])
        assert got.loc[(unit, year), "y"] == pytest.approx(np.interp(year, ys.index, ys))
        assert got.loc[(unit, year), "x"] == pytest.approx(np.interp(year, xs.index, xs))
        assert got.loc[(unit, year), "region"] == full.loc[(unit, year), "region"]
        assert got.loc[(unit, year), "w"] == full.loc[(unit, year), "w"]
    # treatment carried from the previous period: c's cohort is its first observed treated
    # year (2005), as it would be without the added row; a keeps 2002
    assert got.loc[("c", 2004), "treated"] == 0 and got.loc["c", "cohort"].eq(2005).all()
    assert got.loc[("a", 2001), "treated"] == 0 and got.loc["a", "cohort"].eq(2002).all()
    added = [e for e in p.log if e.step == "add_periods"]
    assert len(added) == 1 and added[0].n_affected == 4
    assert "a: 2001; c: 2004; d: 2002, 2003" in added[0].detail
    interp = {e.detail.split(":")[0]: e.n_affected for e in p.log if e.step == "interpolate"}
    assert interp == {"y": 4, "x": 4}
    # with a cohort column the added first treated year is treated
    by_cohort = build(df, treat=None, cohort="g", interpolate=True).data.set_index(
        ["unit", "year"])
    assert by_cohort.loc[("c", 2004), "treated"] == 1
    assert by_cohort.loc["c", "cohort"].eq(2004).all()


@pytest.mark.unit
def test_added_periods_keep_column_types():
    df = _drop(make_frame(), GAPS)
    df["region_code"] = np.where(df["region"] == "north", 1, 2)
    p = build(df, groups=["region_code"], cluster="region_code", interpolate=True)
    got = p.data
    assert got["region_code"].dtype == np.int64 and got["year"].dtype == np.int64
    assert got.set_index(["unit", "year"]).loc[("d", 2002), "region_code"] == 1  # d: north


@pytest.mark.unit
def test_no_gaps_no_interpolation_log():
    p = build(make_frame(), interpolate=True, covariates=["x"])
    assert not [e for e in p.log if e.step == "interpolate"]


# ---------------------------------------------------------------------- shipped data
@pytest.mark.unit
@pytest.mark.parametrize("name", ["castle", "prop99"])
def test_shipped_data_build(name):
    df = load(name)
    original = df.copy(deep=True)
    p = Panel.from_frame(df, **info(name)["panel_kwargs"])
    pdt.assert_frame_equal(df, original)
    assert p.n_obs == len(df) and p.is_balanced
    ds = p.to_xarray()
    assert ds[p.outcome].dims == ("unit", "time")
    if name == "castle":
        assert len(p.units) == 50 and p.times.tolist() == list(range(2000, 2011))
        assert p.cohorts == [2006, 2007, 2008, 2009, 2010]
    else:
        assert len(p.units) == 39 and p.cohorts == [1989]
        assert p.data.loc[~p.data.never_treated, "state"].unique().tolist() == ["California"]


@pytest.mark.unit
def test_simulated_panel_builds_and_matches_policy_lists():
    sim = simulate_staggered(n_units=40, years=(2005, 2014), batches={2008: 5, 2010: 6},
                             random_seed=1)
    p = Panel.from_frame(sim.data, **sim.panel_kwargs)
    assert len(p.units) == 40 and p.times.tolist() == list(range(2005, 2015))
    assert p.cohorts == [2009, 2011]
    # the same design from the policy lists (LCCP rule: treated the year after listing)
    kw = {k: v for k, v in sim.panel_kwargs.items() if k != "cohort"}
    q = Panel.from_frame(sim.data, **kw, policy_lists=sim.policy_lists, start="next_year")
    cols = ["city", "year", "treated", "cohort", "rel_time", "never_treated"]
    pdt.assert_frame_equal(p.data[cols], q.data[cols])
    assert (p.data["treated"].to_numpy() == sim.data.sort_values(["city", "year"])["treated"]
            .to_numpy()).all()
