"""Classical replications: TWFE and the binned event study through pyfixest."""

from __future__ import annotations

import logging

import pyfixest as pf
import pytest

from bayesdid import Panel
from bayesdid.classical import event_study, twfe
from bayesdid.datasets import info, load, simulate_staggered
from bayesdid.errors import BayesDidError


@pytest.fixture(scope="module")
def castle():
    return load("castle")


@pytest.fixture(scope="module")
def castle_panel(castle):
    return Panel.from_frame(castle, **info("castle")["panel_kwargs"])


@pytest.mark.reference
def test_twfe_on_castle_equals_pyfixest(castle, castle_panel):
    """Reference: pyfixest called directly on the same data (weights popwt, CRV1 by sid)."""
    direct = pf.feols("l_homicide ~ treated | sid + year", data=castle,
                      vcov={"CRV1": "sid"}, weights="popwt")
    ours = twfe(castle_panel).effect()
    ref = direct.tidy().loc["treated"]
    assert ours["estimate"] == pytest.approx(ref["Estimate"], abs=1e-8)
    assert ours["se_or_sd"] == pytest.approx(ref["Std. Error"], abs=1e-8)
    assert ours["lower"] == pytest.approx(ref["2.5%"], abs=1e-8)
    assert ours["upper"] == pytest.approx(ref["97.5%"], abs=1e-8)
    assert ours["n_obs"] == 550 and ours["interval"] == "confidence"


@pytest.mark.unit
def test_twfe_options_and_level(castle, castle_panel):
    unweighted = twfe(castle_panel, weights="")
    direct = pf.feols("l_homicide ~ treated | sid + year", data=castle, vcov={"CRV1": "sid"})
    assert unweighted.effect()["estimate"] == pytest.approx(direct.coef()["treated"], abs=1e-10)
    with_cov = twfe(castle_panel, covariates=())
    assert with_cov.info["formula"] == "l_homicide ~ treated | sid + year"
    t90 = twfe(castle_panel).effects(level=0.9).iloc[0]
    ci90 = pf.feols("l_homicide ~ treated | sid + year", data=castle, vcov={"CRV1": "sid"},
                    weights="popwt").confint(alpha=0.1).loc["treated"]
    assert (t90["lower"], t90["upper"]) == pytest.approx((ci90.iloc[0], ci90.iloc[1]), abs=1e-8)
    with pytest.raises(BayesDidError, match="nope"):
        twfe(castle_panel, covariates=("nope",))


@pytest.mark.unit
def test_event_study_binning_equals_manual_dummies(castle, castle_panel):
    es = event_study(castle_panel, leads=4, lags=3)
    df = castle_panel.data
    rel = df["rel_time"].astype(float).clip(-4, 3)
    for k in [k for k in range(-4, 4) if k != -1]:
        df[f"d{k + 10}"] = (rel == k).astype(float)
    regs = " + ".join(f"d{k + 10}" for k in range(-4, 4) if k != -1)
    direct = pf.feols(f"l_homicide ~ {regs} | sid + year", data=df, vcov={"CRV1": "sid"},
                      weights="popwt")
    got = es.effects().set_index("group")["estimate"]
    for k in [k for k in range(-4, 4) if k != -1]:
        assert got[f"k={k}"] == pytest.approx(direct.coef()[f"d{k + 10}"], abs=1e-10)
    assert "k=-1" not in got.index
    assert es.effects()["estimand"].unique().tolist() == ["event_time"]


@pytest.mark.unit
def test_event_study_recovers_dynamic_effects_without_noise():
    """Noise-free simulated panel whose effects grow by `slope` per year of exposure:
    leads are near zero and lags trace the truth, up to the contamination across relative
    times that cohort-heterogeneous effects cause in TWFE event studies (Sun & Abraham
    2021), which is small here (seen: 9e-5 on leads) with many never-treated units."""
    sim = simulate_staggered(n_units=120, years=(2005, 2016), batches={2008: 15, 2011: 15},
                             sigma=0.0, random_seed=2)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    es = event_study(panel, leads=3, lags=4, bin_ends=False).effects().set_index("group")
    for k in (-3, -2):
        assert abs(es.loc[f"k={k}", "estimate"]) < 1e-3
    truth = sim.truth.set_index("group")["value"]
    for k in range(0, 4):
        assert es.loc[f"k={k}", "estimate"] == pytest.approx(truth[f"k={k}"], abs=2e-3)


@pytest.mark.unit
def test_event_study_bad_window(castle_panel):
    with pytest.raises(BayesDidError, match="outside the window"):
        event_study(castle_panel, leads=2, lags=2, ref=-3)
    with pytest.raises(BayesDidError):
        event_study(castle_panel, leads=0)
    es = event_study(castle_panel, leads=2, lags=1, bin_ends=False)
    assert es.info["dropped_rows"] > 0


@pytest.mark.unit
def test_fitting_leaves_the_root_logger_alone():
    # pyfixest calls logging.basicConfig(INFO) in a module it imports at the first fit
    import subprocess
    import sys

    code = ("import logging\n"
            "from bayesdid import Panel\n"
            "from bayesdid.classical import twfe\n"
            "from bayesdid.datasets import info, load\n"
            "twfe(Panel.from_frame(load('castle'), **info('castle')['panel_kwargs']))\n"
            "root = logging.getLogger()\n"
            "print(len(root.handlers), root.level)\n")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["0", str(logging.WARNING)]
