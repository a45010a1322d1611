"""BayesResult: posterior draws (an ArviZ DataTree) and the tidy effects derived from them."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from ..errors import BayesDidError, ModelMismatchError
from ..results import EffectResult, check_interval, check_level, tidy_table
from .convergence import (
    ESS_MIN,
    RHAT_MAX,
    ConvergenceWarning,
    convergence_message,
    convergence_summary,
    diagnostics_table,
)

__all__ = ["BayesResult", "ConvergenceWarning", "RHAT_MAX", "ESS_MIN", "config_hash"]

logger = logging.getLogger(__name__)

# warnings point at the user's line, not at bayesdid's internals (Python >= 3.12)
PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "")


INTERVALS = ("hdi", "eti")


def config_hash(model_type: str, config: dict[str, Any]) -> str:
    text = json.dumps({"model_type": model_type, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, eq=False, repr=False)
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
        """Wrap draws as they are (no checks, no warning; :meth:`load` uses this)."""
        table = _summarise(idata, method, level=0.95, interval="hdi")
        return cls(table=table, method=method, info=dict(info or {}), idata=idata)

    @classmethod
    def from_fit(cls, idata, *, method: str, info: dict[str, Any] | None = None) -> BayesResult:
        """What every ``fit`` returns: :meth:`from_idata` plus the convergence check.

        Checks R-hat, bulk/tail ESS of ``info["sampled_vars"]`` and every reported effect,
        and divergences (see :mod:`bayesdid.bayes.convergence`); records the outcome in
        ``info["convergence"]`` and warns (:class:`ConvergenceWarning`, naming the worst
        parameters) when a check fails.
        """
        info = dict(info or {})
        table = cls._diagnose(idata, info.get("sampled_vars", []))
        info["convergence"] = convergence_summary(table, idata)
        result = cls.from_idata(idata, method=method, info=info)
        object.__setattr__(result, "_diagnostics", table)  # a cache: same draws, same table
        _warn_convergence(info["convergence"], info.get("model_type") or method)
        return result

    @classmethod
    def _diagnose(cls, idata, sampled_vars) -> pd.DataFrame:
        """The R-hat / ESS table :meth:`from_fit` checks (a subclass may narrow it)."""
        return diagnostics_table(idata, sampled_vars)

    def effects(self, level: float | None = None, interval: str | None = None) -> pd.DataFrame:
        """Tidy effects table from the posterior draws.

        Parameters
        ----------
        level : credible mass (default 0.95).
        interval : ``"hdi"`` (highest density, the default) or ``"eti"`` (equal-tailed,
            quantiles); another kind raises :class:`~bayesdid.errors.IntervalError`.
        """
        check_level(level)
        check_interval(self, interval, INTERVALS)
        level = 0.95 if level is None else level
        interval = "hdi" if interval is None else interval
        return _summarise(self.idata, self.method, level=level, interval=interval)

    def draws(self, estimand: str = "att", group: str = "overall") -> np.ndarray:
        """Flat posterior draws of one reported effect."""
        eff = self.idata.posterior["effect"]
        hit = (eff["estimand"] == estimand) & (eff["group"] == group)
        if not bool(hit.any()):
            raise KeyError(f"no effect ({estimand!r}, {group!r})")
        return eff.isel(effect_id=int(np.flatnonzero(hit.values)[0])).values.reshape(-1)

    def pretrend_probability(self, tolerance: float, cohort: int | str | None = None) -> float:
        """Posterior probability that every lead (event time k < 0) lies within
        ``+/- tolerance``: a pre-trend check that quantifies, rather than 'insignificant'.

        ``cohort`` restricts the check to that cohort's leads (rows ``cohort=g, k=...``;
        for calendar time give the cohort as in the labels, e.g. ``"2011-03"`` or a Period);
        by default the leads pooled over cohorts (rows ``k=...``) are checked.
        Needs a fit with leads, e.g. ``HierarchicalDiD(leads=4)``.
        """
        if not tolerance > 0:
            raise BayesDidError(f"tolerance must be positive, got {tolerance!r}")
        eff = self.idata.posterior["effect"]
        groups = [str(g) for g in eff["group"].values]
        prefix = "" if cohort is None else (
            f"cohort={cohort}, " if isinstance(cohort, (str, pd.Period)) else
            f"cohort={int(cohort)}, ")
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
    def ppc(self) -> pd.DataFrame:
        """Posterior predictive residual checks recorded at fit time, one row per check:
        observed and replicated statistic, p-value, whether it is flagged and the option that
        addresses it (see :mod:`bayesdid.did.ppc`)."""
        records = self.info.get("ppc")
        if records is None:
            raise BayesDidError(
                f"{self.info.get('model_type') or self.method} recorded no residual checks",
                hint="HierarchicalDiD records them in its marginal form (errors 'iid' or "
                     "'ar1', likelihood 'marginal')")
        from ..did.ppc import PPC_COLUMNS

        return pd.DataFrame(records, columns=PPC_COLUMNS)

    def diagnostics(self, warn: bool = True) -> pd.DataFrame:
        """R-hat, bulk and tail ESS of every sampled parameter (``info["sampled_vars"]``,
        vectors split by coordinate) and every reported effect (``"att|overall"``), and the
        number of divergent transitions (``attrs["divergences"]``).

        Warns (:class:`ConvergenceWarning`, naming the worst parameters) when R-hat > 1.01,
        bulk or tail ESS < 400, or any transition diverged. With one chain R-hat is NaN and
        not checked. ``fit`` already ran this check (``info["convergence"]``). After
        :meth:`thinned` (and :meth:`load` of a saved fit) the table is the one computed on the
        draws as sampled.
        """
        table = self.__dict__.get("_diagnostics")
        if table is None:  # computed once per result (thousands of quantities take seconds)
            table = diagnostics_table(self.idata, self.info.get("sampled_vars", []))
            object.__setattr__(self, "_diagnostics", table)
        table = table.copy()
        if warn:  # the fit's own summary when recorded: a thinned result has fewer draws
            summary = self.info.get("convergence") or convergence_summary(table, self.idata)
            _warn_convergence(summary, self.info.get("model_type") or self.method)
        return table

    # ------------------------------------------------------------------ persistence
    def thinned(self, max_draws: int | None, *, float32: bool = False) -> BayesResult:
        """The same result with at most ``max_draws`` posterior draws (every chain thinned by
        one stride, so chains stay comparable; None keeps them all) and, with ``float32``,
        the posterior's floats in single precision: what a study keeps of a posterior (see
        :func:`bayesdid.study.run_study`).

        The convergence diagnostics stay those of the draws as sampled (``diagnostics()``
        and ``info["convergence"]``): thinning leaves fewer draws than the ESS check needs.
        ``info["stored_draws"]`` records what was kept.

        >>> import numpy as np, xarray as xr
        >>> tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"effect": (
        ...     ("chain", "draw", "effect_id"), np.zeros((2, 500, 1)))}, coords={
        ...     "estimand": ("effect_id", ["att"]), "group": ("effect_id", ["overall"])}),
        ...     "constant_data": xr.Dataset({"effect_n_obs": ("effect_id", [10])})})
        >>> small = BayesResult.from_idata(tree, method="m").thinned(200, float32=True)
        >>> dict(small.idata.posterior.sizes), small.idata.posterior["effect"].dtype
        ({'chain': 2, 'draw': 100, 'effect_id': 1}, dtype('float32'))
        """
        sizes = self.idata.posterior.sizes
        chains, draws = int(sizes.get("chain", 1)), int(sizes.get("draw", 0))
        if max_draws is None:
            max_draws = max(chains * draws, 1)
        if not (isinstance(max_draws, (int, np.integer)) and max_draws >= 1):
            raise BayesDidError(f"max_draws must be a positive integer, got {max_draws!r}")
        stride = max(1, -(-chains * draws // int(max_draws)))  # ceil
        diagnostics = self.diagnostics(warn=False)  # of the draws as sampled

        def thin(ds: xr.Dataset) -> xr.Dataset:
            if "draw" in ds.dims and stride > 1:
                ds = ds.isel(draw=slice(None, None, stride))
            return ds

        tree = self.idata.map_over_datasets(thin)
        if float32:
            post = tree["posterior"].to_dataset()
            tree["posterior"] = xr.DataTree(post.astype(
                {v: "float32" for v, da in post.data_vars.items() if da.dtype == np.float64}))
        kept = int(tree.posterior.sizes.get("draw", 0))
        info = dict(self.info, stored_draws={
            "chains": chains, "draws_per_chain": kept, "sampled_per_chain": draws,
            "stride": stride, "dtype": "float32" if float32 else "float64"})
        result = type(self).from_idata(tree, method=self.method, info=info)
        object.__setattr__(result, "_diagnostics", diagnostics)
        return result

    def save(self, path: str | Path) -> Path:
        """Write the DataTree (draws, data, config) and the convergence diagnostics to
        netCDF, every numeric variable zlib-compressed (lossless). No pickle."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tree = self.idata.copy()
        tree.attrs.update({
            "bayesdid_method": self.method,
            "bayesdid_info": json.dumps(self.info, default=_json_default),
        })
        diag = self.__dict__.get("_diagnostics")
        if diag is not None:  # so a thinned result keeps the diagnostics of its full draws
            tree[_DIAGNOSTICS] = xr.DataTree(_diagnostics_dataset(diag))
        encoding = {node.path: {name: _COMPRESS for name, da in node.dataset.data_vars.items()
                                if da.dtype.kind in "fiubS" and da.ndim}
                    for node in tree.subtree}
        tree.to_netcdf(path, engine="h5netcdf", encoding=encoding)
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
        diag = None
        if _DIAGNOSTICS in tree.children:
            diag = _diagnostics_frame(tree[_DIAGNOSTICS].to_dataset())
            tree = tree.drop_nodes(_DIAGNOSTICS)
        result = cls.from_idata(tree, method=method, info=info)
        if diag is not None:
            object.__setattr__(result, "_diagnostics", diag)
        return result


_DIAGNOSTICS = "bayesdid_diagnostics"
_COMPRESS = {"zlib": True, "complevel": 4, "shuffle": True}


def _diagnostics_dataset(table: pd.DataFrame) -> xr.Dataset:
    ds = xr.Dataset({c: ("row", table[c].to_numpy()) for c in table.columns
                     if c != "parameter"})
    # UTF-8 bytes: fixed width, so compressed like the numbers (variable-length strings are not)
    ds["parameter"] = ("row", np.char.encode(table["parameter"].astype(str).to_numpy(str),
                                             "utf-8"))
    ds.attrs["divergences"] = int(table.attrs.get("divergences", 0))
    return ds


def _diagnostics_frame(ds: xr.Dataset) -> pd.DataFrame:
    cols = ["parameter", *[c for c in ds.data_vars if c != "parameter"]]
    table = pd.DataFrame({c: ds[c].values for c in cols})
    table["parameter"] = np.char.decode(ds["parameter"].values.astype(bytes), "utf-8")
    table.attrs["divergences"] = int(ds.attrs.get("divergences", 0))
    return table


def _warn_convergence(summary: dict[str, Any], what: str) -> None:
    message = convergence_message(summary, what)
    if message is not None:
        warnings.warn(message, ConvergenceWarning, skip_file_prefixes=(PACKAGE_DIR,))


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _row_std(flat: np.ndarray, rows: int = 256) -> np.ndarray:
    """``flat.std(axis=1, ddof=1)`` a block of rows at a time: the same numbers, without
    full-size temporaries (for thousands of effects, e.g. SFA efficiencies, those cost more
    than the arithmetic)."""
    return np.concatenate([flat[i:i + rows].std(axis=1, ddof=1)
                           for i in range(0, len(flat), rows)]) if len(flat) else np.empty(0)


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
        "se_or_sd": _row_std(flat),
        "lower": bounds[:, 0],
        "upper": bounds[:, 1],
        "level": level,
        "interval": interval,
        "method": method,
        "n_obs": n_obs,
    }))
