"""BayesianModel: what every Bayesian estimator shares (config, repr, priors, the fit contract).

A model is configured in its constructor, its prior scales in one frozen priors object
(``priors=``, a :class:`~bayesdid.did.priors.PositivePriors` subclass named by the class
attribute ``priors_class``), says what it is through :meth:`config` (a dict of plain
values, priors as ``priors.to_dict()``; it is hashed into ``info["config_hash"]`` so that
:meth:`BayesResult.load <bayesdid.bayes.result.BayesResult.load>` can refuse a file fitted
with another configuration), and samples with
``fit(panel, *, draws, tune, chains, random_seed, progress, ...)``, returning a
:class:`~bayesdid.bayes.result.BayesResult`.

>>> class Toy(BayesianModel):
...     def __init__(self, scale=1.0):
...         self.scale = scale
...     def config(self):
...         return {"scale": self.scale}
>>> Toy(2.0)
Toy(scale=2.0)
>>> Toy().fit_info(random_seed=1, draws=10, tune=10, chains=2)["model_type"]
'Toy'
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import replace
from typing import Any

from .. import __version__
from ..errors import BayesDidError
from .result import config_hash

__all__ = ["BayesianModel", "FIT_KEYWORDS", "panel_first"]

# keyword arguments every model's fit takes (after the panel)
FIT_KEYWORDS = ("draws", "tune", "chains", "random_seed", "progress")


def panel_first(method):
    """Decorate a ``fit(self, panel, ...)`` (or ``build``, ``prepare``) whose first argument
    was called ``data`` before 0.2: ``fit(data=...)`` still works for one release, with a
    FutureWarning."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if "data" in kwargs and not args and "panel" not in kwargs:
            name = f"{type(self).__name__}.{method.__name__}"
            warnings.warn(f"{name}(data=...) is deprecated and will be removed in the next "
                          f"release; pass the panel first: {name}(panel, ...)",
                          FutureWarning, stacklevel=2)
            args = (kwargs.pop("data"),)
        return method(self, *args, **kwargs)

    return wrapper


class BayesianModel:
    """Base of the Bayesian estimators: :meth:`config`, a ``repr`` built from it,
    :meth:`fit_info` (the ``info`` entries every fit records), the priors object and the
    ``fit`` contract."""

    #: the model's frozen priors dataclass (a PositivePriors subclass), if it has priors
    priors_class: type | None = None

    def config(self) -> dict[str, Any]:
        """The model's configuration as plain values (priors as ``priors.to_dict()``)."""
        raise NotImplementedError

    def fit(self, panel, *, draws: int = 1000, tune: int = 1000, chains: int = 4,
            random_seed: int | None = None, progress: bool = True, **kwargs):
        """Sample the posterior of ``panel`` and return a
        :class:`~bayesdid.bayes.result.BayesResult`."""
        raise NotImplementedError

    def _resolve_priors(self, priors, *, renamed: dict[str, str] | None = None,
                        **loose: Any):
        """The priors object from ``priors=`` and the loose prior keywords of before 0.2
        (``None`` when not given; each given one is a FutureWarning naming what to write
        instead; ``renamed`` maps a keyword to its field when the names differ). Called
        from ``__init__``."""
        cls, name = self.priors_class, type(self).__name__
        if priors is not None and not isinstance(priors, cls):
            raise BayesDidError(f"priors must be a {cls.__name__}, got "
                                f"{type(priors).__name__} {priors!r}; write "
                                f"{name}(priors={cls.__name__}(...))")
        given = {k: v for k, v in loose.items() if v is not None}
        if not given:
            return priors if priors is not None else cls()
        if priors is not None:
            raise BayesDidError(f"give the prior scales either in priors= or as the "
                                f"deprecated keywords {sorted(given)}, not both")
        fields = {(renamed or {}).get(k, k): v for k, v in given.items()}
        old = ", ".join(f"{k}={v!r}" for k, v in given.items())
        new = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        warnings.warn(f"{name}({old}) is deprecated and will be removed in the next "
                      f"release; write {name}(priors={cls.__name__}({new}))",
                      FutureWarning, stacklevel=3)
        return replace(cls(), **fields)

    def fit_info(self, *, random_seed: int, draws: int, tune: int, chains: int,
                 **extra: Any) -> dict[str, Any]:
        """The ``info`` entries every fit records: model type, config and its hash, seed,
        draws, tune, chains and the bayesdid version; ``extra`` is added."""
        name = type(self).__name__
        config = self.config()
        return {"model_type": name, "config": config, "config_hash": config_hash(name, config),
                "random_seed": random_seed, "draws": draws, "tune": tune, "chains": chains,
                "bayesdid_version": __version__, **extra}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
