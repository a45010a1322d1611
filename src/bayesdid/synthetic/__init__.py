"""Few treated units: synthetic control, synthetic DID and regression control, classical and Bayesian.

==================================  ===========================================================
module                              what it holds
==================================  ===========================================================
:mod:`.synth`                       ADH synthetic control with placebo inference (classical)
:mod:`.synth_search`, :mod:`.synth_simplex`  its outer (V) and inner (weights) problems
:mod:`.bayes_synth`                 ``BayesianSyntheticControl`` (Bayesian twin of ``synth``)
:mod:`.sdid`                        synthetic DID (classical)
:mod:`.regression_control`          HCW regression control (classical)
:mod:`.ife`                         interactive fixed effects / gsynth (classical, many treated)
:mod:`.mc_nnm`                      matrix completion with nuclear norm (classical)
:mod:`.factor_panel`                their shared matrices, parametric bootstrap and result
:mod:`.bayes_regression_control`    ``BayesianRegressionControl`` (its Bayesian twin)
:mod:`.bayes_factor`                ``BayesianFactorDiD`` (Bayesian twin of ``ife``; design, PPC, nutpie density in ``bayes_factor_*``)
:mod:`.bayes_pooled`                shared back end of the two Bayesian models
:mod:`.donors`, :mod:`.donor_checks`  donor matrices and fit-time donor-pool warnings
==================================  ===========================================================
"""
