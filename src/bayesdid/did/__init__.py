"""Difference-in-differences and event studies: the classical estimators and their Bayesian twin.

==========================  ============================================================
module                      what it holds
==========================  ============================================================
:mod:`.twfe`                two-way fixed-effects DID (classical)
:mod:`.event_study`         leads and lags of adoption with fixed effects (classical)
:mod:`.honest_did`          Rambachan-Roth sensitivity of an event study (classical)
:mod:`.hierarchical`        ``HierarchicalDiD``: the Bayesian DID / event study
:mod:`.bayes_sensitivity`   Bayesian twin of ``honest_did``
:mod:`.hierarchical_design`, :mod:`.hierarchical_model`, :mod:`.marginal_likelihood`,
:mod:`.priors`, :mod:`.aggregate`, :mod:`.contrasts`: the Bayesian DID's parts
:mod:`._fixest`, :mod:`._demean`: fixed-effect regressions shared by the classical estimators
==========================  ============================================================
"""
