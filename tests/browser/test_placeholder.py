"""The whole browser chain on a placeholder notebook: server, kernel, widgets from a thread, clicks, screenshots.

``fixtures/placeholder.ipynb`` stands in for ``notebooks/quickstart.ipynb``: cell 1 shows a ``FloatProgress`` that a
background thread advances over ~3 s and then styles 'success'; cell 2 shows a button whose handler relabels a Label.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

NOTEBOOK = "placeholder.ipynb"
PROGRESS_CELL = 1
BUTTON_CELL = 2
GREEN = "rgb(56, 142, 60)"  # bar_style="success" in JupyterLab's light theme (the default bar is rgb(25, 118, 210))


def _check_placeholder(nb, shot: str) -> None:
    """Run all cells, watch the bar fill from its thread, click the button; save screenshots."""
    nb.run_all()
    nb.cell(PROGRESS_CELL).locator(".widget-hprogress").wait_for(timeout=60_000)
    samples = nb.sample_bars(cell=PROGRESS_CELL, duration=30, until_style="success")
    nb.screenshot(f"{shot}-progress-done")

    widths = [s.bars[0].percent for s in samples if s.bars]
    partial = {w for w in widths if 0 < w < 100}
    assert len(partial) >= 3, f"bar seen at too few intermediate widths: {sorted(partial)}"
    assert widths == sorted(widths), "bar went backwards"
    final = samples[-1].bars
    assert len(final) == 1 and final[0].percent == 100 and final[0].style == "success", final
    assert final[0].color == GREEN != samples[0].bars[0].color
    assert nb.cell(PROGRESS_CELL).locator(".progress-bar.progress-bar-success").count() == 1

    counts = nb.wait_until_executed()
    assert len(counts) == 2, counts

    label = nb.cell(BUTTON_CELL).locator(".widget-label")
    label.filter(has_text="not clicked").wait_for(timeout=30_000)
    nb.cell(BUTTON_CELL).get_by_role("button", name="Click me").click()
    label.filter(has_text="clicked at").wait_for(timeout=30_000)  # the kernel ran the handler, the view updated
    nb.screenshot(f"{shot}-button-clicked", cell=BUTTON_CELL)

    assert nb.error_outputs() == []
    assert nb.accepted_dialogs == (), "the notebook should name its kernel"
    nb.screenshot(shot)


def test_placeholder_in_lab(lab_page):
    _check_placeholder(lab_page(NOTEBOOK), "lab-placeholder")


def test_placeholder_in_notebook7(notebook_page):
    _check_placeholder(notebook_page(NOTEBOOK), "notebook7-placeholder")


def test_harness_reports_errors_in_lab(lab_page):
    """The error checks above are not vacuous: a stderr line and a traceback are both reported, and a Run All
    that stops at an error is detected quickly instead of timing out."""
    nb = lab_page("failing.ipynb")
    nb.run_all()
    with pytest.raises(AssertionError, match="unexecuted cells"):
        nb.wait_until_executed(timeout=60)
    errors = nb.error_outputs()
    assert any(e.startswith("cell 1: something went wrong") for e in errors), errors
    assert any(e.startswith("cell 2: RuntimeError: boom from the failing fixture") for e in errors), errors
    assert len(errors) == 2, errors
    assert nb.error_outputs(stderr=False) == [e for e in errors if e.startswith("cell 2:")]
