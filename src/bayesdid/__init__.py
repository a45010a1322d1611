"""bayesdid: Bayesian causal inference on policy panels.

Hierarchical Bayesian difference-in-differences beside the classical replications a
reviewer expects, on one shared :class:`~bayesdid.panel.Panel`.

The public API is importable from the top level; heavy modules (PyMC, pyfixest) load
only when a name that needs them is first used, so ``import bayesdid`` stays quick.
``compare`` and ``efficiency_did`` are imported eagerly (each shares its module's name).

>>> import bayesdid
>>> bayesdid.HierarchicalDiD.__module__, bayesdid.twfe.__module__
('bayesdid.did.hierarchical', 'bayesdid.did.twfe')
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .panel import Panel
from .results import EffectResult

# these two functions share their name with their module: imported eagerly, because the
# first `import bayesdid.compare` anywhere would otherwise rebind the name to the module
from .compare import compare  # noqa: E402
from .efficiency.efficiency_did import efficiency_did  # noqa: E402
from . import _moved  # noqa: E402

_moved.install()  # former module paths (before the 0.2 family layout) stay importable
_moved.register("bayesdid", only=("efficiency_did",))  # the function keeps the name

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access, PEP 562)
_LAZY = {
    # Bayesian models
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
    "Result": "bayesdid.results",
    "IntervalError": "bayesdid.errors",
    "ConvergenceWarning": "bayesdid.errors",
    "DesignIgnoredWarning": "bayesdid.errors",
    "ModelCheckWarning": "bayesdid.errors",
    "bayes_sensitivity": "bayesdid.did.bayes_sensitivity",
    "posterior_contrasts": "bayesdid.did.contrasts",
    # classical twins
    **{name: "bayesdid.classical" for name in (
        "twfe", "event_study", "callaway_santanna", "sun_abraham", "imputation",
        "bacon_decomposition", "honest_did", "heterogeneity", "placebo", "robustness",
        "psm_did", "mediation", "synth", "synth_placebo_time", "synthdid",
        "regression_control", "ife", "mc_nnm", "dea", "ddf", "sbm", "super_sbm", "malmquist_luenberger",
        "sfa")},
    # comparison, data, studies
    "load": "bayesdid.datasets",
    "read_panel": "bayesdid.read",
    "read_table": "bayesdid.read",
    "simulate_staggered": "bayesdid.datasets",
    "simulate_pilot_zones": "bayesdid.datasets",
    "simulate_efficiency": "bayesdid.datasets",
    "simulate_factor_panel": "bayesdid.datasets",
    "regression_table": "bayesdid.report",
}

__all__ = ["Panel", "EffectResult", "compare", "efficiency_did", "__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bayesdid' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: the next access is a plain attribute lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # static tools see the real objects
    from .did.hierarchical import HierarchicalDiD  # noqa: F401
