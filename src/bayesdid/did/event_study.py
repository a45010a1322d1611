"""Classical event study: leads and lags of adoption with unit and period fixed effects."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import BayesDidError
from ..fixed_effects import DEFAULT_FE, parse_fe
from ..panel import LogEntry, Panel
from ..results import EffectResult, group_label
from ._fixest import coef_rows, fe_info, feols, fit_df, resolve, safe_name, work_frame
from ..staggered.estimators import check_window, fit_window


EVENT = "rel_time"  # the event-time factor of the regression (coefficients rel_time::k)


def event_study(panel: Panel, *, leads: int = 6, lags: int = 8, bin_ends: bool = True,
                ref: int = -1, fe: str | None = DEFAULT_FE,
                covariates: str | Sequence[str] | None = None,
                cluster: str | None = None, weights: str | None = None,
                level: float = 0.95, data: pd.DataFrame | None = None) -> EffectResult:
    """TWFE event study ``y ~ sum_k 1[t - cohort = k] + X | fe`` (pyfixest, CRV1).

    ``fe`` takes pyfixest syntax (default ``"unit + time"``; e.g. ``"city + province^year"``,
    ``None`` for none; see :mod:`bayesdid.fixed_effects`), ``covariates`` a list or a
    formula string, ``data`` a frame with further FE columns. The pyfixest fit is kept as
    ``result.fit`` (``pf.iplot([res.fit])``, ``pf.etable``).

    Relative times run from ``-leads`` to ``lags`` with ``ref`` omitted. With
    ``bin_ends=True`` (the seeds' design) earlier leads are binned into ``-leads`` and later
    lags into ``lags``; otherwise observations outside the window are dropped (reported in
    ``info['dropped_rows']``). Never-treated units have every dummy at zero.

    A window wider than the data (``leads`` beyond the earliest observed relative period
    or ``lags`` beyond the latest) is narrowed to the observed range, logged at WARNING;
    ``info['leads']``/``info['lags']`` hold the window used and ``info['window_asked']``
    the one asked for (the estimates are those of the narrowed window, with or without
    binning: an end bin beyond the data holds no observations).

    Examples
    --------
    >>> from bayesdid import Panel
    >>> from bayesdid.datasets import load, info
    >>> panel = Panel.from_frame(load("castle"), **info("castle")["panel_kwargs"])
    >>> es = event_study(panel, leads=4, lags=4)
    >>> es.effects()["group"].tolist()[:3]
    ['k=-4', 'k=-3', 'k=-2']
    """
    check_window(leads, lags)
    if isinstance(ref, bool) or not isinstance(ref, (int, np.integer)):
        raise BayesDidError(f"ref must be an integer relative period, got {ref!r}")
    if not -leads <= ref <= lags:
        raise BayesDidError(f"ref={ref} lies outside the window [-{leads}, {lags}]")
    covs, cluster, weights = resolve(panel, covariates, cluster, weights)
    parse_fe(panel, fe, data)  # validate before any work
    asked = (leads, lags)
    leads, lags = fit_window(panel, leads, lags, "event_study")
    if not -leads <= ref <= lags:
        raise BayesDidError(f"ref={ref} lies outside the relative periods observed in the data "
                            f"[-{leads}, {lags}]", column="rel_time",
                            hint="choose ref among the observed relative periods, e.g. -1")
    rel = panel.frame["rel_time"].astype("float").to_numpy()
    dropped = 0
    if bin_ends:
        rel = np.where(np.isnan(rel), np.nan, np.clip(rel, -leads, lags))
    else:
        outside = ~np.isnan(rel) & ((rel < -leads) | (rel > lags))
        dropped = int(outside.sum())
        if dropped:
            keep = panel.frame.loc[~outside]
            panel = panel.with_frame(keep, LogEntry("event_study", f"dropped {dropped} rows "
                                                    "outside the event window", dropped))
            rel = rel[~outside]
    ks = [k for k in range(-leads, lags + 1) if k != ref]
    counts = {k: int((rel == k).sum()) for k in ks}
    present = [k for k in ks if counts[k]]
    # one event-time factor in pyfixest's i() syntax (so that pf.iplot works on .fit);
    # never-treated rows sit in the reference category, i.e. every dummy is zero for them
    event = np.where(np.isnan(rel), ref, rel).astype(np.int64)
    spec = parse_fe(panel, fe, data)
    work, cov_names = work_frame(panel, {EVENT: event}, covs, cluster, weights, spec,
                                 depvar=safe_name(panel.outcome))
    fit = feols(work, [f"i({EVENT}, ref={ref})", *cov_names], weights)
    names = {f"{EVENT}::{k}": ("event_time", group_label(k=k)) for k in present}
    rows = coef_rows(fit, names, level, "event_study",
                     {f"{EVENT}::{k}": counts[k] for k in present})
    info = {"leads": leads, "lags": lags, "window_asked": asked, "ref": ref, "bin_ends": bin_ends,
            "dropped_rows": dropped, **fe_info(spec), "vcov": f"CRV1 by {cluster}",
            "df": fit_df(fit),
            "omitted_collinear": [label for n, (_, label) in names.items()
                                  if n not in fit.coef().index]}
    return EffectResult.from_rows(rows, method="event_study", info=info, fit=fit)
