"""Waiters: the futures behind `wait_for_job`/`wait_for_task`/`await_*`, keyed by job or task id.

Every method runs with the scheduler lock held, except `settle`, which only touches one future.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

from .models import Job

__all__ = ["WaitKey", "Waiter", "Waiters", "done_waiter", "settle"]

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

    def take(self, job_id: str, task_id: str) -> tuple[list[Waiter[Job]], ...]:
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
