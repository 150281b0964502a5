"""The scheduler's rules, tested on its collaborators directly: made-up clock values, no threads.

Triggers, history pruning, retry backoff, final statuses, timeouts, the timeline's typed heap
entries and waiters. The executor here is `InlineExecutor`, a real `JobExecutor` that runs the job
body on the calling thread, so a whole job lifecycle runs inside one test function.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from typing import Any

import pytest

from quiv_nb import ConfigurationError, Event, JobStatus
from quiv_nb.dispatch import Dispatcher, MainLoop, noop_hook
from quiv_nb.eventbus import EventBus, run_effects
from quiv_nb.execution import JobCall, Outcome, run_call
from quiv_nb.history import JobHistory
from quiv_nb.lifecycle import JobLifecycle, final_state, retry_delay
from quiv_nb.locks import YieldingRLock
from quiv_nb.parts import SchedulerParts
from quiv_nb.pipeline import Pipeline
from quiv_nb.records import JobRecord
from quiv_nb.seams import JobExecutor
from quiv_nb.tasks import TaskSpec, TaskTable, build_task
from quiv_nb.timeline import RETRY, RUN, TIMEOUT, Entry, Timeline
from quiv_nb.triggers import IntervalTrigger, OnceTrigger
from quiv_nb.waiters import Waiters


class InlineExecutor:
    """Runs each job body at submit time, on the submitting thread."""

    def __init__(self) -> None:
        self.calls: list[JobCall] = []

    def submit(self, call: JobCall) -> concurrent.futures.Future[Outcome]:
        self.calls.append(call)
        fut: concurrent.futures.Future[Outcome] = concurrent.futures.Future()
        fut.set_result(run_call(call))
        return fut

    def shutdown(self, timeout: float | None = None) -> list[str]:
        return []


class Core:
    """The collaborators `Quiv` wires together, wired the same way, with no scheduler thread."""

    def __init__(self, retention: float = 60.0) -> None:
        self.lock = YieldingRLock()
        self.tasks = TaskTable()
        self.history = JobHistory(retention)
        self.timeline = Timeline(self.lock, lambda entry: True)
        self.waiters = Waiters()
        dispatch = Dispatcher(MainLoop(None))
        self.bus = EventBus(dispatch)
        self.executor = InlineExecutor()
        self.stopped = False
        self.now = 0.0  # the fake clock the lifecycle reads on the worker side
        parts = SchedulerParts(self.lock, self.tasks, self.history, self.timeline, self.waiters, self.bus, Pipeline())
        self.jobs = JobLifecycle(
            parts, self.executor, dispatch, logging.getLogger("quiv_nb.test"), lambda: self.stopped, lambda: self.now
        )

    def add(self, func: Any, **options: Any) -> Any:
        defaults = dict(interval=None, delay=None, run_once=False, args=(), kwargs=None, progress_callback=None,
                        timeout=None, max_retries=0, retry_backoff=1.0)  # fmt: skip
        defaults.update(options)
        task = build_task(TaskSpec("t", func, **defaults))
        self.tasks.add(task)
        return task

    def entries(self) -> list[Entry]:
        return self.timeline.entries()


def test_executor_fits_the_seam() -> None:
    assert isinstance(InlineExecutor(), JobExecutor)


# ---------------------------------------------------------------- triggers


def test_interval_trigger_keeps_its_phase_and_skips_missed_slots() -> None:
    trigger = IntervalTrigger(10.0, delay=3.0)
    assert trigger.first_due(100.0) == 103.0
    assert trigger.next_due(103.0, 103.5) == 113.0  # fired a little late: the grid holds
    assert trigger.next_due(103.0, 135.0) == 143.0  # 113, 123, 133 were missed: skipped, not queued
    assert trigger.next_due(103.0, 113.0) == 123.0  # exactly on a slot: that slot is now, so the next one


def test_once_trigger_runs_once() -> None:
    trigger = OnceTrigger(None)
    assert trigger.first_due(5.0) == 5.0
    assert trigger.next_due(5.0, 5.0) is None


def test_build_task_picks_the_trigger() -> None:
    assert isinstance(build_task(TaskSpec("t", print, interval=2.0)).trigger, IntervalTrigger)
    assert isinstance(build_task(TaskSpec("t", print, delay=1.0, run_once=True)).trigger, OnceTrigger)


# ---------------------------------------------------------------- rules


def test_retry_backoff_doubles() -> None:
    assert [retry_delay(1.5, n) for n in (1, 2, 3, 4)] == [1.5, 3.0, 6.0, 12.0]
    assert retry_delay(0.0, 5) == 0.0


def test_final_state_rules() -> None:
    assert final_state(Outcome(True, result=1), None, None) == (JobStatus.COMPLETED, 1, None, None)
    assert final_state(Outcome(False, error_message="E", traceback="tb"), None, None) == (
        JobStatus.FAILED, None, "E", "tb",
    )  # fmt: skip
    status, result, message, _ = final_state(Outcome(True, result=7), "timeout", 2.5)
    assert (status, result, message) == (JobStatus.CANCELLED, 7, "timed out after 2.5s")  # kept what it returned
    assert final_state(Outcome(True), "shutdown", None)[2] == "cancelled: the scheduler shut down"
    assert final_state(Outcome(True), "removed", None)[2] == "cancelled: its task was removed"
    assert final_state(Outcome(False, error_message="boom"), "cancel", None)[:3] == (JobStatus.CANCELLED, None, "boom")
    assert final_state(Outcome(False, cancelled=True), None, None)[2] == "cancelled"


# ---------------------------------------------------------------- history


def _finished_job(history: JobHistory, job_id: str, task_id: str = "t") -> JobRecord:
    job = JobRecord()
    job.job_id, job.task_id, job.status = job_id, task_id, JobStatus.COMPLETED
    history.add(job)
    return job


def test_history_prunes_by_retention_time() -> None:
    history = JobHistory(retention=10.0)
    history.finished(_finished_job(history, "a"), now=100.0)
    history.finished(_finished_job(history, "b"), now=105.0)
    history.prune(109.9)
    assert [j.job_id for j in history] == ["a", "b"]
    history.prune(110.5)
    assert [j.job_id for j in history] == ["b"]
    history.prune(200.0)
    assert len(history) == 0


def test_history_is_capped_and_forgets_last_runs_with_their_job(monkeypatch: pytest.MonkeyPatch) -> None:
    import quiv_nb.history as history_module

    monkeypatch.setattr(history_module, "MAX_JOBS", 3)
    history = JobHistory(retention=1e9)
    history.remember_last_run("once", "j0")
    for i in range(5):
        history.finished(_finished_job(history, f"j{i}", task_id="once" if i == 0 else "t"), now=float(i))
    assert [j.job_id for j in history] == ["j2", "j3", "j4"]
    assert history.last_run("once") is None


def test_unfinished_jobs_are_never_pruned() -> None:
    history = JobHistory(retention=0.0)
    job = _finished_job(history, "running")
    job.status = JobStatus.RUNNING
    history.prune(1e9)
    assert history.unfinished() == [job]


# ---------------------------------------------------------------- timeline


def test_timeline_entries_are_typed_and_ordered_by_due_then_insertion() -> None:
    core = Core()
    with core.lock:
        core.timeline.push(5.0, RUN, "b")
        core.timeline.push(1.0, TIMEOUT, "j")
        core.timeline.push(5.0, RETRY, "a")
    first, second, third = core.entries()
    assert isinstance(first, Entry) and (first.due, first.kind, first.key) == (1.0, TIMEOUT, "j")
    assert (second.key, third.key) == ("b", "a")  # equal due times: first pushed, first popped


def test_timeline_compacts_stale_entries() -> None:
    lock = YieldingRLock()
    live: set[str] = set()
    timeline = Timeline(lock, lambda entry: entry.key in live)
    with lock:
        for i in range(1_000):
            timeline.push(float(i), TIMEOUT, f"j{i}")  # every entry is stale at once
        live.add("keep")
        timeline.push(0.0, TIMEOUT, "keep")
    assert len(timeline) < 150


# ---------------------------------------------------------------- the job lifecycle, threadless


def test_a_job_runs_and_completes_with_waiters_resolved() -> None:
    core = Core()
    task = core.add(lambda: 42, interval=10.0)
    with core.lock:
        waiter = core.waiters.on_task(task.task_id)
        effects = core.jobs.fire(task, now=100.0, kind=RUN)
        assert task.next_due == 110.0  # the trigger planned the next slot before the job started
    run_effects(effects)
    job = waiter.result(0)
    assert (job.status, job.result) == (JobStatus.COMPLETED, 42)
    assert len(core.waiters) == 0 and task.active_job is None


def test_a_failed_job_is_retried_after_its_backoff() -> None:
    core = Core()
    task = core.add(lambda: 1 / 0, run_once=True, max_retries=2, retry_backoff=0.5)
    seen: list[Event] = []
    core.bus.add(Event.JOB_RETRYING, lambda event, t, j: seen.append(event))
    core.now = 100.0
    with core.lock:
        run_effects(core.jobs.fire(task, now=100.0, kind=RUN))
    (entry,) = [e for e in core.entries() if e.kind == RETRY]
    assert (entry.key, entry.due) == (task.task_id, 100.5)
    assert task.failures == 1 and task.task_id in core.tasks  # kept for its retry
    # The second failure doubles the backoff; after the last retry the run-once task is retired.
    job = core.history.find(task.last_job_id)
    core.now = 200.0
    with core.lock:
        job2_effects = core.jobs.fire(task, now=200.0, kind=RETRY)
    run_effects(job2_effects)
    assert task.failures == 2
    assert max(e.due for e in core.entries() if e.kind == RETRY) == 201.0  # 0.5 * 2**1
    core.now = 300.0
    with core.lock:
        run_effects(core.jobs.fire(task, now=300.0, kind=RETRY))
    assert task.task_id not in core.tasks
    assert core.history.last_run(task.task_id).status is JobStatus.FAILED
    assert job.attempt == 0 and core.history.last_run(task.task_id).attempt == 2
    assert seen == [Event.JOB_RETRYING, Event.JOB_RETRYING]


def test_a_timeout_is_planned_at_start_and_ends_the_job_cancelled() -> None:
    core = Core()
    stopped = threading.Event()

    def handler(_stop_event: Any) -> str:
        # The timeout entry was pushed when the job started; firing it is the scheduler
        # thread's job, done here by hand: the stop event is what a timeout sets.
        (entry,) = [e for e in core.entries() if e.kind == TIMEOUT]
        assert (entry.key, entry.due) == (job_ids[0], 53.0)
        _stop_event.set("timeout")
        stopped.set()
        return "partial"

    job_ids: list[str] = []
    task = core.add(handler, run_once=True, timeout=3.0)
    core.now = 50.0
    core.executor.submit = _recording(core.executor.submit, job_ids)  # type: ignore[method-assign]
    with core.lock:
        effects = core.jobs.fire(task, now=0.0, kind=RUN)
    run_effects(effects)
    job = core.history.last_run(task.task_id)
    assert stopped.is_set()
    assert (job.status, job.result, job.error_message) == (JobStatus.CANCELLED, "partial", "timed out after 3s")


def _recording(submit: Any, ids: list[str]) -> Any:
    def wrapper(call: JobCall) -> Any:
        ids.append(call.job_id)
        return submit(call)

    return wrapper


def test_a_task_without_callback_gets_the_public_noop_hook() -> None:
    core = Core()
    task = core.add(lambda _progress_hook: _progress_hook(1), run_once=True)
    with core.lock:
        run_effects(core.jobs.fire(task, now=0.0, kind=RUN))
    assert core.executor.calls[0].progress is noop_hook


def test_build_task_validates_like_add_task() -> None:
    with pytest.raises(ConfigurationError, match="interval is required"):
        build_task(TaskSpec("t", print))
    with pytest.raises(ConfigurationError, match="max_retries"):
        build_task(TaskSpec("t", print, interval=1.0, max_retries=-1))


def test_the_failure_log_record_names_its_job_and_task(caplog: pytest.LogCaptureFixture) -> None:
    core = Core()
    task = core.add(lambda: 1 / 0, run_once=True)
    with caplog.at_level(logging.ERROR, logger="quiv_nb.test"), core.lock:
        run_effects(core.jobs.fire(task, now=0.0, kind=RUN))
    (record,) = [r for r in caplog.records if "failed" in r.getMessage()]
    assert record.quiv_job_id == task.last_job_id and record.quiv_task_id == task.task_id  # type: ignore[attr-defined]
    assert "ZeroDivisionError" in record.getMessage()
