"""Coverage of the default HierarchicalDiD on misspecified LCCP-shaped panels (issue 14's slow
CI check; the full zoo is ``benchmarks/calibration_zoo.py``).

Seeds: the first 30 (0..29) of each DGP, no selection. The bar is 0.85 (a 95% interval's
coverage below it over 30 panels would be unlikely under calibration: P(<= 25 of 30 | 0.95)
is 0.016). Three DGPs the default's first fit does not model: heteroskedastic units and
Student-t(3) innovations (100-panel zoo, benchmarks/results/calibration_zoo.md: 0.96 and
0.94, the residual checks flag every panel), and region x year shocks, which the default
(``random_effects="auto"``) detects with its region x period check and refits with
region x year random effects (0.94 over 100 panels; the model without them covered 0.86).
"""

import warnings

import numpy as np
import pytest

from bayesdid import HierarchicalDiD
from bayesdid.calibration import zoo_panel

N_PANELS = 30


@pytest.mark.slow
@pytest.mark.parametrize("dgp", ["hetero_units", "student_t3", "region_shocks"])
def test_default_covers_misspecified_panels(dgp):
    covered, flagged, expanded = [], [], []
    for seed in range(N_PANELS):
        panel, truth = zoo_panel(dgp, seed)
        with warnings.catch_warnings():  # the check measures coverage; notices are expected
            warnings.simplefilter("ignore")
            res = HierarchicalDiD().fit(panel, draws=500, tune=500, chains=2,
                                        random_seed=seed, progress=False)
        row = res.effect("att", "overall")
        covered.append(row["lower"] <= truth <= row["upper"])
        flagged.append(any(r["flagged"] for r in res.info["ppc"]))
        expanded.append(res.info["random_effects"]["used"] is not None)
    assert np.mean(covered) >= 0.85, f"{dgp}: coverage {np.mean(covered):.2f}"
    if dgp == "region_shocks":  # the check found the shocks and the term was added
        assert np.mean(expanded) >= 0.9, f"region x year effects added {np.mean(expanded):.2f}"
    else:
        assert np.mean(flagged) >= 0.9, f"{dgp}: residual checks flagged {np.mean(flagged):.2f}"
        assert not any(expanded), f"{dgp}: region x year effects added without region shocks"
