"""What `Quiv` runs outside a schedule: a task run now, a map over items, and cancelling a job.

A mixin of the facade (`scheduler.Quiv`), kept apart so the facade stays one screenful per concern:
each method takes the scheduler lock for one hold and runs what it returns (listeners, submissions'
done-callbacks, stop-event callbacks) after releasing it. The attributes below are set by
`Quiv.__init__`.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from .eventbus import run_effects
from .mapping import MapBody, prepare
from .models import JobStatus
from .store import pin_of
from .tasks import TaskSpec, build_task

if TYPE_CHECKING:
    from .control import TaskControl
    from .dispatch import MainLoop
    from .history import JobHistory
    from .lifecycle import JobLifecycle
    from .mapfanout import Fanout
    from .seams import JobStore
    from .tasks import TaskTable

__all__ = ["RunsMixin"]


class RunsMixin:
    """`run_task_immediately`, `map` and `cancel_job` of one scheduler (calling thread unless said otherwise)."""

    _lock: threading.RLock
    _tasks: TaskTable
    _history: JobHistory
    _main: MainLoop
    _control: TaskControl
    _jobs: JobLifecycle
    _fanout: Fanout
    _store: JobStore
    _pool_size: int
    _started: bool

    def _check_open(self) -> None:
        """Raise `SchedulerStoppedError` after shutdown (the facade's)."""
        raise NotImplementedError  # `Quiv._check_open` overrides it

    def run_task_immediately(self, task_id: str) -> str:
        """Run a task now, outside its schedule (also when paused); return the job's id.

        With every worker busy the run is queued: its job stays "scheduled" until a worker takes
        it; before `start()` it is queued the same way and submitted by `start()` (as quiv does).
        If the task already has a job queued that way, that job is the run asked for and its id is
        returned (a task never has two jobs at once). Raises `TaskRunningError` if a job of the
        task is already running (as quiv does: a task never overlaps itself), `TaskNotFoundError`
        and `SchedulerStoppedError`.
        """
        self._main.note_caller()
        with self._lock:
            self._check_open()
            job_id, effects = self._control.run_now(self._tasks.get(task_id), time.monotonic())
        run_effects(effects)
        return job_id

    def map(
        self,
        func: Callable[..., Any],
        *iterables: Any,
        name: str | None = None,
        max_workers: int | None = None,
        fail_fast: bool = False,
        progress_callback: Callable[..., Any] | None = None,
        timeout: float | None = None,
        cache: bool | str = False,
    ) -> str:
        """Start one job that calls `func` on each item, like `map(func, *iterables)`; return its id.

        See `quiv_nb.mapping` and the README's "Map": the result is the list in input order; `cache=`
        as for `add_task` (keyed by the item function and items). Before
        `start()` the job is queued ("scheduled") and runs at `start()`, as `run_task_immediately`'s
        runs do. Raises `ConfigurationError` for bad arguments and `SchedulerStoppedError` after shutdown.
        """
        self._main.note_caller()
        spec, items, name = prepare(func, iterables, max_workers, fail_fast, self._pool_size, name)
        body = MapBody(spec, items, self._fanout)
        task = build_task(TaskSpec(name, body, run_once=True, progress_callback=progress_callback, timeout=timeout))
        if cache is not False:  # checked (ConfigurationError) and hashed on the calling thread: not under the lock
            task.cache_base = self._store.cache_base(task, pin_of(cache))
        with self._lock:  # one hold: the job exists (submitted, or queued for start) when the lock is released
            self._check_open()
            now = time.monotonic()
            effects = self._control.add(task, now, replace=False)  # started: its one run is submitted now
            if not self._started:
                effects += self._jobs.start_job(task, now, 0, {}, defer=True)
            job_id = task.last_job_id
        run_effects(effects)
        assert job_id is not None
        return job_id

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
            stopped = job.stop_event.set_later("cancel")  # set now; its callbacks run after the lock
            queued = job.future if job.status is JobStatus.SCHEDULED else None
        stopped()
        if queued is not None:
            queued.cancel()  # still queued: it will never start (its done-callback finalizes it)
        return True
