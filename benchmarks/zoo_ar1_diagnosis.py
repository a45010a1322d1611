"""Is the default HierarchicalDiD's AR(1)-zoo under-coverage a bug, a narrow posterior, bias, or noise?

Fits the default model on ``zoo_panel("ar1", seed)`` for many seeds and records, per panel,
the posterior mean, sd, 95% HDI and equal-tailed interval of the overall ATT against the
sample ATT (the mean of the simulated tau over treated rows, which equals the
observation-weighted mean of the cell effects the model reports: tau is constant within a
cohort x region x event-time cell in the simulator), plus posterior means of rho and sigma.
The z-score (mean - truth) / sd should be ~N(0, 1) if the posterior is calibrated.

    PYTHONPATH=src .venv/bin/python benchmarks/zoo_ar1_diagnosis.py --panels 40 --out ar1.csv
"""

from __future__ import annotations

import argparse
import logging
import warnings

import numpy as np
import pandas as pd

from bayesdid.calibration import zoo_panel
from bayesdid.did.hierarchical import HierarchicalDiD


def one(seed: int, dgp: str, draws: int, robust: str | None) -> dict:
    panel, truth = zoo_panel(dgp, seed)
    kw = {} if robust is None else {"robust": robust}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = HierarchicalDiD(**kw).fit(panel, draws=draws, tune=draws, chains=2,
                                        random_seed=seed, progress=False)
    post = res.idata.posterior
    eff = res.draws("att", "overall")
    row = res.effect("att", "overall")
    lo, hi = np.quantile(eff, [0.025, 0.975])
    return dict(seed=seed, dgp=dgp, truth=truth, mean=eff.mean(), sd=eff.std(),
                hdi_lower=row["lower"], hdi_upper=row["upper"], eq_lower=lo, eq_upper=hi,
                rho=float(post["rho"].mean()), sigma=float(post["sigma"].mean()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--panels", type=int, default=40)
    ap.add_argument("--dgp", default="ar1")
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--robust", default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    logging.getLogger("pymc").setLevel(logging.ERROR)
    rows = []
    for s in range(a.panels):
        rows.append(one(s, a.dgp, a.draws, a.robust))
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    if a.out:
        df.to_csv(a.out, index=False)
    z = (df["mean"] - df["truth"]) / df["sd"]
    cov_hdi = ((df.hdi_lower <= df.truth) & (df.truth <= df.hdi_upper)).mean()
    cov_eq = ((df.eq_lower <= df.truth) & (df.truth <= df.eq_upper)).mean()
    print(f"panels {len(df)}: coverage hdi {cov_hdi:.3f} eq-tailed {cov_eq:.3f}; "
          f"z mean {z.mean():.3f} sd {z.std():.3f}; bias {(df['mean'] - df.truth).mean():.5f} "
          f"(se {(df['mean'] - df.truth).std() / np.sqrt(len(df)):.5f}); "
          f"empirical sd of error {(df['mean'] - df.truth).std():.5f} vs mean posterior sd "
          f"{df.sd.mean():.5f}; rho mean {df.rho.mean():.3f}")


if __name__ == "__main__":
    main()
