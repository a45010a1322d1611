"""Cost of per-unit precision scales in HierarchicalDiD on the LCCP shape (278 x 19, AR(1)).

Rows, each fitted with 4 chains x 1000 draws after 1000 tuning steps on the default
compiled path (nutpie), as ``bench_compiled.py`` does:

* ``default`` on this source tree and on a baseline tree (``--baseline``, e.g. the main
  checkout's ``src``): the default model must not get slower;
* ``weights``: the same panel with a population weight per city (precision weights);
* ``classes``: ``unit_variance="classes"`` (4 variance classes).

Each (tree, config) fit runs in its own child process (``PYTHONPATH`` set to the tree) after
a tiny warm-up fit there (imports, on-disk numba caches), and the configurations alternate
over ``--reps`` rounds, so that a busy machine's load falls on every row alike; medians
are printed with ratios against ``default`` on the same tree and against the baseline.
Also printed: one evaluation of the compiled log-likelihood and gradient (microseconds,
median of 200), unscaled vs scaled.

    .venv/bin/python benchmarks/bench_unit_precision.py --baseline /work/main/src --reps 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

CHILD = r"""
import json, sys, time, warnings
import numpy as np
from bayesdid import Panel
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.datasets import simulate_staggered
config, draws, tune = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
warnings.simplefilter("ignore")
small = simulate_staggered(n_units=20, years=(2009, 2010), batches={2009: 10},
                           n_covariates=0, random_seed=0)
sim = simulate_staggered(random_seed=0)
df = sim.data.copy()
kw = dict(sim.panel_kwargs)
model = HierarchicalDiD()
if config == "weights":
    cities = df["city"].unique()
    pop = dict(zip(cities, np.exp(np.random.default_rng(1).normal(0, 1, len(cities)))))
    df["pop"] = df["city"].map(pop)
    kw["weights"] = "pop"
    small.data["pop"] = 1.0 + small.data["city"].factorize()[0] % 3
elif config == "classes":
    model = HierarchicalDiD(unit_variance="classes")
warm = Panel.from_frame(small.data, **small.panel_kwargs,
                        **({"weights": "pop"} if config == "weights" else {}))
model.fit(warm, draws=20, tune=20, chains=2, random_seed=1, progress=False)
panel = Panel.from_frame(df, **kw)
t0 = time.perf_counter()
res = model.fit(panel, draws=draws, tune=tune, chains=4, random_seed=1, progress=False)
wall = time.perf_counter() - t0
post = res.idata.posterior
att = res.effect("att", "overall")
steps = res.idata.sample_stats["n_steps"].values if "n_steps" in res.idata.sample_stats \
    else np.array([np.nan])
design = model.prepare(panel)
us = float("nan")
if getattr(design, "scaled", None) is None:
    from bayesdid.did.marginal_likelihood_numba import marginal_loglik_grad_nb as f
    st = design.stats
    args = (st["basis"], st["run_lengths"], st["units_per_length"], design.n_obs, 0.01)
    call = lambda: f(*args, 0.5, 0.3, np.ones(design.n_phi))
else:
    from bayesdid.did.marginal_likelihood_numba import scaled_args, scaled_loglik_grad_nb as f
    sc = design.scaled
    v = np.linspace(1.0, 2.0, sc["n_classes"])
    a = scaled_args(sc)
    call = lambda: f(*a, design.n_obs, 0.01, 0.5, 0.3, np.ones(design.n_phi), v)
call()
times = []
for _ in range(200):
    t = time.perf_counter(); call(); times.append(time.perf_counter() - t)
us = float(np.median(times)) * 1e6
print(json.dumps({"wall": wall, "sampling": float(post.attrs["sampling_time"]),
                  "att": float(att["estimate"]), "sd": float(att["se_or_sd"]),
                  "ok": bool(res.info["convergence"]["ok"]), "sampler": res.info["sampler"],
                  "steps": float(np.mean(steps)), "eval_us": us}))
"""


def run(src: Path, config: str, draws: int, tune: int) -> dict:
    env = {"PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    out = subprocess.run([sys.executable, "-c", CHILD, config, str(draws), str(tune)],
                         env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"child fit failed ({src}, {config}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, default=None, help="src dir of the baseline")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = [("this tree", SRC, "default"), ("this tree", SRC, "weights"),
            ("this tree", SRC, "classes")]
    if args.baseline:
        rows.insert(0, ("baseline", args.baseline, "default"))
    results: dict[tuple, list[dict]] = {r[::2]: [] for r in rows}
    for rep in range(args.reps):
        for tree, src, config in rows:
            r = run(src, config, args.draws, args.tune)
            results[(tree, config)].append(r)
            print(f"rep {rep}: {tree:9s} {config:8s} wall {r['wall']:6.1f} s  NUTS "
                  f"{r['sampling']:6.1f} s  steps/draw {r['steps']:5.1f}  eval "
                  f"{r['eval_us']:7.0f} us  ATT {r['att']:.4f} (sd {r['sd']:.4f}) "
                  f"{r['sampler']} ok={r['ok']}", flush=True)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("wall", "sampling", "steps",
                                                               "eval_us")}
           for k, v in results.items()}
    base = med[("this tree", "default")]
    lines = [f"LCCP 278 x 19 AR(1), 4 chains x {args.draws} draws (+{args.tune} tune), nutpie; "
             f"medians of {args.reps} alternating rounds, one child process per fit", "",
             "| tree | config | wall s | NUTS s | steps/draw | eval us | wall / default "
             "(this tree) |", "|---|---|---:|---:|---:|---:|---:|"]
    for (tree, config), m in med.items():
        lines.append(f"| {tree} | {config} | {m['wall']:.1f} | {m['sampling']:.1f} | "
                     f"{m['steps']:.1f} | {m['eval_us']:.0f} | {m['wall'] / base['wall']:.2f} |")
    if args.baseline:
        b = med[("baseline", "default")]
        lines += ["", f"default fit, this tree / baseline: wall {base['wall'] / b['wall']:.2f}, "
                  f"NUTS {base['sampling'] / b['sampling']:.2f}"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text("# Per-unit precision scales: cost on the LCCP shape "
                            "(bench_unit_precision.py)\n\n" + text + "\n")


if __name__ == "__main__":
    main()
