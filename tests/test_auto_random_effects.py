"""``HierarchicalDiD(random_effects="auto")`` (did/auto_random_effects.py): group x period
random effects exactly where the default fit's ``<group>_x_period`` residual check flags.

* the choice from the check records: flagged groups only, joined terms, a group already a
  fixed effect of ``fe=`` not added again, no group columns -> none;
* the default; "auto" in the config hash (``None`` keeps the hash of the model without),
  the dense forms add nothing, and ``prepare`` gives the first fit's design;
* on a zoo panel with region x year shocks the returned fit is, draw for draw, the
  ``random_effects="region^year"`` fit with the same seed; on one without, the default
  ``random_effects=None`` fit; ``info["random_effects"]`` records the p-value and the term,
  and the refit is announced with a ModelCheckWarning.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bayesdid.calibration import zoo_panel
from bayesdid.did.auto_random_effects import group_period_terms
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.errors import ModelCheckWarning


def _records(**p_values):
    rows = [{"check": "autocorr_lag1", "p_value": 0.001, "flagged": True}]
    return rows + [{"check": f"{g}_x_period", "p_value": p, "flagged": p < 0.01}
                   for g, p in p_values.items()]


class _Panel:
    def __init__(self, groups):
        self.groups, self.time, self.unit = groups, "year", "city"


@pytest.mark.unit
def test_terms_for_the_flagged_groups_only(trimmed_panel):
    assert tuple(trimmed_panel.groups) == ("region",)
    p, terms = group_period_terms(_records(region=0.0), trimmed_panel, "unit + time")
    assert (p, terms) == ({"region": 0.0}, "region^year")
    p, terms = group_period_terms(_records(region=0.2), trimmed_panel, "unit + time")
    assert (p, terms) == ({"region": 0.2}, None)
    # already a fixed effect: not added as a random one
    assert group_period_terms(_records(region=0.0), trimmed_panel,
                              "city + year^region")[1] is None
    assert group_period_terms(None, trimmed_panel, "unit + time") == ({}, None)


@pytest.mark.unit
def test_several_groups_and_none(monkeypatch):
    import bayesdid.did.auto_random_effects as mod

    monkeypatch.setattr(mod, "parse_fe", lambda panel, fe: type("S", (), {"terms": ()})())
    two = _Panel(["region", "province"])
    assert group_period_terms(_records(region=0.0, province=0.005), two, None)[1] == \
        "region^year + province^year"
    assert group_period_terms(_records(region=0.3, province=0.005), two, None)[1] == \
        "province^year"
    assert group_period_terms(_records(), _Panel([]), None) == ({}, None)


@pytest.mark.unit
def test_validation_config_and_design(trimmed_panel):
    # the default; the dense forms have no residual checks, so "auto" adds nothing there
    assert HierarchicalDiD().random_effects == "auto"
    dense = HierarchicalDiD(likelihood="dense").prepare(trimmed_panel)
    assert not dense.random_terms
    assert HierarchicalDiD().config()["random_effects"] == "auto"
    assert "random_effects" not in HierarchicalDiD(random_effects=None).config()
    auto = HierarchicalDiD(random_effects="auto").prepare(trimmed_panel)
    plain = HierarchicalDiD().prepare(trimmed_panel)
    assert [b.name for b in auto.blocks] == [b.name for b in plain.blocks]
    assert auto.n_phi == plain.n_phi


def _fit(panel, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HierarchicalDiD(**kw).fit(panel, draws=150, tune=200, chains=2, cores=1,
                                         random_seed=3, progress=False)


@pytest.mark.sampling
def test_region_shocks_get_region_year_effects_and_others_do_not():
    shocked, _ = zoo_panel("region_shocks", 0)
    with pytest.warns(ModelCheckWarning, match=r"refitting with random_effects='region\^year'"):
        auto = HierarchicalDiD().fit(shocked, draws=150, tune=200, chains=2, cores=1,
                                     random_seed=3, progress=False)
    info = auto.info["random_effects"]
    assert info["used"] == "region^year" and info["group_x_period_p"]["region"] < 0.01
    assert auto.info["config"]["random_effects"] == "auto"
    direct = _fit(shocked, random_effects="region^year")
    np.testing.assert_array_equal(auto.idata.posterior["effect"].values,
                                  direct.idata.posterior["effect"].values)
    assert "sd_re_region_year" in auto.idata.posterior

    clean, _ = zoo_panel("ar1", 0)
    auto = _fit(clean, random_effects="auto")
    assert auto.info["random_effects"]["used"] is None
    assert auto.info["random_effects"]["group_x_period_p"]["region"] >= 0.01
    without = _fit(clean, random_effects=None)
    np.testing.assert_array_equal(auto.idata.posterior["effect"].values,
                                  without.idata.posterior["effect"].values)
    assert auto.info["config_hash"] != without.info["config_hash"]


@pytest.mark.sampling
def test_zoo_robust_redraw_follows_the_added_terms():
    # calibration.robust_redraw rebuilds the design the hyperparameters were sampled on:
    # with region x year effects added by "auto", the redraw must equal the direct fit
    from bayesdid.calibration import robust_redraw

    shocked, _ = zoo_panel("region_shocks", 0)
    kw = dict(draws=100, tune=150, chains=2, cores=1, random_seed=5, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = HierarchicalDiD().fit(shocked, **kw)
        robust = HierarchicalDiD(robust="cluster").fit(shocked, **kw)
    assert default.info["random_effects"]["used"] == "region^year"
    assert robust.info["random_effects"]["used"] == "region^year"
    redrawn = robust_redraw(default, shocked)
    np.testing.assert_array_equal(redrawn.draws(), robust.draws())
    assert redrawn.info["config"] == robust.info["config"]
