"""The public API: every advertised top-level name resolves to the object its module defines."""

import importlib

import pytest

import bayesdid
import bayesdid.bayes

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("package", [bayesdid, bayesdid.bayes], ids=["bayesdid", "bayesdid.bayes"])
def test_every_exported_name_is_the_defining_object(package):
    for name in package.__all__:
        if name == "__version__":
            continue
        obj = getattr(package, name)
        module = package._LAZY.get(name) if hasattr(package, "_LAZY") else None
        if module is not None:
            source = importlib.import_module(module, package.__name__)
            assert obj is getattr(source, name), name


def test_readme_names_import_from_the_top_level():
    from bayesdid import (  # noqa: F401
        BayesianMediation, BayesianRegressionControl, BayesianSFA, BayesianSyntheticControl,
        HierarchicalDiD, Panel, callaway_santanna, compare, event_study, imputation, load,
        regression_control, sun_abraham, synth, synthdid, twfe)
    assert HierarchicalDiD.__name__ == "HierarchicalDiD" and callable(twfe)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bayesdid.nope  # noqa: B018
    assert "HierarchicalDiD" in dir(bayesdid)
