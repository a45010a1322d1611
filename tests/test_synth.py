"""ADH synthetic control: Prop 99 weights, placebos, V search, solver, simulated recovery."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from bayesdid import Panel
from bayesdid.classical.synth import (
    SynthResult,
    simplex_weights,
    synth,
    synth_placebo_time,
)
from bayesdid.datasets import info, load
from bayesdid.errors import DesignError
from bayesdid.results import EffectResult

REF = json.loads((Path(__file__).parent / "reference" / "prop99" / "published.json").read_text())
ADH5 = list(REF["adh_weights"])


@pytest.fixture(scope="module")
def prop99():
    return Panel.from_frame(load("prop99"), **info("prop99")["panel_kwargs"])


@pytest.fixture(scope="module")
def fit(prop99):
    return synth(prop99, progress=False)


@pytest.mark.reference
def test_prop99_weights_concentrate_on_adh_donors(fit):
    w = fit.weights["California"]
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert w[ADH5].sum() > 0.8  # measured 0.955
    assert set(w.nlargest(3).index) <= set(ADH5)
    # SC without V search = synthdid's sc_estimate up to its 1e-6 ridge
    assert fit.effect()["estimate"] == pytest.approx(REF["estimates"]["sc"], abs=0.5)
    assert abs(fit.effect()["estimate"] - REF["estimates"]["sc"]) < REF["placebo_se"]["sc"]


@pytest.mark.reference
def test_prop99_placebos_and_pvalue(fit):
    pl = fit.placebos
    assert len(pl) == 38 and set(pl["placebo"]) == set(fit.weights.index)
    ratio = fit.rmspe_ratio["California"]
    expected = (1 + (pl["ratio"] >= ratio).sum()) / 39
    assert fit.p_value["California"] == pytest.approx(expected)
    assert fit.p_value["California"] <= 0.1  # California's ratio is among the top few
    att = fit.effect()
    assert att["se_or_sd"] == pytest.approx(pl["att"].std(ddof=1))
    assert att["upper"] - att["lower"] == pytest.approx(2 * 1.959964 * att["se_or_sd"], rel=1e-5)
    gaps = fit.effects().query("estimand == 'gap'")
    assert len(gaps) == 31 and "t=1989" in set(gaps["group"])
    path = fit.path.set_index("time")
    assert path.loc[1988, "actual"] == pytest.approx(90.1)
    np.testing.assert_allclose(path["gap"], path["actual"] - path["counterfactual"])
    assert fit.pre_rmspe["California"] == pytest.approx(
        np.sqrt(np.mean(path.loc[:1988, "gap"] ** 2)))
    assert isinstance(fit, SynthResult) and isinstance(fit, EffectResult)


@pytest.mark.reference
def test_pre_rmspe_filter(prop99):
    res = synth(prop99, max_pre_rmspe_ratio=2, progress=False)
    kept = res.placebos["kept"]
    assert 0 < kept.sum() < 38
    assert res.p_value["California"] == pytest.approx(
        (1 + (res.placebos.loc[kept, "ratio"] >= res.rmspe_ratio["California"]).sum())
        / (1 + kept.sum()))


@pytest.mark.unit
def test_simplex_weights_exact_against_slsqp():
    rng = np.random.default_rng(3)
    X0, x1 = rng.normal(size=(6, 15)), rng.normal(size=6) + 0.5
    v = rng.uniform(0.1, 1, 6)
    w = simplex_weights(X0, x1, v)
    ref = optimize.minimize(lambda z: np.sum(v * (x1 - X0 @ z) ** 2), np.full(15, 1 / 15),
                            method="SLSQP", bounds=[(0, 1)] * 15,
                            constraints=({"type": "eq", "fun": lambda z: z.sum() - 1},),
                            options={"ftol": 1e-14, "maxiter": 500})
    assert np.sum(v * (x1 - X0 @ w) ** 2) <= ref.fun + 1e-10
    np.testing.assert_allclose(w, ref.x, atol=1e-5)
    assert w.sum() == pytest.approx(1.0, abs=1e-12) and (w >= 0).all()


@pytest.mark.unit
def test_v_search_beats_equal_weights(prop99):
    kw = {"lags": [1975, 1980, 1988], "outcome_means": [(1980, 1988)], "placebo": False,
              "progress": False}
    opt = synth(prop99, v="optimize", **kw)
    eq = synth(prop99, v="equal", **kw)
    assert opt.pre_rmspe["California"] <= eq.pre_rmspe["California"] + 1e-9
    v = opt.predictor_weights["California"]
    assert v.sum() == pytest.approx(1.0) and len(v) == 4
    assert opt.info["v_search"].startswith("nested")


@pytest.mark.unit
def test_placebo_in_time_is_near_zero(prop99):
    res = synth_placebo_time(prop99, 1980, placebo=False, progress=False)
    assert res.method == "synth_placebo_time" and res.info["fake_start"] == 1980
    assert res.path["time"].max() == 1988
    assert abs(res.effect()["estimate"]) < 6  # measured -3.4; the real ATT is -19.5
    with pytest.raises(DesignError, match="fake_start"):
        synth_placebo_time(prop99, 1995)


def _factor_frame(seed, effect=1.0, n=29, T=17, T0=13, tr=(0, 1, 2)):
    rng = np.random.default_rng(seed)
    f = np.cumsum(rng.normal(0, 0.3, (T, 2)), axis=0) + rng.normal(0, 0.5, (T, 2))
    lam = rng.dirichlet(np.ones(2), n) * 2
    y = 5 + f @ lam.T + rng.normal(0, 0.1, (T, n))
    d = np.zeros((T, n), int)
    d[T0:, list(tr)] = 1
    y = y + effect * d
    units = [f"p{i:02d}" for i in range(n)]
    return pd.DataFrame({"prov": np.repeat(units, T), "year": np.tile(np.arange(2004, 2004 + T), n),
                             "y": y.T.ravel(), "d": d.T.ravel()})


@pytest.mark.slow
def test_several_treated_units_recover_effect():
    covered, errors = 0, []
    for seed in range(4):
        panel = Panel.from_frame(_factor_frame(seed), unit="prov", time="year", outcome="y",
                                 treat="d")
        res = synth(panel, progress=False, random_seed=seed)
        tab = res.effects()
        units = tab[(tab["estimand"] == "att") & (tab["group"] != "overall")]
        assert list(units["group"]) == ["unit=p00", "unit=p01", "unit=p02"]
        assert "unit=p00, t=2017" in set(tab["group"])
        assert res.weights.shape == (26, 3) and len(res.placebos) == 78
        row = res.effect()
        covered += row["lower"] < 1.0 < row["upper"]
        errors.append(row["estimate"] - 1.0)
    assert covered >= 3 and np.sqrt(np.mean(np.square(errors))) < 0.3
