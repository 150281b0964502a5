"""The live dashboard, without a kernel: ipywidgets run on a dummy comm, so we read trait values.

Rows are found the way a browser test finds them, by the CSS classes the dashboard documents.
Threaded waits poll a condition with a timeout; nothing sleeps for synchronisation.
"""

from __future__ import annotations

import gc
import io
import re
import threading
import time
import weakref
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any, Callable

import pytest
from ipywidgets import Widget
from ipywidgets.widgets import widget as widget_module

import quiv_nb
from quiv_nb import Quiv, TaskStatus
from quiv_nb.models import Job, JobStatus, Task
from quiv_nb.render import dash_view
from quiv_nb.render import dashboard as dash_mod
from quiv_nb.render.dashboard import (
    Dashboard,
    dashboard,
    format_ago,
    format_duration,
    format_table,
    format_until,
    read_progress,
    row_view,
)

TIMEOUT = 5.0


def wait_for(cond: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def no_stray_threads():
    """Stricter than conftest's check: no new thread at all may outlive a test, bar the render pump."""
    before = set(threading.enumerate())
    yield

    def leaked() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t not in before and t.is_alive() and t.name != "quiv_nb-render"]

    deadline = time.monotonic() + 3.0
    while leaked() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not leaked(), f"threads left behind: {leaked()}"


@pytest.fixture
def sched(quiv: Quiv) -> Quiv:
    """A started scheduler without a main loop (conftest shuts it down after the test)."""
    return quiv


@pytest.fixture
def dashes():
    made: list[Dashboard] = []

    def make(scheduler: Quiv, **kwargs: Any) -> Dashboard:
        d = Dashboard(scheduler, **kwargs) if kwargs else dashboard(scheduler)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


class FakePump:
    """Records requests instead of drawing, so a test can call `pump_draw()` itself."""

    def __init__(self) -> None:
        self.requests = 0
        self.forgotten: list[Any] = []

    def request(self, drawable: Any, final: bool = False) -> None:
        self.requests += 1

    def forget(self, drawable: Any) -> None:
        self.forgotten.append(drawable)


# ---------------------------------------------------------------------- DOM helpers (by CSS class)


def classes(w: Any) -> tuple[str, ...]:
    return tuple(w._dom_classes)


def find(parent: Any, cls: str) -> Any:
    for child in parent.children:
        if cls in classes(child):
            return child
    raise LookupError(cls)


def rows(d: Dashboard) -> list[Any]:
    table = find(d.widget, "quiv-dash-table")
    return [r for r in table.children if "quiv-dash-row" in classes(r)]


def row(d: Dashboard, task_id: str) -> Any | None:
    for r in rows(d):
        if f"quiv-dash-task-{task_id}" in classes(r):
            return r
    return None


def cell(r: Any, name: str) -> Any:
    return find(r, f"quiv-dash-{name.replace('_', '-')}")


def has_class(d: Dashboard, task_id: str, cls: str) -> bool:
    r = row(d, task_id)
    return r is not None and cls in classes(r)


def message(d: Dashboard) -> Any:
    return find(d.widget, "quiv-dash-message")


# ---------------------------------------------------------------------- handlers


def blocker(started: threading.Event) -> Callable[..., str]:
    def handler(_stop_event: threading.Event) -> str:
        started.set()
        _stop_event.wait(10)
        return "stopped"

    return handler


# ---------------------------------------------------------------------- tests


def test_rows_show_tasks_statuses_and_times(sched, dashes):
    nightly = sched.add_task("nightly <b>&", lambda: None, interval=300, delay=120)
    once = sched.add_task("once-off", lambda: None, run_once=True, delay=60)
    d = dashes(sched)  # the first draw is synchronous: rows exist at once

    assert [r for r in rows(d)] == [row(d, nightly), row(d, once)]
    r = row(d, nightly)
    assert "quiv-dash-status-active" in classes(r)
    name = cell(r, "name").value
    assert "nightly &lt;b&gt;&amp;" in name and "<b>" not in name
    assert "every 5m" in cell(r, "interval").value
    assert "in 1m" in cell(r, "next").value or "in 2m" in cell(r, "next").value
    assert "once" in cell(row(d, once), "interval").value
    assert cell(r, "cancel").disabled and cell(r, "resume").disabled
    assert not cell(r, "pause").disabled and not cell(r, "run").disabled
    assert cell(r, "progress").value == 0

    text = repr(d)
    assert "nightly <b>&" in text and "once-off" in text and "active" in text and "every 5m" in text
    bundle = d._repr_mimebundle_()
    assert bundle["text/plain"] == text
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == d.widget.model_id
    assert "quiv-dash" in classes(d.widget)
    assert "2 tasks" in find(d.widget, "quiv-dash-title").value


def test_rows_follow_tasks_added_and_removed(sched, dashes):
    first = sched.add_task("first", lambda: None, interval=300, delay=300)
    d = dashes(sched)
    first_row = row(d, first)
    second = sched.add_task("second", lambda: None, interval=300, delay=300)
    wait_for(lambda: row(d, second), what="a row for the new task")
    assert row(d, first) is first_row  # unchanged rows keep their widgets
    sched.remove_task(first)
    wait_for(lambda: row(d, first) is None, what="the removed task's row to go")
    # Its widgets stay open for a click that was queued behind a busy cell, up to RETIRED_KEPT rows, then close.
    assert first_row.comm is not None
    per_row = d.retired_models
    assert per_row > 0 and per_row == len([w for w in first_row.children if w.comm is not None]) + 1
    for k in range(dash_view.RETIRED_KEPT):
        extra = sched.add_task(f"t{k}", lambda: None, interval=300, delay=300)
        wait_for(lambda extra=extra: row(d, extra), what="a row for the next task")
        sched.remove_task(extra)
        wait_for(lambda extra=extra: row(d, extra) is None, what="that row gone")
    wait_for(lambda: first_row.comm is None, what="the oldest retired row closed, not leaked")
    assert [row(d, second)] == rows(d)
    assert d.retired_models == dash_view.RETIRED_KEPT * per_row  # what a soak counts apart: bounded


def test_pause_and_resume_buttons(sched, dashes):
    tid = sched.add_task("ticker", lambda: None, interval=300, delay=300)
    d = dashes(sched)
    cell(row(d, tid), "pause").click()
    assert sched.get_task(tid).status is TaskStatus.PAUSED
    wait_for(lambda: has_class(d, tid, "quiv-dash-status-paused"), what="the paused row")
    r = row(d, tid)
    wait_for(lambda: not cell(r, "resume").disabled, what="resume enabled")
    assert cell(r, "pause").disabled and not cell(r, "run").disabled
    assert "paused" in cell(r, "next").value
    assert "paused" in message(d).value and "quiv-dash-message-ok" in classes(message(d))

    cell(r, "resume").click()
    assert sched.get_task(tid).status is TaskStatus.ACTIVE
    wait_for(lambda: has_class(d, tid, "quiv-dash-status-active"), what="the resumed row")
    wait_for(lambda: cell(r, "resume").disabled and not cell(r, "pause").disabled, what="buttons flipped back")


def test_run_now_starts_a_job_and_shows_its_escaped_result(sched, dashes):
    tid = sched.add_task("report", lambda: {"answer": "<42>"}, interval=300, delay=300)
    d = dashes(sched)
    cell(row(d, tid), "run").click()
    jobs = wait_for(lambda: sched.get_all_jobs(task_id=tid), what="a job of the task")
    sched.wait_for_job(jobs[0].job_id, timeout=TIMEOUT)
    wait_for(lambda: has_class(d, tid, "quiv-dash-last-completed"), what="the completed run")
    last = cell(row(d, tid), "last").value
    assert "&lt;42&gt;" in last and "<42>" not in last
    assert "started" in message(d).value
    recent = wait_for(lambda: find(d.widget, "quiv-dash-recent").value, what="the recent-jobs table")
    assert "quiv-dash-job-completed" in recent and "&lt;42&gt;" in recent


def test_cancel_button_cancels_the_running_job(sched, dashes):
    started = threading.Event()
    tid = sched.add_task("long", blocker(started), interval=300)  # first run at once
    assert started.wait(TIMEOUT)
    d = dashes(sched)
    r = wait_for(lambda: has_class(d, tid, "quiv-dash-status-running") and row(d, tid), what="the running row")
    assert not cell(r, "cancel").disabled and cell(r, "run").disabled
    assert "running" in cell(r, "progress_text").value
    assert "quiv-dash-indeterminate" in classes(cell(r, "progress"))  # no renderer: progress unknown
    # no event while it runs: the tick alone keeps the elapsed time moving
    wait_for(lambda: "running 1s" in cell(r, "progress_text").value, what="the elapsed time to move")
    job_id = sched.get_task(tid).last_job_id

    cell(r, "cancel").click()
    assert sched.wait_for_job(job_id, timeout=TIMEOUT).status is JobStatus.CANCELLED
    wait_for(lambda: has_class(d, tid, "quiv-dash-last-cancelled"), what="the cancelled row")
    assert "cancelled" in cell(r, "status").value
    wait_for(lambda: cell(r, "cancel").disabled, what="cancel disabled again")
    assert cell(r, "progress").value == 0 and classes(cell(r, "progress")) == ("quiv-dash-progress",)
    assert "cancel requested" in message(d).value


def test_failing_jobs_show_their_escaped_error(sched, dashes, caplog):
    evil = "<script>alert(1)</script>"

    def boom() -> None:
        raise ValueError(evil)

    d = dashes(sched)
    recurring = sched.add_task("flaky", boom, interval=300)
    oneoff = sched.add_task("oneoff", boom, run_once=True)
    sched.wait_for_task(oneoff, timeout=TIMEOUT)
    wait_for(lambda: has_class(d, recurring, "quiv-dash-last-failed"), what="the failed row")
    r = row(d, recurring)
    for html in (cell(r, "last").value, cell(r, "status").value):
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    # the one-off task leaves the table when done; its failure stays in the recent jobs
    wait_for(lambda: row(d, oneoff) is None, what="the finished one-off to leave")

    def two_failures() -> str:
        html = find(d.widget, "quiv-dash-recent").value
        return html if html.count("quiv-dash-job-failed") == 2 else ""

    recent = wait_for(two_failures, what="both failures in the recent jobs")
    assert "<script>" not in recent and "&lt;script&gt;" in recent
    assert "ValueError" in repr(d) and "oneoff" in repr(d)


def test_click_errors_show_in_the_status_line_and_never_raise(sched, dashes):
    started = threading.Event()
    tid = sched.add_task("busy", blocker(started), interval=300)
    assert started.wait(TIMEOUT)
    d = dashes(sched)
    r = row(d, tid)
    cell(r, "run").click()  # disabled in the browser; a click anyway raises TaskRunningError inside
    wait_for(lambda: "quiv-dash-message-error" in classes(message(d)), what="the error line")
    assert "busy" in message(d).value and "running" in message(d).value

    sched.remove_task(tid)  # the row's buttons still exist until the next draw
    cell(r, "pause").click()
    wait_for(lambda: "no task with id" in message(d).value, what="the TaskNotFoundError message")


def test_progress_comes_from_a_renderer_state(sched, dashes):
    class Renderer:
        """Stands in for a quiv_nb bar: records the payload inline, exposes `state`."""

        state = None

        def __call__(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - inline path used
            pass

        def quiv_progress(self, job_id: str, args: tuple, kwargs: dict) -> None:
            self.state = SimpleNamespace(
                job_id=job_id, value=kwargs["step"], total=kwargs["total"], label=kwargs.get("stage")
            )

        def quiv_job_started(self, job: Any) -> None:  # a `seams.ProgressSink` has all three methods
            pass

        def quiv_job_finished(self, job: Any) -> None:
            pass

    reported = threading.Event()

    def work(_stop_event, _progress_hook) -> None:
        _progress_hook(step=3, total=10, stage="<load>")
        reported.set()
        _stop_event.wait(10)

    tid = sched.add_task("etl", work, interval=300, progress_callback=Renderer())
    assert reported.wait(TIMEOUT)
    d = dashes(sched)
    r = row(d, tid)
    wait_for(lambda: cell(r, "progress").value == pytest.approx(0.3), what="the progress bar at 30%")
    text = cell(r, "progress_text").value
    assert "3/10" in text and "&lt;load&gt;" in text and "<load>" not in text
    assert cell(r, "progress").bar_style == "info"
    sched.cancel_job(sched.get_task(tid).last_job_id)
    wait_for(lambda: cell(r, "progress").value == 0 and cell(r, "progress_text").value.count("running") == 0,
             what="the bar reset after the job")  # fmt: skip


def test_scheduler_shutdown_shows_stopped_and_is_not_kept_alive(dashes):
    q = Quiv(pool_size=2)
    q.start()
    started = threading.Event()
    tid = q.add_task("long", blocker(started), interval=300)
    assert started.wait(TIMEOUT)
    d = dashes(q)
    q.shutdown(timeout=TIMEOUT)  # cancels the running job: that event triggers the redraw
    wait_for(lambda: "quiv-dash-stopped" in classes(d.widget), what="the stopped state")
    assert "scheduler stopped" in find(d.widget, "quiv-dash-title").value
    r = row(d, tid)
    assert all(cell(r, b).disabled for b in ("cancel", "pause", "resume", "run"))
    assert "scheduler stopped" in repr(d)

    ref = weakref.ref(q)
    del q
    gc.collect()
    assert ref() is None and d.scheduler is None  # the dashboard holds its scheduler weakly
    d.refresh()
    cell(r, "run").click()  # harmless once the scheduler is gone
    wait_for(lambda: "scheduler stopped" in message(d).value, what="the click answer")
    assert row(d, tid) is not None  # the last rows stay visible
    assert "long" in repr(d)


def test_an_idle_shutdown_shows_without_any_event(dashes):
    q = Quiv(pool_size=1)
    q.start()
    q.add_task("later", lambda: None, interval=300, delay=300)
    d = dashes(q)
    q.shutdown(timeout=TIMEOUT)  # no job runs, so no event: the next tick notices
    wait_for(lambda: "quiv-dash-stopped" in classes(d.widget), what="the stopped state")


def test_close_removes_listeners_and_closes_widgets(sched, dashes):
    pump = FakePump()
    sched.add_task("a", lambda: None, interval=300, delay=300)
    before = set(widget_module._instances)
    d = dashes(sched, pump=pump)
    requests = pump.requests
    sched.pause_task(sched.add_task("b", lambda: None, interval=300, delay=300))
    assert pump.requests >= requests + 2  # its listeners ask for redraws
    assert len(set(widget_module._instances) - before) == 12 + 13 + 8 + 5  # row, shared, header, the rest
    d.close()
    assert d.closed and pump.forgotten == [d]
    requests = pump.requests
    sched.pause_task(sched.add_task("c", lambda: None, interval=300, delay=300))
    assert pump.requests == requests  # no listener left to ask for redraws
    assert d.widget.comm is None and set(widget_module._instances) == before  # layouts and styles too
    assert set(d._repr_mimebundle_()) == {"text/plain", "text/html"}  # the static snapshot, no widget view
    assert d.pump_draw() == 0
    d.close()  # idempotent


def test_one_dashboard_per_scheduler_and_a_new_one_after_close(sched, dashes):
    d1 = dashes(sched)
    assert dashes(sched) is d1
    d1.close()
    d2 = dashes(sched)
    assert d2 is not d1 and not d2.closed


def test_displayed_once_per_cell(sched, dashes, monkeypatch):
    shell = SimpleNamespace(execution_count=1, kernel=object())
    shown: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(dash_mod, "_shell", lambda: shell)
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append((obj, kw)))

    d = dashes(sched)  # `dashboard()` displays it in the cell ...
    assert len(shown) == 1 and shown[0][1] == {"raw": True, "display_id": True}
    assert "application/vnd.jupyter.widget-view+json" in shown[0][0]
    d._ipython_display_()  # ... and IPython showing the returned object in the same cell is a no-op
    assert len(shown) == 1
    shell.execution_count = 2
    assert dashes(sched) is d and len(shown) == 2  # a later cell gets another view of the same dashboard
    d._ipython_display_()
    assert len(shown) == 2


def test_a_stopped_scheduler_turns_every_display_into_a_static_snapshot(quiv, monkeypatch):
    class Handle:
        def __init__(self) -> None:
            self.updates: list[dict[str, Any]] = []

        def update(self, bundle: dict[str, Any], raw: bool = False) -> None:
            assert raw
            self.updates.append(bundle)

    shell = SimpleNamespace(execution_count=1, kernel=object())
    handles: list[Handle] = []
    monkeypatch.setattr(dash_mod, "_shell", lambda: shell)
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: handles.append(Handle()) or handles[-1])
    pump = FakePump()
    d = Dashboard(quiv, pump=pump)
    d._show()
    shell.execution_count = 2
    d._show()  # two cells show it
    quiv.add_task("t", lambda: None, interval=300, delay=300)
    d.pump_draw()
    assert [h.updates for h in handles] == [[], []]  # live: the widget views stay
    quiv.shutdown()
    d.pump_draw()  # no event and no tick due: the stop alone makes it draw
    for h in handles:
        (bundle,) = h.updates
        assert "application/vnd.jupyter.widget-view+json" not in bundle
        page = bundle["text/html"]
        assert "quiv-dash-static" in page and re.search(r"scheduler stopped at \d\d:\d\d", page)
        assert "<code>%quiv</code> for a live dashboard" in page and ">t<" in page
    title = find(d.widget, "quiv-dash-title").value
    assert re.search(r"scheduler stopped at \d\d:\d\d", title)  # the widgets too (reloaded pages)
    d.pump_draw()
    assert all(len(h.updates) == 1 for h in handles)  # frozen once
    assert "application/vnd.jupyter.widget-view+json" not in d._repr_mimebundle_()
    d.close()


def test_a_job_ending_on_the_stop_after_the_freeze_shows_its_end(quiv, monkeypatch):
    """`shutdown` stops the scheduler before its jobs end on their stop events: a snapshot drawn meanwhile
    shows a job still running; its end replaces that snapshot (it is never left showing progress)."""
    handles: list[SimpleNamespace] = []
    monkeypatch.setattr(dash_mod, "_shell", lambda: SimpleNamespace(execution_count=1, kernel=object()))

    def display(obj: Any, **kw: Any) -> SimpleNamespace:
        handles.append(SimpleNamespace(updates=[]))
        handles[-1].update = lambda bundle, raw=False: handles[-1].updates.append(bundle["text/html"])
        return handles[-1]

    monkeypatch.setattr("IPython.display.display", display)
    reported, release = threading.Event(), threading.Event()

    def ending(_progress_hook, _stop_event):
        _progress_hook(step=3, total=10)
        reported.set()
        _stop_event.wait(TIMEOUT)
        release.wait(TIMEOUT)  # still ending when the stopped scheduler is first drawn
        return "stopped"

    d = Dashboard(quiv, pump=FakePump())
    d._show()
    quiv.add_task("ending", ending, run_once=True, progress_callback=quiv_nb.bar("text", file=io.StringIO()))
    assert reported.wait(TIMEOUT)
    stopping = threading.Thread(target=quiv.shutdown, kwargs={"timeout": TIMEOUT})
    stopping.start()
    wait_for(lambda: quiv.stopped, what="the scheduler to count as stopped")
    d.pump_draw()
    (frozen,) = handles[0].updates
    assert "3/10" in frozen and "ending" in frozen  # the job was still running
    release.set()
    stopping.join(TIMEOUT)
    assert not stopping.is_alive()
    d.pump_draw()
    assert len(handles[0].updates) == 2 and "3/10" not in handles[0].updates[-1]
    d.close()


def test_draw_counts_exactly_the_messages_sent(sched, dashes, monkeypatch):
    # the `comm` package backs ipywidgets 8's comms (ipywidgets 7 on ipykernel < 6.18 has no such package)
    comm = pytest.importorskip("comm")
    sent = {"update": 0, "comm_open": 0, "comm_close": 0}

    def count_send(self: Widget, msg: Any, buffers: Any = None) -> None:
        sent["update"] += 1

    def count_publish(self: Any, msg_type: str, *args: Any, **kwargs: Any) -> None:
        if msg_type in sent:
            sent[msg_type] += 1

    pump = FakePump()
    a = sched.add_task("a", lambda: 1, interval=300, delay=300)
    d = dashes(sched, pump=pump)
    monkeypatch.setattr(Widget, "_send", count_send)
    monkeypatch.setattr(comm.DummyComm, "publish_msg", count_publish)

    def draw() -> int:
        for k in sent:
            sent[k] = 0
        n = d.pump_draw()
        assert n == sum(sent.values()), (n, sent)
        return n

    assert draw() == 0  # nothing changed: nothing sent
    requests = pump.requests
    b = sched.add_task("b", lambda: 2, interval=300, delay=300)
    assert pump.requests > requests and row(d, b) is None  # the listener only asked for a redraw
    new_row = draw()
    assert row(d, b) is not None and sent["comm_open"] == 12  # one open per widget of the row
    assert new_row == 12 + 2  # + the table's children + the title's task count
    sched.pause_task(a)
    assert 1 <= draw() <= 7  # row classes, status, next, buttons, title
    sched.remove_task(b)
    assert draw() == 2 and sent["comm_close"] == 0  # its row is retired: open for a late click
    retired = []
    for k in range(dash_view.RETIRED_KEPT):
        retired.append(sched.add_task(f"r{k}", lambda: 2, interval=300, delay=300))
        draw()
        sched.remove_task(retired[-1])
        assert draw() == 2 + (12 if k == dash_view.RETIRED_KEPT - 1 else 0)  # then the oldest (b's) closes
    job = sched.wait_for_job(sched.run_task_immediately(a), timeout=TIMEOUT)
    assert job.status is JobStatus.COMPLETED
    assert draw() <= 8


def test_formatting_is_pure():
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert [format_duration(s) for s in (0, 0.0001, 0.5, 1, 1.5, 5, 90, 3600, 3900, 2 * 86400)] == [
        "0s", "<1ms", "500ms", "1s", "1.5s", "5s", "1m30s", "1h", "1h05m", "2d",
    ]  # fmt: skip
    assert format_ago(now - timedelta(seconds=2), now) == "just now"
    assert format_ago(now - timedelta(seconds=17), now) == "15s ago"
    assert format_ago(now - timedelta(minutes=4, seconds=5), now) == "4m ago"
    assert format_ago(None, now) == "—"
    assert format_until(now + timedelta(seconds=3.2), now) == "in 3s"
    assert format_until(now - timedelta(seconds=1), now) == "due"
    assert format_until(None, now) == "—"

    task = Task("t1", "etl", TaskStatus.ACTIVE, 5.0, False, now + timedelta(seconds=4))
    failed = Job("j1", "t1", JobStatus.FAILED, now - timedelta(seconds=31), now - timedelta(seconds=30), 1.0,
                 error_message="KeyError: 'x'", task_name="etl")  # fmt: skip
    view = row_view(task, None, failed, None, now, live=True)
    shown = (view.interval, view.next_run, view.last_when, view.last_status)
    assert shown == ("every 5s", "in 4s", "30s ago", "failed")
    assert view.can_pause and view.can_run and not view.can_cancel and not view.can_resume
    text = format_table("title", [view], [failed], now)
    assert "etl" in text and "active, last failed" in text and "KeyError: 'x'" in text and "recent jobs" in text
    assert row_view(task, None, None, None, now, live=False).can_run is False


def test_progress_is_read_from_a_bar_state_by_duck_typing():
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    job = Job("j1", "t1", JobStatus.RUNNING, now - timedelta(seconds=3), None, None)

    def bar(**state: Any) -> Any:
        return SimpleNamespace(state=SimpleNamespace(**{"desc": "", "label": "", "status": "running", **state}))

    assert read_progress(bar(value=5, total=20, desc="etl", label="load"), job, now) == (0.25, "etl: load · 5/20 · 3s")
    assert read_progress(bar(value=7, total=None), job, now) == (None, "7 · 3s")
    assert read_progress(bar(value=0, total=None), job, now) == (None, "running · 3s")  # no progress reported
    assert read_progress(bar(value=5, total=20, status="completed"), job, now) == (None, "running 3s")  # stale run
    assert read_progress(bar(value=5, total=20, job_id="other"), job, now) == (None, "running 3s")
    assert read_progress(SimpleNamespace(state=lambda: {"value": 1, "total": 2}), job, now).fraction == 0.5
    assert read_progress(SimpleNamespace(state=lambda: 1 / 0), job, now) == (None, "running 3s")  # never raises
    assert read_progress(object(), job, now) == (None, "running 3s")


def test_an_empty_dashboard_says_how_to_add_a_task_instead_of_a_bare_header(sched, dashes):
    d = dashes(sched)
    assert find(d.widget, "quiv-dash-table").children == ()
    assert "No tasks yet" in find(d.widget, "quiv-dash-recent").value
    tid = sched.add_task("first", lambda: None, interval=300, delay=300)
    wait_for(lambda: row(d, tid), what="the first row")
    assert "quiv-dash-header" in classes(find(d.widget, "quiv-dash-table").children[0])
    assert "No tasks yet" not in find(d.widget, "quiv-dash-recent").value
    # Once the tasks are gone but jobs ran, it says nothing runs now, not "No tasks yet".
    sched.remove_task(tid)
    once = sched.add_task("once", lambda: "ok", run_once=True)
    sched.wait_for_task(once, timeout=TIMEOUT)
    recent = wait_for(
        lambda: (v := find(d.widget, "quiv-dash-recent").value) and "quiv-dash-job" in v and not rows(d) and v,
        what="the finished one-off job under an empty table",
    )
    assert "No task is scheduled or running now" in recent and "No tasks yet" not in recent


def test_pause_and_resume_share_one_place(sched, dashes):
    tid = sched.add_task("ticker", lambda: None, interval=300, delay=300)
    d = dashes(sched)
    r = row(d, tid)
    assert "quiv-dash-hidden" in classes(cell(r, "resume")) and "quiv-dash-hidden" not in classes(cell(r, "pause"))
    cell(r, "pause").click()
    wait_for(lambda: "quiv-dash-hidden" in classes(cell(r, "pause")), what="pause hidden")
    assert "quiv-dash-hidden" not in classes(cell(r, "resume"))
