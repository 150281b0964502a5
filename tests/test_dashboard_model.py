"""quiv_nb.render.dash_model: the dashboard's rows and actions, with a real scheduler and no ipywidgets."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

from conftest import wait_until

from quiv_nb import Quiv
from quiv_nb.models import Job, JobStatus, Task, TaskStatus
from quiv_nb.render.dash_model import DashboardModel
from quiv_nb.render.dash_rows import row_view
from quiv_nb.render.format import format_schedule, format_table, short_repr, text_table

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
WAIT = 5.0


def task(**fields: object) -> Task:
    base = {"task_id": "t1", "task_name": "load", "status": TaskStatus.ACTIVE, "interval": 5.0, "run_once": False,
            "next_run_at": NOW + timedelta(seconds=4)}  # fmt: skip
    base.update(fields)
    return Task(**base)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_model_imports_no_widget_library():
    code = "import sys, quiv_nb.render.dash_model, quiv_nb.render.dash_rows; print('ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_row_shows_what_a_task_runs_after_or_its_calendar_schedule():
    assert format_schedule(task()) == "every 5s"
    assert format_schedule(task(run_once=True, interval=None)) == "once"
    assert format_schedule(task(after=("extract",), interval=None, next_run_at=None)) == "after extract"
    assert format_schedule(task(after=("a", "b"), interval=None)) == "after a, b"
    assert format_schedule(task(cron="0 9 * * 1-5", interval=None)) == "cron 0 9 * * 1-5"
    assert format_schedule(task(cron="0 9 * * 1-5", timezone="Europe/Paris", interval=None)) == (
        "cron 0 9 * * 1-5 (Europe/Paris)"
    )
    assert format_schedule(task(at="09:30", interval=None)) == "daily 09:30"
    downstream = row_view(task(after=("extract",), interval=None, next_run_at=None), None, None, None, NOW, True)
    assert (downstream.interval, downstream.next_run) == ("after extract", "on upstream")


def test_a_skipped_job_shows_with_its_reason():
    skipped = Job("j1", "t1", JobStatus.SKIPPED, None, NOW - timedelta(seconds=12), None,
                  error_message="upstream 'extract' failed", task_name="load")  # fmt: skip
    view = row_view(task(), None, skipped, None, NOW, live=True)
    assert (view.last_status, view.last_error, view.last_outcome) == ("skipped", *(["upstream 'extract' failed"] * 2))
    text = format_table("title", [view], [skipped], NOW)
    assert "active, last skipped" in text and "skipped" in text.split("recent jobs")[1]


def test_a_stopped_scheduler_shows_stopped_rows_without_next_runs_or_buttons():
    running = Job("j1", "t1", JobStatus.RUNNING, NOW - timedelta(seconds=3), None, None)
    view = row_view(task(status=TaskStatus.RUNNING), None, None, None, NOW, live=False)
    assert (view.status, view.next_run, view.running, view.progress_text) == ("stopped", "—", False, "")
    assert not (view.can_cancel or view.can_pause or view.can_resume or view.can_run)
    abandoned = row_view(task(status=TaskStatus.RUNNING), running, None, None, NOW, live=False)
    assert abandoned.running and abandoned.progress_text == "running 3s" and not abandoned.can_cancel


def test_empty_dashboard_text_says_how_to_add_a_task():
    text = format_table("0 tasks", [], [], NOW)
    assert "no tasks yet" in text and "%quiv add" in text


def test_text_helpers():
    assert text_table([("A", "BB"), ("ccc", "d")]) == ["A    BB", "ccc  d"]
    assert short_repr("ok") == "'ok'" and len(short_repr("x" * 500)) <= 40
    assert short_repr(list(range(1000))).startswith("[0, 1, 2, 3")


def test_model_rows_clicks_and_messages_that_expire(quiv: Quiv):
    clock = Clock()
    tid = quiv.add_task("ticker", lambda: 7, interval=300, delay=300)
    model = DashboardModel(quiv, clock=clock)
    changes = threading.Event()
    model.listen(changes.set)
    try:
        snap = model.collect()
        assert snap.state == "running" and [r.name for r in snap.rows] == ["ticker"]
        assert snap.title == "1 task · 0 running · scheduler running"
        model.click("pause", tid)
        assert quiv.get_task(tid).status is TaskStatus.PAUSED
        assert model.message() == ("ok", "paused 'ticker'")
        assert changes.wait(WAIT)  # the listener asked for a redraw
        assert model.collect().rows[0].can_resume
        clock.now += 7.9
        assert model.message_left() is not None
        clock.now += 0.2
        assert model.message() == ("", "") and model.message_left() is None
        model.click("resume", "no-such-task")
        kind, text = model.message()
        assert kind == "error" and "resume" in text
        job_id = quiv.run_task_immediately(tid)
        quiv.wait_for_job(job_id, timeout=WAIT)
        wait_until(lambda: model.collect().rows[0].last_status == "completed")
        assert [j.job_id for j in model.recent_jobs()] == [job_id]
    finally:
        model.unlisten()


def _stubborn(started: threading.Event, release: threading.Event):
    def handler() -> str:  # takes no _stop_event: a cancel cannot reach it
        started.set()
        release.wait(WAIT)
        return "ran to its end"

    return handler


def test_cancel_says_at_once_when_the_scheduler_knows_it_cannot_take_effect(quiv: Quiv):
    started, release = threading.Event(), threading.Event()
    tid = quiv.add_task("stubborn", _stubborn(started, release), run_once=True)
    assert started.wait(WAIT)
    quiv.can_cancel = lambda job_id: False  # the seam a newer scheduler offers; read with getattr
    model = DashboardModel(quiv)
    try:
        wait_until(lambda: quiv.get_task(tid).status is TaskStatus.RUNNING)
        model.click("cancel", tid)
        kind, text = model.message()
        assert kind == "warn" and "can't cancel 'stubborn'" in text and "runs to its end" in text
        job = quiv.get_job(quiv.get_task(tid).last_job_id)
        assert job.status is JobStatus.RUNNING  # not even asked to cancel
    finally:
        release.set()


class Refusing(Quiv):
    def cancel_job(self, job_id: str) -> bool:  # a scheduler that refuses a cancel it cannot deliver
        return False


def test_cancel_refused_by_the_scheduler_reads_as_cannot_cancel():
    started, release = threading.Event(), threading.Event()
    q = Refusing(pool_size=2)
    q.start()
    try:
        tid = q.add_task("stubborn", _stubborn(started, release), run_once=True)
        assert started.wait(WAIT)
        model = DashboardModel(q)
        wait_until(lambda: q.get_task(tid).status is TaskStatus.RUNNING)
        model.click("cancel", tid)
        assert model.message()[0] == "warn"
    finally:
        release.set()
        q.shutdown(timeout=WAIT)


def test_after_shutdown_the_model_says_stopped(quiv_factory):
    q = quiv_factory()
    q.add_task("later", lambda: None, interval=300, delay=300)
    model = DashboardModel(q)
    q.shutdown(timeout=WAIT)
    snap = model.collect()
    assert snap.state == "stopped" and not snap.live
    assert [(r.status, r.next_run, r.can_run) for r in snap.rows] == [("stopped", "—", False)]
    assert "scheduler stopped" in snap.title


def test_progress_text_leaves_out_a_desc_that_only_repeats_the_task_name():
    from types import SimpleNamespace

    from quiv_nb.render.dash_rows import read_progress

    job = Job("j1", "t1", JobStatus.RUNNING, NOW - timedelta(seconds=3), None, None, task_name="export")
    state = SimpleNamespace(value=38, total=600, desc="export", label="exporting")
    assert read_progress(SimpleNamespace(state=state), job, NOW) == (38 / 600, "exporting · 38/600 · 3s")


def test_rows_kept_after_the_scheduler_is_gone_show_the_jobs_that_ended_since():
    import gc

    q = Quiv(pool_size=2)
    q.start()
    started = threading.Event()

    def export(_stop_event) -> None:
        started.set()
        _stop_event.wait(WAIT)

    q.add_task("export", export, interval=3600)
    assert started.wait(WAIT)
    model = DashboardModel(q)
    model.listen(lambda: None)
    assert model.collect().rows[0].running
    q.shutdown(timeout=WAIT)  # cancels the job: the listener records it
    del q
    gc.collect()
    assert model.scheduler is None
    (row,) = model.collect().rows
    assert (row.status, row.last_status, row.running) == ("stopped", "cancelled", False)
    assert "shut down" in row.last_error


def test_a_cancel_handled_after_the_shown_job_ended_says_how_it_ended(quiv: Quiv):
    """A click that waited for a busy cell (no comm subshell) finds the job it was aimed at finished."""
    started, release = threading.Event(), threading.Event()
    tid = quiv.add_task("brief", _stubborn(started, release), run_once=True)
    assert started.wait(WAIT)
    model = DashboardModel(quiv)
    wait_until(lambda: quiv.get_task(tid).status is TaskStatus.RUNNING)
    job_id = quiv.get_task(tid).last_job_id
    assert [r.task_id for r in model.collect().rows if r.running] == [tid]  # the row shows it running
    clicks = model.clicks
    release.set()
    quiv.wait_for_job(job_id, timeout=WAIT)
    model.click("cancel", tid)  # handled only now: its job completed and its run-once task left the table
    kind, text = model.message()
    assert kind == "warn" and text == f"nothing cancelled: the job of 'brief' (job {job_id[:8]}) had already completed"
    assert model.clicks == clicks + 1  # the page reads this to know the click was answered
