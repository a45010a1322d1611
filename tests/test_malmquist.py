"""Malmquist-Luenberger index: DEAP's published Malmquist example, hand-written LPs on a
tiny panel with a bad output, the ML = EC x TC identity, infeasible cross-period LPs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from bayesdid.efficiency.malmquist import efficiency_panel, malmquist_luenberger
from bayesdid.errors import BayesDidError, DuplicateRowsError, TimeColumnError

REF = Path(__file__).parent / "reference" / "dea"
PRINTED = 0.0005 + 1e-9


@pytest.fixture(scope="module")
def eg4():
    ref = json.loads((REF / "deap_eg4_malmquist.json").read_text())
    return pd.DataFrame(ref["data"], columns=ref["columns"]), ref["published"]


@pytest.mark.reference
def test_ml_without_bad_output_reproduces_deap_malmquist_example(eg4):
    """With no bad output and g = (0, y), 1/(1+D) is the Shephard output distance, so ML,
    EC and TC are DEAP's tfpch, effch and techch (CRS, output orientated)."""
    df, pub = eg4
    res = malmquist_luenberger(df, unit="firm", time="year", inputs=["x"], outputs=["y"])
    assert res.info["n_infeasible"] == 0
    for year in (2, 3):
        t = res.table[res.table["time"] == year].sort_values("unit")
        m = pub["malmquist"][str(year)]
        np.testing.assert_allclose(t["ml"], m["tfpch"], atol=PRINTED)
        np.testing.assert_allclose(t["ec"], m["effch"], atol=PRINTED)
        np.testing.assert_allclose(t["tc"], m["techch"], atol=PRINTED)
        # distances: own period t, technology t-1 for the later year, t+1 for the earlier
        crs = pub["crs_te"]
        np.testing.assert_allclose(1 / (1 + t["d_own"]), crs[str(year)]["t"], atol=PRINTED)
        np.testing.assert_allclose(1 / (1 + t["d_cross"]), crs[str(year)]["t-1"], atol=PRINTED)
        np.testing.assert_allclose(1 / (1 + t["d_cross_from"]), crs[str(year - 1)]["t+1"],
                                   atol=PRINTED)
    year2 = res.by_period().loc[2]  # DEAP's means are geometric means
    assert year2["ml"] == pytest.approx(pub["malmquist"]["2"]["mean"]["tfpch"], abs=PRINTED)
    assert year2["ec"] == pytest.approx(pub["malmquist"]["2"]["mean"]["effch"], abs=PRINTED)
    # exact closed forms: firm 4 effch = 0.45 / 0.8, techch = 4/3
    f4 = res.table[(res.table["unit"] == 4) & (res.table["time"] == 2)].iloc[0]
    assert f4["ec"] == pytest.approx(0.5625, abs=1e-12)
    assert f4["tc"] == pytest.approx(4 / 3, abs=1e-12)


# ------------------------------------------------------------------ hand-written LPs
# 3 DMUs x 2 periods; columns x (input), y (good), b (bad)
PANEL = pd.DataFrame({
    "dmu": ["A", "B", "C"] * 2, "year": [1, 1, 1, 2, 2, 2],
    "x": [2.0, 3.0, 4.0, 2.0, 3.0, 4.0],
    "y": [2.0, 4.0, 3.0, 3.0, 4.0, 3.5],
    "b": [1.0, 3.0, 2.0, 1.0, 3.0, 2.5],
})


def _ddf_lp(ref: pd.DataFrame, x: float, y: float, b: float) -> float:
    """max beta  s.t.  sum l_j x_j <= x;  sum l_j y_j >= (1 + beta) y;
    sum l_j b_j = (1 - beta) b;  l >= 0  (CRS, g = (0, y, b), weak disposability)."""
    n = len(ref)
    c = np.r_[-1.0, np.zeros(n)]                       # variables [beta, l_1..l_n]
    A_ub = np.array([np.r_[0.0, ref["x"]],              # X l <= x
                     np.r_[y, -ref["y"]]])              # beta y - Y l <= -y
    b_ub = np.array([x, -y])
    A_eq = np.array([np.r_[b, ref["b"]]])               # beta b + B l = b
    b_eq = np.array([b])
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq,
                  bounds=[(None, None)] + [(0, None)] * n, method="highs")
    return -res.fun if res.status == 0 else np.nan


def _hand_index(reference: str, base: int = 1) -> pd.DataFrame:
    p1, p2 = PANEL[PANEL["year"] == 1], PANEL[PANEL["year"] == 2]
    rows = []
    for u in "ABC":
        o1 = p1[p1["dmu"] == u].iloc[0]
        o2 = p2[p2["dmu"] == u].iloc[0]
        d11 = _ddf_lp(p1, o1.x, o1.y, o1.b)  # D^1(x^1)
        d22 = _ddf_lp(p2, o2.x, o2.y, o2.b)  # D^2(x^2)
        ec = (1 + d11) / (1 + d22)
        if reference == "contemporaneous":
            d12 = _ddf_lp(p1, o2.x, o2.y, o2.b)  # D^1(x^2)
            d21 = _ddf_lp(p2, o1.x, o1.y, o1.b)  # D^2(x^1)
            ml = np.sqrt((1 + d11) / (1 + d12) * (1 + d21) / (1 + d22))
        else:
            R = PANEL if reference == "global" else PANEL[PANEL["year"] == base]
            ml = (1 + _ddf_lp(R, o1.x, o1.y, o1.b)) / (1 + _ddf_lp(R, o2.x, o2.y, o2.b))
        rows.append({"unit": u, "ml": ml, "ec": ec, "tc": ml / ec})
    return pd.DataFrame(rows)


@pytest.mark.unit
@pytest.mark.parametrize("reference,base", [("contemporaneous", None), ("global", None),
                                            ("fixed", 1), ("fixed", 2)])
def test_ml_matches_hand_written_lps(reference, base):
    res = malmquist_luenberger(PANEL, unit="dmu", time="year", inputs=["x"], outputs=["y"],
                               bads=["b"], reference=reference, base_period=base)
    hand = _hand_index(reference, base or 1)
    assert not hand[["ml", "ec", "tc"]].isna().any().any()
    got = res.table.set_index("unit")[["ml", "ec", "tc"]]
    np.testing.assert_allclose(got.loc[list("ABC")], hand[["ml", "ec", "tc"]], atol=1e-9)
    np.testing.assert_allclose(res.table["ml"], res.table["ec"] * res.table["tc"], rtol=1e-12)
    # one pair per DMU; two periods => cumulative index equals the single ML
    assert list(res.table["time_from"]) == [1, 1, 1] and list(res.table["time"]) == [2, 2, 2]
    np.testing.assert_allclose(res.table["cum_ml"], res.table["ml"], rtol=1e-12)


@pytest.mark.unit
def test_hand_values_in_closed_form():
    """Spot-check the hand LPs themselves: DMU A has the best good/bad ratio in both years
    (D = 0); C in year 1 is scaled from A: l = 2(1 - beta), 2l >= 3(1 + beta) -> 1/7."""
    p1 = PANEL[PANEL["year"] == 1]
    assert _ddf_lp(p1, 2.0, 2.0, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert _ddf_lp(p1, 4.0, 3.0, 2.0) == pytest.approx(1 / 7, abs=1e-12)
    res = malmquist_luenberger(PANEL, unit="dmu", time="year", inputs=["x"], outputs=["y"],
                               bads=["b"], reference="fixed")
    d1 = res.distances[res.distances["time"] == 1].set_index("unit")["beta_own"]
    np.testing.assert_allclose(d1.loc[["A", "C"]], [0.0, 1 / 7], atol=1e-12)
    # B did not change and stays on both frontiers: ML = EC = TC = 1
    b = res.table.set_index("unit").loc["B"]
    np.testing.assert_allclose(b[["ml", "ec", "tc"]].astype(float), 1.0, atol=1e-12)


# ------------------------------------------------------------------ larger panels
def _random_panel(n=12, T=4, seed=3):
    rng = np.random.default_rng(seed)
    unit, year = np.repeat(np.arange(n), T), np.tile(np.arange(2000, 2000 + T), n)
    x = rng.uniform(1, 4, (n * T, 2)) * (1 + 0.05 * (year - 2000))[:, None]
    eff = rng.uniform(0.6, 1.0, n * T)
    y = np.sqrt(x.prod(1)) * eff * (1 + 0.03 * (year - 2000))
    g = rng.uniform(1, 2, n * T) * eff
    b = np.sqrt(x.sum(1)) / eff
    return pd.DataFrame({"city": unit, "year": year, "k": x[:, 0], "l": x[:, 1], "gdp": y,
                         "green": g, "aqi": b})


@pytest.mark.unit
@pytest.mark.parametrize("reference", ["contemporaneous", "global", "fixed"])
def test_identity_and_cumulative_index(reference):
    df = _random_panel()
    res = malmquist_luenberger(df, unit="city", time="year", inputs=["k", "l"],
                               outputs=["gdp", "green"], bads=["aqi"], reference=reference)
    t = res.table.dropna(subset=["ml"])
    # weak disposability makes some cross-technology LPs infeasible (NaN), not all
    assert len(t) >= 12
    np.testing.assert_allclose(t["ml"], t["ec"] * t["tc"], rtol=1e-12)
    # the cumulative index is the running product of ML
    for _, g in res.table.groupby("unit"):
        if g["ml"].notna().all():
            np.testing.assert_allclose(g["cum_ml"], np.cumprod(g["ml"]), rtol=1e-10)
    # EC is the same in all references (contemporaneous frontiers)
    ec = malmquist_luenberger(df, unit="city", time="year", inputs=["k", "l"],
                              outputs=["gdp", "green"], bads=["aqi"]).table["ec"]
    np.testing.assert_allclose(res.table["ec"], ec, rtol=1e-10)
    # own-period distances are >= 0 (the unit belongs to its technology)
    assert (res.distances["beta_own"] > -1e-9).all()
    if reference == "global":  # every unit belongs to the global technology
        assert (res.distances["beta_ref"] > -1e-9).all() and res.info["n_infeasible"] == 0


@pytest.mark.unit
def test_infeasible_cross_period_lps_are_nan_and_logged(caplog):
    # VRS: year-2 DMU A uses less input than any year-1 DMU, so D^1(x^2) is infeasible
    df = PANEL.copy()
    df.loc[3, "x"] = 1.0
    with caplog.at_level(logging.WARNING, logger="bayesdid.efficiency.malmquist"):
        res = malmquist_luenberger(df, unit="dmu", time="year", inputs=["x"], outputs=["y"],
                                   bads=["b"], rts="vrs")
    assert res.info["n_infeasible"] >= 1
    assert "infeasible" in caplog.text and str(res.info["n_infeasible"]) in caplog.text
    a = res.table.set_index("unit").loc["A"]
    assert np.isnan(a["d_cross"]) and np.isnan(a["ml"]) and np.isfinite(a["ec"])
    assert res.table.set_index("unit").loc[["B", "C"], "ml"].notna().all()


@pytest.mark.unit
def test_efficiency_panel_measures():
    df = _random_panel(n=8, T=3)
    kw = {"unit": "city", "time": "year", "inputs": ["k", "l"], "outputs": ["gdp", "green"],
          "bads": ["aqi"]}
    res = malmquist_luenberger(df, **kw, reference="fixed")
    cum = efficiency_panel(df, **kw)  # defaults: fixed reference, cumulative ML
    assert list(cum.columns) == ["city", "year", "efficiency"] and len(cum) == len(df)
    assert (cum.loc[cum["year"] == 2000, "efficiency"] == 1.0).all()
    merged = cum.merge(res.table, left_on=["city", "year"], right_on=["unit", "time"])
    np.testing.assert_allclose(merged["efficiency"], merged["cum_ml"])
    ml = res.efficiency_panel("ml", name="mi")
    assert ml.loc[ml["year"] == 2000, "mi"].isna().all()
    assert ml["mi"].notna().sum() == res.table["ml"].notna().sum() > 0
    dd = efficiency_panel(df, **kw, measure="ddf", reference="contemporaneous")
    own = 1 / (1 + res.distances["beta_own"].to_numpy())
    np.testing.assert_allclose(dd["efficiency"], own)
    assert ((dd["efficiency"] > 0) & (dd["efficiency"] <= 1 + 1e-12)).all()
    eff = res.effects()
    assert set(eff["estimand"]) == {"ml", "ec", "tc"}
    assert set(eff["group"]) == {"time=2001", "time=2002"}


@pytest.mark.unit
def test_bad_panel_inputs():
    kw = {"unit": "dmu", "time": "year", "inputs": ["x"], "outputs": ["y"], "bads": ["b"]}
    with pytest.raises(BayesDidError, match="reference must be one of"):
        malmquist_luenberger(PANEL, **kw, reference="sequential")
    with pytest.raises(TimeColumnError, match="base_period 1999"):
        malmquist_luenberger(PANEL, **kw, reference="fixed", base_period=1999)
    with pytest.raises(BayesDidError, match="fixed.* only"):
        malmquist_luenberger(PANEL, **kw, base_period=1)
    with pytest.raises(DuplicateRowsError):
        malmquist_luenberger(pd.concat([PANEL, PANEL.iloc[[0]]]), **kw)
    with pytest.raises(TimeColumnError, match="single period"):
        malmquist_luenberger(PANEL[PANEL["year"] == 1], **kw)
    with pytest.raises(BayesDidError, match="measure must be one of"):
        efficiency_panel(PANEL, **kw, measure="tfp")
