"""Independent maximum-likelihood fits of the Christensen-Greene (1976) cost frontier.

Run from the repository root to (re)write ``expected.json``::

    .venv/bin/python tests/reference/sfa/generate.py

Independent of ``bayesdid.efficiency.sfa``: the composed-error densities are scipy's own
distributions, in another parametrisation, maximised by another optimiser:

- normal + half-normal cost error ``v + u`` is a skew normal: ``skewnorm(a=lambda,
  loc=0, scale=sigma)``, with ``sigma^2 = sigma_u^2 + sigma_v^2``, ``lambda = su / sv``;
- normal + exponential cost error is an exponentially modified normal:
  ``exponnorm(K=sigma_u / sigma_v, loc=0, scale=sigma_v)``.

Parameters: (beta, log sigma, log lambda) resp. (beta, log sigma_v, log K), maximised
with Nelder-Mead from OLS and then Powell, to a tolerance far below 1e-3.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, stats

HERE = Path(__file__).parent
DATA = HERE.parents[2] / "data" / "electricity.csv"


def design(path: Path = DATA):
    df = pd.read_csv(path)
    y = np.log(df["cost"] / df["fprice"]).to_numpy()
    X = np.column_stack([np.ones(len(df)), np.log(df["output"]),
                         np.log(df["lprice"] / df["fprice"]),
                         np.log(df["cprice"] / df["fprice"])])
    return y, X


def _negll(theta, y, X, dist):
    beta = theta[:4]
    e = y - X @ beta  # cost frontier: e = v + u
    if dist == "half_normal":
        sigma, lam = np.exp(theta[4]), np.exp(theta[5])
        ll = stats.skewnorm.logpdf(e, lam, loc=0.0, scale=sigma)
    else:
        sv, k = np.exp(theta[4]), np.exp(theta[5])
        ll = stats.exponnorm.logpdf(e, k, loc=0.0, scale=sv)
    total = ll.sum()
    return -total if np.isfinite(total) else 1e300


def fit(dist: str, path: Path = DATA) -> dict:
    y, X = design(path)
    b, *_ = np.linalg.lstsq(X, y, rcond=None)
    s = np.std(y - X @ b)
    theta = np.r_[b, np.log(s), 0.0]
    tol = {"Nelder-Mead": {"xatol": 1e-10, "fatol": 1e-12},
           "Powell": {"xtol": 1e-10, "ftol": 1e-13}}
    for method in ("Nelder-Mead", "Powell", "Nelder-Mead"):
        theta = optimize.minimize(_negll, theta, args=(y, X, dist), method=method,
                                  options={"maxiter": 200000, "maxfev": 200000,
                                           **tol[method]}).x
    if dist == "half_normal":
        sigma, lam = np.exp(theta[4]), np.exp(theta[5])
        sv, su = sigma / np.sqrt(1 + lam**2), sigma * lam / np.sqrt(1 + lam**2)
    else:
        sv, su = np.exp(theta[4]), np.exp(theta[4] + theta[5])
    terms = ["const", "ln_output", "ln_pl", "ln_pk"]
    return {"loglik": float(-_negll(theta, y, X, dist)),
            "coef": {**dict(zip(terms, map(float, theta[:4]))),
                     "sigma_v": float(sv), "sigma_u": float(su)}}


if __name__ == "__main__":
    out = {d: fit(d) for d in ("half_normal", "exponential")}
    (HERE / "expected.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
