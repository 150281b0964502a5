"""Honest controls where a click cannot act while a cell runs: JupyterLab with "Kernel Comms over subshells" off.

That user setting (``_server.NO_COMM_SUBSHELLS``) makes JupyterLab send comm messages to the main shell, as VS Code's
Jupyter extension, Colab and pre-subshell frontends do: a dashboard click during ``time.sleep(20)`` waits for the
cell. The page must say so within a second of the click (the dashboard's page-side pending note, `dash_view._ACK`),
and the click must act when the cell ends (the kernel's answer replaces the note; the bar ends cancelled).

Screenshots: ``tests/artifacts/lab-nosubshells-pending.png`` (the note while the cell sleeps) and
``lab-nosubshells-after.png`` (the answer once it ended).
"""

from __future__ import annotations

import pytest

from .test_controls import _wait_until_busy_in_last_cell

pytestmark = pytest.mark.browser

BAR_CELL, SLEEP_CELL = 2, 3
WITHIN = 1.0  # seconds from the click to the note on screen

# Runs in the page: click the running patient row's Cancel, then poll every frame until the pending note shows.
_JS_CLICK_AND_TIME_NOTE = """
async ({sleepCell, timeout}) => {
    const w = window.jupyterapp.shell.currentWidget;
    const row = [...w.node.querySelectorAll('.quiv-dash-row')]
        .find(r => (r.querySelector('.quiv-dash-name') || {}).textContent.trim() === 'patient');
    const button = row.querySelector('.quiv-dash-cancel');
    const running = () => w.content.widgets[sleepCell].model.executionState === 'running';
    const t0 = performance.now();
    button.click();
    for (;;) {
        const note = w.node.querySelector('.quiv-dash .quiv-dash-pending');
        const t = (performance.now() - t0) / 1000;
        if (note && note.offsetParent !== null) return {t, text: note.textContent, busy: running()};
        if (t > timeout) return {error: 'no pending note', t};
        await new Promise(r => requestAnimationFrame(r));
    }
}
"""


def test_a_cancel_click_during_a_busy_cell_is_acknowledged_at_once_and_acts_when_it_ends(lab_page_no_subshells):
    nb = lab_page_no_subshells("controls-busy20.ipynb")
    setting = nb.page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.commsOverSubshells"
    )
    assert setting == "disabled", setting  # the user setting reached the kernel connection
    nb.run_all()
    _wait_until_busy_in_last_cell(nb)
    result = nb.page.evaluate(_JS_CLICK_AND_TIME_NOTE, {"sleepCell": SLEEP_CELL, "timeout": 10})
    assert "error" not in result, result
    print(f"\n[lab, comm subshells off] click -> pending note {result['t'] * 1000:.0f} ms: {result['text']}")
    assert result["busy"], f"the sleeping cell ended before the note showed: {result}"
    assert result["t"] < WITHIN, f"the note showed {result['t']:.2f}s after the click"
    assert result["text"] == "Cancel 'patient': waiting for the running cell; will cancel when it ends"
    nb.screenshot("lab-nosubshells-pending", cell=1)

    nb.wait_until_executed(timeout=60)  # the sleep ends; then the queued click is handled
    dash = nb.cell(1).locator(".quiv-dash")
    dash.locator(".quiv-dash-message-ok", has_text="cancel requested for 'patient'").wait_for(timeout=30_000)
    nb.cell(BAR_CELL).locator(".quiv-bar.quiv-cancelled").wait_for(timeout=30_000)
    dash.locator(".quiv-dash-pending").wait_for(state="detached", timeout=5_000)  # the answer replaces the note
    nb.screenshot("lab-nosubshells-after")
    assert nb.error_outputs(stderr=False) == []
