"""The first HierarchicalDiD fit in a fresh process with empty caches (a new machine), with
the DID kernels in C (default) and with numba (``BAYESDID_NATIVE=0``), then the same fit
warm: the shapes of ``bench_compiled.py`` (a 20-unit 2-period DiD: dense kernel; castle
50 x 11 with event time and its population weights: the per-unit scaled kernel) and the LCCP
event study (278 x 19: block-arrow kernel).
4 chains x 1000 draws after 1000 tuning. Each run is a subprocess; printed: wall seconds of
the whole fit (model build, compile, NUTS, draws) and C / numba.

    .venv/bin/python benchmarks/bench_first_fit.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

CODE = r"""
import time, warnings
warnings.simplefilter("ignore")
from bayesdid import Panel
from bayesdid.datasets import info, load, simulate_staggered
from bayesdid.did.hierarchical import HierarchicalDiD
shape = {shape!r}
if shape == "20 x 2":
    sim = simulate_staggered(n_units=20, years=(2009, 2010), batches={{2009: 10}},
                             n_covariates=0, random_seed=0)
    panel, model = Panel.from_frame(sim.data, **sim.panel_kwargs), HierarchicalDiD()
elif shape == "castle 50 x 11":
    panel = Panel.from_frame(load("castle"), **info("castle")["panel_kwargs"])
    model = HierarchicalDiD(event_time=True)
else:
    sim = simulate_staggered(random_seed=0)
    panel, model = Panel.from_frame(sim.data, **sim.panel_kwargs), HierarchicalDiD(event_time=True)
t = time.perf_counter()
res = model.fit(panel, random_seed=1, progress=False)
print(time.perf_counter() - t)
"""


def run(shape: str, env: dict) -> float:
    out = subprocess.run([sys.executable, "-c", CODE.format(shape=shape)], env=env,
                         check=True, capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def main() -> None:
    print(f"load average at the start: {os.getloadavg()[0]:.1f}\n")
    print("| panel | first fit C s | first fit numba s | C / numba | warm C s | warm numba s |")
    print("|---|---:|---:|---:|---:|---:|")
    for shape in ("20 x 2", "castle 50 x 11", "LCCP 278 x 19"):
        row = {}
        for label, extra in (("C", {}), ("numba", {"BAYESDID_NATIVE": "0"})):
            with tempfile.TemporaryDirectory() as tmp:
                env = dict(os.environ, NUMBA_CACHE_DIR=f"{tmp}/numba",
                           BAYESDID_CACHE_DIR=f"{tmp}/c",
                           PYTENSOR_FLAGS=f"base_compiledir={tmp}/pytensor", **extra)
                row[label] = (run(shape, env), run(shape, env))
        (cc, cw), (nc, nw) = row["C"], row["numba"]
        print(f"| {shape} | {cc:.1f} | {nc:.1f} | {cc / nc:.2f}x | {cw:.1f} | {nw:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
