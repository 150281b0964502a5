"""A job record as a `jobs` row, and a row back as a `Job` snapshot (pure; any thread)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..models import Job, JobStatus

if TYPE_CHECKING:
    from datetime import datetime

    from ..records import JobRecord
    from .procs import Process

__all__ = ["COLUMNS", "OUTPUT_TAIL", "job_of", "row_of"]

OUTPUT_TAIL = 16_384  # characters of a job's output kept on disk: its end, where the answer usually is

COLUMNS = (
    "job_id", "task_id", "task_name", "status", "created", "started_at", "ended_at", "duration", "error",
    "traceback", "output", "attempt", "cache_key", "cached", "computed_at", "host", "pid", "pstart",
)  # fmt: skip


def _ts(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


def row_of(job: JobRecord, created: float, proc: Process) -> tuple[Any, ...]:
    """`job`'s current state as a row in `COLUMNS` order (the writer thread reads the record once)."""
    log = job.log
    output = log.text()[-OUTPUT_TAIL:] if log is not None and len(log) else ""
    return (
        job.job_id, job.task_id, job.task_name, job.status.value, created, _ts(job.started_at),
        _ts(job.ended_at), job.duration, job.error_message, job.traceback, output, job.attempt,
        job.cache_key, int(job.cached), _ts(job.computed_at), *proc,
    )  # fmt: skip


def _dt(ts: float | None) -> datetime | None:
    if ts is None:
        return None
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, timezone.utc)


def job_of(row: tuple[Any, ...]) -> Job:
    """A `Job` snapshot from a row in `COLUMNS` order (its result is not kept: None)."""
    (job_id, task_id, task_name, status, _created, started, ended, duration, error, tb, output, attempt,
     _key, cached, computed, *_proc) = row  # fmt: skip
    return Job(
        job_id=job_id, task_id=task_id, status=JobStatus(status), started_at=_dt(started), ended_at=_dt(ended),
        duration_seconds=duration, error_message=error, traceback=tb, task_name=task_name, attempt=attempt,
        output=output, cached=bool(cached), computed_at=_dt(computed),
    )  # fmt: skip
