"""compare(): alignment, labels, formatting, renderings, plots and files."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from bayesdid.compare import COMPARISON_COLUMNS, Comparison, compare
from bayesdid.errors import BayesDidError, ComparisonError
from bayesdid.report import (
    event_study_plot,
    format_interval,
    group_sort_key,
    latex_escape,
)
from bayesdid.results import EffectResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _row(estimand, group, estimate, half, interval="confidence", n_obs=100, level=0.95):
    return dict(estimand=estimand, group=group, estimate=estimate, se_or_sd=half / 1.96,
                lower=estimate - half, upper=estimate + half, level=level,
                interval=interval, n_obs=n_obs)


class FakeBayesResult(EffectResult):
    """Looks like a BayesResult: effects(level=, interval=), HDI rows. Records calls."""

    def effects(self, level=None, interval=None):  # noqa: D102 - test double
        self.info.setdefault("calls", []).append(dict(level=level, interval=interval))
        table = self.table.copy()
        if level is not None:
            table["level"] = level
        return table


@pytest.fixture
def twfe() -> EffectResult:
    rows = [
        _row("att", "overall", 0.10, 0.04),
        _row("att", "cohort=2011", 0.20, 0.10),
        _row("att", "region=East", 0.05, 0.05),
    ]
    rows += [_row("event_time", f"k={k}", 0.02 * k, 0.05) for k in (-3, -2, 0, 1, 2)]
    return EffectResult.from_rows(rows, method="twfe")


@pytest.fixture
def bayes() -> FakeBayesResult:
    rows = [
        _row("att", "overall", 0.12, 0.03, "hdi"),
        _row("att", "region=East", 0.07, 0.04, "hdi"),
        _row("att", "cohort=2011, region=East", 0.09, 0.06, "hdi", n_obs=20),
        _row("att", "cohort=2010", 0.15, 0.08, "hdi"),
    ]
    rows += [_row("event_time", f"k={k}", 0.03 * k, 0.04, "hdi") for k in range(-3, 4)]
    return FakeBayesResult.from_rows(rows, method="hierarchical_did")


# -- alignment -------------------------------------------------------------------------
@pytest.mark.unit
def test_long_table_columns_order_and_labels(twfe, bayes):
    cmp = compare(twfe, bayes)
    assert isinstance(cmp, Comparison)
    assert list(cmp.table.columns) == COMPARISON_COLUMNS
    assert cmp.labels == ("twfe", "hierarchical_did")
    assert cmp.methods == ("twfe", "hierarchical_did")
    assert len(cmp.table) == len(twfe.table) + len(bayes.table)
    att_groups = list(pd.unique(cmp.table.loc[cmp.table.estimand == "att", "group"]))
    assert att_groups == ["overall", "cohort=2010", "cohort=2011", "region=East",
                          "cohort=2011, region=East"]
    ks = cmp.table.loc[cmp.table.estimand == "event_time", "group"]
    assert list(pd.unique(ks)) == [f"k={k}" for k in range(-3, 4)]
    # the Bayesian result was asked with keyword level only
    assert bayes.info["calls"][-1] == dict(level=0.95, interval=None)


@pytest.mark.unit
def test_wide_is_outer_join_with_values_in_right_columns(twfe, bayes):
    wide = compare(twfe, bayes).wide()
    assert list(wide.columns) == [
        "estimand", "group", "twfe: estimate", "twfe: interval",
        "hierarchical_did: estimate", "hierarchical_did: interval"]
    assert not wide.duplicated(["estimand", "group"]).any()
    keys = set(zip(twfe.table.estimand, twfe.table.group)) | set(
        zip(bayes.table.estimand, bayes.table.group))
    assert set(zip(wide.estimand, wide.group)) == keys
    w = wide.set_index(["estimand", "group"])
    assert w.loc[("att", "overall"), "twfe: estimate"] == pytest.approx(0.10)
    assert w.loc[("att", "overall"), "hierarchical_did: estimate"] == pytest.approx(0.12)
    assert w.loc[("att", "overall"), "twfe: interval"] == "[0.060, 0.140]"
    assert w.loc[("att", "overall"), "hierarchical_did: interval"] == "[0.090, 0.150]"
    # only twfe reports cohort=2011; only the Bayesian result reports cohort x region
    assert w.loc[("att", "cohort=2011"), "twfe: estimate"] == pytest.approx(0.20)
    assert math.isnan(w.loc[("att", "cohort=2011"), "hierarchical_did: estimate"])
    assert w.loc[("att", "cohort=2011"), "hierarchical_did: interval"] == ""
    assert math.isnan(w.loc[("att", "cohort=2011, region=East"), "twfe: estimate"])
    assert w.loc[("event_time", "k=3"), "twfe: interval"] == ""
    assert w.loc[("event_time", "k=-3"), "hierarchical_did: estimate"] == pytest.approx(-0.09)


@pytest.mark.unit
def test_level_is_passed_and_intervals_recomputed(twfe, bayes):
    cmp = compare(twfe, bayes, level=0.90)
    row = cmp.table.query("method == 'twfe' and group == 'overall'").iloc[0]
    half = 1.6448536 * 0.04 / 1.96
    assert row["level"] == pytest.approx(0.90)
    assert (row["lower"], row["upper"]) == pytest.approx((0.10 - half, 0.10 + half))
    assert bayes.info["calls"][-1]["level"] == 0.90
    assert compare(twfe, level=None).table["level"].eq(0.95).all()


@pytest.mark.unit
def test_label_deduplication_and_custom_labels(twfe, bayes):
    assert compare(twfe, twfe, twfe).labels == ("twfe", "twfe (2)", "twfe (3)")
    assert compare(twfe, bayes, labels=["TWFE", "HBD"]).labels == ("TWFE", "HBD")
    assert compare(twfe, bayes, labels=["a", "a"]).labels == ("a", "a (2)")
    # a generated label never clashes with one the user gave
    assert compare(twfe, twfe, twfe, labels=["x", "x", "x (2)"]).labels == (
        "x", "x (3)", "x (2)")
    wide = compare(twfe, twfe).wide()
    assert "twfe (2): estimate" in wide.columns


# -- errors ------------------------------------------------------------------------------
@pytest.mark.unit
def test_errors_for_bad_input(twfe, bayes):
    with pytest.raises(ComparisonError, match="at least one"):
        compare()
    with pytest.raises(ComparisonError, match="DataFrame") as info:
        compare(twfe, twfe.effects())
    assert isinstance(info.value, BayesDidError) and isinstance(info.value, ValueError)
    with pytest.raises(ComparisonError, match="pass them separately"):
        compare([twfe, bayes])
    with pytest.raises(ComparisonError, match="1 label"):
        compare(twfe, bayes, labels=["only one"])
    with pytest.raises(ComparisonError, match="non-empty"):
        compare(twfe, bayes, labels=["a", ""])
    dup = EffectResult.from_rows([_row("att", "overall", 0.1, 0.1)] * 2, method="dup")
    with pytest.raises(ComparisonError, match="more than once"):
        compare(dup)


@pytest.mark.unit
def test_error_class_is_exported():
    import bayesdid.errors as errors

    assert "ComparisonError" in errors.__all__
    assert issubclass(ComparisonError, errors.BayesDidError)


# -- formatting --------------------------------------------------------------------------
@pytest.mark.unit
def test_interval_formatting():
    assert format_interval(-0.12345, 0.5) == "[-0.123, 0.500]"
    assert format_interval(-0.00001, 0.00001) == "[0.000, 0.000]"
    assert format_interval(1.0, 2.0, digits=1) == "[1.0, 2.0]"
    assert format_interval(float("nan"), float("nan")) == ""


@pytest.mark.unit
def test_group_order():
    groups = ["k=10", "unit=Beijing", "k=-6", "region=West", "cohort=2012", "overall",
              "cohort=2011, region=East", "k=2", "cohort=2009", "region=East"]
    assert sorted(groups, key=group_sort_key) == [
        "overall", "cohort=2009", "cohort=2012", "region=East", "region=West",
        "cohort=2011, region=East", "k=-6", "k=2", "k=10", "unit=Beijing"]


@pytest.mark.unit
def test_markdown(twfe, bayes):
    md = compare(twfe, bayes).to_markdown(digits=2)
    lines = md.splitlines()
    assert lines[0].startswith("| estimand")
    assert "twfe: interval" in lines[0] and "hierarchical_did: estimate" in lines[0]
    overall = next(line for line in lines if "| overall" in line)
    assert "0.10" in overall and "[0.06, 0.14]" in overall and "[0.09, 0.15]" in overall
    assert "nan" not in md
    assert "95% confidence interval" in md and "95% HDI" in md


@pytest.mark.unit
def test_latex_escaping_and_booktabs(twfe, bayes):
    tex = compare(twfe, bayes, labels=["twfe_cl", "hbd & 50%"]).to_latex()
    for token in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}"):
        assert token in tex
    assert r"twfe\_cl" in tex and r"hbd \& 50\%" in tex
    assert r"event\_time" in tex and "event_time" not in tex.replace(r"event\_time", "")
    assert latex_escape("a_b#c$d~e^f\\g") == (
        r"a\_b\#c\$d\textasciitilde{}e\textasciicircum{}f\textbackslash{}g")
    body = [ln for ln in tex.splitlines() if ln.endswith(r"\\") and "overall" in ln][0]
    assert body.count("&") == 5  # estimand, group, 2 x (estimate, interval)
    k3 = [ln for ln in tex.splitlines() if "k=-3" in ln][0]
    assert "$-$0.060" in k3 and "[$-$0.110, $-$0.010]" in k3


@pytest.mark.unit
def test_html(twfe, bayes):
    cmp = compare(twfe, bayes, labels=["twfe", "<bayes>"])
    html = cmp.to_html()
    assert html.lstrip().startswith("<table") and html.rstrip().endswith("</table>")
    assert "<caption>" in html and "credible" in html and "confidence" in html
    assert "&lt;bayes&gt;" in html and "<bayes>" not in html
    assert html.count("<tr>") == 2 + len(cmp.wide())
    assert "[0.060, 0.140]" in html
    assert cmp._repr_html_() == html
    body = html.split("<tbody>")[1].split("</tbody>")[0]
    assert body.count("<tr>") == len(cmp.wide()) and body.count("<td") == 6 * len(cmp.wide())


# -- plots -------------------------------------------------------------------------------
def _png_ok(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5_000


@pytest.mark.pipeline
def test_forest_plot_renders(tmp_path, twfe, bayes):
    cmp = compare(twfe, bayes)
    fig = cmp.forest(estimand="att")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    points = [ln for ln in ax.lines if ln.get_label() in cmp.labels]
    assert [ln.get_label() for ln in points] == list(cmp.labels)
    assert len(points[0].get_xdata()) == 3 and len(points[1].get_xdata()) == 4
    intervals = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(intervals) == 2
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks == ["overall", "cohort=2010", "cohort=2011", "region=East",
                     "cohort=2011, region=East"]
    # methods side by side: the same row, different heights
    y_twfe, y_bayes = points[0].get_ydata()[0], points[1].get_ydata()[0]
    assert y_twfe != y_bayes and abs(y_twfe - y_bayes) < 0.5
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["twfe (95% CI)", "hierarchical_did (95% HDI)"]
    assert any(np.allclose(ln.get_xdata(), 0) for ln in ax.lines)  # zero line
    path = tmp_path / "forest.png"
    fig.savefig(path)
    _png_ok(path)


@pytest.mark.unit
def test_forest_filters_and_ax(twfe, bayes):
    cmp = compare(twfe, bayes)
    fig = Figure()
    ax = fig.add_subplot()
    assert cmp.forest(groups=["overall", "region=East"], ax=ax) is fig
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks == ["overall", "region=East"]
    all_rows = cmp.forest().axes[0]
    assert len(all_rows.get_yticks()) == len(cmp.wide())
    with pytest.raises(ComparisonError, match="unknown group"):
        cmp.forest(groups=["cohort=1999"])
    with pytest.raises(ComparisonError, match="unknown estimand"):
        cmp.forest(estimand="nope")


@pytest.mark.pipeline
def test_event_study_plot(tmp_path, twfe, bayes):
    fig = event_study_plot(twfe, bayes, twfe, labels=["TWFE", "HBD", "TWFE"])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "event time (k)" and ax.get_ylabel() == "effect"
    errorbars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(errorbars) == 2  # two classical series
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1  # one Bayesian band
    assert [ln.get_label() for ln in ax.lines if ln.get_label() == "HBD (95% HDI)"]
    # classical series are offset in k so they do not overlap
    x0 = errorbars[0].lines[0].get_xdata()
    x1 = errorbars[1].lines[0].get_xdata()
    assert len(x0) == 5 and np.all(np.abs(np.asarray(x0) - np.asarray(x1)) > 0)
    assert np.allclose(np.round(x0), [-3, -2, 0, 1, 2])
    assert any(np.allclose(ln.get_xdata(), -0.5) for ln in ax.lines)
    assert any(np.allclose(ln.get_ydata(), 0) for ln in ax.lines)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["TWFE (95% CI)", "HBD (95% HDI)", "TWFE (2) (95% CI)"]
    path = tmp_path / "event_study.png"
    fig.savefig(path)
    _png_ok(path)


@pytest.mark.unit
def test_event_study_plot_needs_event_time_rows():
    res = EffectResult.from_rows([_row("att", "overall", 0.1, 0.05)], method="twfe")
    with pytest.raises(ComparisonError, match="event_time"):
        event_study_plot(res)
    with pytest.raises(ComparisonError):
        event_study_plot("not a result")
    fig = Figure()
    ax = fig.add_subplot()
    es = EffectResult.from_rows(
        [_row("event_time", "k=0", 0.1, 0.05), _row("event_time", "k=1", 0.2, 0.05)],
        method="es")
    assert event_study_plot(es, ax=ax) is fig and isinstance(ax, Axes)


# -- files -------------------------------------------------------------------------------
@pytest.mark.pipeline
def test_save_writes_everything(tmp_path, twfe, bayes):
    cmp = compare(twfe, bayes)
    paths = cmp.save(tmp_path / "out", stem="lccp")
    assert {p.name for p in paths.values()} == {
        "lccp.md", "lccp.tex", "lccp.html", "lccp.csv", "forest.png"}
    for p in paths.values():
        assert p.exists() and p.stat().st_size > 0
    _png_ok(paths["png"])
    back = pd.read_csv(paths["csv"])
    assert list(back.columns) == COMPARISON_COLUMNS and len(back) == len(cmp.table)
    assert paths["md"].read_text() == cmp.to_markdown()
    assert r"\toprule" in paths["tex"].read_text()
    assert "<table" in paths["html"].read_text()


@pytest.mark.unit
def test_comparison_is_frozen(twfe):
    cmp = compare(twfe)
    with pytest.raises(AttributeError):
        cmp.labels = ("x",)  # type: ignore[misc]
