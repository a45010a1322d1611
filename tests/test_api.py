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


def test_former_module_paths_are_the_moved_modules():
    """0.2 grouped modules by family; every former path is an alias of its new module."""
    from bayesdid._moved import MOVED

    for old, new in MOVED.items():
        assert importlib.import_module(old) is importlib.import_module(new), old


def test_former_path_import_keeps_same_named_functions():
    # importing a former module binds it on its parent: the function of the same name must win
    import bayesdid.classical.synth  # noqa: F401
    import bayesdid.efficiency_did  # noqa: F401
    from bayesdid.classical import callaway_santanna, synth
    from bayesdid.classical.synth import SynthResult

    assert callable(synth) and callable(callaway_santanna) and callable(bayesdid.efficiency_did)
    assert SynthResult.__module__ == "bayesdid.synthetic.synth"


def test_families_hold_classical_and_bayesian_twins():
    from bayesdid.did import hierarchical, twfe
    from bayesdid.efficiency import bayes_sfa, sfa
    from bayesdid.synthetic import bayes_synth, synth

    assert hasattr(twfe, "twfe") and hasattr(hierarchical, "HierarchicalDiD")
    assert hasattr(synth, "synth") and hasattr(bayes_synth, "BayesianSyntheticControl")
    assert hasattr(sfa, "sfa") and hasattr(bayes_sfa, "BayesianSFA")
