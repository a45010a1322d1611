"""Where modules moved when the package was grouped by family (0.2): old import paths keep working.

Version 0.2 grouped the modules by method family, each family holding the classical estimator
and its Bayesian twin side by side (``did/``, ``staggered/``, ``synthetic/``, ``efficiency/``,
``checks/``), and the study machinery in ``study/``. Every former module path below is an alias
of its new module (the same module object), so ``import bayesdid.bayes.did`` or
``from bayesdid.classical.synth import synth`` still work. The aliases are kept for one
release; the README lists the new paths.

>>> import bayesdid.bayes.did as old, bayesdid.did.hierarchical as new
>>> old is new
True
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    "bayesdid.bayes.aggregate": "bayesdid.did.aggregate",
    "bayesdid.bayes.contrasts": "bayesdid.did.contrasts",
    "bayesdid.bayes.design": "bayesdid.did.hierarchical_design",
    "bayesdid.bayes.did": "bayesdid.did.hierarchical",
    "bayesdid.bayes.did_model": "bayesdid.did.hierarchical_model",
    "bayesdid.bayes.likelihoods": "bayesdid.did.marginal_likelihood",
    "bayesdid.bayes.mediation": "bayesdid.checks.bayes_mediation",
    "bayesdid.bayes.priors": "bayesdid.did.priors",
    "bayesdid.bayes.regression_control": "bayesdid.synthetic.bayes_regression_control",
    "bayesdid.bayes.sensitivity": "bayesdid.did.bayes_sensitivity",
    "bayesdid.bayes.sfa": "bayesdid.efficiency.bayes_sfa",
    "bayesdid.bayes.synth": "bayesdid.synthetic.bayes_synth",
    "bayesdid.bayes.synth_checks": "bayesdid.synthetic.donor_checks",
    "bayesdid.bayes.synth_pooled": "bayesdid.synthetic.bayes_pooled",
    "bayesdid.classical._bootstrap": "bayesdid.staggered._bootstrap",
    "bayesdid.classical._demean": "bayesdid.did._demean",
    "bayesdid.classical._fixest": "bayesdid.did._fixest",
    "bayesdid.classical._imputation": "bayesdid.staggered._imputation",
    "bayesdid.classical._sfa_math": "bayesdid.efficiency._sfa_math",
    "bayesdid.classical.bacon": "bayesdid.staggered.bacon",
    "bayesdid.classical.callaway_santanna": "bayesdid.staggered.callaway_santanna",
    "bayesdid.classical.dea": "bayesdid.efficiency.dea",
    "bayesdid.classical.event_study": "bayesdid.did.event_study",
    "bayesdid.classical.heterogeneity": "bayesdid.checks.heterogeneity",
    "bayesdid.classical.honest_did": "bayesdid.did.honest_did",
    "bayesdid.classical.malmquist": "bayesdid.efficiency.malmquist",
    "bayesdid.classical.mediation": "bayesdid.checks.mediation",
    "bayesdid.classical.placebo": "bayesdid.checks.placebo",
    "bayesdid.classical.psm": "bayesdid.checks.psm",
    "bayesdid.classical.regression_control": "bayesdid.synthetic.regression_control",
    "bayesdid.classical.robustness": "bayesdid.checks.robustness",
    "bayesdid.classical.sdid": "bayesdid.synthetic.sdid",
    "bayesdid.classical.sfa": "bayesdid.efficiency.sfa",
    "bayesdid.classical.staggered": "bayesdid.staggered.estimators",
    "bayesdid.classical.synth": "bayesdid.synthetic.synth",
    "bayesdid.classical.synth_search": "bayesdid.synthetic.synth_search",
    "bayesdid.classical.synth_simplex": "bayesdid.synthetic.synth_simplex",
    "bayesdid.classical.twfe": "bayesdid.did.twfe",
    "bayesdid.donors": "bayesdid.synthetic.donors",
    "bayesdid.efficiency_did": "bayesdid.efficiency.efficiency_did",
    "bayesdid.report.study_report": "bayesdid.study.report",
    "bayesdid.study_cache": "bayesdid.study.cache",
    "bayesdid.study_checks": "bayesdid.study.checks",
    "bayesdid.study_spec": "bayesdid.study.spec",
    "bayesdid.study_steps": "bayesdid.study.steps",
    "bayesdid.study_steps_base": "bayesdid.study.steps_base",
    "bayesdid.study_steps_bayes": "bayesdid.study.steps_bayes",
    "bayesdid.study_steps_classical": "bayesdid.study.steps_classical",
    "bayesdid.study_steps_efficiency": "bayesdid.study.steps_efficiency",
    "bayesdid.study_steps_synth": "bayesdid.study.steps_synth",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:  # the target module is already executed
        pass


class _MovedFinder(importlib.abc.MetaPathFinder):
    """Resolve a former module path to the module it moved to."""

    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new))


def install() -> None:
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())


def register(prefix: str, only: tuple[str, ...] | None = None) -> None:
    """Put the former paths under ``prefix`` into ``sys.modules`` now.

    Needed where a former module shares its name with a function of its parent package
    (``bayesdid.classical.synth`` the module vs ``bayesdid.classical.synth`` the function):
    importing a module binds it on its parent, which would shadow the function.
    """
    for old, new in MOVED.items():
        parent, name = old.rsplit(".", 1)
        if parent == prefix and (only is None or name in only) and old not in sys.modules:
            sys.modules[old] = importlib.import_module(new)
