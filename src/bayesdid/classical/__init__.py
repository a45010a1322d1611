"""Frequentist replications, each returning an :class:`~bayesdid.results.EffectResult`
(or a small result exposing ``effects()``).

This package gathers the classical estimators from their family packages (:mod:`bayesdid.did`,
:mod:`bayesdid.staggered`, :mod:`bayesdid.synthetic`, :mod:`bayesdid.efficiency`,
:mod:`bayesdid.checks`), where each sits beside its Bayesian twin.
"""

from ..staggered.bacon import BaconResult, bacon_decomposition
from ..staggered.callaway_santanna import callaway_santanna
from ..efficiency.dea import DEAResult, ddf, dea, sbm, super_sbm
from ..did.event_study import event_study
from ..checks.heterogeneity import heterogeneity, with_median_split
from ..did.honest_did import (
    EventStudyCoefficients,
    event_study_coefficients,
    honest_did,
    identified_set,
)
from ..efficiency.malmquist import MalmquistResult, MLResult, efficiency_panel, malmquist_luenberger
from ..checks.mediation import mediation
from ..checks.placebo import PlaceboResult, placebo, placebo_assignments
from ..checks.psm import PSMResult, psm_did
from ..synthetic.regression_control import (
    RegressionControlResult,
    regression_control,
    regression_control_placebo_time,
)
from ..checks.robustness import RobustnessResult, Spec, robustness
from ..synthetic.sdid import SyntheticDiDResult, synthdid
from ..synthetic.factor_panel import FactorResult
from ..synthetic.ife import ife
from ..synthetic.mc_nnm import mc_nnm
from ..efficiency.sfa import SFAResult, sfa
from ..staggered.estimators import imputation, sun_abraham
from ..synthetic.synth import SynthResult, synth, synth_placebo_time
from ..did.twfe import twfe

__all__ = [
    "twfe", "event_study", "callaway_santanna", "sun_abraham", "imputation",
    "bacon_decomposition", "BaconResult",
    "honest_did", "identified_set", "event_study_coefficients", "EventStudyCoefficients",
    "heterogeneity", "with_median_split",
    "placebo", "placebo_assignments", "PlaceboResult", "robustness", "RobustnessResult", "Spec",
    "psm_did", "PSMResult", "mediation",
    "synth", "synth_placebo_time", "SynthResult", "synthdid", "SyntheticDiDResult",
    "ife", "mc_nnm", "FactorResult",
    "regression_control", "regression_control_placebo_time", "RegressionControlResult",
    "dea", "ddf", "sbm", "super_sbm", "DEAResult",
    "malmquist_luenberger", "efficiency_panel", "MalmquistResult", "MLResult", "sfa", "SFAResult",
]

from .. import _moved  # noqa: E402

_moved.register(__name__)  # former modules (bayesdid.classical.synth, ...) are their new homes
