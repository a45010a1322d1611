"""Prop 99 with BayesianSyntheticControl's two noise models, at the fit defaults.

``noise="ar1"`` (the default since issue 14 item 4) against ``noise="iid"`` (the model
before it), both on the compiled nutpie path, 4 chains x 1000 draws after 1000 tuning, in
the same process (same seeds): ATT (posterior mean and 95% equal-tailed and HDI intervals),
the AR(1) coefficient's posterior, wall seconds of the fit (compile, sampling and
post-processing; the first fit of each model is a warm-up of numba's disk cache), and the
convergence check the fit ran (worst R-hat, smallest bulk/tail ESS, divergences).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_bayes_synth_noise.py [--seeds 1 2]

Writes benchmarks/results/bench_bayes_synth_noise.md.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import numpy as np

from bayesdid import Panel
from bayesdid.datasets import info, load
from bayesdid.synthetic.bayes_synth import BayesianSyntheticControl

RESULTS = Path(__file__).parent / "results" / "bench_bayes_synth_noise.md"


def one_fit(panel: Panel, noise: str, seed: int) -> dict:
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        res = BayesianSyntheticControl(noise=noise).fit(panel, random_seed=seed,
                                                        progress=False)
    wall = time.perf_counter() - t0
    att = res.effects(interval="eti").set_index(["estimand", "group"]).loc[("att", "overall")]
    hdi = res.effect("att", "overall")  # the default interval: HDI
    diag = res.diagnostics(warn=False)
    rho = (res.idata.posterior["noise_rho"].values.ravel() if noise == "ar1"
           else np.zeros(1))
    return dict(noise=noise, seed=seed, wall=wall, att=att["estimate"], lower=att["lower"],
                upper=att["upper"], hdi_lower=hdi["lower"], hdi_upper=hdi["upper"],
                rho=float(rho.mean()), rho_lo=float(np.quantile(rho, 0.025)),
                rho_hi=float(np.quantile(rho, 0.975)),
                r_hat=float(diag["r_hat"].max()), ess_bulk=float(diag["ess_bulk"].min()),
                ess_tail=float(diag["ess_tail"].min()),
                divergences=int(res.idata.sample_stats["diverging"].sum()),
                warned=any("converge" in str(w.message).lower() or "r-hat" in
                           str(w.message).lower() for w in seen),
                sampler=res.info["sampler"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.getLogger("pymc").setLevel(logging.ERROR)
    panel = Panel.from_frame(load("prop99"), **info("prop99")["panel_kwargs"])
    for noise in ("ar1", "iid"):  # warm numba's disk cache (not timed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            BayesianSyntheticControl(noise=noise).fit(panel, draws=50, tune=50, chains=1,
                                                      progress=False, random_seed=0)
    rows = [one_fit(panel, noise, seed) for seed in args.seeds for noise in ("ar1", "iid")]
    lines = ["Prop 99 (California, 38 donors, 1970-1988 pre, 1989-2000 post): "
             "BayesianSyntheticControl(noise=...) at the fit defaults (4 chains x 1000 draws "
             "after 1000 tuning), sampler " + rows[0]["sampler"] + ".", "",
             "| noise | seed | ATT | 95% ETI | 95% HDI | noise_rho (95%) | wall s | max R-hat "
             "| min bulk ESS | min tail ESS | divergences | convergence warning |",
             "|---|---:|---:|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        rho = (f"{r['rho']:.2f} ({r['rho_lo']:.2f}, {r['rho_hi']:.2f})"
               if r["noise"] == "ar1" else "0 (fixed)")
        lines.append(
            f"| {r['noise']} | {r['seed']} | {r['att']:.2f} | ({r['lower']:.2f}, "
            f"{r['upper']:.2f}) | ({r['hdi_lower']:.2f}, {r['hdi_upper']:.2f}) | {rho} | "
            f"{r['wall']:.1f} | {r['r_hat']:.3f} | {r['ess_bulk']:.0f} | {r['ess_tail']:.0f} "
            f"| {r['divergences']} | {'yes' if r['warned'] else 'no'} |")
    walls = {n: np.mean([r["wall"] for r in rows if r["noise"] == n]) for n in ("ar1", "iid")}
    lines += ["", f"mean wall per fit: ar1 {walls['ar1']:.1f} s, iid {walls['iid']:.1f} s "
              f"(ratio {walls['ar1'] / walls['iid']:.2f}; shared machine, only the ratio "
              "travels)"]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
