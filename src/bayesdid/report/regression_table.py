"""A regression table as econometricians expect it, with Bayesian columns beside classical ones.

Each column is one result; each row one effect (``ATT``, ``ATT: region=East``, ...). Cells
show the estimate with the standard error (classical) or the posterior sd (Bayesian) in
parentheses below; significance stars for classical columns only (a posterior has no
p-value). Footer rows: observations, fixed effects, and the standard-error type.

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
Classical columns: * p < 0.1, ** p < 0.05, *** p < 0.01. Bayesian columns: posterior mean (posterior sd), no stars. Dependent variable: eco_eff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ComparisonError
from ..results import EffectResult

__all__ = ["regression_table", "RegressionTable"]

_STARS = ((0.01, "***"), (0.05, "**"), (0.1, "*"))


def _row_name(estimand: str, group: str) -> str:
    name = "ATT" if estimand == "att" else estimand
    return name if group == "overall" else f"{name}: {group}"


def _p_value(row: pd.Series, dof) -> float:
    if row["interval"] != "confidence" or not row["se_or_sd"] > 0:
        return np.nan
    z = abs(row["estimate"] / row["se_or_sd"])
    return float(2 * (stats.t.sf(z, dof) if dof else stats.norm.sf(z)))


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
        return ("Classical columns: * p < 0.1, ** p < 0.05, *** p < 0.01. Bayesian columns: "
                f"posterior mean (posterior sd), no stars. Dependent variable: {self.depvar}.")

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
            fe = self.footer.loc["Fixed effects", col]
            models.append(_Column(sub, self.depvar, fe.replace(", ", "+"),
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
                     depvar: str = "outcome", fixed_effects: str = "unit, time",
                     digits: int = 3) -> RegressionTable:
    """A regression table of ``results`` (classical and Bayesian side by side).

    Parameters
    ----------
    labels : column heads (default ``(1) method``, ``(2) method``...).
    effects : ``(estimand, group)`` rows to show; default every ``att`` row, overall first.
    fixed_effects : the fixed-effects line of every column.
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
    rows, footer = [], {}
    for label, res in zip(labels, results):
        table = res.effects()
        wanted = (table[table["estimand"] == "att"] if effects is None else
                  table[[(e, g) in set(effects) for e, g in zip(table["estimand"],
                                                                  table["group"])]])
        wanted = wanted.sort_values("group", key=lambda g: g != "overall", kind="stable")
        dof = getattr(res, "info", {}).get("df")
        # credible or confidence: read off the rows shown (a placebo result also carries
        # equal-tailed rows of its placebo distribution, which are not its ATT's interval)
        bayesian = bool((wanted["interval"] != "confidence").any()) if len(wanted) else False
        for _, r in wanted.iterrows():
            rows.append({"column": label, "name": _row_name(r["estimand"], r["group"]),
                         "b": r["estimate"], "se": r["se_or_sd"], "p": _p_value(r, dof),
                         "bayesian": bayesian})
        overall = table[(table["estimand"] == "att") & (table["group"] == "overall")]
        # the estimation sample: recorded by the estimator, else the ATT row's count
        n = getattr(res, "info", {}).get("n_obs")
        if n is None:
            n = overall["n_obs"].iloc[0] if len(overall) else (
                table["n_obs"].max() if len(table) else pd.NA)
        footer[label] = {"Observations": "" if pd.isna(n) else int(n),
                         "Fixed effects": fixed_effects,
                         "SE / sd": "posterior sd" if bayesian else "SE"}
    return RegressionTable(coefs=pd.DataFrame(rows), columns=tuple(labels),
                           footer=pd.DataFrame(footer), depvar=depvar, digits=digits)
