"""The dashboard in a real kernel: rows from comm state, buttons pressed the way a frontend does.

A click is sent exactly as JupyterLab sends it: a `comm_msg` with `{"method": "custom",
"content": {"event": "click"}}` to the button's comm, on the shell channel.
"""

from __future__ import annotations

import pytest
from kernel_harness import KernelSession, started_with

pytestmark = pytest.mark.kernel

SETUP = """
%load_ext quiv_nb
import time, quiv_nb

def beat():
    return time.strftime('%H:%M:%S')

def patient(_stop_event, _progress_hook):
    for i in range(600):
        _progress_hook(step=i, total=600)
        if _stop_event.wait(0.1):
            return 'stopped'
    return 'done'
"""


@pytest.fixture(scope="module")
def kernel():
    yield from started_with(SETUP)


def _rows(kernel: KernelSession) -> dict[str, dict[str, str]]:
    """task name -> {'row': comm id, 'cancel'/'pause'/'resume'/'run': button comm ids, 'classes': ...}."""
    states = kernel.widget_states()
    rows = {}
    for comm_id, state in states.items():
        if "quiv-dash-row" not in state.get("_dom_classes", ()):
            continue
        children = [c.removeprefix("IPY_MODEL_") for c in state.get("children", [])]
        found: dict[str, str] = {"row": comm_id, "classes": " ".join(state["_dom_classes"])}
        name = None
        for child in _descendants(states, children):
            classes = states[child].get("_dom_classes", ())
            if "quiv-dash-name" in classes:
                name = states[child]["value"]
            for button in ("cancel", "pause", "resume", "run"):
                if f"quiv-dash-{button}" in classes:
                    found[button] = child
        if name is not None:
            rows[_strip_tags(name)] = found
    return rows


def _descendants(states: dict[str, dict], ids: list[str]) -> list[str]:
    out, stack = [], list(ids)
    while stack:
        cid = stack.pop()
        if cid not in states:
            continue
        out.append(cid)
        stack.extend(c.removeprefix("IPY_MODEL_") for c in states[cid].get("children", []))
    return out


def _strip_tags(text: str) -> str:
    import re

    return re.sub(r"<[^>]+>", "", text).strip()


def _click(kernel: KernelSession, comm_id: str) -> None:
    content = {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}}
    kernel.kc.shell_channel.send(kernel.kc.session.msg("comm_msg", content))


def test_dashboard_lists_tasks_and_its_buttons_act_on_the_scheduler(kernel):
    kernel.run("%quiv add heartbeat beat --every 30 --bar none")
    kernel.run("%quiv add patient patient --once --bar widget")
    kernel.run("%quiv")
    rows = kernel.wait_for(
        lambda: (r := _rows(kernel)) and {"heartbeat", "patient"} <= set(r) and r,
        timeout=20,
        what="dashboard rows for both tasks",
    )

    _click(kernel, rows["heartbeat"]["pause"])
    kernel.wait_for(
        lambda: "quiv-dash-status-paused" in _rows(kernel)["heartbeat"]["classes"], timeout=10, what="row paused"
    )
    assert (
        kernel.value("quiv_nb.get_scheduler().get_task(quiv_nb.magics.QuivMagics._task_id('heartbeat')).status.value")
        == "paused"
    )

    _click(kernel, rows["heartbeat"]["resume"])
    kernel.wait_for(
        lambda: "quiv-dash-status-paused" not in _rows(kernel)["heartbeat"]["classes"], timeout=10, what="resumed"
    )

    before = kernel.value(
        "len(quiv_nb.get_scheduler().get_all_jobs(task_id=quiv_nb.magics.QuivMagics._task_id('heartbeat')))"
    )
    kernel.wait_for(lambda: "quiv-dash-status-running" not in _rows(kernel)["heartbeat"]["classes"], 10, "idle")
    _click(kernel, rows["heartbeat"]["run"])
    kernel.wait_for(
        lambda: (
            kernel.value(
                "len(quiv_nb.get_scheduler().get_all_jobs(task_id=quiv_nb.magics.QuivMagics._task_id('heartbeat')))"
            )
            > before
        ),
        timeout=10,
        what="run-now made a job",
    )

    _click(kernel, rows["patient"]["cancel"])
    kernel.wait_for(
        lambda: (
            kernel.value("[j.status.value for j in quiv_nb.get_scheduler().get_all_jobs() if j.task_name == 'patient']")
            == ["cancelled"]
        ),
        timeout=10,
        what="patient cancelled",
    )
    # The patient job's own bar ends in the cancelled style: its display becomes the static final rendering.
    kernel.wait_for(
        lambda: any(
            "quiv-bar quiv-static quiv-cancelled" in m["content"]["data"].get("text/html", "")
            for m in kernel.messages(msg_type="update_display_data")
        ),
        timeout=10,
        what="cancelled bar",
    )
