"""Shipped real datasets and simulated panels with known truth.

Real data (provenance, licences and column dictionaries in ``data/SOURCES.md``):

- ``castle``: castle-doctrine laws and homicide, 50 US states, 2000-2010
  (Cheng & Hoekstra 2013), staggered adoption.
- ``electricity``: US electric utilities in 1970 (Christensen & Greene 1976), the classic
  stochastic-frontier cost data (a cross-section, not a panel).
- ``prop99``: California's Proposition 99 and cigarette sales, 39 states, 1970-2000
  (Abadie, Diamond & Hainmueller 2010), one treated unit.

Simulated data with known truth: :func:`simulate_staggered`, an LCCP-like city panel with
a heterogeneous treatment effect; :func:`simulate_efficiency`, a city panel of LCCP inputs and
outputs with a known frontier, inefficiency and policy effect on efficiency;
:func:`simulate_pilot_zones`, 29 provinces with 3 pilot zones and a factor structure (the
few-treated-units design); :func:`simulate_sparse_synth`, one treated unit that is a sparse
convex combination of many donors, few pre-periods, a large outcome scale.

Examples
--------
>>> from bayesdid import datasets
>>> datasets.list()["name"].tolist()
['castle', 'electricity', 'prop99']
>>> df = datasets.load("castle")
>>> kwargs = datasets.info("castle")["panel_kwargs"]
>>> kwargs["outcome"], len(df)
('l_homicide', 550)
"""

from __future__ import annotations

from ._registry import data_path, info, list_datasets, load
from ._registry import list_datasets as list  # noqa: A001 - the public name is datasets.list
from .simulate import REGIONS, SimulatedPanel, simulate_staggered
from .simulate_efficiency import simulate_efficiency
from .simulate_factor import FactorPanel, simulate_factor_panel
from .simulate_mediated import augment, simulate_staggered_mediated
from .simulate_pilot import PILOT_PROVINCES, PROVINCES, simulate_pilot_zones
from .simulate_synth import simulate_sparse_synth

# ``list`` is deliberately left out of __all__ so that ``import *`` cannot shadow the builtin.
__all__ = [
    "load",
    "list_datasets",
    "info",
    "data_path",
    "simulate_staggered",
    "simulate_efficiency",
    "simulate_factor_panel",
    "simulate_pilot_zones",
    "simulate_sparse_synth",
    "simulate_staggered_mediated",
    "augment",
    "PROVINCES",
    "PILOT_PROVINCES",
    "SimulatedPanel",
    "REGIONS",
]
