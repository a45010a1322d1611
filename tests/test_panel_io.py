"""Files and calendar time (issue 16 item 4): CSV / Parquet / Stata round trips through
read_table / read_panel and the study CLI; yearly, quarterly and monthly datetimes and
Periods mapped to consecutive period indices, giving the same estimates as integer time."""

from __future__ import annotations

import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest

from bayesdid import HierarchicalDiD, Panel, callaway_santanna, read_panel, read_table
from bayesdid.cli import main
from bayesdid.datasets import simulate_staggered
from bayesdid.errors import (
    ColumnError,
    ConvergenceWarning,
    DesignIgnoredWarning,
    FileFormatError,
    SpecError,
    TimeColumnError,
)
from bayesdid.study import load_study

YEARS = (2005, 2012)


@pytest.fixture(scope="module")
def sim():
    return simulate_staggered(n_units=24, years=YEARS, batches={2008: 6, 2010: 6},
                              random_seed=5)


def small_frame(sim) -> pd.DataFrame:
    """The simulated panel with integer years, without the columns the reader tests skip."""
    df = sim.data[["city", "year", "region", "cohort", "x1", "eco_eff"]].copy()
    df["cohort"] = df["cohort"].astype("float")  # NaN for never treated: CSV/Stata friendly
    return df


KW = dict(unit="city", time="year", outcome="eco_eff", cohort="cohort", groups=["region"],
          covariates=["x1"])


def to_calendar(df: pd.DataFrame, periods: pd.PeriodIndex, kind: str) -> pd.DataFrame:
    """Relabel integer years YEARS[0].. as consecutive calendar periods (same data)."""
    mapping = dict(zip(range(YEARS[0], YEARS[1] + 1), periods))
    out = df.copy()
    out["year"] = pd.PeriodIndex(out["year"].map(mapping), freq=periods.freq)
    cohort = [mapping[int(c)] if pd.notna(c) else pd.NaT for c in out["cohort"]]
    out["cohort"] = pd.PeriodIndex(cohort, freq=periods.freq)
    if kind == "datetime":
        out["year"] = out["year"].dt.to_timestamp()
        out["cohort"] = out["cohort"].dt.to_timestamp()
    return out


def assert_same_panel(a: Panel, b: Panel) -> None:
    pd.testing.assert_frame_equal(a.data, b.data, check_dtype=False, check_categorical=False)
    assert (a.unit, a.time, a.outcome, a.groups, a.covariates) == \
        (b.unit, b.time, b.outcome, b.groups, b.covariates)


# ---------------------------------------------------------------------- files
@pytest.mark.unit
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet", ".dta"])
def test_file_round_trip_gives_the_same_panel(sim, tmp_path, suffix):
    df = small_frame(sim)
    path = tmp_path / f"panel{suffix}"
    if suffix == ".dta":
        df.to_stata(path, write_index=False)
    elif suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    assert_same_panel(read_panel(path, **KW), Panel.from_frame(df, **KW))


@pytest.mark.unit
def test_dta_value_labels_become_categoricals_and_dates_calendar_time(sim, tmp_path):
    df = to_calendar(small_frame(sim), pd.period_range("2019-01", periods=8, freq="M"),
                     "datetime")
    df["region"] = df["region"].astype("category")  # written as Stata value labels
    path = tmp_path / "panel.dta"
    df.to_stata(path, write_index=False, convert_dates={"year": "tm", "cohort": "tm"})
    raw = read_table(path)
    assert isinstance(raw["region"].dtype, pd.CategoricalDtype)
    assert set(raw["region"].cat.categories) == set(df["region"].cat.categories)
    assert pd.api.types.is_datetime64_any_dtype(raw["year"])
    panel = read_panel(path, **KW)
    assert isinstance(panel.data["region"].dtype, pd.CategoricalDtype)
    assert panel.time_axis.freq == "M"
    assert_same_panel(panel, Panel.from_frame(df, **KW))


@pytest.mark.unit
def test_parquet_keeps_periods(sim, tmp_path):
    df = to_calendar(small_frame(sim), pd.period_range("2019Q1", periods=8, freq="Q"),
                     "period")
    path = tmp_path / "panel.parquet"
    df.to_parquet(path)
    panel = read_panel(path, **KW)
    assert (panel.time_axis.kind, panel.time_axis.freq) == ("period", "Q")
    assert_same_panel(panel, Panel.from_frame(df, **KW))


@pytest.mark.unit
def test_unknown_suffix_is_a_typed_error(tmp_path):
    path = tmp_path / "panel.xlsx"
    path.write_bytes(b"not a sheet")
    with pytest.raises(FileFormatError, match=r"unknown file suffix '\.xlsx'") as info:
        read_table(path)
    assert ".parquet" in str(info.value) and ".dta" in str(info.value)
    with pytest.raises(FileNotFoundError):
        read_table(tmp_path / "absent.csv")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(FileFormatError, match="bad.parquet"):
        read_table(tmp_path / "bad.parquet")


# ---------------------------------------------------------------------- calendar time
@pytest.mark.unit
@pytest.mark.parametrize("kind", ["period", "datetime"])
@pytest.mark.parametrize("freq,start,step", [("M", "2019-11", "2019-12"),
                                             ("Q", "2019Q3", "2019Q4"),
                                             ("Y", "2019", "2020")])
def test_event_time_counts_periods(sim, kind, freq, start, step):
    periods = pd.period_range(start, periods=8, freq=freq)  # monthly crosses a year end
    df = to_calendar(small_frame(sim), periods, kind)
    panel = Panel.from_frame(df, **KW)
    ref = Panel.from_frame(small_frame(sim), **KW)
    assert panel.time_axis.freq == freq
    # event time in periods: exactly the integer panel's relative time
    assert panel.data["rel_time"].tolist() == ref.data["rel_time"].tolist()
    assert np.all(np.diff(panel.times) == 1)
    assert panel.time_axis.index_of(step) - panel.time_axis.index_of(start) == 1
    labels = panel.time_labels(panel.times)
    want = periods if kind == "period" else periods.to_timestamp()
    assert list(labels) == list(want)
    assert panel.describe().splitlines()[0].endswith(
        f"({periods[0]} to {periods[-1]}, {panel.time_axis.frequency}), {panel.n_obs} rows")


@pytest.mark.unit
def test_strings_and_month_end_dates_are_read(sim):
    periods = pd.period_range("2019-01", periods=8, freq="M")
    df = to_calendar(small_frame(sim), periods, "period")
    ref = Panel.from_frame(df, **KW)
    as_text = df.assign(year=df["year"].astype(str),
                        cohort=[str(c) if pd.notna(c) else None for c in df["cohort"]])
    ends = df.assign(year=df["year"].dt.to_timestamp(how="end").dt.normalize(),
                     cohort=df["cohort"].dt.to_timestamp(how="end").dt.normalize())
    for other in (as_text, ends):
        got = Panel.from_frame(other, **KW)
        assert got.time_axis.freq == "M"
        pd.testing.assert_frame_equal(got.data.drop(columns="year"),
                                      ref.data.drop(columns="year"), check_dtype=False)
        assert got.data["year"].tolist() == ref.data["year"].tolist()


@pytest.mark.unit
def test_never_treated_markers_with_date_cohorts(sim):
    df = to_calendar(small_frame(sim), pd.period_range("2019-01", periods=8, freq="M"),
                     "datetime")
    ref = Panel.from_frame(df, **KW)  # NaT marks the never treated
    obj = df.assign(cohort=df["cohort"].astype(object))
    never = df["cohort"].isna()
    for marker in (0, np.inf, None, np.nan):
        obj.loc[never, "cohort"] = marker
        got = Panel.from_frame(obj, **KW)
        assert got.data["never_treated"].tolist() == ref.data["never_treated"].tolist()
        assert got.cohorts == ref.cohorts


@pytest.mark.unit
def test_policy_lists_and_treat_with_monthly_time(sim):
    df = to_calendar(small_frame(sim), pd.period_range("2019-01", periods=8, freq="M"),
                     "period")
    ref = Panel.from_frame(df, **KW)
    cohorts = df.drop_duplicates("city").dropna(subset=["cohort"])
    lists = {str(g - 1): list(grp["city"]) for g, grp in cohorts.groupby("cohort")}
    kw = {k: v for k, v in KW.items() if k != "cohort"}
    listed = Panel.from_frame(df, **kw, policy_lists=lists, start="next_year")
    assert listed.data["cohort"].tolist() == ref.data["cohort"].tolist()
    treat = df.assign(d=(df["cohort"].notna() & (df["year"] >= df["cohort"])).astype(int))
    switched = Panel.from_frame(treat, **kw, treat="d")
    assert switched.data["cohort"].tolist() == ref.data["cohort"].tolist()


@pytest.mark.unit
def test_irregular_dates_raise_showing_the_rows(sim):
    df = to_calendar(small_frame(sim), pd.period_range("2019-01", periods=8, freq="M"),
                     "datetime")
    odd = (df["city"] == df["city"].iloc[0]) & (df["year"] == pd.Timestamp("2019-03-01"))
    df.loc[odd, "year"] = pd.Timestamp("2019-03-17")  # a second date in March
    with pytest.raises(TimeColumnError) as info:
        Panel.from_frame(df, **KW)
    err = info.value
    assert err.column == "year" and "'year'" in str(err)
    assert pd.Timestamp("2019-03-17") in set(err.rows["year"])
    # the rows shown are those whose date does not fit: the odd one
    assert list(err.rows.index) == list(df.index[odd])


@pytest.mark.unit
def test_unsupported_time_kinds_raise(sim):
    df = to_calendar(small_frame(sim), pd.period_range("2019-01-01", periods=8, freq="D"),
                     "period")
    with pytest.raises(TimeColumnError, match="yearly, quarterly or monthly"):
        Panel.from_frame(df, **KW)
    daily = df.assign(year=df["year"].dt.to_timestamp(),
                      cohort=df["cohort"].dt.to_timestamp())
    with pytest.raises(TimeColumnError, match="fit no yearly, quarterly or monthly"):
        Panel.from_frame(daily, **KW)
    monthly = to_calendar(small_frame(sim), pd.period_range("2019-01", periods=8, freq="M"),
                          "period")
    numeric_cohort = monthly.assign(cohort=small_frame(sim)["cohort"])  # years, not months
    with pytest.raises(ColumnError, match="cohort column 'cohort' must hold monthly") as info:
        Panel.from_frame(numeric_cohort, **KW)
    assert len(info.value.rows) == numeric_cohort["cohort"].notna().sum()


# ---------------------------------------------------------------------- estimators
@pytest.mark.unit
@pytest.mark.parametrize("kind", ["period", "datetime"])
def test_callaway_santanna_monthly_equals_integer_time(sim, kind):
    periods = pd.period_range("2019-06", periods=8, freq="M")
    ref = callaway_santanna(Panel.from_frame(small_frame(sim), **KW),
                            aggregate=("simple", "group", "dynamic", "calendar")).effects()
    got = callaway_santanna(Panel.from_frame(to_calendar(small_frame(sim), periods, kind),
                                             **KW),
                            aggregate=("simple", "group", "dynamic", "calendar")).effects()
    np.testing.assert_allclose(got["estimate"], ref["estimate"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["se_or_sd"], ref["se_or_sd"], rtol=0, atol=1e-12)
    # calendar groups carry the user's labels; event time stays in periods
    label = dict(zip([str(y) for y in range(YEARS[0], YEARS[1] + 1)], map(str, periods)))
    want = ref["group"].replace({rf"(cohort|t)={y}\b": rf"\g<1>={m}" for y, m in label.items()},
                                regex=True)
    assert got["group"].tolist() == want.tolist()
    assert "cohort=2019-10" in set(got["group"]) and "k=2" in set(got["group"])


@pytest.mark.sampling
def test_hierarchical_did_monthly_equals_integer_time(sim):
    periods = pd.period_range("2019-06", periods=8, freq="M")
    panels = {"integer": Panel.from_frame(small_frame(sim), **KW)}
    for kind in ("period", "datetime"):
        panels[kind] = Panel.from_frame(to_calendar(small_frame(sim), periods, kind), **KW)
    model = HierarchicalDiD(event_time=True)
    effects = {}
    with warnings.catch_warnings():
        # the check is equality of the same chains on relabelled time, not convergence
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DesignIgnoredWarning)
        for kind, panel in panels.items():
            effects[kind] = model.fit(panel, draws=150, tune=150, chains=1, random_seed=3,
                                      progress=False).effects()
    ref = effects["integer"]
    for kind in ("period", "datetime"):
        np.testing.assert_allclose(effects[kind]["estimate"], ref["estimate"], atol=1e-10)
        np.testing.assert_allclose(effects[kind]["lower"], ref["lower"], atol=1e-10)
        groups = set(effects[kind]["group"])
        assert {"cohort=2019-10", "cohort=2019-12", "k=0", "cohort=2019-10, k=1"} <= groups


# ---------------------------------------------------------------------- study CLI
@pytest.mark.pipeline
@pytest.mark.parametrize("suffix", [".parquet", ".dta"])
def test_bayesdid_run_reads_parquet_and_dta_with_monthly_time(sim, tmp_path, suffix):
    df = to_calendar(small_frame(sim), pd.period_range("2019-06", periods=8, freq="M"),
                     "datetime")
    path = tmp_path / f"panel{suffix}"
    if suffix == ".dta":
        df.to_stata(path, write_index=False, convert_dates={"year": "tm", "cohort": "tm"})
    else:
        df.to_parquet(path)
    spec = tmp_path / "study.toml"
    spec.write_text(textwrap.dedent(f"""
        [study]
        name = "monthly"
        [data]
        file = "{path.name}"
        [panel]
        unit = "city"
        time = "year"
        outcome = "eco_eff"
        cohort = "cohort"
        [[steps]]
        kind = "callaway_santanna"
        """), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 0
    effects = pd.read_csv(out / "effects.csv")
    assert "cohort=2019-10" in set(effects["group"])
    ref = callaway_santanna(Panel.from_frame(small_frame(sim), unit="city", time="year",
                                             outcome="eco_eff", cohort="cohort")).effects()
    np.testing.assert_allclose(effects["estimate"], ref["estimate"], atol=1e-9)
    assert "monthly" in (out / "panel.txt").read_text()


@pytest.mark.unit
def test_study_spec_rejects_unknown_file_suffix(tmp_path):
    (tmp_path / "panel.xlsx").write_text("x")
    spec = tmp_path / "s.toml"
    spec.write_text('[study]\nname = "s"\n[data]\nfile = "panel.xlsx"\n[panel]\nunit = "u"\n'
                    'time = "t"\noutcome = "y"\ntreat = "d"\n[[steps]]\nkind = "twfe"\n')
    with pytest.raises(SpecError, match=r"data\.file: cannot read 'panel\.xlsx': unknown "):
        load_study(spec)


@pytest.mark.unit
def test_synth_takes_calendar_periods_and_labels_its_gaps(sim):
    from bayesdid import synth

    periods = pd.period_range("2019-06", periods=8, freq="M")
    ref_panel = Panel.from_frame(small_frame(sim), **KW)
    panel = Panel.from_frame(to_calendar(small_frame(sim), periods, "period"), **KW)
    treated = [ref_panel.data.loc[ref_panel.data["cohort"] == 2011, "city"].iloc[0]]
    donors = list(ref_panel.data.loc[ref_panel.data["never_treated"], "city"].unique()[:8])
    kw = dict(treated=treated, donors=donors, v="equal", placebo=False, progress=False)
    ref = synth(ref_panel, lags=[2006, 2008, 2010], **kw).effects()
    got = synth(panel, lags=["2019-07", pd.Period("2019-09", "M"), "2019-11"], **kw).effects()
    np.testing.assert_allclose(got["estimate"], ref["estimate"], atol=1e-10)
    assert got["group"].tolist()[:3] == ["overall", "t=2019-06", "t=2019-07"]


@pytest.mark.unit
def test_parallel_trends_plot_names_calendar_periods(sim):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from bayesdid.report.staggered_plots import parallel_trends_plot

    periods = pd.period_range("2019-06", periods=8, freq="M")
    panel = Panel.from_frame(to_calendar(small_frame(sim), periods, "datetime"), **KW)
    fig = parallel_trends_plot(panel)
    FigureCanvasAgg(fig).draw()
    ticks = {t.get_text() for t in fig.axes[0].get_xticklabels()} - {""}
    assert {"2019-06", "2019-09", "2020-01"} <= ticks  # the user's months, not indices
    assert all(len(t) == 7 and t[4] == "-" for t in ticks)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any(text.startswith("cohort=2019-10") for text in labels)


@pytest.mark.unit
def test_errors_show_rows_with_the_users_time_labels(sim):
    from bayesdid.errors import DuplicateRowsError, MissingValueError

    periods = pd.period_range("2019-06", periods=8, freq="M")
    df = to_calendar(small_frame(sim), periods, "period")
    dup = pd.concat([df, df.iloc[[3]]])
    with pytest.raises(DuplicateRowsError) as info:
        Panel.from_frame(dup, **KW)
    assert info.value.rows["year"].tolist() == [df["year"].iloc[3]] * 2
    assert str(df["year"].iloc[3]) in str(info.value)
    gap = df.copy()
    gap.loc[gap.index[5], "eco_eff"] = np.nan
    with pytest.raises(MissingValueError) as info:
        Panel.from_frame(gap, **KW)
    assert info.value.rows["year"].tolist() == [df["year"].iloc[5]]
    assert info.value.hint and "interpolate=True" in info.value.hint


@pytest.mark.pipeline
def test_study_policy_lists_keyed_by_month_on_a_csv(sim, tmp_path):
    periods = pd.period_range("2019-06", periods=8, freq="M")
    df = to_calendar(small_frame(sim), periods, "period")
    listed = df.dropna(subset=["cohort"]).drop_duplicates("city")
    df.drop(columns="cohort").assign(year=df["year"].astype(str)).to_csv(
        tmp_path / "panel.csv", index=False)
    lists = "\n".join(f'"{g - 1}" = {list(grp["city"])!r}'.replace("'", '"')
                      for g, grp in listed.groupby("cohort"))
    spec = tmp_path / "study.toml"
    spec.write_text(textwrap.dedent("""
        [study]
        name = "monthly_lists"
        [data]
        csv = "panel.csv"
        [panel]
        unit = "city"
        time = "year"
        outcome = "eco_eff"
        start = "next_year"
        [panel.policy_lists]
        """) + lists + '\n[[steps]]\nkind = "callaway_santanna"\n', encoding="utf-8")
    assert set(load_study(spec).panel["policy_lists"]) == {"2019-09", "2019-11"}
    out = tmp_path / "out"
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 0
    effects = pd.read_csv(out / "effects.csv")
    ref = callaway_santanna(Panel.from_frame(df, unit="city", time="year",
                                             outcome="eco_eff", cohort="cohort")).effects()
    np.testing.assert_allclose(effects["estimate"], ref["estimate"], atol=1e-9)
    assert {"cohort=2019-10", "cohort=2019-12"} <= set(effects["group"])


@pytest.mark.unit
def test_period_labels_of_another_frequency_are_refused():
    df = pd.DataFrame({"u": ["a"] * 3, "t": pd.period_range("2019-01", periods=3, freq="M")})
    from bayesdid._time import time_axis

    _, axis = time_axis(df, "t")
    assert axis.index_of(pd.Period("2019-02-17", "D")) == axis.index_of("2019-02")
    with pytest.raises(TimeColumnError, match="quarterly period but time is monthly"):
        axis.index_of(pd.Period("2019Q1"))


@pytest.mark.unit
def test_calendar_panels_pickle_and_bacon_names_cohorts(sim):
    import pickle

    from bayesdid import bacon_decomposition

    periods = pd.period_range("2019-06", periods=8, freq="M")
    panel = Panel.from_frame(to_calendar(small_frame(sim), periods, "datetime"), **KW)
    back = pickle.loads(pickle.dumps(panel))  # process pools and dask ship panels
    assert back.time_axis == panel.time_axis
    pd.testing.assert_frame_equal(back.data, panel.data)
    ref = bacon_decomposition(Panel.from_frame(small_frame(sim), **KW),
                              covariates=()).effects()
    got = bacon_decomposition(panel, covariates=()).effects()
    np.testing.assert_allclose(got["estimate"], ref["estimate"], atol=1e-12)
    assert "cohort=2019-10 vs never" in set(got["group"])
