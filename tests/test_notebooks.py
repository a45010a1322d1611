"""Every notebook (jupytext percent-format .py under notebooks/) runs top to bottom in its
fast setting, and is a well-formed percent-format notebook.

CI executes all notebooks; together they must finish in under 10 minutes on 2 cores. Each
run's wall time is recorded (``record_property("seconds")``, shown with ``-rP``).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"))
CELL = re.compile(r"^# %%(.*)$")


def _cells(text: str) -> list[tuple[str, list[str]]]:
    """(kind, lines) per cell, kind 'markdown' or 'code'; the header comment is skipped."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        hit = CELL.match(line)
        if hit:
            cells.append(("markdown" if "[markdown]" in hit.group(1) else "code", []))
        elif cells:
            cells[-1][1].append(line)
    return cells


@pytest.mark.unit
def test_notebooks_found():
    names = {p.stem for p in NOTEBOOKS}
    assert {"tour", "staggered", "few_treated", "eco_efficiency"} <= names


@pytest.mark.unit
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_percent_format(notebook):
    text = notebook.read_text(encoding="utf-8")
    assert "format_name: percent" in text.split("# %%", 1)[0]  # the jupytext header
    cells = _cells(text)
    markdown = [lines for kind, lines in cells if kind == "markdown"]
    code = [lines for kind, lines in cells if kind == "code"]
    assert len(markdown) >= 3 and len(code) >= 3, (len(markdown), len(code))
    # a markdown cell is comment lines only (blank lines allowed)
    for lines in markdown:
        bad = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
        assert not bad, bad[:3]
    assert markdown[0][0].startswith("# # "), "the first markdown cell opens with a title"
    ast.parse(text, filename=str(notebook))  # valid Python as a script
    # figures are matplotlib Figures built without pyplot: Jupyter shows them only with
    # the inline backend on, which jupytext turns the commented magic into
    assert "# %matplotlib inline" in code[0], "first code cell must enable inline figures"
    assert "BAYESDID_NOTEBOOK_FAST" in text, "the notebook must honour the fast setting"
    try:
        import jupytext
    except ImportError:  # jupytext is not a dependency; the check above stands alone
        return
    nb = jupytext.reads(text, fmt="py:percent")
    kinds = [c.cell_type for c in nb.cells]
    assert kinds == [kind for kind, _ in cells]
    assert "%matplotlib inline" in nb.cells[kinds.index("code")].source


@pytest.mark.pipeline
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(notebook, tmp_path, record_property):
    env = dict(os.environ, MPLBACKEND="Agg", BAYESDID_NOTEBOOK_FAST="1")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(notebook)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    seconds = time.perf_counter() - start
    record_property("seconds", round(seconds, 1))
    print(f"{notebook.name}: {seconds:.1f} s")
    assert done.returncode == 0, done.stderr[-3000:]
    assert not list(tmp_path.iterdir()), "a notebook must not write into the working folder"
