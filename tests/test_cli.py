"""Declarative studies (bayesdid.study) and the command line (bayesdid.cli)."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import bayesdid
from bayesdid.cli import main
from bayesdid.errors import BayesDidError, SpecError
from bayesdid.results import EFFECT_COLUMNS
from bayesdid.study import (
    STEP_KINDS,
    Study,
    list_models,
    load_study,
    loads_study,
    run_study,
    shipped_model,
)

REPO = Path(__file__).resolve().parents[1]
MODELS = sorted((REPO / "models").glob("*.toml"))

HEAD = """
[study]
name = "t"
[data]
dataset = "castle"
"""

TINY = """
[study]
name = "tiny"
description = "smoke test"

[data]
simulate = "staggered"

[data.simulate_args]
n_units = 40
years = [2005, 2014]
batches = { "2008" = 5, "2010" = 6 }
random_seed = 1

[[steps]]
kind = "twfe"

[[steps]]
kind = "event_study"
leads = 3
lags = 4

[[steps]]
kind = "hierarchical_did"
name = "bayes"
event_time = true
errors = "ar1"
draws = 200
tune = 200
chains = 2
random_seed = 1
"""


def spec_error(text: str, base_dir: Path | None = None) -> str:
    with pytest.raises(SpecError) as info:
        loads_study(textwrap.dedent(text), base_dir=base_dir)
    return str(info.value)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ======================================================================== spec: valid
@pytest.mark.unit
def test_valid_spec_parses_with_defaults_and_types():
    study = loads_study(TINY)
    assert isinstance(study, Study)
    assert (study.name, study.description, study.level) == ("tiny", "smoke test", 0.95)
    assert study.data.kind == "simulate" and study.data.name == "staggered"
    args = study.data.args
    assert args["batches"] == {2008: 5, 2010: 6}  # TOML string keys become int years
    assert args["years"] == (2005, 2014)
    assert [(s.kind, s.name) for s in study.steps] == [
        ("twfe", "twfe"), ("event_study", "event_study"), ("hierarchical_did", "bayes")]
    assert dict(study.steps[1].options) == {"leads": 3, "lags": 4}
    assert study.steps[2].bayesian and not study.steps[0].bayesian
    assert "kind" not in study.steps[2].options and "name" not in study.steps[2].options
    assert study.source == TINY


@pytest.mark.unit
def test_study_is_frozen():
    study = loads_study(TINY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        study.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        study.steps[0].options["cluster"] = "x"  # type: ignore[index]


@pytest.mark.unit
def test_panel_section_and_policy_lists_keys_become_years():
    study = loads_study(HEAD + """
        [panel]
        outcome = "l_larceny"
        weights = ""
        [panel.policy_lists]
        2006 = [10]
        "2007" = [1, 2]
        [[steps]]
        kind = "twfe"
        """.replace("\n        ", "\n"))
    assert study.panel["outcome"] == "l_larceny"
    assert dict(study.panel["policy_lists"]) == {2006: (10,), 2007: (1, 2)}


@pytest.mark.unit
def test_panel_overrides_replace_treatment_and_empty_string_removes_default():
    from bayesdid.study.run import _panel_kwargs

    defaults = dict(unit="sid", time="year", outcome="y", cohort="cohort", weights="popwt")
    study = loads_study(HEAD + '[panel]\ntreat = "treated"\nweights = ""\n'
                        '[[steps]]\nkind = "twfe"\n')
    kwargs = _panel_kwargs(defaults, study.panel)
    assert kwargs == dict(unit="sid", time="year", outcome="y", treat="treated")


# ======================================================================== spec: errors
@pytest.mark.unit
def test_unknown_top_level_key():
    msg = spec_error(HEAD + '[[steps]]\nkind = "twfe"\n[output]\nfolder = "x"\n')
    assert msg.startswith("output: unknown top-level key 'output'")
    assert "data, panel, steps, study" in msg


@pytest.mark.unit
def test_unknown_key_in_step_names_path_and_suggests():
    msg = spec_error(HEAD + '[[steps]]\nkind = "twfe"\n[[steps]]\nkind = "hierarchical_did"\n'
                     "draw = 100\n")
    assert msg.startswith("steps[1].draw: unknown key 'draw' (did you mean 'draws'?)")
    assert "chains" in msg  # lists the allowed keys


@pytest.mark.unit
def test_unknown_key_in_sections():
    assert spec_error(HEAD.replace('name = "t"', 'name = "t"\nauthor = "x"')
                      + '[[steps]]\nkind = "twfe"\n').startswith("study.author: unknown key")
    assert spec_error(HEAD + '[panel]\nunits = "sid"\n[[steps]]\nkind = "twfe"\n'
                      ).startswith("panel.units: unknown key 'units' (did you mean 'unit'?)")
    msg = spec_error(TINY.replace("random_seed = 1\n", "seed = 1\n", 1))
    assert msg.startswith("data.simulate_args.seed: unknown simulate_staggered argument")


@pytest.mark.unit
def test_wrong_type_names_path():
    bad = TINY.replace("draws = 200", 'draws = "200"')
    assert spec_error(bad).startswith("steps[2].draws: expected int, got str")
    assert spec_error(TINY.replace("draws = 200", "draws = true")).startswith(
        "steps[2].draws: expected int, got bool")
    assert spec_error(TINY.replace("event_time = true", 'event_time = "yes"')).startswith(
        "steps[2].event_time: expected bool, got str")
    assert spec_error(TINY.replace("n_units = 40", "n_units = 40.0")).startswith(
        "data.simulate_args.n_units: expected int, got float")
    assert spec_error(HEAD + '[panel]\ngroups = "region"\n[[steps]]\nkind = "twfe"\n'
                      ).startswith("panel.groups: expected array of str, got str")
    assert spec_error(HEAD + '[panel]\ncovariates = ["a", 1]\n[[steps]]\nkind = "twfe"\n'
                      ).startswith("panel.covariates[1]: expected str, got int")
    assert spec_error(HEAD + "[[steps]]\nkind = 3\n").startswith(
        "steps[0].kind: expected str, got int")
    assert spec_error("steps = 3\n" + HEAD).startswith("steps: expected an array of tables")


@pytest.mark.unit
def test_bad_values():
    assert "must be one of 'ar1', 'iid', 'student_t'" in spec_error(
        TINY.replace('errors = "ar1"', 'errors = "ar2"'))
    assert spec_error(TINY.replace("chains = 2", "chains = 0")).startswith(
        "steps[2].chains: must be >= 1, got 0")
    assert spec_error(TINY.replace("lags = 4", "lags = 4\nref = 5")).startswith(
        "steps[1].ref: ref=5 lies outside the window [-3, 4]")
    assert spec_error(TINY.replace('"2008" = 5', '"y2008" = 5')).startswith(
        "data.simulate_args.batches.y2008: key 'y2008' is not an integer year")
    assert spec_error(TINY.replace('name = "tiny"', 'name = "my study"')).startswith(
        "study.name: 'my study' must start with a letter or digit")
    assert spec_error(TINY.replace('description = "smoke test"', "level = 95")).startswith(
        "study.level: must lie in (0, 1), got 95")


@pytest.mark.unit
def test_unknown_step_kind_lists_allowed_kinds():
    msg = spec_error(HEAD + '[[steps]]\nkind = "twfe"\n[[steps]]\nkind = "evnt_study"\n')
    assert msg.startswith("steps[1].kind: unknown step kind 'evnt_study' (did you mean "
                          "'event_study'?)")
    assert f"allowed kinds: {', '.join(sorted(STEP_KINDS))}" in msg
    assert "steps[0].kind: required key is missing" in spec_error(HEAD + "[[steps]]\nleads = 2\n")


@pytest.mark.unit
def test_duplicate_step_names_and_no_steps():
    msg = spec_error(HEAD + '[[steps]]\nkind = "twfe"\n[[steps]]\nkind = "twfe"\n')
    assert msg.startswith("steps[1].name: duplicate step name 'twfe' (also steps[0])")
    assert "a study needs at least one step" in spec_error("steps = []\n" + HEAD)
    assert spec_error(HEAD).startswith("steps: required key is missing")


@pytest.mark.unit
def test_missing_or_ambiguous_data_source():
    msg = spec_error('[study]\nname = "t"\n[data]\n[[steps]]\nkind = "twfe"\n')
    assert msg.startswith("data: no data source")
    assert spec_error('[study]\nname = "t"\n[[steps]]\nkind = "twfe"\n').startswith(
        "data: required key is missing")
    assert "exactly one data source" in spec_error(
        HEAD.replace('dataset = "castle"', 'dataset = "castle"\nsimulate = "staggered"')
        + '[[steps]]\nkind = "twfe"\n')
    assert spec_error(HEAD + '[data.simulate_args]\nn_units = 5\n[[steps]]\nkind = "twfe"\n'
                      ).startswith("data.simulate_args: only allowed with data.simulate")
    assert spec_error(HEAD.replace("castle", "nope") + '[[steps]]\nkind = "twfe"\n').startswith(
        "data.dataset: unknown dataset 'nope'")


@pytest.mark.unit
def test_csv_path_is_relative_to_the_toml(tmp_path, monkeypatch):
    csv = tmp_path / "proj" / "data" / "panel.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text("u,t,y,d\na,1,0.1,0\n", encoding="utf-8")
    spec = write(tmp_path / "proj" / "specs" / "s.toml", """
        [study]
        name = "csvstudy"
        [data]
        csv = "../data/panel.csv"
        [panel]
        unit = "u"
        time = "t"
        outcome = "y"
        treat = "d"
        [[steps]]
        kind = "twfe"
        """)
    monkeypatch.chdir(tmp_path)  # elsewhere: the path must not depend on the cwd
    study = load_study(spec)
    assert Path(study.data.name).resolve() == csv.resolve()
    assert study.path == spec
    # a missing file is reported against the toml's folder
    spec.write_text(spec.read_text().replace("../data/panel.csv", "panel.csv"))
    with pytest.raises(SpecError, match=r"data\.csv: file not found: .*specs"):
        load_study(spec)


@pytest.mark.unit
def test_csv_source_needs_panel_columns(tmp_path):
    (tmp_path / "p.csv").write_text("u,t,y\n", encoding="utf-8")
    base = '[study]\nname = "t"\n[data]\ncsv = "p.csv"\n[[steps]]\nkind = "twfe"\n'
    assert spec_error(base, tmp_path).startswith("panel.unit: required with a csv data source")
    msg = spec_error(base + '[panel]\nunit = "u"\ntime = "t"\noutcome = "y"\n', tmp_path)
    assert msg.startswith("panel: a csv data source needs one of treat, cohort or policy_lists")
    msg = spec_error(base + '[panel]\ntreat = "d"\ncohort = "c"\n', tmp_path)
    assert msg.startswith("panel: give at most one of treat, cohort, policy_lists")


@pytest.mark.unit
def test_file_errors(tmp_path):
    with pytest.raises(SpecError, match="no such study file"):
        load_study(tmp_path / "missing.toml")
    bad = write(tmp_path / "bad.toml", "[study\nname = 1\n")
    with pytest.raises(SpecError, match="invalid TOML in .*bad.toml"):
        load_study(bad)
    assert issubclass(SpecError, BayesDidError) and issubclass(SpecError, ValueError)


@pytest.mark.unit
@pytest.mark.parametrize("path", MODELS, ids=[p.name for p in MODELS])
def test_shipped_models_validate(path):
    study = load_study(path)
    assert study.name == path.stem
    assert study.steps[0].kind == "twfe"


@pytest.mark.unit
def test_shipped_models_are_found():
    assert {"lccp_demo", "castle", "prop99"} <= set(list_models())
    assert len(MODELS) >= 3
    demo = load_study(shipped_model("lccp_demo"))
    assert [s.kind for s in demo.steps] == ["twfe", "event_study", "hierarchical_did"]
    assert demo.data.kind == "simulate"
    with pytest.raises(SpecError, match="no shipped study spec 'nope.toml'"):
        shipped_model("nope")


# ======================================================================== CLI (fast)
@pytest.mark.unit
def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"bayesdid {bayesdid.__version__}"


@pytest.mark.unit
def test_datasets_command(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "castle" in out and "prop99" in out and "description" in out


@pytest.mark.unit
def test_batch_gc_settings_apply_inside_main_only(capsys, monkeypatch):
    import gc

    from bayesdid import cli

    before = gc.get_threshold(), gc.get_freeze_count()
    seen = []
    monkeypatch.setattr(cli, "_datasets", lambda: seen.append(
        (gc.get_threshold(), gc.get_freeze_count())) or 0)
    assert main(["datasets"]) == 0
    assert seen[0][0] == (20_000, 10, 10) and seen[0][1] > before[1]  # imports frozen
    # restored on exit: the thresholds, and the frozen objects are scanned again (CPython
    # 3.12 starts with a few hundred frozen; unfreeze releases those too, harmlessly)
    assert gc.get_threshold() == before[0] and gc.get_freeze_count() <= before[1]


@pytest.mark.unit
def test_console_script_exits_fast_but_runs_exit_handlers_threads_and_flushes(tmp_path):
    import subprocess
    import sys

    code = textwrap.dedent("""
        import atexit, sys, threading, time
        atexit.register(lambda: print("exit handler ran", flush=False))
        threading.Thread(target=lambda: (time.sleep(0.3), print("thread done"))).start()
        sys.argv = ["bayesdid", *sys.argv[1:]]
        from bayesdid.cli import console
        print("buffered output", end="")  # unflushed: console() must flush it
        console()
        print("never printed: console() does not return")
    """)
    done = subprocess.run([sys.executable, "-c", code, "--version"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "buffered output" in done.stdout
    assert f"bayesdid {bayesdid.__version__}" in done.stdout
    assert "thread done" in done.stdout and "exit handler ran" in done.stdout
    assert "never printed" not in done.stdout
    done = subprocess.run([sys.executable, "-c", code, "run", str(tmp_path / "nope.toml")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no such study file" in done.stderr


@pytest.mark.unit
def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.unit
def test_bad_spec_exits_2_with_one_clean_line(tmp_path, capsys):
    spec = write(tmp_path / "bad.toml", TINY.replace("draws = 200", 'draws = "200"'))
    assert main(["run", str(spec), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == 'bayesdid: error: steps[2].draws: expected int, got str (\'200\')'
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert capsys.readouterr().err.strip().startswith("bayesdid: error: no such study file")


@pytest.mark.unit
def test_data_errors_exit_2_and_name_the_step(tmp_path, capsys):
    spec = write(tmp_path / "s.toml", HEAD + '[panel]\noutcome = "no_such_column"\n'
                 '[[steps]]\nkind = "twfe"\n')
    assert main(["run", str(spec), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no_such_column" in err
    spec = write(tmp_path / "s2.toml", HEAD + '[[steps]]\nkind = "twfe"\ncovariates = ["nope"]\n')
    assert main(["run", str(spec), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'nope'" in err and "[in step 'twfe' (twfe)]" in err


# ======================================================================== pipeline
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    spec = write(folder / "tiny.toml", TINY)
    out = folder / "results"
    code = main(["run", str(spec), "--out", str(out), "--quiet"])
    return code, out


@pytest.mark.pipeline
def test_pipeline_writes_every_output(tiny_run):
    code, out = tiny_run
    assert code == 0
    expected = {
        "effects.csv", "comparison.md", "comparison.html", "comparison.tex", "comparison.csv",
        "forest.png", "event_study.png", "posterior_bayes.nc", "diagnostics_bayes.csv",
        "panel.txt", "spec.toml", "truth.csv", "effects_vs_truth.csv",
    }
    assert expected <= {p.name for p in out.iterdir()}
    for name in expected:
        assert (out / name).stat().st_size > 0, name
    assert (out / "spec.toml").read_text(encoding="utf-8") == TINY
    assert (out / "panel.txt").read_text(encoding="utf-8").startswith("Panel: 40 units x 10")
    assert (out / "forest.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.pipeline
def test_pipeline_effects_table(tiny_run):
    _, out = tiny_run
    effects = pd.read_csv(out / "effects.csv")
    assert list(effects.columns) == ["step", *EFFECT_COLUMNS]
    assert list(dict.fromkeys(effects["step"])) == ["twfe", "event_study", "bayes"]
    by_step = effects.groupby("step")
    assert set(by_step.get_group("twfe")["estimand"]) == {"att"}
    assert set(by_step.get_group("event_study")["estimand"]) == {"event_time"}
    bayes = by_step.get_group("bayes")
    assert {"att", "event_time"} == set(bayes["estimand"])
    assert set(bayes["interval"]) == {"hdi"}
    assert (effects["level"] == 0.95).all()
    assert effects[["estimate", "lower", "upper"]].notna().all().all()
    md = (out / "comparison.md").read_text(encoding="utf-8")
    assert "bayes: estimate" in md and "twfe: estimate" in md


@pytest.mark.pipeline
def test_pipeline_truth_and_numbers(tiny_run):
    _, out = tiny_run
    vs = pd.read_csv(out / "effects_vs_truth.csv")
    assert list(vs.columns) == ["step", *EFFECT_COLUMNS, "truth"]
    truth = pd.read_csv(out / "truth.csv")
    att = truth.query("estimand == 'att' and group == 'overall'")["value"].item()
    bayes_att = vs.query("step == 'bayes' and estimand == 'att' and group == 'overall'").iloc[0]
    assert bayes_att["truth"] == pytest.approx(att)
    assert bayes_att["lower"] < att < bayes_att["upper"]
    leads = vs.query("step == 'event_study' and group in ['k=-3', 'k=-2']")
    assert (leads["truth"] == 0).all()  # no anticipation in the simulator
    assert vs.query("step == 'bayes' and estimand == 'event_time'")["truth"].notna().all()


@pytest.mark.pipeline
def test_pipeline_posterior_and_diagnostics(tiny_run):
    from bayesdid.bayes.result import BayesResult

    _, out = tiny_run
    res = BayesResult.load(out / "posterior_bayes.nc")
    assert res.info["draws"] == 200 and res.info["chains"] == 2
    effects = pd.read_csv(out / "effects.csv").query("step == 'bayes'")
    assert res.effect("att", "overall")["estimate"] == pytest.approx(
        effects.query("group == 'overall'")["estimate"].item())
    diag = pd.read_csv(out / "diagnostics_bayes.csv")
    assert {"parameter", "r_hat", "ess_bulk", "ess_tail", "divergences"} <= set(diag.columns)
    assert "sigma" in set(diag["parameter"])


@pytest.mark.pipeline
def test_run_study_api_on_csv_source(tmp_path):
    from bayesdid.datasets import simulate_staggered

    sim = simulate_staggered(n_units=30, years=(2005, 2012), batches={2007: 4, 2009: 5},
                             random_seed=3)
    sim.data.to_csv(tmp_path / "panel.csv", index=False)
    spec = write(tmp_path / "s.toml", """
        [study]
        name = "from_csv"
        level = 0.9
        [data]
        csv = "panel.csv"
        [panel]
        unit = "city"
        time = "year"
        outcome = "eco_eff"
        cohort = "cohort"
        covariates = ["x1"]
        [[steps]]
        kind = "twfe"
        [[steps]]
        kind = "event_study"
        name = "es"
        leads = 2
        lags = 3
        """)
    result = run_study(load_study(spec), tmp_path / "out", progress=False)
    assert all(p.is_file() for p in result.paths.values())
    assert "truth" not in result.paths and "posterior_es" not in result.paths
    assert (tmp_path / "out" / "event_study.png").is_file()
    assert list(result.results) == ["twfe", "es"]
    assert (result.effects["level"] == 0.9).all()
    assert result.seconds["total"] > 0
