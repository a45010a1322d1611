"""Staggered adoption: heterogeneity-robust estimators and the TWFE decomposition (classical).

:mod:`.callaway_santanna` (group-time ATTs), :mod:`.estimators` (Sun-Abraham and BJS
imputation), :mod:`.bacon` (Goodman-Bacon decomposition); :mod:`._imputation` and
:mod:`._bootstrap` are their NumPy layers. The Bayesian twin is
:class:`bayesdid.did.hierarchical.HierarchicalDiD`, which pools cohort x event-time cells.
"""
