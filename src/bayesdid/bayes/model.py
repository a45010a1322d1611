"""BayesianModel: what every Bayesian estimator shares (config, repr, the fit contract).

A model is configured in its constructor, says what it is through :meth:`config` (a dict of
plain values, priors as ``priors.to_dict()``; it is hashed into ``info["config_hash"]`` so
that :meth:`BayesResult.load <bayesdid.bayes.result.BayesResult.load>` can refuse a file
fitted with another configuration), and samples with
``fit(data, *, draws, tune, chains, random_seed, progress, ...)``, returning a
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

from typing import Any

from .. import __version__
from .result import config_hash

__all__ = ["BayesianModel", "FIT_KEYWORDS"]

# keyword arguments every model's fit takes (after the data)
FIT_KEYWORDS = ("draws", "tune", "chains", "random_seed", "progress")


class BayesianModel:
    """Base of the Bayesian estimators: :meth:`config`, a ``repr`` built from it,
    :meth:`fit_info` (the ``info`` entries every fit records) and the ``fit`` contract."""

    def config(self) -> dict[str, Any]:
        """The model's configuration as plain values (priors as ``priors.to_dict()``)."""
        raise NotImplementedError

    def fit(self, data, *, draws: int = 1000, tune: int = 1000, chains: int = 4,
            random_seed: int | None = None, progress: bool = True, **kwargs):
        """Sample the posterior of ``data`` and return a
        :class:`~bayesdid.bayes.result.BayesResult`."""
        raise NotImplementedError

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
