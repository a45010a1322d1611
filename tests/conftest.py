"""Test-suite configuration."""

# tests/reference holds stored reference values and the scripts that generated them (some
# need packages CI does not install); they are data, not tests.
collect_ignore = ["reference"]

import numpy as np
import pytest


def _trimmed_staggered_frame(gaps: bool):
    """24 cities, 2005-2012, one covariate; each city keeps its own span (start 2005-2007,
    end 2010-2012); with ``gaps`` a few cities also lose an interior year."""
    from bayesdid.datasets import simulate_staggered

    sim = simulate_staggered(n_units=24, years=(2005, 2012), batches={2008: 5, 2010: 5},
                             n_covariates=1, random_seed=5)
    df = sim.data
    rng = np.random.default_rng(11)
    cities = df["city"].unique()
    start = dict(zip(cities, 2005 + rng.integers(0, 3, len(cities))))
    end = dict(zip(cities, 2012 - rng.integers(0, 3, len(cities))))
    keep = (df["year"] >= df["city"].map(start)) & (df["year"] <= df["city"].map(end))
    if gaps:
        for city in cities[[1, 6, 15]]:
            keep &= ~((df["city"] == city) & (df["year"] == start[city] + 2))
    return df.loc[keep], sim.panel_kwargs


@pytest.fixture(scope="session")
def trimmed_panel():
    """A staggered panel whose units start and end in different years (no interior gaps)."""
    from bayesdid import Panel

    df, kwargs = _trimmed_staggered_frame(gaps=False)
    return Panel.from_frame(df, **kwargs)


@pytest.fixture(scope="session")
def trimmed_gappy_panel():
    """:func:`trimmed_panel` with an interior year missing in three cities."""
    from bayesdid import Panel

    df, kwargs = _trimmed_staggered_frame(gaps=True)
    return Panel.from_frame(df, **kwargs)
