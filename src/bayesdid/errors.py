"""Typed errors raised by bayesdid.

Every error is a ``ValueError`` subclass, names the offending column and, where rows are
at fault, shows them. Catch :class:`BayesDidError` to catch them all.

Two warnings live here too: :class:`ConvergenceWarning` (a Bayesian fit failed its
R-hat / ESS / divergence checks) and :class:`DesignIgnoredWarning` (a Bayesian model does
not use the panel's ``cluster`` or ``weights``).
"""

from __future__ import annotations

import pandas as pd

__all__ = [
    "BayesDidError",
    "ModelCheckWarning",
    "ColumnError",
    "DuplicateRowsError",
    "MissingValueError",
    "NonFiniteValueError",
    "NonPositiveValueError",
    "TimeColumnError",
    "TreatmentError",
    "DesignError",
    "WeightsError",
    "EmptyPanelError",
    "PolicyListError",
    "SpecError",
    "FileFormatError",
    "ModelMismatchError",
    "ComparisonError",
    "IntervalError",
    "DatasetError",
    "EstimationError",
    "ConvergenceError",
    "SeparationError",
    "InfeasibleError",
    "MatchingError",
    "ClusterError",
    "ConvergenceWarning",
    "DesignIgnoredWarning",
]

_MAX_ROWS_SHOWN = 10


def _show(rows: pd.DataFrame | None) -> str:
    if rows is None or len(rows) == 0:
        return ""
    shown = rows.head(_MAX_ROWS_SHOWN).to_string()
    more = len(rows) - _MAX_ROWS_SHOWN
    tail = f"\n... and {more} more row(s)" if more > 0 else ""
    return f"\nOffending rows ({len(rows)}):\n{shown}{tail}"


class BayesDidError(ValueError):
    """Base class: a user-facing input or configuration problem.

    Attributes
    ----------
    column : the column at fault, when there is one.
    rows : the offending rows (a copy), when there are any.
    """

    def __init__(self, message: str, *, column: str | None = None,
                 rows: pd.DataFrame | None = None, hint: str | None = None):
        self.column = column
        self.rows = None if rows is None else rows.copy()
        self.message, self.hint = message, hint
        text = message
        if hint:
            text += f"\nHint: {hint}"
        text += _show(rows)
        super().__init__(text)


class ColumnError(BayesDidError):
    """A column is unknown, or has the wrong type."""


class DuplicateRowsError(BayesDidError):
    """The same (unit, time) pair appears more than once."""


class MissingValueError(BayesDidError):
    """A required value is missing (NaN/None)."""


class NonFiniteValueError(BayesDidError):
    """A numeric value is +/-inf."""


class NonPositiveValueError(ColumnError):
    """A value that must be logged (or divided by) is zero or negative."""


class TimeColumnError(BayesDidError):
    """The time column has missing values, values that are not periods (integers, dates or
    Periods at yearly, quarterly or monthly frequency), dates that fit no such frequency,
    or a single period."""


class TreatmentError(BayesDidError):
    """The treatment assignment is not a valid staggered-adoption design."""


class DesignError(BayesDidError):
    """The design cannot identify the effect (no comparison cells, no pre-period...)."""


class WeightsError(BayesDidError):
    """Weights are negative, missing or non-finite."""


class EmptyPanelError(BayesDidError):
    """The frame has no rows."""


class PolicyListError(BayesDidError):
    """A policy list is malformed or names units that are not in the panel."""


class SpecError(BayesDidError):
    """A study specification has an unknown key or a value of the wrong type."""


class FileFormatError(BayesDidError):
    """A data file has a suffix bayesdid cannot read, or its reader failed on it."""


class ModelMismatchError(BayesDidError):
    """A saved result does not match the model asked to load it."""


class IntervalError(BayesDidError):
    """``effects(level=, interval=)`` asked for an interval level or kind the result cannot
    give; the message names the ones it can."""


class ComparisonError(BayesDidError):
    """Results cannot be compared or plotted side by side (none given, wrong type, bad labels)."""


class DatasetError(BayesDidError, KeyError):
    """A shipped dataset is unknown, or its file cannot be found.

    Also a ``KeyError``, so ``except KeyError`` around a dataset lookup works too.
    """

    def __str__(self) -> str:  # KeyError would otherwise show the repr of the message
        return BaseException.__str__(self)


class EstimationError(BayesDidError):
    """The data are valid but the estimation cannot be carried out; the message says what to try."""


class ConvergenceError(EstimationError):
    """An optimiser (e.g. an MLE) did not converge."""


class SeparationError(EstimationError):
    """A binary-outcome model (e.g. a propensity logit) is perfectly separated."""


class InfeasibleError(EstimationError):
    """A linear programme (e.g. a DEA model) is infeasible or unbounded."""


class MatchingError(EstimationError):
    """Matching found no usable matches (e.g. none within the caliper)."""


class ClusterError(BayesDidError):
    """A Dask cluster cannot be reached or fails while running replications."""


# warnings (not errors): defined here so that anything can filter or catch them cheaply
class ConvergenceWarning(RuntimeWarning):
    """Sampler diagnostics suggest the posterior was not explored reliably."""


class ModelCheckWarning(UserWarning):
    """Posterior predictive checks flag a feature of the data the model does not capture."""


class DesignIgnoredWarning(UserWarning):
    """A Bayesian model ignores the panel's ``cluster`` or ``weights`` column."""
