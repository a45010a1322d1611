"""Loud about convergence, stated not silent (issue 13, items 6 and 7).

Every Bayesian ``fit`` checks R-hat, bulk/tail ESS and divergences on everything it reports
and warns (:class:`ConvergenceWarning`) naming the parameters; a model that ignores the
panel's ``cluster`` or ``weights`` says so (:class:`DesignIgnoredWarning`); ``compare()``
notes a model-based interval beside a cluster-robust one.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayesdid import Panel
from bayesdid.bayes.convergence import (
    convergence_message,
    convergence_summary,
    diagnostics_table,
    failed_checks,
    rhat_ess,
)
from bayesdid.bayes.notices import warn_ignored_design
from bayesdid.bayes.result import BayesResult
from bayesdid.classical import twfe
from bayesdid.compare import compare
from bayesdid.datasets import simulate_staggered
from bayesdid.errors import BayesDidError, ConvergenceWarning, DesignIgnoredWarning
from bayesdid.results import EffectResult


# ============================================================== the statistics themselves
def _ar1(rng, shape, phi):
    e = rng.normal(size=shape)
    x = np.empty_like(e)
    x[:, 0] = e[:, 0]
    for t in range(1, shape[1]):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


@pytest.mark.unit
@pytest.mark.parametrize("chains,draws", [(1, 100), (2, 5), (2, 7), (2, 50), (4, 101),
                                          (3, 400), (4, 1000)])
def test_vectorised_rhat_and_ess_equal_arviz_stats(chains, draws):
    import arviz_stats as azs

    rng = np.random.default_rng(chains * 1000 + draws)
    shape = (chains, draws)
    x = np.concatenate([
        rng.normal(size=(*shape, 3)), _ar1(rng, (*shape, 3), 0.9), _ar1(rng, (*shape, 2), -0.5),
        _ar1(rng, (*shape, 2), 0.99),
        rng.normal(size=(*shape, 2)) + np.arange(chains)[:, None, None],
        np.ones((*shape, 1)), rng.exponential(size=(*shape, 2)) ** 3,
        rng.integers(0, 3, size=(*shape, 2)).astype(float)], axis=2)  # ties, a constant
    ds = xr.Dataset({"x": (("chain", "draw", "k"), x)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # arviz on the constant column
        want = (azs.rhat(ds)["x"].values, azs.ess(ds, method="bulk")["x"].values,
                azs.ess(ds, method="tail", prob=0.95)["x"].values)
    for got, ref in zip(rhat_ess(x), want):
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=0)


# ============================================================== draws with a known verdict
def _tree(posterior: dict, diverging: np.ndarray | None = None) -> xr.DataTree:
    """A DataTree shaped like a fit's: ``posterior`` variables (chain, draw, ...) plus an
    ``effect`` with estimand/group coords, and sample_stats."""
    chains, draws = next(iter(posterior.values())).shape[:2]
    data = {}
    for name, arr in posterior.items():
        dims = ("chain", "draw", *(["effect_id"] if name == "effect" else
                                   [f"{name}_dim_{i}" for i in range(arr.ndim - 2)]))
        data[name] = (dims, arr)
    post = xr.Dataset(data, coords={"effect_id": ["att|overall"],
                                    "estimand": ("effect_id", ["att"]),
                                    "group": ("effect_id", ["overall"])})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((chains, draws), bool)
                                      if diverging is None else diverging)})
    const = xr.Dataset({"effect_n_obs": ("effect_id", [100])},
                       coords={"effect_id": ["att|overall"]})
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats,
                                  "constant_data": const})


def _good(chains: int = 4, draws: int = 1000, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"sigma": np.abs(rng.normal(size=(chains, draws))) + 0.1,
            "slopes": rng.normal(size=(chains, draws, 3)),
            "effect": rng.normal(size=(chains, draws, 1))}


def _stuck(chains: int = 4, draws: int = 1000) -> dict:
    """Chains that sit in different places for ``sigma`` and slope 1 (R-hat >> 1.01)."""
    post = _good(chains, draws)
    post["sigma"] = post["sigma"] + np.arange(chains)[:, None]
    post["slopes"][:, :, 1] += 3 * np.arange(chains)[:, None]
    return post


def _from_fit(tree, **info):
    return BayesResult.from_fit(tree, method="toy", info={"model_type": "Toy",
                                                          "sampled_vars": ["sigma", "slopes"],
                                                          **info})


def _convergence_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, ConvergenceWarning)]


@pytest.mark.unit
def test_well_mixed_draws_pass_and_do_not_warn():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        res = _from_fit(_tree(_good()))
    assert _convergence_warnings(seen) == []
    conv = res.info["convergence"]
    # sigma, three slopes and the effect: every sampled quantity and the reported effect
    assert conv["ok"] and conv["n_checked"] == 5 and conv["failed"] == []
    assert list(res.diagnostics(warn=False)["parameter"]) == [
        "sigma", "slopes[0]", "slopes[1]", "slopes[2]", "att|overall"]


@pytest.mark.unit
def test_stuck_chains_warn_naming_the_parameters_and_record_them():
    with pytest.warns(ConvergenceWarning) as seen:
        res = _from_fit(_tree(_stuck()))
    text = _convergence_warnings(seen)
    assert len(text) == 1  # one warning per fit, not one per parameter
    assert "Toy" in text[0] and "sigma (R-hat" in text[0] and "slopes[1] (R-hat" in text[0]
    assert "slopes[0]" not in text[0] and "draws and tune" in text[0]
    conv = res.info["convergence"]
    assert not conv["ok"] and conv["n_failed"] == 2
    assert {f["parameter"] for f in conv["failed"]} == {"sigma", "slopes[1]"}
    assert all("r_hat" in f["fails"] and f["r_hat"] > 1.5 for f in conv["failed"])
    json.dumps(conv, allow_nan=False)  # stored in the netCDF attrs and read by the report


@pytest.mark.unit
def test_short_chains_fail_bulk_and_tail_ess():
    with pytest.warns(ConvergenceWarning, match=r"bulk ESS \d+, tail ESS \d+"):
        res = _from_fit(_tree(_good(chains=2, draws=100)))
    fails = {f["parameter"]: f["fails"] for f in res.info["convergence"]["failed"]}
    assert set(fails) == {"sigma", "slopes[0]", "slopes[1]", "slopes[2]", "att|overall"}
    assert all({"ess_bulk", "ess_tail"} <= set(f) for f in fails.values())


@pytest.mark.unit
def test_divergences_alone_warn_and_advise_target_accept():
    div = np.zeros((4, 1000), bool)
    div[0, [5, 50, 500]] = True
    with pytest.warns(ConvergenceWarning, match="3 divergent transition.*target_accept"):
        res = _from_fit(_tree(_good(), diverging=div))
    assert res.info["convergence"]["divergences"] == 3 and res.info["convergence"]["n_failed"] == 0


@pytest.mark.unit
def test_one_chain_skips_r_hat_and_says_so():
    good = _tree(_good(chains=1, draws=4000))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        res = _from_fit(good)
    assert _convergence_warnings(seen) == []  # R-hat is NaN, ESS is fine: no false alarm
    assert res.info["convergence"]["r_hat_checked"] is False
    assert res.diagnostics(warn=False)["r_hat"].isna().all()
    with pytest.warns(ConvergenceWarning, match="R-hat not checked: it needs at least 2 chains"):
        _from_fit(_tree(_good(chains=1, draws=100)))


@pytest.mark.unit
def test_worst_first_and_at_most_five_named():
    rng = np.random.default_rng(1)
    post = {"slopes": rng.normal(size=(4, 1000, 8)) + np.linspace(0, 2, 8)[None, None, :]
            * np.arange(4)[:, None, None], "effect": rng.normal(size=(4, 1000, 1))}
    table = diagnostics_table(_tree(post), ["slopes"])
    bad = failed_checks(table)
    assert list(bad["parameter"][:3]) == ["slopes[7]", "slopes[6]", "slopes[5]"]
    message = convergence_message(convergence_summary(table, _tree(post)), "Toy")
    worst = message.split("worst: ", 1)[1].split(". Before", 1)[0]
    assert [p.split(" (")[0] for p in worst.split("; ")[:5]] == [f"slopes[{i}]" for i in
                                                                 (7, 6, 5, 4, 3)]
    assert worst.endswith("; and 2 more")


@pytest.mark.unit
def test_loading_a_saved_fit_does_not_warn(tmp_path):
    with pytest.warns(ConvergenceWarning):
        res = _from_fit(_tree(_stuck()))
    path = res.save(tmp_path / "fit.nc")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        back = BayesResult.load(path)
    assert _convergence_warnings(seen) == []
    assert back.info["convergence"] == res.info["convergence"]
    with pytest.warns(ConvergenceWarning, match="sigma"):  # but asking still warns
        back.diagnostics()


# ============================================================== real fits
@pytest.fixture(scope="module")
def sim():
    return simulate_staggered(n_units=30, years=(2005, 2012), batches={2008: 6, 2010: 6},
                              n_covariates=1, random_seed=4)


@pytest.fixture(scope="module")
def small_panel(sim):
    return Panel.from_frame(sim.data, **sim.panel_kwargs)  # cluster="city"


@pytest.mark.sampling
def test_under_sampled_did_warns_naming_parameters_and_design(small_panel):
    from bayesdid import HierarchicalDiD

    assert small_panel.cluster == "city"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        res = HierarchicalDiD().fit(small_panel, draws=20, tune=20, chains=2, random_seed=1,
                                    progress=False)
    conv = _convergence_warnings(seen)
    assert len(conv) == 1 and "HierarchicalDiD" in conv[0]
    named = {f["parameter"] for f in res.info["convergence"]["failed"]}
    assert any(f"{p} (" in conv[0] for p in named)
    # every sampled hyperparameter, the cell effects and every reported effect are checked
    checked = set(res.diagnostics(warn=False)["parameter"])
    assert {"sigma", "rho", "att|overall"} <= checked
    assert any(p.startswith("sd_") for p in checked)
    assert any(p.startswith("tau_cell[") for p in checked)
    design = [str(w.message) for w in seen if issubclass(w.category, DesignIgnoredWarning)]
    assert design == ["HierarchicalDiD ignores panel.cluster='city': its intervals are "
                      "model-based (AR(1) errors within unit), not cluster-robust."]
    assert seen[0].filename == __file__  # points at the caller's line, not at bayesdid


@pytest.mark.sampling
def test_well_sampled_mediation_does_not_warn(sim):
    from bayesdid import BayesianMediation

    plain = Panel.from_frame(sim.data, **{**sim.panel_kwargs, "cluster": None})
    assert plain.cluster is None and plain.weights is None
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        # 2 x 1000 draws: at 2 x 600 an R-hat of 1.011 turned up by chance (seed 3 on an
        # AMD host; max R-hat 1.002-1.004 over seeds 3-6 at 2 x 1000)
        res = BayesianMediation(mediators=["x1"]).fit(plain, draws=1000, tune=1000, chains=2,
                                                       random_seed=3, progress=False)
    assert _convergence_warnings(seen) == [], _convergence_warnings(seen)
    assert not [w for w in seen if issubclass(w.category, DesignIgnoredWarning)]
    conv = res.info["convergence"]
    assert conv["ok"] and conv["n_checked"] >= 8  # a, b, c', two sigmas and the effects


# ============================================================== ignored design
@pytest.mark.unit
def test_ignored_weights_and_cluster_in_one_warning(sim):
    frame = sim.data.assign(pop=1.0)
    weighted = Panel.from_frame(frame, **{**sim.panel_kwargs, "weights": "pop"})
    from bayesdid import BayesianMediation, HierarchicalDiD

    with pytest.warns(DesignIgnoredWarning) as seen:
        ignored = warn_ignored_design(HierarchicalDiD(errors="iid"), weighted)
    # HierarchicalDiD reads the weights in its likelihood (precision weights): only the
    # cluster is ignored
    assert ignored == {"cluster": "city"} and len(seen) == 1
    text = str(seen[0].message)
    assert "(iid Gaussian errors)" in text and "weights" not in text
    with pytest.warns(DesignIgnoredWarning, match="panel.weights='pop' are not used"):
        warn_ignored_design(BayesianMediation(mediators=["x1"]), weighted)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_ignored_design(HierarchicalDiD(), frame) == {}  # a DataFrame: nothing


# ============================================================== compare()
def _row(**kw):
    return dict(dict(estimand="att", group="overall", estimate=0.1, se_or_sd=0.02,
                     lower=0.06, upper=0.14, level=0.95, interval="confidence", n_obs=100),
                **kw)


@pytest.mark.unit
def test_compare_notes_model_based_beside_cluster_robust(small_panel):
    classical = twfe(small_panel)
    assert classical.info["vcov"] == "CRV1 by city"
    bayes = EffectResult.from_rows([_row(interval="hdi")], method="hierarchical_did",
                                   info={"model_type": "HierarchicalDiD",
                                         "config": {"errors": "ar1"}})
    cmp = compare(classical, bayes)
    assert len(cmp.notes) == 1
    note = cmp.notes[0]
    assert "hierarchical_did gives model-based credible intervals (AR(1) errors within unit" \
        in note and "twfe (CRV1 by city)" in note
    assert f"Note: {note}" in cmp.to_markdown() and "Note: Model-based" in repr(cmp)
    assert "Note: Model-based" in cmp.to_html() and r"hierarchical\_did gives" in cmp.to_latex()
    # no note without a cluster-robust classical interval, or without a Bayesian one
    unclustered = EffectResult.from_rows([_row()], method="synth", info={"se": "placebo"})
    assert compare(unclustered, bayes).notes == ()
    assert compare(classical, unclustered).notes == ()
    assert "Note:" not in compare(classical, unclustered).to_markdown()


@pytest.mark.unit
def test_a_thinned_result_keeps_the_diagnostics_of_its_full_draws(tmp_path):
    diverging = np.zeros((4, 1000), bool)
    diverging[0, 3] = True  # a draw the thinning drops (stride 20 keeps 0, 20, 40, ...)
    with pytest.warns(ConvergenceWarning, match="1 divergent"):
        res = _from_fit(_tree(_good(), diverging))
    full = res.diagnostics(warn=False)
    small = res.thinned(200, float32=True)
    assert dict(small.idata.posterior.sizes) == {"chain": 4, "draw": 50, "effect_id": 1,
                                                 "slopes_dim_0": 3}
    assert small.idata.sample_stats.sizes["draw"] == 50
    assert all(da.dtype == np.float32 for da in small.idata.posterior.data_vars.values())
    assert small.info["stored_draws"] == {"chains": 4, "draws_per_chain": 50,
                                          "sampled_per_chain": 1000, "stride": 20,
                                          "dtype": "float32"}
    # recomputed on 200 draws the ESS check would fail; the fit's verdict is what is kept
    assert not failed_checks(diagnostics_table(small.idata, ["sigma", "slopes"])).empty
    pd.testing.assert_frame_equal(small.diagnostics(warn=False), full)
    assert small.diagnostics(warn=False).attrs["divergences"] == 1
    assert small.info["convergence"] == res.info["convergence"]
    with pytest.warns(ConvergenceWarning, match=r"4 chain\(s\) x 1000 draws"):
        small.diagnostics()  # warns with the fit's own numbers
    back = BayesResult.load(small.save(tmp_path / "small.nc"))
    assert "bayesdid_diagnostics" not in back.idata.children
    pd.testing.assert_frame_equal(back.diagnostics(warn=False), full)
    assert back.diagnostics(warn=False).attrs["divergences"] == 1
    np.testing.assert_array_equal(back.idata.posterior["effect"].values,
                                  small.idata.posterior["effect"].values)
    pd.testing.assert_frame_equal(back.effects(), small.effects())
    with pytest.raises(BayesDidError, match="max_draws"):
        res.thinned(0)
