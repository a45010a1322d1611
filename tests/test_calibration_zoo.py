"""Coverage of the default HierarchicalDiD on misspecified LCCP-shaped panels (issue 14's slow
CI check; the full zoo is ``benchmarks/calibration_zoo.py``).

Seeds: the first 30 (0..29) of each DGP, no selection. The bar is 0.85 (a 95% interval's
coverage below it over 30 panels would be unlikely under calibration: P(<= 25 of 30 | 0.95)
is 0.016). Two DGPs the default does not model: heteroskedastic units and region x year
shocks; in the 10-panel zoo both covered 10/10, and the residual checks flagged every panel.
"""

import warnings

import numpy as np
import pytest

from bayesdid import HierarchicalDiD
from bayesdid.calibration import zoo_panel

N_PANELS = 30


@pytest.mark.slow
@pytest.mark.parametrize("dgp", ["hetero_units", "region_shocks"])
def test_default_covers_misspecified_panels(dgp):
    covered, flagged = [], []
    for seed in range(N_PANELS):
        panel, truth = zoo_panel(dgp, seed)
        with warnings.catch_warnings():  # the check measures coverage; notices are expected
            warnings.simplefilter("ignore")
            res = HierarchicalDiD().fit(panel, draws=500, tune=500, chains=2,
                                        random_seed=seed, progress=False)
        row = res.effect("att", "overall")
        covered.append(row["lower"] <= truth <= row["upper"])
        flagged.append(any(r["flagged"] for r in res.info["ppc"]))
    assert np.mean(covered) >= 0.85, f"{dgp}: coverage {np.mean(covered):.2f}"
    assert np.mean(flagged) >= 0.9, f"{dgp}: residual checks flagged {np.mean(flagged):.2f}"
