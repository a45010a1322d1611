"""Stated, not silent: a Bayesian model that ignores ``panel.cluster`` or ``panel.weights`` says so.

No Bayesian model in bayesdid clusters: its intervals are model-based (the error model of the
likelihood, e.g. AR(1) within unit), not cluster-robust, and panel weights enter no
likelihood (``HierarchicalDiD`` uses them only to weight the averages of cell effects it
reports). Each ``fit`` calls :func:`warn_ignored_design` first: one
:class:`DesignIgnoredWarning` per fit naming every ignored column, pointing at the caller's
line. Python's default warning filter then shows it once per calling line and message, so a
loop of refits says it once.

>>> import warnings
>>> from types import SimpleNamespace
>>> panel = SimpleNamespace(cluster="city", weights=None)
>>> with warnings.catch_warnings(record=True) as seen:
...     warnings.simplefilter("always")
...     ignored = warn_ignored_design(SimpleNamespace(errors="ar1"), panel, "HierarchicalDiD")
>>> ignored, seen[0].category.__name__
({'cluster': 'city'}, 'DesignIgnoredWarning')
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from ..errors import DesignIgnoredWarning

__all__ = ["DesignIgnoredWarning", "warn_ignored_design", "inference_of",
           "inference_from_info"]

_PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "")
_ERRORS = {"iid": "iid Gaussian errors", "ar1": "AR(1) errors within unit",
           "student_t": "Student-t errors"}
# per model: where its intervals come from, and what it does with panel weights
_INFERENCE = {
    "BayesianMediation": "iid Gaussian errors after the two-way fixed effects",
    "BayesianSFA": "iid noise and inefficiency terms",
    "BayesianSyntheticControl": "the pre-period fit's noise, iid over time",
    "BayesianRegressionControl": "the pre-period fit's noise, iid over time",
    "BayesianFactorDiD": "iid noise around unit, period and latent-factor effects",
}
_WEIGHTS: dict[str, str] = {}
# models whose likelihood reads panel.weights (as precision weights): nothing to warn about
_USES_WEIGHTS = frozenset({"HierarchicalDiD"})


def inference_of(name: str | None, errors: str | None = None) -> str:
    """Where a model's intervals come from, in words, from its class name (and
    ``errors`` for HierarchicalDiD).

    >>> inference_of("HierarchicalDiD", "ar1")
    'AR(1) errors within unit'
    """
    if name == "HierarchicalDiD":
        return _ERRORS.get(errors, f"{errors} errors")
    return _INFERENCE.get(name, "the model's likelihood")


def inference_from_info(info: Any) -> str | None:
    """:func:`inference_of` for a fitted result's ``info`` (``model_type``, ``config``);
    None when the info names no model bayesdid knows (e.g. a derived result)."""
    info = info or {}
    name = info.get("model_type")
    if name != "HierarchicalDiD" and name not in _INFERENCE:
        return None
    config = info.get("config") or {}
    if not isinstance(config, dict):
        return inference_of(name)
    robust = info.get("robust")
    if config.get("robust") and robust and not str(robust).startswith("model-based"):
        return str(robust)  # e.g. "cluster-robust sandwich (clusters: city)"
    return inference_of(name, config.get("errors"))


def warn_ignored_design(model: Any, data: Any, name: str | None = None) -> dict[str, str]:
    """Warn (:class:`DesignIgnoredWarning`, once per call) when ``data`` (a Panel) has a
    ``cluster`` or ``weights`` column that ``model`` does not use in its likelihood; return
    ``{"cluster": col, "weights": col}`` for what was ignored (empty if nothing).

    ``data`` that is not a Panel (a DataFrame, a DonorPool) carries neither, so nothing is
    said. ``name`` defaults to the model's class name.
    """
    name = name or type(model).__name__
    cluster, weights = getattr(data, "cluster", None), getattr(data, "weights", None)
    ignored: dict[str, str] = {}
    parts = []
    if cluster:
        ignored["cluster"] = str(cluster)
        parts.append(f"{name} ignores panel.cluster={cluster!r}: its intervals are "
                     f"model-based ({inference_of(name, getattr(model, 'errors', None))}), "
                     "not cluster-robust")
    if weights and name not in _USES_WEIGHTS:
        ignored["weights"] = str(weights)
        use = _WEIGHTS.get(name, "are not used by this model (every observation counts once)")
        parts.append(("" if parts else f"{name}: ") + f"panel.weights={weights!r} {use}")
    if parts:
        warnings.warn("; ".join(parts) + ".", DesignIgnoredWarning,
                      skip_file_prefixes=(_PACKAGE_DIR,))
    return ignored
