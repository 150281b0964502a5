"""`Quiv`: task control, listeners, waits, timing on absolute times, bounded memory, bad input."""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import threading
import time
import uuid
from typing import Any

import pytest
from conftest import WAIT, AppLoop, Gate, running_loop, wait_until

import quiv_nb.history as history_module
from quiv_nb import (
    ConfigurationError,
    Event,
    Job,
    JobNotFoundError,
    Quiv,
    Task,
    TaskNotFoundError,
    TaskRunningError,
)


def blocker() -> tuple[Gate, Gate, Any]:
    """A handler that signals it started, then waits for the test (or its stop event)."""
    started, release = Gate(), Gate()

    def handler(_stop_event: Any) -> str:
        started.set()
        while not release.is_set() and not _stop_event.is_set():
            _stop_event.wait(0.01)
        return "released"

    return started, release, handler


# ---------------------------------------------------------------- task control


def test_add_task_returns_a_uuid_and_the_task_is_listed(quiv: Quiv) -> None:
    tid = quiv.add_task("hourly", lambda: None, interval=3600, delay=3600)
    assert uuid.UUID(tid).version == 4 and str(uuid.UUID(tid)) == tid
    task = quiv.get_task(tid)
    assert (task.task_id, task.task_name, task.status, task.interval, task.run_once) == (
        tid, "hourly", "active", 3600.0, False,
    )  # fmt: skip
    assert task.next_run_at is not None
    assert [t.task_id for t in quiv.get_all_tasks()] == [tid]


def test_tasks_added_before_start_wait_for_it(quiv_factory: Any) -> None:
    q = quiv_factory(start=False)
    ran = Gate()
    tid = q.add_task("early", ran.set, run_once=True)
    assert q.get_task(tid).next_run_at is None
    q.start()
    ran.wait()
    assert q.wait_for_task(tid, timeout=WAIT).status == "completed"


def test_delay_postpones_the_first_run(quiv: Quiv) -> None:
    t0 = time.monotonic()
    started = []
    tid = quiv.add_task("later", lambda: started.append(time.monotonic()), run_once=True, delay=0.15)
    quiv.wait_for_task(tid, timeout=WAIT)
    assert started[0] - t0 >= 0.15


def test_pause_and_resume(quiv: Quiv) -> None:
    runs: list[float] = []
    tid = quiv.add_task("tick", lambda: runs.append(time.monotonic()), interval=0.02)
    wait_until(lambda: len(runs) >= 2)
    quiv.pause_task(tid)
    task = quiv.get_task(tid)
    assert task.status == "paused" and task.next_run_at is None
    # No job unfinished: a job still queued ("scheduled") on a busy machine would run after the pause.
    wait_until(lambda: all(j.status.is_final for j in quiv.get_all_jobs(task_id=tid)))
    count = len(runs)
    time.sleep(0.1)  # five intervals: a paused task must not run in them
    assert len(runs) == count
    quiv.pause_task(tid)  # idempotent
    quiv.resume_task(tid)
    assert quiv.get_task(tid).status in ("active", "running")
    wait_until(lambda: len(runs) >= count + 2)


def test_remove_task_stops_its_running_job_and_forgets_it(quiv: Quiv) -> None:
    started, _, handler = blocker()
    tid = quiv.add_task("t", handler, interval=3600)
    started.wait()
    job_id = quiv.get_task(tid).last_job_id
    quiv.remove_task(tid)
    assert quiv.wait_for_job(job_id, timeout=WAIT).status == "cancelled"
    with pytest.raises(TaskNotFoundError):
        quiv.get_task(tid)
    with pytest.raises(TaskNotFoundError):
        quiv.remove_task(tid)
    assert quiv.get_all_tasks() == []


def test_run_task_immediately(quiv: Quiv) -> None:
    started, release, handler = blocker()
    tid = quiv.add_task("t", handler, interval=3600, delay=3600)
    job_id = quiv.run_task_immediately(tid)
    started.wait()
    with pytest.raises(TaskRunningError):
        quiv.run_task_immediately(tid)  # a task never overlaps itself
    release.set()
    assert quiv.wait_for_job(job_id, timeout=WAIT).result == "released"
    quiv.pause_task(tid)
    job2 = quiv.run_task_immediately(tid)  # also when paused
    assert quiv.wait_for_job(job2, timeout=WAIT).status == "completed"
    with pytest.raises(TaskNotFoundError):
        quiv.run_task_immediately("nope")


def test_replace_removes_tasks_with_the_same_name(quiv: Quiv) -> None:
    started, _, handler = blocker()
    old = quiv.add_task("cell", handler, interval=3600)
    other = quiv.add_task("other", lambda: None, interval=3600, delay=3600)
    started.wait()
    old_job = quiv.get_task(old).last_job_id
    new = quiv.add_task("cell", lambda: None, interval=3600, delay=3600, replace=True)
    assert {t.task_id for t in quiv.get_all_tasks()} == {other, new}
    assert quiv.wait_for_job(old_job, timeout=WAIT).status == "cancelled"
    # Without replace, names need not be unique.
    quiv.add_task("cell", lambda: None, interval=3600, delay=3600)
    assert sum(t.task_name == "cell" for t in quiv.get_all_tasks()) == 2


def test_rejected_replace_keeps_the_old_task(quiv: Quiv) -> None:
    old = quiv.add_task("cell", lambda: None, interval=3600, delay=3600)
    with pytest.raises(ConfigurationError):
        quiv.add_task("cell", lambda: None, interval=-1, replace=True)
    assert [t.task_id for t in quiv.get_all_tasks()] == [old]


def test_job_snapshots(quiv: Quiv) -> None:
    tid = quiv.add_task("t", lambda: 42, run_once=True)
    job = quiv.wait_for_task(tid, timeout=WAIT)
    assert isinstance(job, Job)
    assert (job.task_id, job.status, job.result, job.task_name) == (tid, "completed", 42, "t")
    assert job.started_at <= job.ended_at and job.duration_seconds >= 0
    assert quiv.get_job(job.job_id) == job
    assert quiv.get_all_jobs(status="completed", task_id=tid) == [job]
    assert quiv.get_all_jobs(status="failed") == []
    with pytest.raises(JobNotFoundError):
        quiv.get_job("nope")
    stats = quiv.stats()
    assert stats.is_running and stats.pool_size == 4 and stats.jobs_retained == 1


# ---------------------------------------------------------------- listeners


def test_listeners_get_task_and_job_events(quiv: Quiv) -> None:
    got: list[tuple[Any, ...]] = []
    completed = Gate()
    for event in Event:
        quiv.add_listener(event, lambda *a: got.append(a))
    quiv.add_listener(Event.JOB_COMPLETED, completed.set)

    tid = quiv.add_task("t", lambda: "r", interval=3600, delay=3600)
    quiv.pause_task(tid)
    quiv.resume_task(tid, delay=3600)
    quiv.run_task_immediately(tid)
    completed.wait()
    quiv.remove_task(tid)

    events = [a[0] for a in got]
    assert events == [
        Event.TASK_ADDED, Event.TASK_PAUSED, Event.TASK_RESUMED,
        Event.JOB_STARTED, Event.JOB_COMPLETED, Event.TASK_REMOVED,
    ]  # fmt: skip
    for args in got:
        if args[0].value.startswith("task_"):
            assert len(args) == 2 and isinstance(args[1], Task) and args[1].task_id == tid
        else:
            assert len(args) == 3 and isinstance(args[1], Task) and isinstance(args[2], Job)
    assert got[4][2].status == "completed" and got[4][2].result == "r"


def test_job_failed_and_cancelled_events(quiv: Quiv) -> None:
    got: dict[Event, Job] = {}
    both = threading.Barrier(3, timeout=WAIT)

    def record(event: Event, task: Task, job: Job) -> None:
        got[event] = job
        both.wait()

    quiv.add_listener(Event.JOB_FAILED, record)
    quiv.add_listener("job_cancelled", record)  # the string value works too

    quiv.add_task("fails", lambda: 1 / 0, run_once=True)
    started, _, handler = blocker()
    tid = quiv.add_task("cancelled", handler, run_once=True)
    started.wait()
    quiv.cancel_job(quiv.get_task(tid).last_job_id)
    both.wait()
    assert got[Event.JOB_FAILED].status == "failed"
    assert "ZeroDivisionError" in got[Event.JOB_FAILED].traceback
    assert got[Event.JOB_CANCELLED].status == "cancelled"


def test_failing_listener_is_logged_and_harmless(quiv: Quiv, caplog: pytest.LogCaptureFixture) -> None:
    after = Gate()

    def bad(*_: Any) -> None:
        raise RuntimeError("listener boom")

    quiv.add_listener(Event.JOB_COMPLETED, bad)
    quiv.add_listener(Event.JOB_COMPLETED, after.set)
    tid = quiv.add_task("t", lambda: 1, run_once=True)
    assert quiv.wait_for_task(tid, timeout=WAIT).status == "completed"
    after.wait()
    records = [r for r in caplog.records if r.exc_info and "listener boom" in str(r.exc_info[1])]
    assert records and "listener" in records[0].getMessage()


def test_listeners_run_on_the_main_loop(app: AppLoop, quiv_factory: Any) -> None:
    q = quiv_factory(main_loop=app.loop)
    where: list[Any] = []
    got = Gate()

    async def on_done(event: Event, task: Task, job: Job) -> None:
        where.append((threading.current_thread(), running_loop()))
        got.set()

    q.add_listener(Event.JOB_COMPLETED, on_done)
    q.add_task("t", lambda: 1, run_once=True)
    got.wait()
    assert where == [(app.thread, app.loop)]


def test_remove_listener(quiv: Quiv) -> None:
    calls: list[Any] = []
    listener = calls.append
    quiv.add_listener(Event.TASK_ADDED, listener)
    quiv.remove_listener(Event.TASK_ADDED, listener)
    quiv.remove_listener(Event.TASK_ADDED, listener)  # removing twice is harmless
    quiv.add_task("t", lambda: None, interval=3600, delay=3600)
    assert calls == []


# ---------------------------------------------------------------- waiting


def test_wait_for_task_waits_for_the_next_job_of_a_recurring_task(quiv: Quiv) -> None:
    n = []
    tid = quiv.add_task("t", lambda: n.append(1) or len(n), interval=0.05, delay=0.05)
    first = quiv.wait_for_task(tid, timeout=WAIT)
    second = quiv.wait_for_task(tid, timeout=WAIT)
    assert first.job_id != second.job_id and second.result > first.result


def test_wait_for_a_finished_run_once_task_returns_its_job(quiv: Quiv) -> None:
    tid = quiv.add_task("t", lambda: "done", run_once=True)
    job = quiv.wait_for_task(tid, timeout=WAIT)
    wait_until(lambda: tid not in {t.task_id for t in quiv.get_all_tasks()})
    assert quiv.wait_for_task(tid, timeout=WAIT) == job  # the task is gone, its job is not
    assert quiv.wait_for_job(job.job_id) == job
    with pytest.raises(TaskNotFoundError):
        quiv.wait_for_task("nope")
    with pytest.raises(JobNotFoundError):
        quiv.wait_for_job("nope")


def test_await_job_and_await_task(quiv: Quiv) -> None:
    tid = quiv.add_task("t", lambda: 5, run_once=True, delay=0.02)

    async def main() -> tuple[Job, Job]:
        by_task = await quiv.await_task(tid, timeout=WAIT)
        return by_task, await quiv.await_job(by_task.job_id, timeout=WAIT)

    by_task, by_job = asyncio.run(main())
    assert by_task == by_job and by_task.result == 5


def test_waits_time_out(quiv: Quiv) -> None:
    """A timed-out await cancels its future; the job must still finish, for later waiters and listeners."""
    completed = Gate()
    quiv.add_listener(Event.JOB_COMPLETED, completed.set)
    started, release, handler = blocker()
    tid = quiv.add_task("t", handler, run_once=True)
    started.wait()
    job_id = quiv.get_task(tid).last_job_id
    with pytest.raises(TimeoutError):
        quiv.wait_for_job(job_id, timeout=0.05)
    with pytest.raises(TimeoutError):
        quiv.wait_for_task(tid, timeout=0.05)
    with pytest.raises(TimeoutError):
        asyncio.run(quiv.await_job(job_id, timeout=0.05))
    with pytest.raises(TimeoutError):
        asyncio.run(quiv.await_task(tid, timeout=0.05))
    release.set()
    assert quiv.wait_for_job(job_id, timeout=WAIT).status == "completed"
    completed.wait()


def test_waiting_for_a_removed_task_raises(quiv: Quiv) -> None:
    tid = quiv.add_task("t", lambda: None, interval=3600, delay=3600)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="test-waiter") as pool:
        fut = pool.submit(quiv.wait_for_task, tid, WAIT)
        wait_until(lambda: quiv.stats().waiters)  # the waiter is registered
        quiv.remove_task(tid)
        with pytest.raises(TaskNotFoundError, match="removed"):
            fut.result(WAIT)


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("wait", ["wait_for_task", "wait_for_job"])
@pytest.mark.parametrize("caller", ["coroutine", "callback"])
def test_blocking_wait_on_the_main_loop_thread_keeps_callbacks_flowing(
    app: AppLoop, quiv_factory: Any, kind: str, wait: str, caller: str
) -> None:
    """A notebook cell blocks on a job *on* the kernel loop; the loop must keep delivering progress.

    The handler itself waits until all its callbacks were delivered, so the job can only
    complete (with "delivered") if the main loop turned during the blocking wait.
    """
    q = quiv_factory(main_loop=app.loop)
    n = 5
    received: list[tuple[int, threading.Thread, Any]] = []
    all_in = threading.Event()

    def sync_cb(i: int) -> None:
        received.append((i, threading.current_thread(), running_loop()))
        if len(received) == n:
            all_in.set()

    async def async_cb(i: int) -> None:
        await asyncio.sleep(0)
        sync_cb(i)

    def handler(_progress_hook: Any) -> str:
        for i in range(n):
            _progress_hook(i)
        return "delivered" if all_in.wait(WAIT / 2) else "starved"

    def cell() -> tuple[Job, list[Any]]:
        tid = q.add_task("t", handler, run_once=True, progress_callback=sync_cb if kind == "sync" else async_cb)
        if wait == "wait_for_task":
            job = q.wait_for_task(tid, timeout=WAIT)
        else:
            job = q.wait_for_job(wait_until(lambda: q.get_task(tid).last_job_id), timeout=WAIT)
        return job, list(received)

    async def cell_coroutine() -> tuple[Job, list[Any]]:
        return cell()

    job, before_return = app.run(cell_coroutine()) if caller == "coroutine" else app.call(cell)
    assert job.result == "delivered"
    assert [i for i, _, _ in before_return] == list(range(n))
    assert all(thread is app.thread and loop is app.loop for _, thread, loop in before_return)


def test_blocking_wait_on_the_main_loop_thread_times_out(app: AppLoop, quiv_factory: Any) -> None:
    q = quiv_factory(main_loop=app.loop)
    started, release, handler = blocker()
    tid = q.add_task("t", handler, run_once=True)
    started.wait()

    def cell() -> None:
        with pytest.raises(TimeoutError):
            q.wait_for_task(tid, timeout=0.05)

    app.call(cell)
    release.set()
    assert q.wait_for_task(tid, timeout=WAIT).status == "completed"  # the abandoned wait broke nothing


def test_blocking_wait_inside_asyncio_run_keeps_callbacks_flowing(quiv_factory: Any) -> None:
    """The notebook shape without a kernel: Quiv() at module level, the cell inside a running loop."""
    q = quiv_factory(start=False)
    received: list[Any] = []
    got = threading.Event()

    def cb(i: int) -> None:
        received.append((i, running_loop()))
        got.set()

    def handler(_progress_hook: Any) -> bool:
        _progress_hook(1)
        return got.wait(WAIT / 2)

    async def main() -> tuple[Job, list[Any], Any]:
        q.start()
        tid = q.add_task("t", handler, run_once=True, progress_callback=cb)
        return q.wait_for_task(tid, timeout=WAIT), list(received), asyncio.get_running_loop()

    job, before_return, loop = asyncio.run(main())
    assert job.result is True
    assert before_return == [(1, loop)]


# ---------------------------------------------------------------- timing


def test_recurring_runs_stay_on_absolute_times(quiv: Quiv) -> None:
    """Starts sit on the grid origin + k*interval; a drifting scheduler (next = end + interval) would not.

    The job takes half the interval, so drift would put every other start half an interval off
    the grid. Tolerances are loose: a late start (a busy machine) is fine, a drifting grid is not.
    """
    interval, runs = 0.1, 8
    starts: list[float] = []
    done = Gate()

    def handler() -> None:
        starts.append(time.monotonic())
        if len(starts) == runs:
            done.set()
        time.sleep(interval / 2)  # the work itself

    origin = time.monotonic()  # the first slot is at add_task time, a hair after this
    tid = quiv.add_task("grid", handler, interval=interval)
    done.wait()
    quiv.pause_task(tid)
    slots = [math.floor((s - origin) / interval) for s in starts[:runs]]
    lateness = [s - origin - k * interval for s, k in zip(starts[:runs], slots, strict=True)]
    assert slots == sorted(set(slots)), f"two runs in one slot: {slots}"
    assert slots[-1] < 2 * runs, f"most slots skipped: {slots}"  # a loaded machine may skip a few
    on_time = sum(late < 0.3 * interval for late in lateness)
    assert on_time >= 0.7 * runs, f"starts drift off the grid: {lateness}"


def test_a_recurring_task_never_overlaps_itself(quiv: Quiv) -> None:
    active, peak, runs = [0], [0], []
    lock = threading.Lock()

    def handler() -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        runs.append(time.monotonic())
        time.sleep(0.12)  # slower than the interval
        with lock:
            active[0] -= 1

    t0 = time.monotonic()
    tid = quiv.add_task("slow", handler, interval=0.04)
    wait_until(lambda: len(runs) >= 4)
    quiv.pause_task(tid)
    elapsed = time.monotonic() - t0
    assert peak[0] == 1
    # About one run per job duration, not one per interval: missed slots are not queued.
    assert len(runs) <= elapsed / 0.12 + 1


def test_missed_slots_are_skipped_not_queued(quiv: Quiv) -> None:
    """One long run misses several slots; afterwards the task resumes its grid, with no burst."""
    interval = 0.05
    starts: list[float] = []
    ends: list[float] = []

    def handler() -> None:
        starts.append(time.monotonic())
        if len(starts) == 1:
            time.sleep(6 * interval)  # misses ~5 slots
        ends.append(time.monotonic())

    tid = quiv.add_task("burst", handler, interval=interval)
    wait_until(lambda: len(starts) >= 6)
    quiv.pause_task(tid)
    first_end = ends[0]
    soon_after = [s for s in starts[1:] if s - first_end < 0.5 * interval]
    assert len(soon_after) <= 1, f"catch-up burst after a long run: {[s - first_end for s in starts[1:]]}"
    # One start may be late and the next on time, but never three in a bunch.
    spans = [c - a for a, c in zip(starts[1:], starts[3:], strict=False)]
    assert all(span > 0.5 * interval for span in spans), spans


# ---------------------------------------------------------------- bounded memory


def test_history_is_pruned_by_age(quiv_factory: Any) -> None:
    q = quiv_factory(history_retention_seconds=0.05)
    tid = q.add_task("t", lambda: 1, run_once=True)
    job = q.wait_for_task(tid, timeout=WAIT)

    def forgotten() -> bool:
        try:
            q.get_job(job.job_id)
        except JobNotFoundError:
            return True
        return False

    wait_until(forgotten)  # no newer job has to end for an old one to expire
    assert q.get_all_jobs() == []
    with pytest.raises(TaskNotFoundError):
        q.wait_for_task(tid)  # the finished run-once task is forgotten with its job
    assert q.stats().jobs_retained == 0


def test_history_is_capped_by_count(quiv: Quiv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history_module, "MAX_JOBS", 5)
    runs = []
    tid = quiv.add_task("t", lambda: runs.append(1), interval=0.005)
    wait_until(lambda: len(runs) >= 15)
    quiv.pause_task(tid)
    wait_until(lambda: not quiv.get_all_jobs(status="running"))
    assert len(quiv.get_all_jobs()) <= 5
    assert quiv.stats().jobs_retained <= 5


def test_timeouts_of_finished_jobs_do_not_pile_up(quiv: Quiv) -> None:
    """Every job of a task with a timeout schedules a timeout; finished ones must not accumulate."""
    runs = []
    tid = quiv.add_task("t", lambda: runs.append(1), interval=0.002, timeout=3600)
    wait_until(lambda: len(runs) >= 300)
    quiv.pause_task(tid)
    assert len(quiv._timeline) < 150  # white-box: the heap holds only live entries plus bounded slack


# ---------------------------------------------------------------- bad input


def noop() -> None:
    pass


BAD_ADD_TASK = [
    ({"func": 42}, "func"),
    ({"task_name": ""}, "task_name"),
    ({"task_name": "   "}, "task_name"),
    ({"task_name": None}, "task_name"),
    ({"interval": None}, "interval"),
    ({"interval": 0}, "interval"),
    ({"interval": -1}, "interval"),
    ({"interval": math.nan}, "interval"),
    ({"interval": math.inf}, "interval"),
    ({"interval": True}, "interval"),
    ({"interval": "5"}, "interval"),
    ({"delay": -0.1}, "delay"),
    ({"delay": math.nan}, "delay"),
    ({"delay": False}, "delay"),
    ({"run_once": "yes"}, "run_once"),
    ({"run_once": True, "interval": 0}, "interval"),
    ({"args": "abc"}, "args"),
    ({"args": 5}, "args"),
    ({"kwargs": "x"}, "kwargs"),
    ({"kwargs": {1: 2}}, "kwargs"),
    ({"kwargs": {"nope": 1}}, "nope"),
    ({"progress_callback": 5}, "progress_callback"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": -5}, "timeout"),
    ({"max_retries": -1}, "max_retries"),
    ({"max_retries": True}, "max_retries"),
    ({"max_retries": 1.5}, "max_retries"),
    ({"retry_backoff": -1}, "retry_backoff"),
    ({"retry_backoff": math.nan}, "retry_backoff"),
    ({"replace": 1}, "replace"),
]


@pytest.mark.parametrize(
    ("bad", "named"), [pytest.param(b, n, id=",".join(f"{k}={v!r}" for k, v in b.items())) for b, n in BAD_ADD_TASK]
)
def test_bad_add_task_arguments_are_rejected_cleanly(quiv: Quiv, bad: dict[str, Any], named: str) -> None:
    existing = quiv.add_task("existing", noop, interval=3600, delay=3600)
    call = {"task_name": "t", "func": noop, "interval": 1.0, **bad}
    with pytest.raises(ConfigurationError) as info:
        quiv.add_task(**call)
    assert named in str(info.value)
    assert isinstance(info.value, ValueError)
    assert [t.task_id for t in quiv.get_all_tasks()] == [existing]  # nothing half-registered


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"pool_size": 0}, "pool_size"),
        ({"pool_size": True}, "pool_size"),
        ({"pool_size": 2.5}, "pool_size"),
        ({"executor": object()}, "executor"),
        ({"main_loop": "loop"}, "main_loop"),
        ({"history_retention_seconds": -1}, "history_retention_seconds"),
        ({"history_retention_seconds": math.nan}, "history_retention_seconds"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        Quiv(**kwargs)


def test_bad_listener_arguments(quiv: Quiv) -> None:
    with pytest.raises(ConfigurationError, match=r"event must be .*JOB_COMPLETED"):
        quiv.add_listener("job_done", print)
    with pytest.raises(ConfigurationError, match="callback"):
        quiv.add_listener(Event.JOB_COMPLETED, 5)


def test_bad_resume_delay_and_job_status(quiv: Quiv) -> None:
    tid = quiv.add_task("t", noop, interval=3600, delay=3600)
    quiv.pause_task(tid)
    with pytest.raises(ConfigurationError, match="delay"):
        quiv.resume_task(tid, delay=-1)
    assert quiv.get_task(tid).status == "paused"
    with pytest.raises(ConfigurationError, match="status"):
        quiv.get_all_jobs(status="done")
