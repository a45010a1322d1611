"""Placebo tests (LCCP kinds a-d): the fast TWFE path equals pyfixest, seeds reproduce,
a real effect lands in the tail, bad inputs give typed errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesdid import Panel
from bayesdid.did._fixest import pf
from bayesdid.checks.placebo import (
    KINDS,
    PlaceboResult,
    placebo,
    placebo_assignments,
)
from bayesdid.did.twfe import twfe
from bayesdid.datasets.simulate import simulate_staggered
from bayesdid.errors import BayesDidError, DesignError

RANDOM = KINDS[1:]
SMALL = dict(n_units=60, years=(2005, 2014), batches={2008: 8, 2010: 8})


@pytest.fixture(scope="module")
def sim():
    return simulate_staggered(**SMALL, random_seed=4)


@pytest.fixture(scope="module")
def panel(sim):
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


@pytest.fixture(scope="module")
def unbalanced(sim):
    rng = np.random.default_rng(0)
    df = sim.data
    df = df[(rng.random(len(df)) > 0.12) | (df["year"] <= 2006)].copy()
    df["w"] = rng.uniform(0.5, 2.0, len(df))
    return Panel.from_frame(df, **sim.panel_kwargs, weights="w")


def _pyfixest(panel: Panel, cohorts: pd.Series) -> float:
    """An independent refit: placebo treatment from start periods, then pyfixest feols."""
    f = panel.frame
    d = (f[panel.time] >= f[panel.unit].map(cohorts).astype("float64")).astype(float)
    work = pd.DataFrame({"y": f[panel.outcome], "d": d, "u": f[panel.unit], "t": f[panel.time],
                         **{c: f[c] for c in panel.covariates}})
    if panel.weights:
        work["w"] = f[panel.weights]
    fml = f"y ~ d + {' + '.join(panel.covariates)} | u + t"
    return float(pf.feols(fml, data=work, weights="w" if panel.weights else None).coef()["d"])


@pytest.mark.unit
@pytest.mark.parametrize("which", ["panel", "unbalanced"])
@pytest.mark.parametrize("kind", RANDOM)
def test_fast_twfe_placebos_equal_pyfixest(request, which, kind):
    p = request.getfixturevalue(which)
    res = placebo(p, kind, n_draws=4, random_seed=11, progress=False)
    assign = placebo_assignments(p, kind, range(4), random_seed=11)
    for r in range(4):
        assert res.draws[r] == pytest.approx(_pyfixest(p, assign[r]), abs=1e-8)
    assert res.real == pytest.approx(_pyfixest(p, p.frame.groupby(p.unit)["cohort"].first()),
                                     abs=1e-8)
    # the draws really are placebos of the right shape
    treated = p.frame.groupby(p.unit)["cohort"].first().notna()
    assert (assign.notna().sum() == treated.sum()).all()
    if kind == "random_timing":
        assert (assign.notna().to_numpy() == treated.to_numpy()[:, None]).all()
    if kind == "fictional_group":
        assert not assign.loc[treated.to_numpy()].notna().any().any()
        real_sizes = p.frame.groupby(p.unit)["cohort"].first().value_counts().sort_index()
        for r in range(4):
            assert assign[r].value_counts().sort_index().tolist() == real_sizes.tolist()


@pytest.mark.unit
def test_custom_estimator_path_equals_fast_path(panel):
    slow = placebo(panel, "both_random", n_draws=3, estimator=twfe, random_seed=2, workers=1,
                   progress=False)
    fast = placebo(panel, "both_random", n_draws=3, random_seed=2, progress=False)
    np.testing.assert_allclose(slow.draws, fast.draws, atol=1e-10)
    assert slow.method == "twfe"


@pytest.mark.unit
def test_shifted_timing_equals_refit_on_shifted_cohorts(sim, panel):
    res = placebo(panel, "shifted_timing", shifts=(-2, 1), progress=False)
    for k, est in zip((-2, 1), res.draws):
        df = sim.data.copy()
        df["cohort"] = df["cohort"] + k
        shifted = Panel.from_frame(df, **sim.panel_kwargs)
        assert est == pytest.approx(float(twfe(shifted).effect()["estimate"]), abs=1e-10)
    table = res.effects()
    assert table["group"].tolist() == ["overall", "shift=-2", "shift=1"]
    assert table["p_value"].between(0, 1).all()
    with pytest.raises(BayesDidError, match="randomization"):
        _ = res.p_value


@pytest.mark.unit
def test_seeds_reproduce_independently_of_chunking(panel):
    a = placebo(panel, "random_timing", n_draws=120, random_seed=7, progress=False)
    b = placebo(panel, "random_timing", n_draws=120, random_seed=7, chunk_size=7,
                progress=False)
    c = placebo(panel, "random_timing", n_draws=60, random_seed=7, progress=False)
    d = placebo(panel, "random_timing", n_draws=120, random_seed=8, progress=False)
    np.testing.assert_allclose(a.draws, b.draws, rtol=1e-12, atol=1e-15)  # BLAS batch sizes
    np.testing.assert_allclose(a.draws[:60], c.draws, rtol=1e-12, atol=1e-15)
    assert not np.allclose(a.draws, d.draws)
    fresh = placebo(panel, "fictional_group", n_draws=20, random_seed=None, progress=False)
    again = placebo(panel, "fictional_group", n_draws=20, random_seed=fresh.random_seed,
                    progress=False)
    np.testing.assert_array_equal(fresh.draws, again.draws)


@pytest.mark.unit
@pytest.mark.parametrize("kind", RANDOM)
def test_real_effect_lies_in_the_tail(panel, sim, kind):
    res = placebo(panel, kind, n_draws=200, random_seed=3, progress=False)
    assert res.real == pytest.approx(float(twfe(panel).effect()["estimate"]), abs=1e-10)
    assert res.real > 0.03  # the simulated effects are all positive
    assert res.p_value < 0.05 and res.p_value_greater < 0.05 and res.p_value_less > 0.95
    table = res.effects().set_index(["estimand", "group"])
    p_row = table.loc[("placebo_p", f"kind={kind}, side=two-sided")]
    expected = np.mean(np.abs(res.draws) >= abs(res.real))
    assert p_row["estimate"] == pytest.approx(expected)
    assert p_row["lower"] <= expected <= p_row["upper"] and p_row["n_obs"] == 200
    dist = table.loc[("placebo", f"kind={kind}")]
    assert dist["estimate"] == pytest.approx(res.draws.mean())
    assert dist["se_or_sd"] == pytest.approx(res.draws.std(ddof=1))
    assert dist["interval"] == "eti"
    assert abs(dist["estimate"]) < res.real  # placebos centre well below the real estimate


@pytest.mark.unit
def test_advance_timing_draws_precede_the_real_start(panel):
    assign = placebo_assignments(panel, "random_timing", range(30), random_seed=1,
                                 timing="advance")
    real = panel.frame.groupby(panel.unit)["cohort"].first()
    treated = real.notna()
    assert (assign.loc[treated].lt(real[treated], axis=0)).all().all()
    assert (assign.loc[treated] > panel.times.min()).all().all()


@pytest.mark.unit
def test_any_timing_draws_span_the_window(panel):
    assign = placebo_assignments(panel, "random_timing", range(40), random_seed=1, timing="any")
    real = panel.frame.groupby(panel.unit)["cohort"].first()
    treated = real.notna()
    drawn = assign.loc[treated]
    assert drawn.min().min() == panel.times.min() + 1 and drawn.max().max() == panel.times.max()
    assert (drawn.gt(real[treated], axis=0)).any().any()


@pytest.mark.unit
def test_given_real_result_is_reused_and_checked(panel):
    base = twfe(panel)
    res = placebo(panel, "fictional_group", n_draws=30, random_seed=1, real_result=base,
                  progress=False)
    assert res.real_result is base
    assert res.real == pytest.approx(float(base.effect()["estimate"]), abs=1e-10)
    other = twfe(panel, covariates=())
    with pytest.raises(BayesDidError, match="real_result"):
        placebo(panel, "fictional_group", n_draws=30, real_result=other, progress=False)


@pytest.mark.unit
def test_result_is_frozen_and_plots(panel):
    res = placebo(panel, "fictional_group", n_draws=50, random_seed=1, progress=False)
    with pytest.raises(ValueError):
        res.draws[0] = 1.0
    assert isinstance(res, PlaceboResult)
    fig = res.plot()
    ax = fig.axes[0]
    assert [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"] \
        == [pytest.approx(res.real)]
    shifted = placebo(panel, "shifted_timing", shifts=(-1,), progress=False).plot()
    assert shifted.axes[0].get_xlabel().startswith("shift")
    import matplotlib.pyplot as plt
    plt.close("all")


@pytest.mark.unit
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(kind="random_timing", n_draws=0), BayesDidError, "n_draws"),
    (dict(kind="both_random", n_draws=-5), BayesDidError, "n_draws"),
    (dict(kind="fictional_group", n_draws=2.5), BayesDidError, "n_draws"),
    (dict(kind="shuffle"), BayesDidError, "unknown placebo kind"),
    (dict(kind="shifted_timing", shifts=(-4,)), DesignError, "outside the data"),
    (dict(kind="shifted_timing", shifts=(5,)), DesignError, "outside the data"),
    (dict(kind="shifted_timing", shifts=(0, 1)), BayesDidError, "non-zero"),
    (dict(kind="shifted_timing", n_draws=10), BayesDidError, "shifted_timing"),
    (dict(kind="random_timing", timing="later"), BayesDidError, "timing"),
    (dict(kind="random_timing", chunk_size=0), BayesDidError, "chunk_size"),
    (dict(kind="random_timing", random_seed=-1), BayesDidError, "random_seed"),
    (dict(kind="random_timing", workers=0), BayesDidError, "workers"),
])
def test_bad_inputs(panel, kwargs, error, match):
    with pytest.raises(error, match=match):
        placebo(panel, progress=False, **kwargs)


@pytest.mark.unit
def test_designs_that_leave_no_placebo_room():
    sim = simulate_staggered(n_units=12, years=(2005, 2010), batches={2005: 3, 2008: 6},
                             random_seed=0)
    p = Panel.from_frame(sim.data, **sim.panel_kwargs)
    with pytest.raises(DesignError, match="no period to draw") as err:
        placebo(p, "random_timing", timing="advance", n_draws=5, progress=False)
    assert set(err.value.rows["cohort"]) == {2006.0}
    with pytest.raises(DesignError, match="pool='all'"):  # 9 treated, 3 controls
        placebo(p, "fictional_group", n_draws=5, progress=False)
    res = placebo(p, "fictional_group", pool="all", n_draws=5, random_seed=0, progress=False)
    assert res.draws.shape == (5,)
    with pytest.raises(BayesDidError, match="Panel"):
        placebo(sim.data, progress=False)
