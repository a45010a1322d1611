"""Robustness and mechanism checks: placebos, PSM-DID, the robustness battery, heterogeneity
and mediation (classical, with the Bayesian mediation beside its twin).

:mod:`.placebo`, :mod:`.psm`, :mod:`.robustness`, :mod:`.heterogeneity`, :mod:`.mediation`
and :mod:`.bayes_mediation` (``BayesianMediation``).
"""
