"""A regression table as econometricians expect it, with Bayesian columns beside classical ones.

Each column is one result; each row one effect (``ATT``, ``ATT: region=East``, ...). Cells
show the estimate with the standard error (classical), the placebo sd (synthetic control)
or the posterior sd (Bayesian) in parentheses below. Significance stars for classical
columns only (a posterior has no p-value): from the estimator's own p-value where it
reports one (synthetic control: the placebo-in-space permutation p), else from a t test
(normal without degrees of freedom) of estimate / SE. Footer rows: observations, the fixed
effects of each column's estimator (read from the result, see :func:`fixed_effects_of`),
and what the parenthesised number is.

LaTeX and HTML go through ``maketables.ETable`` (the engine behind pyfixest's ``etable``),
via its plug-in protocol, so pyfixest fits can sit in the same table; Markdown is rendered
here.

Examples
--------
>>> from bayesdid.results import EffectResult
>>> twfe = EffectResult.from_rows([dict(estimand="att", group="overall", estimate=0.1,
...     se_or_sd=0.02, lower=0.06, upper=0.14, level=0.95, interval="confidence",
...     n_obs=500)], method="twfe")
>>> bayes = EffectResult.from_rows([dict(estimand="att", group="overall", estimate=0.11,
...     se_or_sd=0.025, lower=0.06, upper=0.16, level=0.95, interval="hdi", n_obs=500)],
...     method="hierarchical_did")
>>> print(regression_table(twfe, bayes, depvar="eco_eff").to_markdown())
|               | (1) twfe   | (2) hierarchical_did   |
|:--------------|:-----------|:-----------------------|
| ATT           | 0.100***   | 0.110                  |
|               | (0.020)    | (0.025)                |
| Observations  | 500        | 500                    |
| Fixed effects | unit, time | unit, time             |
| SE / sd       | SE         | posterior sd           |
<BLANKLINE>
Classical columns: * p < 0.1, ** p < 0.05, *** p < 0.01 (t test of estimate / SE; normal without degrees of freedom). Bayesian columns: posterior mean (posterior sd), no stars. Dependent variable: eco_eff.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ComparisonError
from ..results import EffectResult

__all__ = ["regression_table", "RegressionTable", "fixed_effects_of", "classical_p_value"]

_STARS = ((0.01, "***"), (0.05, "**"), (0.1, "*"))
_CREDIBLE = ("hdi", "eti")  # interval kinds of a posterior; any other kind is classical
NO_FE = "\u2014"  # an em dash: the estimator has no fixed effects

# Fixed effects by estimator (the ``method`` of its rows). Exact names first, then the
# longest matching prefix (``heterogeneity_region``, ``honest_did_rm``, ``synth_placebo_time``).
_UNIT_TIME = "unit, time"
_FE_BY_METHOD = {
    # regressions with unit and period effects (TWFE and its clean-comparison variants;
    # CS differences them out; the hierarchical DID models them)
    "twfe": _UNIT_TIME, "event_study": _UNIT_TIME, "callaway_santanna": _UNIT_TIME,
    "sun_abraham": _UNIT_TIME, "imputation": _UNIT_TIME, "bacon": _UNIT_TIME,
    "honest_did": _UNIT_TIME, "heterogeneity": _UNIT_TIME, "mediation": _UNIT_TIME,
    "psm_did": _UNIT_TIME,  # a TWFE on the matched samples
    "hierarchical_did": _UNIT_TIME, "bayes_sensitivity": _UNIT_TIME,
    "bayes_mediation": _UNIT_TIME, "synthdid_did": _UNIT_TIME,
    # SDID is a unit- and time-weighted two-way regression (Arkhangelsky et al. 2021, eq. 1)
    "synthdid": "unit, time (weighted)",
    # weighted or regression-based counterfactuals, no fixed effects
    "synth": NO_FE, "synthdid_sc": NO_FE, "regression_control": NO_FE,
    "bayes_synth": NO_FE, "bayes_regression_control": NO_FE,
}


def _row_name(estimand: str, group: str) -> str:
    name = "ATT" if estimand == "att" else estimand
    return name if group == "overall" else f"{name}: {group}"


def _method_fe(method: str) -> str | None:
    name = method.split("[", 1)[0].strip()
    if name.startswith("placebo_"):
        name = name[len("placebo_"):]
    if name in _FE_BY_METHOD:
        return _FE_BY_METHOD[name]
    for prefix in sorted(_FE_BY_METHOD, key=len, reverse=True):
        if name.startswith(prefix + "_"):
            return _FE_BY_METHOD[prefix]
    return None


def fixed_effects_of(result, rows: pd.DataFrame | None = None) -> str:
    """The fixed-effects line of ``result``'s column.

    ``result.info["fixed_effects"]`` when the estimator records it; else read off the
    ``method`` of the rows shown (``rows``; default all of ``result.effects()``): ``"unit,
    time"`` for TWFE-type and DID estimators (PSM-DID runs a TWFE on the matched
    samples; the hierarchical Bayesian DID has unit and period effects), ``"unit, time
    (weighted)"`` for SDID, an em dash for synthetic and regression control (classical or
    Bayesian); blank for a method it does not know.

    >>> from bayesdid.results import EffectResult
    >>> row = dict(estimand="att", group="overall", estimate=1.0, se_or_sd=0.5, lower=0.0,
    ...            upper=2.0, level=0.95, interval="confidence", n_obs=10)
    >>> fixed_effects_of(EffectResult.from_rows([row], method="synth"))
    '\u2014'
    >>> fixed_effects_of(EffectResult.from_rows([row], method="heterogeneity_region"))
    'unit, time'
    """
    info = getattr(result, "info", None) or {}
    if isinstance(info.get("fixed_effects"), str):
        return info["fixed_effects"]
    if rows is None:
        rows = result.effects()
    methods = list(dict.fromkeys(rows["method"])) if "method" in rows and len(rows) else []
    methods = methods or [str(getattr(result, "method", ""))]
    found = {_method_fe(m) for m in methods}
    if len(found) == 1:
        return found.pop() or ""
    return "varies"


def _own_p_values(result, rows: pd.DataFrame) -> tuple[np.ndarray, str] | None:
    """p-values the estimator reports itself, one per row (NaN where it has none for that
    row), and what they are; None when it reports none (the caller then tests estimate /
    SE).

    Read from a ``p_value`` column of the effects table, or from ``info["p_value"]``: a
    number (the overall ATT's p) or a mapping unit -> p (synthetic control's placebo
    permutation p per treated unit; with one treated unit it is also the overall ATT's p).
    """
    p = np.full(len(rows), np.nan)
    has = False
    if "p_value" in rows:
        col = pd.to_numeric(rows["p_value"], errors="coerce").to_numpy(dtype=float)
        p = np.where(np.isfinite(col), col, p)
        has = bool(np.isfinite(col).any())
    info = getattr(result, "info", None) or {}
    own = info.get("p_value")
    if own is None:
        return (p, "reported p-value") if has else None
    if isinstance(own, Mapping):
        by_group = {f"unit={k}": float(v) for k, v in own.items()}
        if len(own) == 1:
            by_group["overall"] = float(next(iter(own.values())))
    else:
        try:
            by_group = {"overall": float(own)}
        except (TypeError, ValueError):
            return (p, "reported p-value") if has else None
    for i, (estimand, group) in enumerate(zip(rows["estimand"], rows["group"])):
        if estimand == "att" and not np.isfinite(p[i]) and group in by_group:
            p[i] = by_group[group]
    placebo = str(info.get("interval_note", "")).startswith("placebo")
    return p, "placebo-in-space permutation p" if placebo else "reported p-value"


def _test_p_value(row: pd.Series, dof) -> float:
    """Two-sided p of estimate / SE: t with ``dof`` degrees of freedom, else normal; only
    for rows with a confidence interval (a placebo or credible interval is no SE test)."""
    if row["interval"] != "confidence" or not row["se_or_sd"] > 0:
        return np.nan
    z = abs(row["estimate"] / row["se_or_sd"])
    return float(2 * (stats.t.sf(z, dof) if dof else stats.norm.sf(z)))


def classical_p_value(result, row: pd.Series) -> tuple[float, str]:
    """Two-sided p-value of one classical effects row, and where it comes from: the
    estimator's own (a ``p_value`` column or ``info["p_value"]``, e.g. a synthetic control's
    permutation p) where it reports one, else the test of estimate / SE that the regression
    table's stars use (NaN with ``""`` when neither exists)."""
    rows = row.to_frame().T.reset_index(drop=True)
    own = _own_p_values(result, rows)
    if own is not None and np.isfinite(own[0][0]):
        return float(own[0][0]), own[1]
    dof = (getattr(result, "info", None) or {}).get("df")
    p = _test_p_value(row, dof)
    return p, ("" if not np.isfinite(p) else "t test" if dof else "normal test")


def _placebo_sd(result, rows: pd.DataFrame) -> bool:
    """Whether the parenthesised number is the sd of placebo estimates (synthetic control),
    from the interval kind or the estimator's interval note."""
    if len(rows) and rows["interval"].str.contains("placebo").any():
        return True
    note = str((getattr(result, "info", None) or {}).get("interval_note", ""))
    return note.startswith("placebo")


def _stars(p: float) -> str:
    return next((s for cut, s in _STARS if p < cut), "") if np.isfinite(p) else ""


class _Column:
    """One result in maketables' plug-in format."""

    def __init__(self, table: pd.DataFrame, depvar: str, fixef: str, n_obs, se_type: str):
        self._table, self.__maketables_depvar__ = table, depvar
        self.__maketables_fixef_string__ = fixef
        self._n, self._se_type = n_obs, se_type

    @property
    def __maketables_coef_table__(self) -> pd.DataFrame:
        return self._table

    def __maketables_stat__(self, key: str):
        return {"N": self._n}.get(key)

    @property
    def __maketables_vcov_info__(self) -> dict:
        return {"vcov_type": self._se_type}


@dataclass(frozen=True, eq=False)
class RegressionTable:
    """A paper-style table of several results (see :func:`regression_table`)."""

    coefs: pd.DataFrame  # long: column, name, b, se, p, bayesian
    columns: tuple[str, ...]
    footer: pd.DataFrame  # index: Observations, Fixed effects, SE / sd
    depvar: str
    digits: int = 3
    # column -> "test" (t/normal test of estimate / SE), "none" (Bayesian) or a description
    # of the estimator's own p-value
    p_sources: Mapping[str, str] | None = None

    def _cell(self, b: float, p: float) -> str:
        return f"{b:.{self.digits}f}{_stars(p)}" if np.isfinite(b) else ""

    def to_frame(self) -> pd.DataFrame:
        """The table as strings: a coefficient row and a parenthesised row per effect."""
        names = list(dict.fromkeys(self.coefs["name"]))
        out = []
        for name in names:
            est, par = {"": name}, {"": ""}
            for col in self.columns:
                hit = self.coefs[(self.coefs["column"] == col) & (self.coefs["name"] == name)]
                if hit.empty:
                    est[col], par[col] = "", ""
                    continue
                r = hit.iloc[0]
                est[col] = self._cell(r["b"], r["p"])
                par[col] = f"({r['se']:.{self.digits}f})" if np.isfinite(r["se"]) else ""
            out += [est, par]
        for label, values in self.footer.iterrows():
            out.append({"": label, **{c: str(values[c]) for c in self.columns}})
        return pd.DataFrame(out, columns=["", *self.columns])

    def notes(self) -> str:
        src = dict(self.p_sources or {})
        own: dict[str, list[str]] = {}
        for c in self.columns:
            if src.get(c) not in (None, "test", "none"):
                own.setdefault(src[c], []).append(c)
        classical = [c for c in self.columns if not self._is_bayesian(c)]
        bayes = [c for c in self.columns if self._is_bayesian(c)]
        parts = []
        if classical:
            how = "t test of estimate / SE; normal without degrees of freedom"
            if own:
                which = "; ".join(f"{', '.join(cols)}: {what}" for what, cols in own.items())
                how = f"the estimator's own p-value where it reports one ({which}); else a {how}"
            parts.append(f"Classical columns: * p < 0.1, ** p < 0.05, *** p < 0.01 ({how}).")
        if any(self.footer.loc["SE / sd", c] == "placebo sd" for c in self.columns):
            parts.append("Placebo sd: the sd of the placebo-in-space estimates.")
        if any("(weighted)" in str(self.footer.loc["Fixed effects", c]) for c in self.columns):
            parts.append("Synthetic DID: unit and time effects of a unit- and time-weighted "
                         "two-way regression.")
        if bayes:
            parts.append("Bayesian columns: posterior mean (posterior sd), no stars.")
        parts.append(f"Dependent variable: {self.depvar}.")
        return " ".join(parts)

    def _is_bayesian(self, col: str) -> bool:
        return self.footer.loc["SE / sd", col] == "posterior sd"

    def to_markdown(self) -> str:
        return (self.to_frame().to_markdown(index=False, disable_numparse=True)
                + "\n\n" + self.notes())

    def etable(self):
        """The ``maketables.ETable`` of this table (LaTeX, HTML, Word, Typst outputs)."""
        import maketables

        models = []
        for col in self.columns:
            sub = self.coefs[self.coefs["column"] == col].set_index("name")[["b", "se", "p"]]
            sub.index.name = "Coefficient"
            fe = self.footer.loc["Fixed effects", col].replace(" (weighted)", "")
            fe = "" if fe in (NO_FE, "varies") else fe.replace(", ", "+")
            models.append(_Column(sub, self.depvar, fe,
                                  self.footer.loc["Observations", col],
                                  self.footer.loc["SE / sd", col]))
        return maketables.ETable(models, model_heads=list(self.columns),
                                 notes=self.notes())

    def to_latex(self) -> str:
        return self.etable().make(type="tex")

    def to_html(self) -> str:
        return self.to_frame().to_html(index=False, escape=True) + f"<p>{self.notes()}</p>"


def regression_table(*results: EffectResult, labels: Sequence[str] | None = None,
                     effects: Sequence[tuple[str, str]] | None = None,
                     depvar: str = "outcome",
                     fixed_effects: str | Sequence[str] | None = None,
                     digits: int = 3) -> RegressionTable:
    """A regression table of ``results`` (classical and Bayesian side by side).

    Parameters
    ----------
    labels : column heads (default ``(1) method``, ``(2) method``...).
    effects : ``(estimand, group)`` rows to show; default every ``att`` row, overall first.
    fixed_effects : the fixed-effects line: default each column's own estimator's
        (:func:`fixed_effects_of`); a string for every column, or one per column.
    """
    if not results:
        raise ComparisonError("regression_table needs at least one result")
    bad = [type(r).__name__ for r in results if not hasattr(r, "effects")]
    if bad:
        raise ComparisonError(f"regression_table takes results with effects(), got {bad}")
    labels = list(labels) if labels is not None else [
        f"({i}) {r.method}" for i, r in enumerate(results, 1)]
    if len(labels) != len(results) or len(set(labels)) != len(labels):
        raise ComparisonError(f"labels must be unique, one per result; got {labels}")
    if isinstance(fixed_effects, str):
        fixed_effects = [fixed_effects] * len(results)
    elif fixed_effects is not None:
        fixed_effects = list(fixed_effects)
        if len(fixed_effects) != len(results):
            raise ComparisonError(f"fixed_effects takes one string or one per result; got "
                                  f"{len(fixed_effects)} for {len(results)} results")
    rows, footer, p_sources = [], {}, {}
    for i, (label, res) in enumerate(zip(labels, results)):
        table = res.effects()
        wanted = (table[table["estimand"] == "att"] if effects is None else
                  table[[(e, g) in set(effects) for e, g in zip(table["estimand"],
                                                                  table["group"])]])
        wanted = wanted.sort_values("group", key=lambda g: g != "overall", kind="stable")
        dof = getattr(res, "info", {}).get("df")
        # credible or not: read off the rows shown (a placebo result also carries
        # equal-tailed rows of its placebo distribution, which are not its ATT's interval;
        # a synthetic control's placebo interval is classical)
        bayesian = bool(wanted["interval"].isin(_CREDIBLE).any()) if len(wanted) else False
        own = None if bayesian else _own_p_values(res, wanted)
        p_sources[label] = "none" if bayesian else own[1] if own is not None else "test"
        for j, (_, r) in enumerate(wanted.iterrows()):
            p = (np.nan if bayesian else own[0][j] if own is not None
                 else _test_p_value(r, dof))
            rows.append({"column": label, "name": _row_name(r["estimand"], r["group"]),
                         "b": r["estimate"], "se": r["se_or_sd"], "p": p,
                         "bayesian": bayesian})
        overall = table[(table["estimand"] == "att") & (table["group"] == "overall")]
        # the estimation sample: recorded by the estimator, else the ATT row's count
        n = getattr(res, "info", {}).get("n_obs")
        if n is None:
            n = overall["n_obs"].iloc[0] if len(overall) else (
                table["n_obs"].max() if len(table) else pd.NA)
        fe = fixed_effects[i] if fixed_effects is not None else fixed_effects_of(
            res, wanted if len(wanted) else None)
        footer[label] = {"Observations": "" if pd.isna(n) else int(n), "Fixed effects": fe,
                         "SE / sd": "posterior sd" if bayesian else
                         "placebo sd" if _placebo_sd(res, wanted) else "SE"}
    return RegressionTable(coefs=pd.DataFrame(rows), columns=tuple(labels),
                           footer=pd.DataFrame(footer), depvar=depvar, digits=digits,
                           p_sources=p_sources)
