"""Event-study coefficients and their covariance, the input of the Rambachan & Roth
sensitivity analysis (:func:`~bayesdid.did.honest_did.honest_did`): a refit of
:func:`~bayesdid.classical.sun_abraham`'s or :func:`~bayesdid.did.event_study`'s regression
through pyfixest that keeps the covariance matrix of the event-time coefficients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import BayesDidError, DesignError
from ..panel import LogEntry, Panel
from ..results import Result, check_interval, check_level, group_label, tidy_table
from ._fixest import feols, fit_vcov, resolve, work_frame

__all__ = ["EventStudyCoefficients", "event_study_coefficients"]


@dataclass(frozen=True, eq=False, repr=False)
class EventStudyCoefficients(Result):
    """Event-time coefficients (reference ``k = -1`` left out) and their covariance.

    A :class:`~bayesdid.results.Result`, not an EffectResult: the input of HonestDiD, the
    coefficients with their full covariance (:meth:`effects` gives them as event-time rows).
    """

    event_times: np.ndarray
    beta: np.ndarray
    sigma: np.ndarray
    method: str
    n_obs: np.ndarray | None = None

    def se(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.sigma), 0.0, None))

    def effects(self, level: float | None = None, interval: str | None = None) -> pd.DataFrame:
        """One ``event_time`` row per coefficient (group ``k=...``) with its standard error
        and a normal confidence interval at ``level`` (default 0.95)."""
        check_level(level)
        check_interval(self, interval, ("confidence",))
        level = 0.95 if level is None else level
        se = self.se()
        z = stats.norm.ppf(0.5 + level / 2)
        n_obs = [None] * len(self.beta) if self.n_obs is None else list(self.n_obs)
        return tidy_table([
            {"estimand": "event_time", "group": group_label(k=int(k)), "estimate": float(b),
             "se_or_sd": float(s), "lower": float(b - z * s), "upper": float(b + z * s),
             "level": level, "interval": "confidence", "method": self.method, "n_obs": n}
            for k, b, s, n in zip(self.event_times, self.beta, se, n_obs)])

    def _describe(self) -> str:
        ks = np.asarray(self.event_times)
        span = f"k={int(ks.min())}..{int(ks.max())}" if ks.size else "k=none"
        return f"method={self.method!r} coefficients={ks.size} ({span})"

    def plot(self, ax=None, **kwargs):
        """The event-study plot of the coefficients (see
        :func:`bayesdid.report.plots.event_study_plot`). Returns a Figure."""
        from ..report.plots import event_study_plot

        kwargs.setdefault("level", None)
        return event_study_plot(self, ax=ax, **kwargs)


def event_study_coefficients(panel: Panel, *, leads: int = 6, lags: int = 8,
                             estimator: str = "sun_abraham", bin_ends: bool = True,
                             covariates: Sequence[str] | None = None,
                             cluster: str | None = None) -> EventStudyCoefficients:
    """Event-study coefficients ``k = -leads .. lags`` (``k != -1``) with their CRV1
    covariance, refitted through pyfixest.

    ``estimator="sun_abraham"``: the interaction-weighted estimates of
    :func:`~bayesdid.classical.sun_abraham` (saturated cohort x event-time regression,
    cohort-share weights) and the delta-method covariance ``W V W'`` of the aggregates.
    ``estimator="event_study"``: the TWFE leads/lags of
    :func:`~bayesdid.did.event_study` (``ref=-1``; ``bin_ends`` as there) and the
    regression's covariance of those coefficients. Estimates and standard errors equal
    those functions' (tested).

    >>> from bayesdid.datasets import simulate_staggered
    >>> sim = simulate_staggered(n_units=60, years=(2005, 2012), batches={2007: 10, 2009: 10},
    ...                          n_covariates=0, random_seed=3)
    >>> es = event_study_coefficients(Panel.from_frame(sim.data, **sim.panel_kwargs),
    ...                               leads=3, lags=2)
    >>> es.event_times.tolist(), es.sigma.shape
    ([-3, -2, 0, 1, 2], (5, 5))
    """
    for name, value in (("leads", leads), ("lags", lags)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise BayesDidError(f"{name} must be an integer, got {value!r}")
    if leads < 2 or lags < 0:
        raise BayesDidError(f"need leads >= 2 (at least one lead besides the reference k=-1) "
                            f"and lags >= 0, got leads={leads}, lags={lags}")
    if estimator not in ("sun_abraham", "event_study"):
        raise BayesDidError(f"estimator must be 'sun_abraham' or 'event_study', got {estimator!r}")
    covs, cluster, _ = resolve(panel, covariates, cluster, None)
    f = panel.frame
    rel = f["rel_time"].astype("float").to_numpy()
    ks = [k for k in range(-leads, lags + 1) if k != -1]
    if estimator == "event_study":
        if bin_ends:
            rel = np.where(np.isnan(rel), np.nan, np.clip(rel, -leads, lags))
        else:
            outside = ~np.isnan(rel) & ((rel < -leads) | (rel > lags))
            if outside.any():
                panel = panel.with_frame(f.loc[~outside], LogEntry(
                    "honest_did", f"dropped {int(outside.sum())} rows outside the window",
                    int(outside.sum())))
                rel = rel[~outside]
        regs = {f"es_{_kname(k)}__": (rel == k).astype(float) for k in ks}
        regs = {n: c for n, c in regs.items() if c.any()}
        work, cov_names = work_frame(panel, regs, covs, cluster, None)
        fit = feols(work, [*regs, *cov_names], None)
        names = list(fit.coef().index)
        keep = [(k, names.index(f"es_{_kname(k)}__")) for k in ks
                if f"es_{_kname(k)}__" in names]
        idx = [i for _, i in keep]
        beta = fit.coef().to_numpy(float)[idx]
        vcov = fit_vcov(fit).to_numpy()[np.ix_(idx, idx)]
        n_obs = np.array([int((rel == k).sum()) for k, _ in keep])
        return EventStudyCoefficients(np.array([k for k, _ in keep]), beta, vcov,
                                      "event_study", n_obs)

    if not f["never_treated"].any():
        raise DesignError("sun_abraham needs never-treated units as the control", column="cohort")
    cohort = f["cohort"].astype("float").to_numpy()
    is_cell = ~np.isnan(cohort) & (rel != -1)
    cells = (pd.DataFrame({"g": cohort[is_cell], "k": rel[is_cell]}).astype(int)
             .value_counts().sort_index())
    if cells.empty:
        raise DesignError("no treated cohort x event-time cells", column="cohort")
    regs, cell_of = {}, {}
    for g, k in cells.index:
        name = f"sa_g{g}_{_kname(k)}__"
        regs[name] = ((cohort == g) & (rel == k)).astype(float)
        cell_of[name] = (int(g), int(k))
    work, cov_names = work_frame(panel, regs, covs, cluster, None)
    with np.errstate(invalid="ignore"):  # an exact fit can give vcov diagonals of -1e-20
        fit = feols(work, [*regs, *cov_names], None)
    b = fit.coef().to_numpy(float)
    V = fit_vcov(fit).to_numpy()
    est = {cell_of[n]: i for i, n in enumerate(fit.coef().index) if n in cell_of}
    rows, kept, n_obs = [], [], []
    for k in ks:
        members = [c for c in cells.index if c[1] == k and c in est]
        if not members:
            continue
        n = np.array([cells[c] for c in members], float)
        w = np.zeros(len(b))
        w[[est[c] for c in members]] = n / n.sum()
        rows.append(w)
        kept.append(k)
        n_obs.append(int(n.sum()))
    W = np.vstack(rows)
    return EventStudyCoefficients(np.array(kept), W @ b, W @ V @ W.T, "sun_abraham",
                                  np.array(n_obs))


def _kname(k: int) -> str:
    return f"{'m' if k < 0 else 'p'}{abs(int(k))}"
