"""A study's steps by method family, and the side-by-side tables written one per family.

The five families (in report order): DID (two-way and event-study regressions, the
hierarchical Bayesian DID, heterogeneity and mechanism), staggered adoption (estimators robust
to heterogeneous timing, the Bacon decomposition), synthetic control (and its regression and
Bayesian twins), robustness (placebos, specification batteries, PSM-DID, sensitivity to
parallel-trend violations) and efficiency (frontiers and productivity indices). Each family's
table holds only its own steps, so none is as wide as the whole study.

>>> family_of("callaway_santanna"), family_of("bayesian_sfa")
('staggered adoption', 'efficiency')
>>> from types import SimpleNamespace as S
>>> steps = [S(name="b", kind="placebo"), S(name="a", kind="twfe")]
>>> {f: [s.name for s in members] for f, members in by_family(steps).items()}
{'DID': ['a'], 'robustness': ['b']}
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["FAMILIES", "family_of", "by_family", "family_slug", "family_markdown",
           "family_html", "family_latex", "write_family_tables"]

FAMILIES: dict[str, tuple[str, ...]] = {
    "DID": ("twfe", "fe_ladder", "event_study", "hierarchical_did", "heterogeneity",
            "posterior_contrasts", "mediation", "bayesian_mediation"),
    "staggered adoption": ("callaway_santanna", "sun_abraham", "imputation", "bacon"),
    "synthetic control": ("synth", "synthdid", "regression_control", "bayesian_synth",
                          "bayesian_regression_control", "ife", "mc_nnm", "bayes_factor"),
    "robustness": ("placebo", "robustness", "psm_did", "honest_did", "bayes_sensitivity"),
    "efficiency": ("sfa", "bayesian_sfa", "ml_index"),
}
OTHER = "other"
_FAMILY_OF = {kind: family for family, kinds in FAMILIES.items() for kind in kinds}


def family_of(kind: str) -> str:
    """The family of a step kind; ``"other"`` for a kind no family lists (a test keeps every
    registered kind listed)."""
    return _FAMILY_OF.get(kind, OTHER)


def by_family(steps: Iterable[Any]) -> dict[str, list[Any]]:
    """Steps (anything with ``.kind``) grouped by family, families in report order, steps
    in study order; families without steps are left out."""
    steps = list(steps)
    grouped = {family: [s for s in steps if family_of(s.kind) == family]
               for family in (*FAMILIES, OTHER)}
    return {family: members for family, members in grouped.items() if members}


def family_slug(family: str) -> str:
    """``"staggered adoption"`` -> ``"staggered_adoption"`` (file names, anchors)."""
    return family.replace(" ", "_").lower()


# ---------------------------------------------------------------------------- renderings
def family_markdown(comparisons: Mapping[str, Any], level: int = 3, digits: int = 3) -> str:
    """One Markdown section per family (heading ``#`` * ``level``), each its own table."""
    parts = []
    for family, comparison in comparisons.items():
        parts += [f"{'#' * level} {family} ({len(comparison.labels)} steps)", "",
                  comparison.to_markdown(digits), ""]
    return "\n".join(parts)


def family_html(comparisons: Mapping[str, Any], level: int = 3, digits: int = 3) -> str:
    """One HTML section per family, each its own ``<table>``."""
    return "".join(f"<h{level} id=\"family-{family_slug(family)}\">{html.escape(family)} "
                   f"({len(comparison.labels)} steps)</h{level}>"
                   + comparison.to_html(digits, caption=f"{family}: effects side by side.")
                   for family, comparison in comparisons.items())


def family_latex(comparisons: Mapping[str, Any], study: str, digits: int = 3) -> str:
    """One booktabs table per family (``\\usepackage{booktabs}``)."""
    return "\n".join(comparison.to_latex(digits, caption=f"{study}: {family}",
                                         label=f"tab:{family_slug(family)}")
                     for family, comparison in comparisons.items())


def write_family_tables(comparisons: Mapping[str, Any], out: Path, study: str, *,
                        stem: str = "comparison") -> dict[str, Path]:
    """``<stem>.md``, ``.html`` and ``.tex``: the family tables one after the other."""
    out = Path(out)
    paths = {kind: out / f"{stem}.{kind}" for kind in ("md", "html", "tex")}
    paths["md"].write_text(f"# {study}: effects side by side, by family\n\n"
                           + family_markdown(comparisons, level=2), encoding="utf-8")
    paths["html"].write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
                             f"{html.escape(study)}</title></head><body>"
                             + family_html(comparisons, level=2) + "</body></html>",
                             encoding="utf-8")
    paths["tex"].write_text(family_latex(comparisons, study), encoding="utf-8")
    return paths
