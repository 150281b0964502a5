"""`Quiv`: the public facade over the scheduler's collaborators, all guarded by one lock.

The collaborators (task table, job history, timeline and scheduler thread, triggers, the `after=`
pipeline, job lifecycle, waiters, event bus) and the seams they meet at are described in
docs/design.md. Everything mutable lives behind `self._lock` and is copied out as frozen
`Task`/`Job` snapshots. User code (listeners, callbacks, renderers) never runs under that lock:
state changes collect their side effects and run them after the lock is released, so a listener
may call back into the scheduler from any thread without deadlocking it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any, Callable

from .control import TaskControl
from .dispatch import Dispatcher, MainLoop
from .errors import ConfigurationError, JobNotFoundError, SchedulerStoppedError
from .eventbus import EventBus, as_event, run_effects
from .history import JobHistory
from .hooks import notify_attachers
from .lifecycle import JobLifecycle
from .locks import YieldingRLock
from .mapfanout import map_fanout
from .mapping import MapBody, prepare, upstream_body
from .models import Event, Job, JobStatus, Stats, Task
from .pipeline import Pipeline
from .pool import as_job_executor
from .records import utcnow
from .seams import JobStore
from .store import open_store, pin_of
from .tasks import TaskTable, build_task, number
from .timeline import Timeline
from .waiters import Waiters, Waiting

__all__ = ["Quiv"]


class Quiv:
    """A thread-pool scheduler for recurring and one-off jobs with progress reporting.

    Construct it anywhere (no event loop needed); `start()` launches its scheduler thread.
    Progress callbacks and listeners run on the main loop when there is one, else on the worker.
    """

    def __init__(
        self,
        pool_size: int = 10,
        *,
        main_loop: asyncio.AbstractEventLoop | None = None,
        history_retention_seconds: float = 3600,
        logger: logging.Logger | None = None,
        executor: Any = None,
        store: str | os.PathLike[str] | JobStore | None = None,
    ) -> None:
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigurationError(f"pool_size must be an integer >= 1, got {pool_size!r}")
        if main_loop is not None and not isinstance(main_loop, asyncio.AbstractEventLoop):
            raise ConfigurationError(f"main_loop must be an asyncio event loop or None, got {type(main_loop).__name__}")
        retention = number(
            "history_retention_seconds", history_retention_seconds, allow_none=False, minimum=0, strict=False
        )
        self._log = logger or logging.getLogger("quiv_nb")
        self._pool_size = pool_size
        self._executor, self._fanout = map_fanout(as_job_executor(executor, pool_size), pool_size)
        self._store: JobStore = open_store(store, retention or 0.0, self._log)  # last: it opens files
        self._main = MainLoop(main_loop)
        dispatch = Dispatcher(self._main, self._log)

        self._lock = YieldingRLock()
        self._tasks = TaskTable()
        self._history = JobHistory(retention or 0.0)
        self._timeline = Timeline(self._lock, lambda entry: self._jobs.is_live(entry))
        self._waiters = Waiters()
        self._waiting = Waiting(self._lock, self._waiters, self._history, self._tasks, self._main, self._is_stopped)
        self._bus = EventBus(dispatch)
        self._pipeline = Pipeline()
        self._jobs = JobLifecycle(
            self._lock, self._tasks, self._history, self._timeline, self._waiters, self._bus,
            self._executor, dispatch, self._log, self._is_stopped, pipeline=self._pipeline, store=self._store,
        )  # fmt: skip
        self._control = TaskControl(
            self._tasks, self._history, self._timeline, self._jobs, self._waiters, self._bus, self._is_started,
            self._pipeline,
        )  # fmt: skip
        self._started = False
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the scheduler thread (idempotent). Tasks added earlier begin their countdown now.

        Raises `SchedulerStoppedError` after `shutdown()`.
        """
        self._main.note_caller()
        with self._lock:
            self._check_open()
            if self._started:
                return
            self._started = True
            self._control.plan_all(time.monotonic())
            effects = self._jobs.submit_deferred()  # maps asked for before start
            self._timeline.start(self._jobs.on_due, self._is_stopped, self._log)
        run_effects(effects)

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop: set every job's stop event, wait up to `timeout` seconds, release our threads.

        A handler that ignores its stop event is abandoned (its daemon thread is left to finish
        on its own) with a warning. Idempotent; later scheduling calls raise
        `SchedulerStoppedError`.
        """
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            queued = self._jobs.stop_all("shutdown")
            self._timeline.clear()
            thread = self._timeline.thread
        for fut in queued:
            fut.cancel()
        if thread is not None and thread is not threading.current_thread():
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        abandoned = self._executor.shutdown(remaining)
        if abandoned:
            self._log.warning(
                "quiv_nb: shutdown abandoned %d worker(s) whose handler ignored its stop event: %s",
                len(abandoned),
                ", ".join(abandoned),
            )
        with self._lock:
            # Waiters first: a job still unfinished now was abandoned, and whoever waits for it
            # learns that the scheduler stopped, not that the job was cancelled (as quiv does).
            self._waiters.fail_all(lambda: SchedulerStoppedError("the scheduler was shut down before the job finished"))
            effects = self._jobs.abandon_unfinished(time.monotonic())
        run_effects(effects)
        self._store.close()

    stop = shutdown

    def __enter__(self) -> Quiv:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    @property
    def is_running(self) -> bool:
        """True between `start()` and `shutdown()` while the scheduler thread is alive."""
        thread = self._timeline.thread
        return self._started and not self._stopped and thread is not None and thread.is_alive()

    @property
    def stopped(self) -> bool:
        """True once `shutdown()` has begun (read-only; any thread)."""
        return self._stopped

    def _is_started(self) -> bool:
        return self._started

    def _is_stopped(self) -> bool:
        """`stopped` as a callable, for collaborators that check it under the lock."""
        return self._stopped

    @property
    def _thread(self) -> threading.Thread | None:
        """The scheduler thread (white-box tests join it)."""
        return self._timeline.thread

    def _check_open(self) -> None:
        if self._stopped:
            raise SchedulerStoppedError("this scheduler was shut down; create a new Quiv() to schedule more work")

    # ------------------------------------------------------------------ tasks

    def add_task(
        self,
        task_name: str,
        func: Callable[..., Any],
        interval: float | None = None,
        delay: float | None = None,
        run_once: bool = False,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        progress_callback: Callable[..., Any] | None = None,
        *,
        timeout: float | None = None,
        max_retries: int = 0,
        retry_backoff: float = 1.0,
        replace: bool = False,
        after: str | list[str] | tuple[str, ...] | None = None,
        cron: str | None = None,
        at: str | None = None,
        timezone: str | None = None,
        notify: bool = False,
        cache: bool | str = False,
        map: bool = False,
    ) -> str:
        """Register a task and return its id; its first run is after `delay` (default: at once).

        One schedule: `interval` seconds; a `cron` line or a daily `at` "HH:MM", wall-clock time
        in `timezone` (an IANA name; default: this machine's zone); or `after`, a task name/id or
        a list of them: the task then runs each time all of them completed a job, and gets their
        results as `_upstream` (see `quiv_nb.pipeline`). `notify` is stored and shown as
        `Task.notify`; with `notify=True` each `hooks.register_notify_attacher` hook is then
        called on this thread (in a notebook: the notify widget shows in the adding cell and
        announces each job's end with a desktop notification). `cache=True` (or a version pin like
        "v2") makes it a cached step (with a store; see `quiv_nb.store`). Raises `ConfigurationError` for
        bad arguments, an unknown upstream or a cycle (nothing is registered then), and
        `SchedulerStoppedError` after shutdown. `map=True` (one `after` upstream): `func(item, *args,
        **kwargs)` per item of the upstream's result, as `Quiv.map`; the task's result is the list.
        """
        self._main.note_caller()
        if map is not False:  # the handler becomes a map body over the upstream's result
            body = upstream_body(map, func, args, kwargs, after, self._fanout, self._pool_size, task_name)
            func, args, kwargs = body, (), None
        since = utcnow() if notify is True else None  # before adding: a quick first job is announced too
        if not isinstance(replace, bool):
            raise ConfigurationError(f"replace must be True or False, got {replace!r}")
        pin = pin_of(cache)  # ConfigurationError for a bad `cache`
        task = build_task(
            task_name, func, interval, delay, run_once, args, kwargs, progress_callback,
            timeout, max_retries, retry_backoff, notify, after=after, cron=cron, at=at, timezone=timezone,
        )  # fmt: skip
        if cache is not False:  # hashed here, on the adding thread: never under the lock
            task.cache_base = self._store.cache_base(task, pin)
        with self._lock:
            self._check_open()
            effects = self._control.add(task, time.monotonic(), replace=replace, after=after)
        run_effects(effects)
        if since is not None:
            self._attach_notifiers(task.task_id, since)
        return task.task_id

    def _attach_notifiers(self, task_id: str, since: Any) -> None:
        """Run the `notify=True` hooks on the adding thread; the task stays added if one fails."""
        for attacher in notify_attachers():
            try:
                attacher(self, task_id, since)
            except Exception:
                self._log.exception("quiv_nb: could not set up notifications for task %s", task_id)

    def remove_task(self, task_id: str, cascade: bool = False) -> None:
        """Remove a task; its running job, if any, gets its stop event set.

        If other tasks run after it, raises `DependentTasksError` (a `ConfigurationError`) that
        lists them, unless `cascade=True`, which removes them too. Raises `TaskNotFoundError`
        for an unknown id.
        """
        if not isinstance(cascade, bool):
            raise ConfigurationError(f"cascade must be True or False, got {cascade!r}")
        with self._lock:
            effects = self._control.remove(self._tasks.get(task_id), cascade=cascade)
        run_effects(effects)

    def pause_task(self, task_id: str) -> None:
        """Stop scheduling a task; a job already running finishes normally."""
        with self._lock:
            effects = self._control.pause(self._tasks.get(task_id))
        run_effects(effects)

    def resume_task(self, task_id: str, delay: float = 0.0) -> None:
        """Resume a paused task; its next run is `delay` seconds from now."""
        delay = number("delay", delay, allow_none=False, minimum=0, strict=False) or 0.0
        with self._lock:
            self._check_open()
            effects = self._control.resume(self._tasks.get(task_id), time.monotonic(), delay)
        run_effects(effects)

    def run_task_immediately(self, task_id: str) -> str:
        """Run a task now, outside its schedule (also when paused); return the job's id.

        With every worker busy the run is queued: its job stays "scheduled" until a worker takes
        it. If the task already has a job queued that way, that job is the run asked for and its
        id is returned (a task never has two jobs at once). Raises `TaskRunningError` if a job of
        the task is already running (as quiv does: a task never overlaps itself),
        `TaskNotFoundError`, `SchedulerStoppedError`, or `QuivError` before `start()`.
        """
        self._main.note_caller()
        with self._lock:
            self._check_open()
            job_id, effects = self._control.run_now(self._tasks.get(task_id), time.monotonic())
        run_effects(effects)
        return job_id

    def progress_callback(self, task_id: str) -> Callable[..., Any] | None:
        """The task's `progress_callback` (or None, also for an unknown task); any thread, lock-free."""
        return self._tasks.callback(task_id)

    def map(
        self,
        func: Callable[..., Any],
        *iterables: Any,
        name: str | None = None,
        max_workers: int | None = None,
        fail_fast: bool = False,
        progress_callback: Callable[..., Any] | None = None,
        timeout: float | None = None,
    ) -> str:
        """Start one job that calls `func` on each item, like `map(func, *iterables)`; return its id.

        See `quiv_nb.mapping` and the README's "Map": the result is the list in input order. Before
        `start()` the job is queued ("scheduled") and runs at `start()`. Raises `ConfigurationError`
        for bad arguments and `SchedulerStoppedError` after shutdown.
        """
        self._main.note_caller()
        spec, items, name = prepare(func, iterables, max_workers, fail_fast, self._pool_size, name)
        body = MapBody(spec, items, self._fanout)
        task = build_task(name, body, None, None, True, (), None, progress_callback, timeout, 0, 1.0)
        with self._lock:  # one hold: the job exists (submitted, or queued for start) when the lock is released
            self._check_open()
            effects = self._control.add(task, time.monotonic(), replace=False)
            if not self._started:
                effects += self._jobs.start_job(task, time.monotonic(), 0, {}, defer=True)
            job_id = task.last_job_id
        run_effects(effects)
        assert job_id is not None
        return job_id

    # ------------------------------------------------------------------ jobs

    def cancel_job(self, job_id: str) -> bool:
        """Ask a job to stop (sets its stop event; no thread is killed). Any thread.

        Returns True if the job was still scheduled or running, False if it had finished or is
        unknown. A queued job never starts. A running job stops only if its handler can observe
        the stop event (see `can_cancel`); one that cannot runs to its end and is recorded as it
        really ended ("completed"/"failed"), with `Job.cancel_requested` True.
        """
        with self._lock:
            job = self._history.find(job_id)
            if job is None or job.status.is_final:
                return False
            job.cancel_requested = True
            job.stop_event.set("cancel")
            queued = job.future if job.status is JobStatus.SCHEDULED else None
        if queued is not None:
            queued.cancel()  # still queued: it will never start (its done-callback finalizes it)
        return True

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

    def get_all_tasks(self) -> list[Task]:
        with self._lock:
            return [t.snapshot() for t in self._tasks]

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

    def history(self, task_name: str | None = None, *, limit: int = 100) -> list[Job]:
        """Finished and interrupted jobs, newest first: this process's and, with a store, earlier ones'
        (their `result` is not kept: None). Calling thread; `ConfigurationError` for a bad `limit`."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"limit must be an integer >= 1, got {limit!r}")
        if self.store is not None:
            return self.store.history(task_name, limit)  # type: ignore[no-any-return]
        with self._lock:
            return self._history.latest(task_name, limit, time.monotonic())

    def clear_cache(self, task_name: str | None = None) -> int:
        """Forget stored results of cached steps (of `task_name`, or all); return how many (calling thread)."""
        return 0 if self.store is None else self.store.clear_cache(task_name)  # type: ignore[no-any-return]

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

    # ------------------------------------------------------------------ internals (hold the lock)
