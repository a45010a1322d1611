"""One Bayesian model protocol (issue 16 item 3): every Bayesian model class exported by
``bayesdid.bayes`` fits ``fit(panel, *, draws, tune, chains, random_seed, progress)``, takes
its prior scales as one frozen priors object (``priors=``, a
:class:`~bayesdid.did.priors.PositivePriors`), records them in a JSON-serialisable
``config()``, and the spellings of before 0.2 (``fit(data=...)``, loose prior keywords,
mediation's positional ``data``) still work with a FutureWarning.

The model list is discovered from ``bayesdid.bayes``, so a new model is checked too."""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
import warnings

import numpy as np
import pytest

import bayesdid
import bayesdid.bayes
from bayesdid import Panel
from bayesdid.bayes.model import FIT_KEYWORDS, BayesianModel
from bayesdid.datasets import simulate_staggered
from bayesdid.datasets.simulate_efficiency import simulate_efficiency
from bayesdid.datasets.simulate_pilot import simulate_pilot_zones
from bayesdid.did.priors import PositivePriors
from bayesdid.errors import BayesDidError

MODELS = sorted(name for name in bayesdid.bayes.__all__
                if isinstance(getattr(bayesdid.bayes, name), type)
                and issubclass(getattr(bayesdid.bayes, name), BayesianModel)
                and getattr(bayesdid.bayes, name) is not BayesianModel)
# constructor arguments a model needs (the others take none)
REQUIRED = {"BayesianSFA": dict(y="q", x=["k"]), "BayesianMediation": dict(mediators=["m"])}


def _priors_class(cls):
    """The model's priors class: ``priors_class``, else the annotation of ``priors=``."""
    if getattr(cls, "priors_class", None) is not None:
        return cls.priors_class
    hint = typing.get_type_hints(cls.__init__).get("priors")
    for arg in typing.get_args(hint) or (hint,):
        if isinstance(arg, type) and issubclass(arg, PositivePriors):
            return arg
    return None


def _some_other_priors(priors_cls):
    """A valid priors object differing from the defaults in its first field."""
    first = dataclasses.fields(priors_cls)[0].name
    return priors_cls(**{first: getattr(priors_cls(), first) * 1.5})


@pytest.mark.unit
def test_models_are_discovered():
    assert {"HierarchicalDiD", "BayesianSyntheticControl", "BayesianRegressionControl",
            "BayesianSFA", "BayesianMediation"} <= set(MODELS)


@pytest.mark.unit
@pytest.mark.parametrize("name", MODELS)
def test_fit_takes_the_panel_first_and_the_sampler_by_keyword(name):
    cls = getattr(bayesdid.bayes, name)
    params = list(inspect.signature(cls.fit).parameters.values())
    assert params[1].name == "panel", f"{name}.fit's first argument is {params[1].name!r}"
    assert params[1].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    kinds = {p.name: p.kind for p in params[2:]}
    for kw in FIT_KEYWORDS:
        assert kinds.get(kw) is inspect.Parameter.KEYWORD_ONLY, kw
    assert inspect.Parameter.POSITIONAL_OR_KEYWORD not in kinds.values()


@pytest.mark.unit
@pytest.mark.parametrize("name", MODELS)
def test_priors_object_is_taken_and_recorded_in_a_json_config(name):
    cls = getattr(bayesdid.bayes, name)
    args = REQUIRED.get(name, {})
    config = cls(**args).config()
    json.dumps(config)  # plain values only (no default=str fallback)
    priors_cls = _priors_class(cls)
    assert priors_cls is not None, f"{name} has no priors object"
    assert "priors" in inspect.signature(cls).parameters
    assert dataclasses.is_dataclass(priors_cls) and priors_cls.__dataclass_params__.frozen
    assert issubclass(priors_cls, PositivePriors)
    # exported beside the model, at the top level and from bayesdid.bayes
    assert getattr(bayesdid, priors_cls.__name__) is priors_cls
    assert getattr(bayesdid.bayes, priors_cls.__name__) is priors_cls
    assert config["priors"] == priors_cls().to_dict()
    other = _some_other_priors(priors_cls)
    model = cls(**args, priors=other)
    assert model.config()["priors"] == other.to_dict()
    json.dumps(model.config())
    info = model.fit_info(random_seed=1, draws=1, tune=1, chains=1)
    assert info["config_hash"] != cls(**args).fit_info(random_seed=1, draws=1, tune=1,
                                                        chains=1)["config_hash"]


@pytest.mark.unit
@pytest.mark.parametrize("name", MODELS)
def test_priors_of_the_wrong_type_are_refused(name):
    cls = getattr(bayesdid.bayes, name)
    with pytest.raises(BayesDidError, match="priors must be"):
        cls(**REQUIRED.get(name, {}), priors={"sigma_sd": 1.0})


# ---------------------------------------------------------------------- deprecated spellings
@pytest.mark.unit
def test_loose_regression_control_prior_keywords_warn_and_still_work():
    from bayesdid import BayesianRegressionControl, RegressionControlPriors

    with pytest.warns(FutureWarning, match=r"write BayesianRegressionControl\(priors="
                                           r"RegressionControlPriors\(slab_scale=1\.5, "
                                           r"effect_sd=2\.0\)\)"):
        old = BayesianRegressionControl(slab_scale=1.5, effect_sd=2.0, pooling="none")
    new = BayesianRegressionControl(
        pooling="none", priors=RegressionControlPriors(slab_scale=1.5, effect_sd=2.0))
    assert old.config() == new.config()
    assert old.priors.slab_scale == 1.5 and old.priors.noise_sd == 0.5
    with pytest.raises(BayesDidError, match="either in priors= or"):
        BayesianRegressionControl(slab_scale=1.5, priors=RegressionControlPriors())
    with pytest.warns(FutureWarning), pytest.raises(BayesDidError, match="noise_sd"):
        BayesianRegressionControl(noise_sd=-1.0)


@pytest.mark.unit
def test_mediation_prior_scale_warns_and_becomes_slope_scale():
    from bayesdid import BayesianMediation, MediationPriors

    with pytest.warns(FutureWarning, match=r"prior_scale=1\.0\) is deprecated.*"
                                           r"MediationPriors\(slope_scale=1\.0\)"):
        old = BayesianMediation(["m"], prior_scale=1.0)
    assert old.config() == BayesianMediation(
        ["m"], priors=MediationPriors(slope_scale=1.0)).config()


@pytest.mark.unit
def test_priors_store_floats_and_refuse_non_numbers():
    from bayesdid import DiDPriors

    assert DiDPriors(sigma_sd=1).to_dict() == DiDPriors(sigma_sd=1.0).to_dict()
    assert isinstance(DiDPriors(sigma_sd=1).sigma_sd, float)
    for bad in (True, float("nan"), float("inf"), "1", 0.0):
        with pytest.raises(BayesDidError, match="sigma_sd"):
            DiDPriors(sigma_sd=bad)


class _Reached(Exception):
    """Raised in place of sampling, carrying what fit passed on."""


def _pilot_panel():
    sim = simulate_pilot_zones(n_units=8, treated=1, effect=0.3, random_seed=2)
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


def _sfa_frame():
    sim = simulate_efficiency(n_units=10, years=(2010, 2013), batches={2012: 3},
                              random_seed=2)
    return sim.data, sim.params["sfa_kwargs"]


@pytest.mark.unit
@pytest.mark.parametrize("name", ["BayesianSyntheticControl", "BayesianRegressionControl",
                                  "BayesianSFA"])
def test_fit_data_keyword_warns_and_reaches_the_model(name, monkeypatch):
    """``fit(data=x)`` (before 0.2) warns, then fits ``x`` exactly as ``fit(x)`` would:
    the sampler is replaced by a stub that stops at the first step past the design."""
    cls = getattr(bayesdid.bayes, name)
    if name == "BayesianSFA":
        data, kw = _sfa_frame()
        model = cls(**kw)
    else:
        data, model = _pilot_panel(), cls()
    module = inspect.getmodule(cls)

    def stop(_model, panel, *a, **k):
        raise _Reached(panel)

    monkeypatch.setattr(module, "warn_ignored_design", stop)
    with pytest.warns(FutureWarning, match=rf"{name}\.fit\(data=\.\.\.\) is deprecated"), \
            pytest.raises(_Reached) as reached:
        model.fit(data=data, draws=10, tune=10, chains=1, random_seed=1, progress=False)
    assert reached.value.args[0] is data
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the new spellings do not warn
        for call in (lambda: model.fit(data, draws=10), lambda: model.fit(panel=data)):
            with pytest.raises(_Reached) as reached:
                call()
            assert reached.value.args[0] is data


@pytest.mark.unit
def test_regression_control_build_data_keyword_warns():
    from bayesdid import BayesianRegressionControl

    panel = _pilot_panel()
    with pytest.warns(FutureWarning, match=r"BayesianRegressionControl\.build\(data="):
        model = BayesianRegressionControl().build(data=panel)
    assert model.named_vars_to_dims["beta"] == ("unit", "donor")


@pytest.mark.unit
def test_mediation_data_positional_warns_and_is_keyword_only():
    from bayesdid import BayesianMediation

    sim = simulate_staggered(n_units=30, years=(2005, 2012), batches={2008: 8},
                             random_seed=3)
    df = sim.data.assign(m=lambda d: 0.5 * d["treated"] + d["x1"])
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)  # m only in df
    model = BayesianMediation(["m"])
    new = model.prepare(panel, data=df)
    with pytest.warns(FutureWarning, match=r"prepare\(panel, data\) is deprecated.*write "
                                           r"BayesianMediation\.prepare\(panel, data=data\)"):
        old = model.prepare(panel, df)
    np.testing.assert_array_equal(old.gram, new.gram)
    params = inspect.signature(BayesianMediation.fit).parameters
    assert params["data"].kind is inspect.Parameter.KEYWORD_ONLY
    with pytest.raises(TypeError, match="takes the panel positionally"):
        model.prepare(panel, df, df)


# ---------------------------------------------------------------------- study steps
@pytest.mark.unit
def test_study_steps_pass_prior_keys_as_the_priors_object(monkeypatch):
    """The spec keeps its flat prior keys; the steps build the priors object from them,
    so a study run raises no FutureWarning."""
    from types import SimpleNamespace

    from bayesdid import BayesianMediation, BayesianRegressionControl
    from bayesdid.study import steps_bayes, steps_synth

    built = []

    def capture(model, panel, **kw):
        built.append(model)
        return "fitted"

    monkeypatch.setattr(BayesianRegressionControl, "fit", capture)
    monkeypatch.setattr(BayesianMediation, "fit", capture)
    ctx = SimpleNamespace(progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        step = steps_synth._bayes_fit(BayesianRegressionControl, steps_synth._BRC_KEYS)
        assert step(_pilot_panel(), {"slab_scale": 1.5, "pooling": "none", "draws": 10},
                    ctx) == "fitted"
        steps_bayes._bayes_mediation(None, {"mediators": ["m"], "prior_scale": 1.0}, ctx)
    rc, med = built
    assert rc.pooling == "none" and rc.priors.slab_scale == 1.5 and rc.priors.slab_df == 4.0
    assert med.priors.slope_scale == 1.0
