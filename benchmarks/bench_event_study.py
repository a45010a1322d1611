"""The LCCP-shaped Bayesian event study (``HierarchicalDiD(leads=6)``, 278 x 19, AR(1)):
dense vs block-arrow marginal likelihood, same process, same data.

The block-arrow layout (``did/block_marginal.py``) factors the cells' diagonal blocks and a
small dense head instead of the full p x p precision; the dense layout is kept switchable
(``compile_did_nutpie(block=False)``, ``draw_phi_nb``) as the like-for-like baseline.
Printed, for the default 96-cell design and the leads=6 event study:

* p (coefficients integrated out), the layout (head size, cell groups), and the cost of
  one log-density + gradient call of nutpie's callback (single-threaded BLAS, as in NUTS);
* nutpie NUTS (4 chains x draws after tune) on each layout: seconds, leapfrog steps per
  draw (warm-up and sampling), step size, divergences;
* the exact conditional draws of phi for every posterior draw (post-processing) on each
  layout;
* the full default ``fit`` (new path): wall, NUTS, after NUTS, bulk ESS of the ATT.

With ``--group-time`` it runs instead the section on pooled group x period effects
(``random_effects="region^year"``, 76 more integrated-out coefficients): per logp+grad call
on the dense kernel, the block layout by the former rule (all pooled columns, groups above
48 columns into the head) and the one ``block_layout`` now chooses by its cost model, with
and without the term and with leads=0 / 6; then full default fits (4 chains) without and
with the term, alternating, in the same process: wall, process CPU, NUTS, after NUTS,
leapfrog steps per draw, bulk ESS of the ATT and the with/without ratio.

Machines are noisy (``uptime`` is printed): the dense/block ratios are what travel.

    .venv/bin/python benchmarks/bench_event_study.py [--draws 1000 --tune 1000] [--repeat 1]
    .venv/bin/python benchmarks/bench_event_study.py --group-time [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import time
import warnings

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from threadpoolctl import threadpool_limits

from bayesdid import Panel
from bayesdid.bayes.nutpie_compiled import sample_compiled
from bayesdid.datasets import simulate_staggered
from bayesdid.did.block_marginal import (
    block_layout,
    block_loglik_grad_nb,
    draw_phi_block,
    layout_arrays,
    layout_from_groups,
)
from bayesdid.did.hierarchical import HierarchicalDiD
from bayesdid.did.hierarchical_model import prior_precision_draws, unit_precision
from bayesdid.did.marginal_likelihood_numba import draw_phi_nb
from bayesdid.did.nutpie_density import compile_did_nutpie, did_logp_grad, pack_user_data


def per_gradient_us(design, priors, block: bool, n: int = 2000) -> float:
    buf = pack_user_data(design, priors, True, block=block)
    x = np.r_[np.log(0.35), 1.1, np.full(len(design.random_blocks), np.log(0.04))]
    did_logp_grad(x, buf)
    with threadpool_limits(1):
        t0 = time.perf_counter()
        for _ in range(n):
            did_logp_grad(x, buf)
    return (time.perf_counter() - t0) / n * 1e6


def kernel_us(design, priors, layouts, n: int = 300, repeats: int = 5) -> list[float]:
    """Best of ``repeats`` timings of one block-kernel call on each of ``layouts``,
    alternating between them (so load changes hit both alike)."""
    st = design.stats
    lam = prior_precision_draws(design, priors, {b.name: np.array([0.04])
                                                 for b in design.random_blocks})[0]
    rest = (st["run_lengths"], st["units_per_length"], design.n_obs, unit_precision(design),
            0.35, 0.6, lam)
    arrays = [layout_arrays(lay) for lay in layouts]
    best = [np.inf] * len(layouts)
    with threadpool_limits(1):
        for _ in range(repeats):
            for i, arr in enumerate(arrays):
                block_loglik_grad_nb(*arr, *rest)
                t0 = time.perf_counter()
                for _ in range(n):
                    block_loglik_grad_nb(*arr, *rest)
                best[i] = min(best[i], (time.perf_counter() - t0) / n * 1e6)
    return best


def former_layout(design):
    """The layout of the rule before the cost model: every pooled column a tail candidate,
    connected groups above 48 columns into the head."""
    p = design.n_phi
    pattern = np.any(design.stats["basis"].reshape(-1, p + 1, p + 1) != 0.0, axis=0)
    cand = np.concatenate([np.arange(p)[b.slice] for b in design.random_blocks])
    _, labels = connected_components(csr_matrix(pattern[np.ix_(cand, cand)]),
                                     directed=False)
    keep = np.bincount(labels)[labels] <= 48
    return layout_from_groups(design, cand[keep], labels[keep])


def group_time(panel, draws: int, tune: int, repeat: int) -> None:
    print("\n## Pooled region x year effects (random_effects='region^year')\n")
    print("| design | p | layout (head + groups) | us per call: dense | former block rule "
          "| cost-model block | dense / new |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for leads in (0, 6):
        for re_ in (None, "region^year"):
            model_ = HierarchicalDiD(leads=leads, random_effects=re_)
            design = model_.prepare(panel)
            lay, old = block_layout(design), former_layout(design)
            dense = per_gradient_us(design, model_.priors, False, 500)
            t_old, t_new = kernel_us(design, model_.priors, [old, lay])
            sizes = sorted(set(np.diff(lay.starts).tolist()))
            print(f"| leads={leads}{', region^year' if re_ else ''} | {design.n_phi} | "
                  f"{len(lay.head)} + {len(lay.starts) - 1} groups of {sizes} "
                  f"(former: head {len(old.head)}) | {dense:.0f} | {t_old:.0f} | {t_new:.0f} "
                  f"| {dense / t_new:.2f}x |", flush=True)
    print(f"\nfull fits, 4 chains x {draws} draws after {tune} tuning, alternating")
    print("| random_effects | wall s | CPU s | NUTS s | after NUTS s | steps/draw | "
          "ESS(ATT) | ATT |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    walls = {None: [], "region^year": []}
    cpus = {None: [], "region^year": []}
    for _ in range(repeat):
        for re_ in (None, "region^year"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0, c0 = time.perf_counter(), time.process_time()
                res = HierarchicalDiD(random_effects=re_).fit(
                    panel, draws=draws, tune=tune, chains=4, random_seed=1, progress=False)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            attrs = res.idata.posterior.attrs
            ess = float(res.diagnostics(warn=False).set_index("parameter")
                        .loc["att|overall", "ess_bulk"])
            walls[re_].append(wall)
            cpus[re_].append(cpu)
            print(f"| {re_} | {wall:.2f} | {cpu:.2f} | {attrs['sampling_time']:.2f} | "
                  f"{wall - attrs['sample_call_time']:.2f} | "
                  f"{float(res.idata.sample_stats['n_steps'].mean()):.2f} | {ess:.0f} | "
                  f"{res.effect()['estimate']:.4f} |", flush=True)
    ratio = lambda d: float(np.median(d["region^year"]) / np.median(d[None]))
    print(f"ratio with / without region^year (medians): wall {ratio(walls):.2f}x, "
          f"CPU {ratio(cpus):.2f}x")


def nuts(model_, design, draws: int, tune: int, block: bool) -> dict:
    model = model_._build(design)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = sample_compiled(
            model, lambda: compile_did_nutpie(model, design, model_.priors, "ar1", block=block),
            draws=draws, tune=tune, chains=4, cores=4, random_seed=1, progress=False,
            target_accept=0.9)
    ss, warm = idata.sample_stats, idata.warmup_sample_stats
    return {"nuts": float(idata.posterior.attrs["sampling_time"]),
            "steps_draw": float(ss["n_steps"].mean()),
            "steps_warm": float(warm["n_steps"].mean()),
            "gradients": int(ss["n_steps"].sum() + warm["n_steps"].sum()),
            "step_size": float(ss["step_size"].mean()),
            "divergences": int(ss["diverging"].sum()), "idata": idata}


def conditional_draws(model_, design, idata, block: bool) -> float:
    flat = idata.posterior.to_dataset().stack(sample=("chain", "draw"))
    sigma, rho = flat["sigma"].values, flat["rho"].values
    lam = prior_precision_draws(design, model_.priors, {b.name: flat[f"sd_{b.name}"].values
                                                        for b in design.random_blocks})
    t0 = time.perf_counter()
    if block:
        draw_phi_block(design, sigma, rho, unit_precision(design), lam,
                       np.random.default_rng(0))
    else:
        with threadpool_limits(1):
            draw_phi_nb(design.stats, sigma, rho, unit_precision(design), lam,
                        np.random.default_rng(0))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1, help="dense/block NUTS pairs")
    parser.add_argument("--group-time", action="store_true",
                        help="only the section on random_effects='region^year'")
    args = parser.parse_args()
    logging.getLogger("pymc").setLevel(logging.WARNING)
    uptime = lambda: subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print("uptime at start:", uptime(), flush=True)
    sim = simulate_staggered(random_seed=0)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    HierarchicalDiD(leads=6).fit(panel, draws=20, tune=20, chains=1, progress=False)  # caches
    if args.group_time:
        HierarchicalDiD(random_effects="region^year").fit(panel, draws=20, tune=20, chains=1,
                                                          progress=False)
        group_time(panel, args.draws, args.tune, args.repeat)
        print("uptime at end:", uptime())
        return

    print("| design | p | head + groups | us per logp+grad: dense | block | ratio |")
    print("|---|---:|---|---:|---:|---:|")
    for name, model_ in [("default (leads=0)", HierarchicalDiD()),
                         ("event study leads=6", HierarchicalDiD(leads=6))]:
        design = model_.prepare(panel)
        lay = block_layout(design)
        dense, block = per_gradient_us(design, model_.priors, False), \
            per_gradient_us(design, model_.priors, True)
        print(f"| {name} | {design.n_phi} | {len(lay.head)} + {np.diff(lay.starts).tolist()} "
              f"| {dense:.0f} | {block:.0f} | {dense / block:.2f}x |", flush=True)

    model_ = HierarchicalDiD(leads=6)
    design = model_.prepare(panel)
    print(f"\nleads=6, 4 chains x {args.draws} draws after {args.tune} tuning steps")
    print("| layout | NUTS s | steps/draw (warm-up) | gradients | step size | divergences "
          "| conditional draws s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = {True: [], False: []}
    for _ in range(args.repeat):
        for block in (False, True):
            r = nuts(model_, design, args.draws, args.tune, block)
            r["draws_s"] = conditional_draws(model_, design, r.pop("idata"), block)
            rows[block].append(r)
            print(f"| {'block' if block else 'dense'} | {r['nuts']:.2f} | "
                  f"{r['steps_draw']:.2f} ({r['steps_warm']:.2f}) | {r['gradients']} | "
                  f"{r['step_size']:.3f} | {r['divergences']} | {r['draws_s']:.2f} |",
                  flush=True)
    med = lambda block, k: float(np.median([r[k] for r in rows[block]]))
    print(f"ratio NUTS dense / block: {med(False, 'nuts') / med(True, 'nuts'):.2f}x; "
          f"conditional draws dense / block: "
          f"{med(False, 'draws_s') / med(True, 'draws_s'):.2f}x")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        res = model_.fit(panel, draws=args.draws, tune=args.tune, chains=4, random_seed=1,
                         progress=False)
        wall = time.perf_counter() - t0
    attrs = res.idata.posterior.attrs
    ess = float(res.diagnostics(warn=False).set_index("parameter")
                .loc["att|overall", "ess_bulk"])
    print(f"\nfull fit HierarchicalDiD(leads=6) (block path): wall {wall:.2f} s, NUTS "
          f"{attrs['sampling_time']:.2f} s, after NUTS {wall - attrs['sample_call_time']:.2f} s, "
          f"ESS(ATT) {ess:.0f}, ATT {res.effect()['estimate']:.4f}")
    print("uptime at end:", uptime())


if __name__ == "__main__":
    main()
