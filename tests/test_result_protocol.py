"""One result protocol (issue 16 item 3): every result class in bayesdid, built from a small
fit, is a ``Result`` with ``effects(level=None, interval=None)``, ``summary()`` (a
DataFrame), ``to_frame()``, ``plot()`` (a matplotlib Figure), a short ``repr`` and ``str``.

The list of classes is discovered (every ``Result`` subclass defined in bayesdid), so a new
result class without a builder here fails :func:`test_every_result_class_has_a_builder`."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import bayesdid  # noqa: E402
from bayesdid import Panel  # noqa: E402
from bayesdid.datasets import load, simulate_staggered  # noqa: E402
from bayesdid.datasets.simulate_efficiency import simulate_efficiency  # noqa: E402
from bayesdid.datasets.simulate_pilot import simulate_pilot_zones  # noqa: E402
from bayesdid.errors import BayesDidError, IntervalError  # noqa: E402
from bayesdid.results import EFFECT_COLUMNS, EffectResult, Result  # noqa: E402

TINY = dict(draws=60, tune=60, chains=1, random_seed=1, progress=False)
MAX_REPR_LINES = 40


# ---------------------------------------------------------------------- small inputs
def _staggered_panel(**kw) -> Panel:
    sim = simulate_staggered(n_units=40, years=(2005, 2014), batches={2008: 6, 2010: 6},
                             random_seed=4, **kw)
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


def _pilot_panel(n_units: int = 12) -> Panel:
    sim = simulate_pilot_zones(n_units=n_units, treated=1, effect=0.3, random_seed=2)
    return Panel.from_frame(sim.data, **sim.panel_kwargs)


def _efficiency_sim():
    return simulate_efficiency(n_units=30, years=(2010, 2015), batches={2012: 8},
                               random_seed=2)


# ---------------------------------------------------------------------- one builder per class
def _effect_result():
    from bayesdid.classical import twfe
    return twfe(_staggered_panel())


def _bayes_result():
    from bayesdid.did.hierarchical import HierarchicalDiD
    return HierarchicalDiD().fit(_staggered_panel(), **TINY)


def _synth_result():
    from bayesdid.synthetic.synth import synth
    return synth(_pilot_panel(), progress=False)


def _sdid_result():
    from bayesdid.synthetic.sdid import synthdid
    return synthdid(_pilot_panel(), se=None)


def _factor_result():
    from bayesdid.datasets import simulate_factor_panel
    from bayesdid.synthetic.ife import ife
    sim = simulate_factor_panel(n_units=20, n_periods=12, n_treated=4, cohorts=(9,), seed=1)
    return ife(Panel.from_frame(sim.data, **sim.panel_kwargs), r=1, n_boot=20, random_seed=1)


def _regression_control_result():
    from bayesdid.synthetic.regression_control import regression_control
    return regression_control(_pilot_panel(), progress=False)


def _bayes_synth_result():
    from bayesdid.synthetic.bayes_synth import BayesianSyntheticControl
    return BayesianSyntheticControl().fit(_pilot_panel(), **TINY)


def _bayes_placebo_result():
    from bayesdid.synthetic.bayes_synth import BayesianSyntheticControl
    return BayesianSyntheticControl().placebo(_pilot_panel(6), **TINY)


def _bayes_sfa_result():
    from bayesdid.efficiency.bayes_sfa import BayesianSFA
    sim = _efficiency_sim()
    return BayesianSFA(**sim.params["sfa_kwargs"]).fit(sim.data, cores=1, **TINY)


def _sfa_result():
    from bayesdid.efficiency.sfa import sfa
    sim = _efficiency_sim()
    return sfa(sim.data, **sim.params["sfa_kwargs"])


def _propagated_did():
    from bayesdid.classical import twfe
    from bayesdid.efficiency.efficiency_did import efficiency_did
    sim = _efficiency_sim()
    return efficiency_did(_sfa_result(), sim.data, twfe, panel_kwargs=sim.panel_kwargs,
                          n_draws=5, progress=False)


def _bacon_result():
    from bayesdid.staggered.bacon import bacon_decomposition
    panel = Panel.from_frame(load("castle"), unit="sid", time="year", outcome="l_homicide",
                             cohort="cohort", groups=["region"])
    return bacon_decomposition(panel)


def _dea_result():
    from bayesdid.efficiency.dea import dea
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"x1": rng.uniform(1, 5, 12), "x2": rng.uniform(1, 5, 12),
                         "y": rng.uniform(1, 5, 12)})
    return dea(data, inputs=["x1", "x2"], outputs=["y"])


def _ml_result():
    from bayesdid.efficiency.malmquist import malmquist_luenberger
    rng = np.random.default_rng(0)
    n, years = 8, [1, 2, 3]
    data = pd.DataFrame({"dmu": np.repeat(np.arange(n), len(years)),
                         "year": np.tile(years, n),
                         "x": rng.uniform(1, 4, n * len(years)),
                         "y": rng.uniform(1, 4, n * len(years)),
                         "b": rng.uniform(0.5, 2, n * len(years))})
    return malmquist_luenberger(data, unit="dmu", time="year", inputs=["x"], outputs=["y"],
                                bads=["b"])


def _placebo_result():
    from bayesdid.checks.placebo import placebo
    return placebo(_staggered_panel(), "fictional_group", n_draws=20, random_seed=1,
                   progress=False)


def _psm_result():
    from bayesdid.checks.psm import psm_did
    return psm_did(_staggered_panel())


def _robustness_result():
    from bayesdid.checks.robustness import robustness
    return robustness(_staggered_panel(), exclude_periods=[2014], progress=False)


def _event_study_coefficients():
    from bayesdid.did.honest_did import event_study_coefficients
    return event_study_coefficients(_staggered_panel(), leads=3, lags=2)


BUILDERS = {
    "bayesdid.results.EffectResult": _effect_result,
    "bayesdid.bayes.result.BayesResult": _bayes_result,
    "bayesdid.synthetic.synth.SynthResult": _synth_result,
    "bayesdid.synthetic.sdid.SyntheticDiDResult": _sdid_result,
    "bayesdid.synthetic.factor_panel.FactorResult": _factor_result,
    "bayesdid.synthetic.regression_control.RegressionControlResult":
        _regression_control_result,
    "bayesdid.synthetic.bayes_pooled.BayesSynthResult": _bayes_synth_result,
    "bayesdid.synthetic.bayes_synth.BayesPlaceboResult": _bayes_placebo_result,
    "bayesdid.efficiency.bayes_sfa.BayesSFAResult": _bayes_sfa_result,
    "bayesdid.efficiency.sfa.SFAResult": _sfa_result,
    "bayesdid.efficiency.efficiency_did.PropagatedDiDResult": _propagated_did,
    "bayesdid.staggered.bacon.BaconResult": _bacon_result,
    "bayesdid.efficiency._dea_common.DEAResult": _dea_result,
    "bayesdid.efficiency.malmquist.MalmquistResult": _ml_result,
    "bayesdid.checks.placebo_result.PlaceboResult": _placebo_result,
    "bayesdid.checks.psm.PSMResult": _psm_result,
    "bayesdid.checks.robustness.RobustnessResult": _robustness_result,
    "bayesdid.did.event_study_coefficients.EventStudyCoefficients": _event_study_coefficients,
}

_BUILT: dict[str, Result] = {}


@pytest.fixture(params=sorted(BUILDERS), ids=lambda name: name.rsplit(".", 1)[1])
def built(request):
    name = request.param
    if name not in _BUILT:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tiny Bayesian fits do not converge: fine here
            _BUILT[name] = BUILDERS[name]()
    result = _BUILT[name]
    assert f"{type(result).__module__}.{type(result).__qualname__}" == name
    return result


def _result_classes() -> set[str]:
    for mod in pkgutil.walk_packages(bayesdid.__path__, "bayesdid."):
        if mod.name.endswith(("cli", "__main__")):
            continue
        importlib.import_module(mod.name)
    found, todo = set(), [Result]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("bayesdid."):
                found.add(f"{sub.__module__}.{sub.__qualname__}")
    return found


# ---------------------------------------------------------------------- the protocol
@pytest.mark.unit
def test_every_result_class_has_a_builder():
    assert _result_classes() == set(BUILDERS)


@pytest.mark.unit
def test_old_bayesian_synth_result_name_is_an_alias():
    from bayesdid.synthetic.bayes_pooled import BayesSynthResult, SynthResult
    from bayesdid.synthetic.synth import SynthResult as ClassicalSynthResult
    assert SynthResult is BayesSynthResult and ClassicalSynthResult is not BayesSynthResult


@pytest.mark.pipeline
def test_effects_signature_and_columns(built):
    assert isinstance(built, Result)
    params = inspect.signature(built.effects).parameters
    assert list(params) == ["level", "interval"]
    assert params["level"].default is None and params["interval"].default is None
    table = built.effects()
    assert isinstance(table, pd.DataFrame) and len(table) > 0
    assert list(table.columns[:len(EFFECT_COLUMNS)]) == EFFECT_COLUMNS
    assert table["interval"].isin(["confidence", "hdi", "eti", "placebo"]).all()
    # the same call by keyword, and nothing shared with the result
    pd.testing.assert_frame_equal(built.effects(level=None, interval=None), table)
    table.iloc[0, table.columns.get_loc("estimate")] = 1e9
    assert built.effects()["estimate"].iloc[0] != 1e9


@pytest.mark.pipeline
def test_effects_level_and_interval_errors_are_typed(built):
    with pytest.raises(IntervalError, match="level"):
        built.effects(level=1.5)
    with pytest.raises(IntervalError, match=r"gives \[.*\] intervals, not 'nonsense'") as err:
        built.effects(interval="nonsense")
    assert isinstance(err.value, BayesDidError)
    # the result's own interval kind is accepted by name
    own = built.effects()["interval"].iloc[0]
    assert len(built.effects(interval=own)) == len(built.effects())


@pytest.mark.pipeline
def test_effects_at_another_level_or_a_typed_error_naming_the_level(built):
    try:
        table = built.effects(level=0.8)
    except IntervalError as err:  # a result combined at one level names it
        assert "0.95" in str(err)
        return
    assert np.allclose(table["level"], 0.8)
    finite = table[table["lower"].notna() & table["se_or_sd"].notna()]
    wide = built.effects(level=0.95).loc[finite.index]
    # an 80% interval is never wider than the 95% one
    assert ((finite["upper"] - finite["lower"]) <= (wide["upper"] - wide["lower"]) + 1e-12).all()


@pytest.mark.pipeline
def test_summary_to_frame_repr_and_str(built):
    summary = built.summary()
    assert isinstance(summary, pd.DataFrame) and len(summary.columns) > 0
    assert isinstance(built.to_frame(), pd.DataFrame) and len(built.to_frame()) > 0
    text = repr(built)
    assert text.startswith(f"<{type(built).__name__} ")
    assert len(text.splitlines()) <= MAX_REPR_LINES
    assert len(text) <= 80 * MAX_REPR_LINES * 2
    assert isinstance(str(built), str) and isinstance(built.report(), str)
    assert isinstance(built._repr_html_(), str)


@pytest.mark.pipeline
def test_plot_returns_a_figure(built):
    fig = built.plot()
    assert isinstance(fig, Figure) and fig.axes
    assert any(ax.has_data() for ax in fig.axes)


@pytest.mark.pipeline
def test_plot_draws_into_given_axes(built):
    fig = Figure()
    ax = fig.add_subplot()
    assert built.plot(ax=ax) is fig


@pytest.mark.unit
def test_repr_of_a_long_table_shows_a_head_and_counts():
    rows = [dict(estimand="efficiency", group=f"unit={i}", estimate=0.5, se_or_sd=0.1,
                 lower=0.3, upper=0.7, level=0.95, interval="confidence", n_obs=1)
            for i in range(5000)]
    res = EffectResult.from_rows(rows, method="sfa")
    text = repr(res)
    assert len(text.splitlines()) <= 10
    assert "rows=5000" in text and "4995 more rows" in text


@pytest.mark.unit
def test_stored_credible_table_names_its_level():
    rows = [dict(estimand="att", group="overall", estimate=0.1, se_or_sd=0.02, lower=0.06,
                 upper=0.14, level=0.95, interval="hdi", n_obs=100)]
    res = EffectResult.from_rows(rows, method="hierarchical_did")
    with pytest.raises(IntervalError, match=r"level\(s\) \[0\.95\] only"):
        res.effects(level=0.9)
    with pytest.raises(IntervalError, match=r"gives \['hdi'\] intervals, not 'confidence'"):
        res.effects(interval="confidence")


# ---------------------------------------------------------------------- Bayesian models
MODELS = ["bayesdid.did.hierarchical.HierarchicalDiD",
          "bayesdid.synthetic.bayes_synth.BayesianSyntheticControl",
          "bayesdid.synthetic.bayes_regression_control.BayesianRegressionControl",
          "bayesdid.efficiency.bayes_sfa.BayesianSFA",
          "bayesdid.checks.bayes_mediation.BayesianMediation"]


def _model_class(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


@pytest.mark.unit
@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.rsplit(".", 1)[1])
def test_bayesian_models_share_the_fit_keywords_config_and_repr(path):
    from bayesdid.bayes.model import FIT_KEYWORDS
    cls = _model_class(path)
    params = inspect.signature(cls.fit).parameters
    first = list(params)[1]
    assert first == "panel", f"{cls.__name__}.fit's first argument is {first!r}"
    assert params[first].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD
               for p in list(params.values())[2:]), "fit takes only the panel positionally"
    for name in FIT_KEYWORDS:
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
    args = {"bayesdid.efficiency.bayes_sfa.BayesianSFA": dict(y="q", x=["k"]),
            "bayesdid.checks.bayes_mediation.BayesianMediation": dict(mediators=["m"])}.get(path, {})
    model = cls(**args)
    assert repr(model) == f"{cls.__name__}(" + ", ".join(
        f"{k}={v!r}" for k, v in model.config().items()) + ")"


@pytest.mark.unit
@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.rsplit(".", 1)[1])
def test_models_derive_from_the_bayesian_base(path):
    from bayesdid.bayes.model import BayesianModel
    assert issubclass(_model_class(path), BayesianModel)


@pytest.mark.unit
def test_effects_plot_kind_chooses_forest_or_event_study():
    rows = [dict(estimand="att", group="overall", estimate=0.1, se_or_sd=0.02, lower=0.06,
                 upper=0.14, level=0.95, interval="confidence", n_obs=100)]
    rows += [dict(estimand="event_time", group=f"k={k}", estimate=0.0, se_or_sd=0.02,
                  lower=-0.04, upper=0.04, level=0.95, interval="confidence", n_obs=50)
             for k in (-2, 0, 1)]
    res = EffectResult.from_rows(rows, method="event_study")
    assert res.plot().axes[0].get_xlabel() == "event time (k)"
    forest = res.plot(kind="forest").axes[0]
    assert [t.get_text() for t in forest.get_yticklabels()] == ["overall"]
    with pytest.raises(BayesDidError, match="kind must be"):
        res.plot(kind="violin")


@pytest.mark.unit
def test_result_names_before_0_2_are_aliases():
    from bayesdid.efficiency.efficiency_did import PropagatedDiD, PropagatedDiDResult
    from bayesdid.efficiency.malmquist import MalmquistResult, MLResult
    assert MLResult is MalmquistResult and PropagatedDiD is PropagatedDiDResult
