"""``bayesdid demo`` on its first run after install vs a warm run, and where the first
run's extra time goes; with the block-arrow kernel built in C (the default) and, as
like-for-like baselines in the same process (the same demo, the same work):

- ``C, stop 24``: the C kernel with the command line as it was before stop 25, i.e. with
  CPython's default garbage-collector thresholds (no ``cli._batch_gc``) and the C kernel
  built when the first fit needs it (no ``native.prebuild`` in the background);
- ``numba``: the kernel compiled by numba (``BAYESDID_NATIVE=0``).

The variants take turns (cold run and warm runs of each, then the next round), so a
drifting machine load hits them alike.

Each run is a fresh ``python -m bayesdid.cli demo`` subprocess writing to a new folder (so
the study's own result cache never answers). The cold runs get an empty
``NUMBA_CACHE_DIR``, an empty PyTensor ``base_compiledir`` and an empty
``BAYESDID_CACHE_DIR`` (the C kernels) and an empty ``MPLCONFIGDIR`` (matplotlib's font
cache), which is what a fresh install on a new machine has; the warm runs
then reuse those folders. Printed per run: wall seconds and the subprocess's user + system
CPU seconds (the compile is single-threaded, so CPU seconds travel between loaded and
idle machines, wall seconds do not), the cold / warm ratios, and C / numba.

The compile profile (also run by default) builds, in a fresh subprocess with empty caches,
exactly what the demo's Bayesian step needs: the nutpie callback of the DID density on the
demo's kernel (LCCP 278 x 19, event time, AR(1): the block-arrow kernel), once in C (the
system compiler) and once with numba, and the exact conditional draws of the coefficients
after NUTS (numba). Every ``numba:compile`` event (numba's public event API) is timed in
thread CPU seconds, inclusive and self (minus the nested compiles); the C build is a
compiler subprocess, timed in wall seconds.

    .venv/bin/python benchmarks/bench_first_run.py [--cold 1] [--warm 1] [--top 25]
    .venv/bin/python benchmarks/bench_first_run.py --profile-only
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _env(cache: Path) -> dict:
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(cache / "numba")
    env["BAYESDID_CACHE_DIR"] = str(cache / "native")
    env["MPLCONFIGDIR"] = str(cache / "matplotlib")  # a new machine builds its font cache
    flags = env.get("PYTENSOR_FLAGS", "")
    env["PYTENSOR_FLAGS"] = ",".join(
        f for f in (flags, f"base_compiledir={cache / 'pytensor'}") if f)
    return env


#: ``python -c`` driver of the stop-24 baseline: the same ``main`` without the two changes
_STOP24 = ("import contextlib, sys; from bayesdid import cli; from bayesdid.bayes import native; "
           "cli._batch_gc = contextlib.nullcontext; native.prebuild = lambda source: None; "
           "sys.exit(cli.main(sys.argv[1:]))")
#: label -> (command before the demo's arguments, extra environment)
VARIANTS = {
    "C": (["-m", "bayesdid.cli"], {}),
    "C, stop 24": (["-c", _STOP24], {}),
    "numba": (["-m", "bayesdid.cli"], {"BAYESDID_NATIVE": "0"}),
}


def run_demo(cache: Path, out: Path, variant: str) -> dict:
    """One ``bayesdid demo`` subprocess: wall and CPU (user + sys) seconds."""
    command, extra_env = VARIANTS[variant]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    subprocess.run([sys.executable, *command, "demo", "--out", str(out), "--quiet"],
                   env={**_env(cache), **extra_env}, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return {"wall": time.perf_counter() - t0, "cpu": _children_cpu() - cpu0}


def profile_child(top: int) -> None:
    """(In the subprocess) compile what the demo's Bayesian step needs; print the events."""
    import warnings

    import numpy as np
    from numba.core import event

    class Recorder(event.Listener):
        def __init__(self):
            self.stack, self.done = [], []

        def on_start(self, ev):
            self.stack.append((time.thread_time(), ev))

        def on_end(self, ev):
            start, ev = self.stack.pop()
            disp = ev.data.get("dispatcher")
            name = getattr(getattr(disp, "py_func", None), "__qualname__", repr(disp))
            self.done.append((start, time.thread_time() - start, len(self.stack), name,
                              str(ev.data.get("args"))))

    rec = Recorder()
    event.register("numba:compile", rec)
    warnings.simplefilter("ignore")
    from bayesdid import Panel
    from bayesdid.bayes import native
    from bayesdid.bayes.nutpie_compiled import LOGP_SIG, lazy_cfunc
    from bayesdid.datasets import simulate_staggered
    from bayesdid.did import nutpie_density as nd
    from bayesdid.did.block_marginal import draw_phi_block
    from bayesdid.did.hierarchical import HierarchicalDiD

    sim = simulate_staggered(random_seed=0)  # the demo's panel and its Bayesian step
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    model = HierarchicalDiD(event_time=True, errors="ar1")
    design = model.prepare(panel)
    buf = nd.pack_user_data(design, model.priors, True)
    kernel = nd.kernel_of(buf)
    t0 = time.perf_counter()
    built = nd.native_callbacks()
    t_native = time.perf_counter() - t0
    print(f"C build of the block kernel's callbacks (cc {' '.join(native.CFLAGS)}): "
          f"{t_native:.2f} s wall" + ("" if built else " -- FAILED, no native kernel"))
    c0 = time.thread_time()
    lazy_cfunc(nd.KERNELS[kernel], LOGP_SIG)
    c1 = time.thread_time()
    n = 4
    draw_phi_block(design, np.full(n, 0.5), np.full(n, 0.3), 0.01,
                   np.ones((n, design.n_phi)), np.random.default_rng(0))
    c2 = time.thread_time()
    events = sorted(rec.done)
    in_callback = sum(d for start, d, depth, _, _ in events if depth == 0 and start < c1)
    print(f"kernel {kernel}, p = {design.n_phi}: numba log-density callback {c1 - c0:.2f} s CPU (of "
          f"which the cfunc itself, outside the functions it calls: {c1 - c0 - in_callback:.2f}"
          f" s), conditional draws {c2 - c1:.2f} s CPU; together {c2 - c0:.2f} s\n")
    rows = []
    for i, (_, incl, depth, name, args) in enumerate(events):
        nested = 0.0
        for _, d2, depth2, _, _ in events[i + 1:]:
            if depth2 <= depth:
                break
            if depth2 == depth + 1:
                nested += d2
        rows.append((incl - nested, incl, depth, name, args))
    print(f"{len(rows)} numba compiles; self = inclusive minus the nested compiles "
          f"(thread CPU s); top {top} by self:\n")
    print("| self s | inclusive s | depth | function | argument types |")
    print("|---:|---:|---:|---|---|")
    for own, incl, depth, name, args in sorted(rows, reverse=True)[:top]:
        short = args.replace(", aligned=True", "").replace("Array(float64, ", "f8[")
        print(f"| {own:.2f} | {incl:.2f} | {depth} | `{name}` | {short[:70]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=1, help="cold runs (new caches each)")
    parser.add_argument("--warm", type=int, default=1, help="warm runs after each cold one")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--profile-only", action="store_true")
    parser.add_argument("--profile-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile_child:
        profile_child(args.top)
        return
    print(f"load average at the start: {os.getloadavg()[0]:.1f}\n")
    with tempfile.TemporaryDirectory(prefix="bench_first_run_") as tmp:
        root = Path(tmp)
        if not args.profile_only:
            runs = {label: {"cold": [], "warm": []} for label in VARIANTS}
            for i in range(args.cold):
                for label in VARIANTS:
                    cache = root / f"{i}{label}"
                    runs[label]["cold"].append(run_demo(cache, root / f"{label}_cold{i}", label))
                    runs[label]["warm"] += [run_demo(cache, root / f"{label}_warm{i}_{j}", label)
                                            for j in range(args.warm)]
            print("| kernel | run | wall s | user+sys CPU s |")
            print("|---|---|---:|---:|")
            best = {}
            for label, both in runs.items():
                for key, name in (("cold", "first run (empty caches)"), ("warm", "warm")):
                    for r in both[key]:
                        print(f"| {label} | {name} | {r['wall']:.1f} | {r['cpu']:.1f} |")
                best[label] = tuple(min(both[key], key=lambda r: r["wall"])
                                    for key in ("cold", "warm"))
            med = {label: tuple({k: statistics.median(r[k] for r in both[key])
                                 for k in ("wall", "cpu")} for key in ("cold", "warm"))
                   for label, both in runs.items()}
            for title, stat in (("best of each (wall)", best), ("median of each", med)):
                print(f"\n{title}:")
                for label, (c, w) in stat.items():
                    print(f"{label}: first run {c['wall']:.1f} s, warm {w['wall']:.1f} s; "
                          f"cold / warm: wall {c['wall'] / w['wall']:.2f}x, "
                          f"CPU {c['cpu'] / w['cpu']:.2f}x; the first run's extra CPU: "
                          f"{c['cpu'] - w['cpu']:.1f} s")
                (cc, wc) = stat["C"]
                for base in ("C, stop 24", "numba"):
                    cb, wb = stat[base]
                    print(f"C / {base}: first run wall {cc['wall'] / cb['wall']:.2f}x, CPU "
                          f"{cc['cpu'] / cb['cpu']:.2f}x; warm wall {wc['wall'] / wb['wall']:.2f}x,"
                          f" CPU {wc['cpu'] / wb['cpu']:.2f}x")
            print(flush=True)
        env = _env(root / "profile")
        subprocess.run([sys.executable, __file__, "--profile-child", "--top", str(args.top)],
                       env=env, check=True)


if __name__ == "__main__":
    main()
