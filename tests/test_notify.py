"""`quiv_nb.render.notify`: notes for job ends, through a real scheduler's listeners and the render pump.

No kernel here: the notifier's `send` is a list, standing where the widget's `send` sits in a kernel
(tests/test_kernel_notify.py and tests/browser/test_notify.py cover the widget and the browser).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import WAIT, wait_until

from quiv_nb import Event, Quiv
from quiv_nb.errors import TaskNotFoundError
from quiv_nb.models import Job, JobStatus
from quiv_nb.render.notify import MIN_INTERVAL, Note, NoteBox, Notifier, attach, note_for
from quiv_nb.render.pump import RenderPump, get_pump


class Sink:
    """Collects the messages a notifier sends (on the pump thread)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, message: dict[str, str]) -> None:
        with self._lock:
            self.messages.append(message)

    def titles(self) -> list[str]:
        with self._lock:
            return [m["title"] for m in self.messages]


def ok() -> str:
    return "fine"


def boom() -> None:
    raise ValueError("disk full\nsecond line of detail")


def job(status: JobStatus, **fields: Any) -> Job:
    now = datetime.now(timezone.utc)
    base: dict[str, Any] = dict(job_id="j1", task_id="t1", status=status, started_at=now, ended_at=now)
    base.setdefault("duration_seconds", 1.25)
    return Job(**{**base, **fields})


# ------------------------------------------------------------------------------------------ pure parts


def test_note_for_a_completed_job_names_duration_and_result() -> None:
    note = note_for("train", job(JobStatus.COMPLETED, result={"loss": 0.1}))
    assert note == Note("train completed", "done in 1.2 s \u2192 {'loss': 0.1}", "quiv-t1")
    assert note_for("train", job(JobStatus.COMPLETED, duration_seconds=None)).body == "done"
    assert note.message() == {"kind": "quiv-notify", "title": "train completed", "body": note.body, "tag": "quiv-t1"}


def test_note_for_a_failed_job_shows_the_last_error_line_shortened() -> None:
    note = note_for("etl", job(JobStatus.FAILED, error_message="ValueError: " + "x" * 500 + "\nlast line"))
    assert note.title == "etl failed"
    assert note.body == "last line (after 1.2 s)"
    long = note_for("etl", job(JobStatus.FAILED, error_message="E" * 500, duration_seconds=None))
    assert len(long.body) == 200 and long.body.endswith("\u2026")
    assert note_for("etl", job(JobStatus.FAILED, error_message=None, duration_seconds=None)).body == "failed"


def test_note_box_keeps_the_latest_and_counts_the_rest() -> None:
    box = NoteBox()
    assert box.take() is None
    box.put(Note("a completed", "done", "t"))
    assert box.take() == Note("a completed", "done", "t")
    for title in ("a completed", "a failed", "a completed"):
        box.put(Note(title, "body", "t"))
    assert box.take() == Note("a completed", "body\n(+2 earlier job ends)", "t")
    assert box.take() is None


# ------------------------------------------------------------------------------------------ with a scheduler


def test_completed_and_failed_jobs_of_the_task_are_sent(quiv: Quiv) -> None:
    good = quiv.add_task("good", ok, interval=3600, delay=3600)
    bad = quiv.add_task("bad", boom, interval=3600, delay=3600)
    sink = Sink()
    notifier = Notifier(quiv, good, sink, min_interval=0.0)
    other = Notifier(quiv, bad, sink, min_interval=0.0)
    notifier.attach()
    other.attach()

    quiv.wait_for_job(quiv.run_task_immediately(good), timeout=WAIT)
    wait_until(lambda: sink.titles() == ["good completed"])
    quiv.wait_for_job(quiv.run_task_immediately(bad), timeout=WAIT)
    wait_until(lambda: len(sink.messages) == 2)
    done, failed = sink.messages
    assert done["body"].startswith("done in ") and done["body"].endswith("\u2192 'fine'")
    assert failed["title"] == "bad failed" and failed["body"].startswith("second line of detail (after ")
    assert done["tag"] != failed["tag"]
    notifier.detach()
    other.detach()


def test_detach_and_task_removal_stop_notifications(quiv: Quiv) -> None:
    task_id = quiv.add_task("job", ok, interval=3600, delay=3600)
    sink = Sink()
    notifier = Notifier(quiv, task_id, sink, min_interval=0.0)
    notifier.attach()
    notifier.detach()
    quiv.wait_for_job(quiv.run_task_immediately(task_id), timeout=WAIT)
    assert get_pump().flush(timeout=WAIT)
    assert sink.messages == []  # the job ended after detach

    notifier.attach()
    assert notifier.attached
    quiv.remove_task(task_id)
    wait_until(lambda: not notifier.attached)  # TASK_REMOVED detached it


def test_a_run_once_job_that_ended_before_attach_is_caught_up(quiv: Quiv) -> None:
    since = datetime.now(timezone.utc) - timedelta(milliseconds=1)
    done = threading.Event()
    quiv.add_listener(Event.JOB_COMPLETED, lambda event, task, job: done.set())  # before the job can end
    task_id = quiv.add_task("quick", ok, run_once=True)
    quiv.wait_for_task(task_id, timeout=WAIT)  # a run-once task that finished returns its job at once
    assert done.wait(WAIT)
    sink = Sink()
    Notifier(quiv, task_id, sink, min_interval=0.0).attach()  # no `since`: nothing to catch up
    assert get_pump().flush(timeout=WAIT)
    assert sink.messages == []

    late = Notifier(quiv, task_id, sink, min_interval=0.0)
    late.attach(since=since)
    wait_until(lambda: sink.titles() == ["quick completed"])
    late.detach()


def test_a_run_once_notifier_detaches_after_the_last_job(quiv: Quiv) -> None:
    gate = threading.Event()
    task_id = quiv.add_task("once", lambda: gate.wait(WAIT), run_once=True)
    sink = Sink()
    notifier = Notifier(quiv, task_id, sink, min_interval=0.0)
    notifier.attach()
    gate.set()
    wait_until(lambda: sink.titles() == ["once completed"])
    wait_until(lambda: not notifier.attached)  # the task is gone: nothing more to listen for


def test_a_burst_of_job_ends_is_folded_into_few_messages(quiv: Quiv) -> None:
    """At most one message per `min_interval`: 20 quick job ends cost a few messages, which together
    count every end (sent, or folded into a later message's count)."""
    pump = RenderPump()
    task_id = quiv.add_task("burst", ok, interval=3600, delay=3600)
    sink = Sink()
    notifier = Notifier(quiv, task_id, sink, pump=pump, min_interval=MIN_INTERVAL)
    notifier.attach()
    try:
        t0 = time.monotonic()
        for _ in range(20):
            quiv.wait_for_job(quiv.run_task_immediately(task_id), timeout=WAIT)
        intervals = (time.monotonic() - t0) / MIN_INTERVAL
        assert pump.flush(timeout=WAIT)
        sent = list(sink.messages)
        assert 1 <= len(sent) <= intervals + 2, (len(sent), intervals)
        folded = sum(int(m["body"].split("(+")[1].split()[0]) for m in sent if "(+" in m["body"])
        assert len(sent) + folded == 20
    finally:
        notifier.detach()
        pump.shutdown()


def test_attach_outside_a_kernel_does_nothing(quiv: Quiv) -> None:
    task_id = quiv.add_task("job", ok, interval=3600, delay=3600)
    assert attach(quiv, task_id) is None  # no browser to notify
    with pytest.raises(TaskNotFoundError):
        attach(quiv, "no-such-task")


# ---------------------------------------------------------------------- the notify hook of add_task


@pytest.fixture
def attachers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Register a recording attacher in a fresh registry (the kernel package's own one stays out of it)."""
    import quiv_nb.hooks as hooks

    monkeypatch.setattr(hooks, "_notify_attachers", [])
    calls: list[tuple[Any, ...]] = []
    hooks.register_notify_attacher(
        lambda scheduler, task_id, since: calls.append((scheduler, task_id, since, threading.get_ident()))
    )
    return calls


def test_add_task_notify_true_calls_the_attacher_on_the_adding_thread(quiv: Quiv, attachers: list) -> None:
    before = datetime.now(timezone.utc)
    task_id = quiv.add_task("fast", ok, run_once=True, notify=True)
    ((scheduler, seen_id, since, thread),) = attachers
    assert scheduler is quiv and seen_id == task_id and thread == threading.get_ident()
    assert before <= since <= datetime.now(timezone.utc)
    job = quiv.wait_for_task(task_id, timeout=WAIT)
    assert job.ended_at is not None and since <= job.ended_at  # a job that ends before attach is still caught up


def test_add_task_without_notify_calls_no_attacher(quiv: Quiv, attachers: list) -> None:
    quiv.add_task("quiet", ok, interval=3600, delay=3600)
    assert attachers == []


def test_a_failing_attacher_is_logged_and_the_task_stays_added(
    quiv: Quiv, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import quiv_nb.hooks as hooks

    def broken(scheduler: Any, task_id: str, since: datetime) -> None:
        raise RuntimeError("no frontend")

    monkeypatch.setattr(hooks, "_notify_attachers", [])
    hooks.register_notify_attacher(broken)
    task_id = quiv.add_task("kept", ok, interval=3600, delay=3600, notify=True)
    assert quiv.get_task(task_id).notify is True
    assert "could not set up notifications for task" in caplog.text and "no frontend" in caplog.text
