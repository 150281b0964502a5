"""Bars in a notebook executed headless (nbclient, as `python -m quiv_nb demo --notebook` runs one).

A headless run saves what each cell's output holds when the cell ends; a draw that arrives later
is lost. So a bar whose job ended before its cell ended must show its final state in that cell,
even when the job ended before the bar's first draw (a cached hit) and the render pump's message
budget delays the draw (many bars ending together).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.kernel

BARS = 30  # final widget draws cost ~13 messages each: more than the pump's burst lets out at once

CELLS = [
    "%load_ext quiv_nb\nimport quiv_nb\nq = quiv_nb.get_scheduler()\n\ndef step(i):\n    return i",
    # Cached steps: the first cell runs them, the second reuses every result (each job ends at once).
    "def run_all():\n"
    f"    bars = [quiv_nb.bar(desc=f's{{i}}') for i in range({BARS})]\n"
    "    ids = [q.add_task(f's{i}', step, run_once=True, delay=3600, args=(i,), cache=True, replace=True,\n"
    "                     progress_callback=bars[i])\n"
    f"           for i in range({BARS})]\n"
    "    jobs = [q.run_task_immediately(t) for t in ids]\n"
    "    return [q.wait_for_job(j, timeout=60).cached for j in jobs]\n\n"
    "first = run_all()",
    "again = run_all()\nall(again) and not any(first)",
]


def _bar_lines(cell: object) -> list[str]:
    return [
        o["data"]["text/plain"]
        for o in cell.outputs  # type: ignore[attr-defined]
        if o["output_type"] == "display_data" and "text/plain" in o.get("data", {})
    ]


def test_bars_of_ended_jobs_show_their_final_state_in_the_cell(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    env = {**os.environ, "QUIV_NB_STORE": str(tmp_path / "s.db")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3")
    client.km = client.create_kernel_manager()
    with client.setup_kernel(env=env):
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
    assert nb.cells[2].outputs[-1]["data"]["text/plain"] == "True"  # ran, then every step reused
    for cell, ended in ((nb.cells[1], "done"), (nb.cells[2], "cached · computed")):
        lines = _bar_lines(cell)
        assert len(lines) == BARS
        assert [line for line in lines if ended not in line] == []
