"""Reading panel data from files: CSV, Parquet and Stata ``.dta``, chosen by suffix.

:func:`read_table` returns the file as a DataFrame; :func:`read_panel` builds a
:class:`~bayesdid.panel.Panel` from it in one call. Stata value labels become pandas
categoricals and Stata dates become datetimes (``pandas.read_stata``); Parquet needs
``pyarrow``. A suffix outside :data:`READERS` raises
:class:`~bayesdid.errors.FileFormatError`.

>>> import pandas as pd, tempfile, pathlib
>>> df = pd.DataFrame({"city": ["a"] * 3 + ["b"] * 3, "month": ["2011-01", "2011-02",
...                    "2011-03"] * 2, "y": [1.0, 1.2, 1.9, 0.9, 1.1, 1.2],
...                    "d": [0, 1, 1, 0, 0, 0]})
>>> path = pathlib.Path(tempfile.mkdtemp()) / "panel.csv"
>>> df.to_csv(path, index=False)
>>> panel = read_panel(path, unit="city", time="month", outcome="y", treat="d")
>>> panel.time_axis.frequency, panel.cohorts == [panel.time_axis.index_of("2011-02")]
('monthly', True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import FileFormatError

__all__ = ["read_table", "read_panel", "READERS"]

_COMPRESSED = (".gz", ".bz2", ".zip", ".xz", ".zst")

#: suffix -> pandas reader
READERS: Mapping[str, Callable[..., pd.DataFrame]] = {
    ".csv": pd.read_csv,
    ".parquet": pd.read_parquet,
    ".pq": pd.read_parquet,
    ".dta": pd.read_stata,
}


def file_suffix(path: str | Path) -> str:
    """The suffix that picks the reader: ``.csv`` also for ``panel.csv.gz``."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in _COMPRESSED and suffixes[-2] == ".csv":
        return ".csv"
    return suffixes[-1] if suffixes else ""


def read_table(path: str | Path, **kwargs: Any) -> pd.DataFrame:
    """Read a CSV (also ``.csv.gz`` etc.), Parquet (``.parquet``, ``.pq``) or Stata
    (``.dta``) file into a DataFrame; ``kwargs`` go to the pandas reader.

    Raises :class:`~bayesdid.errors.FileFormatError` for another suffix or when the
    reader cannot parse the file; a missing file raises ``FileNotFoundError``.
    """
    path = Path(path).expanduser()
    suffix = file_suffix(path)
    reader = READERS.get(suffix)
    if reader is None:
        raise FileFormatError(
            f"cannot read {path.name!r}: unknown file suffix {suffix or '(none)'!r}",
            hint=f"bayesdid reads {', '.join(READERS)} (CSV may be compressed, e.g. "
                 ".csv.gz); for other formats read it with pandas and use Panel.from_frame")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        return reader(path, **kwargs)
    except ImportError as err:  # Parquet without pyarrow / fastparquet
        raise FileFormatError(f"cannot read {path.name!r}: {err}",
                              hint="install pyarrow: pip install pyarrow") from None
    except (ValueError, TypeError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise FileFormatError(f"cannot read {path.name!r} as {suffix}: "
                              f"{str(err).splitlines()[0] if str(err) else type(err).__name__}"
                              ) from err


def read_panel(path: str | Path, *, read_kwargs: Mapping[str, Any] | None = None,
               **panel_kwargs: Any):
    """Read a file with :func:`read_table` and build a :class:`~bayesdid.panel.Panel`
    from it: ``panel_kwargs`` are :meth:`Panel.from_frame`'s (``unit``, ``time``,
    ``outcome``, ``treat`` / ``cohort`` / ``policy_lists``, ...), ``read_kwargs`` go to
    the pandas reader. Time may be integer, or dates / Periods / strings at yearly,
    quarterly or monthly frequency (see :meth:`Panel.from_frame`)."""
    from .panel import Panel

    return Panel.from_frame(read_table(path, **dict(read_kwargs or {})), **panel_kwargs)
