"""Tests of bayesdid.datasets: shipped CSVs, registry, and the staggered simulator."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesdid import datasets
from bayesdid.datasets import SimulatedPanel, simulate_staggered
from bayesdid.errors import BayesDidError, DatasetError
from bayesdid.results import group_label

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(n_units=40, years=(2005, 2014), batches={2008: 5, 2010: 6})


@pytest.fixture(scope="module")
def sim() -> SimulatedPanel:
    return simulate_staggered(random_seed=0)


# --------------------------------------------------------------------- shipped data
@pytest.mark.unit
def test_list_describes_every_dataset():
    table = datasets.list()
    assert list(table.columns) == ["name", "description", "rows", "columns", "source"]
    assert table["name"].tolist() == ["castle", "electricity", "prop99"]
    assert table.set_index("name")["rows"].to_dict() == {"castle": 550, "electricity": 123,
                                                         "prop99": 1209}
    assert table.set_index("name")["columns"].to_dict() == {"castle": 23, "electricity": 9,
                                                            "prop99": 5}


@pytest.mark.unit
def test_info_panel_kwargs_and_fresh_dict():
    meta = datasets.info("castle")
    assert meta["panel_kwargs"] == dict(unit="sid", time="year", outcome="l_homicide",
                                        cohort="cohort", groups=["region"], weights="popwt",
                                        cluster="sid")
    assert meta["rows"] == 550 and meta["licence"] == "MIT"
    assert datasets.info("prop99")["panel_kwargs"] == dict(
        unit="state", time="year", outcome="cigsale", cohort="cohort")
    meta["panel_kwargs"]["groups"].append("oops")
    assert datasets.info("castle")["panel_kwargs"]["groups"] == ["region"]


@pytest.mark.unit
def test_castle_shape_columns_and_dtypes():
    df = datasets.load("castle")
    assert df.shape == (550, 23)
    assert df["sid"].nunique() == 50 and df["year"].nunique() == 11
    assert (df.groupby("sid").size() == 11).all()
    assert df.columns[:6].tolist() == ["sid", "year", "region", "cohort", "post", "treated"]
    assert str(df["cohort"].dtype) == "Int64"
    assert not df.drop(columns="cohort").isna().any().any()


@pytest.mark.unit
def test_castle_values_exactly_as_in_causaldata():
    import causaldata  # in the dev extra: CI always has it

    raw = causaldata.castle.load_pandas().data.sort_values(["sid", "year"])
    df = datasets.load("castle")
    for col in df.columns.drop(["region", "cohort", "treated"]):
        expected = raw[col].to_numpy().astype("float64")
        assert np.array_equal(df[col].to_numpy().astype("float64"), expected), col


@pytest.mark.unit
def test_castle_treated_and_cohort_follow_post():
    df = datasets.load("castle")
    assert (df["treated"] == (df["post"] > 0).astype(int)).all()
    first = df.loc[df["post"] > 0].groupby("sid")["year"].min()
    cohort = df.groupby("sid")["cohort"].first()
    assert cohort.dropna().astype(int).to_dict() == first.to_dict()
    assert df.groupby("sid")["cohort"].nunique(dropna=False).eq(1).all()
    assert cohort.isna().sum() == 29
    assert cohort.value_counts().sort_index().to_dict() == {
        2006: 1, 2007: 13, 2008: 4, 2009: 2, 2010: 1}
    assert cohort[10] == 2006  # Florida, the first adopter


@pytest.mark.unit
def test_castle_regions_are_census_regions():
    df = datasets.load("castle")
    sizes = df.groupby("region")["sid"].nunique().to_dict()
    assert sizes == {"Northeast": 9, "Midwest": 12, "South": 16, "West": 13}
    region = df.groupby("sid")["region"].first()
    # California (5), New York (33), Ohio (36), Texas (44).
    assert region[[5, 33, 36, 44]].tolist() == ["West", "Northeast", "Midwest", "South"]


@pytest.mark.unit
def test_prop99_long_format_and_values():
    df = datasets.load("prop99")
    assert df.columns.tolist() == ["state", "year", "cigsale", "treated", "cohort"]
    assert df.shape == (1209, 5)
    assert df["state"].nunique() == 39 and df["year"].nunique() == 31
    assert (df["year"].min(), df["year"].max()) == (1970, 2000)
    ca = df.loc[df["state"] == "California"].set_index("year")
    assert ca.loc[1988, "cigsale"] == 90.1
    assert ca.loc[1970, "cigsale"] == 123.0
    treated = df.loc[df["treated"] == 1]
    assert set(treated["state"]) == {"California"}
    assert treated["year"].tolist() == list(range(1989, 2001))
    assert ca["cohort"].eq(1989).all()
    assert df.loc[df["state"] != "California", "cohort"].isna().all()


@pytest.mark.unit
def test_unknown_name_lists_available():
    with pytest.raises(DatasetError, match="available datasets: castle, electricity, prop99"):
        datasets.load("castel")
    with pytest.raises(KeyError):
        datasets.info("nope")
    with pytest.raises(BayesDidError):
        datasets.data_path(["castle"])


@pytest.mark.unit
def test_load_returns_a_fresh_copy():
    a = datasets.load("castle")
    a.loc[0, "l_homicide"] = -99.0
    a["extra"] = 1
    b = datasets.load("castle")
    assert b.loc[0, "l_homicide"] != -99.0 and "extra" not in b.columns
    assert a is not b


@pytest.mark.unit
def test_editable_install_reads_repo_data():
    path = datasets.data_path("castle")
    assert path.is_file() and path.name == "castle.csv"
    if "site-packages" not in Path(datasets.__file__).parts:
        assert path == REPO / "data" / "castle.csv"


@pytest.mark.unit
@pytest.mark.parametrize("name, shape, cohorts", [
    ("castle", (550, 50, 11), [2006, 2007, 2008, 2009, 2010]),
    ("prop99", (1209, 39, 31), [1989]),
    ("simulated", (400, 40, 10), [2009, 2011]),
])
def test_panels_build_from_default_kwargs(name, shape, cohorts):
    """The registry's (and the simulator's) panel_kwargs give a balanced panel, untouched
    (nothing logged), whose derived treatment and cohort reproduce the shipped columns."""
    from bayesdid import Panel

    if name == "simulated":
        small = simulate_staggered(**SMALL, random_seed=0)
        df, kwargs = small.data, small.panel_kwargs
    else:
        df, kwargs = datasets.load(name), datasets.info(name)["panel_kwargs"]
    panel = Panel.from_frame(df, **kwargs)
    assert (panel.n_obs, len(panel.units), len(panel.times)) == shape
    assert panel.is_balanced and panel.log == () and panel.cohorts == cohorts
    unit, time = kwargs["unit"], kwargs["time"]
    shipped = df.sort_values([unit, time]).reset_index(drop=True)
    got = panel.data
    assert got[[unit, time]].equals(shipped[[unit, time]])
    assert np.array_equal(got["treated"].to_numpy(), shipped["treated"].to_numpy())
    assert got["cohort"].astype("float").equals(shipped["cohort"].astype("float"))
    assert got[kwargs["outcome"]].to_numpy().tolist() == shipped[kwargs["outcome"]].tolist()


@pytest.mark.pipeline
def test_wheel_ships_csvs_and_loads_them(tmp_path):
    """Build the wheel, check the CSVs are inside, and load them from the unpacked wheel."""
    out = tmp_path / "whl"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        text = proc.stdout + proc.stderr
        offline = ("NewConnectionError", "Could not find a version", "No matching distribution",
                   "Temporary failure in name resolution", "Network is unreachable")
        if any(s in text for s in offline):
            pytest.skip("building the wheel needs hatchling from PyPI (offline)")
        pytest.fail(f"pip wheel failed:\n{text[-3000:]}")
    (wheel,) = out.glob("bayesdid-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path / "site")
    for f in ("castle.csv", "prop99.csv", "SOURCES.md"):
        assert f"bayesdid/_shipped/data/{f}" in names
    code = ("import bayesdid.datasets as d; p = d.data_path('castle'); "
            "print(p); print(len(d.load('castle')), len(d.load('prop99')))")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    path, counts = run.stdout.strip().splitlines()
    assert Path(path) == tmp_path / "site" / "bayesdid" / "_shipped" / "data" / "castle.csv"
    assert counts == "550 1209"


# ------------------------------------------------------------------------ simulator
@pytest.mark.unit
def test_simulator_default_shape(sim):
    d = sim.data
    assert len(d) == 278 * 19
    assert d.columns.tolist() == ["city", "year", "region", "batch", "cohort", "treated",
                                  "x1", "x2", "x3", "eco_eff"]
    assert d["city"].iloc[0] == "c001" and d["year"].between(2003, 2021).all()
    cities = d.drop_duplicates("city")
    assert cities["batch"].notna().sum() == 67
    assert cities["batch"].value_counts().to_dict() == {2010: 15, 2012: 22, 2017: 30}
    assert sorted(cities["cohort"].dropna().unique().tolist()) == [2011, 2013, 2018]
    assert cities["region"].value_counts().to_dict() == {
        "East": 100, "Central": 80, "West": 64, "Northeast": 34}
    assert 0.4 < d["eco_eff"].mean() < 0.6
    assert sim.panel_kwargs == dict(unit="city", time="year", outcome="eco_eff",
                                    cohort="cohort", groups=["region"],
                                    covariates=["x1", "x2", "x3"], cluster="city")


@pytest.mark.unit
def test_simulator_design_is_consistent(sim):
    d = sim.data
    k = d["year"] - d["cohort"]
    assert (d["treated"] == (k >= 0).fillna(False).astype(int)).all()
    assert ((d["cohort"] - d["batch"]).dropna() == 1).all()
    for batch, members in sim.policy_lists.items():
        listed = set(d.loc[d["batch"] == batch, "city"])
        assert listed == set(members)
    # Selection on levels: pilot cities have higher unit effects.
    alpha = pd.Series(sim.params["unit_effects"])
    pilots = {c for m in sim.policy_lists.values() for c in m}
    assert alpha[list(pilots)].mean() > alpha.drop(list(pilots)).mean()
    # Covariates are correlated with treatment.
    assert abs(d[["x1", "treated"]].corr().iloc[0, 1]) > 0.1


@pytest.mark.unit
def test_tau_follows_the_parameters(sim):
    p = sim.params
    cells = sim.tau.merge(sim.data, on=["city", "year"])
    assert len(cells) == sim.data["treated"].sum()
    expected = (cells["batch"].map(p["cohort_effects"]) + cells["region"].map(p["region_effects"])
                + p["slope"] * (cells["year"] - cells["cohort"]))
    np.testing.assert_allclose(cells["tau"], expected.astype(float), rtol=0, atol=1e-12)
    assert p["cohort_effects"] == {2010: 0.06, 2012: 0.01, 2017: 0.05}


@pytest.mark.unit
def test_truth_is_observation_weighted_mean_of_tau(sim):
    cells = sim.tau.merge(sim.data, on=["city", "year"])
    cells["k"] = cells["year"] - cells["cohort"]
    truth = sim.truth.set_index(["estimand", "group"])["value"]
    assert sim.truth.columns.tolist() == ["estimand", "group", "value"]
    assert truth[("att", "overall")] == pytest.approx(cells["tau"].mean(), abs=1e-14)
    for (c, r), v in cells.groupby(["cohort", "region"])["tau"].mean().items():
        assert truth[("att", group_label(cohort=c, region=r))] == pytest.approx(v, abs=1e-14)
    for c, v in cells.groupby("cohort")["tau"].mean().items():
        assert truth[("att", group_label(cohort=c))] == pytest.approx(v, abs=1e-14)
    for r, v in cells.groupby("region")["tau"].mean().items():
        assert truth[("att", group_label(region=r))] == pytest.approx(v, abs=1e-14)
    for k, v in cells.groupby("k")["tau"].mean().items():
        assert truth[("event_time", f"k={k}")] == pytest.approx(v, abs=1e-14)
    assert ("att", "cohort=2011") in truth.index and ("att", "cohort=2010") not in truth.index
    for (c, k), v in cells.groupby(["cohort", "k"])["tau"].mean().items():
        assert truth[("event_time", group_label(cohort=c, k=k))] == pytest.approx(v, abs=1e-14)
    n_event = sim.truth["group"].str.match(r"^k=").sum()
    assert n_event == 11  # k = 0..10 for the 2011 cohort
    assert sim.truth["estimand"].eq("event_time").sum() == n_event + len(
        cells.groupby(["cohort", "k"]))


@pytest.mark.unit
def test_outcome_decomposes_into_known_parts():
    sim0 = simulate_staggered(**SMALL, sigma=0.0, random_seed=3)
    p, d = sim0.params, sim0.data
    tau = d.merge(sim0.tau, on=["city", "year"], how="left")["tau"].fillna(0.0)
    structural = (p["intercept"] + d["city"].map(p["unit_effects"])
                  + d["year"].map(p["year_effects"])
                  + d[["x1", "x2", "x3"]].to_numpy() @ np.array(p["beta"]) + tau)
    np.testing.assert_allclose(d["eco_eff"], structural, rtol=0, atol=1e-12)
    # With noise, the remainder is a stationary AR(1) with the stated rho and sigma.
    big = simulate_staggered(random_seed=1)
    p, d = big.params, big.data
    tau = d.merge(big.tau, on=["city", "year"], how="left")["tau"].fillna(0.0)
    e = (d["eco_eff"] - p["intercept"] - d["city"].map(p["unit_effects"])
         - d["year"].map(p["year_effects"]) - d[["x1", "x2", "x3"]].to_numpy() @ p["beta"] - tau)
    lag = e.groupby(d["city"]).shift()
    assert np.corrcoef(e[lag.notna()], lag.dropna())[0, 1] == pytest.approx(0.5, abs=0.05)
    assert e.std() == pytest.approx(0.05 / np.sqrt(1 - 0.25), rel=0.05)


@pytest.mark.unit
def test_same_seed_same_panel_other_seed_differs():
    a, b = simulate_staggered(**SMALL, random_seed=7), simulate_staggered(**SMALL, random_seed=7)
    pd.testing.assert_frame_equal(a.data, b.data)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert a.policy_lists == b.policy_lists
    c = simulate_staggered(**SMALL, random_seed=8)
    assert not np.allclose(a.data["eco_eff"], c.data["eco_eff"])


@pytest.mark.unit
def test_small_panel_and_same_year_start():
    small = simulate_staggered(**SMALL, start="same_year", n_covariates=1, random_seed=2)
    d = small.data
    assert len(d) == 400 and d.columns.tolist()[-2:] == ["x1", "eco_eff"]
    assert sorted(d["cohort"].dropna().unique().tolist()) == [2008, 2010]
    assert ((d["cohort"] - d["batch"]).dropna() == 0).all()
    assert small.params["cohort_effects"] == {2008: 0.06, 2010: 0.01}
    assert group_label(cohort=2008) in set(small.truth["group"])
    custom = simulate_staggered(**SMALL, cohort_effects={2010: 0.2}, region_effects={"West": 0.0},
                                slope=0.0, n_covariates=0, random_seed=2)
    assert custom.params["cohort_effects"] == {2008: 0.06, 2010: 0.2}
    assert custom.truth.set_index("group").loc["cohort=2011, region=East", "value"] == (
        pytest.approx(0.22))


@pytest.mark.unit
@pytest.mark.parametrize("kwargs, match", [
    (dict(n_units=3), "n_units"),
    (dict(n_units=40.5), "n_units"),
    (dict(years=(2014, 2005)), "years"),
    (dict(years=2010), "years"),
    (dict(batches={2008: 30, 2010: 10}), "never be treated"),
    (dict(batches={2014: 5}), "outside"),
    (dict(batches={2004: 5}, start="same_year"), "outside"),
    (dict(batches={2008: 0}), "count"),
    (dict(batches={}), "non-empty"),
    (dict(start="later"), "start"),
    (dict(n_covariates=-1), "n_covariates"),
    (dict(rho=1.0), "rho"),
    (dict(sigma=-0.1), "sigma"),
    (dict(sigma=float("nan")), "sigma"),
    (dict(cohort_effects={2009: 0.1}), "unknown keys"),
    (dict(region_effects={"South": 0.1}), "unknown keys"),
    (dict(region_effects={"East": "big"}), "finite"),
    (dict(beta=[0.1]), "beta"),
    (dict(random_seed=1.5), "random_seed"),
])
def test_invalid_arguments_raise(kwargs, match):
    args = {**SMALL, **kwargs}
    with pytest.raises(BayesDidError, match=match):
        simulate_staggered(**args)


@pytest.mark.unit
def test_twfe_is_biased_but_a_saturated_regression_is_not():
    """TWFE with unit + year FE misses the observation-weighted ATT.

    Numbers seen (pyfixest 0.60, seed 0, default design):

    - default noise (sigma=0.05): TWFE 0.0882 (cluster se 0.0076) vs true ATT 0.0858; the
      structural bias is masked by noise in this single draw (over 30 seeds the mean
      TWFE - truth is -0.0080, sd 0.0064).
    - noise switched off (sigma=0), everything else identical: TWFE 0.0801 vs truth 0.0858,
      a bias of -0.0057 (-6.6%; -0.0062 +/- 0.0004 over 30 seeds). TWFE under-weights the
      long-exposed, larger effects of the 2011 cohort and over-weights the 2018 cohort.

    A regression saturated in cohort x region x event-time cells recovers the truth.
    """
    import pyfixest as pf  # a hard dependency of bayesdid
    noisy = simulate_staggered(random_seed=0)
    fit = pf.feols("eco_eff ~ treated + x1 + x2 + x3 | city + year", noisy.data)
    truth = noisy.truth.set_index("group").loc["overall", "value"]
    assert truth == pytest.approx(0.0858, abs=5e-4)
    assert fit.coef()["treated"] == pytest.approx(0.0882, abs=5e-4)

    clean = simulate_staggered(random_seed=0, sigma=0.0)
    assert clean.truth.equals(noisy.truth)
    fit0 = pf.feols("eco_eff ~ treated + x1 + x2 + x3 | city + year", clean.data)
    bias = fit0.coef()["treated"] - truth
    assert bias == pytest.approx(-0.0057, abs=5e-4)
    assert bias / truth < -0.05

    d = clean.data.copy()
    k = (d["year"] - d["cohort"]).astype("Int64")
    d["cell"] = np.where(d["treated"] == 1, d["cohort"].astype(str) + "_" + d["region"]
                         + "_" + k.astype(str), "untreated")
    sat = pf.feols("eco_eff ~ i(cell, ref='untreated') + x1 + x2 + x3 | city + year", d)
    coef = sat.coef()
    d["tau_hat"] = [coef.get(f"C(cell, contr.treatment(base='untreated'))[T.{c}]",
                             coef.get(f"cell::{c}", np.nan)) for c in d["cell"]]
    treated = d.loc[d["treated"] == 1]
    assert treated["tau_hat"].notna().all()
    assert treated["tau_hat"].mean() == pytest.approx(truth, abs=1e-8)
