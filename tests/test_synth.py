"""ADH synthetic control: Prop 99 weights, placebos, V search, solvers, predictor forms,
simulated recovery."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from bayesdid import Panel
from bayesdid.synthetic.synth import (
    SynthResult,
    _predictor_matrix,
    _Spec,
    simplex_weights,
    synth,
    synth_placebo_time,
)
from bayesdid.synthetic.synth_search import V_FLOOR, search_v
from bayesdid.synthetic.sdid import synthdid
from bayesdid.compare import compare
from bayesdid.datasets import info, load
from bayesdid.synthetic.donors import donor_pool
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


@pytest.mark.reference
def test_sc_without_v_search_is_the_exact_pre_period_fit(prop99, fit):
    """SC with the default predictors minimises the pre-period MSPE over the simplex; an
    independent solver (SLSQP, tight tolerance) finds the same weights and ATT.

    synthdid's ``sc_estimate`` solves the same problem plus a ridge ``zeta^2 T0 ||w||^2``
    with ``zeta = 1e-6 * sigma`` (about 6e-10 here against an MSPE of 2.74: immaterial), but
    not exactly: it stops Frank-Wolfe after 100 iterations, zeroes the weights below a
    quarter of the largest, and re-runs Frank-Wolfe with a loose stopping rule. That moves
    its ATT to -19.6197 (published; our port in sdid.py reproduces it, see test_sdid.py)
    from the exact -19.5136, and its pre-period MSPE up from 2.7437 to 2.7717. So the two
    agree to 0.106, not 1e-6, and ours fits the pre-period better.
    """
    pool = donor_pool(prop99)
    pre, post = pool.pre_periods(0), pool.post_periods(0)
    Y0, y = pool.y_donors, pool.y_treated[:, 0]
    J = Y0.shape[1]

    def mspe(z):
        return np.mean((y[pre] - Y0[pre] @ z) ** 2)

    ref = optimize.minimize(mspe, np.full(J, 1 / J), jac=lambda z: -2 * Y0[pre].T @ (
        y[pre] - Y0[pre] @ z) / pre.sum(), method="SLSQP", bounds=[(0, 1)] * J,
        constraints=({"type": "eq", "fun": lambda z: z.sum() - 1},),
        options={"ftol": 1e-16, "maxiter": 2000})
    w = fit.weights["California"].reindex(list(pool.donor_units)).to_numpy()
    np.testing.assert_allclose(w, ref.x, atol=1e-6)  # measured 2e-8
    att = fit.effect()["estimate"]
    assert att == pytest.approx(np.mean(y[post] - Y0[post] @ ref.x), abs=1e-6)
    sdid_sc = synthdid(prop99, estimator="sc", se=None)
    assert sdid_sc.estimate == pytest.approx(REF["estimates"]["sc"], abs=1e-4)
    assert att - REF["estimates"]["sc"] == pytest.approx(0.106, abs=1e-3)  # sparsification
    w_sc = sdid_sc.unit_weights.reindex(list(pool.donor_units)).to_numpy()
    assert mspe(w) < mspe(w_sc) - 0.02  # 2.7437 < 2.7717


@pytest.mark.reference
def test_placebo_interval_is_labelled_placebo_and_works_downstream(fit):
    tab = fit.effects()
    assert set(tab["interval"]) == {"placebo"}  # a placebo spread, not a confidence interval
    wider = fit.effects(level=0.99)  # recomputed from the placebo sd like a CI
    att = wider.iloc[0]
    assert att["upper"] - att["lower"] == pytest.approx(2 * 2.575829 * att["se_or_sd"],
                                                        rel=1e-5)
    cmp = compare(fit, labels=["sc"])
    assert "placebo interval" in cmp.to_markdown()
    assert cmp.table.loc[0, "interval"] == "placebo"


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


# ---------------------------------------------------------------------- V search
def _bench():
    """The simulated multimodal design lives in the benchmark (one definition for both)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_synth_search.py"
    spec = importlib.util.spec_from_file_location("bench_synth_search", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SEARCH_REF = Path(__file__).parent / "reference" / "synth_search" / "reference.json"


@pytest.mark.slow
def test_default_v_search_reaches_the_500_start_optimum():
    """On simulated multimodal problems the default V search lands within 1% of the best
    pre-period MSPE a 500-start search finds, on >= 95% of seeds.

    Design (``simulate_problem`` in benchmarks/bench_synth_search.py): 50 donors, 9
    pre-periods, outcome ~3e4 from a 3-factor model, treated unit near the edge of the
    donor cloud; 7 predictors: the pre-period outcome mean (dominant), four noisy
    covariates tied to the loadings, two pure-noise covariates. Reference: the best MSPE of
    500 uniform starts in log V, each a bounded Nelder-Mead run, stored per seed by the
    benchmark (a few of the 500 starts reach it: the problem is multimodal). The former
    default (3 Nelder-Mead starts) reached it on 3 of these 20 seeds (share 0.15; on seed
    18 only through round-off in its inner solver, see the benchmark's notes).
    """
    bench = _bench()
    ref = json.loads(SEARCH_REF.read_text())["mspe"]
    ratios = []
    for seed in range(20):
        res = synth(bench.simulate_problem(seed), placebo=False, progress=False,
                    random_seed=seed, **bench.PREDICTORS)
        ratios.append(res.pre_rmspe.iloc[0] ** 2 / ref[str(seed)])
    assert np.mean(np.array(ratios) <= 1.01) >= 0.95, np.round(ratios, 3)
    assert min(ratios) > 0.9  # the stored reference belongs to this design


@pytest.mark.unit
def test_search_v_is_deterministic_and_certifies_an_attainable_optimum():
    rng = np.random.default_rng(1)
    X0, Z0 = rng.normal(size=(5, 30)), rng.normal(size=(8, 30))
    x1, z1 = X0[:, :3].mean(axis=1) + 0.2, Z0[:, :3].mean(axis=1) + 0.1
    a, b = search_v(x1, X0, z1, Z0, random_seed=3), search_v(x1, X0, z1, Z0, random_seed=3)
    np.testing.assert_array_equal(a.v, b.v)
    assert a.loss == b.loss and a.v.sum() == pytest.approx(1.0)
    assert a.v.min() >= V_FLOOR * a.v.max() * (1 - 1e-9) and a.loss >= a.lower_bound
    np.testing.assert_allclose(a.w, simplex_weights(X0, x1, a.v), atol=1e-12)
    assert a.loss == pytest.approx(np.mean((z1 - Z0 @ a.w) ** 2), rel=1e-12)
    assert 1 <= a.n_agreed <= a.n_starts <= 10
    # outcomes as predictors: V = sd^2 reproduces the best outcome fit, so the search must
    # reach the lower bound exactly (the LP attainability check certifies it)
    sd = np.column_stack([z1, Z0]).std(axis=1, ddof=1)
    c = search_v(z1 / sd, Z0 / sd[:, None], z1, Z0, random_seed=0)
    assert c.loss == pytest.approx(c.lower_bound, rel=1e-9)


@pytest.mark.unit
def test_simplex_weights_exact_against_nnls_route():
    """Wolfe's algorithm against the NNLS + polish route, inside and outside the hull."""
    from bayesdid.synthetic.synth_search import _nnls_weights

    rng = np.random.default_rng(7)
    for _ in range(300):
        K, J = rng.integers(1, 13), rng.integers(2, 80)
        X0, x1 = rng.normal(size=(K, J)), rng.normal(size=K) * rng.choice([0.2, 3.0])
        v = rng.dirichlet(np.ones(K)) * np.where(rng.random(K) < 0.3, 1e-6, 1.0)
        w = simplex_weights(X0, x1, v)
        sv = np.sqrt(v)
        ref = _nnls_weights(X0 * sv[:, None], x1 * sv)
        f, f_ref = (np.sum(v * (x1 - X0 @ z) ** 2) for z in (w, ref))
        assert w.min() >= 0 and w.sum() == pytest.approx(1.0, abs=1e-12)
        assert f <= f_ref + 1e-10 * (1 + f_ref)


@pytest.mark.unit
def test_outcome_mean_over_a_set_of_periods(prop99):
    """R Synth's special predictor over non-adjacent periods (e.g. 1975 and 1980-1982)."""
    pool = donor_pool(prop99)
    Y = np.column_stack([pool.y_treated, pool.y_donors])
    pre = pool.pre_periods(0)
    spec = _Spec(lags=(1988,), means=([1975, 1980, 1981, 1982], (1980, 1988)),
                 covariates=(), v="equal", n_starts=1, mspe_periods=None)
    P, names = _predictor_matrix(spec, pool.times, Y, pre, {})
    rows = np.isin(pool.times, [1975, 1980, 1981, 1982])
    np.testing.assert_allclose(P[1], Y[rows].mean(axis=0))
    window = (pool.times >= 1980) & (pool.times <= 1988)
    np.testing.assert_allclose(P[2], Y[window].mean(axis=0))
    assert names == ["y[1988]", "mean y[1975,1980-1982]", "mean y[1980-1988]"]
    res = synth(prop99, outcome_means=[[1975, 1980, 1981, 1982], (1984, 1988)],
                placebo=False, progress=False)
    assert list(res.predictor_weights.index) == ["mean y[1975,1980-1982]",
                                                 "mean y[1984-1988]"]


@pytest.mark.unit
def test_mspe_periods_choose_v(prop99):
    """``mspe_periods`` (R's time.optimize.ssr) is the loss of the V search: its fit over
    those periods is at least as good as the default's (which optimises all pre-periods)."""
    kw = {"lags": [1975, 1980, 1988], "outcome_means": [(1980, 1988)], "placebo": False,
          "progress": False}
    late = list(range(1984, 1989))
    a = synth(prop99, mspe_periods=late, **kw)
    b = synth(prop99, **kw)

    def mspe(res):
        g = res.path.set_index("time").loc[late, "gap"]
        return float(np.mean(g ** 2))

    assert mspe(a) <= mspe(b) + 1e-9
    assert a.pre_rmspe["California"] >= b.pre_rmspe["California"] - 1e-9
    # allowed on purpose: the loss then spans post-treatment years too, and the search
    # fits them at least as well as the pre-period-only V does
    span = list(range(1984, 1992))
    post = synth(prop99, mspe_periods=span, allow_post_mspe=True, **kw)
    assert float(np.mean(post.path.set_index("time").loc[span, "gap"] ** 2)) <= float(
        np.mean(a.path.set_index("time").loc[span, "gap"] ** 2)) + 1e-9


@pytest.mark.unit
def test_treated_unit_inside_the_hull_gets_the_best_exact_fit():
    """Inside the donors' hull every V fits the predictors exactly and W is not unique:
    the search returns the exact fit with the best outcome MSPE, which no V's solution
    beats (here: 200 random V, each solved exactly)."""
    rng = np.random.default_rng(5)
    X0, Z0 = rng.normal(size=(4, 40)), rng.normal(size=(9, 40))
    x1, z1 = X0[:, :10].mean(axis=1), Z0[:, 20:30].mean(axis=1)
    res = search_v(x1, X0, z1, Z0, random_seed=0)
    assert res.exact_fit and res.n_starts == 0
    np.testing.assert_allclose(X0 @ res.w, x1, atol=1e-6)
    assert res.w.min() >= 0 and res.w.sum() == pytest.approx(1.0)
    others = [np.mean((z1 - Z0 @ simplex_weights(X0, x1, v)) ** 2)
              for v in rng.dirichlet(np.ones(4), 200)]
    assert res.loss <= min(others) + 1e-9 and res.loss >= res.lower_bound - 1e-12
