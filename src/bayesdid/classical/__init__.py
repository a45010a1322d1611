"""Frequentist replications, each returning an :class:`~bayesdid.results.EffectResult`
(or, for the Bacon decomposition, a result exposing ``effects()``)."""

from .bacon import BaconResult, bacon_decomposition
from .callaway_santanna import callaway_santanna
from .event_study import event_study
from .staggered import imputation, sun_abraham
from .twfe import twfe

__all__ = ["twfe", "event_study", "callaway_santanna", "sun_abraham", "imputation",
           "bacon_decomposition", "BaconResult"]
