"""The report of a study run: ``report.md``, ``report.html`` and one LaTeX table per step.

The report opens with one line per step in words (:mod:`bayesdid.study.narrative`:
headline effect, interval, P(effect > 0) or p-value, failed diagnostics), then the panel, a
convergence summary of the Bayesian steps, a regression table of the overall ATTs, and the
steps' effects side by side, one table per family of methods
(:mod:`bayesdid.study.families`), with the forest plot of the overall and group
effects and the event-time plot. Per step: what ran (kind, options, time or 'from cache'),
its effects with intervals (by region, cohort and event time where the step reports them),
its extra tables, convergence diagnostics for Bayesian steps (whether every check passed,
and the parameters that failed R-hat <= 1.01, bulk/tail ESS >= 400, with the divergences),
and its figures.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..results import EffectResult
from ..report.regression_table import regression_table
from .families import family_html, family_markdown, family_of
from .narrative import narrative
from ..report.tables import order_rows, render_html, render_latex, render_markdown

__all__ = ["write_report"]

_MAX_EXTRA_ROWS = 15
_CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f3f3f3; }
td:first-child, td:nth-child(2) { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5rem 0; }
code { background: #f6f6f6; padding: 0 0.2rem; }
.note { color: #555; font-size: 0.9rem; }
"""


def _options_text(options: Mapping[str, Any]) -> str:
    if not options:
        return "defaults"
    return json.dumps({k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()},
                      default=lambda o: dict(o) if isinstance(o, Mapping) else str(o))


def _step_table(table: pd.DataFrame, label: str) -> pd.DataFrame:
    return order_rows(table.assign(method=label), [label])


def _extra_head(df: pd.DataFrame) -> pd.DataFrame:
    return df.head(_MAX_EXTRA_ROWS)


def _att_regression_table(steps: list, outputs: Mapping[str, Any], panel_text: str):
    """A paper-style table of the steps that report an overall ATT (None if none does)."""
    with_att = [s for s in steps
                if ((outputs[s.name].table["estimand"] == "att")
                    & (outputs[s.name].table["group"] == "overall")).any()]
    if not with_att:
        return None
    results = [EffectResult(table=outputs[s.name].table, method=s.kind,
                            info=dict(getattr(outputs[s.name].result, "info", {}) or {}))
               for s in with_att]
    outcome = next((ln.split(":", 1)[1].split(";")[0].strip() for ln in panel_text.splitlines()
                    if ln.startswith("outcome:")), "outcome")
    return regression_table(*results, labels=[f"({i}) {s.name}" for i, s in
                                              enumerate(with_att, 1)],
                            effects=[("att", "overall")], depvar=outcome)


def _worst_rows(diag: pd.DataFrame, step: str) -> tuple[pd.DataFrame, str]:
    """At most ``_MAX_EXTRA_ROWS`` diagnostics rows: the highest R-hat first (a model with
    thousands of per-observation quantities would otherwise flood the report)."""
    title = "Convergence diagnostics"
    if len(diag) <= _MAX_EXTRA_ROWS:
        return diag, title
    key = next((c for c in diag.columns if "r_hat" in c.lower()), None)
    shown = diag.sort_values(key, ascending=False) if key else diag
    return shown.head(_MAX_EXTRA_ROWS), (f"{title} (the {_MAX_EXTRA_ROWS} of {len(diag)} "
                                         f"rows with the highest R-hat; all in "
                                         f"diagnostics_{step}.csv)")


def _md(df: pd.DataFrame, floatfmt: str = ".3g") -> str:
    """Markdown of a diagnostics table; '|' in names (``att|overall``) escaped."""
    text = df.assign(**{c: df[c].astype(str).str.replace("|", r"\|", regex=False)
                        for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])})
    return text.to_markdown(index=False, floatfmt=floatfmt)


def _convergence(diag: pd.DataFrame) -> tuple[str, pd.DataFrame, int]:
    """(one sentence, the failing rows worst first, divergences) for a diagnostics table."""
    from ..bayes.convergence import failed_checks

    bad = failed_checks(diag)
    n_div = (int(diag["divergences"].iloc[0]) if "divergences" in diag and len(diag)
             else int(diag.attrs.get("divergences", 0)))
    if bad.empty and not n_div:
        return (f"Converged: all {len(diag)} quantities pass R-hat <= 1.01 and bulk/tail "
                "ESS >= 400; no divergent transitions.", bad, n_div)
    parts = [f"{len(bad)} of {len(diag)} quantities fail R-hat <= 1.01 or bulk/tail "
             "ESS >= 400"] if len(bad) else []
    if n_div:
        parts.append(f"{n_div} divergent transition(s)")
    return ("**Not converged**: " + "; ".join(parts) + ". Do not trust these intervals "
            "before refitting with more draws and tune (and a higher target_accept for "
            "divergences).", bad, n_div)


def _failed_table(bad: pd.DataFrame) -> pd.DataFrame:
    return bad.head(_MAX_EXTRA_ROWS).assign(fails=[", ".join(f) for f in
                                                   bad["fails"].head(_MAX_EXTRA_ROWS)]
                                            ).drop(columns="severity")


def _convergence_summary(steps: list, diagnostics: Mapping[str, pd.DataFrame]):
    """One row per Bayesian step: converged?, failing quantities, divergences, worst five."""
    rows = []
    for step in steps:
        if step.name not in diagnostics:
            continue
        _, bad, n_div = _convergence(diagnostics[step.name])
        rows.append({"step": step.name, "converged": "yes" if bad.empty and not n_div else "NO",
                     "failing quantities": f"{len(bad)} of {len(diagnostics[step.name])}",
                     "divergences": n_div,
                     "worst": ", ".join(bad["parameter"].head(5)) or "-"})
    return pd.DataFrame(rows)


def _inline_html(line: str) -> str:
    """A narrative line's Markdown (`code`, **bold**) as HTML."""
    text = html.escape(line)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def write_report(*, study, panel_text: str, steps: list, outputs: Mapping[str, Any],
                 comparisons: Mapping[str, Any], seconds: Mapping[str, float],
                 refitted: tuple[str, ...], diagnostics: Mapping[str, pd.DataFrame],
                 figures: Mapping[str, Path], out: Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``tables/<step>.tex`` into ``out``.

    ``comparisons`` are the side-by-side comparisons by family (family -> ``Comparison``);
    ``figures`` are study-level figures (forest plot, event study) by title; each step's
    own figures come from its output. Returns the written paths by name.
    """
    out = Path(out)
    (out / "tables").mkdir(exist_ok=True)
    paths: dict[str, Path] = {}
    md: list[str] = [f"# {study.name}", ""]
    body: list[str] = [f"<h1>{html.escape(study.name)}</h1>"]
    if study.description:
        md += [study.description, ""]
        body.append(f"<p>{html.escape(study.description)}</p>")
    lines = narrative(steps, outputs, diagnostics)
    md += ["## Summary", "", *(f"- {line}" for line in lines), ""]
    body += ["<h2>Summary</h2><ul>",
             *(f"<li>{_inline_html(line)}</li>" for line in lines), "</ul>"]
    md += ["## Panel", "", "```", panel_text, "```", ""]
    body.append(f"<h2>Panel</h2><pre>{html.escape(panel_text)}</pre>")
    conv = _convergence_summary(steps, diagnostics)
    if len(conv):
        note = ("R-hat <= 1.01, bulk and tail ESS >= 400 for every sampled parameter and "
                "reported effect, and no divergent transition; per-step details below.")
        md += ["## Convergence of the Bayesian steps", "", note, "",
               _md(conv), ""]
        body += ["<h2>Convergence of the Bayesian steps</h2>",
                 f'<p class="note">{html.escape(note)}</p>', conv.to_html(index=False)]

    reg = _att_regression_table(steps, outputs, panel_text)
    if reg is not None:
        md += ["## Regression table (overall ATT of each step)", "", reg.to_markdown(), ""]
        body += ["<h2>Regression table (overall ATT of each step)</h2>", reg.to_html()]
        paths["latex_regression_table"] = out / "tables" / "regression_table.tex"
        paths["latex_regression_table"].write_text(reg.to_latex(), encoding="utf-8")
    md += ["## Steps side by side, by family", "", family_markdown(comparisons, level=3)]
    body += ["<h2>Steps side by side, by family</h2>", family_html(comparisons, level=3)]
    for title, path in figures.items():
        rel = Path(path).relative_to(out)
        md += [f"![{title}]({rel.as_posix()})", ""]
        body.append(f'<figure><img src="{html.escape(rel.as_posix())}" alt="{html.escape(title)}">'
                    f"<figcaption>{html.escape(title)}</figcaption></figure>")

    for step in steps:
        output = outputs[step.name]
        label = step.name
        timing = ("read from the cache (unchanged since the last run)"
                  if step.name not in refitted else f"{seconds.get(step.name, 0.0):.1f} s")
        opts = _options_text(step.options)
        table = _step_table(output.table, label)
        md += [f"## Step `{step.name}` ({step.kind}, {family_of(step.kind)})", "",
               f"Options: `{opts}`; time: {timing}.", "",
               render_markdown(table, [label]), ""]
        body += [f"<h2>Step <code>{html.escape(step.name)}</code> ({html.escape(step.kind)}, "
                 f"{html.escape(family_of(step.kind))})</h2>",
                 f'<p class="note">Options: <code>{html.escape(opts)}</code>; time: '
                 f"{html.escape(timing)}.</p>",
                 render_html(table, [label])]
        tex = out / "tables" / f"{step.name}.tex"
        tex.write_text(render_latex(table, [label], caption=f"{study.name}: {step.name}",
                                    label=f"tab:{step.name}"), encoding="utf-8")
        paths[f"latex_{step.name}"] = tex
        for name, extra in output.extras.items():
            shown = _extra_head(extra)
            more = (f" (first {_MAX_EXTRA_ROWS} of {len(extra)} rows; all in "
                    f"tables/{step.name}_{name}.csv)" if len(extra) > _MAX_EXTRA_ROWS else "")
            md += [f"### {name}{more}", "", shown.to_markdown(index=False, floatfmt=".4g"), ""]
            body += [f"<h3>{html.escape(name)}{html.escape(more)}</h3>",
                     shown.to_html(index=False, float_format=lambda x: f"{x:.4g}")]
        if step.name in diagnostics:
            sentence, bad, _ = _convergence(diagnostics[step.name])
            md += [sentence, ""]
            body.append(f'<p class="note">{html.escape(sentence)}</p>'
                        if sentence.startswith("Converged") else
                        f"<p><b>{html.escape(sentence.replace('**', ''))}</b></p>")
            if len(bad):
                more = (f" (the {_MAX_EXTRA_ROWS} worst of {len(bad)})"
                        if len(bad) > _MAX_EXTRA_ROWS else "")
                shown = _failed_table(bad)
                md += [f"### Failed convergence checks{more}", "", _md(shown), ""]
                body += [f"<h3>Failed convergence checks{html.escape(more)}</h3>",
                         shown.to_html(index=False, float_format=lambda x: f"{x:.3g}")]
            diag, title = _worst_rows(diagnostics[step.name], step.name)
            md += [f"### {title}", "", _md(diag), ""]
            body += [f"<h3>{html.escape(title)}</h3>",
                     diag.to_html(index=False, float_format=lambda x: f"{x:.3g}")]
        for name, path in output.figures.items():
            rel = Path(path).relative_to(out).as_posix()
            md += [f"![{step.name}: {name}]({rel})", ""]
            body.append(f'<figure><img src="{html.escape(rel)}" alt="{html.escape(name)}">'
                        f"<figcaption>{html.escape(step.name)}: {html.escape(name)}"
                        f"</figcaption></figure>")

    paths["report_md"] = out / "report.md"
    paths["report_md"].write_text("\n".join(md), encoding="utf-8")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(study.name)}</title><style>{_CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>")
    paths["report_html"] = out / "report.html"
    paths["report_html"].write_text(page, encoding="utf-8")
    return paths
