"""Job history: every job from submission until it is pruned after the retention time.

Pruning is driven by the `now` the caller passes (monotonic seconds), so the rule is testable
with made-up times and no threads. Memory stays flat: finished jobs older than the retention
time, or beyond `MAX_JOBS` finished ones, are forgotten.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Callable, Iterator

from .records import JobRecord

if TYPE_CHECKING:
    from .models import Job

__all__ = ["MAX_JOBS", "JobHistory"]

MAX_JOBS = 10_000  # finished jobs kept at most, whatever the retention time (read at each prune)


class JobHistory:
    """Jobs by id plus the order they finished in (scheduler lock held by every caller)."""

    __slots__ = ("_done_once", "_finished", "_jobs", "find", "retention")

    def __init__(self, retention: float) -> None:
        self.retention = retention
        self._jobs: dict[str, JobRecord] = {}
        self._finished: deque[tuple[float, str]] = deque()  # (monotonic end, job id), oldest first
        self._done_once: dict[str, str] = {}  # finished run-once task id -> its last job id
        # `find(job_id)`: the job or None. The dict's own `get`: a C call on the per-job path.
        self.find: Callable[[str], JobRecord | None] = self._jobs.get

    def add(self, job: JobRecord) -> None:
        self._jobs[job.job_id] = job

    def __iter__(self) -> Iterator[JobRecord]:
        return iter(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)

    def unfinished(self) -> list[JobRecord]:
        return [job for job in self._jobs.values() if not job.status.is_final]

    def finished(self, job: JobRecord, now: float) -> None:
        """Record that `job` reached its final status at `now`, then prune."""
        self._finished.append((now, job.job_id))
        self.prune(now)

    def remember_last_run(self, task_id: str, job_id: str) -> None:
        """A run-once task is gone; keep answering `wait_for_task` with its final job while it is kept."""
        self._done_once[task_id] = job_id

    def last_run(self, task_id: str) -> JobRecord | None:
        """The final job of a finished run-once task, while it is in history."""
        job_id = self._done_once.get(task_id)
        return None if job_id is None else self._jobs.get(job_id)

    def latest(self, task_name: str | None, limit: int, now: float) -> list[Job]:
        """Snapshots of the newest `limit` finished jobs (of `task_name`, or all), newest first, after pruning."""
        self.prune(now)
        jobs = [j for j in reversed(self._finished_records()) if task_name is None or j.task_name == task_name]
        return [j.snapshot() for j in jobs[:limit]]

    def _finished_records(self) -> list[JobRecord]:
        """Finished jobs still kept, in the order they finished."""
        return [job for _, job_id in self._finished if (job := self._jobs.get(job_id)) is not None]

    def prune(self, now: float) -> None:
        """Forget finished jobs that ended before `now - retention`, or beyond the count cap."""
        finished, horizon, cap = self._finished, now - self.retention, MAX_JOBS
        while finished and (finished[0][0] < horizon or len(finished) > cap):
            _, job_id = finished.popleft()
            job = self._jobs.pop(job_id, None)
            if job is not None and self._done_once.get(job.task_id) == job_id:
                del self._done_once[job.task_id]
