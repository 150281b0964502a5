"""Opt-in notifications in JupyterLab and Notebook 7: a job that ends while the tab is hidden shows a desktop
notification; while the tab is visible it does not.

The browser context grants the page the notifications permission. Headless Chromium reports every tab as
visible (a background tab too: checked with two tabs and ``bring_to_front``), so the test makes the page hidden by
overriding ``document.visibilityState`` / ``document.hidden`` and firing ``visibilitychange``. ``window.Notification``
is wrapped by a subclass that records each call and still constructs the real notification. Jobs are started
through the kernel connection the page already has, as a click would.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

NOTEBOOK = "notify.ipynb"
NIGHTLY_CELL, ETL_CELL = 2, 3

# Installed in the page (after load: the widget looks the names up when a job ends, not before).
_SPY = """() => {
    window.__quivNotes = [];
    const Real = window.Notification;
    class Spy extends Real {
        constructor(title, options) {
            window.__quivNotes.push({title, body: (options || {}).body, tag: (options || {}).tag});
            super(title, options);
        }
    }
    window.Notification = Spy;
    window.__quivHide = (hidden) => {
        const state = hidden ? 'hidden' : 'visible';
        Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => state});
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
        document.dispatchEvent(new Event('visibilitychange'));
    };
}"""

_EXECUTE = """async (code) => {
    const w = window.jupyterapp.shell.currentWidget;
    const future = w.sessionContext.session.kernel.requestExecute({code, store_history: false});
    const reply = await future.done;
    return reply.content.status;
}"""


def _run_job(nb, task_var: str) -> None:
    """Run one job of the task in the kernel and wait for it to end (through the page's own kernel connection)."""
    code = f"q.wait_for_job(q.run_task_immediately({task_var}), timeout=30)"
    assert nb.page.evaluate(_EXECUTE, code) == "ok"


def _notes(nb) -> list[dict]:
    return nb.page.evaluate("() => window.__quivNotes")


def _check_notifications(nb, shot: str) -> None:
    nb.page.context.grant_permissions(["notifications"])
    nb.page.evaluate(_SPY)
    nb.run_all()
    nb.wait_until_executed()
    assert nb.error_outputs() == []
    nightly = nb.cell(NIGHTLY_CELL).locator(".quiv-notify")
    etl = nb.cell(ETL_CELL).locator(".quiv-notify")
    nightly.filter(has_text="Notifies when a job of 'nightly' ends while this tab is hidden").wait_for()
    etl.filter(has_text="'etl'").wait_for()
    assert nightly.get_attribute("data-permission") == "granted"
    assert nightly.locator(".quiv-notify-enable").is_hidden()  # permission granted: no button

    # Visible tab: the widget hears of the job end, no desktop notification.
    _run_job(nb, "nightly_id")
    nightly.locator(".quiv-notify-last", has_text="Last: nightly completed").wait_for()
    assert _notes(nb) == []

    nb.page.evaluate("() => window.__quivHide(true)")
    _run_job(nb, "nightly_id")
    nb.page.wait_for_function("() => window.__quivNotes.length === 1")
    _run_job(nb, "etl_id")
    nb.page.wait_for_function("() => window.__quivNotes.length === 2")
    completed, failed = _notes(nb)
    assert completed["title"] == "nightly completed"
    assert re.fullmatch(r"done in \d+\.\d s \u2192 42", completed["body"]), completed
    assert failed["title"] == "etl failed"
    assert re.fullmatch(r"ValueError: disk full \(after \d+\.\d s\)", failed["body"]), failed
    assert completed["tag"] != failed["tag"]

    nb.page.evaluate("() => window.__quivHide(false)")
    etl.locator(".quiv-notify-last", has_text="Last: etl failed").wait_for()
    path = nb.screenshot(f"{shot}-notify", cell=NIGHTLY_CELL)
    shutil.copy(path, Path("/tmp") / path.name)
    assert nb.error_outputs() == []


def test_notifications_in_lab(lab_page):
    _check_notifications(lab_page(NOTEBOOK), "lab")


def test_notifications_in_notebook7(notebook_page):
    _check_notifications(notebook_page(NOTEBOOK), "notebook7")


def test_enable_button_when_permission_not_decided(lab_page):
    """Without a decision the widget offers the button; a click asks the browser (granted here) and hides it."""
    nb = lab_page(NOTEBOOK)
    nb.run_all()
    nb.wait_until_executed()
    widget = nb.cell(NIGHTLY_CELL).locator(".quiv-notify")
    widget.filter(has_text="Notify when a job of 'nightly' ends?").wait_for()
    button = widget.locator(".quiv-notify-enable")
    assert button.is_visible()
    path = nb.screenshot("lab-notify-enable", cell=NIGHTLY_CELL)
    shutil.copy(path, Path("/tmp") / path.name)
    nb.page.context.grant_permissions(["notifications"])
    button.click()
    widget.filter(has_text="Notifies when a job of 'nightly' ends").wait_for()
    assert button.is_hidden()
