"""Width of the DID interval with the frontier's efficiency uncertainty propagated, per
frontier form (the setting of notebooks/eco_efficiency.py: 278 cities x 19 years).

For each frontier (SFA MLE and BayesianSFA; inefficiency ``cross_section``, ``bc92``,
``time_invariant``) the DID (BJS imputation, as in the notebook, and TWFE) is fitted once on
the mean efficiency (naive) and on ``--refits`` efficiency draws combined by Rubin's rules
(:func:`bayesdid.efficiency.efficiency_did.efficiency_did`). Printed per row: the naive and the
propagated 95% interval width, their ratio, Rubin's fraction of missing information, the
propagated estimate and whether the interval covers the true ATT.

Run it on two versions of the package to compare them (same seeds, same data):

    .venv/bin/python benchmarks/sfa_propagation.py [--draws 500] [--tune 500] [--refits 20]
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import numpy as np

from bayesdid.efficiency.bayes_sfa import BayesianSFA
from bayesdid.classical import imputation, twfe
from bayesdid.efficiency.sfa import sfa
from bayesdid.datasets import simulate_efficiency
from bayesdid.efficiency.efficiency_did import efficiency_did

FORMS = ("cross_section", "bc92", "time_invariant")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--refits", type=int, default=20)
    parser.add_argument("--skip-bayes", action="store_true")
    args = parser.parse_args()
    logging.getLogger("pymc").setLevel(logging.WARNING)
    warnings.simplefilter("ignore")
    sim = simulate_efficiency(random_seed=0)
    data, kw = sim.data, sim.params["sfa_kwargs"]
    truth = sim.truth.query("estimand == 'att' and group == 'overall'")["value"].iloc[0]
    print(f"panel {len(data)} rows; true ATT {truth:.4f}; {args.refits} refits; Bayesian "
          f"2 chains x {args.draws} draws (tune {args.tune})")
    print("| frontier | form | DID | naive width | propagated width | ratio | "
          "fraction missing | estimate | covers truth |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    fits = []
    for form in FORMS:
        fits.append(("MLE", form, sfa(data, **kw, model=form)))
    if not args.skip_bayes:
        for form in FORMS:
            t0 = time.perf_counter()
            res = BayesianSFA(**kw, inefficiency=form).fit(
                data, draws=args.draws, tune=args.tune, chains=2, cores=1, random_seed=1,
                progress=False)
            logging.getLogger(__name__).info("%s fit %.1f s", form, time.perf_counter() - t0)
            fits.append(("BayesianSFA", form, res))
    for name, form, res in fits:
        for did_name, did in (("imputation", imputation), ("twfe", twfe)):
            out = efficiency_did(res, data, did, panel_kwargs=sim.panel_kwargs,
                                 n_draws=args.refits, random_seed=3, progress=False)
            cmp = out.comparison().query("estimand == 'att' and group == 'overall'").iloc[0]
            row = out.effect("att", "overall")
            naive_w = cmp["naive_upper"] - cmp["naive_lower"]
            prop_w = cmp["upper"] - cmp["lower"]
            frac = row.get("fraction_missing", np.nan)
            covers = cmp["lower"] <= truth <= cmp["upper"]
            # a DID with unit effects on per-unit-constant efficiency: both widths are
            # rounding error, and so is their ratio
            ratio = "n/a (0/0)" if naive_w < 1e-10 else f"{prop_w / naive_w:.3f}"
            print(f"| {name} | {form} | {did_name} | {naive_w:.3g} | {prop_w:.3g} | "
                  f"{ratio} | {frac:.3f} | {row['estimate']:.4f} | {covers} |", flush=True)


if __name__ == "__main__":
    main()
