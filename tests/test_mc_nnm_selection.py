"""MC-NNM's bias on the factor benchmark is its objective's, not the solver's: on noise-free
panels it recovers the effect exactly when the treated units' loadings are drawn like the
controls', and when they are shifted (selection on loadings) the minimum-nuclear-norm
completion of the treated block has a smaller nuclear norm than the true one, so the exact
optimum is biased (benchmarks/results/bayes_factor_offmodel.md, "MC-NNM")."""

import numpy as np
import pytest

from bayesdid.datasets import simulate_factor_panel
from bayesdid.synthetic.mc_nnm import soft_impute_fe

LAM = 1e-2  # noise-free: lambda -> 0 is min ||L||_* subject to fitting the untreated cells


def _nuclear(M):
    return float(np.linalg.svd(M, compute_uv=False).sum())


def _fit(loading_shift):
    sim = simulate_factor_panel(cohorts=(15,), seed=1000, sigma=0.0, loading_shift=loading_shift)
    Y = sim.data.pivot(index="unit", columns="time", values="y").to_numpy()
    Z = sim.data.pivot(index="unit", columns="time", values="treated").to_numpy().astype(bool)
    y0, L = soft_impute_fe(Y, ~Z, LAM, tol=1e-9, max_iter=100_000)
    Y0 = Y - np.where(Z, sim.att, 0.0)  # effect is constant (3): the true untreated outcomes
    _, L_true = soft_impute_fe(Y0, np.ones_like(Z), LAM, tol=1e-9, max_iter=100_000)
    return float((Y - y0)[Z].mean()) - sim.att, _nuclear(L), _nuclear(L_true), (Y - y0)[~Z]


def test_mc_nnm_recovers_the_effect_without_selection_on_loadings():
    # a solver bug (fixed effects, thresholding, stopping) would show here as an error
    bias, nuc, nuc_true, resid = _fit(loading_shift=0.0)
    assert np.abs(resid).max() < 0.05  # fits the untreated cells
    assert abs(bias) < 0.02
    assert nuc == pytest.approx(nuc_true, rel=1e-3)


def test_mc_nnm_optimum_is_biased_under_selection_on_loadings():
    bias, nuc, nuc_true, resid = _fit(loading_shift=1.0)
    assert np.abs(resid).max() < 0.05
    # the completion it finds is cheaper in nuclear norm than the truth: the objective, not
    # the solver, prefers a treated block shrunk toward the fixed-effects (TWFE) imputation
    assert nuc < nuc_true - 0.3
    assert bias > 0.8
