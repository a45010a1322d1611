"""Frequentist replications, each returning an :class:`~bayesdid.results.EffectResult`
(or a small result exposing ``effects()``)."""

from .bacon import BaconResult, bacon_decomposition
from .callaway_santanna import callaway_santanna
from .dea import DEAResult, ddf, dea, sbm, super_sbm
from .event_study import event_study
from .heterogeneity import heterogeneity, with_median_split
from .honest_did import (
    EventStudyCoefficients,
    event_study_coefficients,
    honest_did,
    identified_set,
)
from .malmquist import MLResult, efficiency_panel, malmquist_luenberger
from .mediation import mediation
from .placebo import PlaceboResult, placebo, placebo_assignments
from .psm import PSMResult, psm_did
from .regression_control import (
    RegressionControlResult,
    regression_control,
    regression_control_placebo_time,
)
from .robustness import RobustnessResult, Spec, robustness
from .sdid import SyntheticDiDResult, synthdid
from .sfa import SFAResult, sfa
from .staggered import imputation, sun_abraham
from .synth import SynthResult, synth, synth_placebo_time
from .twfe import twfe

__all__ = [
    "twfe", "event_study", "callaway_santanna", "sun_abraham", "imputation",
    "bacon_decomposition", "BaconResult",
    "honest_did", "identified_set", "event_study_coefficients", "EventStudyCoefficients",
    "heterogeneity", "with_median_split",
    "placebo", "placebo_assignments", "PlaceboResult", "robustness", "RobustnessResult", "Spec",
    "psm_did", "PSMResult", "mediation",
    "synth", "synth_placebo_time", "SynthResult", "synthdid", "SyntheticDiDResult",
    "regression_control", "regression_control_placebo_time", "RegressionControlResult",
    "dea", "ddf", "sbm", "super_sbm", "DEAResult",
    "malmquist_luenberger", "efficiency_panel", "MLResult", "sfa", "SFAResult",
]
