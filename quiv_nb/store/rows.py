"""A job record as a `jobs` row, and a row back as a `Job` snapshot (pure; any thread)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..models import Job, JobStatus

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from ..records import JobRecord
    from .procs import Process

__all__ = ["COLUMNS", "OUTPUT_TAIL", "job_of", "rows_of"]

OUTPUT_TAIL = 16_384  # characters of a job's output kept on disk: its end, where the answer usually is

COLUMNS = (
    "job_id", "task_id", "task_name", "status", "created", "started_at", "ended_at", "duration", "error",
    "traceback", "output", "attempt", "cache_key", "cached", "computed_at", "host", "pid", "pstart",
)  # fmt: skip


_VALUES = {status: status.value for status in JobStatus}  # a dict lookup: cheaper than the enum's `.value`


def rows_of(jobs: Iterable[JobRecord], created: dict[str, float], now: float, proc: Process) -> list[tuple[Any, ...]]:
    """Each job's current state as a row in `COLUMNS` order (the writer thread, once per batch).

    The writer's per-job cost: one loop with everything bound to locals, no call per field. A job is
    `created` at its first batch (`now`); a final one is then forgotten from `created`.
    """
    rows: list[tuple[Any, ...]] = []
    append, values, tail, first, forget = rows.append, _VALUES, OUTPUT_TAIL, created.setdefault, created.pop
    host, pid, pstart = proc
    for job in jobs:
        job_id, status, log = job.job_id, job.status, job.log
        started, ended, computed = job.started_at, job.ended_at, job.computed_at
        append((
            job_id, job.task_id, job.task_name, values[status], first(job_id, now),
            started.timestamp() if started is not None else None, ended.timestamp() if ended is not None else None,
            job.duration, job.error_message, job.traceback, log.text()[-tail:] if log is not None and len(log) else "",
            job.attempt, job.cache_key, 1 if job.cached else 0,
            computed.timestamp() if computed is not None else None, host, pid, pstart,
        ))  # fmt: skip
        if ended is not None:  # final (a job gets its end only when it reaches its final status)
            forget(job_id, None)
    return rows


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
