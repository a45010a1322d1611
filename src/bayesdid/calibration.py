"""Frequentist calibration of interval estimators on simulated panels with known truth.

One replication simulates a staggered panel (AR(1) errors), fits the hierarchical DID
under each error model and TWFE, and records whether each 95% interval contains the true
overall ATT. :func:`coverage_table` summarises many replications.

The *zoo* (:data:`ZOO_DGPS`, :func:`zoo_panel`, :func:`run_zoo`) puts the same estimators
on LCCP-shaped panels (278 cities x 19 years, three listing batches, four regions,
heterogeneous dynamic effects) whose errors break the default model's assumptions in one
way each: heteroskedastic units, region x year shocks, AR(2) persistence, Student-t(3)
innovations, few treated units, and unequal panel weights.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .did.hierarchical import HierarchicalDiD
from .did.twfe import twfe
from .staggered.callaway_santanna import callaway_santanna
from .datasets import simulate_staggered
from .panel import Panel
from .parallel import run_replications

logger = logging.getLogger(__name__)

# Smaller than the LCCP shape so that hundreds of fits run in minutes; same design features
# (three cohorts, four regions, covariates, AR(1) errors, heterogeneous dynamic effects).
CALIBRATION_PANEL: dict[str, Any] = dict(n_units=60, years=(2005, 2014),
                                         batches={2008: 6, 2010: 7, 2012: 7}, rho=0.5)


def coverage_replication(seed: int, errors: Sequence[str] = ("ar1", "iid"), draws: int = 300,
                         tune: int = 300, chains: int = 2,
                         panel_kwargs: dict[str, Any] | None = None) -> list[dict]:
    """Fit one simulated panel; one record per method with estimate, interval and truth."""
    sim = simulate_staggered(**(panel_kwargs or CALIBRATION_PANEL), random_seed=seed)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    truth = float(sim.truth.query("estimand == 'att' and group == 'overall'")["value"].iloc[0])
    records = []
    for err in errors:
        res = HierarchicalDiD(errors=err).fit(panel, draws=draws, tune=tune, chains=chains,
                                              cores=1, random_seed=seed, progress=False)
        row = res.effect("att", "overall")
        n_div = int(res.diagnostics(warn=False).attrs["divergences"])
        records.append(dict(seed=seed, method=f"hierarchical_did[{err}]",
                            estimate=row["estimate"], lower=row["lower"], upper=row["upper"],
                            truth=truth, divergences=n_div))
    row = twfe(panel).effect("att", "overall")
    records.append(dict(seed=seed, method="twfe[CRV1]", estimate=row["estimate"],
                        lower=row["lower"], upper=row["upper"], truth=truth, divergences=0))
    return records


def run_calibration(n_panels: int, *, first_seed: int = 0, workers: int | None = None,
                    client: Any = None, progress: bool = True, **kwargs) -> pd.DataFrame:
    """All replication records for seeds ``first_seed .. first_seed + n_panels - 1``, on
    local processes or a Dask cluster (``client``: see :func:`bayesdid.parallel.run_replications`)."""
    seeds = range(first_seed, first_seed + n_panels)
    out = run_replications(_replicate, [(s, kwargs) for s in seeds], workers=workers,
                           client=client, progress=progress, desc="calibration panels")
    return pd.DataFrame([r for recs in out for r in recs])


def _replicate(seed: int, kwargs: dict) -> list[dict]:
    return coverage_replication(seed, **kwargs)


def coverage_table(records: pd.DataFrame) -> pd.DataFrame:
    """Coverage of the true overall ATT, mean interval width, bias and RMSE by method."""
    r = records.assign(covered=(records["lower"] <= records["truth"])
                       & (records["truth"] <= records["upper"]),
                       width=records["upper"] - records["lower"],
                       error=records["estimate"] - records["truth"])
    table = r.groupby("method", sort=False).agg(
        panels=("seed", "size"), coverage=("covered", "mean"), mean_width=("width", "mean"),
        bias=("error", "mean"), rmse=("error", lambda e: float(np.sqrt(np.mean(e**2)))),
        divergences=("divergences", "sum"))
    n = table["panels"]
    table["coverage_se"] = np.sqrt(table["coverage"] * (1 - table["coverage"]) / n)
    return table.reset_index()


# ============================================================================ the zoo
ZOO_SIGMA = 0.05  # innovation sd of every zoo DGP (the simulator's default)
ZOO_DGPS = ("ar1", "hetero_units", "region_shocks", "ar2", "student_t3", "treated_1",
            "treated_3", "treated_10", "weights")
_FEW = {"treated_1": {2010: 1}, "treated_3": {2010: 1, 2012: 1, 2017: 1},
        "treated_10": {2010: 3, 2012: 3, 2017: 4}}


def _ar(innovations: np.ndarray, coefs: Sequence[float], burn: int = 50) -> np.ndarray:
    """AR(p) paths along axis 1 of ``innovations`` (units x periods), started in the past."""
    n, t = innovations.shape
    out = np.zeros((n, t + burn))
    rng = np.random.default_rng(int(abs(innovations[0, 0]) * 1e9) % 2**32)
    pad = np.concatenate([rng.standard_normal((n, burn)) * innovations.std(), innovations],
                         axis=1)
    for j in range(t + burn):
        out[:, j] = pad[:, j] + sum(c * out[:, j - i - 1] for i, c in enumerate(coefs)
                                    if j - i - 1 >= 0)
    return out[:, burn:]


def zoo_panel(dgp: str, seed: int) -> tuple[Panel, float]:
    """One zoo panel and its true overall ATT (observation-weighted over treated rows; under
    ``"weights"``, weighted by the panel weights, the estimand a weighted estimator targets).

    >>> panel, truth = zoo_panel("region_shocks", 0)
    >>> len(panel.units), truth > 0
    (278, True)
    """
    if dgp not in ZOO_DGPS:
        raise ValueError(f"unknown zoo DGP {dgp!r}; choose from {ZOO_DGPS}")
    sim = simulate_staggered(sigma=0.0, random_seed=seed, batches=_FEW.get(dgp))
    df = sim.data.copy()
    n_units, n_t = df["city"].nunique(), df["year"].nunique()
    rng = np.random.default_rng([seed, 20260])
    innov = rng.standard_normal((n_units, n_t)) * ZOO_SIGMA
    coefs: tuple[float, ...] = (0.5,)
    weights = None
    if dgp == "hetero_units":  # unit sds spread 10x (log-uniform)
        innov *= np.exp(rng.uniform(-np.log(10) / 2, np.log(10) / 2, n_units))[:, None]
    elif dgp == "ar2":  # persistent: roots 0.9 and 0.5 (lag-1 autocorrelation 0.97)
        coefs = (1.4, -0.45)
    elif dgp == "student_t3":
        innov = rng.standard_t(3, (n_units, n_t)) * ZOO_SIGMA / np.sqrt(3.0)
    elif dgp == "weights":  # precision weights: bigger cities, smaller error variance
        weights = np.exp(rng.normal(0.0, 1.0, n_units))
        innov /= np.sqrt(weights / weights.mean())[:, None]
    errors = _ar(innov, coefs)
    if dgp == "region_shocks":
        regions = pd.factorize(df["region"].to_numpy()[::n_t])[0]
        errors = errors + rng.normal(0.0, ZOO_SIGMA, (regions.max() + 1, n_t))[regions]
    df["eco_eff"] = df["eco_eff"] + errors.reshape(-1)
    kwargs = dict(sim.panel_kwargs)
    tau = df[["city", "year"]].merge(sim.tau, on=["city", "year"], how="left")["tau"]
    treated = df["treated"].to_numpy() == 1
    if weights is not None:
        df["pop"] = np.repeat(weights, n_t)
        kwargs["weights"] = "pop"
        truth = float(np.average(tau[treated], weights=df.loc[treated, "pop"]))
    else:
        truth = float(tau[treated].mean())
    return Panel.from_frame(df, **kwargs), truth


ZOO_METHODS = ("hierarchical_did[ar1]", "hierarchical_did[iid]", "hierarchical_did[ar1,cluster]",
               "twfe[CRV1]", "callaway_santanna")


def robust_redraw(result, panel: Panel, min_treated_clusters: int | None = None):
    """The ``HierarchicalDiD(robust="cluster")`` result that a fit with the same seed gives,
    computed from a default (``errors="ar1"``) fit's hyperparameter draws without sampling
    again (both fits sample the same hyperparameter posterior; only the coefficients'
    conditional draws differ). Used by the zoo to halve its cost; a test checks it equals
    the direct fit draw for draw. Falls back (with its warning) like the fit does."""
    from .bayes.result import BayesResult

    kw = {} if min_treated_clusters is None else {"min_treated_clusters": min_treated_clusters}
    if result.info.get("config", {}).get("errors") != "ar1" or result.info.get("robust") not in (
            None, "model-based"):
        raise ValueError("robust_redraw takes a default HierarchicalDiD (errors='ar1') result")
    model = HierarchicalDiD(robust="cluster", **kw)
    # the model whose hyperparameters were sampled: with random_effects="auto" (the
    # default), the terms its residual check added
    used = (result.info.get("random_effects") or {}).get("used")
    sampled = HierarchicalDiD(robust="cluster", random_effects=used, **kw)
    design = sampled.prepare(panel)
    idata, _, robust = sampled._add_effects(result.idata.copy(deep=True), design, panel,
                                            int(result.info["random_seed"]))
    info = {**result.info, "config": model.config(), "robust": robust}
    return BayesResult.from_idata(idata, method=result.method, info=info)


def zoo_replication(seed: int, dgp: str, draws: int = 500, tune: int = 500,
                    chains: int = 2, methods: Sequence[str] = ZOO_METHODS) -> list[dict]:
    """Fit one zoo panel with each of ``methods`` (:data:`ZOO_METHODS`): the default, iid
    and cluster-robust HierarchicalDiD, TWFE CRV1 and CS (never-treated)."""
    import warnings

    unknown = set(methods) - set(ZOO_METHODS)
    if unknown:
        raise ValueError(f"unknown zoo methods {sorted(unknown)}; choose from {ZOO_METHODS}")
    panel, truth = zoo_panel(dgp, seed)
    fits = {f"hierarchical_did[{err}]": lambda err=err: HierarchicalDiD(errors=err).fit(
                panel, draws=draws, tune=tune, chains=chains, cores=1, random_seed=seed,
                progress=False)
            for err in ("ar1", "iid")}
    fitted: dict = {}

    def robust():
        default = fitted.get("hierarchical_did[ar1]")
        if default is not None:  # same hyperparameter draws: redraw the coefficients only
            return robust_redraw(default, panel)
        return HierarchicalDiD(robust="cluster").fit(
            panel, draws=draws, tune=tune, chains=chains, cores=1, random_seed=seed,
            progress=False)

    fits["hierarchical_did[ar1,cluster]"] = robust
    fits["twfe[CRV1]"] = lambda: twfe(panel)
    fits["callaway_santanna"] = lambda: callaway_santanna(
        panel, covariates=list(panel.covariates), aggregate=("simple",))
    fits = {m: f for m, f in fits.items() if m in methods}
    records = []
    for method, fit in fits.items():
        try:
            with warnings.catch_warnings():  # the zoo measures; it does not stop at notices
                warnings.simplefilter("ignore")
                res = fit()
                fitted[method] = res
        except Exception as err:  # a failed fit is a result of the zoo, not its end
            records.append(dict(seed=seed, dgp=dgp, method=method, estimate=np.nan,
                                lower=np.nan, upper=np.nan, truth=truth, divergences=0,
                                ppc_flags="", failure=f"{type(err).__name__}: {err}"[:200]))
            continue
        flagged = [r["check"] for r in (res.info.get("ppc") or ()) if r["flagged"]]
        rec = _zoo_record(seed, dgp, method, res, truth, ";".join(flagged))
        rec["robust"] = res.info.get("robust") if hasattr(res, "info") else None
        records.append(rec)
    return records


def _zoo_record(seed, dgp, method, result, truth, ppc_flags="") -> dict:
    row = result.effect("att", "overall")
    return dict(seed=seed, dgp=dgp, method=method, estimate=float(row["estimate"]),
                lower=float(row["lower"]), upper=float(row["upper"]), truth=truth,
                divergences=0, ppc_flags=ppc_flags, failure="")


def run_zoo(n_panels: int, dgps: Sequence[str] = ZOO_DGPS, *, first_seed: int = 0,
            workers: int | None = None, client: Any = None, progress: bool = True,
            **kwargs) -> pd.DataFrame:
    """Zoo records for seeds ``first_seed ..`` under every DGP, through
    :func:`bayesdid.parallel.run_replications` (local processes or Dask)."""
    args = [(s, dgp, kwargs) for dgp in dgps for s in range(first_seed, first_seed + n_panels)]
    out = run_replications(_zoo_replicate, args, workers=workers, client=client,
                           progress=progress, desc="zoo panels")
    return pd.DataFrame([r for recs in out for r in recs])


def _zoo_replicate(seed: int, dgp: str, kwargs: dict) -> list[dict]:
    return zoo_replication(seed, dgp, **kwargs)
