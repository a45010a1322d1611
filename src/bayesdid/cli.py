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
import logging
import sys
import time
from pathlib import Path

from . import __version__
from .errors import BayesDidError

__all__ = ["main"]

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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bayesdid`` console script; returns the exit code."""
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
