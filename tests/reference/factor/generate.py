"""Regenerate mc_nnm_causaltensor.json: causaltensor 0.1.12's MC-NNM on a simulated panel.

Run from the repository root with causaltensor installed (it pins numpy<2 / pandas<3 in its
metadata but its MC-NNM code runs on the project's numpy 2):

    PYTHONPATH=src python tests/reference/factor/generate.py

The panel is ``bayesdid.datasets.simulate_factor_panel(n_units=30, n_periods=15,
n_treated=6, cohorts=(10, 12), seed=7)`` stored in full (``Y``, ``treated``) so that the
test does not depend on the simulator. causaltensor's ``MCNNMPanelSolver`` is run with its
fixed-effect demeaning tightened (``FixedEffectPanelSolver.fit`` calls ``demean`` with its
hard-coded default ``eps=1e-7``, a relative squared change that leaves tau off by ~3e-4
on this panel; here ``eps=1e-15``) and soft-impute ``eps=1e-18`` (a relative squared change; its default 1e-7 stops far from the optimum at small lambda), so that its answer is the
optimum of the MC-NNM objective to ~1e-9, not its default stopping point.
"""

import json
from functools import partial
from pathlib import Path

import causaltensor
import numpy as np
from causaltensor.cauest.MCNNM import MCNNMPanelSolver
from causaltensor.cauest.panel_solver import FixedEffectPanelSolver

from bayesdid.datasets import simulate_factor_panel

sim = simulate_factor_panel(n_units=30, n_periods=15, n_treated=6, cohorts=(10, 12), seed=7)
Y = sim.data.pivot(index="unit", columns="time", values="y").to_numpy()
Z = sim.data.pivot(index="unit", columns="time", values="treated").to_numpy()
out = {"source": "causaltensor " + getattr(causaltensor, "__version__", "0.1.12")
       + " MCNNMPanelSolver.solve_with_regularizer, demean eps=1e-15, eps=1e-18",
       "Y": Y.tolist(), "treated": Z.astype(int).tolist(), "fits": []}
for lam in (4.0, 8.0, 25.0):
    solver = MCNNMPanelSolver(Z=Z)
    fe = FixedEffectPanelSolver(Omega=solver.Omega)
    fe.demean = partial(fe.demean, eps=1e-15, max_iter=100_000)
    solver.FE_beta_solver = fe
    res = solver.solve_with_regularizer(O=Y, l=lam, eps=1e-18, max_iter=300_000)
    out["fits"].append({"lambda": lam, "tau": float(np.ravel(res.tau)[0]),
                        "baseline_treated": res.baseline[Z == 1].tolist(),
                        "rank": int(np.linalg.matrix_rank(res.M, tol=1e-8))})
Path(__file__).with_name("mc_nnm_causaltensor.json").write_text(json.dumps(out, indent=1))
print([(f["lambda"], f["tau"], f["rank"]) for f in out["fits"]])
