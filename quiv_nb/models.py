"""Snapshots handed to users (`Task`, `Job`), their statuses, and lifecycle `Event`s.

Snapshots are frozen: the scheduler keeps its own mutable records and copies them out, so
a user holding a `Job` never sees it change under them and never races the scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: `datetime` is imported on first use by the scheduler (~1 ms)
    from datetime import datetime

__all__ = ["Event", "Job", "JobStatus", "Stats", "Task", "TaskStatus"]


class _StrEnum(str, Enum):
    """A str enum whose `str()` and format are the bare value, so `status == "running"` reads naturally."""

    def __str__(self) -> str:
        return str(self.value)

    __format__ = str.__format__  # type: ignore[assignment]  # the bare value, as str formats it


class TaskStatus(_StrEnum):
    ACTIVE = "active"
    RUNNING = "running"
    PAUSED = "paused"


class JobStatus(_StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    SKIPPED = "skipped"  # a downstream job whose upstream failed, was cancelled or timed out
    INTERRUPTED = "interrupted"  # queued or running when its process died (read back from a store)

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset(
    {JobStatus.COMPLETED, JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.SKIPPED, JobStatus.INTERRUPTED}
)


class Event(_StrEnum):
    """Lifecycle events. Task listeners get `(event, task)`; job listeners get `(event, task, job)`."""

    TASK_ADDED = "task_added"
    TASK_REMOVED = "task_removed"
    TASK_PAUSED = "task_paused"
    TASK_RESUMED = "task_resumed"
    JOB_STARTED = "job_started"
    JOB_COMPLETED = "job_completed"
    JOB_FAILED = "job_failed"
    JOB_CANCELLED = "job_cancelled"
    JOB_RETRYING = "job_retrying"
    JOB_SKIPPED = "job_skipped"


@dataclass(frozen=True)
class Task:
    """A point-in-time view of a registered task."""

    task_id: str
    task_name: str
    status: TaskStatus
    interval: float | None
    run_once: bool
    next_run_at: datetime | None
    delay: float | None = None
    timeout: float | None = None
    max_retries: int = 0
    last_job_id: str | None = None
    # Pipelines and calendar time (filled once the scheduler supports them; empty until then):
    after: tuple[str, ...] = ()  # upstream task names this task runs after
    cron: str | None = None  # cron expression
    at: str | None = None  # daily "HH:MM"
    timezone: str | None = None  # IANA zone name cron/at are read in
    notify: bool = False  # desktop notification when a job ends while the tab is hidden

    @property
    def id(self) -> str:
        """quiv's name for `task_id` (read-only)."""
        return self.task_id


@dataclass(frozen=True)
class Job:
    """A point-in-time view of one run of a task."""

    job_id: str
    task_id: str
    status: JobStatus
    started_at: datetime | None
    ended_at: datetime | None
    duration_seconds: float | None
    result: Any = None
    error_message: str | None = None
    traceback: str | None = None
    task_name: str = ""
    attempt: int = 0
    output: str = ""  # what the job printed or logged (the latest ~1 MiB); see `quiv_nb.joblog`
    # `cancel_job` was called while the job was unfinished. With status "cancelled" the cancel took
    # effect; with "completed"/"failed" the handler could not observe it and ran to its end
    # (see `Quiv.can_cancel`).
    cancel_requested: bool = False
    # A cached step (`add_task(..., cache=True)`) whose result was reused instead of running it;
    # `computed_at` is then when that result was computed (None otherwise).
    cached: bool = False
    computed_at: datetime | None = None

    @property
    def id(self) -> str:
        """quiv's name for `job_id` (read-only)."""
        return self.job_id


@dataclass(slots=True, frozen=True)
class Stats:
    """Cheap health figures from `Quiv.stats()`."""

    is_running: bool
    pool_size: int
    active_jobs: int
    tasks: int
    tasks_by_status: dict[str, int]
    jobs_retained: int
    waiters: int = 0  # pending wait_for_*/await_* calls
