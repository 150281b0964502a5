"""The scheduler's mutable records of tasks and jobs, their ids, and their frozen snapshots.

Records are changed only under the scheduler lock and copied out as `Task`/`Job` snapshots, so a
user holding a snapshot never sees it change and never races the scheduler.
"""

from __future__ import annotations

import functools
import os
import time
from typing import TYPE_CHECKING, Any, Callable, ContextManager

from .models import Job, JobStatus, Task, TaskStatus

if TYPE_CHECKING:
    from concurrent.futures import Future
    from datetime import datetime, tzinfo

    from .execution import HandlerSpec, StopEvent
    from .joblog import JobLog
    from .seams import ProgressSink, Trigger

__all__ = ["JobRecord", "TaskRecord", "new_id", "utcnow"]


def utcnow() -> datetime:
    """The current aware UTC time (any thread)."""
    return _wall_now()


def _first_wall_now() -> datetime:
    # `datetime` is imported here, on the first job, not at `import quiv_nb` (~1 ms, and asyncio
    # does not need it). Then a partial: read twice per job, the C call skips a Python frame.
    global _wall_now
    from datetime import datetime, timezone

    _wall_now = functools.partial(datetime.now, timezone.utc)
    return _wall_now()


_wall_now: Callable[[], datetime] = _first_wall_now


# Task and job ids are random (version 4) UUID strings. `str(uuid.uuid4())` reads 16 bytes from
# `os.urandom` per id, and every such read releases the GIL: under load that hands the interpreter
# to a worker thread twice per `add_task`. One read serves `_ID_BATCH` ids here instead (list
# `pop`/`extend` are atomic, so threads share the pool without a lock; racing refills only add ids).
_ID_BATCH = 64
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # a random hex digit -> RFC 4122 variant
_ids: list[str] = []
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ids.clear)  # a forked child must not reuse the parent's ids


def new_id() -> str:
    """A fresh uuid4 string (any thread)."""
    while True:
        try:
            return _ids.pop()
        except IndexError:
            raw = os.urandom(16 * _ID_BATCH).hex()
            _ids.extend(
                f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
                for h in (raw[i : i + 32] for i in range(0, len(raw), 32))
            )


# Snapshots are frozen dataclasses, whose generated `__init__` sets each field through
# `object.__setattr__`: 5-8 µs for a `Job` here, and a job takes up to three snapshots (renderer,
# listeners, waiters). Filling the new instance's `__dict__` in one call builds the same object
# (equal, same repr, still frozen) in ~1.5 µs. `tests/test_fast_paths.py` checks that the fields
# set here are exactly the dataclass's fields, so a field added to `models` cannot be missed.
_new = object.__new__


class TaskRecord:
    """A registered task. `gen` grows whenever its timeline entries must go stale (pause, remove)."""

    __slots__ = (
        "active_job",
        "after",
        "args",
        "at",
        "cache_base",
        "callback",
        "callback_async",
        "cancellable",
        "contexts",
        "cron",
        "data",
        "data_inject",
        "delay",
        "failures",
        "func",
        "gen",
        "interval",
        "kwargs",
        "last_job_id",
        "max_retries",
        "name",
        "next_due",
        "notify",
        "paused",
        "retry_backoff",
        "run_once",
        "sink",
        "spec",
        "task_id",
        "timeout",
        "timezone",
        "trigger",
        "zone",
    )  # fmt: skip

    task_id: str
    name: str
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    spec: HandlerSpec
    interval: float | None
    run_once: bool
    delay: float | None
    trigger: Trigger
    callback: Callable[..., Any] | None
    callback_async: bool
    sink: ProgressSink | None  # the callback, when it is a renderer the scheduler talks to directly
    cancellable: bool  # its jobs can observe a cancel once running (see `execution.observes_stop`)
    timeout: float | None
    max_retries: int
    retry_backoff: float
    notify: bool
    contexts: tuple[Callable[[], ContextManager[Any]], ...]
    paused: bool
    gen: int
    next_due: float | None  # monotonic seconds of the next run or retry; None when nothing is planned
    active_job: str | None
    failures: int  # consecutive failed attempts of the current run (drives retries)
    last_job_id: str | None
    # Pipelines and calendar time (see `pipeline`, `triggers`):
    after: tuple[str, ...]  # upstream task names
    cron: str | None
    at: str | None  # daily "HH:MM"
    zone: tzinfo | None  # the zone cron/at are read in
    timezone: str | None  # its name
    data_inject: tuple[tuple[str, str], ...]  # (parameter, kind) for `_upstream` / `_scheduled_at`
    data: dict[str, Any] | None  # their values for the current run (a retry reuses them)
    cache_base: str | None  # a cached step's key before upstream results (see `quiv_nb.store.keys`), else None

    def snapshot(self) -> Task:
        status = TaskStatus.PAUSED if self.paused else TaskStatus.RUNNING if self.active_job else TaskStatus.ACTIVE
        next_run_at = None
        wall_time = getattr(self.trigger, "wall_time", None) if self.zone is not None else None
        if self.next_due is not None and not self.paused and wall_time is not None:
            # A calendar run: the true wall-clock time in the task's zone (a retry due sooner: None -> below).
            next_run_at = wall_time(self.next_due)
        if next_run_at is None and self.next_due is not None and not self.paused:
            from datetime import datetime, timedelta, timezone  # loaded by `utcnow` already: a dict lookup

            try:
                next_run_at = utcnow() + timedelta(seconds=max(0.0, self.next_due - time.monotonic()))
            except OverflowError:  # centuries away (a huge delay or interval): past datetime's range
                next_run_at = datetime.max.replace(tzinfo=timezone.utc)
        snap = _new(Task)
        snap.__dict__.update({
            "task_id": self.task_id, "task_name": self.name, "status": status, "interval": self.interval,
            "run_once": self.run_once, "next_run_at": next_run_at, "delay": self.delay, "timeout": self.timeout,
            "max_retries": self.max_retries, "last_job_id": self.last_job_id, "after": self.after, "cron": self.cron,
            "at": self.at, "timezone": self.timezone, "notify": self.notify,
        })  # fmt: skip
        return snap


class JobRecord:
    """One run of a task, from submission to its final status."""

    __slots__ = (
        "attempt",
        "cache_key",
        "cached",
        "cancel_requested",
        "cancellable",
        "computed_at",
        "duration",
        "ended_at",
        "error_message",
        "future",
        "job_id",
        "log",
        "result",
        "sink",
        "started_at",
        "status",
        "stop_event",
        "t0",
        "task_id",
        "task_name",
        "traceback",
    )  # fmt: skip

    job_id: str
    task_id: str
    task_name: str
    status: JobStatus
    attempt: int
    stop_event: StopEvent
    sink: ProgressSink | None  # its task's renderer, told when the job starts and ends
    log: JobLog | None
    future: Future[Any] | None
    started_at: datetime | None
    ended_at: datetime | None
    duration: float | None
    t0: float  # perf_counter at start, for `duration`
    result: Any
    error_message: str | None
    traceback: str | None
    cancel_requested: bool  # `cancel_job` was called while it was unfinished
    cancellable: bool  # its handler can observe a cancel once running (see `execution.observes_stop`)
    cache_key: str | None  # a cached step's key (see `quiv_nb.store.keys`); None when not cached
    cached: bool  # its result was reused from the store instead of running it
    computed_at: datetime | None  # when a reused result was computed

    @classmethod
    def of_task(
        cls, task: TaskRecord, status: JobStatus, attempt: int, stop_event: StopEvent, log: JobLog | None
    ) -> JobRecord:
        """A new job of `task` (fresh id, nothing run yet); the lifecycle sets the rest as it goes."""
        job = cls()
        job.job_id = new_id()
        job.task_id, job.task_name, job.status, job.attempt = task.task_id, task.name, status, attempt
        job.started_at = job.ended_at = job.duration = job.result = job.error_message = job.traceback = None
        job.stop_event, job.t0, job.future, job.log = stop_event, 0.0, None, log
        job.sink, job.cancel_requested, job.cancellable = task.sink, False, task.cancellable
        job.cache_key, job.cached, job.computed_at = None, False, None
        return job

    def snapshot(self) -> Job:
        snap = _new(Job)
        snap.__dict__.update({
            "job_id": self.job_id, "task_id": self.task_id, "status": self.status, "started_at": self.started_at,
            "ended_at": self.ended_at, "duration_seconds": self.duration, "result": self.result,
            "error_message": self.error_message, "traceback": self.traceback, "task_name": self.task_name,
            "attempt": self.attempt, "output": self.log.text() if self.log is not None else "",
            "cancel_requested": self.cancel_requested, "cached": self.cached, "computed_at": self.computed_at,
        })  # fmt: skip
        return snap
