"""Three-step mediation (the seeds' mechanism analysis) with a cluster-bootstrap indirect effect.

For each mediator ``M`` (energy structure, technical progress, labour productivity...),
three TWFE regressions with unit and time fixed effects and the same controls ``X``::

    (1) y = c  D            + X g1 + unit + time + e1      total effect c
    (2) M = a  D            + X g2 + unit + time + e2      effect on the mediator a
    (3) y = c' D + b M      + X g3 + unit + time + e3      direct effect c', mediator effect b

The indirect effect is ``a * b`` (for OLS with the same sample and controls,
``c = c' + a * b`` exactly). Its confidence interval is a percentile cluster bootstrap
(default 500 draws, resampling clusters -- by default units -- with replacement); the Sobel
(delta-method) test is reported beside it in ``info["sobel"]``.

A bootstrap draw is a frequency-weighted TWFE fit on the original rows, each unit weighted
by how often its cluster was drawn. That is exactly the relabelled cluster bootstrap
(duplicated units get their own fixed effects, which equal each other), without building
the resampled frame: each draw is one weighted two-way demeaning (pyfixest's alternating
projections) and a few small solves.

Mediators may be columns of the panel or come from ``data=``, any frame with the panel's
unit and time columns (e.g. the frame the panel was built from).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .. import _validate as v
from ..errors import (
    BayesDidError,
    ColumnError,
    DesignError,
    DuplicateRowsError,
    EstimationError,
    MissingValueError,
    NonFiniteValueError,
)
from ..panel import Panel
from ..parallel import run_replications
from ..results import EffectResult, group_label
from ..did._fixest import CL, W, Y, coef_rows, fe_codes, feols, fit_df, resolve, work_frame

__all__ = ["mediation", "panel_columns"]

logger = logging.getLogger(__name__)

D = "treated__"
CHUNK = 25  # bootstrap draws per task; fixed so that the numbers never depend on the backend


def panel_columns(panel: Panel, columns: Sequence[str], data: pd.DataFrame | None = None, *,
                  role: str = "mediator") -> pd.DataFrame:
    """Numeric columns aligned row by row with ``panel.frame``.

    Taken from the panel itself, or from ``data`` (a frame with the panel's unit and time
    columns) matched on (unit, time). Missing values raise :class:`MissingValueError`
    showing the rows, so a mediator or matching covariate never silently drops rows.

    Examples
    --------
    >>> from bayesdid.datasets import simulate_staggered
    >>> sim = simulate_staggered(n_units=20, years=(2005, 2010), batches={2007: 5},
    ...                          random_seed=1)
    >>> panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    >>> extra = sim.data[["city", "year"]].assign(m=1.0)
    >>> panel_columns(panel, ["m"], extra).shape
    (120, 1)
    """
    if isinstance(columns, str):
        raise ColumnError(f"{role}s take a list of column names, not a string",
                          column=columns, hint=f"write [{columns!r}]")
    columns = list(dict.fromkeys(columns))
    if not columns:
        raise DesignError(f"no {role} columns given")
    frame = panel.frame
    unit, time = panel.unit, panel.time
    if data is None:
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise ColumnError(
                f"{role} column {absent[0]!r} is not in the panel", column=absent[0],
                hint=f"pass data=df, a frame with {unit!r}, {time!r} and the {role} columns "
                     "(e.g. the frame the panel was built from)")
        out = frame[[unit, time, *columns]].copy()
    else:
        if not isinstance(data, pd.DataFrame):
            raise BayesDidError(f"data must be a pandas DataFrame, got {type(data).__name__}")
        v.check_columns_exist(data, {"unit": unit, "time": time,
                                     **{f"{role}s[{i}]": c for i, c in enumerate(columns)}})
        extra = data[[unit, time, *columns]].copy()
        extra[time] = pd.to_numeric(extra[time], errors="coerce")
        dup = extra.duplicated([unit, time], keep=False)
        if dup.any():
            raise DuplicateRowsError(
                f"data has {int(dup.sum())} rows sharing a ({unit!r}, {time!r}) pair",
                column=unit, rows=extra.loc[dup], hint="keep one row per unit and period")
        out = frame[[unit, time]].merge(extra, on=[unit, time], how="left")
        out.index = frame.index
    for col in columns:
        raw = out[col]
        values = pd.to_numeric(raw, errors="coerce") if not pd.api.types.is_bool_dtype(raw) \
            else raw.astype(float)
        bad = out.loc[values.isna() & raw.notna()]
        if len(bad):
            raise ColumnError(f"{role} column {col!r} must be numeric", column=col, rows=bad)
        missing = out.loc[values.isna(), [unit, time, col]]
        if len(missing):
            raise MissingValueError(
                f"{role} {col!r} has {len(missing)} missing value(s) in panel rows",
                column=col, rows=missing,
                hint="impute them (e.g. interpolate within unit) or drop these units/periods "
                     "from the panel first; bayesdid never drops rows silently")
        if not np.isfinite(values.to_numpy(float)).all():
            raise NonFiniteValueError(f"{role} {col!r} has infinite values", column=col,
                                      rows=out.loc[~np.isfinite(values.to_numpy(float))])
        out[col] = values.astype(float)
    return out[columns]


def _controls(panel: Panel, mediators: list[str], covariates) -> tuple[str, ...]:
    if covariates is None:
        return tuple(c for c in panel.covariates if c not in mediators)
    covs = tuple(covariates)
    both = [c for c in covs if c in mediators]
    if both:
        raise DesignError(f"{both[0]!r} is both a mediator and a control", column=both[0],
                          hint="a mediator cannot also be a control: drop it from covariates=")
    return covs


def mediation(panel: Panel, mediators: Sequence[str], *, data: pd.DataFrame | None = None,
              covariates: Sequence[str] | None = None, cluster: str | None = None,
              weights: str | None = None, joint: bool = False, n_boot: int = 500,
              level: float = 0.95, random_seed: int | None = None, progress: bool = True,
              workers: int = 1, client=None) -> EffectResult:
    """Three-step mediation with a cluster-bootstrap CI of the indirect effect ``a * b``.

    Parameters
    ----------
    mediators : mediator columns (in the panel, or in ``data``).
    data : optional frame with the panel's unit and time columns holding the mediators.
    covariates : controls in all three equations; default the panel's covariates (minus
        any mediator).
    cluster, weights : as in :func:`~bayesdid.did.twfe.twfe` (CRV1 by the unit by
        default); the bootstrap resamples the clusters.
    joint : also fit ``y ~ D + M_1 + ... + M_k`` with all mediators together.
    n_boot : bootstrap draws (0: Sobel normal interval instead).
    random_seed : seed of the bootstrap; same seed, same draws, whatever ``workers`` or
        ``client`` (draws are made in fixed chunks of 25, each with its own child seed).
    progress : a progress bar over the bootstrap chunks.
    workers, client : passed to :func:`bayesdid.parallel.run_replications`.

    Returns
    -------
    EffectResult with, per mediator (group ``"mediator=<name>"``), estimands ``total``,
    ``a``, ``b``, ``direct`` (c') and ``indirect`` (a*b; bootstrap sd and percentile
    interval). With ``joint=True`` also rows ``a``, ``b``, ``indirect`` with group
    ``"mediator=<name>, model=joint"`` and ``total``, ``direct``, ``indirect`` (the sum)
    with group ``"mediator=all, model=joint"``. ``info["sobel"]`` holds the Sobel test,
    ``info["bootstrap_draws"]`` the indirect-effect draws.

    Examples
    --------
    >>> from bayesdid.datasets import simulate_staggered
    >>> sim = simulate_staggered(n_units=40, years=(2005, 2012), batches={2008: 10},
    ...                          random_seed=3)
    >>> rng = np.random.default_rng(0)
    >>> df = sim.data.assign(m=lambda d: 0.5 * d["treated"] + rng.normal(size=len(d)))
    >>> panel = Panel.from_frame(df, **sim.panel_kwargs)
    >>> res = mediation(panel, ["m"], data=df, n_boot=50, random_seed=1, progress=False)
    >>> est = res.effects().set_index("estimand")["estimate"]
    >>> bool(abs(est["total"] - est["direct"] - est["indirect"]) < 1e-10)
    True
    """
    if not isinstance(n_boot, (int, np.integer)) or isinstance(n_boot, bool) or n_boot < 0:
        raise BayesDidError(f"n_boot must be an integer >= 0, got {n_boot!r}")
    if not 0 < level < 1:
        raise BayesDidError(f"level must be in (0, 1), got {level!r}")
    if not isinstance(panel, Panel):
        raise BayesDidError(f"expected a bayesdid Panel, got {type(panel).__name__}")
    meds = panel_columns(panel, mediators, data, role="mediator")
    names = list(meds.columns)
    covs, cluster, weights = resolve(panel, _controls(panel, names, covariates), cluster,
                                     weights)
    work, cov_names = work_frame(panel, {D: panel.frame["treated"].to_numpy(float)}, covs,
                                 cluster, weights)
    m_cols = [f"m{j}__" for j in range(len(names))]
    for col, name in zip(m_cols, names):
        work[col] = meds[name].to_numpy(float)

    fit_total = feols(work, [D, *cov_names], weights)
    total = coef_rows(fit_total, {D: ("total", "")}, level, "mediation", {})[0]
    rows, sobel, a_of = [], {}, {}
    for col, name in zip(m_cols, names):
        grp = group_label(mediator=name)
        fit_a = feols(work.assign(**{Y: work[col]}), [D, *cov_names], weights)
        fit_y = feols(work, [D, col, *cov_names], weights)
        a_row = coef_rows(fit_a, {D: ("a", grp)}, level, "mediation", {})[0]
        b_row, c_row = coef_rows(fit_y, {col: ("b", grp), D: ("direct", grp)}, level,
                                 "mediation", {})
        a_of[name] = a_row
        sobel[grp] = _sobel(a_row, b_row)
        rows += [dict(total, group=grp), a_row, b_row, c_row,
                 _indirect_row(grp, a_row["estimate"] * b_row["estimate"], level, total)]
    if joint:
        fit_j = feols(work, [D, *m_cols, *cov_names], weights)
        all_grp = group_label(mediator="all", model="joint")
        effect_sum = 0.0
        for col, name in zip(m_cols, names):
            grp = group_label(mediator=name, model="joint")
            a_row = dict(a_of[name], group=grp)
            b_row = coef_rows(fit_j, {col: ("b", grp)}, level, "mediation", {})[0]
            sobel[grp] = _sobel(a_row, b_row)
            effect_sum += a_row["estimate"] * b_row["estimate"]
            rows += [a_row, b_row,
                     _indirect_row(grp, a_row["estimate"] * b_row["estimate"], level, total)]
        rows += [dict(total, group=all_grp),
                 *coef_rows(fit_j, {D: ("direct", all_grp)}, level, "mediation", {}),
                 _indirect_row(all_grp, effect_sum, level, total)]

    seed = int(np.random.SeedSequence().entropy % (2**31)) if random_seed is None \
        else int(random_seed)
    draws = {}
    if n_boot:
        draws = _bootstrap(work, m_cols, cov_names, weights, joint, names, n_boot, seed,
                           progress, workers, client)
    alpha = 1 - level
    z = stats.norm.ppf(1 - alpha / 2)
    for r in rows:
        if r["estimand"] != "indirect":
            continue
        if n_boot:
            d = draws[r["group"]]
            r["se_or_sd"] = float(np.std(d, ddof=1))
            r["lower"], r["upper"] = (float(q) for q in np.quantile(d, [alpha / 2,
                                                                        1 - alpha / 2]))
        elif r["group"] in sobel:  # Sobel (delta-method) normal interval
            se = sobel[r["group"]]["se"]
            r["se_or_sd"], r["lower"], r["upper"] = se, r["estimate"] - z * se, \
                r["estimate"] + z * se
        else:  # the joint sum has no Sobel form here
            r["se_or_sd"] = r["lower"] = r["upper"] = np.nan
    info = {"mediators": names, "covariates": list(covs), "vcov": f"CRV1 by {cluster}",
            "weights": weights, "n_boot": int(n_boot), "random_seed": seed,
            "indirect_interval": "percentile cluster bootstrap" if n_boot else "Sobel normal",
            "bootstrap_cluster": cluster, "sobel": sobel,
            "bootstrap_draws": {k: np.asarray(d) for k, d in draws.items()},
            "n_clusters": int(work[CL].nunique()), "df": fit_df(fit_total)}
    if n_boot:
        info["n_boot_valid"] = int(min(len(d) for d in draws.values()))
    return EffectResult.from_rows(rows, method="mediation", info=info)


def _indirect_row(group: str, estimate: float, level: float, total: dict) -> dict:
    return {"estimand": "indirect", "group": group, "estimate": estimate, "level": level,
            "interval": "confidence", "method": "mediation", "n_obs": total["n_obs"]}


def _sobel(a_row: dict, b_row: dict) -> dict:
    """Sobel (first-order delta method) test of a*b = 0."""
    a, se_a, b, se_b = (a_row["estimate"], a_row["se_or_sd"], b_row["estimate"],
                        b_row["se_or_sd"])
    se = float(np.sqrt(a**2 * se_b**2 + b**2 * se_a**2))
    z = a * b / se if se > 0 else np.nan
    return {"estimate": a * b, "se": se, "z": float(z), "p_value": float(2 * stats.norm.sf(abs(z)))}


# ---------------------------------------------------------------------- bootstrap
def _cluster_counts(rng: np.random.Generator, n_clusters: int) -> np.ndarray:
    """How many times each cluster is drawn in one bootstrap sample."""
    return np.bincount(rng.integers(0, n_clusters, n_clusters), minlength=n_clusters)


def _bootstrap(work, m_cols, cov_names, weights, joint, names, n_boot, seed, progress, workers,
               client) -> dict[str, np.ndarray]:
    payload = {
        "Z": work[[Y, D, *m_cols, *cov_names]].to_numpy(float),
        "fl": fe_codes(work),
        "cl": work[CL].to_numpy(),
        "w0": work[W].to_numpy(float) if weights else np.ones(len(work)),
        "k": len(m_cols), "joint": bool(joint),
    }
    sizes = [CHUNK] * (n_boot // CHUNK) + ([n_boot % CHUNK] if n_boot % CHUNK else [])
    children = np.random.SeedSequence(seed).spawn(len(sizes))
    out = run_replications(_boot_chunk, [(payload, child, size)
                                         for child, size in zip(children, sizes)],
                           workers=workers, client=client, progress=progress,
                           desc="mediation bootstrap")
    est = np.concatenate(out, axis=0)
    k = len(m_cols)
    ok = np.isfinite(est).all(axis=1)
    if not ok.any():
        raise EstimationError("every bootstrap draw was degenerate (no variation in the "
                              "treatment after resampling)",
                              hint="check that the panel has several treated clusters")
    if (~ok).sum():
        logger.warning("mediation bootstrap: %d of %d draws degenerate and dropped",
                       int((~ok).sum()), n_boot)
    est = est[ok]
    a, b = est[:, :k], est[:, k:2 * k]
    draws = {group_label(mediator=n): a[:, j] * b[:, j] for j, n in enumerate(names)}
    if joint:
        bj = est[:, 2 * k:3 * k]
        for j, n in enumerate(names):
            draws[group_label(mediator=n, model="joint")] = a[:, j] * bj[:, j]
        draws[group_label(mediator="all", model="joint")] = (a * bj).sum(axis=1)
    return draws


def _boot_chunk(payload: dict, seed: np.random.SeedSequence, size: int) -> np.ndarray:
    """``size`` cluster-bootstrap draws: columns a_1..a_k, b_1..b_k (and joint b_1..b_k)."""
    from pyfixest.estimation import demean

    rng = np.random.default_rng(seed)
    Z, fl, w0, k = payload["Z"], payload["fl"], payload["w0"], payload["k"]
    codes, cl = np.unique(payload["cl"], return_inverse=True)
    n_out = 3 * k if payload["joint"] else 2 * k
    out = np.full((size, n_out), np.nan)
    for i in range(size):
        w = _cluster_counts(rng, len(codes))[cl] * w0
        keep = w > 0
        zt, converged = demean(Z[keep], fl[keep], w[keep], tol=1e-10)
        if not converged:
            continue
        out[i] = _coefficients(zt, w[keep], k, payload["joint"])
    return out


def _coefficients(zt: np.ndarray, w: np.ndarray, k: int, joint: bool) -> np.ndarray:
    """a_j (M_j on D, X) and b_j (y on D, M_j, X) from demeaned columns [y, D, M.., X..]."""
    G = (zt * w[:, None]).T @ zt  # weighted Gram matrix of all columns
    if not G[1, 1] > 1e-10 * max(w.sum(), 1.0):  # no treatment variation left in this draw
        return np.full(3 * k if joint else 2 * k, np.nan)
    x_idx = list(range(2 + k, zt.shape[1]))
    res = []
    with np.errstate(all="ignore"):
        try:
            for j in range(k):
                rhs = [1, *x_idx]
                res.append(np.linalg.solve(G[np.ix_(rhs, rhs)], G[rhs, 2 + j])[0])
            for j in range(k):
                rhs = [1, 2 + j, *x_idx]
                res.append(np.linalg.solve(G[np.ix_(rhs, rhs)], G[rhs, 0])[1])
            if joint:
                rhs = [1, *range(2, 2 + k), *x_idx]
                res.extend(np.linalg.solve(G[np.ix_(rhs, rhs)], G[rhs, 0])[1:1 + k])
        except np.linalg.LinAlgError:
            return np.full(3 * k if joint else 2 * k, np.nan)
    return np.asarray(res, dtype=float)
