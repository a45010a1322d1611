"""bayesdid: Bayesian causal inference on policy panels.

Hierarchical Bayesian difference-in-differences beside the classical replications a
reviewer expects, on one shared :class:`~bayesdid.panel.Panel`.
"""

from __future__ import annotations

from .panel import Panel
from .results import EffectResult

__version__ = "0.1.0"
__all__ = ["Panel", "EffectResult", "__version__"]
