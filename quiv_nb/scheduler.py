"""`Quiv`: the task table, timing on a heap of absolute due times, and the scheduler thread.

Everything mutable lives behind one lock and is copied out as frozen `Task`/`Job` snapshots.
User code (listeners, callbacks, renderers) never runs under that lock: state changes collect
their side effects and run them after the lock is released, so a listener may call back into
the scheduler from any thread without deadlocking it.
"""

from __future__ import annotations

import _thread
import asyncio
import concurrent.futures
import heapq
import itertools
import logging
import math
import os
import threading
import time
import weakref
from collections import deque
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from .dispatch import Dispatcher, MainLoop, is_async_callable
from .errors import (
    ConfigurationError,
    JobNotFoundError,
    QuivError,
    SchedulerStoppedError,
    TaskNotFoundError,
    TaskRunningError,
)
from .execution import (
    HandlerSpec,
    JobCall,
    JobExecutor,
    Outcome,
    StopEvent,
    as_job_executor,
    capture_job_contexts,
    failure,
    inspect_handler,
)
from .joblog import JobLog
from .models import Event, Job, JobStatus, Stats, Task, TaskStatus
from .waiting import block_on

__all__ = ["Quiv"]

_RUN, _RETRY, _TIMEOUT = 0, 1, 2
_CANCEL_MESSAGES = {
    "cancel": "cancelled",
    "removed": "cancelled: its task was removed",
    "shutdown": "cancelled: the scheduler shut down",
}
_MAX_HISTORY = 10_000  # finished jobs kept at most, whatever the retention time
_MIN_COMPACT = 64  # below this many heap entries, stale ones are left for the scheduler thread to pop
_MAX_WAIT = 86_400.0  # longest single sleep of the scheduler thread (threading rejects waits past ~292 years)

Effect = Callable[[], None]


def _noop_hook(*args: Any, **kwargs: Any) -> None:
    return None


# Public: executors compare a job's progress hook with it (by identity) to skip reporting (quiv_nb.dask).
noop_hook = _noop_hook


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


# Task and job ids are random (version 4) UUID strings. `str(uuid.uuid4())` reads 16 bytes from
# `os.urandom` per id, and every such read releases the GIL: under load that hands the interpreter
# to a worker thread twice per `add_task`. One read serves `_ID_BATCH` ids here instead (list
# `pop`/`extend` are atomic, so threads share the pool without a lock; racing refills only add ids).
_ID_BATCH = 64
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # a random hex digit -> RFC 4122 variant
_ids: list[str] = []
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ids.clear)  # a forked child must not reuse the parent's ids


def _new_id() -> str:
    while True:
        try:
            return _ids.pop()
        except IndexError:
            raw = os.urandom(16 * _ID_BATCH).hex()
            _ids.extend(
                f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
                for h in (raw[i : i + 32] for i in range(0, len(raw), 32))
            )


# What `inspect_handler` learned about a plain function, per (number of args, kwarg names): the
# signature inspection and bind check cost more than the rest of `add_task` together, and their
# result depends on nothing else. Only plain functions without attributes (no `__wrapped__` or
# `__signature__` to follow) are cached, and an entry is dropped if the function's code or
# defaults are replaced.
_FunctionType = type(_noop_hook)
_specs: weakref.WeakKeyDictionary[Any, tuple[Any, Any, Any, dict[tuple[int, tuple[str, ...]], HandlerSpec]]] = (
    weakref.WeakKeyDictionary()
)


def _handler_spec(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> HandlerSpec:
    """`inspect_handler(func, args, kwargs)`, cached for plain functions; raises `ConfigurationError` alike."""
    if type(func) is not _FunctionType or func.__dict__:
        return inspect_handler(func, args, kwargs)
    key = (len(args), tuple(kwargs))
    code, defaults, kwdefaults = func.__code__, func.__defaults__, func.__kwdefaults__
    entry = _specs.get(func)
    if entry is None or entry[0] is not code or entry[1] is not defaults or entry[2] is not kwdefaults:
        entry = _specs[func] = (code, defaults, kwdefaults, {})
    spec = entry[3].get(key)
    if spec is None:
        spec = entry[3][key] = inspect_handler(func, args, kwargs)
    return spec


def _settle(fut: concurrent.futures.Future[Job], result: Job | None = None, error: BaseException | None = None) -> None:
    """Resolve a waiter's future unless its waiter gave up: a timed-out `await_job` cancels it."""
    if fut.set_running_or_notify_cancel():  # atomic: no cancel can slip in after this
        if error is None:
            fut.set_result(result)  # type: ignore[arg-type]
        else:
            fut.set_exception(error)


_YIELDS = 50  # GIL hand-overs a contended acquire tries before it blocks
_EVENT_FOR_STATUS = {
    JobStatus.COMPLETED: Event.JOB_COMPLETED,
    JobStatus.FAILED: Event.JOB_FAILED,
    JobStatus.CANCELLED: Event.JOB_CANCELLED,
    JobStatus.SKIPPED: Event.JOB_SKIPPED,
}


class _YieldingRLock(_thread.RLock):  # type: ignore[misc]  # the C type behind threading.RLock()
    """An `RLock` whose contended acquire first hands the GIL over a few times, then blocks.

    Why: the lock is taken by the adding thread once per task and by a worker twice per job. A
    thread blocked on a plain lock is woken owning it but must still wait for the GIL, which the
    thread that just released the lock holds; that thread then wants the lock again and blocks
    in turn. Once started, this convoy costs two context switches per acquisition and more than
    doubled the time for a burst of short jobs. `time.sleep(0)` instead gives the GIL to the
    lock's holder at once, and the waiter takes the lock when it is free. Release, `__exit__`
    and what `threading.Condition` uses stay the C ones.
    """

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if _rlock_acquire(self, False):
            return True
        if not blocking:
            return False
        if timeout < 0:
            for _ in range(_YIELDS):
                time.sleep(0)  # releases the GIL
                if _rlock_acquire(self, False):
                    return True
        return _rlock_acquire(self, True, timeout)

    __enter__ = acquire


_rlock_acquire = _thread.RLock.acquire


class _TaskRecord:
    __slots__ = (
        "active_job",
        "args",
        "callback",
        "callback_async",
        "contexts",
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
        "paused",
        "retry_backoff",
        "run_once",
        "spec",
        "task_id",
        "timeout",
    )  # fmt: skip

    def snapshot(self) -> Task:
        status = TaskStatus.PAUSED if self.paused else TaskStatus.RUNNING if self.active_job else TaskStatus.ACTIVE
        next_run_at = None
        if self.next_due is not None and not self.paused:
            try:
                next_run_at = _utcnow() + timedelta(seconds=max(0.0, self.next_due - time.monotonic()))
            except OverflowError:  # centuries away (a huge delay or interval): past datetime's range
                next_run_at = datetime.max.replace(tzinfo=timezone.utc)
        return Task(
            self.task_id, self.name, status, self.interval, self.run_once, next_run_at,
            self.delay, self.timeout, self.max_retries, self.last_job_id,
        )  # fmt: skip


class _JobRecord:
    __slots__ = (
        "attempt",
        "callback",
        "duration",
        "ended_at",
        "error_message",
        "future",
        "job_id",
        "log",
        "result",
        "started_at",
        "status",
        "stop_event",
        "t0",
        "task_id",
        "task_name",
        "traceback",
    )  # fmt: skip

    def snapshot(self) -> Job:
        return Job(
            self.job_id, self.task_id, self.status, self.started_at, self.ended_at, self.duration,
            self.result, self.error_message, self.traceback, self.task_name, self.attempt,
            self.log.text() if self.log is not None else "",
        )  # fmt: skip


def _number(name: str, value: Any, *, allow_none: bool, minimum: float, strict: bool) -> float | None:
    """Validate a non-bool finite number against a bound, naming the argument on failure."""
    if value is None and allow_none:
        return None
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a number of seconds {bound}, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise ConfigurationError(f"{name} must be {bound} seconds, got {value!r}")
    return float(value)


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
    ) -> None:
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigurationError(f"pool_size must be an integer >= 1, got {pool_size!r}")
        if main_loop is not None and not isinstance(main_loop, asyncio.AbstractEventLoop):
            raise ConfigurationError(f"main_loop must be an asyncio event loop or None, got {type(main_loop).__name__}")
        self._retention = _number(
            "history_retention_seconds", history_retention_seconds, allow_none=False, minimum=0, strict=False
        )
        self._log = logger or logging.getLogger("quiv_nb")
        self._pool_size = pool_size
        self._executor: JobExecutor = as_job_executor(executor, pool_size)
        self._main = MainLoop(main_loop)
        self._dispatch = Dispatcher(self._main, self._log)

        self._lock = _YieldingRLock()
        self._wakeup = threading.Condition(self._lock)
        self._tasks: dict[str, _TaskRecord] = {}
        self._jobs: dict[str, _JobRecord] = {}
        self._finished: deque[tuple[float, str]] = deque()  # (monotonic end, job id), oldest first
        self._done_once: dict[str, str] = {}  # finished run-once task id -> its last job id
        self._heap: list[tuple[float, int, int, str, int]] = []  # (due, seq, kind, key, gen)
        self._compact_at = _MIN_COMPACT  # heap size that triggers dropping stale entries
        self._seq = itertools.count()
        self._job_waiters: dict[str, list[concurrent.futures.Future[Job]]] = {}
        self._task_waiters: dict[str, list[concurrent.futures.Future[Job]]] = {}
        self._listeners: dict[Event, list[Callable[..., Any]]] = {}
        # (listener, is_async) per event, rebuilt after add/remove: `is_async_callable` costs more
        # than the rest of an event's delivery, so it is not asked again for every event.
        self._listener_entries: dict[Event, tuple[tuple[Callable[..., Any], bool], ...]] = {}
        self._thread: threading.Thread | None = None
        self._started = False
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the scheduler thread (idempotent). Tasks added earlier begin their countdown now."""
        self._main.note_caller()
        with self._lock:
            self._check_open()
            if self._started:
                return
            self._started = True
            now = time.monotonic()
            for task in self._tasks.values():
                if task.next_due is None and not task.paused:
                    self._push(task, now + (task.delay or 0.0))
            self._thread = threading.Thread(target=self._run, name="quiv_nb-scheduler", daemon=True)
            self._thread.start()

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
            queued = []
            for job in self._jobs.values():
                if not job.status.is_final:
                    job.stop_event.set("shutdown")
                    if job.status is JobStatus.SCHEDULED and job.future is not None:
                        queued.append(job.future)
            self._heap.clear()
            self._wakeup.notify_all()
            thread = self._thread
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
        effects: list[Effect] = []
        with self._lock:
            for job in list(self._jobs.values()):
                if not job.status.is_final:
                    abandoned_outcome = Outcome(False, error_message="abandoned at shutdown", cancelled=True)
                    effects += self._finalize(job, abandoned_outcome)
            for waiters in (*self._job_waiters.values(), *self._task_waiters.values()):
                for fut in waiters:
                    _settle(fut, error=SchedulerStoppedError("the scheduler was shut down before the job finished"))
            self._job_waiters.clear()
            self._task_waiters.clear()
        self._run_effects(effects)

    stop = shutdown

    def __enter__(self) -> Quiv:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    @property
    def is_running(self) -> bool:
        """True between `start()` and `shutdown()` while the scheduler thread is alive."""
        thread = self._thread
        return self._started and not self._stopped and thread is not None and thread.is_alive()

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
    ) -> str:
        """Register a task and return its id; its first run is after `delay` (default: at once).

        Raises `ConfigurationError` for bad arguments (nothing is registered then) and
        `SchedulerStoppedError` after shutdown.
        """
        self._main.note_caller()
        if not isinstance(task_name, str) or not task_name.strip():
            raise ConfigurationError(f"task_name must be a non-empty string, got {task_name!r}")
        if not isinstance(run_once, bool):
            raise ConfigurationError(f"run_once must be True or False, got {run_once!r}")
        if run_once:
            interval = _number("interval", interval, allow_none=True, minimum=0, strict=True)
        elif interval is None:
            raise ConfigurationError("interval is required for a recurring task (seconds > 0); or pass run_once=True")
        else:
            interval = _number("interval", interval, allow_none=False, minimum=0, strict=True)
        delay = _number("delay", delay, allow_none=True, minimum=0, strict=False)
        timeout = _number("timeout", timeout, allow_none=True, minimum=0, strict=True)
        retry_backoff = _number("retry_backoff", retry_backoff, allow_none=False, minimum=0, strict=False)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        if not isinstance(args, (tuple, list)):
            raise ConfigurationError(f"args must be a tuple or list, got {type(args).__name__}")
        if kwargs is None:
            kwargs = {}
        elif not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise ConfigurationError("kwargs must be a dict with string keys, or None")
        if progress_callback is not None and not callable(progress_callback):
            raise ConfigurationError(
                f"progress_callback must be callable (sync or async) or None, got {type(progress_callback).__name__}"
            )
        if not isinstance(replace, bool):
            raise ConfigurationError(f"replace must be True or False, got {replace!r}")
        args = tuple(args)
        spec = _handler_spec(func, args, kwargs)

        task = _TaskRecord()
        task.task_id = _new_id()
        task.name, task.func, task.args, task.kwargs, task.spec = task_name, func, args, dict(kwargs), spec
        task.interval, task.run_once, task.delay = interval, run_once, delay
        task.callback = progress_callback
        task.callback_async = progress_callback is not None and is_async_callable(progress_callback)
        task.timeout, task.max_retries, task.retry_backoff = timeout, max_retries, retry_backoff
        task.paused, task.gen, task.next_due = False, 0, None
        task.active_job, task.failures, task.last_job_id = None, 0, None
        task.contexts = capture_job_contexts(recurring=not run_once)

        effects: list[Effect] = []
        with self._lock:
            self._check_open()
            if replace:
                for other in [t for t in self._tasks.values() if t.name == task_name]:
                    effects += self._remove(other)
            self._tasks[task.task_id] = task
            if self._listeners.get(Event.TASK_ADDED):  # no snapshot nobody would see
                effects.append(self._emitter(Event.TASK_ADDED, task.snapshot()))
            if self._started:
                now = time.monotonic()
                due = now + (delay or 0.0)
                if due <= now:
                    effects += self._fire(task, now, _RUN)
                else:
                    self._push(task, due)
        self._run_effects(effects)
        return task.task_id

    def remove_task(self, task_id: str) -> None:
        """Remove a task; its running job, if any, gets its stop event set."""
        with self._lock:
            effects = self._remove(self._task(task_id))
        self._run_effects(effects)

    def pause_task(self, task_id: str) -> None:
        """Stop scheduling a task; a job already running finishes normally."""
        with self._lock:
            task = self._task(task_id)
            if task.paused:
                return
            task.paused = True
            task.gen += 1
            task.next_due = None
            effect = self._emitter(Event.TASK_PAUSED, task.snapshot())
        effect()

    def resume_task(self, task_id: str, delay: float = 0.0) -> None:
        """Resume a paused task; its next run is `delay` seconds from now."""
        delay = _number("delay", delay, allow_none=False, minimum=0, strict=False) or 0.0
        with self._lock:
            self._check_open()
            task = self._task(task_id)
            if not task.paused:
                return
            task.paused = False
            task.gen += 1
            if self._started:
                self._push(task, time.monotonic() + delay)
            effect = self._emitter(Event.TASK_RESUMED, task.snapshot())
        effect()

    def run_task_immediately(self, task_id: str) -> str:
        """Run a task now, outside its schedule (also when paused); return the new job's id.

        Raises `TaskRunningError` if a job of the task is running (a task never overlaps itself).
        """
        self._main.note_caller()
        with self._lock:
            self._check_open()
            task = self._task(task_id)
            if task.active_job is not None:
                raise TaskRunningError(
                    f"task {task.name!r} has job {task.active_job} running; wait for it or cancel it first"
                )
            if not self._started:
                raise QuivError("the scheduler is not started yet; call start() first")
            effects = self._fire(task, time.monotonic(), _RUN, manual=True)
            job_id = task.active_job
        self._run_effects(effects)
        assert job_id is not None
        return job_id

    # ------------------------------------------------------------------ jobs

    def cancel_job(self, job_id: str) -> bool:
        """Ask a job to stop (sets its stop event; no thread is killed).

        Returns True if the job was still scheduled or running, False if it had finished or is unknown.
        """
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status.is_final:
                return False
            job.stop_event.set("cancel")
            queued = job.future if job.status is JobStatus.SCHEDULED else None
        if queued is not None:
            queued.cancel()  # still queued: it will never start (its done-callback finalizes it)
        return True

    def get_task(self, task_id: str) -> Task:
        with self._lock:
            return self._task(task_id).snapshot()

    def get_all_tasks(self) -> list[Task]:
        with self._lock:
            return [t.snapshot() for t in self._tasks.values()]

    def get_job(self, job_id: str) -> Job:
        with self._lock:
            self._prune(time.monotonic())  # an expired job is gone even if no newer job ended since
            job = self._jobs.get(job_id)
            if job is None:
                raise JobNotFoundError(f"no job with id {job_id!r} (finished jobs are kept for {self._retention:g}s)")
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
            self._prune(time.monotonic())
            return [
                j.snapshot()
                for j in self._jobs.values()
                if (status is None or j.status is status) and (task_id is None or j.task_id == task_id)
            ]

    def stats(self) -> Stats:
        """Cheap counts for health checks: no history scan beyond status tallies."""
        with self._lock:
            by_status: dict[str, int] = {}
            for t in self._tasks.values():
                key = str(t.snapshot().status)
                by_status[key] = by_status.get(key, 0) + 1
            active = sum(1 for t in self._tasks.values() if t.active_job)
            return Stats(
                is_running=self.is_running,
                pool_size=self._pool_size,
                active_jobs=active,
                tasks=len(self._tasks),
                tasks_by_status=by_status,
                jobs_retained=len(self._jobs),
            )

    # ------------------------------------------------------------------ waiting

    def wait_for_job(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job ends and return it; raises `TimeoutError` after `timeout` seconds.

        On the thread that runs the main loop (a notebook cell) the loop keeps turning while
        this blocks, so main-loop progress callbacks keep being delivered.
        """
        self._main.note_caller()
        fut = self._job_future(job_id)
        return block_on(fut, timeout, self._main.running_here())

    def wait_for_task(self, task_id: str, timeout: float | None = None) -> Job:
        """Block until the task's running (or next) job ends and return it.

        A run-once task that already finished returns its final job at once.
        """
        self._main.note_caller()
        fut = self._task_future(task_id)
        return block_on(fut, timeout, self._main.running_here())

    async def await_job(self, job_id: str, timeout: float | None = None) -> Job:
        """The awaitable form of `wait_for_job`."""
        self._main.note_caller()
        return await self._await(self._job_future(job_id), timeout)

    async def await_task(self, task_id: str, timeout: float | None = None) -> Job:
        """The awaitable form of `wait_for_task`."""
        self._main.note_caller()
        return await self._await(self._task_future(task_id), timeout)

    @staticmethod
    async def _await(fut: concurrent.futures.Future[Job], timeout: float | None) -> Job:
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"still not done after {timeout}s") from None

    def _job_future(self, job_id: str) -> concurrent.futures.Future[Job]:
        fut: concurrent.futures.Future[Job] = concurrent.futures.Future()
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise JobNotFoundError(f"no job with id {job_id!r}")
            if job.status.is_final:
                fut.set_result(job.snapshot())
            elif self._stopped:
                raise SchedulerStoppedError("the scheduler was shut down")
            else:
                self._job_waiters.setdefault(job_id, []).append(fut)
        return fut

    def _task_future(self, task_id: str) -> concurrent.futures.Future[Job]:
        fut: concurrent.futures.Future[Job] = concurrent.futures.Future()
        with self._lock:
            if task_id not in self._tasks:
                done = self._jobs.get(self._done_once.get(task_id, ""))
                if done is None:
                    raise TaskNotFoundError(f"no task with id {task_id!r}")
                fut.set_result(done.snapshot())
                return fut
            self._check_open()
            self._task_waiters.setdefault(task_id, []).append(fut)
        return fut

    # ------------------------------------------------------------------ listeners

    def add_listener(self, event: Event, callback: Callable[..., Any]) -> None:
        """Call `callback(event, task)` (task events) or `(event, task, job)` (job events)."""
        if not isinstance(event, Event):
            try:
                event = Event(event)
            except ValueError:
                allowed = ", ".join(e.name for e in Event)
                raise ConfigurationError(f"event must be a quiv_nb.Event ({allowed}), got {event!r}") from None
        if not callable(callback):
            raise ConfigurationError(f"callback must be callable, got {type(callback).__name__}")
        with self._lock:
            self._listeners.setdefault(event, []).append(callback)
            self._listener_entries.pop(event, None)

    def remove_listener(self, event: Event, callback: Callable[..., Any]) -> None:
        with self._lock:
            try:
                self._listeners.get(Event(event), []).remove(callback)
            except ValueError:
                pass
            self._listener_entries.pop(Event(event), None)

    def _emitter(self, event: Event, *payload: Any) -> Effect:
        """Build (under the lock) the effect that delivers `event` to its listeners."""
        entries = self._listener_entries.get(event)
        if entries is None:
            entries = tuple((cb, is_async_callable(cb)) for cb in self._listeners.get(event, ()))
            self._listener_entries[event] = entries
        if not entries:
            return _noop_effect
        deliver = self._dispatch.deliver
        label = f"listener for {event.value}"

        def emit() -> None:
            for listener, is_async in entries:
                deliver(listener, is_async, (event, *payload), {}, label)

        return emit

    @staticmethod
    def _run_effects(effects: list[Effect]) -> None:
        for effect in effects:
            effect()

    # ------------------------------------------------------------------ internals (hold the lock)

    def _task(self, task_id: str) -> _TaskRecord:
        task = self._tasks.get(task_id)
        if task is None:
            raise TaskNotFoundError(f"no task with id {task_id!r}; see get_all_tasks() for the ids that exist")
        return task

    def _remove(self, task: _TaskRecord) -> list[Effect]:
        del self._tasks[task.task_id]
        task.gen += 1
        task.next_due = None
        if task.active_job is not None:
            self._jobs[task.active_job].stop_event.set("removed")
        else:
            for fut in self._task_waiters.pop(task.task_id, ()):
                _settle(fut, error=TaskNotFoundError(f"task {task.name!r} was removed"))
        return [self._emitter(Event.TASK_REMOVED, task.snapshot())]

    def _push(self, task: _TaskRecord, due: float) -> None:
        task.next_due = due
        self._heappush(due, _RUN, task.task_id, task.gen)

    def _heappush(self, due: float, kind: int, key: str, gen: int) -> None:
        """Add a heap entry and wake the scheduler thread if it is now the earliest.

        Entries go stale without being removed (a finished job's timeout, a paused task's slot),
        and a fast task with a long timeout would pile up one per job; so once the heap doubles
        past its last live size, stale entries are dropped in place (amortised O(log n) a push).
        """
        heap = self._heap
        if len(heap) >= self._compact_at:
            heap[:] = [e for e in heap if self._live(e)]  # in place: the scheduler thread holds `heap`
            heapq.heapify(heap)
            self._compact_at = max(_MIN_COMPACT, 2 * len(heap))
        entry = (due, next(self._seq), kind, key, gen)
        heapq.heappush(heap, entry)
        if heap[0] is entry:
            self._wakeup.notify()

    def _live(self, entry: tuple[float, int, int, str, int]) -> bool:
        """Whether popping `entry` would still do something (see `_run`)."""
        _, _, kind, key, gen = entry
        if kind == _TIMEOUT:
            job = self._jobs.get(key)
            return job is not None and not job.status.is_final
        task = self._tasks.get(key)
        return task is not None and task.gen == gen and not task.paused

    def _fire(
        self, task: _TaskRecord, now: float, kind: int, *, manual: bool = False, due: float = 0.0
    ) -> list[Effect]:
        """A due slot of `task`: start a job unless it is running; plan the next slot."""
        if kind == _RUN and not manual:
            task.next_due = None
            if task.interval is not None and not task.run_once:
                nxt = (due or now) + task.interval
                if nxt <= now:  # missed slots (a long job, a slow machine) are skipped, not queued
                    nxt += math.ceil((now - nxt) / task.interval + 1e-9) * task.interval
                self._push(task, nxt)
        if task.active_job is not None:
            return []
        if kind == _RUN and not manual:
            task.failures = 0
        return self._start_job(task, now, attempt=task.failures if kind == _RETRY else 0)

    def _start_job(self, task: _TaskRecord, now: float, attempt: int) -> list[Effect]:
        job = _JobRecord()
        job.job_id = _new_id()
        job.task_id, job.task_name, job.status = task.task_id, task.name, JobStatus.SCHEDULED
        job.started_at = job.ended_at = job.duration = job.result = None
        job.error_message = job.traceback = None
        job.attempt, job.stop_event, job.t0, job.future = attempt, StopEvent(), 0.0, None
        job.callback = task.callback
        job.log = JobLog()
        self._jobs[job.job_id] = job
        task.active_job = task.last_job_id = job.job_id

        call = JobCall(
            job.job_id, task.func, task.args, task.kwargs, task.spec, job.stop_event,
            self._make_hook(task, job.job_id), lambda: self._on_start(job), task.contexts,
            {"task_name": task.name}, job.log,
        )  # fmt: skip
        try:
            job.future = fut = self._executor.submit(call)
        except Exception as exc:  # the executor refused (e.g. a dead cluster): fail this job, not the caller
            fut = concurrent.futures.Future()
            fut.set_result(failure(exc))
            job.future = fut
        # Attached once the lock is released: a job that already finished calls back at once,
        # and its listeners must not run under our lock.
        return [lambda: fut.add_done_callback(lambda f: self._on_done(job, f))]

    def _make_hook(self, task: _TaskRecord, job_id: str) -> Callable[..., None]:
        """The `_progress_hook` a job gets: O(1), never blocks, never raises into the handler."""
        callback = task.callback
        if callback is None:
            return _noop_hook
        inline = getattr(callback, "quiv_progress", None)
        if inline is not None:  # a built-in renderer: record the payload right here (DESIGN §3)

            def render_hook(*args: Any, **kwargs: Any) -> None:
                inline(job_id, args, kwargs)

            return render_hook
        deliver, is_async = self._dispatch.deliver, task.callback_async
        label = f"progress callback of task {task.name!r}"

        def hook(*args: Any, **kwargs: Any) -> None:
            deliver(callback, is_async, args, kwargs, label)

        return hook

    # ------------------------------------------------------------------ job lifecycle (worker side)

    def _on_start(self, job: _JobRecord) -> bool:
        with self._lock:
            if job.stop_event.is_set() or job.status is not JobStatus.SCHEDULED:
                return False
            job.status = JobStatus.RUNNING
            job.started_at = _utcnow()
            job.t0 = time.perf_counter()
            task = self._tasks.get(job.task_id)
            if task is not None and task.timeout is not None:
                self._heappush(time.monotonic() + task.timeout, _TIMEOUT, job.job_id, 0)
            started = getattr(job.callback, "quiv_job_started", None)
            listened = self._listeners.get(Event.JOB_STARTED)
            snap = job.snapshot() if listened or started is not None else None  # none that nobody sees
            effects = [self._emitter(Event.JOB_STARTED, task.snapshot() if task else None, snap)] if listened else []
        if started is not None:
            started(snap)
        self._run_effects(effects)
        return True

    def _on_done(self, job: _JobRecord, fut: concurrent.futures.Future[Outcome]) -> None:
        try:
            outcome = fut.result()  # asked first: one trip through the future's lock when it has a result
        except BaseException as exc:
            if fut.cancelled():
                outcome = Outcome(False, error_message="cancelled before it started", cancelled=True)
            else:
                outcome = failure(exc)
        with self._lock:
            effects = self._finalize(job, outcome)
        self._run_effects(effects)

    def _finalize(self, job: _JobRecord, outcome: Outcome) -> list[Effect]:
        if job.status.is_final:
            return []
        now = time.monotonic()
        reason = job.stop_event.reason if job.stop_event.is_set() else None
        if outcome.cancelled or reason is not None:
            job.status = JobStatus.CANCELLED
            task = self._tasks.get(job.task_id)
            if reason == "timeout" and task is not None and task.timeout is not None:
                job.error_message = f"timed out after {task.timeout:g}s"
            elif reason == "timeout":
                job.error_message = "timed out"
            elif outcome.error_message and not outcome.ok:
                job.error_message = outcome.error_message
            else:
                job.error_message = _CANCEL_MESSAGES.get(reason or "cancel", "cancelled")
            job.traceback = outcome.traceback
            if outcome.ok:  # the handler saw its stop event and returned: keep what it said
                job.result = outcome.result
        elif outcome.ok:
            job.status, job.result = JobStatus.COMPLETED, outcome.result
        else:
            job.status, job.error_message, job.traceback = JobStatus.FAILED, outcome.error_message, outcome.traceback
            self._log.error(
                "quiv_nb: job %s of task %r failed:\n%s", job.job_id, job.task_name, outcome.traceback,
                extra={"quiv_job_id": job.job_id, "quiv_task_id": job.task_id},
            )  # fmt: skip
        job.ended_at = _utcnow()
        if job.started_at is not None:
            job.duration = time.perf_counter() - job.t0
        job.future = None

        task = self._tasks.get(job.task_id)
        event = _EVENT_FOR_STATUS[job.status]
        effects: list[Effect] = []
        retrying = False
        if task is not None:
            if task.active_job == job.job_id:
                task.active_job = None
            if job.status is JobStatus.FAILED and task.failures < task.max_retries and not self._stopped:
                task.failures += 1
                retrying = True
                due = now + task.retry_backoff * 2 ** (task.failures - 1)
                self._heappush(due, _RETRY, task.task_id, task.gen)
                if task.next_due is None or due < task.next_due:
                    task.next_due = due
            elif job.status is JobStatus.COMPLETED:
                task.failures = 0
            if task.run_once and not retrying:
                del self._tasks[task.task_id]
                task.gen += 1
                self._done_once[task.task_id] = job.job_id
        # Snapshots only for someone who will see them (a waiter, the renderer, a listener).
        job_waiters, task_waiters = self._job_waiters.pop(job.job_id, ()), self._task_waiters.pop(job.task_id, ())
        finished = getattr(job.callback, "quiv_job_finished", None)
        listened = self._listeners.get(event) or (retrying and self._listeners.get(Event.JOB_RETRYING))
        task_snap = task.snapshot() if task is not None and listened else None
        snap = job.snapshot() if listened or job_waiters or task_waiters or finished is not None else None
        if finished is not None:
            # Before the waiters: a renderer only records its final state (O(1), never raises),
            # so `wait_for_job` returning means the bar already knows how the job ended.
            try:
                finished(snap)
            except Exception:
                self._log.exception("quiv_nb: renderer %r failed to record the end of a job", job.callback)
        for fut in job_waiters:
            _settle(fut, snap)
        for fut in task_waiters:
            _settle(fut, snap)
        self._finished.append((now, job.job_id))
        self._prune(now)

        effects.append(self._emitter(event, task_snap, snap))
        if retrying:
            effects.append(self._emitter(Event.JOB_RETRYING, task_snap, snap))
        return effects

    def _prune(self, now: float) -> None:
        """Forget finished jobs older than the retention time, or beyond the count cap."""
        finished, horizon = self._finished, now - (self._retention or 0.0)
        while finished and (finished[0][0] < horizon or len(finished) > _MAX_HISTORY):
            _, job_id = finished.popleft()
            job = self._jobs.pop(job_id, None)
            if job is not None and self._done_once.get(job.task_id) == job_id:
                del self._done_once[job.task_id]

    # ------------------------------------------------------------------ the scheduler thread

    def _run(self) -> None:
        """Sleep until the earliest due time, fire everything due, repeat (no polling)."""
        heap = self._heap
        while True:
            effects: list[Effect] = []
            with self._lock:
                if self._stopped:
                    return
                now = time.monotonic()
                if not heap:
                    self._wakeup.wait()
                    continue
                if heap[0][0] > now:
                    # Capped: a due time years away (a huge delay, interval, timeout or backoff) would
                    # overflow the lock's timeout and kill this thread; waking early just loops.
                    self._wakeup.wait(min(heap[0][0] - now, _MAX_WAIT))
                    continue
                while heap and heap[0][0] <= now:
                    due, _, kind, key, gen = heapq.heappop(heap)
                    if kind == _TIMEOUT:
                        job = self._jobs.get(key)
                        if job is not None and not job.status.is_final:
                            job.stop_event.set("timeout")
                        continue
                    task = self._tasks.get(key)
                    if task is None or task.gen != gen or task.paused:
                        continue  # stale entry: the task was removed, paused or rescheduled
                    if kind == _RETRY and task.next_due == due:
                        task.next_due = None
                    effects += self._fire(task, now, kind, due=due)
            try:
                self._run_effects(effects)
            except Exception:
                self._log.exception("quiv_nb: scheduler side effect failed")


def _noop_effect() -> None:
    return None
