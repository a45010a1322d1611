"""Screen simplex-weight priors and parametrisations for Bayesian SC (issue 13 item 3).

A cheap screen, not the acceptance benchmark (that is ``bayes_synth_sparse.py``, which
runs the package's ``BayesianSyntheticControl`` at its defaults). Here each variant is a
bare PyMC model of one treated unit on the simulated design of
:func:`bayesdid.datasets.simulate_synth.simulate_sparse_synth` (50 donors, 9 pre-periods,
3 true donors, outcome ~1e4, true donors at the edge of the hull):

* standardised by the treated unit's own pre-period mean and sd over time (donors alike);
* noise sd integrated out (``sigma^2 ~ InvGamma(noise_df/2, noise_df*noise_scale^2/2)``,
  the marginal likelihood of the package's model);
* chains started near the constrained least-squares weights (+5% of a random simplex
  point, or for the score models the LS weights on the support and -0.1 off it);
* weight priors (``--kind``, ``--param``):
  ``dirichlet`` (PyMC's Dirichlet and its default simplex transform, concentration
  ``param``), ``gamma`` (the same Dirichlet as normalised Gammas), ``dirichlet_logits``
  (the same Dirichlet as the exact density of softmax logits, N(0, 1) gauge on their
  logsumexp), ``logistic_normal``
  (``softmax(z)``, ``z ~ N(0, param)``), ``sparsemax`` (``sparsemax(z)``, the Euclidean
  projection onto the simplex, ``z ~ N(0, param)``: exact zeros, piecewise linear),
  ``entmax15`` (``(z - tau)_+^2`` summing to 1: exact zeros, smooth at the boundary);
* sampler (``--sampler``): PyMC NUTS with a diagonal (``adapt_diag``) or dense
  (``adapt_full``) mass matrix, or nutpie with its low-rank mass matrix.

Printed per seed: correlation of the posterior-mean weights with the truth, pre-period
RMSPE of the posterior-mean fit over the classical SC's (``bayesdid.synthetic.synth``,
default predictors) and the true weights' own ratio, max R-hat and min bulk ESS over the
noise-free ATT and every weight with posterior mean > 0.05 (arviz-stats), mean leapfrog
steps per draw, wall seconds. Results: benchmarks/results/bayes_synth_weight_screen.md.

    .venv/bin/python benchmarks/bayes_synth_weight_screen.py --kind sparsemax --param 1
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import arviz_stats as azs
import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import optimize

from bayesdid import Panel
from bayesdid.bayes.sampling import sample
from bayesdid.synthetic.synth import synth
from bayesdid.datasets.simulate_synth import simulate_sparse_synth
from bayesdid.synthetic.donors import donor_pool

KINDS = ("dirichlet", "gamma", "dirichlet_logits", "logistic_normal", "sparsemax", "entmax15")


def sparsemax(z):
    """Euclidean projection of the vector ``z`` onto the simplex (Martins & Astudillo 2016)."""
    zs = pt.sort(z)[::-1]
    cs = pt.cumsum(zs)
    k = pt.arange(1, z.shape[0] + 1)
    n = ((1 + k * zs) > cs).sum()
    return pt.maximum(z - (cs[n - 1] - 1) / n, 0)


def entmax15(z):
    """``(z - tau)_+^2`` with ``tau`` such that the weights sum to 1 (Peters et al. 2019)."""
    D = z.shape[0]
    zs = pt.sort(z)[::-1]
    k = pt.arange(1, D + 1).astype("float64")
    S, Q = pt.cumsum(zs), pt.cumsum(zs**2)
    disc = S**2 - k * (Q - 1.0)
    ok = disc >= 0
    tau_k = (S - pt.sqrt(pt.switch(ok, disc, 1.0))) / k
    n = (ok & (tau_k <= zs)).sum()
    tau = pt.switch(pt.eq(pt.arange(D), n - 1), tau_k, 0.0).sum()
    return pt.maximum(z - tau, 0.0) ** 2


def simplex_least_squares(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``argmin ||y - X w||`` over the simplex (NNLS with a heavily weighted sum row)."""
    big = 1e3 * (np.abs(X).max() + np.abs(y).max() + 1.0)
    w, _ = optimize.nnls(np.vstack([X, np.full(X.shape[1], big)]), np.append(y, big),
                         maxiter=50 * X.shape[1])
    return w / w.sum()


def build(X, y, kind: str, param: float, noise_scale: float, noise_df: float) -> pm.Model:
    n, D = X.shape
    a0, b0 = noise_df / 2, noise_df * noise_scale**2 / 2
    with pm.Model() as m:
        if kind == "dirichlet":
            w = pm.Dirichlet("w", a=np.full(D, param))
        elif kind == "gamma":
            g = pm.Gamma("g", alpha=param, beta=1.0, shape=D)
            w = pm.Deterministic("w", g / g.sum())
        elif kind == "dirichlet_logits":  # exact Dirichlet density of softmax(u), N(0, 1) gauge
            u = pm.Flat("u", shape=D)
            lse = pt.logsumexp(u)
            pm.Potential("w_prior", param * (u - lse).sum() - 0.5 * lse**2)
            w = pm.Deterministic("w", pt.special.softmax(u))
        else:
            z = pm.Normal("z", 0.0, param, shape=D)
            link = {"logistic_normal": pt.special.softmax, "sparsemax": sparsemax,
                    "entmax15": entmax15}[kind]
            w = pm.Deterministic("w", link(z))
        rss = ((y - pt.dot(X, w)) ** 2).sum()
        pm.Potential("marginal_loglik", -(a0 + n / 2) * pt.log(b0 + rss / 2))
    return m


def initvals(kind: str, w0: np.ndarray, chains: int, rng) -> list[dict]:
    out = []
    for _ in range(chains):
        w = 0.95 * w0 + 0.05 * rng.dirichlet(np.ones(len(w0)))
        if kind in ("sparsemax", "entmax15"):
            on = np.sqrt(w0) if kind == "entmax15" else w0
            z = np.where(w0 > 1e-6, on, -0.1) + 0.05 * rng.normal(size=len(w0)) * (w0 <= 1e-6)
            out.append({"z": z})
            continue
        out.append({"dirichlet": {"w": w}, "gamma": {"g": w},
                    "dirichlet_logits": {"u": np.log(w) - np.log(w).mean()},
                    "logistic_normal": {"z": np.log(w) - np.log(w).mean()}}[kind])
    return out


def run(seed: int, kind: str, param: float, sampler: str, chains: int, draws: int,
        tune: int, noise_scale: float, noise_df: float) -> dict:
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
    rng = np.random.default_rng(seed)
    ivs = initvals(kind, simplex_least_squares(X[pre], y[pre]), chains, rng)
    t0 = time.perf_counter()
    if sampler == "nutpie":
        import nutpie  # optional: only this screen uses it

        compiled = nutpie.compile_pymc_model(model, initial_points=ivs[0])
        idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains,
                              cores=min(chains, 2), seed=seed, progress_bar=False,
                              adaptation="low_rank", target_accept=0.9)
    else:
        idata = sample(model, draws=draws, tune=tune, chains=chains, cores=min(chains, 2),
                       random_seed=seed, progress=False, target_accept=0.9, initvals=ivs,
                       init=sampler)
    wall = time.perf_counter() - t0
    W = idata.posterior["w"].values  # (chain, draw, D)
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
    stats = idata.sample_stats
    return dict(seed=seed, corr=float(np.corrcoef(wm, truth)[0, 1]), ratio=rmspe / rm_cl,
                truth_ratio=rm_truth / rm_cl, rhat=rhat, ess=ess,
                div=int(stats["diverging"].sum()), steps=float(stats["n_steps"].mean()),
                wall=wall, att=float(att.mean()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=KINDS, default="sparsemax")
    parser.add_argument("--param", type=float, default=1.0)
    parser.add_argument("--sampler", choices=("adapt_diag", "adapt_full", "nutpie"),
                        default="adapt_diag")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 2, 6])
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--noise-scale", type=float, default=0.05)
    parser.add_argument("--noise-df", type=float, default=2.0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pymc").setLevel(logging.ERROR)
    for seed in args.seeds:
        r = run(seed, args.kind, args.param, args.sampler, args.chains, args.draws, args.tune,
                args.noise_scale, args.noise_df)
        print(f"| {args.kind} {args.param:g} | {args.sampler} | "
              + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values())
              + " |", flush=True)


if __name__ == "__main__":
    main()
