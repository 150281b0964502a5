"""Waits: the futures behind `wait_for_job`/`wait_for_task`/`await_*`, keyed by job or task id.

`Waiters` is the table (every method runs with the scheduler lock held); `Waiting` is the calling
side: it registers a wait under the lock, blocks or awaits outside it, and forgets a wait that
gave up (timed out, cancelled, interrupted), so repeated short waits keep memory flat.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import TYPE_CHECKING, Any, Callable

from .blocking import block_on
from .errors import JobNotFoundError, SchedulerStoppedError, TaskNotFoundError
from .models import Job

if TYPE_CHECKING:
    from .dispatch import MainLoop
    from .history import JobHistory
    from .tasks import TaskTable

__all__ = ["WaitKey", "Waiter", "Waiters", "Waiting", "done_waiter", "settle"]

Waiter = concurrent.futures.Future  # of a `Job` snapshot
WaitKey = tuple[str, str] | None  # ("job", job id) or ("task", task id); None: never registered


def done_waiter(job: Job) -> Waiter[Job]:
    """A waiter already resolved with `job` (for a job that had finished)."""
    fut: Waiter[Job] = concurrent.futures.Future()
    fut.set_result(job)
    return fut


def settle(fut: Waiter[Job], result: Job | None = None, error: BaseException | None = None) -> None:
    """Resolve a waiter's future unless its waiter gave up: a timed-out `await_job` cancels it."""
    if fut.set_running_or_notify_cancel():  # atomic: no cancel can slip in after this
        if error is None:
            fut.set_result(result)  # type: ignore[arg-type]
        else:
            fut.set_exception(error)


class Waiters:
    """Pending waits on one job (by job id) or on a task's next job (by task id)."""

    __slots__ = ("_jobs", "_tasks")

    def __init__(self) -> None:
        self._jobs: dict[str, list[Waiter[Job]]] = {}
        self._tasks: dict[str, list[Waiter[Job]]] = {}

    def __len__(self) -> int:
        """How many waits are pending."""
        return sum(map(len, self._jobs.values())) + sum(map(len, self._tasks.values()))

    def on_job(self, job_id: str) -> Waiter[Job]:
        fut: Waiter[Job] = concurrent.futures.Future()
        self._jobs.setdefault(job_id, []).append(fut)
        return fut

    def on_task(self, task_id: str) -> Waiter[Job]:
        fut: Waiter[Job] = concurrent.futures.Future()
        self._tasks.setdefault(task_id, []).append(fut)
        return fut

    def take(self, job_id: str, task_id: str) -> tuple[list[Waiter[Job]], list[Waiter[Job]]]:
        """Remove and return the waiters a job's end resolves: (on the job, on its task)."""
        return self._jobs.pop(job_id, []), self._tasks.pop(task_id, [])

    def discard(self, fut: Waiter[Job], kind: str, key: str) -> None:
        """Forget a wait that gave up (timed out, cancelled, interrupted); no-op if already resolved."""
        table = self._jobs if kind == "job" else self._tasks
        waiting = table.get(key)
        if waiting is not None:
            try:
                waiting.remove(fut)
            except ValueError:
                pass
            if not waiting:
                del table[key]
        fut.cancel()

    def has_any(self) -> bool:
        return bool(self._jobs or self._tasks)

    def fail_task(self, task_id: str, error: BaseException) -> None:
        for fut in self._tasks.pop(task_id, ()):
            settle(fut, error=error)

    def fail_all(self, error: Any) -> None:
        """Resolve every pending wait with `error` (a fresh exception per waiter from a factory)."""
        for waiters in (*self._jobs.values(), *self._tasks.values()):
            for fut in waiters:
                settle(fut, error=error())
        self._jobs.clear()
        self._tasks.clear()


class Waiting:
    """The calling side of waits for one scheduler (any thread; takes the scheduler lock briefly)."""

    def __init__(
        self,
        lock: threading.RLock,
        table: Waiters,
        history: JobHistory,
        tasks: TaskTable,
        main: MainLoop,
        stopped: Callable[[], bool],
    ) -> None:
        self._lock = lock
        self._table = table
        self._history = history
        self._tasks = tasks
        self._main = main
        self._stopped = stopped

    def for_job(self, job_id: str) -> tuple[Waiter[Job], WaitKey]:
        """A future for the end of job `job_id`; raises `SchedulerStoppedError`, `JobNotFoundError`."""
        with self._lock:
            if self._stopped():
                raise SchedulerStoppedError("the scheduler was shut down; its jobs can no longer be waited for")
            job = self._history.find(job_id)
            if job is None:
                raise JobNotFoundError(f"no job with id {job_id!r}")
            if job.status.is_final:
                return done_waiter(job.snapshot()), None
            return self._table.on_job(job_id), ("job", job_id)

    def for_task(self, task_id: str) -> tuple[Waiter[Job], WaitKey]:
        """A future for the end of the task's running (or next) job, or of a finished run-once task's last job."""
        with self._lock:
            if self._stopped():
                raise SchedulerStoppedError("this scheduler was shut down; create a new Quiv() to schedule more work")
            if task_id not in self._tasks:
                done = self._history.last_run(task_id)
                if done is None:
                    raise TaskNotFoundError(f"no task with id {task_id!r}")
                return done_waiter(done.snapshot()), None
            return self._table.on_task(task_id), ("task", task_id)

    def block(self, fut: Waiter[Job], key: WaitKey, timeout: float | None) -> Job:
        """Block the calling thread (turning the main loop if it runs here); `TimeoutError` after `timeout`."""
        try:
            return block_on(fut, timeout, self._main.running_here())
        except BaseException:  # timed out or interrupted: forget the waiter, or it stays until the job ends
            self._forget(fut, key)
            raise

    async def wait(self, fut: Waiter[Job], key: WaitKey, timeout: float | None) -> Job:
        """Await on the calling loop; `TimeoutError` after `timeout`."""
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except asyncio.TimeoutError:
            self._forget(fut, key)
            raise TimeoutError(f"still not done after {timeout}s") from None
        except BaseException:  # cancelled
            self._forget(fut, key)
            raise

    def _forget(self, fut: Waiter[Job], key: WaitKey) -> None:
        if key is not None:
            with self._lock:
                self._table.discard(fut, *key)
