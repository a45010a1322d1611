"""Frequentist calibration of interval estimators on simulated panels with known truth.

One replication simulates a staggered panel (AR(1) errors), fits the hierarchical DID
under each error model and TWFE, and records whether each 95% interval contains the true
overall ATT. :func:`coverage_table` summarises many replications.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .did.hierarchical import HierarchicalDiD
from .did.twfe import twfe
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
