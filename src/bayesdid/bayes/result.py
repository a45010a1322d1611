"""BayesResult: posterior draws (an ArviZ DataTree) and the tidy effects derived from them."""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from ..errors import BayesDidError, ModelMismatchError
from ..results import EffectResult, tidy_table

logger = logging.getLogger(__name__)

RHAT_MAX = 1.01
ESS_MIN = 400


class ConvergenceWarning(RuntimeWarning):
    """Sampler diagnostics suggest the posterior was not explored reliably."""


def config_hash(model_type: str, config: dict[str, Any]) -> str:
    text = json.dumps({"model_type": model_type, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class BayesResult(EffectResult):
    """Effects with posterior draws.

    ``idata`` is an ArviZ DataTree whose ``posterior`` holds the sampled parameters and an
    ``effect`` variable (dims chain, draw, effect) with one entry per reported effect.
    :meth:`effects` summarises those draws: posterior mean and sd, and an HDI (default) or
    equal-tailed interval.
    """

    idata: Any = field(default=None, repr=False)

    @classmethod
    def from_idata(cls, idata, *, method: str, info: dict[str, Any] | None = None) -> BayesResult:
        table = _summarise(idata, method, level=0.95, interval="hdi")
        return cls(table=table, method=method, info=dict(info or {}), idata=idata)

    def effects(self, level: float | None = None, interval: str = "hdi") -> pd.DataFrame:
        """Tidy effects table from the posterior draws.

        Parameters
        ----------
        level : credible mass (default 0.95).
        interval : ``"hdi"`` (highest density) or ``"eti"`` (equal-tailed, quantiles).
        """
        level = 0.95 if level is None else level
        if interval not in ("hdi", "eti"):
            raise BayesDidError(f"interval must be 'hdi' or 'eti', got {interval!r}")
        if not 0 < level < 1:
            raise BayesDidError(f"level must be in (0, 1), got {level}")
        return _summarise(self.idata, self.method, level=level, interval=interval)

    def draws(self, estimand: str = "att", group: str = "overall") -> np.ndarray:
        """Flat posterior draws of one reported effect."""
        eff = self.idata.posterior["effect"]
        hit = (eff["estimand"] == estimand) & (eff["group"] == group)
        if not bool(hit.any()):
            raise KeyError(f"no effect ({estimand!r}, {group!r})")
        return eff.isel(effect_id=int(np.flatnonzero(hit.values)[0])).values.reshape(-1)

    def pretrend_probability(self, tolerance: float, cohort: int | None = None) -> float:
        """Posterior probability that every lead (event time k < 0) lies within
        ``+/- tolerance``: a pre-trend check that quantifies, rather than 'insignificant'.

        ``cohort`` restricts the check to that cohort's leads (rows ``cohort=g, k=...``);
        by default the leads pooled over cohorts (rows ``k=...``) are checked.
        Needs a fit with leads, e.g. ``HierarchicalDiD(leads=4)``.
        """
        if not tolerance > 0:
            raise BayesDidError(f"tolerance must be positive, got {tolerance!r}")
        eff = self.idata.posterior["effect"]
        groups = [str(g) for g in eff["group"].values]
        prefix = "" if cohort is None else f"cohort={int(cohort)}, "
        leads = [i for i, (e, g) in enumerate(zip(eff["estimand"].values, groups))
                 if e == "event_time" and g.startswith(prefix + "k=")
                 and int(g[len(prefix) + 2:]) < 0]
        if not leads:
            what = "" if cohort is None else f" for cohort {cohort}"
            raise BayesDidError(f"no lead effects{what} in this result; fit with leads >= 2"
                                + ("" if cohort is None else
                                   " and check the cohort (see effects()['group'])"))
        draws = eff.isel(effect_id=leads).values.reshape(-1, len(leads))
        return float(np.mean(np.all(np.abs(draws) <= tolerance, axis=1)))

    # ------------------------------------------------------------------ diagnostics
    def diagnostics(self, warn: bool = True) -> pd.DataFrame:
        """R-hat, bulk and tail ESS of every sampled scalar and every reported effect, and
        the number of divergent transitions. Warns (:class:`ConvergenceWarning`) when
        R-hat > 1.01, bulk ESS < 400 or any transition diverged."""
        post = self.idata.posterior
        sampled = [v for v in self.info.get("sampled_vars", []) if v in post]
        names = [*sampled, "effect"]
        ds = post.to_dataset()[names]
        rhat = azs.rhat(ds)
        bulk = azs.ess(ds, method="bulk")
        tail = azs.ess(ds, method="tail")
        rows = []
        for name in names:
            r, b, t = (np.atleast_1d(x[name].values) for x in (rhat, bulk, tail))
            labels = (list(post["effect"].coords["effect_id"].values) if name == "effect"
                      else [name] * r.size if r.size == 1 else
                      [f"{name}[{i}]" for i in range(r.size)])
            rows += [dict(parameter=lab, r_hat=float(ri), ess_bulk=float(bi), ess_tail=float(ti))
                     for lab, ri, bi, ti in zip(labels, r.ravel(), b.ravel(), t.ravel())]
        table = pd.DataFrame(rows)
        stats = self.idata.sample_stats
        if "diverging" in stats:  # per-draw flags
            n_div = int(np.asarray(stats["diverging"].values).astype(bool).sum())
        elif "divergences" in stats:  # PyMC's running count per chain
            n_div = int(np.asarray(stats["divergences"].values).max(axis=-1).sum())
        else:
            n_div = 0
        table.attrs["divergences"] = n_div
        if warn:
            problems = []
            if (table["r_hat"] > RHAT_MAX).any():
                problems.append(f"max R-hat {table['r_hat'].max():.3f} > {RHAT_MAX}")
            if (table["ess_bulk"] < ESS_MIN).any():
                problems.append(f"min bulk ESS {table['ess_bulk'].min():.0f} < {ESS_MIN}")
            if n_div:
                problems.append(f"{n_div} divergent transition(s)")
            if problems:
                warnings.warn("Sampling problems: " + "; ".join(problems) + ". Increase "
                              "tune/draws or check the model before trusting the intervals.",
                              ConvergenceWarning, stacklevel=2)
        return table

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the DataTree (draws, data, config) to netCDF. No pickle."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tree = self.idata.copy()
        tree.attrs.update({
            "bayesdid_method": self.method,
            "bayesdid_info": json.dumps(self.info, default=_json_default),
        })
        tree.to_netcdf(path, engine="h5netcdf")
        return path

    @classmethod
    def load(cls, path: str | Path, model=None) -> BayesResult:
        """Read a result written by :meth:`save`. If ``model`` (an estimator) is given, refuse
        a file produced by a different model type or configuration."""
        path = Path(path)
        if not path.exists():
            raise BayesDidError(f"no such file: {path}")
        # read and close: a study rerun may rewrite this file
        with xr.open_datatree(path, engine="h5netcdf") as opened:
            tree = opened.load()
        method = tree.attrs.get("bayesdid_method")
        if method is None:
            raise ModelMismatchError(f"{path} was not written by bayesdid (no bayesdid_method)")
        info = json.loads(tree.attrs.get("bayesdid_info", "{}"))
        if model is not None:
            want = config_hash(type(model).__name__, model.config())
            if info.get("config_hash") != want:
                raise ModelMismatchError(
                    f"{path} holds a {info.get('model_type')} fit with config "
                    f"{info.get('config')}, not this {type(model).__name__} {model.config()}")
        return cls.from_idata(tree, method=method, info=info)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _summarise(idata, method: str, *, level: float, interval: str) -> pd.DataFrame:
    eff = idata.posterior["effect"]
    flat = eff.stack(sample=("chain", "draw")).transpose("effect_id", "sample").values
    if interval == "hdi":
        bounds = azs.hdi(eff, prob=level, dim=["chain", "draw"]).transpose("effect_id", "ci_bound").values
    else:
        bounds = azs.eti(eff, prob=level, dim=["chain", "draw"]).transpose("effect_id", "ci_bound").values
    n_obs = idata.constant_data["effect_n_obs"].values
    return tidy_table(pd.DataFrame({
        "estimand": eff["estimand"].values.astype(str),
        "group": eff["group"].values.astype(str),
        "estimate": flat.mean(axis=1),
        "se_or_sd": flat.std(axis=1, ddof=1),
        "lower": bounds[:, 0],
        "upper": bounds[:, 1],
        "level": level,
        "interval": interval,
        "method": method,
        "n_obs": n_obs,
    }))
