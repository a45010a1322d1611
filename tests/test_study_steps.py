"""Study step kinds (bayesdid.study.steps): every kind runs on a tiny simulated study and
reports numbers near the simulated truth; spec errors name the key path; the simulated data
sources (staggered_mediated, efficiency, pilot_zones) and their truth."""

from __future__ import annotations

import re
import textwrap

import numpy as np
import pandas as pd
import pytest

from bayesdid.errors import BayesDidError, ConvergenceWarning, SpecError
from bayesdid.study.families import FAMILIES, by_family, family_of
from bayesdid.study import loads_study, run_study
from bayesdid.study.steps import STEPS

# ConvergenceWarning is not filtered: the staggered and efficiency Bayesian steps sample
# enough draws to pass every check; the few-treated ones (2 x 150 draws of the synthetic
# and horseshoe regression control) do not, and the test asserts that they warn.

STAGGERED = """
[study]
name = "tiny_staggered"
[data]
simulate = "staggered_mediated"
[data.simulate_args]
n_units = 60
years = [2005, 2013]
batches = { "2008" = 10, "2010" = 10 }
random_seed = 3
flags = { overlap = 0.4 }
missing_share = 0.02
other_policies = { other = { start = 2008, share = 0.3 } }
[data.simulate_args.mediators]
m = { a = 0.2, b = 0.3, noise = 0.05 }
[panel]
interpolate = true

[[steps]]
kind = "twfe"
[[steps]]
kind = "fe_ladder"
[[steps]]
kind = "event_study"
leads = 3
lags = 3
[[steps]]
kind = "callaway_santanna"
aggregate = ["simple", "group"]
[[steps]]
kind = "sun_abraham"
leads = 3
lags = 3
[[steps]]
kind = "imputation"
[[steps]]
kind = "bacon"
[[steps]]
kind = "honest_did"
leads = 3
lags = 3
M = [0.0, 1.0]
n_sim = 2000
[[steps]]
kind = "heterogeneity"
name = "by_region"
by = "region"
[[steps]]
kind = "heterogeneity"
name = "by_overlap"
by = "overlap"
form = "subsample"
[[steps]]
kind = "heterogeneity"
name = "by_x1"
median_split = "x1"
[[steps]]
kind = "placebo"
name = "placebo_shifted"
placebo = "shifted_timing"
shifts = [-2, 1]
[[steps]]
kind = "placebo"
name = "placebo_timing"
placebo = "random_timing"
n_draws = 40
[[steps]]
kind = "placebo"
name = "placebo_group"
placebo = "fictional_group"
n_draws = 40
[[steps]]
kind = "placebo"
name = "placebo_both"
placebo = "both_random"
n_draws = 40
[[steps]]
kind = "robustness"
other_policies = ["other"]
exclude_periods = [2005]
[[steps]]
kind = "psm_did"
scores = "pooled"
random_seed = 1
[[steps]]
kind = "mediation"
mediators = ["m"]
n_boot = 50
random_seed = 1
[[steps]]
kind = "twfe"
name = "twfe_on_mediator"
outcome = "m"
[[steps]]
kind = "synthdid"
name = "sdid_cohort"
cohorts = [2009]
se = "placebo"
replications = 20
[[steps]]
kind = "hierarchical_did"
name = "bayes"
event_time = true
leads = 2
pool = ["cohort", "overlap"]
errors = "iid"
draws = 700
tune = 500
chains = 2
random_seed = 1
[[steps]]
kind = "bayes_sensitivity"
of = "bayes"
compare = "honest_did"
M = [0.0, 1.0]
[[steps]]
kind = "posterior_contrasts"
of = "bayes"
by = "overlap"
[[steps]]
kind = "bayesian_mediation"
mediators = ["m"]
draws = 700
tune = 500
chains = 2
random_seed = 1
"""

EFFICIENCY = """
[study]
name = "tiny_efficiency"
[data]
simulate = "efficiency"
[data.simulate_args]
n_units = 40
years = [2005, 2011]
batches = { "2007" = 10 }
random_seed = 2
[[steps]]
kind = "sfa"
y = ["gdp_pc", "green"]
x = ["capital", "labour", "tech", "energy"]
undesirable = ["aqi"]
[[steps]]
kind = "bayesian_sfa"
name = "bsfa"
y = ["gdp_pc", "green"]
x = ["capital", "labour", "tech", "energy"]
undesirable = ["aqi"]
draws = 2000
tune = 500
chains = 2
random_seed = 1
[[steps]]
kind = "ml_index"
inputs = ["capital", "labour", "tech", "energy"]
outputs = ["gdp_pc", "green"]
bads = ["aqi"]
[[steps]]
kind = "twfe"
name = "twfe_sfa"
outcome_from = "sfa"
# 10 refits: with 5, one seed in 20 gives a propagated interval narrower than the naive one
[[steps]]
kind = "twfe"
name = "twfe_propagated"
outcome_from = "bsfa"
propagate = 10
[[steps]]
kind = "twfe"
name = "twfe_ml"
outcome_from = "ml_index"
"""

PILOT = """
[study]
name = "tiny_pilot"
[data]
simulate = "pilot_zones"
[data.simulate_args]
random_seed = 0
[data.simulate_args.mediators]
channel = { a = 0.1, unit_sd = 0.2, noise = 0.01 }
[[steps]]
kind = "regression_control"
name = "rc"
[[steps]]
kind = "regression_control"
name = "rc_placebo"
fake_start = 2013
[[steps]]
kind = "regression_control"
name = "rc_mechanism"
outcome = "channel"
[[steps]]
kind = "synth"
exclude_donors = ["Guangdong"]
[[steps]]
kind = "synthdid"
replications = 30
[[steps]]
kind = "ife"
n_boot = 20
[[steps]]
kind = "mc_nnm"
n_boot = 20
n_lambda = 6
[[steps]]
kind = "bayesian_synth"
draws = 150
tune = 150
chains = 2
random_seed = 1
[[steps]]
kind = "bayesian_regression_control"
draws = 150
tune = 150
chains = 2
random_seed = 1
[[steps]]
kind = "bayes_factor"
draws = 150
tune = 150
chains = 2
random_seed = 1
"""


def run(text: str, tmp_path_factory) -> tuple:
    study = loads_study(textwrap.dedent(text))
    out = tmp_path_factory.mktemp(study.name)
    return run_study(study, out, progress=False), out


@pytest.fixture(scope="module")
def staggered(tmp_path_factory):
    return run(STAGGERED, tmp_path_factory)


@pytest.fixture(scope="module")
def efficiency(tmp_path_factory):
    return run(EFFICIENCY, tmp_path_factory)


@pytest.fixture(scope="module")
def pilot(tmp_path_factory):
    # 2 x 150 draws of the Bayesian synthetic and regression control: enough for the
    # pipeline, not for convergence, so the run must say so loudly
    with pytest.warns(ConvergenceWarning) as seen:
        res, out = run(PILOT, tmp_path_factory)
    return res, out, [str(w.message) for w in seen if issubclass(w.category, ConvergenceWarning)]


def vs_truth(out) -> pd.DataFrame:
    return pd.read_csv(out / "effects_vs_truth.csv")


def row(table: pd.DataFrame, step: str, estimand: str = "att", group: str = "overall"):
    hit = table[(table["step"] == step) & (table["estimand"] == estimand)
                & (table["group"] == group)]
    assert len(hit) == 1, (step, estimand, group)
    return hit.iloc[0]


# ======================================================================== every kind runs
@pytest.mark.pipeline
def test_every_step_kind_is_exercised():
    used = set()
    for text in (STAGGERED, EFFICIENCY, PILOT):
        used |= {s.kind for s in loads_study(textwrap.dedent(text)).steps}
    assert used == set(STEPS)


@pytest.mark.pipeline
def test_staggered_kinds_produce_rows_near_the_truth(staggered):
    res, out = staggered
    effects = res.effects
    for step in res.study.steps:
        assert (effects["step"] == step.name).sum() >= 1, step.name
    vs = vs_truth(out)
    truth = row(vs, "twfe")["truth"]
    for step in ("twfe", "imputation", "bayes"):
        r = row(vs, step)
        assert r["lower"] < truth < r["upper"], step
        assert abs(r["estimate"] - truth) < 0.03, step
    # Callaway-Sant'Anna conditions on base-period covariates only; the simulated covariates
    # trend up in pilot cities (and move the outcome), so it is biased upward here
    assert row(vs, "callaway_santanna")["estimate"] > truth
    # the truth includes the mediator's a * b = 0.06
    med = vs[vs["step"] == "mediation"].set_index("estimand")
    assert med.loc["indirect", "truth"] == pytest.approx(0.06)
    assert med.loc["a", "estimate"] == pytest.approx(0.2, abs=0.03)
    assert med.loc["indirect", "lower"] < 0.06 < med.loc["indirect", "upper"]
    bmed = vs[vs["step"] == "bayesian_mediation"].set_index("estimand")
    assert bmed.loc["indirect", "estimate"] == pytest.approx(0.06, abs=0.02)
    # a replaced outcome is compared with the mediator's own effect a
    assert row(vs, "twfe_on_mediator")["truth"] == pytest.approx(0.2)
    assert row(vs, "twfe_on_mediator")["estimate"] == pytest.approx(0.2, abs=0.03)
    # heterogeneity: overlap levels have truth rows; the median split adds its column
    assert set(vs.query("step == 'by_overlap'")["group"]) == {"overlap=0", "overlap=1"}
    assert vs.query("step == 'by_overlap'")["truth"].notna().all()
    assert set(vs.query("step == 'by_x1'")["group"]) == {"x1_split=above", "x1_split=below"}
    # the cohort sub-design's truth is that cohort's mean effect
    cohort = pd.read_csv(out / "truth.csv").query("group == 'cohort=2009'")["value"].item()
    assert row(vs, "sdid_cohort")["truth"] == pytest.approx(cohort)


@pytest.mark.pipeline
def test_staggered_step_extras_and_figures(staggered):
    res, out = staggered
    paths = res.paths
    for name in ("placebo_timing_distribution", "psm_did_balance", "bacon_decomposition",
                 "honest_did_sensitivity", "bayes_sensitivity_sensitivity"):
        assert paths[f"figure_{name}"].read_bytes()[:4] == b"\x89PNG", name
    for name in ("by_region_equality_test", "psm_did_balance", "robustness_specifications",
                 "posterior_contrasts_contrasts", "bacon_comparisons", "sdid_cohort_unit_weights"):
        assert paths[f"table_{name}"].stat().st_size > 0, name
    placebo = res.effects.query("step == 'placebo_group' and estimand == 'placebo'")
    real = row(res.effects, "placebo_group")["estimate"]
    assert placebo["n_obs"].item() == 40 and placebo["upper"].item() < real
    p_value = res.effects.query("step == 'placebo_group' and estimand == 'placebo_p' "
                                "and group.str.endswith('two-sided')")["estimate"].item()
    assert p_value < 0.1
    spec = pd.read_csv(paths["table_robustness_specifications"])
    assert {"baseline", "exclude periods"} <= set(spec["spec"])
    contrasts = pd.read_csv(paths["table_posterior_contrasts_contrasts"])
    assert contrasts["prob_greater"].between(0, 1).all()
    sens = res.effects.query("step == 'bayes_sensitivity'")
    widths = (sens["upper"] - sens["lower"]).to_numpy()
    assert list(sens["group"]) == ["M=0", "M=1"] and widths[1] > widths[0]
    md = (out / "report.md").read_text()
    assert all(f"## Step `{s.name}`" in md for s in res.study.steps)


@pytest.mark.pipeline
def test_efficiency_steps_feed_the_did(efficiency):
    res, out = efficiency
    vs = vs_truth(out)
    truth = row(vs, "twfe_sfa")["truth"]
    for step in ("twfe_sfa", "twfe_propagated"):
        r = row(vs, step)
        assert abs(r["estimate"] - truth) < 0.03, step
    prop, naive = row(vs, "twfe_propagated"), row(vs, "twfe_sfa")
    assert prop["upper"] - prop["lower"] > 0
    comparison = pd.read_csv(res.paths["table_twfe_propagated_naive_vs_propagated"])
    assert (comparison["width_ratio"] >= 1).all()
    assert np.isnan(row(vs, "twfe_ml")["truth"])  # another scale: no truth
    for step in ("sfa", "bsfa", "ml_index"):
        table = res.effects.query("step == @step")
        assert table["estimand"].eq("efficiency").all() and len(table) == 8  # overall + 7 years
        assert (out / "tables" / f"{step}_scores.csv").is_file()
    eff = row(vs, "bsfa", "efficiency")
    assert 0.3 < eff["estimate"] < 1 and eff["lower"] < eff["estimate"] < eff["upper"]
    assert naive["lower"] < truth < naive["upper"]


@pytest.mark.pipeline
def test_few_treated_kinds(pilot):
    res, out, _ = pilot
    vs = vs_truth(out)
    truth = row(vs, "rc")["truth"]
    assert truth == pytest.approx(0.1667, abs=1e-3)
    for step in ("rc", "synth", "synthdid", "bayesian_synth", "bayesian_regression_control"):
        assert abs(row(vs, step)["estimate"] - truth) < 0.08, step
    assert row(vs, "rc_placebo")["truth"] == 0.0
    assert abs(row(vs, "rc_placebo")["estimate"]) < 0.1
    assert row(vs, "rc_mechanism")["truth"] == pytest.approx(0.1)
    assert row(vs, "rc_mechanism")["estimate"] == pytest.approx(0.1, abs=0.03)
    weights = pd.read_csv(res.paths["table_synth_weights"])
    assert "Guangdong" not in set(weights["donor"])
    assert "figure_synth_placebos_Fujian" in res.paths
    assert "figure_bayesian_synth_path_Fujian" in res.paths


def _bayesian_steps(res) -> list[str]:
    return [s.name for s in res.study.steps if STEPS[s.kind].bayesian]


@pytest.mark.pipeline
@pytest.mark.parametrize("which", ["staggered", "efficiency"])
def test_bayesian_steps_converge_and_the_report_says_so(which, request):
    res, out = request.getfixturevalue(which)
    md = (out / "report.md").read_text()
    assert "## Convergence of the Bayesian steps" in md
    for name in _bayesian_steps(res):
        conv = res.results[name].info["convergence"]
        assert conv["ok"], (name, conv["failed"][:3], conv["divergences"])
        diag = pd.read_csv(out / f"diagnostics_{name}.csv")
        assert f"Converged: all {len(diag)} quantities pass" in md, name
    if which == "efficiency":  # the SFA slopes are checked, not only the scales
        params = set(pd.read_csv(out / "diagnostics_bsfa.csv")["parameter"])
        assert {"sigma_u", "sigma_v", "beta[ln_capital]", "beta[ln_energy]"} <= params
    else:  # twfe (CRV1 by city) beside the model-based posteriors: compare() notes it
        assert "Note: Model-based beside cluster-robust intervals" in md
        assert "bayes (iid Gaussian errors)" in md and "twfe (CRV1 by city)" in md


@pytest.mark.pipeline
def test_unconverged_steps_warn_with_their_name_and_are_listed(pilot):
    res, out, warned = pilot
    md = (out / "report.md").read_text()
    failed = [n for n in _bayesian_steps(res) if not res.results[n].info["convergence"]["ok"]]
    assert "bayesian_regression_control" in failed  # horseshoe at 2 x 150 draws
    assert sorted(w.split("'")[1] for w in warned) == sorted(failed)  # one warning per step
    for name in failed:
        conv = res.results[name].info["convergence"]
        text = next(w for w in warned if w.startswith(f"step {name!r}: "))
        assert conv["failed"][0]["parameter"] in text  # the worst parameter is named
        assert f"| {name} " in md and "| NO " in md  # the summary table at the top
        assert "**Not converged**" in md and "### Failed convergence checks" in md
        assert conv["failed"][0]["parameter"] in md
    # every sampled parameter is checked: the horseshoe's global and local scales, the
    # slab, the coefficients on the original scale, and the synthetic control's weights
    rc = {p.split("[")[0] for p in
          pd.read_csv(out / "diagnostics_bayesian_regression_control.csv")["parameter"]}
    assert {"tau_n", "tau_ig", "lambda_n", "lambda_ig", "c2", "z", "weight", "a",
            "sigma_std"} <= rc
    sc = {p.split("[")[0] for p in
          pd.read_csv(out / "diagnostics_bayesian_synth.csv")["parameter"]}
    assert {"w", "sigma", "att|overall"} <= sc
    for name in ("bayesian_synth", "bayesian_regression_control"):  # every listed variable
        result = res.results[name]
        listed = set(result.info["sampled_vars"]) & set(result.idata.posterior.data_vars)
        assert listed <= (sc if name == "bayesian_synth" else rc), name
        free = {rv for rv in listed if rv not in ("w", "sigma", "weight", "intercept")}
        assert free, name  # the sampler's own (unconstrained-scale) parameters are in


# ======================================================================== a report that reads
def _family_tables(out) -> dict[str, list[str]]:
    """comparison.md: each family's section and the step labels of its table's columns."""
    seen = {}
    for section in re.split(r"^## ", (out / "comparison.md").read_text(), flags=re.M)[1:]:
        header = next(ln for ln in section.splitlines() if ln.startswith("| estimand"))
        seen[section.split(" (")[0]] = re.findall(r"\|\s*([^|]+?): estimate", header)
    return seen


def _summary_lines(out) -> dict[str, str]:
    md = (out / "report.md").read_text()
    assert md.index("## Summary") < md.index("## Panel")  # the report opens with it
    block = md.split("## Summary\n\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("- ")]
    by_step = {ln.split("`")[1]: ln for ln in lines}
    assert len(by_step) == len(lines)
    return by_step


@pytest.mark.unit
def test_every_step_kind_has_a_family():
    assert {family_of(kind) for kind in STEPS} == set(FAMILIES)


@pytest.mark.pipeline
def test_side_by_side_tables_are_split_by_family(staggered):
    res, out = staggered
    seen = _family_tables(out)
    want = {f: [s.name for s in members] for f, members in by_family(res.study.steps).items()}
    assert seen == want
    assert list(seen) == ["DID", "staggered adoption", "synthetic control", "robustness"]
    assert seen["staggered adoption"] == ["callaway_santanna", "sun_abraham", "imputation",
                                          "bacon"]
    kinds = {s.name: s.kind for s in res.study.steps}
    for family, names in seen.items():
        assert {family_of(kinds[n]) for n in names} == {family}
    md = (out / "report.md").read_text()
    assert "## Steps side by side, by family" in md and "All steps side by side" not in md
    assert "### staggered adoption (4 steps)" in md
    long = pd.read_csv(out / "comparison.csv")
    assert (long["family"] == long["method"].map(lambda n: family_of(kinds[n]))).all()
    assert set(long["method"]) == set(kinds)  # every step's rows, once
    assert len(long) == len(res.effects)


@pytest.mark.pipeline
def test_forest_plot_rows_are_overall_and_group_effects_only(staggered):
    """The study's forest (group_forest_plot of its per-family comparisons) has no
    event-time or period rows; those go to event_study.png and the tables."""
    from bayesdid.report.plots import group_forest_plot

    res, out = staggered
    long = pd.read_csv(out / "comparison.csv")
    assert long["group"].str.startswith("k=").any()  # there are event-time rows to leave out
    fig = group_forest_plot([(f, sub, list(dict.fromkeys(sub["method"])))
                             for f, sub in long.groupby("family", sort=False)])
    rows = {ax.get_title(loc="left"): [t.get_text() for t in ax.get_yticklabels()]
            for ax in fig.axes}
    assert list(rows) == ["DID", "staggered adoption", "synthetic control", "robustness"]
    flat = [r for labels in rows.values() for r in labels]
    assert not [r for r in flat if re.search(r"(^|, )[kt]=", r) or "," in r]
    assert rows["DID"][0] == "overall"
    # batches listed in 2008 and 2010 are treated from the next year
    assert {"cohort=2009", "cohort=2011", "region=East", "overlap=1"} <= set(rows["DID"])
    assert rows["staggered adoption"][:3] == ["overall", "cohort=2009", "cohort=2011"]
    assert (out / "forest.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "event_study.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.pipeline
def test_report_opens_with_one_line_per_step(staggered):
    from bayesdid.report.tables import format_interval, format_number

    res, out = staggered
    lines = _summary_lines(out)
    assert list(lines) == [s.name for s in res.study.steps]
    twfe = row(res.effects, "twfe")
    assert (f"ATT = {format_number(twfe['estimate'])}, 95% CI "
            f"{format_interval(twfe['lower'], twfe['upper'])}, p ") in lines["twfe"]
    assert "(twfe, DID)" in lines["twfe"]
    bayes = row(res.effects, "bayes")
    p_pos = np.mean(res.results["bayes"].draws("att", "overall") > 0)
    assert (f"ATT = {format_number(bayes['estimate'])}, 95% HDI "
            f"{format_interval(bayes['lower'], bayes['upper'])}, "
            f"P(effect > 0) = {p_pos:.3f}") in lines["bayes"]
    # the step fits iid errors to AR(1) data: the residual checks say so and name the option
    assert "residual checks flag autocorr_lag1" in lines["bayes"]
    assert lines["bayes"].endswith("errors='ar1' (within-unit AR(1) errors)).")
    assert "p =" not in lines["bayes"] and "p <" not in lines["bayes"]
    # posterior contrasts: P(> 0) from the draws of the step they summarise
    assert lines["posterior_contrasts"].count("P(effect > 0) = ") == 2
    assert "ATT overlap=0 = " in lines["posterior_contrasts"]
    # no overall ATT: the groups; a placebo test: its placebo p; mediation: the indirect effect
    regions = res.effects.query("step == 'by_region'")["group"]
    assert lines["by_region"].count("ATT region=") == min(len(regions), 4) >= 2
    assert "; placebo p" in lines["placebo_group"] and "over 40 draws" in lines["placebo_group"]
    assert "indirect effect mediator=m = " in lines["mediation"]
    assert "(bacon, staggered adoption)" in lines["bacon"]
    # what an estimator recorded as failed is said; nothing else is flagged
    unmatched = res.results["psm_did"].info["n_treated_rows_unmatched"]
    assert lines["psm_did"].endswith(f"**Failed diagnostics:** {unmatched} treated row(s) "
                                     "unmatched.") and unmatched > 0
    assert sorted(n for n, ln in lines.items() if "Failed diagnostics" in ln) == [
        "bayes", "psm_did"]


@pytest.mark.pipeline
def test_unconverged_steps_are_named_in_the_opening_lines(pilot):
    res, out, _ = pilot
    lines = _summary_lines(out)
    for name in _bayesian_steps(res):
        conv = res.results[name].info["convergence"]
        if conv["ok"]:
            assert lines[name].endswith("Converged (R-hat, ESS, divergences).")
            continue
        assert "**Failed diagnostics:** " in lines[name], name
        assert f"{conv['n_failed']} of {conv['n_checked']} quantities fail" in lines[name]
        assert conv["failed"][0]["parameter"] in lines[name]
    html = (out / "report.html").read_text()
    assert "<b>Failed diagnostics:</b>" in html and "<h2>Summary</h2>" in html


@pytest.mark.pipeline
def test_efficiency_draws_are_stored_thinned_and_read_back(efficiency):
    from bayesdid.efficiency.bayes_sfa import BayesSFAResult

    res, out = efficiency
    path = out / "posterior_bsfa.nc"
    back = BayesSFAResult.load(path)
    draws = back.efficiency_draws()
    n_obs = len(draws)
    assert draws.shape == (n_obs, 200) and (draws.dtypes == np.float64).all()
    assert back.idata.posterior["effect"].dtype == np.float32
    assert back.info["stored_draws"] == {"chains": 2, "draws_per_chain": 100,
                                         "sampled_per_chain": 2000, "stride": 20,
                                         "dtype": "float32"}
    assert path.stat().st_size < n_obs * 4000 * 8 / 10  # a tenth of the draws as sampled
    # what later steps used is what is stored
    np.testing.assert_array_equal(res.results["bsfa"].efficiency_draws().to_numpy(),
                                  draws.to_numpy())
    # the scores and the diagnostics are those of all 4000 draws (which pass ESS >= 400)
    scores = pd.read_csv(out / "tables" / "bsfa_scores.csv")
    assert np.abs(scores["efficiency"].to_numpy() - draws.mean(axis=1).to_numpy()).max() < 0.03
    diag = pd.read_csv(out / "diagnostics_bsfa.csv")
    np.testing.assert_allclose(back.diagnostics(warn=False)["ess_bulk"], diag["ess_bulk"])
    assert diag["ess_bulk"].min() > 400
    # a step refitted on the cached (thinned) posterior gives the first run's numbers
    (out / ".cache" / "twfe_propagated.json.gz").unlink()
    again = run_study(res.study, out, progress=False)
    assert again.refitted == ("twfe_propagated",)
    pd.testing.assert_frame_equal(again.effects, res.effects)


@pytest.mark.unit
def test_propagate_cannot_ask_for_more_draws_than_are_stored():
    text = EFFICIENCY.replace("propagate = 10", "propagate = 300")
    msg = spec_error(text)
    assert msg.startswith("steps[4].propagate: step 'bsfa' keeps 200 efficiency draws")
    assert loads_study(textwrap.dedent(text.replace(
        'name = "bsfa"', 'name = "bsfa"\nstored_draws = 400'))).steps[4].options[
        "propagate"] == 300


# ======================================================================== spec errors
HEAD = """
[study]
name = "t"
[data]
simulate = "staggered_mediated"
[data.simulate_args]
n_units = 30
years = [2005, 2010]
batches = { "2007" = 6 }
[data.simulate_args.mediators]
m = { a = 0.1 }
"""


def spec_error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        loads_study(textwrap.dedent(text))
    return str(info.value)


@pytest.mark.unit
def test_unknown_kind_and_unknown_option():
    msg = spec_error(HEAD + '[[steps]]\nkind = "twfe"\n[[steps]]\nkind = "synthetic_did"\n')
    assert msg.startswith("steps[1].kind: unknown step kind 'synthetic_did'")
    msg = spec_error(HEAD + '[[steps]]\nkind = "placebo"\nndraws = 10\n')
    assert msg.startswith("steps[0].ndraws: unknown key 'ndraws' (did you mean 'n_draws'?)")


@pytest.mark.unit
def test_refs_to_undefined_later_or_wrong_steps():
    msg = spec_error(HEAD + '[[steps]]\nkind = "twfe"\noutcome_from = "nope"\n')
    assert msg.startswith("steps[0].outcome_from: refers to step 'nope', which is not defined")
    msg = spec_error(HEAD + '[[steps]]\nkind = "bayes_sensitivity"\nof = "b"\n'
                     '[[steps]]\nkind = "hierarchical_did"\nname = "b"\nleads = 2\n')
    assert msg.startswith("steps[0].of: refers to step 'b'") and "comes later" in msg
    msg = spec_error(HEAD + '[[steps]]\nkind = "twfe"\n[[steps]]\nkind = "event_study"\n'
                     'outcome_from = "twfe"\n')
    assert msg.startswith("steps[1].outcome_from: step 'twfe' is a twfe step")
    msg = spec_error(HEAD + '[[steps]]\nkind = "hierarchical_did"\nname = "b"\n'
                     '[[steps]]\nkind = "bayes_sensitivity"\nof = "b"\n')
    assert msg.startswith("steps[1].of: step 'b' must be a hierarchical_did step with leads >= 2")
    msg = spec_error(HEAD + '[[steps]]\nkind = "hierarchical_did"\nname = "b"\npool = ["cohort"]\n'
                     '[[steps]]\nkind = "posterior_contrasts"\nof = "b"\nby = "region"\n')
    assert msg.startswith("steps[1].by: step 'b' is not pooled by 'region'")
    msg = spec_error(HEAD + '[[steps]]\nkind = "sfa"\ny = "gdp"\nx = ["k"]\n'
                     '[[steps]]\nkind = "twfe"\noutcome_from = "sfa"\npropagate = 5\n')
    assert msg.startswith("steps[1].propagate: propagation needs posterior draws")


@pytest.mark.unit
def test_type_and_value_errors_name_the_key_path():
    assert spec_error(HEAD + '[[steps]]\nkind = "placebo"\nn_draws = "100"\n').startswith(
        "steps[0].n_draws: expected int, got str")
    assert spec_error(HEAD + '[[steps]]\nkind = "synth"\nexclude_donors = "c001"\n').startswith(
        "steps[0].exclude_donors: expected array of unit ids, got str")
    assert spec_error(HEAD + '[[steps]]\nkind = "twfe"\nwhere = { region = "East" }\n'
                      ).startswith("steps[0].where.region: expected array")
    assert spec_error(HEAD + '[[steps]]\nkind = "placebo"\nplacebo = "shifted_timing"\n'
                      'n_draws = 10\n').startswith(
        "steps[0].n_draws: does not apply to placebo = 'shifted_timing'")
    assert spec_error(HEAD + '[[steps]]\nkind = "twfe"\npropagate = 5\n').startswith(
        "steps[0].propagate: propagates the uncertainty of an efficiency step")
    assert spec_error(HEAD + '[[steps]]\nkind = "mediation"\n').startswith(
        "steps[0].mediators: required key is missing")
    assert spec_error(HEAD + '[[steps]]\nkind = "psm_did"\ncaliper = true\n').startswith(
        "steps[0].caliper: expected a positive number or false")
    assert spec_error(HEAD.replace("m = { a = 0.1 }", 'm = { a = "big" }')
                      + '[[steps]]\nkind = "twfe"\n').startswith(
        "data.simulate_args.mediators.m.a: expected number, got str")
    assert spec_error(HEAD.replace("n_units = 30", "policy_effect = 0.5")
                      + '[[steps]]\nkind = "twfe"\n').startswith(
        "data.simulate_args.policy_effect: unknown simulate_staggered_mediated argument")
    text = HEAD.replace('simulate = "staggered_mediated"', 'simulate = "efficiency"')
    assert spec_error(text.replace("n_units = 30", "n_covariates = 2") + '[[steps]]\nkind = "twfe"\n'
                      ).startswith("data.simulate_args.n_covariates: unknown simulate_efficiency")


@pytest.mark.pipeline
def test_missing_column_fails_naming_the_column_and_the_step(tmp_path):
    study = loads_study(textwrap.dedent(HEAD + '[[steps]]\nkind = "twfe"\n[[steps]]\n'
                                        'kind = "mediation"\nmediators = ["no_such"]\n'))
    with pytest.raises(BayesDidError, match="no_such") as info:
        run_study(study, tmp_path, progress=False)
    assert "in step 'mediation' (mediation)" in info.value.__notes__[0]
    assert "'mediation'" in (tmp_path / "INCOMPLETE.txt").read_text()


# ======================================================================== simulated sources
@pytest.mark.unit
def test_augment_shifts_the_truth_by_a_times_b():
    from bayesdid.datasets import simulate_staggered
    from bayesdid.datasets.simulate_mediated import augment

    sim = simulate_staggered(n_units=40, years=(2005, 2012), batches={2008: 10}, random_seed=2)
    aug = augment(sim, mediators={"m": {"a": 0.5, "b": 0.2, "noise": 0.0, "unit_sd": 0.0}},
                  flags={"f": 0.5}, other_policies={"p": {"start": 2009, "share": 0.5}},
                  missing_share=0.1, random_seed=1)
    before = sim.truth.set_index(["estimand", "group"])["value"]
    after = aug.truth.set_index(["estimand", "group"])["value"]
    assert after[("att", "overall")] == pytest.approx(before[("att", "overall")] + 0.1)
    assert after[("indirect", "mediator=m")] == pytest.approx(0.1)
    assert after[("direct", "mediator=m")] == pytest.approx(before[("att", "overall")])
    # with no noise the mediator is exactly a * treated, and the outcome moved by b * m
    treated = aug.data["treated"] == 1
    assert np.allclose(aug.data["m"], 0.5 * aug.data["treated"])
    assert ("att", "f=1") in after.index and set(aug.data["p"]) == {0, 1}
    blank = aug.data["eco_eff"].isna()
    assert 0 < blank.mean() < 0.2 and not blank[aug.data["year"] == 2005].any()
    kept = ~blank & treated
    assert np.allclose(aug.data.loc[kept, "eco_eff"],
                       sim.data.loc[kept, "eco_eff"] + 0.2 * 0.5)
    assert "m" not in sim.data.columns  # the input is not modified
    with pytest.raises(SpecError, match="already a column"):
        augment(sim, flags={"x1": 0.5})


@pytest.mark.unit
def test_hierarchical_did_random_effects_option_reaches_the_model(monkeypatch):
    from types import SimpleNamespace

    from bayesdid.did.hierarchical import HierarchicalDiD
    from bayesdid.study.steps_bayes import _hdid

    monkeypatch.setattr(HierarchicalDiD, "fit", lambda self, panel, **kw: self)
    ctx = SimpleNamespace(progress=False)
    assert _hdid(None, {}, ctx).random_effects == "auto"  # the model's default
    assert _hdid(None, {"random_effects": "none"}, ctx).random_effects is None
    assert _hdid(None, {"random_effects": "region^year"}, ctx).random_effects == "region^year"
    study = loads_study(textwrap.dedent(HEAD + '[[steps]]\nkind = "hierarchical_did"\n'
                                        'random_effects = "none"\n'))
    assert study.steps[0].options["random_effects"] == "none"
    assert spec_error(HEAD + '[[steps]]\nkind = "hierarchical_did"\nrandom_effects = 1\n'
                      ).startswith("steps[0].random_effects: expected str")


@pytest.mark.unit
def test_report_line_says_which_random_effects_auto_added():
    from types import SimpleNamespace

    from bayesdid.results import EffectResult
    from bayesdid.study.narrative import step_line

    # a hierarchical DID's overall row (no posterior draws here, so no P(effect > 0))
    table = pd.DataFrame([dict(estimand="att", group="overall", estimate=0.1, se_or_sd=0.02,
                               lower=0.06, upper=0.14, level=0.95, interval="hdi",
                               method="hierarchical_did", n_obs=500)])
    step = SimpleNamespace(name="bayes", kind="hierarchical_did", options={})

    def line(random_effects):
        result = EffectResult(table=table, method="hierarchical_did",
                              info={"random_effects": random_effects})
        return step_line(step, SimpleNamespace(table=table, result=result))

    added = line({"requested": "auto", "used": "region^year",
                  "group_x_period_p": {"region": 0.0}})
    assert ("random effects region^year added (the first fit's residual check: region x "
            "period p < 0.001)") in added
    assert "random effects" not in line({"requested": "auto", "used": None,
                                          "group_x_period_p": {"region": 0.4}})
