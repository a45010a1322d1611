"""HierarchicalDiD on PyMC's NUTS vs nutpie (compiled, numba Op), same process, same data.

Three shapes: a 20-unit x 2-period DiD, castle (50 states x 11 years, staggered) with
``event_time=True``, and the LCCP-shaped 278 x 19 AR(1) panel of ``bench_did.py``. Each is
fitted with 4 chains x 1000 draws after 1000 tuning steps on each sampler. Printed per run:
wall seconds of ``fit``, the part spent before the first NUTS step (compilation, chain
start-up: ``sample_call_time - sampling_time``), NUTS sampling, post-processing (exact
draws of the coefficients, effects, convergence checks), bulk ESS of the overall ATT,
ESS/s of wall time, and the nutpie / PyMC ratios. Machines are noisy: the ratios travel.
``nutpie`` is bayesdid's default compiled path (one disk-cached C callback for every
panel); a third row times nutpie through PyMC's generic route (``compile_pymc_model`` on
the numba Op), which compiles a new callback per model.

    .venv/bin/python benchmarks/bench_compiled.py [--draws 1000 --tune 1000] [--out FILE]
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

from bayesdid import Panel
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.bayes.sampling import sample
from bayesdid.datasets import info, load, simulate_staggered


def shapes() -> list[tuple[str, Panel, HierarchicalDiD]]:
    small = simulate_staggered(n_units=20, years=(2009, 2010), batches={2009: 10},
                               n_covariates=0, random_seed=0)
    lccp = simulate_staggered(random_seed=0)
    return [
        ("20 x 2 DiD, AR(1)", Panel.from_frame(small.data, **small.panel_kwargs),
         HierarchicalDiD()),
        ("castle 50 x 11, event_time", Panel.from_frame(load("castle"),
                                                        **info("castle")["panel_kwargs"]),
         HierarchicalDiD(event_time=True)),
        ("LCCP 278 x 19, AR(1)", Panel.from_frame(lccp.data, **lccp.panel_kwargs),
         HierarchicalDiD()),
    ]


def run(model: HierarchicalDiD, panel: Panel, sampler: str, draws: int, tune: int) -> dict:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.fit(panel, draws=draws, tune=tune, chains=4, random_seed=1,
                        progress=False, sampler=sampler)
    wall = time.perf_counter() - t0
    attrs = res.idata.posterior.attrs
    sampling, call = float(attrs["sampling_time"]), float(attrs["sample_call_time"])
    ess = float(res.diagnostics(warn=False).set_index("parameter")
                .loc["att|overall", "ess_bulk"])
    att = res.effect("att", "overall")
    return {"wall": wall, "setup": call - sampling, "sampling": sampling,
            "post": wall - call, "ess": ess, "ess_s": ess / wall, "att": att["estimate"],
            "sd": att["se_or_sd"], "ok": res.info["convergence"]["ok"]}


def run_generic_nutpie(model: HierarchicalDiD, panel: Panel, draws: int, tune: int) -> dict:
    """nutpie through ``pm.sample`` / ``nutpie.compile_pymc_model`` on the registered numba
    Op (compiles a C callback per model): NUTS only, no post-processing."""
    design = model.prepare(panel)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = sample(model._build(design), draws=draws, tune=tune, chains=4, cores=None,
                       random_seed=1, progress=False, target_accept=0.9, sampler="nutpie")
    attrs = idata.posterior.attrs
    sampling = float(attrs["sampling_time"])
    return {"wall": time.perf_counter() - t0, "setup": float(attrs["sample_call_time"]) - sampling,
            "sampling": sampling}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.getLogger("pymc").setLevel(logging.WARNING)
    logging.getLogger("nutpie").setLevel(logging.WARNING)
    cases = shapes()

    # one tiny fit per sampler first: imports and on-disk compile caches, reported apart
    t0 = time.perf_counter()
    for sampler in ("pymc", "nutpie"):
        run(cases[0][2], cases[0][1], sampler, 20, 20)
    warmup = time.perf_counter() - t0

    lines = [f"4 chains x {args.draws} draws after {args.tune} tuning steps, one process; "
             f"warm-up (one tiny fit per sampler, not counted): {warmup:.1f} s", "",
             "| panel | sampler | wall s | compile+start s | NUTS s | post s | ESS(ATT) | "
             "ESS/s | ATT | sd | converged |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"
             "---:|---|"]
    ratios = ["", "| panel | wall PyMC / nutpie | NUTS-only PyMC / nutpie | "
              "ESS/s nutpie / PyMC |", "|---|---:|---:|---:|"]
    for name, panel, model in cases:
        out = {s: run(model, panel, s, args.draws, args.tune) for s in ("pymc", "nutpie")}
        for s, r in out.items():
            lines.append(f"| {name} | {s} | {r['wall']:.1f} | {r['setup']:.1f} | "
                         f"{r['sampling']:.1f} | {r['post']:.1f} | {r['ess']:.0f} | "
                         f"{r['ess_s']:.0f} | {r['att']:.4g} | {r['sd']:.3g} | {r['ok']} |")
        p, n = out["pymc"], out["nutpie"]
        ratios.append(f"| {name} | {p['wall'] / n['wall']:.1f} | "
                      f"{p['sampling'] / n['sampling']:.1f} | {n['ess_s'] / p['ess_s']:.1f} |")
        g = run_generic_nutpie(model, panel, args.draws, args.tune)
        lines.append(f"| {name} | nutpie via compile_pymc_model (NUTS only) | {g['wall']:.1f} | "
                     f"{g['setup']:.1f} | {g['sampling']:.1f} | - | - | - | - | - | - |")
        print("\n".join(lines[-3:]), flush=True)
    text = "\n".join(lines + ratios)
    print(text)
    if args.out:
        args.out.write_text("# HierarchicalDiD: PyMC NUTS vs nutpie (bench_compiled.py)\n\n"
                            + text + "\n")


if __name__ == "__main__":
    main()
