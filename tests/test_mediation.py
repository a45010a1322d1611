"""Mediation: three-step TWFE with a cluster-bootstrap indirect effect, and its Bayesian twin.

The simulator below (:func:`simulate_mediation`) is a test utility: a staggered panel with
mediators of known a, b and direct effect.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyfixest as pf
import pytest

from bayesdid import Panel
from bayesdid.checks.bayes_mediation import BayesianMediation
from bayesdid.checks.mediation import CHUNK, _cluster_counts, mediation
from bayesdid.datasets import simulate_staggered
from bayesdid.errors import ColumnError, DesignError, MissingValueError

MEDIATORS = ("energy_structure", "technical_progress", "labour_productivity")
A = {"energy_structure": 0.5, "technical_progress": 0.35, "labour_productivity": 0.0}
B = {"energy_structure": 0.4, "technical_progress": -0.3, "labour_productivity": 0.25}
C_DIRECT = 0.2


def simulate_mediation(seed: int = 5, n_units: int = 120):
    """Test utility: a staggered panel (treatment from simulate_staggered) with three
    mediators of known a (D -> M) and b (M -> y), and a known direct effect c'::

        M_j = mu_ij + nu_tj + a_j D + 0.3 x1 + N(0, 1)
        y   = alpha_i + delta_t + c' D + sum_j b_j M_j + 0.1 x1 - 0.1 x2 + N(0, 1)

    The mediators' errors are independent, so each single-mediator model also recovers
    its b_j (its direct effect then absorbs the other mediators' a_l b_l).
    """
    sim = simulate_staggered(n_units=n_units, years=(2005, 2016),
                             batches={2008: 15, 2011: 15}, random_seed=seed)
    df = sim.data.copy()
    rng = np.random.default_rng(seed + 100)
    unit = pd.factorize(df["city"])[0]
    year = (df["year"] - 2005).to_numpy()
    n, d = len(df), df["treated"].to_numpy(float)
    y = (2 * rng.normal(size=n_units)[unit] + rng.normal(size=12)[year] + C_DIRECT * d
         + 0.1 * df["x1"] - 0.1 * df["x2"] + rng.normal(size=n))
    for m in MEDIATORS:
        df[m] = (rng.normal(size=n_units)[unit] + rng.normal(size=12)[year] + A[m] * d
                 + 0.3 * df["x1"] + rng.normal(size=n))
        y = y + B[m] * df[m]
    df["y"] = y
    return df, dict(sim.panel_kwargs, outcome="y")


@pytest.fixture(scope="module")
def data():
    df, kwargs = simulate_mediation()
    return df, Panel.from_frame(df, **kwargs)


@pytest.fixture(scope="module")
def res(data):
    df, panel = data
    return mediation(panel, list(MEDIATORS), data=df, joint=True, random_seed=7,
                     progress=False)


@pytest.mark.reference
def test_point_estimates_equal_pyfixest(data, res):
    """Reference: each step's regression run directly in pyfixest (CRV1 by city)."""
    df, _ = data
    ctrl = "x1 + x2 + x3"
    total = pf.feols(f"y ~ treated + {ctrl} | city + year", df, vcov={"CRV1": "city"})
    for m in MEDIATORS:
        g = f"mediator={m}"
        step2 = pf.feols(f"{m} ~ treated + {ctrl} | city + year", df, vcov={"CRV1": "city"})
        step3 = pf.feols(f"y ~ treated + {m} + {ctrl} | city + year", df,
                         vcov={"CRV1": "city"})
        for estimand, fit, coef in (("total", total, "treated"), ("a", step2, "treated"),
                                    ("b", step3, m), ("direct", step3, "treated")):
            row = res.effect(estimand, g)
            assert row["estimate"] == pytest.approx(fit.coef()[coef], abs=1e-8)
            assert row["se_or_sd"] == pytest.approx(fit.se()[coef], abs=1e-8)
        a, b = step2.coef()["treated"], step3.coef()[m]
        assert res.effect("indirect", g)["estimate"] == pytest.approx(a * b, abs=1e-8)
        # OLS identity: total = direct + indirect
        assert total.coef()["treated"] == pytest.approx(
            step3.coef()["treated"] + a * b, abs=1e-8)
    joint = pf.feols(f"y ~ treated + {' + '.join(MEDIATORS)} + {ctrl} | city + year", df,
                     vcov={"CRV1": "city"})
    assert res.effect("direct", "mediator=all, model=joint")["estimate"] == pytest.approx(
        joint.coef()["treated"], abs=1e-8)


@pytest.mark.unit
def test_bootstrap_interval_covers_true_indirect(res):
    for m in MEDIATORS:
        truth = A[m] * B[m]
        for g in (f"mediator={m}", f"mediator={m}, model=joint"):
            row = res.effect("indirect", g)
            assert row["lower"] < truth < row["upper"], (g, row.to_dict())
    all_row = res.effect("indirect", "mediator=all, model=joint")
    assert all_row["lower"] < sum(A[m] * B[m] for m in MEDIATORS) < all_row["upper"]
    # a nonzero path is detected, a null one is not
    assert res.effect("indirect", "mediator=energy_structure")["lower"] > 0
    assert res.effect("indirect", "mediator=technical_progress")["upper"] < 0
    null = res.effect("indirect", "mediator=labour_productivity")
    assert null["lower"] < 0 < null["upper"]
    # the bootstrap sd agrees with the Sobel (delta-method) se to first order
    sob = res.info["sobel"]["mediator=energy_structure"]
    boot_sd = res.effect("indirect", "mediator=energy_structure")["se_or_sd"]
    assert 0.7 < boot_sd / sob["se"] < 1.4
    assert res.info["n_boot"] == 500 and res.info["n_boot_valid"] == 500


@pytest.mark.reference
def test_bootstrap_draw_is_a_relabelled_cluster_resample(data, res):
    """The weighted draw equals pyfixest on the resampled frame with duplicated cities
    relabelled (their own fixed effects): first draw of the first chunk."""
    df, panel = data
    rng = np.random.default_rng(np.random.SeedSequence(7).spawn(500 // CHUNK)[0])
    cities = pd.unique(panel.frame["city"])
    counts = _cluster_counts(rng, len(cities))
    parts = [df[df["city"] == c].assign(city=f"{c}_{r}")
             for c, n in zip(cities, counts) for r in range(n)]
    boot = pd.concat(parts, ignore_index=True)
    m = "energy_structure"
    a = pf.feols(f"{m} ~ treated + x1 + x2 + x3 | city + year", boot).coef()["treated"]
    b = pf.feols(f"y ~ treated + {m} + x1 + x2 + x3 | city + year", boot).coef()[m]
    assert res.info["bootstrap_draws"][f"mediator={m}"][0] == pytest.approx(a * b, abs=1e-8)


@pytest.mark.unit
def test_same_seed_same_bootstrap(data, res):
    df, panel = data
    again = mediation(panel, ["energy_structure"], data=df, n_boot=60, random_seed=7,
                      progress=False)
    first = res.info["bootstrap_draws"]["mediator=energy_structure"]
    second = again.info["bootstrap_draws"]["mediator=energy_structure"]
    assert np.array_equal(first[:60], second)  # same chunks, same seeds
    other = mediation(panel, ["energy_structure"], data=df, n_boot=60, random_seed=8,
                      progress=False)
    assert not np.array_equal(other.info["bootstrap_draws"]["mediator=energy_structure"],
                              second)


@pytest.mark.unit
def test_sobel_interval_without_bootstrap(data, res):
    df, panel = data
    sob = mediation(panel, ["energy_structure"], data=df, n_boot=0, progress=False)
    row = sob.effect("indirect", "mediator=energy_structure")
    ref = res.info["sobel"]["mediator=energy_structure"]
    assert row["se_or_sd"] == pytest.approx(ref["se"], rel=1e-12)
    assert row["upper"] - row["estimate"] == pytest.approx(1.959963984540054 * ref["se"])
    assert sob.info["indirect_interval"] == "Sobel normal"


@pytest.mark.unit
def test_bad_mediators(data):
    df, panel = data
    holes = df.copy()
    holes.loc[[3, 40, 41], "technical_progress"] = np.nan
    with pytest.raises(MissingValueError, match="technical_progress.*3 missing") as err:
        mediation(panel, list(MEDIATORS), data=holes, progress=False)
    assert list(err.value.rows.index) == [3, 40, 41]
    assert list(err.value.rows["year"]) == list(df.loc[[3, 40, 41], "year"])
    assert "Hint" in str(err.value)
    with pytest.raises(MissingValueError):
        BayesianMediation(["technical_progress"]).build(panel, data=holes)
    with pytest.raises(ColumnError, match="not in the panel"):
        mediation(panel, ["energy_structure"], progress=False)
    with pytest.raises(DesignError, match="both a mediator and a control"):
        mediation(panel, ["x1"], covariates=["x1", "x2"], progress=False)


@pytest.mark.model
def test_bayesian_likelihood_matches_projected_regression(data, res):
    """The cross-product likelihood at the OLS point equals the residual sum of squares of
    pyfixest's TWFE fit, with n - units - periods + 1 - controls degrees of freedom."""
    df, panel = data
    bm = BayesianMediation(list(MEDIATORS))
    design = bm.prepare(panel, data=df)
    assert design.n_eff == len(df) - 120 - 12 + 1 - 3
    ols = design.ols()
    for j, m in enumerate(MEDIATORS):
        assert ols["a"][j] == pytest.approx(res.effect("a", f"mediator={m}")["estimate"],
                                            abs=1e-8)
        assert ols["b"][j] == pytest.approx(res.effect("b", f"mediator={m}")["estimate"],
                                            abs=1e-8)
    model = bm._build(design)
    fit = pf.feols("energy_structure ~ treated + x1 + x2 + x3 | city + year", df)
    rss = float(np.sum(fit.resid() ** 2))
    a = np.array(ols["a"])
    sig = np.array([0.9, 1.1, 1.0])
    potential = model.replace_rvs_by_values([model["loglik_mediator"]])[0]
    logp = model.compile_fn(potential)({"a": a, "sigma_m_log__": np.log(sig)})
    G = design.gram
    rss_all = np.diag(G)[2:] - 2 * a * G[1, 2:] + a**2 * G[1, 1]
    assert rss_all[0] == pytest.approx(rss, rel=1e-8)
    expected = np.sum(-design.n_eff * np.log(sig) - rss_all / (2 * sig**2))
    assert float(logp) == pytest.approx(expected, rel=1e-10)


@pytest.mark.sampling
def test_bayesian_posterior_covers_indirect(data):
    df, panel = data
    bm = BayesianMediation(list(MEDIATORS[:2]), joint=True)
    post = bm.fit(panel, data=df, draws=500, tune=500, chains=2, cores=1,
                  random_seed=3, progress=False)
    eff = post.effects()
    for m in MEDIATORS[:2]:
        row = post.effect("indirect", f"mediator={m}")
        assert row["lower"] < A[m] * B[m] < row["upper"]
        assert row["interval"] == "hdi"
        draws = post.draws("indirect", f"mediator={m}")
        a, b = post.draws("a", f"mediator={m}"), post.draws("b", f"mediator={m}")
        assert np.allclose(draws, a * b)  # the indirect effect is a*b draw by draw
        assert post.effect("b", f"mediator={m}")["lower"] < B[m] < \
            post.effect("b", f"mediator={m}")["upper"]
    assert post.effect("direct", "mediator=all, model=joint")["lower"] < C_DIRECT < \
        post.effect("direct", "mediator=all, model=joint")["upper"]
    assert len(eff) == 2 * 5 + 2 * 3 + 3
    diag = post.diagnostics(warn=False)
    assert diag["r_hat"].max() < 1.05 and diag.attrs["divergences"] == 0
