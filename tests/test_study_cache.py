"""Study runs: the step cache (rerun refits only edited steps), the report, and a run that
stops half-way saying so."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from bayesdid.errors import BayesDidError
from bayesdid.study import loads_study, run_study

SPEC = """
[study]
name = "cache"
[data]
simulate = "staggered"
[data.simulate_args]
n_units = 40
years = [2005, 2014]
batches = {{ "2008" = 5, "2010" = 6 }}
random_seed = 1

[[steps]]
kind = "twfe"

[[steps]]
kind = "event_study"
leads = {leads}
lags = 4

[[steps]]
kind = "hierarchical_did"
name = "bayes"
draws = 800
tune = 500
chains = 2
random_seed = {seed}
"""


def study(leads: int = 3, seed: int = 1):
    return loads_study(textwrap.dedent(SPEC.format(leads=leads, seed=seed)))


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    out = tmp_path_factory.mktemp("cache") / "results"
    return out, run_study(study(), out, progress=False)


@pytest.mark.pipeline
def test_first_run_fits_every_step_and_writes_the_report(first):
    out, res = first
    assert res.refitted == ("twfe", "event_study", "bayes")
    assert not (out / "INCOMPLETE.txt").exists()
    md = (out / "report.md").read_text()
    for name in ("twfe", "event_study", "bayes"):
        assert f"## Step `{name}`" in md
        assert (out / "tables" / f"{name}.tex").read_text().startswith(r"\begin{table}")
    att = res.effects.query("step == 'twfe' and estimand == 'att'")["estimate"].item()
    assert f"{att:.3f}" in md
    html = (out / "report.html").read_text()
    assert html.count("<table") >= 4 and '<img src="forest.png"' in html
    assert "Convergence diagnostics" in md  # the Bayesian step's R-hat / ESS table
    # 2 x 500 draws: every check passes (no ConvergenceWarning), and the report says so
    conv = res.results["bayes"].info["convergence"]
    assert conv["ok"] and conv["n_checked"] == len(pd.read_csv(out / "diagnostics_bayes.csv"))
    assert "## Convergence of the Bayesian steps" in md
    assert f"Converged: all {conv['n_checked']} quantities pass" in md


@pytest.mark.pipeline
def test_rerun_reads_every_step_from_the_cache(first, tmp_path):
    out, res = first
    assert sorted(p.name for p in (out / ".cache").iterdir()) == [
        "bayes.json.gz", "event_study.json.gz", "twfe.json.gz"]  # gzip-compressed entries
    again = run_study(study(), out, progress=False)
    assert again.refitted == ()
    pd.testing.assert_frame_equal(again.effects, res.effects)
    assert "read from the cache" in (out / "report.md").read_text()


@pytest.mark.pipeline
def test_editing_one_step_refits_only_that_step(first):
    out, res = first
    edited = run_study(study(leads=2), out, progress=False)
    assert edited.refitted == ("event_study",)
    leads = edited.effects.query("step == 'event_study' and group == 'k=-3'")
    assert leads.empty  # the new window is used
    bayes = edited.effects.query("step == 'bayes'").reset_index(drop=True)
    pd.testing.assert_frame_equal(bayes, res.effects.query("step == 'bayes'")
                                  .reset_index(drop=True))
    reseeded = run_study(study(leads=2, seed=2), out, progress=False)
    assert reseeded.refitted == ("bayes",)


@pytest.mark.pipeline
def test_use_cache_false_refits_everything(tmp_path):
    spec = loads_study('[study]\nname = "c"\n[data]\ndataset = "castle"\n'
                       '[[steps]]\nkind = "twfe"\n[[steps]]\nkind = "event_study"\n')
    assert run_study(spec, tmp_path, progress=False).refitted == ("twfe", "event_study")
    assert run_study(spec, tmp_path, progress=False).refitted == ()
    assert run_study(spec, tmp_path, progress=False, use_cache=False).refitted == (
        "twfe", "event_study")


@pytest.mark.pipeline
def test_failed_step_leaves_a_note_and_the_rerun_resumes(tmp_path):
    bad = loads_study(textwrap.dedent("""
        [study]
        name = "stops"
        [data]
        dataset = "castle"
        [[steps]]
        kind = "twfe"
        [[steps]]
        kind = "event_study"
        covariates = ["no_such_column"]
        """))
    out = tmp_path / "res"
    with pytest.raises(BayesDidError, match="no_such_column"):
        run_study(bad, out, progress=False)
    note = (out / "INCOMPLETE.txt").read_text()
    assert "'event_study'" in note and "Rerun to resume" in note
    fixed = loads_study(bad.source.replace('covariates = ["no_such_column"]', "covariates = []"))
    res = run_study(fixed, out, progress=False)
    assert res.refitted == ("event_study",)
    assert not (out / "INCOMPLETE.txt").exists()


@pytest.mark.pipeline
def test_report_has_a_regression_table(first):
    out, _ = first
    md = (out / "report.md").read_text()
    assert "## Regression table (overall ATT of each step)" in md
    assert "| Observations" in md and "posterior sd" in md
    assert (out / "tables" / "regression_table.tex").read_text().startswith(
        r"\begin{threeparttable}")
