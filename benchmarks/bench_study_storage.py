"""What a study does with a large posterior: store it, read it back (a cached rerun).

The posterior is shaped like the LCCP study's Bayesian SFA step (2 chains x 500 draws of
5,283 efficiency effects, plus a few parameters; no sampling: random draws). Baseline, in
the same process: the storage before issue 16 (the full float64 posterior written without
compression; a cached rerun reloads it and recomputes the convergence table). New: the
study's storage (thinned to 200 draws in float32, zlib + shuffle, the fit's diagnostics
stored beside the draws). Printed: seconds and bytes of each, and new / baseline ratios
(machines are noisy: only ratios travel).

    .venv/bin/python benchmarks/bench_study_storage.py [--effects 5283] [--repeat 3]

Writes benchmarks/results/bench_study_storage.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from bayesdid.bayes.convergence import diagnostics_table
from bayesdid.efficiency.bayes_sfa import BayesSFAResult

RESULTS = Path(__file__).parent / "results" / "bench_study_storage.md"


def posterior(n_effects: int, chains: int = 2, draws: int = 500, seed: int = 0):
    """A DataTree shaped like a BayesianSFA fit's."""
    rng = np.random.default_rng(seed)
    eff = np.exp(-np.abs(rng.normal(0.3, 0.1, (chains, draws, n_effects))))
    groups = ["overall", *[f"city=c{i // 19:03d}, year={2003 + i % 19}"
                           for i in range(n_effects - 1)]]
    post = xr.Dataset({"effect": (("chain", "draw", "effect_id"), eff),
                       "sigma_u": (("chain", "draw"), rng.gamma(5, 0.05, (chains, draws))),
                       "beta": (("chain", "draw", "term"), rng.normal(size=(chains, draws, 7)))},
                      coords={"estimand": ("effect_id", ["efficiency"] * n_effects),
                              "group": ("effect_id", groups)})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((chains, draws), bool))})
    const = xr.Dataset({"effect_n_obs": ("effect_id", np.ones(n_effects, int)),
                        "obs_city": ("obs", [g.split(",")[0][5:] for g in groups[1:]]),
                        "obs_year": ("obs", [int(g[-4:]) for g in groups[1:]])})
    const.attrs["id_columns"] = ["city", "year"]
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats,
                                  "constant_data": const})


def baseline(result, path: Path) -> dict:
    """Before: full float64 draws, no compression; the rerun recomputes the diagnostics."""
    t0 = time.perf_counter()
    tree = result.idata.copy()
    tree.attrs.update({"bayesdid_method": result.method, "bayesdid_info": "{}"})
    tree.to_netcdf(path, engine="h5netcdf")
    store = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = BayesSFAResult.load(path)
    diagnostics_table(back.idata, ["sigma_u", "beta"])
    back.efficiency_draws()
    return {"store": store, "reload": time.perf_counter() - t0, "bytes": path.stat().st_size}


def new(result, path: Path) -> dict:
    """Now: thinned to 200 float32 draws, compressed, diagnostics stored."""
    t0 = time.perf_counter()
    result.thinned(200, float32=True).save(path)
    store = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = BayesSFAResult.load(path)
    back.diagnostics(warn=False)
    back.efficiency_draws()
    return {"store": store, "reload": time.perf_counter() - t0, "bytes": path.stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--effects", type=int, default=5283)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tree = posterior(args.effects)
    result = BayesSFAResult.from_idata(tree, method="bayes_sfa",
                                       info={"sampled_vars": ["sigma_u", "beta"]})
    result.diagnostics(warn=False)  # the fit computed it (from_fit); not timed
    rows = {"baseline": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            rows["baseline"].append(baseline(result, Path(tmp) / f"old{i}.nc"))
            rows["new"].append(new(result, Path(tmp) / f"new{i}.nc"))
    best = {k: {m: min(r[m] for r in v) for m in ("store", "reload", "bytes")}
            for k, v in rows.items()}
    lines = [f"# Study storage of a {args.effects}-effect posterior (2 x 500 draws)", "",
             "| | store (s) | reload (s) | bytes |", "|:--|--:|--:|--:|"]
    for k, v in best.items():
        lines.append(f"| {k} | {v['store']:.2f} | {v['reload']:.2f} | {v['bytes']:,} |")
    ratio = {m: best["new"][m] / best["baseline"][m] for m in ("store", "reload", "bytes")}
    lines.append(f"| new / baseline | {ratio['store']:.2f} | {ratio['reload']:.2f} | "
                 f"{ratio['bytes']:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
