"""DEA: CCR/BCC against DEAP's published examples and the multiplier form, DDF and SBM
against explicitly written LPs, input checks."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from bayesdid.efficiency.dea import ddf, dea, lp_backend, sbm, super_sbm
from bayesdid.errors import ColumnError, DesignError, InfeasibleError, MissingValueError

REF = Path(__file__).parent / "reference" / "dea"
PRINTED = 0.0005 + 1e-9  # DEAP prints 3 decimals
BACKENDS = ["highs", "linprog"] if lp_backend() == "highs" else ["linprog"]


def _load(name):
    return json.loads((REF / name).read_text())


@pytest.fixture(scope="module")
def eg1():
    ref = _load("deap_eg1_crs_input.json")
    return pd.DataFrame(ref["data"], columns=ref["columns"], index=[1, 2, 3, 4, 5]), ref


@pytest.fixture(scope="module")
def eg4():
    ref = _load("deap_eg4_malmquist.json")
    return pd.DataFrame(ref["data"], columns=ref["columns"]), ref


@pytest.fixture(scope="module")
def hospital():
    ref = _load("cst_hospital.json")
    return pd.DataFrame(ref["data"], columns=ref["columns"]).set_index("hospital")


# ------------------------------------------------------------------ published references
@pytest.mark.reference
@pytest.mark.parametrize("backend", BACKENDS)
def test_ccr_input_reproduces_deap_example_1(eg1, backend):
    df, ref = eg1
    pub = ref["published"]
    res = dea(df, inputs=["x1", "x2"], outputs=["y"], slacks=True, lambdas=True, backend=backend)
    eff = res.efficiency.to_numpy()
    np.testing.assert_allclose(eff, pub["te"], atol=PRINTED)
    np.testing.assert_allclose(eff, ref["exact"]["te"], atol=1e-9)
    assert eff.mean() == pytest.approx(pub["mean_te"], abs=PRINTED)
    np.testing.assert_allclose(res.slacks[["s_x1", "s_x2"]], pub["input_slacks"], atol=PRINTED)
    np.testing.assert_allclose(res.slacks["s_y"], pub["output_slacks"], atol=PRINTED)
    peers = res.peers()
    for firm, (p, w) in enumerate(zip(pub["peers"], pub["peer_weights"]), start=1):
        assert sorted(peers[firm]) == sorted(p)
        lam = res.lambdas[firm - 1]
        np.testing.assert_allclose([lam[j - 1] for j in p], w, atol=PRINTED)
    # targets = theta * x - slack (inputs), y + slack (outputs)
    targets = df[["x1", "x2"]].to_numpy() * eff[:, None] - res.slacks[["s_x1", "s_x2"]].to_numpy()
    np.testing.assert_allclose(targets, pub["input_targets"], atol=PRINTED)
    np.testing.assert_allclose(df["y"] + res.slacks["s_y"], pub["output_targets"], atol=PRINTED)


@pytest.mark.reference
@pytest.mark.parametrize("year", [1, 2, 3])
def test_bcc_and_ccr_output_reproduce_deap_example_4(eg4, year):
    df, ref = eg4
    d = df[df["year"] == year]
    vrs = dea(d, inputs=["x"], outputs=["y"], rts="vrs", orientation="output")
    np.testing.assert_allclose(vrs.efficiency, ref["published"]["vrs_te_output"][str(year)],
                               atol=PRINTED)
    crs = dea(d, inputs=["x"], outputs=["y"], orientation="output")
    np.testing.assert_allclose(crs.efficiency, ref["published"]["crs_te"][str(year)]["t"],
                               atol=PRINTED)
    # BCC input orientation on year 1, derived by hand from the VRS frontier
    # (2,1)-(3,3)-(6,5): firm 2 needs x = 2.5 for y = 2, firm 4 x = 4.5 for y = 4
    if year == 1:
        bcc_in = dea(d, inputs=["x"], outputs=["y"], rts="vrs").efficiency
        np.testing.assert_allclose(bcc_in, [1.0, 0.625, 1.0, 0.9, 1.0], atol=1e-9)


def _multiplier(X, Y, o, rts, orientation):
    """Independent multiplier (dual) form: variables [v (m), u (s), u0]."""
    n, m = X.shape
    s = Y.shape[1]
    free = [(0, None)] * (m + s) + [(None, None) if rts == "vrs" else (0, 0)]
    A_ub = np.c_[-X, Y, -np.ones(n)]  # u'y_j - v'x_j - u0 <= 0
    if orientation == "input":  # max u'y_o - u0 s.t. v'x_o = 1
        c = -np.r_[np.zeros(m), Y[o], -1.0]
        A_eq = np.r_[X[o], np.zeros(s), 0.0][None]
        res = linprog(c, A_ub=A_ub, b_ub=np.zeros(n), A_eq=A_eq, b_eq=[1], bounds=free)
        return -res.fun
    # output: min v'x_o + u0 s.t. u'y_o = 1
    c = np.r_[X[o], np.zeros(s), 1.0]
    A_eq = np.r_[np.zeros(m), Y[o], 0.0][None]
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(n), A_eq=A_eq, b_eq=[1], bounds=free)
    return 1.0 / res.fun


@pytest.mark.reference
@pytest.mark.parametrize("rts", ["crs", "vrs"])
@pytest.mark.parametrize("orientation", ["input", "output"])
def test_envelopment_equals_multiplier_form_on_cst_hospitals(hospital, rts, orientation):
    X = hospital[["doctors", "nurses"]].to_numpy(float)
    Y = hospital[["outpatients", "inpatients"]].to_numpy(float)
    res = dea(hospital, inputs=["doctors", "nurses"], outputs=["outpatients", "inpatients"],
              rts=rts, orientation=orientation)
    dual = [_multiplier(X, Y, o, rts, orientation) for o in range(len(X))]
    np.testing.assert_allclose(res.efficiency, dual, atol=1e-8)
    assert set(res.efficiency[res.efficiency > 1 - 1e-9].index) >= {"A", "B", "D"}
    if rts == "crs":  # CCR: input and output orientation give the same score
        other = dea(hospital, inputs=["doctors", "nurses"],
                    outputs=["outpatients", "inpatients"],
                    orientation="output" if orientation == "input" else "input")
        np.testing.assert_allclose(res.efficiency, other.efficiency, atol=1e-9)


# ------------------------------------------------------------------ DDF
DDF_X = np.array([[2.0], [3.0], [4.0]])
DDF_Y = np.array([[2.0], [4.0], [3.0]])
DDF_B = np.array([[1.0], [3.0], [2.0]])


def _ddf_by_hand(o, gx, gy, gb, vrs=False, weak=True):
    """max beta s.t. X'l + gx beta <= x_o; -Y'l + gy beta <= -y_o; B'l + gb beta (= | <=) b_o."""
    c = np.array([-1.0, 0, 0, 0])
    A_x = np.r_[gx, DDF_X[:, 0]][None]
    A_y = np.r_[gy, -DDF_Y[:, 0]][None]
    A_b = np.r_[gb, DDF_B[:, 0]][None]
    A_ub, b_ub = np.vstack([A_x, A_y]), [DDF_X[o, 0], -DDF_Y[o, 0]]
    A_eq, b_eq = [], []
    if weak:
        A_eq, b_eq = [A_b[0]], [DDF_B[o, 0]]
    else:
        A_ub, b_ub = np.vstack([A_ub, A_b]), b_ub + [DDF_B[o, 0]]
    if vrs:
        A_eq, b_eq = A_eq + [[0, 1, 1, 1]], b_eq + [1]
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=np.array(A_eq) if A_eq else None,
                  b_eq=b_eq or None, bounds=[(None, None)] + [(0, None)] * 3)
    return -res.fun


_DIRECTIONS = {  # name: (direction argument, g as a function of the DMU's own (x, y, b))
    "default": (None, lambda x, y, b: (0.0, y, b)),
    "own": (("own", "own", "own"), lambda x, y, b: (x, y, b)),
    "fixed": (("zero", [1.0], [0.5]), lambda x, y, b: (0.0, 1.0, 0.5)),
}


@pytest.mark.unit
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,rts,disp", [
    ("default", "crs", "weak"), ("own", "crs", "weak"), ("default", "vrs", "weak"),
    ("default", "crs", "strong"), ("fixed", "crs", "weak"),
])
def test_ddf_matches_hand_written_lp(backend, name, rts, disp):
    direction, gfun = _DIRECTIONS[name]
    res = ddf(inputs=DDF_X, outputs=DDF_Y, bads=DDF_B, direction=direction, rts=rts,
              bad_disposability=disp, backend=backend)
    for o in range(3):
        g = gfun(DDF_X[o, 0], DDF_Y[o, 0], DDF_B[o, 0])
        expect = _ddf_by_hand(o, *g, vrs=rts == "vrs", weak=disp == "weak")
        assert res.table["objective"].iloc[o] == pytest.approx(expect, abs=1e-9)
        assert res.efficiency.iloc[o] == pytest.approx(1 / (1 + expect), abs=1e-9)
    assert res.table["objective"].iloc[0] == pytest.approx(0.0, abs=1e-9)  # best y/b


@pytest.mark.unit
def test_ddf_closed_forms_and_reference_technology():
    # CRS, weak disposability, g = (0, y, b). DMU 1 has the best good/bad ratio (2): beta = 0.
    # DMU 3 (4, 3, 2) scaled from DMU 1: l = 2(1 - beta), 2l >= 3(1 + beta) -> beta = 1/7.
    res = ddf(inputs=DDF_X, outputs=DDF_Y, bads=DDF_B, lambdas=True)
    np.testing.assert_allclose(res.table["objective"], [0.0, 0.0, 1 / 7], atol=1e-12)
    np.testing.assert_allclose(res.lambdas[2], [12 / 7, 0, 0], atol=1e-12)
    # DMU 3 against DMU 2 alone lies outside the technology: 3l = 2(1 - beta),
    # 4l >= 3(1 + beta) -> beta = -1/17
    out = ddf(inputs=DDF_X[[2]], outputs=DDF_Y[[2]], bads=DDF_B[[2]],
              reference=(DDF_X[[1]], DDF_Y[[1]], DDF_B[[1]]))
    assert out.table["objective"].iloc[0] == pytest.approx(-1 / 17, abs=1e-12)
    # DMU 2 against DMUs 1 and 3 is infeasible: the bad-output equality forces
    # x-use 2(3 - 3 beta) <= 3, i.e. beta >= 1/2, while the good output needs beta <= 1/5
    ref = (DDF_X[[0, 2]], DDF_Y[[0, 2]], DDF_B[[0, 2]])
    with pytest.raises(InfeasibleError, match=r"ddf_crs.*infeasible") as e:
        ddf(inputs=DDF_X[[1]], outputs=DDF_Y[[1]], bads=DDF_B[[1]], reference=ref)
    assert "on_infeasible='nan'" in str(e.value) and len(e.value.rows) == 1
    nan = ddf(inputs=DDF_X[[1]], outputs=DDF_Y[[1]], bads=DDF_B[[1]], reference=ref,
              on_infeasible="nan")
    assert np.isnan(nan.efficiency.iloc[0]) and nan.info["n_infeasible"] == 1


# ------------------------------------------------------------------ SBM
def _sbm_by_hand(X, Y, B, o, vrs=False):
    """Tone (2004) SBM with undesirables, Charnes-Cooper LP written out:
    vars [t, L1..Ln, S-(m), Sg(s), Sb(k)]."""
    n, m = X.shape
    s, k = Y.shape[1], B.shape[1]
    N = 1 + n + m + s + k
    c = np.zeros(N)
    c[0] = 1.0
    c[1 + n:1 + n + m] = -1.0 / (m * X[o])
    A_eq, b_eq = [], []
    row = np.zeros(N)
    row[0] = 1.0
    row[1 + n + m:1 + n + m + s] = 1.0 / ((s + k) * Y[o])
    row[1 + n + m + s:] = 1.0 / ((s + k) * B[o])
    A_eq.append(row), b_eq.append(1.0)
    for i in range(m):  # x_o t = X L + S-
        r = np.zeros(N)
        r[0], r[1:1 + n], r[1 + n + i] = X[o, i], -X[:, i], -1.0
        A_eq.append(r), b_eq.append(0.0)
    for j in range(s):  # y_o t = Y L - Sg
        r = np.zeros(N)
        r[0], r[1:1 + n], r[1 + n + m + j] = Y[o, j], -Y[:, j], 1.0
        A_eq.append(r), b_eq.append(0.0)
    for j in range(k):  # b_o t = B L + Sb
        r = np.zeros(N)
        r[0], r[1:1 + n], r[1 + n + m + s + j] = B[o, j], -B[:, j], -1.0
        A_eq.append(r), b_eq.append(0.0)
    if vrs:
        r = np.zeros(N)
        r[0], r[1:1 + n] = -1.0, 1.0
        A_eq.append(r), b_eq.append(0.0)
    return linprog(c, A_eq=np.array(A_eq), b_eq=b_eq, bounds=[(0, None)] * N).fun


@pytest.mark.unit
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rts", ["crs", "vrs"])
def test_sbm_matches_hand_written_lp(eg1, backend, rts):
    df, _ = eg1
    df = df.assign(b=[3.0, 1.0, 2.0, 2.0, 4.0])
    res = sbm(df, inputs=["x1", "x2"], outputs=["y"], bads=["b"], rts=rts, backend=backend)
    X, Y, B = (df[c].to_numpy(float) for c in (["x1", "x2"], ["y"], ["b"]))
    for o in range(5):
        assert res.efficiency.iloc[o] == pytest.approx(_sbm_by_hand(X, Y, B, o, rts == "vrs"),
                                                       abs=1e-9)
    # the score is the SBM ratio at the returned slacks
    s = res.slacks.to_numpy()
    ratio = (1 - (s[:, :2] / X).mean(1)) / (1 + (s[:, 2] / Y[:, 0] + s[:, 3] / B[:, 0]) / 2)
    np.testing.assert_allclose(res.efficiency, ratio, atol=1e-9)


@pytest.mark.unit
def test_sbm_is_below_ccr_and_efficient_sets_agree(eg1):
    df, _ = eg1
    rho = sbm(df, inputs=["x1", "x2"], outputs=["y"]).efficiency
    theta = dea(df, inputs=["x1", "x2"], outputs=["y"]).efficiency
    assert (rho <= theta + 1e-12).all()  # Tone (2001), theorem 3
    assert list(rho[rho > 1 - 1e-9].index) == [2, 5]  # CCR-efficient without slacks
    # firm 1: every convex combination along firm 2 gives rho = 0.9a / 2a = 0.45
    assert rho[1] == pytest.approx(0.45, abs=1e-12)


@pytest.mark.unit
@pytest.mark.parametrize("backend", BACKENDS)
def test_super_sbm_by_hand(backend):
    X, Y = np.array([[2.0], [4.0], [3.0]]), np.array([[2.0], [2.0], [1.0]])
    res = super_sbm(inputs=X, outputs=Y, backend=backend, lambdas=True)
    # DMU 1 is the only efficient one; nearest other point: (4, 2) with delta = (4/2)/(2/2)
    np.testing.assert_allclose(res.efficiency, [2.0, 0.5, 1 / 3], atol=1e-9)
    assert res.info["n_efficient"] == 1
    assert res.lambdas[0, 0] == 0.0 and res.peers()[0] == [1]  # excludes itself
    assert res.peers()[1] == [0]  # DMU 2 is projected on DMU 1 (lambda in [1, 2] all optimal)
    # with a bad output b = 1 for all (q = 2): along l2 = a, delta = 2 / (1 + a) for a <= 1/2
    # and 4a / (1 + a) above, so the minimum is 4/3 at a = 1/2 (DMU 3 alone gives 1.5)
    res_b = super_sbm(inputs=X, outputs=Y, bads=np.array([[1.0], [1.0], [1.0]]), backend=backend)
    assert res_b.efficiency.iloc[0] == pytest.approx(4 / 3, abs=1e-9)


@pytest.mark.unit
def test_super_sbm_vrs_infeasible_gives_nan_and_warning(caplog):
    # DMU 1 emits far less than all others: under VRS (sum l = 1) bbar >= 10 forces the
    # denominator 1 - (sg/y + sb/b)/2 <= 0, so the programme is infeasible.
    X = np.array([[2.0], [2.0], [3.0]])
    Y = np.array([[2.0], [1.0], [1.5]])
    B = np.array([[1.0], [10.0], [12.0]])
    with caplog.at_level(logging.WARNING, logger="bayesdid.efficiency.dea"):
        res = super_sbm(inputs=X, outputs=Y, bads=B, rts="vrs")
    assert np.isnan(res.efficiency.iloc[0]) and res.table["status"].iloc[0] == "infeasible"
    assert res.info["n_infeasible"] == 1
    assert "infeasible" in caplog.text
    crs = super_sbm(inputs=X, outputs=Y, bads=B)  # CRS can scale l down: feasible
    assert np.isfinite(crs.efficiency.iloc[0]) and crs.efficiency.iloc[0] > 1


# ------------------------------------------------------------------ backends, result API
@pytest.mark.unit
@pytest.mark.skipif(len(BACKENDS) < 2, reason="scipy HiGHS bindings not available")
def test_backends_agree_on_random_data():
    rng = np.random.default_rng(7)
    X, Y, B = rng.uniform(1, 5, (30, 3)), rng.uniform(1, 5, (30, 2)), rng.uniform(1, 5, (30, 1))
    for f, kw in ((dea, {"rts": "vrs", "orientation": "output"}), (ddf, {"bads": B}),
                  (sbm, {"bads": B, "rts": "vrs"}), (super_sbm, {"bads": B})):
        a = f(inputs=X, outputs=Y, backend="highs", **kw).efficiency
        b = f(inputs=X, outputs=Y, backend="linprog", **kw).efficiency
        np.testing.assert_allclose(a, b, atol=1e-8)


@pytest.mark.unit
def test_effects_table_and_user_input_untouched(eg1):
    df, _ = eg1
    before = df.copy()
    res = dea(df, inputs=["x1", "x2"], outputs=["y"])
    pd.testing.assert_frame_equal(df, before)
    eff = res.effects()
    assert list(eff["group"]) == [f"unit={i}" for i in range(1, 6)]
    assert set(eff["estimand"]) == {"efficiency"} and set(eff["method"]) == {"dea_ccr_input"}
    np.testing.assert_allclose(eff["estimate"], res.efficiency)
    named = dea(df.assign(firm=list("abcde")), inputs=["x1", "x2"], outputs=["y"], dmu="firm")
    assert list(named.efficiency.index) == list("abcde")


# ------------------------------------------------------------------ bad input
@pytest.mark.unit
def test_bad_inputs_raise_typed_errors_with_rows(eg1):
    df, _ = eg1
    with pytest.raises(ColumnError, match="'x1'.*negative") as e:
        dea(df.assign(x1=[2, -1, 6, 3, 6]), inputs=["x1", "x2"], outputs=["y"])
    assert e.value.column == "x1" and list(e.value.rows.index) == [2]
    with pytest.raises(ColumnError, match="non-positive.*SBM needs") as e:
        sbm(df.assign(x2=[5, 0, 6, 2, 2]), inputs=["x1", "x2"], outputs=["y"])
    assert list(e.value.rows.index) == [2]
    with pytest.raises(ColumnError, match="zero for every DMU"):
        dea(df.assign(z=0.0), inputs=["x1", "x2"], outputs=["y", "z"])
    with pytest.raises(DesignError, match="use no input") as e:
        dea(df.assign(x1=[2, 0, 6, 3, 6], x2=[5, 0, 6, 2, 2]), inputs=["x1", "x2"], outputs=["y"])
    assert list(e.value.rows.index) == [2]
    with pytest.raises(MissingValueError, match="'y'"):
        dea(df.assign(y=[1, np.nan, 3, 1, 2]), inputs=["x1", "x2"], outputs=["y"])
    with pytest.raises(ColumnError, match="unknown column 'x3'"):
        dea(df, inputs=["x1", "x3"], outputs=["y"])
    with pytest.raises(ColumnError, match="list of column names"):
        dea(df, inputs="x1", outputs=["y"])
    with pytest.raises(DesignError, match="zero direction"):
        ddf(inputs=[[1.0], [1.0]], outputs=[[0.0], [1.0]], bads=[[0.0], [1.0]])


@pytest.mark.unit
def test_infeasible_lp_names_dmu_and_model(eg4):
    df, _ = eg4
    # against the year-1 VRS technology (max y = 5), a DMU with y = 6 has no feasible
    # input-oriented programme; (x=4, y=2) gives 2.5 / 4
    ref = df[df["year"] == 1]
    out = pd.DataFrame({"y": [6.0, 2.0], "x": [7.0, 4.0]}, index=["big", "ok"])
    with pytest.raises(InfeasibleError, match=r"dea_bcc_input.*'big'") as e:
        dea(out, inputs=["x"], outputs=["y"], rts="vrs", reference=ref)
    assert "on_infeasible='nan'" in str(e.value)
    res = dea(out, inputs=["x"], outputs=["y"], rts="vrs", reference=ref, on_infeasible="nan")
    assert np.isnan(res.efficiency["big"]) and res.efficiency["ok"] == pytest.approx(0.625)
