"""Sequential Monte Carlo on the sparse Bayesian-SC weight models (issue 13 item 3).

Same models, data and metrics as ``bayes_synth_weight_screen.py`` (imported from it), but
sampled with ``pm.sample_smc`` (PyMC's tempered SMC): each "chain" is an independent SMC
run of ``--draws`` particles, so R-hat / ESS across chains is a between-run check (an SMC
run's particles are not a Markov chain: within-run ESS is meaningless, between-run
R-hat is the check that runs find the same posterior). Kernels: ``IMH`` (independent
Gaussian proposal fitted to the population) and ``MH`` (random walk with the population
covariance). Prior from the model's free RVs (the sparse link's ``z ~ N(0, param)``), the
marginal likelihood potential is tempered. Results: benchmarks/results/bayes_synth_weight_screen.md.

    .venv/bin/python benchmarks/bayes_synth_smc.py --kind sparsemax --kernel MH --seeds 1
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import arviz_stats as azs
import numpy as np
import pymc as pm
import xarray as xr

sys.path.insert(0, str(Path(__file__).parent))
from bayes_synth_weight_screen import build  # noqa: E402

from bayesdid import Panel  # noqa: E402
from bayesdid.datasets.simulate_synth import simulate_sparse_synth  # noqa: E402
from bayesdid.synthetic.donors import donor_pool  # noqa: E402
from bayesdid.synthetic.synth import synth  # noqa: E402


def run(seed, kind, param, kernel, chains, draws, cores, noise_scale, noise_df, threshold,
        corr_threshold):
    sim = simulate_sparse_synth(random_seed=seed)
    panel = Panel.from_frame(sim.data, **sim.panel_kwargs)
    pool = donor_pool(panel)
    pre = pool.pre_periods(0)
    truth = sim.params["true_weights"].reindex(list(map(str, pool.donor_units))).to_numpy()
    rm_cl = float(synth(panel, placebo=False).pre_rmspe.iloc[0])
    Y0, y1 = pool.y_donors, pool.y_treated[:, 0]
    c, s = y1[pre].mean(), y1[pre].std()
    X, y = (Y0 - c) / s, (y1 - c) / s
    model = build(X[pre], y[pre], kind, param, noise_scale, noise_df)
    k = {"MH": pm.smc.kernels.MH, "IMH": pm.smc.kernels.IMH}[kernel]
    t0 = time.perf_counter()
    with model:
        idata = pm.sample_smc(draws=draws, kernel=k, chains=chains, cores=cores,
                              random_seed=seed, progressbar=False, threshold=threshold,
                              correlation_threshold=corr_threshold, compute_convergence_checks=False)
    wall = time.perf_counter() - t0
    W = idata.posterior["w"].values
    wm = W.reshape(-1, W.shape[-1]).mean(0)
    att = (y1[~pre][None, None, :] - np.einsum("td,cnd->cnt", Y0[~pre], W)).mean(-1)
    rmspe = np.sqrt(((y1[pre] - Y0[pre] @ wm) ** 2).mean())
    rm_truth = np.sqrt(((y1[pre] - Y0[pre] @ truth) ** 2).mean())
    big = wm > 0.05
    att_da = xr.DataArray(att, dims=("chain", "draw"))
    rhat, ess = float(azs.rhat(att_da)), float(azs.ess(att_da, method="bulk"))
    if big.any():
        w_da = xr.DataArray(W[:, :, big], dims=("chain", "draw", "donor"))
        rhat = max(rhat, float(azs.rhat(w_da).max()))
        ess = min(ess, float(azs.ess(w_da, method="bulk").min()))
    st = idata.sample_stats
    beta = np.asarray(st["beta"].values)  # (run, stage), or ragged (object) when the
    stages = "/".join(str(len(np.atleast_1d(b))) for b in beta) if beta.dtype == object \
        else str(beta.shape[-1])  # runs needed different numbers of tempering stages
    # per-run posterior mean ATT and top donors: do the runs agree?
    runs = "; ".join(
        f"{att[c].mean():.0f}:" + ",".join(str(i) for i in np.argsort(-W[c].mean(0))[:3])
        for c in range(W.shape[0]))
    return dict(seed=seed, corr=float(np.corrcoef(wm, truth)[0, 1]), ratio=rmspe / rm_cl,
                truth_ratio=rm_truth / rm_cl, rhat=rhat, ess=ess, stages=stages,
                wall=wall, att=float(att.mean()), runs=runs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", default="sparsemax")
    p.add_argument("--param", type=float, default=1.0)
    p.add_argument("--kernel", choices=("MH", "IMH"), default="MH")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 6])
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=2000)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--corr-threshold", type=float, default=0.01)
    p.add_argument("--noise-scale", type=float, default=0.05)
    p.add_argument("--noise-df", type=float, default=2.0)
    a = p.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pymc").setLevel(logging.ERROR)
    for seed in a.seeds:
        r = run(seed, a.kind, a.param, a.kernel, a.chains, a.draws, a.cores, a.noise_scale,
                a.noise_df, a.threshold, a.corr_threshold)
        print(f"| {a.kind} {a.param:g} | SMC {a.kernel} {a.draws}p thr {a.threshold} | "
              + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values())
              + " |", flush=True)


if __name__ == "__main__":
    main()
