"""What `Quiv` answers about its tasks and jobs: snapshots, counts, history, waits and listeners.

A mixin of the facade (`scheduler.Quiv`), kept apart because it is most of the facade's text: each
method takes the scheduler lock for as long as it reads, and user code (listeners) never runs
under it. The attributes below are set by `Quiv.__init__`; they are this mixin's own state too.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from .errors import ConfigurationError, JobNotFoundError
from .eventbus import EventBus, as_event
from .models import Event, Job, JobStatus, Stats, Task

if TYPE_CHECKING:
    from .dispatch import MainLoop
    from .history import JobHistory
    from .seams import JobStore
    from .tasks import TaskTable
    from .waiters import Waiters, Waiting

__all__ = ["QueriesMixin"]


class QueriesMixin:
    """Snapshots, counts, history, waits and listeners of one scheduler (any thread unless a method says otherwise)."""

    _lock: threading.RLock
    _tasks: TaskTable
    _history: JobHistory
    _waiters: Waiters
    _waiting: Waiting
    _bus: EventBus
    _main: MainLoop
    _pool_size: int
    _store: JobStore

    @property
    def is_running(self) -> bool:
        """True between `start()` and `shutdown()` while the scheduler thread is alive (the facade's)."""
        raise NotImplementedError  # `Quiv.is_running` overrides it

    def can_cancel(self, job_id: str) -> bool:
        """Whether `cancel_job(job_id)` would take effect now (any thread).

        True for a job still queued, or running with a handler that takes `_stop_event` /
        `stop_event` or is async (its asyncio task is cancelled at its next `await`). False for
        a finished or unknown job, and for a running sync handler that cannot see a stop event.
        """
        with self._lock:
            job = self._history.find(job_id)
            if job is None or job.status.is_final:
                return False
            return job.status is JobStatus.SCHEDULED or job.cancellable

    def get_task(self, task_id: str) -> Task:
        """A snapshot of the task; `TaskNotFoundError` for an unknown id."""
        with self._lock:
            return self._tasks.get(task_id).snapshot()

    def get_all_tasks(self, include_run_once: bool = False) -> list[Task]:
        """Snapshots of the registered tasks, in the order they were added (any thread).

        As in quiv, run-once tasks (`run_once=True`, `%quiv run`, `Quiv.map`) are listed only with
        `include_run_once=True`; a run-once task is registered until its job ends.
        """
        if not isinstance(include_run_once, bool):
            raise ConfigurationError(f"include_run_once must be True or False, got {include_run_once!r}")
        with self._lock:
            return [t.snapshot() for t in self._tasks if include_run_once or not t.run_once]

    def get_job(self, job_id: str) -> Job:
        """A snapshot of the job; `JobNotFoundError` if unknown or pruned from history."""
        with self._lock:
            self._history.prune(time.monotonic())  # an expired job is gone even if no newer job ended since
            job = self._history.find(job_id)
            if job is None:
                raise JobNotFoundError(
                    f"no job with id {job_id!r} (finished jobs are kept for {self._history.retention:g}s)"
                )
            return job.snapshot()

    def get_all_jobs(self, status: str | None = None, task_id: str | None = None) -> list[Job]:
        """Jobs still in history, oldest first, optionally filtered by status and task."""
        if status is not None:
            try:
                status = JobStatus(status)
            except ValueError:
                allowed = ", ".join(s.value for s in JobStatus)
                raise ConfigurationError(f"status must be one of {allowed} or None, got {status!r}") from None
        with self._lock:
            self._history.prune(time.monotonic())
            return [
                j.snapshot()
                for j in self._history
                if (status is None or j.status is status) and (task_id is None or j.task_id == task_id)
            ]

    def stats(self) -> Stats:
        """Cheap counts for health checks: no history scan beyond status tallies."""
        with self._lock:
            by_status: dict[str, int] = {}
            for t in self._tasks:
                key = str(t.snapshot().status)
                by_status[key] = by_status.get(key, 0) + 1
            return Stats(
                is_running=self.is_running,
                pool_size=self._pool_size,
                active_jobs=sum(1 for t in self._tasks if t.active_job),
                tasks=len(self._tasks),
                tasks_by_status=by_status,
                jobs_retained=len(self._history),
                waiters=len(self._waiters),
            )

    # ------------------------------------------------------------------ waiting

    def wait_for_job(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job ends and return it (calling thread).

        On the thread that runs the main loop (a notebook cell) the loop keeps turning while
        this blocks, so main-loop progress callbacks keep being delivered. Raises `TimeoutError`
        after `timeout` seconds, `JobNotFoundError`, and `SchedulerStoppedError` after
        `shutdown()` (also when the job was abandoned at shutdown). A wait that times out or is
        interrupted leaves nothing registered.
        """
        self._main.note_caller()
        return self._synced(self._waiting.block(*self._waiting.for_job(job_id), timeout))

    def wait_for_task(self, task_id: str, timeout: float | None = None) -> Job:
        """Block until the task's running (or next) job ends and return it; raises as `wait_for_job`.

        A run-once task that already finished returns its final job at once.
        """
        self._main.note_caller()
        return self._synced(self._waiting.block(*self._waiting.for_task(task_id), timeout))

    async def await_job(self, job_id: str, timeout: float | None = None) -> Job:
        """The awaitable form of `wait_for_job` (on the awaiting loop)."""
        self._main.note_caller()
        return self._synced(await self._waiting.wait(*self._waiting.for_job(job_id), timeout))

    async def await_task(self, task_id: str, timeout: float | None = None) -> Job:
        """The awaitable form of `wait_for_task` (on the awaiting loop)."""
        self._main.note_caller()
        return self._synced(await self._waiting.wait(*self._waiting.for_task(task_id), timeout))

    def _synced(self, job: Job) -> Job:
        self._store.sync()  # what a wait returns is on disk before it returns
        return job

    # ------------------------------------------------------------------ the store

    def history(self, task_name: str | None = None, *, limit: int = 100) -> list[Job]:
        """Finished and interrupted jobs, newest first: this process's and, with a store, earlier ones'
        (their `result` is not kept: None). Calling thread; `ConfigurationError` for a bad `limit`."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"limit must be an integer >= 1, got {limit!r}")
        if self.store is not None:
            return self.store.history(task_name, limit)
        with self._lock:
            return self._history.latest(task_name, limit, time.monotonic())

    def clear_cache(self, task_name: str | None = None) -> int:
        """Forget stored results of cached steps (of `task_name`, or all); return how many (calling thread)."""
        return 0 if self.store is None else self.store.clear_cache(task_name)

    @property
    def store(self) -> Any:
        """The `quiv_nb.store.Store` this scheduler records to, or None (read-only)."""
        return self._store if hasattr(self._store, "history") else None

    # ------------------------------------------------------------------ listeners

    def add_listener(self, event: Event, callback: Callable[..., Any]) -> None:
        """Call `callback(event, task)` (task events) or `(event, task, job)` (job events)."""
        event = as_event(event)
        if not callable(callback):
            raise ConfigurationError(f"callback must be callable, got {type(callback).__name__}")
        with self._lock:
            self._bus.add(event, callback)

    def remove_listener(self, event: Event, callback: Callable[..., Any]) -> None:
        with self._lock:
            self._bus.remove(Event(event), callback)
