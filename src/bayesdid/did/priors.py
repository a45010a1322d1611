"""Priors of the hierarchical DID, as a JSON-serialisable config object.

All scales are in standard deviations of the outcome (the model standardises it), so the
defaults are weakly informative whatever the outcome's units.

:class:`PositivePriors` is the base of every Bayesian model's priors object
(:class:`DiDPriors` here, ``SFAPriors``, ``RegressionControlPriors``, ``MediationPriors``
beside their models): a frozen dataclass of positive scales, recorded in the model's
``config()`` through :meth:`~PositivePriors.to_dict`.

>>> DiDPriors(sigma_sd=2).to_dict()["sigma_sd"]
2.0
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import BayesDidError


@dataclass(frozen=True)
class PositivePriors:
    """Base of prior configs whose fields are all positive scales (checked on creation,
    stored as floats so that ``1`` and ``1.0`` give the same config hash)."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not math.isfinite(value) or value <= 0):
                raise BayesDidError(f"prior {name} must be a positive number, got {value!r}")
            object.__setattr__(self, name, float(value))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class DiDPriors(PositivePriors):
    """Prior scales.

    sigma_sd : HalfNormal scale of the error (innovation) sd.
    effect_mean_sd : Normal sd of each additive event-time, cohort and group effect.
    effect_sd : prior mean of the pooling sd of cell interactions, Gamma(2, 2 / effect_sd):
        a boundary-avoiding prior, so cells are never forced onto the additive structure.
    nu_rate : rate of the Exponential prior on ``nu - 2`` (Student-t errors only).
    """

    sigma_sd: float = 1.0
    effect_mean_sd: float = 1.0
    effect_sd: float = 0.5
    nu_rate: float = 0.1
