"""Study specifications: parse and strictly validate a study TOML (run by :mod:`bayesdid.study`).

:func:`load_study` reads and validates a spec (strictly: an unknown key or a value of the
wrong type raises :class:`~bayesdid.errors.SpecError` naming the key's path, e.g.
``steps[2].draws: expected int, got str``); :func:`run_study` builds the
:class:`~bayesdid.panel.Panel`, runs the steps in order and writes the results.

Spec format
-----------
::

    [study]
    name = "lccp_demo"                  # required; letters, digits, '_', '-', '.'
    description = "..."                 # optional
    level = 0.95                        # optional; interval level of every table

    [data]                              # exactly one source:
    simulate = "staggered"              #   a simulator: staggered | staggered_mediated |
                                        #   efficiency | pilot_zones
    # dataset = "castle"                #   a shipped dataset (bayesdid.datasets.list())
    # file = "panel.parquet"            #   a CSV, Parquet or Stata .dta file, relative
                                        #   to this TOML file (csv = "..." also works)

    [data.simulate_args]                # only with simulate: the simulator's kwargs
    random_seed = 0
    years = [2005, 2014]
    batches = { "2008" = 5, "2010" = 6 }   # TOML keys are strings; years become ints

    [panel]                             # Panel.from_frame kwargs
    outcome = "eco_eff"

    [[steps]]                           # one table per step, run in order
    kind = "twfe"                       # twfe | event_study | hierarchical_did
    name = "twfe"                       # optional, unique; default: the kind

``[panel]`` keys: ``unit``, ``time``, ``outcome``, ``treat``, ``cohort``, ``groups``,
``covariates``, ``weights``, ``cluster``, ``start``, ``winsorize`` (``[lower, upper]``),
``interpolate`` and ``policy_lists`` (a table ``{ "2010" = ["unit", ...] }``). With a
``file`` (or ``csv``) source ``unit``, ``time``, ``outcome`` and one of ``treat`` /
``cohort`` / ``policy_lists`` are required. Time may be integer or calendar (dates,
Stata dates, ``2011Q1`` / ``2011-03`` strings) at yearly, quarterly or monthly frequency.
A shipped dataset and the simulator provide default panel
arguments (``bayesdid.datasets.info(name)["panel_kwargs"]``); ``[panel]`` entries override
them one by one, except that naming any of ``treat`` / ``cohort`` / ``policy_lists``
replaces the default treatment source, and an empty string (``weights = ""``) or an empty
list (``covariates = []``) removes a default.

Simulators (``[data.simulate_args]`` is checked against each one's arguments):
``staggered`` (:func:`~bayesdid.datasets.simulate_staggered`), ``efficiency``
(:func:`~bayesdid.datasets.simulate_efficiency`), ``pilot_zones``
(:func:`~bayesdid.datasets.simulate_pilot_zones`) and ``staggered_mediated``
(``simulate_staggered``). All but ``staggered`` also take the keys of
:func:`bayesdid.datasets.simulate_mediated.augment`, which add columns with a known truth:
``mediators = { m = { a = 0.1, b = 0.2 } }``, ``other_policies = { p = { start = 2010,
share = 0.3 } }``, ``flags = { resource_city = 0.3 }`` and ``missing_share = 0.03``.

Steps: ``kind`` names one of :data:`STEP_KINDS` (the registry
:data:`bayesdid.study.steps.STEPS`, where every kind's options are documented); every other
key is an option of that kind, mapped to the estimator's keyword arguments, e.g.

- ``twfe``: ``covariates`` (default the panel's; ``[]`` for none), ``cluster``,
  ``weights`` (``""`` for unweighted).
- ``event_study``: as ``twfe`` plus ``leads`` (6), ``lags`` (8), ``bin_ends`` (true),
  ``ref`` (-1).
- ``hierarchical_did``: model options ``pool``, ``event_time``, ``leads``, ``errors`` (``"ar1"``,
  ``"iid"``, ``"student_t"``), ``covariates``, ``likelihood``, ``fe``, ``random_effects``
  (``"auto"``, the default, ``"none"`` or terms such as ``"region^year"``) and a ``priors`` table
  (:class:`~bayesdid.did.priors.DiDPriors` fields); sampler options ``draws``, ``tune``,
  ``chains``, ``cores``, ``random_seed`` (omitted: one is drawn and recorded in the
  posterior file and the log), ``target_accept``; ``interval`` (``"hdi"`` or ``"eti"``).

DID-type steps also take ``outcome`` (another data column as the outcome), ``outcome_from``
(the scores of an earlier efficiency step; ``propagate = M`` refits on M posterior draws
of a ``bayesian_sfa`` step), ``where = { column = [values] }`` and ``cohorts = [...]`` (a
sub-design). Options naming earlier steps (``outcome_from``, ``of``, ``compare``) must name
a step defined before, of a fitting kind.

What a run writes: see :mod:`bayesdid.study`.

Examples
--------
>>> study = loads_study('''
... [study]
... name = "tiny"
... [data]
... dataset = "castle"
... [[steps]]
... kind = "twfe"
... ''')
>>> study.data.kind, [s.name for s in study.steps]
('dataset', ['twfe'])
"""

from __future__ import annotations

import difflib
import logging
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from ..errors import DatasetError, SpecError
from ..results import EffectResult
from .checks import (
    OPT_STR,
    STR_LIST,
    Check,
    check_bool,
    check_int,
    check_list,
    check_num,
    check_plain_table,
    check_str,
    check_table,
    check_unit_id,
    check_year_table,
    fail,
    type_name,
)
from .steps import STEPS

__all__ = [
    "STEP_KINDS",
    "DataSource",
    "Step",
    "Study",
    "StudyResult",
    "list_models",
    "load_study",
    "loads_study",
    "shipped_model",
]

logger = logging.getLogger(__name__)

_SHIPPED_MODELS = ("_shipped", "models")
_REPO_MODELS = Path(__file__).resolve().parents[3] / "models"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ============================================================================ schema
def _years() -> Check:
    return check_list(check_int(), length=2, what="int")


def _simulate_args_schema() -> dict[str, Check]:
    """``simulate = "staggered"``: :func:`bayesdid.datasets.simulate_staggered` kwargs."""
    return {
        "n_units": check_int(5),
        "years": _years(),
        "batches": check_year_table(check_int(1)),
        "start": check_str(("next_year", "same_year")),
        "n_covariates": check_int(0),
        "rho": check_num(-1, 1, open_=True),
        "sigma": check_num(0),
        "cohort_effects": check_year_table(check_num()),
        "region_effects": check_plain_table(check_num()),
        "slope": check_num(),
        "beta": check_list(check_num(), what="number"),
        "random_seed": check_int(0),
    }


def _table_of(schema: dict[str, Check], what: str, required: tuple[str, ...] = ()) -> Check:
    def check(value: Any, path: str) -> MappingProxyType:
        if not isinstance(value, dict):
            raise fail(path, f"expected a table of {what} tables, got {type_name(value)}")
        return MappingProxyType({
            name: MappingProxyType(check_table(v, f"{path}.{name}", schema, required=required,
                                               what=f"{what} option"))
            for name, v in value.items()})
    return check


def _augment_schema() -> dict[str, Check]:
    """Extra columns with known truth (:func:`bayesdid.datasets.simulate_mediated.augment`)."""
    return {
        "mediators": _table_of({"a": check_num(), "b": check_num(), "unit_sd": check_num(0),
                                "trend": check_num(), "noise": check_num(0)}, "mediator"),
        "other_policies": _table_of({"start": check_int(), "share": check_num(0, 1),
                                     "effect": check_num()}, "other-policy",
                                    required=("start",)),
        "flags": check_plain_table(check_num(0, 1)),
        "missing_share": check_num(0, 0.49),
    }


def _efficiency_args_schema() -> dict[str, Check]:
    """``simulate = "efficiency"``: :func:`bayesdid.datasets.simulate_efficiency` kwargs."""
    return {
        "n_units": check_int(5), "years": _years(),
        "batches": check_year_table(check_int(1)),
        "start": check_str(("next_year", "same_year")),
        "policy_effect": check_num(), "sigma_u": check_num(0), "sigma_w": check_num(0),
        "sigma_v": check_num(0), "eta": check_num(), "random_seed": check_int(0),
    }


def _effects_check(value: Any, path: str):
    if isinstance(value, dict):
        return check_plain_table(check_num())(value, path)
    if isinstance(value, list):
        return check_list(check_num(), what="number")(value, path)
    return check_num()(value, path)


def _treated_check(value: Any, path: str):
    if isinstance(value, list):
        return check_list(check_str(), what="str")(value, path)
    return check_int(1)(value, path)


def _pilot_args_schema() -> dict[str, Check]:
    """``simulate = "pilot_zones"``: :func:`bayesdid.datasets.simulate_pilot_zones` kwargs."""
    return {
        "n_units": check_int(6), "years": _years(), "treated": _treated_check,
        "start": check_int(), "effect": _effects_check, "effect_slope": check_num(),
        "n_factors": check_int(1), "noise": check_num(0),
        "noise_rho": check_num(-1, 1, open_=True), "random_seed": check_int(0),
    }


# simulator -> (function named in errors, argument schema)
SIMULATOR_ARGS: Mapping[str, tuple[str, Any]] = MappingProxyType({
    "staggered": ("simulate_staggered", _simulate_args_schema),
    "staggered_mediated": ("simulate_staggered_mediated",
                           lambda: {**_simulate_args_schema(), **_augment_schema()}),
    "efficiency": ("simulate_efficiency",
                   lambda: {**_efficiency_args_schema(), **_augment_schema()}),
    "pilot_zones": ("simulate_pilot_zones",
                    lambda: {**_pilot_args_schema(), **_augment_schema()}),
})


PANEL_SCHEMA: dict[str, Check] = {
    "unit": check_str(), "time": check_str(), "outcome": check_str(),
    "treat": OPT_STR, "cohort": OPT_STR,
    "policy_lists": check_year_table(check_list(check_unit_id, what="unit ids"), periods=True),
    "start": check_str(("next_year", "same_year")),
    "groups": STR_LIST, "covariates": STR_LIST,
    "weights": OPT_STR, "cluster": OPT_STR,
    "winsorize": check_list(check_num(0, 1), length=2, what="number"),
    "interpolate": check_bool,
}
_TREATMENT_KEYS = ("treat", "cohort", "policy_lists")
STEP_KINDS: Mapping[str, Mapping[str, Check]] = MappingProxyType(
    {name: kind.schema for name, kind in STEPS.items()})
SIMULATORS = tuple(SIMULATOR_ARGS)


# ============================================================================ spec objects
@dataclass(frozen=True)
class DataSource:
    """Where the data come from: ``kind`` is ``"simulate"``, ``"dataset"``, ``"file"`` or
    ``"csv"`` (the two read any file :func:`bayesdid.read.read_table` reads);
    ``name`` the simulator, the dataset name or the resolved file path; ``args`` the
    simulator's keyword arguments."""

    kind: str
    name: str
    args: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Step:
    """One estimation step: its ``kind``, unique ``name`` and ``options``."""

    kind: str
    name: str
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def bayesian(self) -> bool:
        return STEPS[self.kind].bayesian


@dataclass(frozen=True)
class Study:
    """A validated study spec (see the module docstring for the format)."""

    name: str
    data: DataSource
    steps: tuple[Step, ...]
    panel: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""
    level: float = 0.95
    path: Path | None = None
    source: str = ""


@dataclass(frozen=True, eq=False)
class StudyResult:
    """What :func:`run_study` produced.

    ``paths`` maps an output name (``"effects"``, ``"comparison_md"``, ``"forest"``,
    ``"posterior_<step>"``...) to its file; ``results`` maps step names to their
    :class:`~bayesdid.results.EffectResult`; ``effects`` is the table of ``effects.csv``;
    ``seconds`` the wall time of each step (and ``"total"``); ``refitted`` the steps
    that were run rather than read from the step cache.
    """

    study: Study
    out_dir: Path
    paths: Mapping[str, Path]
    results: Mapping[str, EffectResult]
    effects: pd.DataFrame
    panel: Any
    seconds: Mapping[str, float]
    refitted: tuple[str, ...] = ()


# ============================================================================ parsing
def load_study(path: str | Path) -> Study:
    """Read and validate a study spec from a TOML file.

    Relative paths inside the spec (``data.csv``) are relative to the file.

    Raises
    ------
    SpecError : the file is missing or not valid TOML, or the spec is malformed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"no such study file: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"cannot read study file {path}: {err}") from None
    return loads_study(text, base_dir=path.resolve().parent, path=path)


def loads_study(text: str, base_dir: str | Path | None = None, *,
                path: str | Path | None = None) -> Study:
    """Parse and validate a study spec given as TOML text.

    ``base_dir`` anchors relative paths (default: the current directory).
    """
    where = f" in {path}" if path is not None else ""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"invalid TOML{where}: {err}") from None
    base = Path.cwd() if base_dir is None else Path(base_dir)
    return replace(_parse(raw, base), path=None if path is None else Path(path), source=text)


def _parse(raw: dict[str, Any], base: Path) -> Study:
    top = {"study": lambda v, p: v, "data": lambda v, p: v, "panel": lambda v, p: v,
           "steps": lambda v, p: v}
    check_table(raw, "", top, required=("study", "data", "steps"), what="top-level key")

    head = check_table(raw["study"], "study",
                  {"name": check_str(), "description": check_str(empty=True),
                   "level": check_num(0, 1, open_=True)}, required=("name",))
    if not _NAME.match(head["name"]):
        raise fail("study.name", f"{head['name']!r} must start with a letter or digit and "
                    "hold only letters, digits, '_', '-' and '.' (it names the results folder)")

    data = _parse_data(raw["data"], base)
    panel = check_table(raw.get("panel", {}), "panel", PANEL_SCHEMA)
    given = [k for k in _TREATMENT_KEYS if panel.get(k)]
    if len(given) > 1:
        raise fail("panel", f"give at most one of treat, cohort, policy_lists; got {given}")
    if data.kind in ("csv", "file"):
        missing = [k for k in ("unit", "time", "outcome") if not panel.get(k)]
        if missing:
            raise fail(f"panel.{missing[0]}", f"required with a {data.kind} data source",
                        hint="name the unit, time and outcome columns in [panel]")
        if not given:
            raise fail("panel", f"a {data.kind} data source needs one of treat, cohort or "
                        "policy_lists in [panel]")

    steps_raw = raw["steps"]
    if not isinstance(steps_raw, list) or not all(isinstance(s, dict) for s in steps_raw):
        raise fail("steps", f"expected an array of tables ([[steps]]), got {type_name(steps_raw)}")
    if not steps_raw:
        raise fail("steps", "a study needs at least one step")
    steps: list[Step] = []
    seen: dict[str, int] = {}
    for i, s in enumerate(steps_raw):
        step = _parse_step(s, f"steps[{i}]")
        if step.name in seen:
            raise fail(f"steps[{i}].name", f"duplicate step name {step.name!r} (also "
                        f"steps[{seen[step.name]}])", hint="give each step a unique name = ...")
        for key in STEPS[step.kind].refs:
            for ref in STEPS[step.kind].refs_of({key: step.options.get(key)}):
                if ref not in seen:
                    later = [n for n in (x.get("name", x.get("kind")) for x in steps_raw[i:])]
                    raise fail(f"steps[{i}].{key}", f"refers to step {ref!r}, which is not "
                               "defined before this step" + (
                                   " (it comes later: reorder the steps)" if ref in later
                                   else f"; earlier steps: {', '.join(seen) or 'none'}"))
        check_refs = STEPS[step.kind].check_refs
        if check_refs is not None and STEPS[step.kind].refs_of(step.options):
            check_refs(step.options, f"steps[{i}]",
                       {s.name: (s.kind, s.options) for s in steps})
        seen[step.name] = i
        steps.append(step)
    return Study(name=head["name"], description=head.get("description", ""),
                 level=float(head.get("level", 0.95)), data=data,
                 panel=MappingProxyType(panel), steps=tuple(steps))


def _parse_data(value: Any, base: Path) -> DataSource:
    schema = {"simulate": check_str(SIMULATORS), "dataset": check_str(), "csv": check_str(),
              "file": check_str(), "simulate_args": lambda v, p: v}
    data = check_table(value, "data", schema)
    sources = [k for k in ("simulate", "dataset", "csv", "file") if k in data]
    if not sources:
        raise fail("data", "no data source; give one of simulate = \"<simulator>\" ("
                    + ", ".join(SIMULATORS) + "), dataset = \"<name>\" or file = \"<path>\" "
                    "(.csv, .parquet or .dta)")
    if len(sources) > 1:
        raise fail("data", f"give exactly one data source, got {sources}")
    kind = sources[0]
    if "simulate_args" in data and kind != "simulate":
        raise fail("data.simulate_args", "only allowed with data.simulate")
    args: dict[str, Any] = {}
    if kind == "simulate":
        function, schema = SIMULATOR_ARGS[data["simulate"]]
        args = check_table(data.get("simulate_args", {}), "data.simulate_args", schema(),
                           what=f"{function} argument")
    name = data[kind]
    if kind == "dataset":
        from ..datasets import data_path

        try:
            data_path(name)
        except DatasetError as err:
            raise fail("data.dataset", str(err).splitlines()[0]) from None
    elif kind in ("csv", "file"):
        from ..read import READERS, file_suffix

        path = Path(name).expanduser()
        path = path if path.is_absolute() else base / path
        if file_suffix(path) not in READERS:
            raise fail(f"data.{kind}", f"cannot read {path.name!r}: unknown file suffix "
                       f"{file_suffix(path) or '(none)'!r}",
                       hint=f"bayesdid reads {', '.join(READERS)}")
        if not path.is_file():
            raise fail(f"data.{kind}", f"file not found: {path}",
                        hint=f"{kind} paths are relative to the study file")
        name = str(path)
    return DataSource(kind=kind, name=name, args=MappingProxyType(args))


def _parse_step(value: dict[str, Any], path: str) -> Step:
    kinds = ", ".join(sorted(STEP_KINDS))
    if "kind" not in value:
        raise fail(f"{path}.kind", f"required key is missing; one of {kinds}")
    kind = check_str()(value["kind"], f"{path}.kind")
    if kind not in STEP_KINDS:
        close = difflib.get_close_matches(kind, list(STEP_KINDS), n=1)
        raise fail(f"{path}.kind", f"unknown step kind {kind!r}"
                    + (f" (did you mean {close[0]!r}?)" if close else "")
                    + f"; allowed kinds: {kinds}")
    opts = check_table(value, path, STEP_KINDS[kind])
    name = opts.pop("name", kind)
    opts.pop("kind")
    if not _NAME.match(name):
        raise fail(f"{path}.name", f"{name!r} must start with a letter or digit and hold "
                    "only letters, digits, '_', '-' and '.' (it names output files)")
    if STEPS[kind].check is not None:
        STEPS[kind].check(opts, path)
    return Step(kind=kind, name=name, options=MappingProxyType(opts))


# ============================================================================ shipped specs
def shipped_model(name: str) -> Path:
    """Path of a study spec shipped with bayesdid (``models/<name>.toml``).

    Looks first inside the installed package (``bayesdid/_shipped/models``, as in a wheel),
    then in the repository's ``models/`` folder (editable install).
    """
    filename = name if name.endswith(".toml") else f"{name}.toml"
    shipped = resources.files("bayesdid").joinpath(*_SHIPPED_MODELS, filename)
    if shipped.is_file():
        return Path(str(shipped))
    repo = _REPO_MODELS / filename
    if repo.is_file():
        return repo
    available = ", ".join(list_models()) or "none found"
    raise SpecError(f"no shipped study spec {filename!r} (looked in the package's "
                    f"_shipped/models and in {_REPO_MODELS}); available: {available}")


def list_models() -> list[str]:
    """Names of the shipped study specs."""
    names: set[str] = set()
    shipped = resources.files("bayesdid").joinpath(*_SHIPPED_MODELS)
    if shipped.is_dir():
        names |= {p.name[:-5] for p in shipped.iterdir() if p.name.endswith(".toml")}
    if _REPO_MODELS.is_dir():
        names |= {p.stem for p in _REPO_MODELS.glob("*.toml")}
    return sorted(names)
