"""Difference-in-differences and event studies: the classical estimators and their Bayesian twin.

Classical: :mod:`.twfe` (two-way fixed-effects DID), :mod:`.event_study` (leads and lags of
adoption), :mod:`.honest_did` (Rambachan-Roth sensitivity), on the fixed-effect regressions
of :mod:`._fixest` and :mod:`._demean`.

Bayesian: :mod:`.hierarchical` (``HierarchicalDiD``, the Bayesian DID / event study),
:mod:`.bayes_sensitivity` (twin of ``honest_did``), :mod:`.ppc` (posterior predictive
residual checks that name the misfit), and the model's parts: :mod:`.hierarchical_design`,
:mod:`.hierarchical_model`, :mod:`.priors`, :mod:`.marginal_likelihood` (NumPy) with
:mod:`.marginal_likelihood_numba` (compiled) and :mod:`.nutpie_density` (the compiled
density nutpie samples), :mod:`.aggregate` and :mod:`.contrasts`.
"""
