"""Priors of the hierarchical DID, as a JSON-serialisable config object.

All scales are in standard deviations of the outcome (the model standardises it), so the
defaults are weakly informative whatever the outcome's units.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import BayesDidError


@dataclass(frozen=True)
class PositivePriors:
    """Base of prior configs whose fields are all positive scales (checked on creation)."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (isinstance(value, int | float) and value > 0):
                raise BayesDidError(f"prior {name} must be a positive number, got {value!r}")

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
