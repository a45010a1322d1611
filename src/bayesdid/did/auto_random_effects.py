"""``HierarchicalDiD(random_effects="auto")`` (the default): group x period random effects
when the data ask for them.

The model is first fitted without random effects; its posterior predictive check
``<group>_x_period`` (:mod:`bayesdid.did.ppc`: residuals summed within group x period
cells, against their permutation distribution, flagged at p < 0.01) then decides, for each
of the panel's group columns, whether shocks shared within group x period are in the data.
If any is flagged, the fit warns (:class:`~bayesdid.errors.ModelCheckWarning`), the model
is fitted again with ``random_effects="<group>^<time>"`` for the flagged groups (same seed)
and that fit is returned; otherwise the first fit is. This
is model expansion driven by a posterior predictive check (Gelman et al. 2020, "Bayesian
workflow", sec. 6-7): the cost of the term (about 3.5x the default fit on the LCCP panel,
``benchmarks/bench_event_study.py --group-time``) is paid only where the check finds the
misfit. Its calibration, selection step included, is measured on the zoo
(``benchmarks/results/group_time_effects.md``). ``result.info["random_effects"]`` records
the p-values and the term used.

Panels without group columns, or whose group x period checks all pass, get exactly the
fit of ``random_effects=None``.

>>> from bayesdid import Panel
>>> from bayesdid.datasets import simulate_staggered
>>> from bayesdid.did.hierarchical import HierarchicalDiD
>>> sim = simulate_staggered(n_units=40, years=(2005, 2014), batches={2008: 6, 2010: 6},
...                          random_seed=1)
>>> panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
>>> res = HierarchicalDiD(random_effects="auto").fit(panel, draws=300, tune=300, chains=2,
...                                                  random_seed=1, progress=False)
>>> res.info["random_effects"]["used"] is None  # no region x year shocks in this panel
True
"""

from __future__ import annotations

import copy
import warnings

from ..bayes.result import config_hash
from ..errors import ModelCheckWarning
from ..bayes.sampling import resolve_seed
from ..fixed_effects import parse_fe
from ..panel import Panel

__all__ = ["AUTO", "fit_auto", "group_period_terms"]

#: the ``random_effects`` value that chooses group x period effects by the residual check
AUTO = "auto"


def group_period_terms(ppc_records, panel: Panel, fe: str | None) -> tuple[dict, str | None]:
    """(p-value of each group's ``<group>_x_period`` check, the random-effects terms for the
    flagged groups joined by ``+``, or None). A group whose group x period term is already
    a fixed effect of ``fe`` is not added again."""
    checks = {r["check"]: r for r in ppc_records or ()}
    p_values = {g: checks[f"{g}_x_period"]["p_value"] for g in panel.groups
                if f"{g}_x_period" in checks}
    fixed = {frozenset(term) for term in parse_fe(panel, fe).terms}
    flagged = [g for g in panel.groups
               if checks.get(f"{g}_x_period", {}).get("flagged", False)
               and frozenset((g, panel.time)) not in fixed]
    return p_values, " + ".join(f"{g}^{panel.time}" for g in flagged) or None


def fit_auto(model, panel: Panel, **fit_kwargs):
    """Fit ``model`` (a ``HierarchicalDiD`` with ``random_effects="auto"``) as the module
    docstring says; the result's config is ``model``'s (``random_effects="auto"``)."""
    fit_kwargs["random_seed"] = resolve_seed(fit_kwargs.get("random_seed"))
    base = copy.copy(model)
    base.random_effects = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = base.fit(panel, **fit_kwargs)
    p_values, terms = group_period_terms(result.info.get("ppc"), panel, model.fe)
    if terms is None:
        for w in caught:  # the first fit is the answer: its notices stand
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    else:
        shown = ", ".join(f"{g} x period p={p:.3g}" for g, p in p_values.items()
                          if f"{g}^{panel.time}" in terms.split(" + "))
        warnings.warn(
            f"{type(model).__name__}: shocks shared within group x period ({shown}); "
            f"refitting with random_effects={terms!r} (random_effects=None keeps the "
            "model without them)", ModelCheckWarning, stacklevel=3)
        expanded = copy.copy(model)
        expanded.random_effects = terms
        result = expanded.fit(panel, **fit_kwargs)
    name = type(model).__name__
    result.info.update(
        config=model.config(), config_hash=config_hash(name, model.config()),
        random_effects={"requested": AUTO, "used": terms, "group_x_period_p": p_values})
    return result
