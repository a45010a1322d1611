"""Every opt-in HierarchicalDiD term added for calibration runs on the compiled nutpie path.

The compiled density (did/nutpie_density.py) covers a fixed set of free variables; a model
outside it raises UnsupportedModel and ``fit`` quietly falls back to ``pm.sample`` (nutpie
through PyMC: a fresh numba compile of 15-25 s per model; ``info["sampler"]`` still says
"nutpie" and ``info["compiled_density"]`` is False). Here the fallback is made to fail, so
each option must be sampled by the disk-cached density, and the same seed must give the same
draws.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesdid.did.hierarchical as hierarchical
from bayesdid import Panel
from bayesdid.bayes.sampling import nutpie_installed
from bayesdid.datasets import simulate_staggered
from bayesdid.did.hierarchical import HierarchicalDiD

pytestmark = pytest.mark.skipif(not nutpie_installed(), reason="nutpie not installed")

FIT = dict(draws=60, tune=60, chains=2, progress=False, random_seed=7, sampler="nutpie")

OPTIONS = {
    "default": ({}, False),
    "unit_variance_classes": ({"unit_variance": "classes", "variance_classes": 3}, False),
    "random_effects_region_year": ({"random_effects": "region^year"}, False),
    "robust_cluster": ({"robust": "cluster", "min_treated_clusters": 3}, False),
    "panel_weights": ({}, True),
    "weights_and_classes": ({"unit_variance": "classes", "variance_classes": 3}, True),
}


@pytest.fixture(scope="module")
def panels():
    sim = simulate_staggered(n_units=30, years=(2005, 2011), batches={2008: 5, 2009: 5},
                             random_seed=3)
    df = sim.data.copy()
    cities = df["city"].unique()
    pop = np.exp(np.random.default_rng(1).normal(0, 0.5, len(cities)))
    df["pop"] = df["city"].map(dict(zip(cities, pop)))
    return {False: Panel.from_frame(df, **sim.panel_kwargs),
            True: Panel.from_frame(df, **sim.panel_kwargs, weights="pop")}


def _no_fallback(*args, **kwargs):
    raise AssertionError("HierarchicalDiD fell back to pm.sample (UnsupportedModel)")


@pytest.mark.sampling
@pytest.mark.parametrize("errors", ["ar1", "iid"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_option_runs_on_the_compiled_path_and_repeats_with_the_seed(panels, option, errors,
                                                                    monkeypatch):
    kwargs, weighted = OPTIONS[option]
    monkeypatch.setattr(hierarchical, "sample", _no_fallback)
    model = HierarchicalDiD(errors=errors, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = model.fit(panels[weighted], **FIT)
        two = model.fit(panels[weighted], **FIT)
    assert one.info["sampler"] == "nutpie" and one.info["compiled_density"] is True
    assert one.idata.posterior.attrs["nuts_sampler"] == "nutpie"
    np.testing.assert_array_equal(one.idata.posterior["effect"].values,
                                  two.idata.posterior["effect"].values)
    np.testing.assert_array_equal(one.idata.posterior["sigma"].values,
                                  two.idata.posterior["sigma"].values)


@pytest.mark.sampling
def test_info_says_when_the_compiled_density_was_not_used(panels):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = HierarchicalDiD().fit(panels[False], **{**FIT, "sampler": "pymc"})
    assert res.info["sampler"] == "pymc" and res.info["compiled_density"] is False
