"""The eco-efficiency city-panel simulator: shapes, exact truth, the frontier identity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesdid import Panel
from bayesdid.datasets.simulate_efficiency import INPUTS, simulate_efficiency
from bayesdid.errors import SpecError


@pytest.mark.unit
def test_default_panel_is_lccp_shaped_and_reproducible():
    sim = simulate_efficiency(random_seed=0)
    d = sim.data
    assert d.shape == (278 * 19, 15) and d["year"].min() == 2003 and d["year"].max() == 2021
    assert sorted(sim.policy_lists) == [2010, 2012, 2017]
    assert [len(v) for v in sim.policy_lists.values()] == [15, 22, 30]
    assert (d[list(INPUTS) + ["gdp_pc", "green", "aqi"]] > 0).all().all()
    pd.testing.assert_frame_equal(d, simulate_efficiency(random_seed=0).data)
    assert not d.equals(simulate_efficiency(random_seed=1).data)
    Panel.from_frame(d, **sim.panel_kwargs)  # a valid DID panel on true efficiency


@pytest.mark.unit
def test_truth_is_the_effect_on_efficiency():
    sim = simulate_efficiency(n_units=50, years=(2005, 2014), batches={2007: 8, 2010: 8},
                              random_seed=4)
    p, d = sim.params, sim.data
    np.testing.assert_allclose(d["efficiency"], np.exp(-d["u"]))
    # rebuild the untreated inefficiency from the treated one: u0 = u_i * decay + w and
    # u1 = u_i * decay * exp(-delta) + w, so u0 - u1 = u_i * decay * (1 - exp(-delta))
    treated = d[d["treated"] == 1].merge(sim.tau, on=["city", "year"])
    ui = treated["city"].map(p["unit_inefficiency"])
    decay = np.exp(-p["eta"] * (treated["year"] - p["years"][1]))
    u0 = treated["u"] + ui * decay * (1 - np.exp(-p["policy_effect"]))
    np.testing.assert_allclose(treated["tau"], np.exp(-treated["u"]) - np.exp(-u0))
    overall = sim.truth.query("estimand == 'att' and group == 'overall'")["value"].iloc[0]
    assert overall == pytest.approx(treated["tau"].mean()) and overall > 0.02
    none = simulate_efficiency(n_units=50, years=(2005, 2014), batches={2007: 8},
                               policy_effect=0.0, random_seed=4)
    assert np.allclose(none.truth["value"], 0.0)


@pytest.mark.unit
def test_data_lie_on_the_stated_distance_function():
    sim = simulate_efficiency(n_units=40, years=(2005, 2012), batches={2007: 6},
                              sigma_v=0.0, random_seed=5)
    p, d = sim.params, sim.data
    rhs = (p["intercept"] + sum(p["beta"][c] * np.log(d[c]) for c in INPUTS)
           + p["alpha_green"] * np.log(d["green"] / d["gdp_pc"])
           + p["delta_aqi"] * np.log(d["aqi"]) + d["u"])
    np.testing.assert_allclose(-np.log(d["gdp_pc"]), rhs, atol=1e-10)


@pytest.mark.unit
def test_bad_specs_raise():
    with pytest.raises(SpecError, match="n_units"):
        simulate_efficiency(n_units=3)
    with pytest.raises(SpecError, match="sigma_u"):
        simulate_efficiency(n_units=20, years=(2005, 2010), batches={2007: 3}, sigma_u=-1)
    with pytest.raises(SpecError, match="batch"):
        simulate_efficiency(n_units=20, years=(2005, 2010), batches={2012: 3})
