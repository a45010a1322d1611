"""Step cache of a study run: rerunning a spec after editing one step refits only that step
(and the steps that use it).

A step's key is a hash of everything its result depends on: the bayesdid version, the data
(a content hash of the frame, so an edited CSV invalidates it), the panel arguments, the
study's interval level, the step's kind and options, and the keys of the earlier steps it
uses. The cache lives in ``<out_dir>/.cache/<step>.json.gz`` (gzip-compressed JSON) beside
the step's files: its effects table, extra tables, figure files, and for Bayesian steps the
posterior netCDF (reloaded with the result's own class, as the step stored it: a
``bayesian_sfa`` posterior thinned, see :mod:`bayesdid.study.steps_efficiency`).

Examples
--------
>>> import pandas as pd
>>> a = data_fingerprint(pd.DataFrame({"y": [1.0, 2.0]}))
>>> a == data_fingerprint(pd.DataFrame({"y": [1.0, 2.0]}))
True
>>> a == data_fingerprint(pd.DataFrame({"y": [1.0, 2.5]}))
False
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import json
import logging
from collections.abc import Mapping
from io import StringIO
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from .. import __version__
from ..results import EffectResult, tidy_table
from .steps import StepOutput

__all__ = ["data_fingerprint", "step_key", "StepCache"]

logger = logging.getLogger(__name__)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    return str(obj)


def data_fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a frame: values, column names and dtypes."""
    h = hashlib.sha256()
    h.update(json.dumps([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def step_key(*, data: str, panel_kwargs: Mapping[str, Any], level: float, kind: str,
             options: Mapping[str, Any], upstream: Mapping[str, str]) -> str:
    """The cache key of one step (see the module docstring)."""
    payload = {"version": __version__, "data": data, "panel": panel_kwargs, "level": level,
               "kind": kind, "options": options, "upstream": upstream}
    text = json.dumps(payload, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class StepCache:
    """Stored step outputs in ``<out_dir>/.cache``."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.folder = self.out_dir / ".cache"

    def _file(self, step: str) -> Path:
        return self.folder / f"{step}.json.gz"

    def load(self, step: str, key: str) -> StepOutput | None:
        """The cached output of ``step`` if its key matches and its files exist, else None."""
        path = self._file(step)
        if not path.is_file():
            return None
        try:
            entry = json.loads(gzip.decompress(path.read_bytes()).decode("utf-8"))
        except (OSError, ValueError, EOFError):
            logger.warning("cache entry %s is unreadable; refitting %s", path, step)
            return None
        if entry.get("key") != key:
            return None
        figures = {name: self.out_dir / rel for name, rel in entry["figures"].items()}
        posterior = entry.get("posterior")
        files = [*figures.values(), *([self.out_dir / posterior] if posterior else [])]
        if not all(f.is_file() for f in files):
            return None
        table = tidy_table(_read(entry["table"]))
        extras = {name: _read(text) for name, text in entry["extras"].items()}
        if posterior:
            result = _result_class(entry["result_class"]).load(self.out_dir / posterior)
        else:
            result = EffectResult(table=table, method=entry["method"], info=entry["info"])
        return StepOutput(result=result, table=table, extras=MappingProxyType(extras),
                          figures=MappingProxyType(figures))

    def store(self, step: str, key: str, output: StepOutput, *, figures: Mapping[str, Path],
              posterior: Path | None) -> None:
        """Record ``output`` of ``step`` (its figures and posterior already written)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        result = output.result
        entry = {
            "key": key,
            "method": getattr(result, "method", step),
            "info": json.loads(json.dumps(getattr(result, "info", {}), default=_json_default)),
            "result_class": f"{type(result).__module__}:{type(result).__qualname__}",
            "table": output.table.to_json(orient="split", double_precision=15),
            "extras": {name: df.to_json(orient="split", double_precision=15)
                       for name, df in output.extras.items()},
            "figures": {name: str(Path(p).relative_to(self.out_dir))
                        for name, p in figures.items()},
            "posterior": None if posterior is None else str(posterior.relative_to(self.out_dir)),
        }
        # mtime=0: the same entry gives the same bytes
        self._file(step).write_bytes(gzip.compress(json.dumps(entry).encode("utf-8"),
                                                   compresslevel=6, mtime=0))


def _read(text: str) -> pd.DataFrame:
    return pd.read_json(StringIO(text), orient="split", dtype=False)


def _result_class(spec: str):
    module, _, name = spec.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj
