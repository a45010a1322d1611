"""Efficiency plots: the artists drawn carry the numbers of the data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from bayesdid.efficiency.malmquist import malmquist_luenberger
from bayesdid.errors import BayesDidError, ColumnError
from bayesdid.report.efficiency_plots import (
    plot_efficiency_distribution,
    plot_ml_decomposition,
)


@pytest.fixture(scope="module")
def ml_table():
    rng = np.random.default_rng(0)
    rows = []
    for u in range(10):
        for t in (2001, 2002, 2003):
            ec, tc = rng.uniform(0.9, 1.1), rng.uniform(0.95, 1.15)
            rows.append({"unit": u, "time": t, "ec": ec, "tc": tc, "ml": ec * tc})
    return pd.DataFrame(rows)


@pytest.mark.unit
def test_ml_decomposition_lines_and_bands(ml_table):
    fig = plot_ml_decomposition(ml_table)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert {"ML", "EC", "TC"} <= set(lines)
    for col, label in (("ml", "ML"), ("ec", "EC"), ("tc", "TC")):
        x, y = lines[label].get_data()
        np.testing.assert_array_equal(x, [2001, 2002, 2003])
        geo = np.exp(np.log(ml_table[col]).groupby(ml_table["time"]).mean())
        np.testing.assert_allclose(y, geo.to_numpy())
    # geometric means multiply: ML = EC x TC holds for the plotted centres too
    np.testing.assert_allclose(lines["ML"].get_ydata(),
                               lines["EC"].get_ydata() * lines["TC"].get_ydata())
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 3
    # band of ML spans its 25%-75% quantiles in the first period
    verts = bands[0].get_paths()[0].vertices
    at_first = verts[verts[:, 0] == 2001, 1]
    q = ml_table.loc[ml_table["time"] == 2001, "ml"].quantile([0.25, 0.75])
    assert at_first.min() == pytest.approx(q[0.25]) and at_first.max() == pytest.approx(q[0.75])
    one = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert one and np.allclose(one[0].get_ydata(), 1.0)
    no_band = plot_ml_decomposition(ml_table, band=None, stat="median", cumulative=True)
    ax2 = no_band.axes[0]
    assert not [c for c in ax2.collections if isinstance(c, PolyCollection)]
    cum = ml_table.sort_values(["unit", "time"]).groupby("unit")["ml"].cumprod()
    med = cum.groupby(ml_table.sort_values(["unit", "time"])["time"]).median()
    np.testing.assert_allclose(ax2.get_lines()[0].get_ydata(), med.to_numpy())


@pytest.mark.unit
def test_ml_decomposition_accepts_result_and_checks_input():
    df = pd.DataFrame({"u": [1, 2, 3] * 3, "t": np.repeat([1, 2, 3], 3),
                       "x": [1.0, 2.0, 1.5] * 3,
                       "y": [1.0, 1.5, 1.2, 1.1, 1.6, 1.2, 1.3, 1.6, 1.4]})
    res = malmquist_luenberger(df, unit="u", time="t", inputs=["x"], outputs=["y"])
    fig = plot_ml_decomposition(res, title="test")
    assert fig.axes[0].get_title() == "test"
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(),
                               res.by_period()["ml"].to_numpy())
    with pytest.raises(ColumnError, match="'tc'"):
        plot_ml_decomposition(pd.DataFrame({"time": [1], "ml": [1.0], "ec": [1.0]}))
    with pytest.raises(BayesDidError, match="stat must be"):
        plot_ml_decomposition(res, stat="max")


@pytest.mark.unit
@pytest.mark.parametrize("kind", ["box", "violin"])
def test_efficiency_distribution_by_group_and_year(kind):
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"year": np.repeat([2010, 2011, 2012], 40),
                      "pilot": np.tile(["no", "yes"], 60),
                      "eff": rng.uniform(0.3, 1.0, 120)})
    fig = plot_efficiency_distribution(d, time="year", value="eff", group="pilot", kind=kind)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2010", "2011", "2012"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["no", "yes"]
    if kind == "box":
        # 3 years x 2 groups boxes; every group-year median is drawn as a horizontal line
        assert len(ax.patches) == 6
        flat = [float(ln.get_ydata()[0]) for ln in ax.get_lines()
                if len(ln.get_ydata()) == 2 and ln.get_ydata()[0] == ln.get_ydata()[1]]
        for _, g in d.groupby(["year", "pilot"]):
            assert any(np.isclose(g["eff"].median(), m) for m in flat)
    else:
        bodies = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(bodies) == 6
        ymax = max(b.get_paths()[0].vertices[:, 1].max() for b in bodies)
        assert ymax == pytest.approx(d["eff"].max())
    single = plot_efficiency_distribution(d, time="year", value="eff")
    assert single.axes[0].get_legend() is None and len(single.axes[0].patches) == 3
    with pytest.raises(ColumnError, match="'region'"):
        plot_efficiency_distribution(d, time="year", value="eff", group="region")
