"""Regenerate the stored csdid reference values for tests/test_callaway_santanna.py.

Not run by the test suite (needs ``pip install csdid``). Run from the repo root:
``.venv/bin/python tests/reference/callaway_santanna/generate.py``. Writes ``sim.csv``
(the simulated panel used, so the reference does not depend on the simulator staying
unchanged) and ``csdid_sim.json`` / ``csdid_castle.json`` (csdid's ATT(g, t) and
aggregations with analytic, bstrap=False, standard errors).
"""

from __future__ import annotations

import json
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

from bayesdid.datasets import load, simulate_staggered

HERE = Path(__file__).parent
CONTROL = {"never_treated": "nevertreated", "not_yet_treated": "notyettreated"}


def _specs(covs):
    out = []
    for control in CONTROL:
        for method in ("reg", "ipw", "dr"):
            for cov in ((), covs) if covs else ((),):
                out.append((control, method, cov))
    return out


def _run(df, y, covs, data_desc):
    from csdid.att_gt import ATTgt  # only needed to regenerate; not a test dependency

    cases = []
    for control, method, cov in _specs(covs):
        xformla = f"{y} ~ " + " + ".join(cov) if cov else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = ATTgt(yname=y, tname="time", idname="id", gname="gvar", data=df,
                        control_group=[CONTROL[control]], xformla=xformla)
            fit = fit.fit(est_method=method, base_period="varying", bstrap=False)
            r = fit.results
            rows = [{"estimand": "att_gt", "group": f"cohort={int(g)}, t={int(t)}",
                         "estimate": float(a), "se": float(s)}
                    for g, t, a, s in zip(r["group"], r["year"], r["att"], r["se"])]
            summaries = {}
            for typ, estimand, key in (("simple", None, None), ("group", "att", "cohort"),
                                       ("dynamic", "event_time", "k"),
                                       ("calendar", "calendar", "t")):
                agg = fit.aggte(typec=typ, bstrap=False).atte
                summaries[typ] = {"estimate": float(agg["overall_att"]),
                                      "se": float(agg["overall_se"])}
                if typ == "simple":
                    rows.append({"estimand": "att", "group": "overall",
                                     "estimate": float(agg["overall_att"]),
                                     "se": float(agg["overall_se"])})
                    continue
                for e, a, s in zip(agg["egt"], agg["att_egt"], agg["se_egt"]):
                    rows.append({"estimand": estimand, "group": f"{key}={int(e)}",
                                     "estimate": float(a), "se": float(s)})
        call = (f"ATTgt(yname={y!r}, tname='time', idname='id', gname='gvar', data=df, "
                f"control_group=[{CONTROL[control]!r}], xformla={xformla!r})"
                f".fit(est_method={method!r}, base_period='varying', bstrap=False); "
                "aggte(typec=..., bstrap=False) for simple/group/dynamic/calendar")
        cases.append({"control": control, "method": method, "covariates": list(cov), "call": call,
                          "rows": rows, "summaries": summaries})
    return {"provenance": {"package": "csdid", "version": version("csdid"),
                                "drdid_version": version("drdid"), "data": data_desc,
                                "note": "analytic influence-function SEs (bstrap=False); "
                                     "gvar=0 for never treated"},
                "cases": cases}


def main():
    sim = simulate_staggered(n_units=200, years=(2005, 2016), batches={2008: 30, 2011: 30},
                             random_seed=3)
    d = sim.data
    sim_df = pd.DataFrame({"id": pd.factorize(d["city"])[0] + 1, "time": d["year"],
                           "gvar": d["cohort"].fillna(0).astype(int), "y": d["eco_eff"],
                           "x1": d["x1"], "x2": d["x2"]})
    sim_df.to_csv(HERE / "sim.csv", index=False, float_format="%.17g")
    sim_df = pd.read_csv(HERE / "sim.csv").astype(float)
    out = _run(sim_df, "y", ("x1", "x2"),
               "sim.csv: bayesdid.datasets.simulate_staggered(n_units=200, years=(2005, 2016), "
               "batches={2008: 30, 2011: 30}, random_seed=3) (default sigma=0.05); columns id "
               "(city code), time (year), gvar (cohort, 0 = never), y (eco_eff), x1, x2")
    (HERE / "csdid_sim.json").write_text(json.dumps(out, indent=1))

    castle = load("castle")
    c_df = pd.DataFrame({"id": castle["sid"], "time": castle["year"],
                         "gvar": castle["cohort"].fillna(0).astype(int),
                         "y": castle["l_homicide"]}).astype(float)
    out = _run(c_df, "y", (), "bayesdid.datasets.load('castle'): id=sid, time=year, "
               "gvar=cohort (0 = never treated), y=l_homicide; no covariates")
    (HERE / "csdid_castle.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
