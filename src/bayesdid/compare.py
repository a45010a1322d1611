"""Posterior vs classical, side by side.

:func:`compare` aligns several :class:`~bayesdid.results.EffectResult` objects (classical or
Bayesian) on (estimand, group) and returns a :class:`Comparison`: one long table, a wide
table, Markdown/LaTeX/HTML renderings and a forest plot.

>>> from bayesdid.results import EffectResult
>>> row = dict(estimand="att", group="overall", se_or_sd=0.02, level=0.95, n_obs=100)
>>> twfe = EffectResult.from_rows([dict(row, estimate=0.10, lower=0.06, upper=0.14,
...                                     interval="confidence")], method="twfe")
>>> bayes = EffectResult.from_rows([dict(row, estimate=0.12, lower=0.08, upper=0.16,
...                                      interval="hdi")], method="hierarchical_did")
>>> cmp = compare(twfe, bayes)
>>> cmp.labels
('twfe', 'hierarchical_did')
>>> cmp.wide().loc[0, "hierarchical_did: interval"]
'[0.080, 0.160]'

When a model-based credible interval sits beside a cluster-robust confidence interval
(a classical result whose ``info`` records a CRV vcov or a cluster), :attr:`Comparison.notes`
says so, and every rendering shows the note:

>>> crv = EffectResult.from_rows([dict(row, estimate=0.10, lower=0.06, upper=0.14,
...     interval="confidence")], method="twfe", info={"vcov": "CRV1 by city"})
>>> print(compare(crv, bayes).notes[0])  # doctest: +NORMALIZE_WHITESPACE
Model-based beside cluster-robust intervals: hierarchical_did gives model-based credible
intervals (no clustering); cluster-robust ones from twfe (CRV1 by city). Under correlation
within clusters that the model does not capture (e.g. shocks common to a cluster's units),
the credible intervals can be too narrow.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .bayes.notices import inference_from_info
from .errors import ComparisonError
from .report.align import COMPARISON_COLUMNS, align_results
from .report.tables import (
    latex_escape,
    render_html,
    render_latex,
    render_markdown,
    wide_table,
)
from .results import EffectResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["compare", "Comparison", "COMPARISON_COLUMNS"]

logger = logging.getLogger(__name__)


def _cluster_robust(result: EffectResult) -> str | None:
    """The cluster-robust variance a classical result records (``info["vcov"]`` such as
    ``"CRV1 by city"``, or ``info["cluster"]``), else None."""
    info = getattr(result, "info", None) or {}
    vcov = info.get("vcov")
    if isinstance(vcov, str) and ("CRV" in vcov or "cluster" in vcov.lower()):
        return vcov
    cluster = info.get("cluster")
    if isinstance(cluster, str) and cluster:
        return f"clustered by {cluster}"
    return None


def _design_notes(results: tuple[EffectResult, ...], labels: list[str],
                  table: pd.DataFrame) -> tuple[str, ...]:
    """A note when model-based credible intervals sit beside cluster-robust ones."""
    kinds = {label: set(table.loc[table["method"] == label, "interval"]) for label in labels}
    bayes = [(label, inference_from_info(getattr(r, "info", None)))
             for label, r in zip(labels, results) if kinds[label] & {"hdi", "eti"}]
    robust = [(label, vcov) for label, r in zip(labels, results)
              if "confidence" in kinds[label] and (vcov := _cluster_robust(r))]
    if not bayes or not robust:
        return ()
    if len(bayes) == 1:
        how = f"{bayes[0][1]}; " if bayes[0][1] else ""
        b_text = f"{bayes[0][0]} gives model-based credible intervals ({how}no clustering)"
    else:
        b_text = ("model-based credible intervals (no clustering) come from "
                  + ", ".join(f"{lb} ({how})" if how else lb for lb, how in bayes))
    r_text = "cluster-robust ones from " + ", ".join(f"{lb} ({v})" for lb, v in robust)
    return (f"Model-based beside cluster-robust intervals: {b_text}; {r_text}. Under "
            "correlation within clusters that the model does not capture (e.g. shocks "
            "common to a cluster's units), the credible intervals can be too narrow.",)


@dataclass(frozen=True, eq=False)
class Comparison:
    """Several results aligned on (estimand, group).

    Attributes
    ----------
    table : long table, one row per reported (estimand, group, method), columns
        ``COMPARISON_COLUMNS`` (``method`` holds the label). Rows: estimands in order of
        first appearance; groups overall, cohort, region, cohort x region, event time.
    labels : the method labels, in the order the results were given.
    level : the interval level asked for (None: each result's own).
    methods : each result's ``.method``, in the same order as ``labels``.
    notes : sentences every rendering shows under the table (e.g. that a model-based
        credible interval sits beside a cluster-robust one).
    """

    table: pd.DataFrame
    labels: tuple[str, ...]
    level: float | None = 0.95
    methods: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "table", self.table.copy())
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "notes", tuple(self.notes))

    # -- tables ---------------------------------------------------------------------------
    def wide(self, digits: int = 3) -> pd.DataFrame:
        """One row per (estimand, group) (outer join over methods): per method the columns
        ``"<label>: estimate"`` (NaN if the method does not report that row) and
        ``"<label>: interval"`` (``"[lo, hi]"``, blank if missing)."""
        return wide_table(self.table, self.labels, digits)

    def to_markdown(self, digits: int = 3) -> str:
        """A Markdown table, with a note saying which intervals are confidence and which
        credible (HDI/ETI)), and :attr:`notes`."""
        text = render_markdown(self.table, self.labels, digits)
        return text + "".join(f"\nNote: {n}\n" for n in self.notes)

    def to_latex(self, digits: int = 3, *, caption: str | None = None,
                 label: str | None = None) -> str:
        """A booktabs LaTeX table (``\\usepackage{booktabs}``), special characters escaped;
        :attr:`notes` under the interval note."""
        text = render_latex(self.table, self.labels, digits, caption=caption, label=label)
        if not self.notes:
            return text
        extra = "".join(r"\par{\footnotesize Note: " + latex_escape(n) + "}\n"
                        for n in self.notes)
        head, tail = text.rsplit("\\end{table}", 1)
        return head + extra + "\\end{table}" + tail

    def to_html(self, digits: int = 3, *, caption: str | None = None) -> str:
        """A standalone HTML ``<table>`` whose caption explains the interval kinds (and
        carries :attr:`notes`)."""
        text = render_html(self.table, self.labels, digits, caption=caption)
        if not self.notes:
            return text
        extra = "".join(f"<br>Note: {html.escape(n)}" for n in self.notes)
        return text.replace("</small></caption>", extra + "</small></caption>", 1)

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return (f"<Comparison labels={list(self.labels)} rows={len(self.table)}>\n"
                + self.to_markdown())

    # -- plots ----------------------------------------------------------------------------
    def forest(self, estimand: str | Sequence[str] | None = None,
               groups: Sequence[str] | None = None, ax: Axes | None = None,
               title: str | None = None) -> Figure:
        """Forest plot: one row per (estimand, group), methods side by side.

        See :func:`bayesdid.report.plots.forest_plot`.
        """
        from .report.plots import forest_plot

        return forest_plot(self.table, estimand=estimand, groups=groups,
                           methods=self.labels, ax=ax, title=title)

    # -- files ----------------------------------------------------------------------------
    def save(self, folder: str | Path, stem: str = "comparison", *, digits: int = 3,
             dpi: int = 150) -> dict[str, Path]:
        """Write ``<stem>.md``, ``.tex``, ``.html``, ``.csv`` (the long table) and
        ``forest.png`` into ``folder`` (created if needed); returns ``{kind: path}``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {kind: folder / f"{stem}.{kind}" for kind in ("md", "tex", "html", "csv")}
        paths["md"].write_text(self.to_markdown(digits), encoding="utf-8")
        paths["tex"].write_text(self.to_latex(digits), encoding="utf-8")
        paths["html"].write_text(self.to_html(digits), encoding="utf-8")
        self.table.to_csv(paths["csv"], index=False)
        paths["png"] = folder / "forest.png"
        self.forest().savefig(paths["png"], dpi=dpi, bbox_inches="tight")
        logger.info("comparison written to %s", folder)
        return paths


def compare(*results: EffectResult, labels: Sequence[str] | None = None,
            level: float | None = 0.95) -> Comparison:
    """Align results on (estimand, group), posterior beside classical.

    Parameters
    ----------
    *results : EffectResult (classical) or BayesResult objects.
    labels : one label per result; default each result's ``.method``, de-duplicated
        (``"twfe"``, ``"twfe (2)"``).
    level : interval level passed to every ``effects(level=...)``; None keeps each
        result's own level.

    Returns
    -------
    Comparison ; its ``notes`` say when a Bayesian (model-based, unclustered) interval sits
    beside a cluster-robust classical one (``info["vcov"]`` like ``"CRV1 by city"``).

    Raises
    ------
    ComparisonError : no results, an argument that is not an EffectResult, a label count
        that does not match, or a result reporting one (estimand, group) twice.

    Examples
    --------
    >>> from bayesdid.results import EffectResult
    >>> r = EffectResult.from_rows([dict(estimand="att", group="overall", estimate=0.1,
    ...     se_or_sd=0.02, lower=0.06, upper=0.14, level=0.95, interval="confidence",
    ...     n_obs=100)], method="twfe")
    >>> compare(r, r).labels
    ('twfe', 'twfe (2)')
    """
    table, names = align_results(results, labels, level)
    return Comparison(table=table, labels=tuple(names), level=level,
                      methods=tuple(str(r.method) for r in results),
                      notes=_design_notes(results, names, table))
