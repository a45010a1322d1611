"""The kinds of step a study spec can run: for each, its option schema and its runner.

A step kind is one :class:`StepKind`: the options a spec may give (checked strictly by
:mod:`bayesdid.study.spec`, each with the key's path in errors), whether it samples a
posterior, a cross-option check, the option keys naming earlier steps (``refs``) with a check
of what they name, and a runner that turns the panel and the options into a
:class:`StepOutput` (the result, its effects table at the study's level, extra tables and
figures). Adding a method to studies means adding one entry to :data:`STEPS`.

The kinds live in five modules:

- :mod:`bayesdid.study.steps_classical`: ``twfe``, ``fe_ladder``, ``event_study``,
  ``callaway_santanna``, ``sun_abraham``, ``imputation``, ``bacon``, ``honest_did``;
- :mod:`bayesdid.study.steps_checks`: ``heterogeneity``, ``placebo``, ``robustness``,
  ``psm_did``, ``mediation``;
- :mod:`bayesdid.study.steps_bayes`: ``hierarchical_did``, ``bayes_sensitivity``,
  ``posterior_contrasts``, ``bayesian_mediation``;
- :mod:`bayesdid.study.steps_synth`: ``synth``, ``synthdid``, ``regression_control``,
  ``bayesian_synth``, ``bayesian_regression_control``, ``ife``, ``mc_nnm``, ``bayes_factor``;
- :mod:`bayesdid.study.steps_efficiency`: ``sfa``, ``bayesian_sfa``, ``ml_index``.

DID-type kinds share the data options of :mod:`bayesdid.study.steps_base`: ``outcome`` (a
replaced outcome column), ``outcome_from`` (the scores of an efficiency step; with
``propagate = M`` the efficiency posterior is propagated), ``where`` and ``cohorts`` (a
sub-design).

Examples
--------
>>> sorted(STEPS)[:3]
['bacon', 'bayes_factor', 'bayes_sensitivity']
>>> STEPS["hierarchical_did"].bayesian, STEPS["twfe"].refs
(True, ('outcome_from',))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ..results import EffectResult
from .steps_base import (
    CLASSICAL,
    COMMON,
    SAMPLER,
    SAMPLER_FIT_KEYS,
    StepContext,
    StepKind,
    StepOutput,
    effects_at,
)
from .steps_bayes import KINDS as _BAYES
from .steps_checks import KINDS as _CHECKS
from .steps_classical import KINDS as _CLASSICAL
from .steps_efficiency import KINDS as _EFFICIENCY
from .steps_synth import KINDS as _SYNTH

__all__ = [
    "CLASSICAL",
    "COMMON",
    "SAMPLER",
    "SAMPLER_FIT_KEYS",
    "STEPS",
    "StepContext",
    "StepKind",
    "StepOutput",
    "effects_at",
]



def _uniform(kind: StepKind) -> StepKind:
    """``kind`` whose runner always returns an :class:`EffectResult` (results such as a
    placebo test, a PSM-DID or a frontier become one holding the step's table and the
    result's ``info``), as the study's comparison and step cache expect."""
    runner = kind.runner

    def run(panel, options, ctx) -> StepOutput:
        output = runner(panel, options, ctx)
        result = output.result
        if isinstance(result, EffectResult):
            return output
        info = getattr(result, "info", None)
        wrapped = EffectResult(table=output.table, method=getattr(result, "method", kind.name),
                               info=dict(info) if isinstance(info, Mapping) else {})
        return dataclasses.replace(output, result=wrapped)

    return dataclasses.replace(kind, runner=run)


STEPS: dict[str, StepKind] = {name: _uniform(kind) for name, kind in
                              {**_CLASSICAL, **_CHECKS, **_BAYES, **_SYNTH, **_EFFICIENCY}.items()}
