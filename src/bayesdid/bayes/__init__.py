"""Bayesian models (PyMC), each the twin of a classical estimator in :mod:`bayesdid.classical`.

=============================  =============================================  ==========================
class / function               what it estimates                              module
=============================  =============================================  ==========================
``HierarchicalDiD``            staggered DID / event study, pooled cells      :mod:`bayesdid.bayes.did`
``BayesianSyntheticControl``   simplex donor weights, gap posterior           :mod:`bayesdid.bayes.synth`
``BayesianRegressionControl``  horseshoe regression control (HCW twin)        :mod:`bayesdid.bayes.regression_control`
``BayesianSFA``                panel stochastic frontier, efficiency draws    :mod:`bayesdid.bayes.sfa`
``BayesianMediation``          three-step mediation, indirect effect          :mod:`bayesdid.bayes.mediation`
``bayes_sensitivity``          Rambachan-Roth style sensitivity of a fit      :mod:`bayesdid.bayes.sensitivity`
``posterior_contrasts``        P(group A > group B) from a fit                :mod:`bayesdid.bayes.contrasts`
=============================  =============================================  ==========================

Names load on first use (PEP 562), so importing one model does not import the others.

>>> from bayesdid.bayes import HierarchicalDiD
>>> HierarchicalDiD.__module__
'bayesdid.bayes.did'
"""

from __future__ import annotations

import importlib

_LAZY = {
    "HierarchicalDiD": ".did",
    "DiDPriors": ".priors",
    "BayesianSyntheticControl": ".synth",
    "BayesianRegressionControl": ".regression_control",
    "BayesianSFA": ".sfa",
    "SFAPriors": ".sfa",
    "BayesianMediation": ".mediation",
    "BayesResult": ".result",
    "ConvergenceWarning": ".result",
    "bayes_sensitivity": ".sensitivity",
    "posterior_contrasts": ".contrasts",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bayesdid.bayes' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
