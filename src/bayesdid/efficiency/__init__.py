"""Eco-efficiency: DEA, stochastic frontiers (classical and Bayesian) and DID on efficiency.

:mod:`.dea` (CCR/BCC, directional distance, SBM), :mod:`.malmquist` (Malmquist-Luenberger),
:mod:`.sfa` (SFA by maximum likelihood) beside :mod:`.bayes_sfa` (``BayesianSFA``), and
:mod:`.efficiency_did` (a DID on estimated efficiency with its uncertainty propagated).
"""
