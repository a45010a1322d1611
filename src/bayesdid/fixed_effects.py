"""Fixed effects and covariates written in pyfixest's formula language.

``fe=`` takes the part of a pyfixest formula after ``|``: terms joined by ``+``, each term
a column or an interaction of columns joined by ``^``::

    "unit + time"              the default: the panel's own unit and time columns
    "city + province^year"     unit effects and province-by-year effects
    "city + plan_period"       unit effects and five-year-plan period effects
    "year"                     period effects only
    None                       no fixed effects (pooled OLS with a constant)

``unit`` and ``time`` stand for the panel's unit and time columns when the panel has no
column of that name. Every other name must be a column of ``panel.frame`` (declare
unit-level columns as ``groups=`` in :meth:`~bayesdid.Panel.from_frame`; the classical
estimators also take ``data=``, a frame with further columns matched on unit and time).

Covariates are a list of column names or a formula string (``"gdp + log(pop)"``),
evaluated by formulaic on the panel's rows.

>>> from bayesdid import Panel
>>> from bayesdid.datasets import simulate_staggered
>>> sim = simulate_staggered(n_units=20, years=(2005, 2010), batches={2007: 5}, random_seed=1)
>>> panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
>>> spec = parse_fe(panel, "unit + region^time")
>>> spec.formula, spec.has_unit
('city + region^year', True)
>>> parse_fe(panel, None).formula
''
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import BayesDidError, ColumnError, MissingValueError, NonFiniteValueError

__all__ = ["DEFAULT_FE", "FixedEffects", "covariate_matrix", "parse_fe"]

DEFAULT_FE = "unit + time"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class FixedEffects:
    """A parsed ``fe=`` specification, its names resolved to columns of ``frame``.

    ``terms`` holds one tuple of column names per term (``("province", "year")`` for
    ``province^year``); ``frame`` the FE columns aligned with the panel's rows.
    """

    terms: tuple[tuple[str, ...], ...]
    unit: str
    time: str
    frame: pd.DataFrame = field(repr=False)

    @property
    def formula(self) -> str:
        """The specification in the panel's column names (``""`` for none)."""
        return " + ".join("^".join(t) for t in self.terms)

    @property
    def has_unit(self) -> bool:
        """Whether the unit effect is one of the terms."""
        return (self.unit,) in self.terms

    @property
    def is_default(self) -> bool:
        """Unit and period effects, as ``"unit + time"``."""
        return self.terms == ((self.unit,), (self.time,))

    @property
    def table_label(self) -> str:
        """The fixed-effects line of a regression table: ``"unit, time"`` for the default,
        the terms otherwise (``"city, province^year"``), an em dash for none."""
        if self.is_default:
            return "unit, time"
        return ", ".join(self.labels) if self.terms else "\u2014"

    @property
    def labels(self) -> list[str]:
        return ["^".join(t) for t in self.terms]

    def codes(self, term: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
        """Integer codes ``0..L-1`` of a term's levels and their labels (sorted)."""
        cols = list(term)
        keys = self.frame[cols]
        levels = keys.drop_duplicates().sort_values(cols).reset_index(drop=True)
        code = keys.merge(levels.reset_index(), on=cols, how="left")["index"].to_numpy()
        labels = [", ".join(f"{c}={_fmt(v)}" for c, v in zip(cols, row))
                  for row in levels.itertuples(index=False)]
        return code.astype(np.int64), labels


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def parse_fe(panel, fe: str | None = DEFAULT_FE, data: pd.DataFrame | None = None
             ) -> FixedEffects:
    """Parse and validate ``fe`` against ``panel`` (see the module docstring).

    Raises :class:`~bayesdid.errors.ColumnError` naming an unknown column and
    :class:`~bayesdid.errors.MissingValueError` showing rows where an FE column is missing.
    """
    frame = panel.frame
    if fe is None or (isinstance(fe, str) and fe.strip() in ("", "0")):
        return FixedEffects((), panel.unit, panel.time, frame[[]])
    if not isinstance(fe, str):
        raise BayesDidError(f"fe takes a pyfixest-style string such as 'unit + time' or None, "
                            f"got {type(fe).__name__} {fe!r}",
                            hint="write e.g. fe='city + province^year'")
    text = fe.split("|")[-1] if "|" in fe else fe
    terms: list[tuple[str, ...]] = []
    available = _available(frame, data, panel)
    for raw in text.split("+"):
        parts = tuple(p.strip() for p in raw.split("^"))
        if not all(parts):
            raise BayesDidError(f"fe={fe!r} has an empty term", hint="write e.g. 'unit + time'")
        cols = []
        for name in parts:
            if not _NAME.match(name):
                raise BayesDidError(
                    f"fe term {name!r} in fe={fe!r} is not a column name; fe takes columns "
                    "joined by '+' (terms) and '^' (interactions)", column=name,
                    hint="varying slopes (x[y]) and functions are not supported in fe=")
            cols.append(_resolve(name, panel, available, fe))
        term = tuple(dict.fromkeys(cols))
        if term in terms:
            raise BayesDidError(f"fe={fe!r} names the term {'^'.join(term)!r} twice",
                                column=term[0])
        terms.append(term)
    cols = list(dict.fromkeys(c for t in terms for c in t))
    fe_frame = _fe_columns(panel, cols, data)
    return FixedEffects(tuple(terms), panel.unit, panel.time, fe_frame)


def _available(frame: pd.DataFrame, data: pd.DataFrame | None, panel) -> list[str]:
    extra = [] if data is None else [c for c in data.columns if c not in frame.columns]
    return [*frame.columns, *extra]


def _resolve(name: str, panel, available: list[str], fe: str) -> str:
    if name in available:
        return name
    if name == "unit":
        return panel.unit
    if name == "time":
        return panel.time
    shown = ", ".join(map(str, available))
    raise ColumnError(
        f"fixed effect column {name!r} (in fe={fe!r}) is not a column of the panel",
        column=name,
        hint=f"panel columns: {shown}. Declare unit-level columns as groups=[...] in "
             "Panel.from_frame, or pass data= (a frame with the unit, time and FE columns)")


def _fe_columns(panel, cols: list[str], data: pd.DataFrame | None) -> pd.DataFrame:
    frame = panel.frame
    own = [c for c in cols if c in frame.columns]
    out = frame[own].copy()
    extra = [c for c in cols if c not in frame.columns]
    if extra:
        if not isinstance(data, pd.DataFrame):
            raise BayesDidError(f"data must be a pandas DataFrame, got {type(data).__name__}")
        keys = [panel.unit, panel.time]
        missing_keys = [k for k in keys if k not in data.columns]
        if missing_keys:
            raise ColumnError(f"data lacks the panel's column {missing_keys[0]!r} to match "
                              "its rows on", column=missing_keys[0])
        sub = data[keys + extra]
        dup = sub.duplicated(keys, keep=False)
        if dup.any():
            raise BayesDidError(f"data has {int(dup.sum())} rows sharing a (unit, time) pair",
                                column=panel.unit, rows=sub.loc[dup])
        merged = frame[keys].merge(sub, on=keys, how="left")
        for c in extra:
            out[c] = merged[c].to_numpy()
    for c in cols:
        bad = out[c].isna().to_numpy()
        if bad.any():
            rows = frame[[panel.unit, panel.time]].assign(**{c: out[c]}).loc[bad]
            raise MissingValueError(f"fixed effect column {c!r} has {int(bad.sum())} missing "
                                    "value(s) in panel rows", column=c, rows=rows,
                                    hint="fill them or drop these rows from the panel first; "
                                         "bayesdid never drops rows silently")
    return out[cols]


def covariate_matrix(panel, covariates: str | Sequence[str] | None
                     ) -> tuple[list[str], np.ndarray]:
    """Covariate names and values (rows of ``panel.frame`` x k).

    ``covariates`` is ``None`` (the panel's), a list of columns, or a formula string
    evaluated by formulaic (``"gdp + log(pop)"``; no intercept is added). Missing or
    non-finite values raise a typed error showing the rows.

    >>> from bayesdid import Panel
    >>> from bayesdid.datasets import simulate_staggered
    >>> sim = simulate_staggered(n_units=20, years=(2005, 2010), batches={2007: 5},
    ...                          random_seed=1)
    >>> panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    >>> names, x = covariate_matrix(panel, "x1 + I(x2 ** 2)")
    >>> names, x.shape
    (['x1', 'I(x2 ** 2)'], (120, 2))
    """
    frame = panel.frame
    if covariates is None:
        covariates = panel.covariates
    if isinstance(covariates, str):
        return _formula_covariates(panel, covariates)
    names = list(covariates)
    unknown = [c for c in names if c not in frame.columns]
    if unknown:
        raise ColumnError(f"covariate {unknown[0]!r} is not a panel column", column=unknown[0],
                          hint="declare it with covariates=[...] in Panel.from_frame")
    x = frame[names].to_numpy(float).reshape(len(frame), len(names))
    return names, x


def _formula_covariates(panel, text: str) -> tuple[list[str], np.ndarray]:
    from formulaic import model_matrix

    frame = panel.frame
    if not text.strip() or text.strip() == "0":
        return [], np.zeros((len(frame), 0))
    try:
        mm = model_matrix(f"{text} - 1", frame, na_action="ignore")
    except Exception as exc:  # formulaic raises several types for unknown names / syntax
        col = _unknown_name(str(exc), frame)
        raise ColumnError(f"covariates formula {text!r} cannot be evaluated on the panel: "
                          f"{exc}", column=col,
                          hint=f"panel columns: {', '.join(map(str, frame.columns))}") from None
    x = np.asarray(mm, dtype=float)
    names = list(mm.columns)
    bad = ~np.isfinite(x)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        rows = frame.loc[bad[:, j], [panel.unit, panel.time]].assign(**{names[j]: x[bad[:, j], j]})
        cls = MissingValueError if np.isnan(x[bad[:, j], j]).any() else NonFiniteValueError
        raise cls(f"covariate {names[j]!r} of formula {text!r} is missing or not finite in "
                  f"{int(bad[:, j].sum())} panel row(s)", column=names[j], rows=rows,
                  hint="e.g. log() of zero or negative values; bayesdid never drops rows "
                       "silently")
    return names, x


def _unknown_name(message: str, frame: pd.DataFrame) -> str | None:
    for name in re.findall(r"[`'\"]([A-Za-z_][A-Za-z0-9_.]*)[`'\"]", message):
        if name not in frame.columns:
            return name
    return None
