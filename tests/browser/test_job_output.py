"""A job's output as a person sees it: under its own cell, in JupyterLab 4 and Notebook 7.

``tests/browser/fixtures/job-output.ipynb``: cell 1 runs ``chatty`` once (40 lines, a live bar), cell 2 runs
``boom`` once (a line, then a ValueError), cell 3 adds ``tick`` every 0.5 s, cell 4 sleeps 3 s. Read from the
notebook model the frontend built from the kernel's messages:

- a one-off job's lines are ordinary stream outputs of its cell, each line once, in order; its failure follows them
  there, while another cell sleeps, as one display: a headline with the traceback (trimmed of quiv_nb's frames)
  folded under it in text/html, both in text/plain; no stderr stream (red box), no traceback a person sees;
- the recurring task's cell has one updatable output showing its latest run, and no streams;
- the sleeping cell shows only its own line.
"""

from __future__ import annotations

import json
import re
import time

import pytest

pytestmark = pytest.mark.browser

NOTEBOOK = "job-output.ipynb"
CHATTY, BOOM, TICK, SLEEP = 1, 2, 3, 4
TICKS = re.compile(r"tick (\d+)")

_JS_CELL_OUTPUTS = """async () => {
    const w = window.jupyterapp.shell.currentWidget;
    return w.content.widgets.map(c => c.model.type !== 'code' ? [] : c.model.outputs.toJSON().map(o => ({
        type: o.output_type, name: o.name || null,
        text: o.output_type === 'stream' ? (Array.isArray(o.text) ? o.text.join('') : String(o.text))
            : JSON.stringify(o.data || {}),
    })));
}"""


def _outputs(nb) -> list[list[dict]]:
    return nb.page.evaluate(_JS_CELL_OUTPUTS)


def _stream(outputs: list[dict], name: str) -> str:
    return "".join(o["text"] for o in outputs if o["type"] == "stream" and o["name"] == name)


def _wait(nb, predicate, what: str, timeout: float = 30.0) -> list[list[dict]]:
    deadline = time.monotonic() + timeout
    while True:
        outputs = _outputs(nb)
        if predicate(outputs):
            return outputs
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {outputs}")
        nb.page.wait_for_timeout(100)


def _check(nb, app: str) -> None:
    nb.run_all()
    nb.wait_until_executed(timeout=90)
    chatty_lines = "".join(f"chatty line {i}\n" for i in range(40))
    outputs = _wait(
        nb,
        lambda o: (
            chatty_lines in _stream(o[CHATTY], "stdout") and max(map(int, TICKS.findall(str(o[TICK]))), default=0) >= 3
        ),
        "chatty's 40 lines and tick's third run",
    )
    assert _stream(outputs[CHATTY], "stdout") == chatty_lines  # each line once, in order, nothing else
    assert _stream(outputs[CHATTY], "stderr") == ""

    assert _stream(outputs[BOOM], "stdout") == "about to fail\n" and _stream(outputs[BOOM], "stderr") == ""
    (failure,) = [json.loads(o["text"]) for o in outputs[BOOM] if "quiv-failure" in o["text"]]
    kinds = [o["type"] for o in outputs[BOOM] if o["type"] == "stream" or "quiv-failure" in o["text"]]
    assert kinds == ["stream", "display_data"], outputs[BOOM]  # the failure after the job's line
    plain = failure["text/plain"]
    assert plain.startswith("✗ boom failed: ValueError: boom in a job\nTraceback") and "in boom" in plain, plain
    assert "quiv_nb/execution.py" not in plain, plain
    headline = nb.cell(BOOM).locator(".quiv-failure-headline")
    assert headline.inner_text().strip() == "✗ boom failed: ValueError: boom in a job"

    ticks = [o for o in outputs[TICK] if "tick " in o["text"]]
    assert len(ticks) == 1 and ticks[0]["type"] == "display_data", outputs[TICK]  # one area: the latest run
    assert not any(o["type"] == "stream" and "tick " in o["text"] for o in outputs[TICK])

    assert _stream(outputs[SLEEP], "stdout") == "slept\n" and _stream(outputs[SLEEP], "stderr") == ""
    assert nb.error_outputs() == []
    assert nb.cells_showing("Traceback (most recent call last)") == []  # boom's is folded
    nb.screenshot(f"{app}-job-output")
    for name, cell in (("boom", BOOM), ("tick", TICK), ("sleep", SLEEP)):
        nb.screenshot(f"{app}-job-output-{name}", cell=cell)


def test_job_output_in_lab(lab_page):
    _check(lab_page(NOTEBOOK), "lab")


def test_job_output_in_notebook7(notebook_page):
    _check(notebook_page(NOTEBOOK), "notebook7")
