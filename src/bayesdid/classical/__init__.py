"""Frequentist replications, each returning an :class:`~bayesdid.results.EffectResult`."""

from .event_study import event_study
from .twfe import twfe

__all__ = ["twfe", "event_study"]
