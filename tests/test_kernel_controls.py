"""Dashboard buttons act while the kernel is busy: a real kernel, clicks sent as a frontend sends them.

- During quiv_nb's own waits (`%quiv wait`, `wait_for_task` in a cell) a Cancel click on the main
  shell is handled within the wait (both ipykernel lines: 7.x takes comm messages beside the cell,
  6.x polls them with jupyter-ui-poll).
- During an arbitrary busy cell (`time.sleep`), a Cancel or Pause click sent on a kernel subshell (as
  JupyterLab >= 4.4 and Notebook >= 7.4 send comm messages) is handled at once (ipykernel >= 7 only).
Each kernel patch made for a wait is gone once the wait ends, also after an interrupt.
"""

from __future__ import annotations

import time

import pytest
from kernel_harness import KernelSession, started_with
from test_kernel_dashboard import _click, _rows

pytestmark = pytest.mark.kernel

JOB_SECONDS = 60  # how long `patient` runs unless cancelled

SETUP = f"""
%load_ext quiv_nb
import time, quiv_nb

def patient(_stop_event, _progress_hook):
    for i in range({JOB_SECONDS * 10}):
        _progress_hook(step=i, total={JOB_SECONDS * 10})
        if _stop_event.wait(0.1):
            return 'stopped'
    return 'done'

def beat():
    return time.strftime('%H:%M:%S')

def _patches():
    '''What a wait may patch, as identities: the main shell's receive callback (ipykernel 7.x)
    or the execute_request handler (ipykernel 6.x, jupyter-ui-poll).'''
    k = get_ipython().kernel
    sct = getattr(k, 'shell_channel_thread', None)
    stream = sct.manager.get_shell_channel_to_subshell_pair(None).to_stream if sct else None
    return (id(stream._recv_callback) if stream else None, k.shell_handlers['execute_request'])
"""


@pytest.fixture(scope="module")
def kernel():
    yield from started_with(SETUP)


def _cancelled_bar_at(kernel: KernelSession, since: float) -> float | None:
    """Arrival time of the first update after `since` that draws a bar as cancelled.

    Either a widget update (a live bar's classes) or the static final rendering that replaces a
    finished bar's display (`update_display_data` with `quiv-static quiv-cancelled`).
    """
    for t, m in kernel.log_between(since):
        if m["msg_type"] == "update_display_data":
            html = m["content"].get("data", {}).get("text/html", "")
            if "quiv-static" in html and "quiv-cancelled" in html:
                return t
        elif m["msg_type"] == "comm_msg" and m["content"].get("data", {}).get("method") == "update":
            if "quiv-cancelled" in m["content"]["data"].get("state", {}).get("_dom_classes", ()):
                return t
    return None


def _start_patient_with_dashboard(kernel: KernelSession, reset: bool = True) -> dict[str, str]:
    if reset:
        kernel.run("quiv_nb.kernel.reset_scheduler(0)")
    kernel.run("%quiv add patient patient --once --bar widget")
    kernel.run("%quiv")
    return kernel.wait_for(
        lambda: (r := _rows(kernel).get("patient")) and "quiv-dash-status-running" in r["classes"] and r,
        timeout=20,
        what="the patient row, running",
    )


# Printed by a callback the kernel loop runs only once the cell's wait turns it: the wait has begun.
# (An empty Context: a callback in the cell's own context would be held until the cell ends.)
IN_THE_WAIT = (
    "import asyncio, contextvars\n"
    "asyncio.get_running_loop().call_soon(print, 'IN-THE-WAIT', context=contextvars.Context())\n"
)


def _in_the_wait(kernel: KernelSession, since: int) -> None:
    kernel.wait_for(lambda: "IN-THE-WAIT" in kernel.stream_text(since=since), timeout=20, what="the wait to begin")


def _busy_with(kernel: KernelSession, msg_id: str) -> None:
    kernel.wait_for(
        lambda: any(m["content"].get("execution_state") == "busy" for m in kernel.messages(msg_id, "status")),
        timeout=20,
        what="the cell to start",
    )


@pytest.mark.parametrize(
    "wait",
    [
        "%quiv wait patient --timeout 120",
        "quiv_nb.get_scheduler().wait_for_task(quiv_nb.magics.QuivMagics._task_id('patient'), timeout=120)",
    ],
    ids=["magic", "wait_for_task"],
)
def test_cancel_click_during_a_quiv_wait_acts_within_the_wait(kernel, wait):
    no_concurrent_comms = (
        "import inspect, ipykernel\n"
        "print(ipykernel.version_info[0] >= 7"
        " and 'concurrent' not in inspect.signature(get_ipython().kernel.dispatch_shell).parameters)"
    )
    if kernel.run(no_concurrent_comms).stdout.strip() == "True":
        pytest.skip(
            "ipykernel 7.0-7.3 (the newest on Python 3.10) has no concurrent comm path: a click during a wait "
            "is handled when the wait ends (docs/design.md, 'Controls while a cell is busy')"
        )
    row = _start_patient_with_dashboard(kernel)
    patches = kernel.value("_patches()[0]"), kernel.run("print(_patches()[1])").stdout
    mark = kernel.mark()
    waiting = kernel.submit(IN_THE_WAIT + wait)
    _in_the_wait(kernel, mark)

    clicked = time.monotonic()
    _click(kernel, row["cancel"])
    cell = kernel.result(waiting, timeout=JOB_SECONDS * 2)
    ended = time.monotonic()

    # `%quiv wait` raises for a cancelled job (it has no result); `wait_for_task` returns the job.
    assert cell.ok if "%quiv" not in wait else cell.error["ename"] == "JobCancelledError", cell.error
    drawn = kernel.wait_for(lambda: _cancelled_bar_at(kernel, clicked), timeout=10, what="the bar drawn cancelled")
    statuses = kernel.value(
        "[j.status.value for j in quiv_nb.get_scheduler().get_all_jobs() if j.task_name == 'patient']"
    )
    assert statuses == ["cancelled"]
    # The key fact: the click ended the job long before it would have ended on its own, and the
    # wait returned with it (without the fix the click is handled only after the wait, at ~60 s).
    assert ended - clicked < JOB_SECONDS / 2, f"wait ended {ended - clicked:.1f}s after the click"
    print(
        f"\n[{wait.split()[0]}] click -> bar cancelled {drawn - clicked:.3f}s, -> wait returned {ended - clicked:.3f}s"
    )
    # Nothing the wait patched is left behind.
    assert (kernel.value("_patches()[0]"), kernel.run("print(_patches()[1])").stdout) == patches


def test_interrupted_wait_restores_the_kernel(kernel):
    _start_patient_with_dashboard(kernel)
    patches = kernel.value("_patches()[0]"), kernel.run("print(_patches()[1])").stdout
    mark = kernel.mark()
    waiting = kernel.submit(IN_THE_WAIT + "%quiv wait patient --timeout 120")
    _in_the_wait(kernel, mark)
    kernel.interrupt()
    cell = kernel.result(waiting, timeout=30)
    assert cell.error is not None and cell.error["ename"] == "KeyboardInterrupt"
    assert (kernel.value("_patches()[0]"), kernel.run("print(_patches()[1])").stdout) == patches
    # The job was not touched by the interrupt, and a click still reaches it afterwards.
    assert kernel.value("quiv_nb.get_scheduler().stats().active_jobs") == 1
    kernel.run("%quiv cancel patient")
    assert kernel.run("%quiv wait patient --timeout 30", allow_error=True).error["ename"] == "JobCancelledError"


def _create_subshell(kernel: KernelSession) -> str:
    """Ask for a subshell on the control channel, exactly as JupyterLab does for comms."""
    request = kernel.kc.session.msg("create_subshell_request", {})
    kernel.kc.control_channel.send(request)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        reply = kernel.kc.get_control_msg(timeout=20)
        if reply["parent_header"].get("msg_id") == request["header"]["msg_id"]:
            assert reply["content"]["status"] == "ok", reply["content"]
            return reply["content"]["subshell_id"]
    raise TimeoutError("no create_subshell_reply")


def _click_on(kernel: KernelSession, comm_id: str, subshell_id: str) -> None:
    content = {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}}
    msg = kernel.kc.session.msg("comm_msg", content)
    msg["header"]["subshell_id"] = subshell_id
    kernel.kc.shell_channel.send(msg)


def test_cancel_and_pause_clicks_on_a_subshell_act_while_any_cell_is_busy(kernel):
    if not kernel.value("'kernel subshells' in get_ipython().kernel.kernel_info.get('supported_features', [])"):
        pytest.skip("this ipykernel has no subshells (ipykernel < 7)")
    kernel.run("quiv_nb.kernel.reset_scheduler(0)")
    kernel.run("%quiv add beat beat --every 30 --bar none")
    row = _start_patient_with_dashboard(kernel, reset=False)
    subshell = _create_subshell(kernel)
    busy = kernel.submit(f"time.sleep({JOB_SECONDS})")
    _busy_with(kernel, busy)

    clicked = time.monotonic()
    _click_on(kernel, row["cancel"], subshell)
    drawn = kernel.wait_for(lambda: _cancelled_bar_at(kernel, clicked), timeout=JOB_SECONDS / 2, what="bar cancelled")
    still_busy = not any(m["content"].get("execution_state") == "idle" for m in kernel.messages(busy, "status"))
    assert still_busy, "the sleeping cell ended before the click took effect"
    print(f"\n[busy cell, subshell click] click -> bar cancelled {drawn - clicked:.3f}s")
    _click_on(kernel, _rows(kernel)["beat"]["pause"], subshell)
    kernel.wait_for(
        lambda: "quiv-dash-status-paused" in _rows(kernel)["beat"]["classes"], timeout=JOB_SECONDS / 2, what="paused"
    )
    assert not any(m["content"].get("execution_state") == "idle" for m in kernel.messages(busy, "status"))
    kernel.interrupt()
    assert kernel.result(busy, timeout=30).error["ename"] == "KeyboardInterrupt"
    assert kernel.value(
        "[j.status.value for j in quiv_nb.get_scheduler().get_all_jobs() if j.task_name == 'patient']"
    ) == ["cancelled"]
