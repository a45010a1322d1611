"""Bayesian models (PyMC), each the twin of a classical estimator in :mod:`bayesdid.classical`.

Each model lives in its family package beside its classical twin (table below); this
package holds what they share: NUTS settings (:mod:`.sampling`), the result class
(:mod:`.result`), convergence checks (:mod:`.convergence`) and notices (:mod:`.notices`).


=============================  =============================================  ==========================
class / function               what it estimates                              module
=============================  =============================================  ==========================
``HierarchicalDiD``            staggered DID / event study, pooled cells      :mod:`bayesdid.did.hierarchical`
``BayesianSyntheticControl``   simplex donor weights, gap posterior           :mod:`bayesdid.synthetic.bayes_synth`
``BayesianRegressionControl``  horseshoe regression control (HCW twin)        :mod:`bayesdid.synthetic.bayes_regression_control`
``BayesianFactorDiD``          latent-factor DID (IFE / gsynth twin)          :mod:`bayesdid.synthetic.bayes_factor`
``BayesianSFA``                panel stochastic frontier, efficiency draws    :mod:`bayesdid.efficiency.bayes_sfa`
``BayesianMediation``          three-step mediation, indirect effect          :mod:`bayesdid.checks.bayes_mediation`
``bayes_sensitivity``          Rambachan-Roth style sensitivity of a fit      :mod:`bayesdid.did.bayes_sensitivity`
``posterior_contrasts``        P(group A > group B) from a fit                :mod:`bayesdid.did.contrasts`
=============================  =============================================  ==========================

Each model takes its prior scales as one frozen priors object (``priors=``): ``DiDPriors``, ``SynthPriors``,
``RegressionControlPriors``, ``FactorPriors``, ``SFAPriors``, ``MediationPriors``, exported beside the models.

Names load on first use (PEP 562), so importing one model does not import the others.

>>> from bayesdid.bayes import HierarchicalDiD
>>> HierarchicalDiD.__module__
'bayesdid.did.hierarchical'
"""

from __future__ import annotations

import importlib

_LAZY = {
    "HierarchicalDiD": "bayesdid.did.hierarchical",
    "DiDPriors": "bayesdid.did.priors",
    "BayesianSyntheticControl": "bayesdid.synthetic.bayes_synth",
    "SynthPriors": "bayesdid.synthetic.bayes_synth",
    "BayesianRegressionControl": "bayesdid.synthetic.bayes_regression_control",
    "RegressionControlPriors": "bayesdid.synthetic.bayes_regression_control",
    "BayesianFactorDiD": "bayesdid.synthetic.bayes_factor",
    "FactorPriors": "bayesdid.synthetic.bayes_factor",
    "BayesianSFA": "bayesdid.efficiency.bayes_sfa",
    "SFAPriors": "bayesdid.efficiency.bayes_sfa",
    "BayesianMediation": "bayesdid.checks.bayes_mediation",
    "MediationPriors": "bayesdid.checks.bayes_mediation",
    "BayesResult": "bayesdid.bayes.result",
    "BayesianModel": "bayesdid.bayes.model",
    "ConvergenceWarning": "bayesdid.errors",
    "bayes_sensitivity": "bayesdid.did.bayes_sensitivity",
    "posterior_contrasts": "bayesdid.did.contrasts",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bayesdid.bayes' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
