"""The ``bayesdid`` command line.

::

    bayesdid run <spec.toml> [--out DIR] [--quiet]   run a study (default out: results/<name>)
    bayesdid demo [--out DIR] [--quiet]              run the shipped models/lccp_demo.toml
    bayesdid datasets                                list the shipped datasets
    bayesdid --version

Exit codes: 0 success, 1 an operating-system error (unwritable folder...), 2 a usage or
input problem (bad arguments, a malformed spec, invalid data: any ``BayesDidError``),
130 interrupted.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from . import __version__
from .errors import BayesDidError

__all__ = ["console", "main"]

DEMO = "lccp_demo"


class _ProgressFormatter(logging.Formatter):
    """``  12.3s  message`` for INFO, ``warning: message`` above."""

    def __init__(self) -> None:
        super().__init__()
        self.start = time.perf_counter()

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {msg}"
        return f"{time.perf_counter() - self.start:6.1f}s  {msg}"


def _configure_logging(quiet: bool) -> dict:
    """Progress lines from bayesdid (INFO) and PyMC; warnings from everything.

    The handler sits on the root logger, so a library's ``logging.basicConfig`` call
    (pyfixest makes one on import) becomes a no-op instead of echoing every INFO record.
    Returns what :func:`_restore_logging` needs to undo it.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ProgressFormatter())
    root = logging.getLogger()
    names = ("bayesdid", "pymc")
    saved = {"handler": handler, "root": root.level,
             "levels": {n: logging.getLogger(n).level for n in names}}
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    level = logging.WARNING if quiet else logging.INFO
    for name in names:
        logging.getLogger(name).setLevel(level)
    return saved


def _restore_logging(saved: dict) -> None:
    root = logging.getLogger()
    root.removeHandler(saved["handler"])
    root.setLevel(saved["root"])
    for name, level in saved["levels"].items():
        logging.getLogger(name).setLevel(level)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayesdid",
        description="Bayesian causal inference on policy panels: run a declarative study "
                    "(TOML) and write tables and plots, posterior beside classical.")
    parser.add_argument("--version", action="version", version=f"bayesdid {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run a study spec (TOML)",
                         description="Run every step of a study spec and write the results.")
    run.add_argument("spec", type=Path, help="study spec, e.g. models/castle.toml")
    demo = sub.add_parser("demo", help="run the shipped LCCP demo study",
                          description="Run the shipped models/lccp_demo.toml: a simulated "
                                      "LCCP-shaped panel, TWFE, event study and the "
                                      "hierarchical Bayesian DID, checked against the truth.")
    for p in (run, demo):
        p.add_argument("--out", type=Path, default=None, metavar="DIR",
                       help="results folder (default: results/<study name>)")
        p.add_argument("--quiet", "-q", action="store_true",
                       help="no progress messages or bars; warnings and errors only")
        p.add_argument("--no-cache", action="store_true",
                       help="refit every step (by default unchanged steps are read from "
                            "the results folder's .cache)")
    sub.add_parser("datasets", help="list the shipped datasets",
                   description="List the real datasets shipped with bayesdid.")
    return parser


def _run(spec: Path, out: Path | None, quiet: bool, use_cache: bool = True) -> int:
    from .study.run import load_study, run_study

    study = load_study(spec)
    out = out if out is not None else Path("results") / study.name
    result = run_study(study, out, progress=not quiet, use_cache=use_cache)
    if not quiet:
        cached = [s.name for s in study.steps if s.name not in result.refitted]
        if cached:
            print(f"Unchanged steps read from the cache: {', '.join(cached)} (--no-cache refits)")
        print(f"Report: {result.paths['report_html']}")
        print(f"Results of {study.name} in {result.out_dir}:")
        for path in sorted(set(result.paths.values())):
            print(f"  {path.name}")
    return 0


def _datasets() -> int:
    import pandas as pd

    from .datasets import list_datasets

    table = list_datasets()
    with pd.option_context("display.max_colwidth", 70, "display.width", 200):
        print(table.to_markdown(index=False))
    return 0


def _one_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = lines[0] if lines else type(err).__name__
    hint = next((ln for ln in lines[1:] if ln.startswith("Hint:")), None)
    if hint:
        text += f" ({hint[0].lower()}{hint[1:]})"
    notes = getattr(err, "__notes__", None)
    if notes:
        text += f" [{'; '.join(notes)}]"
    return text


@contextmanager
def _batch_gc():
    """Garbage-collect as a batch job does, not as CPython's defaults (tuned for long-lived
    interactive processes) do. A study imports several hundred thousand long-lived objects
    (pandas, SciPy, PyMC, pyfixest, ...); with the default thresholds (700, 10, 10) the
    collector rescans them in about six full collections, 0.6-0.9 s of a 7-9 s demo
    (``benchmarks/bench_first_run.py``). Inside, what was imported before is frozen
    (module-level objects live as long as the process) and the youngest generation is
    collected every 20 000 allocations instead of 700: cycles are still collected, full
    collections are rare. The thresholds come back on exit and everything frozen is
    scanned again (``main`` may be called in-process, as the tests do); importing bayesdid
    changes nothing."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bayesdid`` console script; returns the exit code."""
    with _batch_gc():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, usage errors
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    saved = None
    try:
        if args.command == "datasets":
            return _datasets()
        import matplotlib

        matplotlib.use("Agg")  # the CLI only writes image files
        saved = _configure_logging(args.quiet)
        if args.command == "run":
            return _run(args.spec, args.out, args.quiet, not args.no_cache)
        from .study.run import shipped_model

        return _run(shipped_model(DEMO), args.out, args.quiet, not args.no_cache)
    except BayesDidError as err:
        print(f"bayesdid: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"bayesdid: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bayesdid: interrupted", file=sys.stderr)
        return 130
    finally:
        if saved is not None:
            _restore_logging(saved)


def console() -> None:
    """The ``bayesdid`` console script (and ``python -m bayesdid.cli``): :func:`main`, then
    a quick exit. A study leaves about 400 000 objects imported (pandas, SciPy, PyMC,
    pyfixest, ...), and tearing the interpreter down frees them one by one: 1-1.5 s of an
    8 s demo (``benchmarks/bench_first_run.py``) that nothing a user sees depends on. So
    after :func:`main` returns, what a normal exit does that matters is done by hand:
    non-daemon threads are joined (a compiler still building a kernel), the exit handlers
    run (logging flushes its handlers, temporary folders go, weakref finalizers), and
    the standard streams are flushed; then the process ends with :func:`os._exit`. An
    exception escaping :func:`main` exits the normal way, with its traceback."""
    code = main()
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # CPython's own exit handlers; os._exit would skip them
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe (`bayesdid demo | head`)
        code = code or 120  # what CPython's exit returns when the flush fails
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    console()
