"""The result of a placebo test: the real estimate beside its placebo distribution."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import BayesDidError
from ..results import EffectResult, Result, check_interval, check_level, group_label, tidy_table

__all__ = ["PlaceboResult"]


@dataclass(frozen=True, eq=False, repr=False)
class PlaceboResult(Result):
    """A placebo test: the placebo distribution beside the real estimate.

    A :class:`~bayesdid.results.Result`, not an EffectResult: a distribution of placebo
    estimates around one real estimate (its :meth:`effects` holds both, and the p-values).

    Attributes
    ----------
    kind : one of :data:`KINDS`.
    real : the real estimate (TWFE coefficient of the actual treatment).
    draws : placebo estimates, one per draw (read-only); for ``shifted_timing`` one per
        shift, in the order of ``shifts``.
    real_result : the full fit on the real treatment (standard error, CI).
    shifts, shift_results : for ``shifted_timing``, the shifts and their fits.
    random_seed : the seed that reproduces the draws (drawn fresh and recorded when
        ``None`` was passed).

    :meth:`effects` rows (the tidy table of :mod:`bayesdid.results`):

    * ``att`` / ``overall``: the real estimate with its confidence interval;
    * random kinds: ``placebo`` / ``kind=<kind>``: mean, sd and equal-tailed ``level``
      interval (``interval="eti"``) of the placebo distribution, ``n_obs`` = number of
      draws; ``placebo_p`` / ``kind=<kind>, side=two-sided|greater|less``: the
      randomization p-value -- the share of draws with ``|placebo| >= |real|``
      (two-sided), ``placebo >= real`` (greater) or ``placebo <= real`` (less) -- with
      its Monte Carlo standard error and Clopper-Pearson confidence interval;
    * ``shifted_timing``: ``att_shifted`` / ``shift=k`` for each shift, with an extra
      ``p_value`` column (the fit's t-test).
    """

    kind: str
    real: float
    draws: np.ndarray
    real_result: EffectResult
    method: str
    level: float = 0.95
    random_seed: int | None = None
    shifts: tuple[int, ...] = ()
    shift_results: tuple[EffectResult, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        draws = np.array(self.draws, dtype=float)
        draws.setflags(write=False)
        object.__setattr__(self, "draws", draws)

    @property
    def n_draws(self) -> int:
        """Placebo draws with a finite estimate."""
        return int(np.isfinite(self.draws).sum())

    def _finite(self) -> np.ndarray:
        if self.kind == "shifted_timing":
            raise BayesDidError("a shifted-timing placebo has no randomization p-value; "
                                "read the shifted fits' p-values in effects()")
        return self.draws[np.isfinite(self.draws)]

    @property
    def p_value(self) -> float:
        """Two-sided randomization p-value: share of draws with ``|placebo| >= |real|``."""
        d = self._finite()
        return float(np.mean(np.abs(d) >= abs(self.real) - _tie(self.real)))

    @property
    def p_value_greater(self) -> float:
        """One-sided: share of draws with ``placebo >= real``."""
        d = self._finite()
        return float(np.mean(d >= self.real - _tie(self.real)))

    @property
    def p_value_less(self) -> float:
        """One-sided: share of draws with ``placebo <= real``."""
        d = self._finite()
        return float(np.mean(d <= self.real + _tie(self.real)))

    def effects(self, level: float | None = None, interval: str | None = None) -> pd.DataFrame:
        """The tidy effects table (rows described in the class docstring) at ``level``
        (default the level of the test): the real fit's interval is recomputed from its
        standard error, the placebo interval and the p-value intervals from the draws.
        ``interval`` may be None, ``"confidence"`` or ``"eti"`` (the kinds it gives)."""
        check_level(level)
        check_interval(self, interval, ("confidence",) if self.kind == "shifted_timing"
                       else ("confidence", "eti"))
        level = self.level if level is None else level
        rows = [dict(_att_row(self.real_result, level))]
        if self.kind == "shifted_timing":
            rows[0]["p_value"] = _t_pvalue(rows[0], self.real_result.info.get("df"))
            for k, res in zip(self.shifts, self.shift_results):
                row = dict(_att_row(res, level))
                row.update(estimand="att_shifted", group=group_label(shift=k),
                           p_value=_t_pvalue(row, res.info.get("df")))
                rows.append(row)
            return tidy_table(rows)
        d, n = self._finite(), self.n_draws
        alpha = 1 - level
        kind = group_label(kind=self.kind)
        rows.append(dict(estimand="placebo", group=kind, estimate=float(d.mean()),
                         se_or_sd=float(d.std(ddof=1)) if n > 1 else np.nan,
                         lower=float(np.quantile(d, alpha / 2)),
                         upper=float(np.quantile(d, 1 - alpha / 2)), level=level,
                         interval="eti", method=f"placebo_{self.method}", n_obs=n))
        for side, p in (("two-sided", self.p_value), ("greater", self.p_value_greater),
                        ("less", self.p_value_less)):
            ci = stats.binomtest(round(p * n), n).proportion_ci(level)
            rows.append(dict(estimand="placebo_p", group=group_label(kind=self.kind, side=side),
                             estimate=p, se_or_sd=float(np.sqrt(p * (1 - p) / n)),
                             lower=float(ci.low), upper=float(ci.high), level=level,
                             interval="confidence", method=f"placebo_{self.method}", n_obs=n))
        return tidy_table(rows)

    def plot(self, ax=None, **kwargs):
        """Density of the placebo estimates with the real one marked (see
        :func:`bayesdid.report.placebo_plots.placebo_plot`)."""
        from ..report.placebo_plots import placebo_plot

        return placebo_plot(self, ax=ax, **kwargs)

    def _describe(self) -> str:
        return (f"kind={self.kind!r} method={self.method!r} real={self.real:.4g} "
                f"draws={self.draws.size}")


def _att_row(result: EffectResult, level: float) -> pd.Series:
    """The ``att``/``overall`` row of ``result`` at ``level``."""
    table = result.effects(level=level)
    hit = table[(table["estimand"] == "att") & (table["group"] == "overall")]
    if hit.empty:
        raise KeyError("no effect ('att', 'overall') in the real or shifted fit")
    return hit.iloc[0]


def _tie(real: float) -> float:
    """Tolerance so that a draw reproducing the real assignment counts as 'as extreme'."""
    return 1e-12 * (1.0 + abs(real))


def _t_pvalue(row: Mapping, dof) -> float:
    se = row["se_or_sd"]
    if not np.isfinite(se) or se <= 0:
        return np.nan
    t = abs(row["estimate"] / se)
    return float(2 * (stats.t.sf(t, dof) if dof else stats.norm.sf(t)))
