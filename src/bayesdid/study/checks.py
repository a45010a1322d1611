"""Typed value checks for study specs: each check takes ``(value, path)`` and returns the
value (normalised) or raises :class:`~bayesdid.errors.SpecError` naming the key's path.

Examples
--------
>>> int_check = check_int(1)
>>> int_check(3, "steps[0].draws")
3
>>> int_check("3", "steps[0].draws")
Traceback (most recent call last):
...
bayesdid.errors.SpecError: steps[0].draws: expected int, got str ('3')
"""

from __future__ import annotations

import difflib
import re
import math
from collections.abc import Callable, Mapping
from datetime import date, datetime
from datetime import time as dtime
from types import MappingProxyType
from typing import Any

from ..errors import SpecError

Check = Callable[[Any, str], Any]


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, (datetime, date, dtime)):
        return "datetime"
    return type(value).__name__


def fail(path: str, message: str, hint: str | None = None) -> SpecError:
    return SpecError(f"{path}: {message}" if path else message, hint=hint)


def expected(path: str, what: str, value: Any) -> SpecError:
    return fail(path, f"expected {what}, got {type_name(value)} ({value!r:.60})")


def check_str(choices: tuple[str, ...] | None = None, *, empty: bool = False) -> Check:
    def check(value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise expected(path, "str", value)
        if not empty and not value.strip():
            raise fail(path, "must not be empty")
        if choices is not None and value not in choices:
            raise fail(path, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value
    return check


def check_int(lo: int | None = None) -> Check:
    def check(value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise expected(path, "int", value)
        if lo is not None and value < lo:
            raise fail(path, f"must be >= {lo}, got {value}")
        return value
    return check


def check_num(lo: float | None = None, hi: float | None = None, *, open_: bool = False) -> Check:
    """A finite number; within [lo, hi] (or (lo, hi) with ``open_``)."""
    def check(value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise expected(path, "number", value)
        if not math.isfinite(value):
            raise fail(path, f"must be finite, got {value}")
        too_low = lo is not None and (value <= lo if open_ else value < lo)
        too_high = hi is not None and (value >= hi if open_ else value > hi)
        if too_low or too_high:
            left, right = ("(", ")") if open_ else ("[", "]")
            span = f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
            raise fail(path, f"must lie in {span}, got {value}")
        return value
    return check


def check_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise expected(path, "bool", value)
    return value


def check_list(item: Check, *, length: int | None = None, what: str = "") -> Check:
    def check(value: Any, path: str) -> tuple:
        if not isinstance(value, list):
            raise expected(path, f"array{' of ' + what if what else ''}", value)
        if length is not None and len(value) != length:
            raise fail(path, f"expected an array of {length} items, got {len(value)}")
        return tuple(item(v, f"{path}[{i}]") for i, v in enumerate(value))
    return check


def check_unit_id(value: Any, path: str) -> str | int:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise expected(path, "str or int (a unit id)", value)
    return value


_CALENDAR_KEY = re.compile(r"^\d{4}(-\d{1,2}(-\d{1,2})?|\s*-?\s*[Qq][1-4])$")


def check_year_table(item: Check, *, periods: bool = False) -> Check:
    """A table keyed by years: TOML keys are strings, so ``"2010"`` becomes ``2010``. With
    ``periods=True`` calendar keys (``"2011-03"``, ``"2011Q1"``, ``"2011-03-01"``) are kept
    as strings, for panels on monthly or quarterly time."""
    def check(value: Any, path: str) -> MappingProxyType:
        if not isinstance(value, dict):
            raise expected(path, "table", value)
        if not value:
            raise fail(path, "must not be empty")
        out: dict[int, Any] = {}
        for key, v in value.items():
            try:
                year = int(key.strip())
            except ValueError:
                if periods and _CALENDAR_KEY.match(key.strip()):
                    out[key.strip()] = item(v, f"{path}.{key}")
                    continue
                raise fail(f"{path}.{key}", f"key {key!r} is not an integer year"
                           + (" or a period such as '2011-03' or '2011Q1'" if periods
                              else "")) from None
            out[year] = item(v, f"{path}.{key}")
        return MappingProxyType(out)
    return check


def check_plain_table(item: Check) -> Check:
    def check(value: Any, path: str) -> MappingProxyType:
        if not isinstance(value, dict):
            raise expected(path, "table", value)
        return MappingProxyType({k: item(v, f"{path}.{k}") for k, v in value.items()})
    return check


def check_table(value: Any, path: str, schema: Mapping[str, Check], *,
           required: tuple[str, ...] = (), what: str = "key") -> dict[str, Any]:
    """Check every key of ``value`` against ``schema`` (unknown keys are errors)."""
    if not isinstance(value, dict):
        raise expected(path, "table", value)
    for key in value:
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            where = f"{path}.{key}" if path else key
            raise fail(where, f"unknown {what} {key!r}"
                        + (f" (did you mean {close[0]!r}?)" if close else "")
                        + f"; allowed: {', '.join(sorted(schema))}")
    for key in required:
        if key not in value:
            raise fail(f"{path}.{key}" if path else key, "required key is missing")
    return {key: schema[key](v, f"{path}.{key}" if path else key) for key, v in value.items()}


STR_LIST = check_list(check_str(), what="str")
OPT_STR = check_str(empty=True)  # "" removes a default
