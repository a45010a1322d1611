"""Declarative studies: a TOML spec -> a panel -> every estimation step -> a results folder.

:mod:`.spec` parses and validates a spec (:mod:`.checks` holds its value checks),
:mod:`.steps` is the registry of step kinds (:mod:`.steps_classical`, :mod:`.steps_bayes`,
:mod:`.steps_synth`, :mod:`.steps_efficiency`, built on :mod:`.steps_base`), :mod:`.run`
runs a study, :mod:`.cache` caches its steps and :mod:`.report` writes its report.

>>> from bayesdid.study import load_study, run_study
"""

from .run import (
    STEP_KINDS,
    DataSource,
    Step,
    Study,
    StudyResult,
    list_models,
    load_study,
    loads_study,
    run_study,
    shipped_model,
)

__all__ = [
    "STEP_KINDS", "DataSource", "Step", "Study", "StudyResult", "list_models", "load_study",
    "loads_study", "run_study", "shipped_model",
]
