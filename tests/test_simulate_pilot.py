"""simulate_pilot_zones: shape, truth, convex-hull construction, input checks."""

import numpy as np
import pandas as pd
import pytest

from bayesdid import Panel
from bayesdid.datasets.simulate import SimulatedPanel
from bayesdid.datasets.simulate_pilot import PILOT_PROVINCES, PROVINCES, simulate_pilot_zones
from bayesdid.synthetic.donors import donor_pool
from bayesdid.errors import SpecError

pytestmark = pytest.mark.unit


def test_defaults_match_the_seed_paper():
    sim = simulate_pilot_zones(random_seed=0)
    assert isinstance(sim, SimulatedPanel)
    df = sim.data
    assert len(PROVINCES) == 29 and "Tibet" not in PROVINCES and "Hainan" not in PROVINCES
    assert sorted(df["province"].unique()) == sorted(PROVINCES)
    assert (df["year"].min(), df["year"].max()) == (2004, 2020)
    assert len(df) == 29 * 17
    treated = df.loc[df["treated"] == 1]
    assert set(treated["province"]) == set(PILOT_PROVINCES)
    assert treated["year"].min() == 2017 and len(treated) == 3 * 4
    panel = Panel.from_frame(df, **sim.panel_kwargs)
    pool = donor_pool(panel)
    assert set(pool.treated_units) == set(PILOT_PROVINCES) and pool.n_donors == 26


def test_truth_is_the_mean_effect_per_unit_and_pooled():
    sim = simulate_pilot_zones(effect=[0.3, 0.2, 0.1], effect_slope=0.02, random_seed=1)
    truth = sim.truth.set_index(["estimand", "group"])["value"]
    # effect + slope * mean(0, 1, 2, 3) over 2017-2020
    assert truth[("att", "unit=Fujian")] == pytest.approx(0.3 + 0.02 * 1.5)
    assert truth[("att", "unit=Guizhou")] == pytest.approx(0.1 + 0.03)
    assert truth[("att", "overall")] == pytest.approx(0.2 + 0.03)
    assert truth[("gap", "unit=Jiangxi, t=2020")] == pytest.approx(0.2 + 0.06)
    assert sim.tau["tau"].mean() == pytest.approx(truth[("att", "overall")])


def test_treated_units_are_exact_convex_combinations_of_donors():
    sim = simulate_pilot_zones(noise=0.0, random_seed=4)
    wide = sim.data.pivot(index="year", columns="province", values="carbon_productivity")
    pre = wide.index < 2017
    for unit, weights in sim.params["true_weights"].items():
        w = pd.Series(weights)
        assert w.sum() == pytest.approx(1.0) and (w > 0).all()
        synthetic = wide[w.index] @ w
        np.testing.assert_allclose(wide.loc[pre, unit], synthetic[pre], atol=1e-12)
        effect = sim.params["effects"][unit]
        np.testing.assert_allclose(wide.loc[~pre, unit] - synthetic[~pre], effect, atol=1e-12)
        assert not set(w.index) & set(PILOT_PROVINCES)


def test_same_seed_same_panel_and_options():
    a = simulate_pilot_zones(random_seed=7)
    b = simulate_pilot_zones(random_seed=7)
    pd.testing.assert_frame_equal(a.data, b.data)
    c = simulate_pilot_zones(n_units=12, years=(2000, 2010), treated=2, start=2008,
                             effect=0.5, n_factors=3, noise_rho=0.5, random_seed=7)
    assert c.data["province"].nunique() == 12 and c.data["province"].iloc[0] == "P01"
    assert c.truth.query("group == 'overall'")["value"].item() == pytest.approx(0.5)
    named = simulate_pilot_zones(treated=["Beijing"], effect={"Beijing": 0.4}, random_seed=0)
    assert named.params["treated"] == ["Beijing"]
    # one treated unit: gap labels without the unit, as the SC estimators write them
    assert "t=2018" in set(named.truth["group"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(treated=["Atlantis"]), "not among"),
    (dict(treated=0), "between 1"),
    (dict(start=2004), "start"),
    (dict(effect=[0.1, 0.2]), "effect"),
    (dict(noise=-1.0), "noise"),
    (dict(noise_rho=1.0), "noise_rho"),
    (dict(n_factors=0), "n_factors"),
    (dict(n_units=3), "n_units"),
    (dict(years=(2010, 2005)), "years"),
])
def test_bad_arguments_raise_spec_errors(kwargs, match):
    with pytest.raises(SpecError, match=match):
        simulate_pilot_zones(**kwargs)
