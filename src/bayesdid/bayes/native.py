"""C kernels built with the system C compiler on first use and cached by content hash.

numba takes 8-13 s to compile the DID's block-arrow log-density (most of a fresh install's
first ``bayesdid demo``) and 5-8 s for each of its other kernels; ``cc -O3`` builds the same
kernels, written in C (``did/marginal_density.c``), in well under a second. The shared
library is cached under :func:`cache_dir`, named by a hash of the source, the compile
command and the platform, so an edited source or another compiler
builds anew and nothing goes stale (numba's own cache is keyed to file times). Without a
working compiler, or with ``BAYESDID_NATIVE=0``, :func:`load` returns ``None`` and callers
keep their numba kernel: same posterior, slower first fit. :func:`prebuild` starts a build
in a background thread (a study does so before its first step), so the compiler runs on
another core while Python imports and fits; :func:`load` then waits for it.

Written by hand because numba offers no ahead-of-time build that survives an install
(``numba.pycc`` is deprecated) and PyTensor's C cache is for PyTensor Ops.

>>> lib = load(DID_SOURCE)
>>> lib is None or lib.symbol("bayesdid_expand").address > 0
True
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = ["DID_SOURCE", "DOUBLE_P", "EXPAND_PROTOTYPE", "LAPACK_ROUTINES", "LOGP_PROTOTYPE",
           "NativeFunction", "NativeLibrary", "cache_dir", "load", "prebuild"]

_LOG = logging.getLogger(__name__)
_PACKAGE = Path(__file__).resolve().parents[1]
#: the DID's dense, block-arrow and per-unit scaled kernels (the C twin of
#: ``did/nutpie_density.py``, ``did/block_marginal.py`` and
#: ``did/marginal_likelihood_numba.py``), relative to the package
DID_SOURCE = "did/marginal_density.c"
#: flags for every kernel: no -march=native, so a cache shared between machines stays valid
CFLAGS = ("-O3", "-std=c99", "-fPIC", "-shared", "-fno-math-errno")
DOUBLE_P = ctypes.POINTER(ctypes.c_double)
#: ctypes prototypes of nutpie's callbacks (to call one through its address, as nutpie does):
#: logp (dim, x, grad out, logp out, user data) and expand (dim, expanded, x, out, user data)
LOGP_PROTOTYPE = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, DOUBLE_P, DOUBLE_P,
                                  DOUBLE_P, ctypes.c_void_p)
EXPAND_PROTOTYPE = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint64,
                                    DOUBLE_P, DOUBLE_P, ctypes.c_void_p)
#: scipy's BLAS / LAPACK routines handed to a library exporting ``bayesdid_set_lapack``
#: (the ones numba's kernels call: same library, same threads, same results)
LAPACK_ROUTINES = (("scipy.linalg.cython_blas", "dgemm"), ("scipy.linalg.cython_blas", "dgemv"),
                   ("scipy.linalg.cython_lapack", "dpotrf"),
                   ("scipy.linalg.cython_lapack", "dpotri"))


def cache_dir() -> Path:
    """``$BAYESDID_CACHE_DIR``, else ``$XDG_CACHE_HOME/bayesdid``, else ``~/.cache/bayesdid``."""
    if os.environ.get("BAYESDID_CACHE_DIR"):
        return Path(os.environ["BAYESDID_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bayesdid"


@dataclass(frozen=True)
class NativeFunction:
    """A C function's address (what nutpie's callbacks take) and the library holding it."""

    address: int
    library: NativeLibrary


@dataclass(frozen=True)
class NativeLibrary:
    """A loaded shared library built by :func:`load`."""

    path: Path
    handle: ctypes.CDLL

    def symbol(self, name: str) -> NativeFunction:
        return NativeFunction(ctypes.cast(getattr(self.handle, name), ctypes.c_void_p).value,
                              self)


def _compiler() -> list[str]:
    return shlex.split(os.environ.get("CC") or "cc")


def _disabled() -> bool:
    return os.environ.get("BAYESDID_NATIVE", "1") == "0"


def _target(source: str) -> tuple[Path, list[str], Path]:
    """The source file, the compile command and the cached library they build."""
    src = _PACKAGE / source
    command = [*_compiler(), *CFLAGS]
    key = hashlib.sha256(b"\0".join([
        src.read_bytes(), " ".join(command).encode(), platform.machine().encode(),
        sys.platform.encode()])).hexdigest()[:20]
    return src, command, cache_dir() / f"{src.stem}-{key}.so"


_PENDING: dict[str, threading.Thread] = {}
_PENDING_LOCK = threading.Lock()


def prebuild(source: str) -> None:
    """Start building ``source`` in a background thread unless its library is cached (or
    ``BAYESDID_NATIVE=0``); returns at once. The compiler is a separate process, so on a
    machine with two cores or more the build overlaps whatever runs meanwhile, and the
    first :func:`load` of ``source`` waits for it. A failed build is reported by that
    :func:`load` (which retries it). Never raises."""
    if _disabled():
        return
    try:
        src, command, target = _target(source)
    except OSError:
        return  # load() reports it
    if target.exists():
        return

    def build() -> None:
        try:
            _build(command, src, target)
        except (OSError, subprocess.SubprocessError):
            pass  # load() tries again and says why

    with _PENDING_LOCK:
        if source in _PENDING:
            return
        # not a daemon: the interpreter waits for it at exit, so no half-built file stays
        thread = threading.Thread(target=build, name=f"bayesdid-build-{src.stem}")
        _PENDING[source] = thread
        thread.start()


@cache
def load(source: str) -> NativeLibrary | None:
    """The shared library built from ``source`` (a path relative to the bayesdid package),
    compiled on the first call on this machine and cached; ``None`` if it cannot be built
    (no compiler, a failed build) or ``BAYESDID_NATIVE=0``. Waits for a :func:`prebuild`
    of it still running. Never raises."""
    if _disabled():
        return None
    with _PENDING_LOCK:
        pending = _PENDING.pop(source, None)
    if pending is not None:
        pending.join()
    try:
        src, command, target = _target(source)
        if not target.exists():
            _build(command, src, target)
        handle = ctypes.CDLL(str(target))
        _link_lapack(handle)
        return NativeLibrary(target, handle)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:  # ValueError: no LAPACK
        _LOG.info("bayesdid: no native build of %s (%s); using the numba kernel", source, exc)
        return None


def _build(command: list[str], src: Path, target: Path) -> None:
    """Compile into a temporary file beside ``target``, then rename it into place (atomic:
    concurrent processes never load a half-written library)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        done = subprocess.run([*command, str(src), "-o", tmp, "-lm"], capture_output=True,
                              text=True, timeout=120)
        if done.returncode != 0:
            raise subprocess.SubprocessError(done.stderr.strip()[-2000:])
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _link_lapack(handle: ctypes.CDLL) -> None:
    """Give a library that asks for them (``bayesdid_set_lapack``) scipy's BLAS / LAPACK."""
    setter = getattr(handle, "bayesdid_set_lapack", None)
    if setter is None:
        return
    from numba.core.extending import get_cython_function_address  # ctypes only, no compile

    setter.argtypes = [ctypes.c_void_p] * len(LAPACK_ROUTINES)
    setter.restype = None
    setter(*(get_cython_function_address(module, name) for module, name in LAPACK_ROUTINES))
