"""Reporting: effect tables (Markdown, LaTeX, HTML) and plots (forest, event study).

>>> from bayesdid.report import format_interval
>>> format_interval(0.1, 0.25)
'[0.100, 0.250]'
"""

from .plots import event_study_plot, event_time, forest_plot
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
