"""Posterior predictive residual checks of the hierarchical DID name the misfit.

The statistic-level tests feed residuals with a known structure (the parameters at their
true values, so no sampling): each misfit flags its own check and only that one. The fit-
level tests run a short HierarchicalDiD on a panel with region x year shocks.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from bayesdid import HierarchicalDiD, ModelCheckWarning, Panel
from bayesdid.datasets import simulate_staggered
from bayesdid.did.ppc import residual_checks
from bayesdid.errors import BayesDidError

N_UNITS, N_T, N_REGIONS = 60, 15, 4


def _layout():
    unit = np.repeat(np.arange(N_UNITS), N_T)
    t = np.tile(np.arange(N_T), N_UNITS)
    prev = np.where(t > 0, np.arange(len(t)) - 1, -1)
    region = unit % N_REGIONS
    return unit, t, prev, region


def _errors(kind: str, rng) -> np.ndarray:
    unit, t, _, region = _layout()
    innov = rng.standard_normal(len(t))
    if kind == "hetero":
        innov *= np.exp(rng.normal(0, 0.8, N_UNITS))[unit]
    if kind == "shocks":
        innov += 0.8 * rng.standard_normal((N_REGIONS, N_T))[region, t]
    if kind == "student_t":  # heavy tails, no structure the checks target
        innov = rng.standard_t(5, len(t)) / np.sqrt(5 / 3)
    e = np.zeros(len(t))
    for i in range(len(t)):  # AR(1) rho 0.5, or AR(2) (1.0, -0.5) whose lag 1 is also ~0.67
        if kind == "ar2":
            e[i] = innov[i] + (1.0 * e[i - 1] if t[i] >= 1 else 0) - (
                0.5 * e[i - 2] if t[i] >= 2 else 0)
        else:
            e[i] = innov[i] + (0.5 * e[i - 1] if t[i] >= 1 else 0)
    return e


def _checks(kind: str, seed: int = 0, rho: float = 0.5, errors: str = "ar1") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    e = _errors(kind, rng)
    unit, t, prev, region = _layout()
    n = 60
    # a constant design and the truth's own sigma and rho: the residual layer in isolation
    return residual_checks(
        y=e, Z=sp.csr_matrix(np.ones((len(e), 1))), phi=np.zeros((n, 1)),
        sigma=np.full(n, e.std() * np.sqrt(1 - rho**2)), rho=np.full(n, rho), lam_a=1.0,
        unit_idx=unit, prev_row=prev, time_idx=t, groups={"region": region},
        errors=errors, n_draws=n, seed=seed).set_index("check")


def _flagged(table: pd.DataFrame) -> set[str]:
    return set(table.index[table["flagged"]])


@pytest.mark.unit
@pytest.mark.parametrize("seed", range(6))
def test_well_specified_errors_flag_nothing(seed):
    assert _flagged(_checks("ar1", seed)) == set()


@pytest.mark.unit
def test_heavy_tails_flag_kurtosis_not_heteroskedasticity():
    table = _checks("student_t")
    assert _flagged(table) == {"kurtosis"}
    assert table.loc["kurtosis", "remedy"] == "heavy-tailed errors: errors='student_t'"


@pytest.mark.unit
@pytest.mark.parametrize(("kind", "check"), [
    ("hetero", "unit_variance"),
    ("shocks", "region_x_period"),
])
def test_each_misfit_flags_its_own_check(kind, check):
    table = _checks(kind)
    # unequal unit variances also make the pooled innovations heavy-tailed: kurtosis may join
    assert check in _flagged(table) <= {check, "kurtosis"}
    assert table.loc[check, "observed"] > table.loc[check, "replicated"]
    assert table.loc[check, "remedy"]


@pytest.mark.unit
def test_persistence_beyond_ar1_flags_autocorrelation():
    table = _checks("ar2", rho=0.67)
    assert {"autocorr_lag1", "autocorr_lag2"} & _flagged(table)
    assert "no richer serial model yet" in table.loc[
        next(iter(_flagged(table) & {"autocorr_lag1", "autocorr_lag2"})), "remedy"]


@pytest.mark.unit
def test_ar1_errors_fitted_as_iid_point_to_ar1():
    table = _checks("ar1", rho=0.0, errors="iid")
    assert "autocorr_lag1" in _flagged(table)
    assert table.loc["autocorr_lag1", "remedy"].startswith("errors='ar1'")


def _shock_panel(seed: int = 3) -> Panel:
    sim = simulate_staggered(n_units=80, years=(2005, 2016), batches={2008: 10, 2011: 10},
                             n_covariates=0, sigma=0.02, random_seed=seed)
    df = sim.data.copy()
    rng = np.random.default_rng(seed)
    regions = sorted(df["region"].unique())
    years = sorted(df["year"].unique())
    shock = pd.DataFrame(rng.normal(0, 0.05, (len(regions), len(years))), index=regions,
                         columns=years).stack().rename("shock")
    df = df.join(shock, on=["region", "year"])
    df["eco_eff"] += df["shock"]
    return Panel.from_frame(df, unit="city", time="year", outcome="eco_eff", treat="treated",
                            groups=["region"])


@pytest.mark.sampling
def test_fit_warns_and_records_region_by_period_shocks():
    panel = _shock_panel()
    # random_effects=None: the model without region x year effects, whose check this is
    # (the default, "auto", would refit with them; tests/test_auto_random_effects.py)
    with pytest.warns(ModelCheckWarning, match="region_x_period"):
        res = HierarchicalDiD(pool=("cohort",), random_effects=None).fit(
            panel, draws=500, tune=500, chains=2, random_seed=1, progress=False)
    table = res.ppc().set_index("check")
    assert table.loc["region_x_period", "flagged"]
    assert "region^year" in table.loc["region_x_period", "remedy"]
    assert table.loc["region_x_period", "observed"] > 2 * table.loc["region_x_period",
                                                                      "replicated"]


@pytest.mark.unit
def test_results_without_checks_say_so():
    from bayesdid.bayes.result import BayesResult

    row = dict(estimand="att", group="overall", estimate=0.1, se_or_sd=0.02, lower=0.06,
               upper=0.14, level=0.95, interval="hdi", n_obs=100)
    res = BayesResult.from_rows([row], method="x", info={"model_type": "Other"})
    with pytest.raises(BayesDidError, match="recorded no residual checks"):
        res.ppc()
