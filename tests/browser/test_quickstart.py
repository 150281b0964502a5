"""``notebooks/quickstart.ipynb`` end to end in JupyterLab 4 and in Notebook 7, asserted from the DOM.

One scenario, run in both apps (``_check_quickstart``):

1. Run All; sample the ``train`` bar in the page while it runs: it must be drawn at several distinct widths, never
   go backwards, and end at 100 % with the success style (green).
2. Once every cell has executed, the dashboard lists the recurring tasks and the still-running ``slow_export``.
3. Click Cancel on ``slow_export``'s dashboard row: its bar (under ``%quiv run slow_export``) turns to the cancelled
   style (``.quiv-cancelled``, ``progress-bar-warning``, drawn grey) part-way, and the dashboard says it was
   cancelled (button feedback line and the recent-jobs list).
4. ``backfill``, cancelled by the notebook itself, ends cancelled; ``flaky_source`` ends red (``danger``).
5. No error output, stderr stream or widget that failed to render, and no traceback a person can see anywhere:
   ``flaky_source``'s failure (which the notebook expects and catches) is one headline line in its own cell, its
   trimmed traceback folded under a "traceback" toggle that opens on a click.

The recurring ``poller`` / ``summing`` bars restart every run, so their style is never asserted.

Screenshots (``tests/artifacts/``; ``scripts/make_screenshots.py`` copies three of them to ``docs/images/``):
``lab-quickstart.png`` (from the ``train`` cell, bar green, down to the dashboard), ``<app>-quickstart-dashboard.png``
(the dashboard alone, just after the Cancel click), ``<app>-quickstart-failure.png`` and
``<app>-quickstart-failure-open.png`` (the ``flaky_source`` cell, its traceback folded, then opened) and
``notebook7-quickstart.png`` (the cancelled and failed bars).
"""

from __future__ import annotations

import math
import time

import pytest

pytestmark = pytest.mark.browser

NOTEBOOK = "quickstart.ipynb"
QUIV_BAR = ".quiv-bar .progress-bar"  # the FloatProgress inside a quiv_nb bar (not the dashboard's own bars)
GREEN = "rgb(56, 142, 60)"  # bar_style="success" in the light theme
RED = "rgb(211, 47, 47)"  # bar_style="danger"
GREY = "rgb(158, 158, 158)"  # quiv_nb's cancelled bar: bar_style="warning" with style.bar_color "#9e9e9e"
TRACEBACK = "Traceback (most recent call last)"


# The failure output of cell `cell` rendered again as an untrusted output (a notebook someone else saved): through
# the app's own sanitizer, which must keep the <details> (closed), its <summary> and the traceback's <pre>.
_JS_UNTRUSTED_FAILURE = """async (cell) => {
    const w = window.jupyterapp.shell.currentWidget;
    const rm = w.content.rendermime;
    const out = w.content.widgets[cell].model.outputs.toJSON()
        .find(o => o.data && String(o.data['text/html'] || '').includes('quiv-failure'));
    if (!out) return null;
    const renderer = rm.createRenderer('text/html');
    await renderer.renderModel(rm.createModel({data: out.data, trusted: false}));
    const node = renderer.node, text = sel => (node.querySelector(sel) || {}).textContent || null;
    return {headline: text('.quiv-failure-headline'), summary: text('details:not([open]) > summary'),
            traceback: text('details > pre')};
}"""


def _row(page, name: str):
    """The dashboard row of task ``name``."""
    return page.locator(".quiv-dash-row", has=page.locator(".quiv-dash-name", has_text=name))


def _poll(nb, read, expected, timeout: float = 15.0):
    """Poll ``read()`` until it returns ``expected``; fail with the last value read after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (value := read()) != expected:
        assert time.monotonic() < deadline, f"after {timeout:.0f}s: {value!r}, expected {expected!r}"
        nb.page.wait_for_timeout(100)
    return value


def _final_bar(nb, cell: int, status: str, style: str, color: str | None = None, timeout: float = 30.0):
    """Wait until the one quiv bar in ``cell`` is drawn as ``status`` (``.quiv-<status>`` on the box, ``style`` on
    the bar, and ``color`` if given); return it as a ``Bar``. Each part of a bar is its own widget model, so they
    are polled together rather than assumed to update in one frame."""
    box = nb.cell(cell).locator(".quiv-bar")
    deadline = time.monotonic() + timeout
    while True:
        (sample,) = nb.sample_bars(QUIV_BAR, cell=cell, duration=0)
        classes = (box.first.get_attribute("class") or "").split() if box.count() else []
        bars = sample.bars
        if (
            len(bars) == 1
            and f"quiv-{status}" in classes
            and bars[0].style == style
            and (color is None or bars[0].color == color)
        ):
            return bars[0]
        if time.monotonic() > deadline:
            wanted = f"{status}/{style}/{color}"
            raise AssertionError(f"cell {cell}: bar not {wanted} within {timeout:.0f}s: {classes} {bars}")
        nb.page.wait_for_timeout(100)


def _check_quickstart(nb, shot: str) -> dict[str, int]:
    """The scenario of the module docstring; saves ``<shot>-dashboard.png``; returns the cells it found by name."""
    page = nb.page
    train = nb.cell_index("%quiv run train")
    dashboard = nb.cell_index("%quiv", exact=True)
    export = nb.cell_index("%quiv run slow_export")
    backfill = nb.cell_index("%quiv run backfill")
    flaky = nb.cell_index("%quiv run flaky_source")

    # 1. The train bar moves live and ends green at 100 %.
    nb.run_all()
    samples = nb.sample_bars(QUIV_BAR, cell=train, duration=60, until_style="success")
    drawn = [s.bars for s in samples if s.bars]
    assert drawn, "no quiv bar appeared under the train cell within 60 s"
    assert all(len(bars) == 1 for bars in drawn), f"expected one bar in the train cell: {drawn[-1]}"
    # Before its first progress call a job's total is unknown: a full 'info' bar. Watch the determinate ones.
    widths = [bars[0].percent for bars in drawn if bars[0].style is None and not math.isnan(bars[0].percent)]
    partial = sorted({w for w in widths if 0 < w < 100})
    assert len(partial) >= 5, f"train bar seen at too few intermediate widths: {partial}"
    assert widths == sorted(widths), f"train bar went backwards: {widths}"
    final = _final_bar(nb, train, "completed", "success", GREEN)
    assert final.percent == 100, final
    nb.cell(train).locator(".quiv-bar", has_text="30/30").wait_for(state="attached", timeout=30_000)

    # 2. Every cell ran (slow_export keeps running in the background); the dashboard lists the tasks.
    nb.wait_until_executed(timeout=90)
    dash = nb.cell(dashboard).locator(".quiv-dash")
    dash.wait_for(state="attached", timeout=30_000)
    for name in ("poller", "summing", "slow_export"):
        _row(page, name).wait_for(state="attached", timeout=30_000)
    # Exactly those three: the finished run-once tasks (train, backfill, flaky_source) leave the table, though the
    # last redraw may still be on its way when the last cell finishes.
    names = dash.locator(".quiv-dash-row .quiv-dash-name")
    _poll(nb, lambda: sorted(n.strip() for n in names.all_text_contents()), ["poller", "slow_export", "summing"])
    export_row = _row(page, "slow_export")
    assert "quiv-dash-status-running" in export_row.get_attribute("class").split()

    # The slow_export bar is live too: a few distinct widths before we cancel it.
    running = nb.sample_bars(QUIV_BAR, cell=export, duration=1.5)
    export_widths = {s.bars[0].percent for s in running if len(s.bars) == 1 and s.bars[0].style is None}
    assert len({w for w in export_widths if 0 < w < 100}) >= 3, f"slow_export bar not moving: {export_widths}"

    # 3. Cancel slow_export from its dashboard row.
    export_row.locator(".quiv-dash-cancel").click()  # waits until the button is enabled
    cancelled = _final_bar(nb, export, "cancelled", "warning", GREY)
    assert 0 < cancelled.percent < 100, f"slow_export should stop part-way, not at {cancelled.percent} %"
    nb.cell(export).locator(".quiv-bar", has_text="cancelled").wait_for(state="attached", timeout=30_000)
    feedback = dash.locator(".quiv-dash-message.quiv-dash-message-ok")
    feedback.filter(has_text="cancel requested for 'slow_export'").wait_for(state="attached", timeout=30_000)
    recent = dash.locator(".quiv-dash-recent tr.quiv-dash-job-cancelled", has_text="slow_export")
    recent.wait_for(state="attached", timeout=30_000)
    # A finished run-once task leaves the table; if its row is still drawn, it says the last job was cancelled.
    for classes in export_row.evaluate_all("rows => rows.map(r => r.className)"):  # no waiting: it may be gone
        assert "quiv-dash-last-cancelled" in classes.split(), classes
    nb.screenshot(f"{shot}-dashboard", element=dash)

    # 4. The notebook's own cancel, and the failure demo.
    backfilled = _final_bar(nb, backfill, "cancelled", "warning", GREY)
    assert 0 < backfilled.percent < 100, backfilled
    _final_bar(nb, flaky, "failed", "danger", RED)
    nb.cell(flaky).locator(".quiv-bar", has_text="source returned no rows").wait_for(state="attached", timeout=30_000)

    # 5. Errors: none shown. flaky_source's failure is expected (the cell catches it): one headline line in its own
    # cell, the trimmed traceback (the user's frame, not quiv_nb's) folded under it until clicked.
    assert nb.error_outputs() == [], "error outputs, stderr streams or broken widgets"
    failure = nb.cell(flaky).locator(".quiv-failure")
    failure.wait_for(state="visible", timeout=30_000)
    headline = failure.locator(".quiv-failure-headline").inner_text().strip()
    assert headline == "✗ flaky_source failed: ValueError: source returned no rows", headline
    toggle, traceback = failure.locator("details > summary"), failure.locator("details > pre")
    assert toggle.inner_text().strip() == "traceback" and not traceback.is_visible()
    nb.cell(flaky).get_by_text("the job failed: source returned no rows").wait_for(state="visible", timeout=30_000)
    assert nb.cells_showing(TRACEBACK) == [], "a traceback shows (folded ones do not count)"
    nb.screenshot(f"{shot}-failure", cell=flaky)
    toggle.click()
    traceback.wait_for(state="visible", timeout=10_000)
    text = traceback.inner_text()
    assert text.startswith(TRACEBACK) and "in flaky_source" in text and "source returned no rows" in text, text
    assert "quiv_nb/execution.py" not in text and "frame hidden" in text, text
    assert nb.cells_showing(TRACEBACK) == [flaky]  # the check above sees a traceback once it is open
    nb.screenshot(f"{shot}-failure-open", cell=flaky)
    toggle.click()
    traceback.wait_for(state="hidden", timeout=10_000)
    untrusted = nb.page.evaluate(_JS_UNTRUSTED_FAILURE, flaky)
    assert untrusted is not None and untrusted["headline"] == headline and untrusted["summary"] == "traceback"
    assert untrusted["traceback"].startswith(TRACEBACK) and "in flaky_source" in untrusted["traceback"], untrusted
    assert nb.accepted_dialogs == (), "the notebook should name its kernel"
    return {"train": train, "dashboard": dashboard, "export": export, "backfill": backfill, "flaky": flaky}


def _screenshot_cells(nb, name: str, first: int, last: int) -> None:
    """A page screenshot (``tests/artifacts/<name>.png``) from cell ``first``, scrolled to the top, down to the end
    of cell ``last``.

    The viewport grows (up to 2,000 px) for the shot when the region does not fit, then gets its size back.
    """
    page = nb.page
    size = dict(page.viewport_size)
    try:
        for _ in range(3):  # cells off-screen are laid out lazily: measure again after each resize
            nb.cell(first).evaluate("el => el.scrollIntoView({block: 'start'})")
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            box = nb.cell(last).bounding_box()
            bottom = box["y"] + box["height"] + 48  # and the status bar below the notebook
            height = page.viewport_size["height"]
            if bottom <= height or height >= 2000:
                break
            page.set_viewport_size({"width": size["width"], "height": min(2000, math.ceil(bottom))})
        nb.screenshot(name)
    finally:
        page.set_viewport_size(size)


def test_quickstart_in_lab(lab_page):
    nb = lab_page(NOTEBOOK)
    cells = _check_quickstart(nb, "lab-quickstart")
    # From the heading above the train cell (its bar green) down to the dashboard.
    _screenshot_cells(nb, "lab-quickstart", max(0, cells["train"] - 1), cells["dashboard"])


def test_quickstart_in_notebook7(notebook_page):
    nb = notebook_page(NOTEBOOK)
    cells = _check_quickstart(nb, "notebook7-quickstart")
    # The other half of the story: the cancelled bars (grey) and the failed one (red), with the failure's report.
    _screenshot_cells(nb, "notebook7-quickstart", max(0, cells["export"] - 1), cells["flaky"] + 1)
