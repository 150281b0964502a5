"""The quickstart magics and the dashboard's honest late answers, in whatever kernel this venv has.

CI runs this file in three venvs (.ci/run): a Colab-like one (ipykernel 6.17, ipywidgets 7.7,
IPython 7.34, jupyter_client 7.4), ipykernel 6.29, and the latest releases. Clicks are sent as a
frontend without comm subshells sends them (VS Code, Colab, classic Notebook): on the main shell
channel, so one sent during a busy cell is handled when the cell ends.
"""

from __future__ import annotations

import importlib.metadata

import pytest
from kernel_harness import KernelSession, started_with
from test_kernel_dashboard import _click, _rows

pytestmark = pytest.mark.kernel

VIEW = "application/vnd.jupyter.widget-view+json"
SETUP = """
import time, quiv_nb
def work(n=8):
    for i in range(n):
        time.sleep(0.1)
    return 'ok'
"""


@pytest.fixture(scope="module")
def kernel():
    yield from started_with(SETUP)


def _errors(kernel: KernelSession, msg_id: str) -> list[str]:
    """Tracebacks and stderr lines this cell caused: what the person would see as a failure."""
    out = [m["content"]["ename"] for m in kernel.messages(parent=msg_id, msg_type="error")]
    return out + [line for line in kernel.cell_text(msg_id).splitlines() if "Error" in line]


def test_the_quickstart_magics_run_without_a_traceback_and_show_widgets(kernel):
    ext = kernel.run("%load_ext quiv_nb")
    assert _errors(kernel, ext.msg_id) == []
    run = kernel.run("%quiv run work")
    assert run.ok and _errors(kernel, run.msg_id) == []
    shown = [m["content"]["data"] for m in kernel.messages(parent=run.msg_id, msg_type="display_data")]
    bar = next(d for d in shown if VIEW in d)
    assert bar["text/plain"]  # what a frontend without widgets shows
    model = bar[VIEW]["model_id"]
    kernel.wait_for(lambda: model in kernel.widget_states(), timeout=10, what="the bar's model")
    assert "quiv-bar" in kernel.widget_states()[model]["_dom_classes"]

    dash = kernel.run("%quiv")
    assert dash.ok and _errors(kernel, dash.msg_id) == []
    views = [m["content"]["data"] for m in kernel.messages(parent=dash.msg_id, msg_type="display_data")]
    root = next(d for d in views if VIEW in d)[VIEW]["model_id"]
    assert "quiv-dash" in kernel.widget_states()[root]["_dom_classes"]

    wait = kernel.run("x = %quiv wait")
    assert wait.ok and _errors(kernel, wait.msg_id) == []
    assert kernel.value("x") == "ok"
    # the bar's display ends as its static final rendering (what a saved notebook keeps)
    kernel.wait_for(
        lambda: "quiv-static quiv-completed" in str(kernel.static_bars(run.msg_id)),
        timeout=10,
        what="the final bar",
    )


def test_capabilities_are_detected_once_in_the_kernel(kernel):
    caps = kernel.value("(lambda c: (c.widgets, c.subshells))(__import__('quiv_nb').hooks.capabilities())")
    widgets = int(importlib.metadata.version("ipywidgets").split(".")[0])
    subshells = int(importlib.metadata.version("ipykernel").split(".")[0]) >= 7
    assert caps == (widgets, subshells)


def test_a_cancel_click_handled_after_its_job_ended_says_how_the_job_ended(kernel):
    kernel.run("%load_ext quiv_nb")
    kernel.run("%quiv add short work --once --bar none")
    kernel.run("%quiv")
    row = kernel.wait_for(
        lambda: (r := _rows(kernel).get("short")) and "quiv-dash-status-running" in r["classes"] and r,
        timeout=20,
        what="the short job running in the dashboard",
    )
    busy = kernel.submit("time.sleep(3)")  # the job (0.8 s) ends while this cell still runs
    kernel.wait_for(lambda: kernel.messages(parent=busy, msg_type="status"), timeout=10, what="the busy cell")
    _click(kernel, row["cancel"])  # on the main shell: queued behind the cell
    kernel.result(busy)
    messages = kernel.widgets_of("HTMLModel")
    kernel.wait_for(
        lambda: any("had already completed" in s.get("value", "") for s in kernel.widgets_of("HTMLModel").values()),
        timeout=10,
        what=f"the late answer (status lines: {[s.get('value') for s in messages.values()][-3:]})",
    )
    assert kernel.value(
        "[j.status.value for j in quiv_nb.get_scheduler().get_all_jobs() if j.task_name == 'short']"
    ) == ["completed"]


def test_notify_without_anywidget_says_so_once_and_the_task_still_runs(kernel):
    kernel.run(
        "from quiv_nb import hooks\n"
        "hooks.register_capability_probe(lambda: hooks.Capabilities(widgets=7, anywidget=False))"
    )
    try:
        cell = kernel.run("nid = quiv_nb.get_scheduler().add_task('noted', work, run_once=True, notify=True)")
        assert cell.ok and _errors(kernel, cell.msg_id) == []
        assert cell.stdout.count("need anywidget (pip install anywidget)") == 1, cell.stdout
        assert kernel.run("x = %quiv wait noted").ok and kernel.value("x") == "ok"
    finally:
        kernel.run("hooks.register_capability_probe(quiv_nb.kernel.detect_capabilities)")
