"""The notify widget in a real kernel: displayed in the cell that attaches it, and sent one custom message per
job end, read from the iopub messages a frontend receives."""

from __future__ import annotations

from typing import Any

import pytest
from kernel_harness import KernelSession, started_with

pytestmark = pytest.mark.kernel

SETUP = """
import quiv_nb
from quiv_nb.render.notify import attach

q = quiv_nb.get_scheduler()

def nightly():
    return 42

def etl():
    raise ValueError('disk full')
"""


@pytest.fixture(scope="module")
def kernel():
    yield from started_with(SETUP)


def _custom(kernel: KernelSession, comm_id: str) -> list[dict[str, Any]]:
    """The custom widget messages sent to `comm_id`, in order."""
    return [
        m["content"]["data"]["content"]
        for m in kernel.messages(msg_type="comm_msg")
        if m["content"]["comm_id"] == comm_id and m["content"]["data"].get("method") == "custom"
    ]


def _notify_widget(kernel: KernelSession, code: str) -> str:
    """Run `code` (which attaches a notifier); return the comm id of the widget it displayed in that cell."""
    cell = kernel.run(code)
    assert cell.ok, cell.error
    widgets = kernel.widgets_opened_by(cell.msg_id)
    notify = [cid for cid, state in widgets.items() if "_esm" in state]
    assert len(notify) == 1, widgets
    shown = [  # (a job that failed at once also shows its failure note there: a display without a widget)
        m["content"]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        for m in kernel.messages(parent=cell.msg_id, msg_type="display_data")
        if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
    ]
    assert shown == notify  # displayed in the cell that attached it, once
    return notify[0]


def test_the_widget_receives_a_message_per_job_end(kernel: KernelSession) -> None:
    comm_id = _notify_widget(kernel, "t = q.add_task('nightly', nightly, interval=3600, delay=3600)\nn = attach(q, t)")
    assert kernel.widget_states()[comm_id]["task_name"] == "nightly"
    assert _custom(kernel, comm_id) == []

    kernel.run("q.wait_for_job(q.run_task_immediately(t), timeout=30)")
    first = kernel.wait_for(lambda: _custom(kernel, comm_id), what="the notify message")
    assert len(first) == 1
    note = first[0]
    assert note["kind"] == "quiv-notify" and note["title"] == "nightly completed"
    assert note["body"].startswith("done in ") and note["body"].endswith("\u2192 42")
    assert note["tag"] == f"quiv-{kernel.value('t')}"


def test_a_failed_run_once_job_is_sent_even_if_it_ended_before_attach(kernel: KernelSession) -> None:
    code = (
        "from datetime import datetime, timezone\n"
        "since = datetime.now(timezone.utc)\n"
        "t2 = q.add_task('etl', etl, run_once=True)\n"
        "q.wait_for_task(t2, timeout=30)\n"  # the job has ended (and its task left the table) before attach
        "n2 = attach(q, t2, since=since)"
    )
    comm_id = _notify_widget(kernel, code)
    notes = kernel.wait_for(lambda: _custom(kernel, comm_id), what="the notify message")
    assert [(n["title"], n["body"].split(" (after")[0]) for n in notes] == [("etl failed", "ValueError: disk full")]
    assert kernel.value("n2.attached") is False  # nothing more can end: it stopped listening


def test_attaching_again_replaces_the_notifier(kernel: KernelSession) -> None:
    """Re-running the cell that attaches: the old widget falls silent, the new one gets the job end."""
    code = "t3 = q.add_task('again', nightly, interval=3600, delay=3600, replace=True)\nn3 = attach(q, t3)"
    first = _notify_widget(kernel, code)
    second = _notify_widget(kernel, "n3 = attach(q, t3)")
    kernel.run("q.wait_for_job(q.run_task_immediately(t3), timeout=30)")
    kernel.wait_for(lambda: _custom(kernel, second), what="the notify message")
    # Listeners have run by now; anything the old notifier had queued would be drawn by this flush.
    assert kernel.value("__import__('quiv_nb.render.pump').render.pump.get_pump().flush(10)") is True
    assert [n["title"] for n in _custom(kernel, second)] == ["again completed"]
    assert _custom(kernel, first) == []


# ---------------------------------------------------------------------- notify=True and --notify (no attach call)


def test_add_task_notify_true_shows_the_widget_in_the_adding_cell(kernel: KernelSession) -> None:
    comm_id = _notify_widget(kernel, "t4 = q.add_task('weekly', nightly, interval=3600, delay=3600, notify=True)")
    assert kernel.widget_states()[comm_id]["task_name"] == "weekly"
    kernel.run("q.wait_for_job(q.run_task_immediately(t4), timeout=30)")
    notes = kernel.wait_for(lambda: _custom(kernel, comm_id), what="the notify message")
    assert [n["title"] for n in notes] == ["weekly completed"]
    assert notes[0]["tag"] == f"quiv-{kernel.value('t4')}"


def test_add_task_without_notify_shows_no_widget(kernel: KernelSession) -> None:
    cell = kernel.run("t5 = q.add_task('quiet', nightly, interval=3600, delay=3600)")
    assert cell.ok, cell.error
    assert [cid for cid, s in kernel.widgets_opened_by(cell.msg_id).items() if "_esm" in s] == []


def test_run_notify_magic_announces_a_job_that_ends_at_once(kernel: KernelSession) -> None:
    """`%quiv run etl --notify`: the job fails within moments, maybe before the widget exists; it is announced."""
    kernel.run("%load_ext quiv_nb")
    comm_id = _notify_widget(kernel, "%quiv run etl --notify --bar none")
    notes = kernel.wait_for(lambda: _custom(kernel, comm_id), what="the notify message")
    assert [(n["title"], n["body"].split(" (after")[0]) for n in notes] == [("etl failed", "ValueError: disk full")]
    assert kernel.widget_states()[comm_id]["task_name"] == "etl"


def test_add_notify_magic_shows_the_widget_and_hears_each_job(kernel: KernelSession) -> None:
    kernel.run("%load_ext quiv_nb")
    comm_id = _notify_widget(kernel, "%quiv add hourly nightly --every 1h --delay 1h --notify --bar none")
    kernel.run("hourly_id = [t.task_id for t in q.get_all_tasks() if t.task_name == 'hourly'][0]")
    kernel.run("q.wait_for_job(q.run_task_immediately(hourly_id), timeout=30)")
    notes = kernel.wait_for(lambda: _custom(kernel, comm_id), what="the notify message")
    assert [n["title"] for n in notes] == ["hourly completed"] and notes[0]["body"].endswith("\u2192 42")


def test_cell_run_notify_shows_the_widget_in_that_cell(kernel: KernelSession) -> None:
    kernel.run("%load_ext quiv_nb")
    comm_id = _notify_widget(kernel, "%%quiv run --name celljob --notify --bar none\n6 * 7")
    notes = kernel.wait_for(lambda: _custom(kernel, comm_id), what="the notify message")
    assert [n["title"] for n in notes] == ["celljob completed"] and notes[0]["body"].endswith("\u2192 42")


def test_a_removed_tasks_notify_display_becomes_a_static_line(kernel: KernelSession) -> None:
    code = "t9 = q.add_task('gone_soon', nightly, interval=3600, delay=3600)\nn9 = attach(q, t9)"
    comm_id = _notify_widget(kernel, code)
    shown = [m for m in kernel.messages(msg_type="display_data") if comm_id in str(m["content"]["data"])]
    live = shown[-1]["content"]
    assert "desktop notifications for gone_soon" in live["data"]["text/plain"]  # for renderers without widgets
    kernel.run("q.remove_task(t9)")

    def static() -> dict | None:
        for m in kernel.messages(msg_type="update_display_data"):
            if m["content"]["transient"]["display_id"] == live["transient"]["display_id"]:
                return m["content"]["data"]
        return None

    data = kernel.wait_for(static, what="the static notify line")
    assert "application/vnd.jupyter.widget-view+json" not in data
    assert "quiv-notify-static" in data["text/html"] and "off (task removed or finished)" in data["text/plain"]
