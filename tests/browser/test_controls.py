"""Dashboard Cancel while the kernel is busy, in JupyterLab 4 and Notebook 7, asserted from what the page shows.

Each notebook (``tests/browser/fixtures/controls-*.ipynb``) starts ``patient`` (a minute-long job with a bar, cell 2)
under a dashboard (cell 1), then keeps the kernel busy in its last cell:

- ``controls-wait.ipynb``: ``%quiv wait patient`` (quiv_nb's own blocking wait);
- ``controls-busy.ipynb``: ``time.sleep(120)`` (any busy cell).

While that cell runs, the test clicks Cancel on the dashboard row and measures, inside the page, the time until the
bar under cell 2 is drawn cancelled (grey). It must turn grey within a second, while the last cell is still running
(for the wait: the wait then ends, its cell showing ``JobCancelledError``: the job has no result). Both apps send
comm messages on a kernel subshell (ipykernel >= 7), which is what lets the click through during ``time.sleep``.

Screenshots: ``tests/artifacts/<app>-controls-<wait|busy>.png`` (the page right after the bar turned grey).
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.browser

BAR_CELL, WAIT_CELL = 2, 3
GREY = "rgb(158, 158, 158)"  # quiv_nb's cancelled bar: bar_style="warning" with style.bar_color "#9e9e9e"
WITHIN = 1.0  # seconds from the click to a grey bar

# Runs in the page: wait for the running patient row's enabled Cancel button, click it, then poll every frame
# until the bar under BAR_CELL is drawn cancelled and grey. Returns the elapsed time and what the page showed.
_JS_CANCEL_AND_TIME = """
async ({barCell, waitCell, timeout, grey}) => {
    const w = window.jupyterapp.shell.currentWidget;
    const row = [...w.node.querySelectorAll('.quiv-dash-row')]
        .find(r => (r.querySelector('.quiv-dash-name') || {}).textContent.trim() === 'patient');
    const button = row.querySelector('.quiv-dash-cancel');
    if (button.disabled) return {error: 'cancel button disabled'};
    const running = () => w.content.widgets[waitCell].model.executionState === 'running';
    const busyBefore = running();
    const t0 = performance.now();
    button.click();
    for (;;) {
        const box = w.content.widgets[barCell].node.querySelector('.quiv-bar');
        const bar = box && box.querySelector('.progress-bar');
        const t = (performance.now() - t0) / 1000;
        if (box && box.classList.contains('quiv-cancelled') && bar && getComputedStyle(bar).backgroundColor === grey) {
            return {t, busyBefore, busyAfter: running(),
                    percent: parseFloat(bar.style.width)};
        }
        if (t > timeout) return {error: 'no grey bar', t, classes: box ? box.className : null};
        await new Promise(r => requestAnimationFrame(r));
    }
}
"""


def _wait_until_busy_in_last_cell(nb, timeout: float = 90.0) -> None:
    """Cells 0-2 executed, the last one running, and the dashboard shows ``patient`` running with Cancel enabled."""
    page = nb.page
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = page.evaluate(
            """() => {
            const w = window.jupyterapp.shell.currentWidget;
            const counts = w.content.widgets.map(c => c.model.executionCount);
            const row = [...w.node.querySelectorAll('.quiv-dash-row')]
                .find(r => (r.querySelector('.quiv-dash-name') || {}).textContent.trim() === 'patient');
            const button = row && row.querySelector('.quiv-dash-cancel');
            const bar = w.content.widgets[2].node.querySelector('.quiv-bar .progress-bar');
            // The last cell's own state, not the kernel's: status messages of control requests (debugger,
            // subshell creation) may set the kernel's status to idle while the cell still runs.
            return {counts, last: w.content.widgets[3].model.executionState,
                    running: !!row && row.classList.contains('quiv-dash-status-running'),
                    enabled: !!button && !button.disabled, moving: !!bar && parseFloat(bar.style.width) >= 3};
        }"""
        )
        c = state["counts"]
        if (
            all(n is not None for n in c[:3])
            and c[3] is None
            and state["last"] == "running"
            and state["running"]
            and state["enabled"]
            and state["moving"]
        ):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"the last cell never ran with patient running: {state}")


def _check(nb, app: str, kind: str, *, subshells: bool = True) -> None:
    if not subshells:
        # What a frontend without subshell support does (and the user setting "Kernel Comms over subshells":
        # disabled): comm messages go to the main shell, so only quiv_nb's wait can let them in.
        off = nb.page.evaluate(
            """() => { const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
            k.commsOverSubshells = 'disabled'; return k.commsOverSubshells; }"""
        )
        assert off == "disabled", off
        kind_name = f"{kind}-main-shell"
    else:
        kind_name = kind
    if kind == "busy" and not nb.page.evaluate(
        "async () => { const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;"
        " await k.info; return k.supportsSubshells; }"
    ):
        pytest.skip("the kernel has no subshells (ipykernel < 7): a click waits for a busy cell")
    nb.run_all()
    _wait_until_busy_in_last_cell(nb)
    result = nb.page.evaluate(
        _JS_CANCEL_AND_TIME, {"barCell": BAR_CELL, "waitCell": WAIT_CELL, "timeout": 30, "grey": GREY}
    )
    assert "error" not in result, result
    print(f"\n[{app}, {kind_name}] click -> grey bar {result['t'] * 1000:.0f} ms")
    assert result["busyBefore"], f"the last cell was not running at the click: {result}"
    if kind == "busy":  # (a wait returns as the job ends, so its cell may finish before the bar is repainted)
        assert result["busyAfter"], f"the sleeping cell ended before the bar turned grey: {result}"
    assert 0 < result["percent"] < 100, f"the job should stop part-way: {result}"
    assert result["t"] < WITHIN, f"the bar turned grey {result['t']:.2f}s after the click"
    if kind == "wait":
        # The wait ends with the job: `%quiv wait` raises JobCancelledError for a cancelled job (it has no result).
        nb.cell(WAIT_CELL).locator(".jp-OutputArea-output", has_text="was cancelled").wait_for(timeout=30_000)
        nb.wait_until_executed(timeout=30)
    # The dashboard catches up: the click's feedback line, and the row no longer running.
    dash = nb.cell(1).locator(".quiv-dash")
    dash.locator(".quiv-dash-message-ok", has_text="cancel requested for 'patient'").wait_for(timeout=30_000)
    nb.screenshot(f"{app}-controls-{kind_name}")
    errors = nb.error_outputs(stderr=False)
    expected = [e for e in errors if e.startswith(f"cell {WAIT_CELL}: JobCancelledError") and kind == "wait"]
    assert errors == expected, errors


@pytest.mark.parametrize("kind", ["wait", "busy"])
def test_cancel_while_busy_in_lab(lab_page, kind):
    _check(lab_page(f"controls-{kind}.ipynb"), "lab", kind)


@pytest.mark.parametrize("kind", ["wait", "busy"])
def test_cancel_while_busy_in_notebook7(notebook_page, kind):
    _check(notebook_page(f"controls-{kind}.ipynb"), "notebook7", kind)


@pytest.mark.parametrize("app", ["lab", "notebook7"])
def test_cancel_during_quiv_wait_without_subshells(request, app):
    page = request.getfixturevalue("lab_page" if app == "lab" else "notebook_page")
    _check(page("controls-wait.ipynb"), app, "wait", subshells=False)
