"""Reporting: effect tables (Markdown, LaTeX, HTML) and plots (forest, event study).

>>> from bayesdid.report import format_interval
>>> format_interval(0.1, 0.25)
'[0.100, 0.250]'
"""

from .efficiency_plots import plot_efficiency_distribution, plot_ml_decomposition
from .placebo_plots import placebo_plot
from .plots import event_study_plot, event_time, forest_plot
from .psm_plots import balance_plot
from .regression_table import RegressionTable, regression_table
from .sfa_plots import plot_efficiency_intervals, plot_frontier
from .staggered_plots import (
    cohort_trends,
    event_study_overlay,
    parallel_trends_plot,
    sensitivity_plot,
)
from .synth_plots import (
    donor_weights_plot,
    placebo_space_plot,
    synth_gap_plot,
    synth_path_plot,
)
from .tables import (
    INTERVAL_EXPLANATION,
    format_interval,
    format_number,
    group_sort_key,
    interval_label,
    interval_notes,
    latex_escape,
    order_rows,
    render_html,
    render_latex,
    render_markdown,
    wide_table,
)

__all__ = [
    "RegressionTable",
    "plot_efficiency_intervals",
    "plot_frontier",
    "regression_table",
    "balance_plot",
    "placebo_plot",
    "plot_efficiency_distribution",
    "plot_ml_decomposition",
    "cohort_trends",
    "event_study_overlay",
    "parallel_trends_plot",
    "sensitivity_plot",
    "donor_weights_plot",
    "placebo_space_plot",
    "synth_gap_plot",
    "synth_path_plot",
    "INTERVAL_EXPLANATION",
    "event_study_plot",
    "event_time",
    "forest_plot",
    "format_interval",
    "format_number",
    "group_sort_key",
    "interval_label",
    "interval_notes",
    "latex_escape",
    "order_rows",
    "render_html",
    "render_latex",
    "render_markdown",
    "wide_table",
]
