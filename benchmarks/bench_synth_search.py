"""Reliability and speed of synthetic control's V search on simulated multimodal problems.

Design (one problem per seed; :func:`simulate_problem`):

* 50 donors + 1 treated unit, 12 years (2001-2012), treated from 2010: 9 pre-periods;
* outcome in the tens of thousands from a 3-factor model:
  ``y_it = 30000 + 10000 * lambda_i' f_t / 3 + e_it``, loadings ``lambda_i ~ U(0, 1)^3``
  (treated unit: ``U(0.6, 1.05)^3``, near or beyond the edge of the donor cloud, so the fit
  is imperfect and predictors trade off), factors random walks (sd 0.4) plus noise (sd 0.2),
  ``e_it ~ N(0, 300^2)``, an effect of +2000 after 2009;
* 7 predictors: the 2001-2009 outcome mean (the dominant one), four covariates that are
  noisy linear functions of the loadings (``lambda_i' a_c + N(0, 0.5^2)``, ``a_c ~ N(0, I)``)
  and two pure-noise covariates, all time-invariant.

The loss (pre-period outcome MSPE as a function of V) has many local optima: a plain
Nelder-Mead start lands within 1% of the best optimum on a few percent of starts (column
"starts agreeing" below).

Reference: a **500-start search** -- 500 seeded uniform starts in the same box
(``log V`` in ``[log 1e-8, 0]^7``), each a bounded Nelder-Mead run (adaptive, up to 1500
evaluations) -- independent of the default's own machinery. "Best known" is the lowest MSPE
any method found for that seed.

Compared: the former default (Nelder-Mead from equal weights + 2 random starts, softmax
scale, at most ``min(150 K, 1000)`` evaluations each; its NNLS inner solver) and the new
search with ``n_starts`` = 1, 3, 5, 10 (default), 20, and the default with another
random seed. Times are per fit (one treated unit, no
placebos) and, for Prop 99, SC + 38 placebo refits, as ratios to one default-predictor SC
fit in the same run.

    .venv/bin/python benchmarks/bench_synth_search.py [--seeds 40] [--ref-starts 500]
        [--write-reference]   # also refresh tests/reference/synth_search/reference.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize

from bayesdid import Panel
from bayesdid.classical import synth_search as ss
from bayesdid.synthetic.synth import synth
from bayesdid.datasets import info, load

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "synth_search.md"
REF_JSON = ROOT / "tests" / "reference" / "synth_search" / "reference.json"
CACHE = ROOT / "benchmarks" / "results" / "synth_search_reference.json"
PREDICTORS = {"outcome_means": [(2001, 2009)],
              "covariates": {f"c{i}": None for i in range(1, 7)}}


def simulate_problem(seed: int) -> Panel:
    """One multimodal synthetic-control problem (the design in the module docstring)."""
    rng = np.random.default_rng(seed)
    J, T, T0, F = 50, 12, 9, 3
    n = J + 1
    lam = rng.uniform(0, 1, (n, F))
    lam[0] = rng.uniform(0.6, 1.05, F)
    f = np.cumsum(rng.normal(0, 0.4, (T, F)), axis=0) + rng.normal(0, 0.2, (T, F))
    y = 3e4 + 1e4 * (lam @ f.T).T / F + rng.normal(0, 300, (T, n))
    d = np.zeros((T, n), int)
    d[T0:, 0] = 1
    y = y + 2000 * d
    covs = [lam @ rng.normal(0, 1, F) + rng.normal(0, 0.5, n) for _ in range(4)]
    covs += [rng.normal(0, 1, n) for _ in range(2)]
    units = [f"u{i:02d}" for i in range(n)]
    frame = pd.DataFrame({"unit": np.repeat(units, T), "year": np.tile(np.arange(2001, 2013), n),
                          "y": y.T.ravel(), "d": d.T.ravel()})
    for i, c in enumerate(covs, 1):
        frame[f"c{i}"] = np.repeat(c, T)
    return Panel.from_frame(frame, unit="unit", time="year", outcome="y", treat="d",
                            covariates=[f"c{i}" for i in range(1, 7)])


def problem_arrays(panel: Panel):
    """Standardised predictors and pre-period outcomes exactly as :func:`synth` builds them."""
    res = synth(panel, v="equal", placebo=False, progress=False, **PREDICTORS)
    wide = panel.frame.pivot(index="year", columns="unit", values="y")
    units = ["u00"] + list(res.weights.index)
    P = np.vstack([wide.loc[2001:2009, units].mean().to_numpy()]
                  + [panel.frame.groupby("unit")[f"c{i}"].first()[units].to_numpy()
                     for i in range(1, 7)])
    sd = P.std(axis=1, ddof=1)
    X = P / sd[:, None]
    Z = wide.loc[2001:2009, units].to_numpy()
    return X[:, 0], X[:, 1:], Z[:, 0], Z[:, 1:]


def multistart(X1, X0, z1, Z0, n: int, seed: int) -> tuple[float, np.ndarray]:
    """The reference: ``n`` uniform starts in the box, each a bounded Nelder-Mead run."""
    prob = ss._Problem(X1, X0, z1, Z0)
    K = len(X1)
    rng = np.random.default_rng(10_000 + seed)
    ends = [optimize.minimize(prob.loss, th, method="Nelder-Mead",
                              bounds=[(ss._LOWER, 0.0)] * K,
                              options={"maxfev": 1500, "xatol": 1e-4, "fatol": 1e-10,
                                       "adaptive": True}).fun
            for th in rng.uniform(ss._LOWER, 0.0, (n, K))]
    return float(min(ends)), np.asarray(ends)


def former_default(X1, X0, z1, Z0, seed: int) -> tuple[float, float]:
    """The search synth() used before: 3 Nelder-Mead starts on softmax(V), NNLS inner.

    Returns its MSPE as it reported it (with its own NNLS weights) and the MSPE of the
    exact inner solution at the same V (they differ when V has weights so far apart that
    the inner problem is degenerate and W is decided by round-off)."""
    K = len(X1)

    def weights(theta):
        v = np.exp(theta - theta.max())
        sv = np.sqrt(v / v.sum())
        return ss._nnls_weights(X0 * sv[:, None], X1 * sv), v / v.sum()

    def loss(theta):
        return float(np.mean((z1 - Z0 @ weights(theta)[0]) ** 2))

    rng = np.random.default_rng(seed)
    starts = [np.zeros(K)] + [rng.normal(0, 2, K) for _ in range(2)]
    best = min((optimize.minimize(loss, th, method="Nelder-Mead",
                                  options={"maxfev": min(150 * K, 1000), "xatol": 1e-3,
                                           "fatol": 1e-9, "adaptive": K > 4})
                for th in starts), key=lambda r: r.fun)
    exact = ss.simplex_weights(X0, X1, weights(best.x)[1])
    return float(best.fun), float(np.mean((z1 - Z0 @ exact) ** 2))


def prop99_problems(prop99: Panel):
    """Prop 99's V-search problems (4 predictors): California and its 38 placebo refits."""
    from bayesdid.synthetic.synth import _predictor_matrix, _Spec
    from bayesdid.synthetic.donors import donor_pool

    pool = donor_pool(prop99)
    Y = np.column_stack([pool.y_treated, pool.y_donors])
    pre = pool.pre_periods(0)
    spec = _Spec(lags=(1975, 1980, 1988), means=((1980, 1988),), covariates=(), v="optimize",
                 n_starts=10, mspe_periods=None)
    P, _ = _predictor_matrix(spec, pool.times, Y, pre, {})
    out = []
    for j in range(Y.shape[1]):
        donors = [d for d in range(1, Y.shape[1]) if d != j]
        P1, P0 = P[:, j], P[:, donors]
        sd = np.concatenate([P1[:, None], P0], axis=1).std(axis=1, ddof=1)
        out.append((P1 / sd, P0 / sd[:, None], Y[pre, j], Y[pre][:, donors]))
    return out


def best_of(fn, reps: int = 3) -> float:
    return min(timed(fn)[1] for _ in range(reps))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def reference(cache: dict, key: str, args, X1, X0, z1, Z0, seed) -> dict:
    if key not in cache:
        (best, ends), secs = timed(lambda: multistart(X1, X0, z1, Z0, args.ref_starts, seed))
        cache[key] = {"best": best, "agree": int(np.sum(ends <= 1.01 * best)), "seconds": secs}
        CACHE.write_text(json.dumps(all_cache, indent=1))
    return cache[key]


all_cache: dict = {}


def share(x, cut=1.01) -> str:
    return f"{np.mean(np.asarray(x) <= cut):.0%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--ref-starts", type=int, default=500)
    parser.add_argument("--write-reference", action="store_true")
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    all_cache.update(json.loads(CACHE.read_text()) if CACHE.exists() else {})
    sim_cache = all_cache.setdefault(str(args.ref_starts), {})
    p99_cache = all_cache.setdefault(f"prop99/{args.ref_starts}", {})
    prop99 = Panel.from_frame(load("prop99"), **info("prop99")["panel_kwargs"])
    synth(prop99, placebo=False, progress=False)  # compile / load the numba kernels
    base = best_of(lambda: synth(prop99, placebo=False, progress=False))

    # ---- simulated multimodal problems
    new = [(f"n_starts={k}" + (" (default)" if k == 10 else ""), k) for k in (1, 3, 5, 10, 20)]
    rows = {name: [] for name, _ in new + [("default, random_seed + 100", 10)]}
    former, agree_share, ref_rows, agreed = [], [], [], []
    for seed in seeds:
        panel = simulate_problem(seed)
        X1, X0, z1, Z0 = problem_arrays(panel)
        ref = reference(sim_cache, str(seed), args, X1, X0, z1, Z0, seed)
        agree_share.append(ref["agree"] / args.ref_starts)
        (f_old, f_old_exact), t_old = timed(lambda: former_default(X1, X0, z1, Z0, seed))
        found = {}
        for name, k in new:
            res, secs = timed(lambda: synth(panel, n_starts=k, placebo=False, progress=False,
                                            random_seed=seed, **PREDICTORS))
            found[name] = (float(res.pre_rmspe.iloc[0] ** 2), secs)
            if k == 10:
                facts = res.info["v_search_details"][0]
                agreed.append("exact fit" if facts["exact_fit"]
                              else f"{facts['n_agreed']}/{facts['n_starts']}")
        res, secs = timed(lambda: synth(panel, placebo=False, progress=False,
                                        random_seed=seed + 100, **PREDICTORS))
        found["default, random_seed + 100"] = (float(res.pre_rmspe.iloc[0] ** 2), secs)
        known = min([ref["best"]] + [f for f, _ in found.values()])
        for name, (f, secs) in found.items():
            rows[name].append((f / ref["best"], f / known, secs))
        former.append((f_old / ref["best"], f_old / known, t_old, f_old_exact / ref["best"]))
        ref_rows.append({"seed": seed, "reference_mspe": ref["best"]})
        print(f"seed {seed}: former {f_old / ref['best']:.3f} (exact W at its V: "
              f"{f_old_exact / ref['best']:.3f}), " + ", ".join(
                  f"{n.split(' ')[0]} {f / ref['best']:.3f}" for n, (f, _) in found.items()),
              flush=True)

    head = ["| search | seeds | within 1% of 500-start | within 1% of best known | "
            "median ratio | worst ratio | s per fit |", "|---|---:|---:|---:|---:|---:|---:|"]
    old = np.array(former)
    lines = head + [f"| former default: 3 Nelder-Mead starts, as it reported | {len(old)} "
                    f"| {share(old[:, 0])} | {share(old[:, 1])} | {np.median(old[:, 0]):.3f} "
                    f"| {old[:, 0].max():.3f} | {old[:, 2].mean():.3f} |"]
    for name in rows:
        r = np.array(rows[name])
        lines.append(f"| {name} | {len(r)} | {share(r[:, 0])} | {share(r[:, 1])} "
                     f"| {np.median(r[:, 0]):.3f} | {r[:, 0].max():.3f} | {r[:, 2].mean():.3f} |")
    ref_secs = np.mean([sim_cache[str(s)]["seconds"] for s in seeds])
    lines.append(f"| reference: {args.ref_starts} Nelder-Mead starts | {len(seeds)} | 100% | "
                 f"{share([r[1] / r[0] for r in rows['n_starts=10 (default)']])} | 1.000 "
                 f"| 1.000 | {ref_secs:.1f} |")
    artefacts = [(s, o[0], o[3]) for s, o in zip(seeds, former) if o[0] < 0.99]

    # ---- Prop 99: California and its 38 placebo problems (real data, 4 predictors)
    p_rows = []
    for j, (X1, X0, z1, Z0) in enumerate(prop99_problems(prop99)):
        ref = reference(p99_cache, str(j), args, X1, X0, z1, Z0, j)
        found, secs = timed(lambda: ss.search_v(X1, X0, z1, Z0, random_seed=j))
        (f_old, _), t_old = timed(lambda: former_default(X1, X0, z1, Z0, j))
        p_rows.append((found.loss / ref["best"], secs, f_old / ref["best"], t_old,
                       ref["agree"] / args.ref_starts))
    pr = np.array(p_rows)
    p_lines = head + [
        f"| former default | {len(pr)} | {share(pr[:, 2])} | - | {np.median(pr[:, 2]):.3f} "
        f"| {pr[:, 2].max():.3f} | {pr[:, 3].mean():.3f} |",
        f"| n_starts=10 (default) | {len(pr)} | {share(pr[:, 0])} | - "
        f"| {np.median(pr[:, 0]):.3f} | {pr[:, 0].max():.3f} | {pr[:, 1].mean():.3f} |"]

    # ---- timings on Prop 99 (best of 3) and the simulated design
    problems = prop99_problems(prop99)
    vkw = {"lags": [1975, 1980, 1988], "outcome_means": [(1980, 1988)], "progress": False}
    t_rows = [("SC, one fit, default predictors (baseline)", base)]
    t_rows.append(("SC + 38 placebos, default predictors",
                   best_of(lambda: synth(prop99, progress=False))))
    t_rows.append(("SC, one fit, V search (4 predictors)",
                   best_of(lambda: synth(prop99, placebo=False, **vkw))))
    t_new = best_of(lambda: synth(prop99, **vkw))
    t_rows.append(("SC + 38 placebos, V search (4 predictors)", t_new))
    t_old = best_of(lambda: [former_default(*a, j) for j, a in enumerate(problems)])
    t_rows.append(("former V search on the same 39 problems (its NNLS inner solver)", t_old))
    sim = simulate_problem(0)
    t_rows.append(("simulated design (seed 0), SC + 50 placebos, V search (7 predictors)",
                   best_of(lambda: synth(sim, progress=False, **PREDICTORS), 1)))
    timing = ["| task | seconds | x baseline |", "|---|---:|---:|"]
    timing += [f"| {n} | {s:.3f} | {s / base:.1f} |" for n, s in t_rows]
    res = synth(prop99, **vkw)
    exact = sum(ss.search_v(*a, random_seed=j).exact_fit for j, a in enumerate(problems))

    art = "; ".join(f"seed {s}: {a:.3f} as reported, {e:.3f} with the exact W" for s, a, e
                    in artefacts) or "none"
    text = (
        "# synth_search: V search reliability\n\n"
        "`benchmarks/bench_synth_search.py`. Ratio = the method's pre-period outcome MSPE / "
        f"the best of a {args.ref_starts}-start search (uniform starts in log V in "
        "[log 1e-8, 0]^K, each a bounded Nelder-Mead run). Best known = the lowest MSPE of "
        "the reference and the new search's runs (same V space).\n\n"
        f"## Simulated multimodal problems ({len(seeds)} seeds)\n\n"
        "50 donors, 7 predictors (pre-period outcome mean, dominant; four noisy covariates; "
        "two noise covariates), 9 pre-periods, outcome ~3e4 from a 3-factor model (design in "
        "the script's docstring). Starts of the reference search ending within 1% of its "
        f"best: median {np.median(agree_share):.1%} of {args.ref_starts} (range "
        f"{min(agree_share):.1%}-{max(agree_share):.1%}) -- few starts agree: the loss is "
        "strongly multimodal. Local searches of the default ending within 1% of its best "
        f"(n_agreed/n_starts), by seed: {', '.join(agreed)}.\n\n" + "\n".join(lines) + "\n\n"
        "The former default sometimes reports an MSPE below the reference only through "
        "round-off: its V had weights ~1e-20 to 1e-36 of the largest, where the inner "
        "problem is degenerate and its NNLS weights are not the inner minimiser (the exact "
        f"minimiser at the same V fits far worse): {art}.\n\n"
        "## Prop 99, 4 predictors (y1975, y1980, y1988, mean 1980-88): California and its 38 "
        "placebo problems\n\n"
        f"Reference starts agreeing: median {np.median(pr[:, 4]):.1%}. {exact} of the 39 "
        "treated units (California among them) lie inside their donors' hull in these 4 "
        "predictors: every V fits them exactly, and the search returns the exact fit with the "
        "best pre-period MSPE (no search; at most the reference's MSPE). V-search SC for "
        f"California: ATT {res.effect()['estimate']:.2f}, placebo p = "
        f"{res.p_value['California']:.3f}.\n\n"
        + "\n".join(p_lines) + "\n\n"
        "## Timings (same run, best of 3; the simulated-design row: 1 run)\n\n"
        "Baseline = one SC fit on Prop 99 with the default predictors. It now runs on the "
        "Wolfe inner solver, faster than in `bench_synth.md` (0.053 s there), so ratios to "
        "it are not comparable with that file's (the former V search: 13.7 s = 259x there, "
        "under heavier load); compare the two V-search rows of this run instead. Measured "
        "on a shared 2-core machine under load: ratios travel, absolute seconds do not.\n\n"
        + "\n".join(timing) + "\n")
    print(text)
    OUT.write_text(text)
    if args.write_reference:
        REF_JSON.parent.mkdir(parents=True, exist_ok=True)
        REF_JSON.write_text(json.dumps({
            "source": f"benchmarks/bench_synth_search.py: best pre-period MSPE of a "
                      f"{args.ref_starts}-start bounded Nelder-Mead search per seed "
                      "(simulate_problem(seed), predictors PREDICTORS)",
            "ref_starts": args.ref_starts,
            "mspe": {str(r["seed"]): r["reference_mspe"] for r in ref_rows}}, indent=1) + "\n")


if __name__ == "__main__":
    main()
