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
from datetime import tzinfo
from typing import Any, Callable

from .config import QuivConfig
from .config import resolve as resolve_config
from .control import TaskControl
from .dispatch import Dispatcher, MainLoop
from .errors import (
    ConfigurationError,
    SchedulerStoppedError,
)
from .eventbus import EventBus, run_effects
from .history import JobHistory
from .hooks import install_host, notify_attachers
from .lifecycle import JobLifecycle
from .locks import YieldingRLock
from .mapfanout import map_fanout
from .mapping import upstream_body
from .parts import SchedulerParts
from .pipeline import Pipeline
from .pool import as_job_executor
from .queries import QueriesMixin
from .records import utcnow
from .runs import RunsMixin
from .seams import JobStore
from .store import open_store, pin_of
from .tasks import TaskSpec, TaskTable, build_task, number
from .timeline import Timeline
from .waiters import Waiters, Waiting

__all__ = ["Quiv"]


class Quiv(QueriesMixin, RunsMixin):
    """A thread-pool scheduler for recurring and one-off jobs with progress reporting.

    Construct it anywhere (no event loop needed); `start()` launches its scheduler thread.
    Progress callbacks and listeners run on the main loop when there is one, else on the worker.
    """

    def __init__(
        self,
        pool_size: int | QuivConfig = 10,
        *,
        main_loop: asyncio.AbstractEventLoop | None = None,
        history_retention_seconds: float = 3600,
        logger: logging.Logger | None = None,
        executor: Any = None,
        timezone: str | tzinfo | None = None,
        config: QuivConfig | None = None,
        store: str | os.PathLike[str] | JobStore | None = None,
    ) -> None:
        """Make a scheduler (any thread; no event loop needed). Raises `ConfigurationError`.

        `config` (a `QuivConfig`, also accepted as the first positional argument) holds
        `pool_size`, `history_retention_seconds` and `timezone` (the zone of `cron=`/`at=` tasks
        that name none); pass them there or as arguments, not both (as in quiv). `store` (a file
        path or a `quiv_nb.store.Store`) keeps job history and cached steps across processes.
        """
        if isinstance(pool_size, QuivConfig):  # quiv's first parameter is its config
            if config is not None:
                raise ConfigurationError("pass one QuivConfig, as the first argument or as config=, not both")
            config, pool_size = pool_size, 10
        settings = resolve_config(config, pool_size, history_retention_seconds, timezone)
        pool_size, retention = settings.pool_size, settings.history_retention_seconds
        self._zone = settings.timezone
        if main_loop is not None and not isinstance(main_loop, asyncio.AbstractEventLoop):
            raise ConfigurationError(f"main_loop must be an asyncio event loop or None, got {type(main_loop).__name__}")
        # Inside a kernel process, a plain `Quiv()` gets the kernel's hooks (output to the adding cell,
        # the kernel's loop, quiescing at exit) like the kernel's own scheduler; elsewhere a no-op.
        install_host()
        self._log = logger or logging.getLogger("quiv_nb")
        self._pool_size = pool_size
        self._executor, self._fanout = map_fanout(as_job_executor(executor, pool_size), pool_size)
        self._store: JobStore = open_store(store, retention or 0.0, self._log)  # last: it opens files
        self._main = MainLoop(main_loop)
        dispatch = Dispatcher(self._main, self._log)

        self._lock = YieldingRLock()
        self._tasks = TaskTable()
        self._history = JobHistory(retention)
        self._timeline = Timeline(self._lock, lambda entry: self._jobs.is_live(entry))
        self._waiters = Waiters()
        self._waiting = Waiting(self._lock, self._waiters, self._history, self._tasks, self._main, self._is_stopped)
        self._bus = EventBus(dispatch)
        self._pipeline = Pipeline()
        parts = SchedulerParts(
            self._lock, self._tasks, self._history, self._timeline, self._waiters, self._bus, self._pipeline
        )
        self._jobs = JobLifecycle(parts, self._executor, dispatch, self._log, self._is_stopped, store=self._store)
        self._control = TaskControl(parts, self._jobs, self._is_started)
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
            effects = self._jobs.submit_deferred()  # runs and maps asked for before start
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
            queued, stopped = self._jobs.stop_all("shutdown")
            self._timeline.clear()
            thread = self._timeline.thread
        run_effects(stopped)
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
        args: tuple[Any, ...] = (),
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
        fixed_interval: bool = True,
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
        announces each job's end with a desktop notification). `fixed_interval` (as in quiv): True
        keeps an `interval` task on its grid from its first run (missed slots skipped); False runs
        it `interval` seconds after each job ends. `cache=True` (or a version pin like "v2") makes it
        a cached step (with a store; see `quiv_nb.store`). `map=True` (one `after` upstream):
        `func(item, *args, **kwargs)` per item of the upstream's result, as `Quiv.map`; the task's
        result is the list. Raises `ConfigurationError` for bad arguments, an unknown upstream or a
        cycle (nothing is registered then), and `SchedulerStoppedError` after shutdown.
        """
        self._main.note_caller()
        if map is not False:  # the handler becomes a map body over the upstream's result
            func = upstream_body(map, func, args, kwargs, after, self._fanout, self._pool_size, task_name)
            args, kwargs = (), None
        since = utcnow() if notify is True else None  # before adding: a quick first job is announced too
        if not isinstance(replace, bool):
            raise ConfigurationError(f"replace must be True or False, got {replace!r}")
        pin = pin_of(cache)  # ConfigurationError for a bad `cache`
        # `tuple.__new__`: the NamedTuple's own `__new__` is a Python frame, on the per-task path.
        task = build_task(tuple.__new__(TaskSpec, (
            task_name, func, interval, delay, run_once, args, kwargs, progress_callback, timeout, max_retries,
            retry_backoff, notify, after, cron, at, timezone, fixed_interval, self._zone,
        )))  # fmt: skip
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

    def progress_callback(self, task_id: str) -> Callable[..., Any] | None:
        """The task's `progress_callback` (or None, also for an unknown task); any thread, lock-free."""
        return self._tasks.callback(task_id)
