"""The exception hierarchy: one root, so callers can catch everything quiv_nb raises."""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "DependentTasksError",
    "JobCancelledError",
    "JobFailedError",
    "JobNotFoundError",
    "MapError",
    "QuivError",
    "SchedulerStoppedError",
    "TaskNotFoundError",
    "TaskRunningError",
]


class QuivError(Exception):
    """Root of every error quiv_nb raises on purpose."""


class ConfigurationError(QuivError, ValueError):
    """An argument is invalid; the message names it and says what is allowed."""


class DependentTasksError(ConfigurationError):
    """`remove_task` was refused: other tasks run after this one. `dependents` lists their names.

    A `ConfigurationError` (the fix is an argument: `cascade=True`), so existing handlers catch it.
    """

    def __init__(self, message: str, dependents: list[str]) -> None:
        super().__init__(message)
        self.dependents = list(dependents)


class TaskNotFoundError(QuivError, LookupError):
    """No task has that id (it was never added, or it was removed)."""


class JobNotFoundError(QuivError, LookupError):
    """No job has that id (it never existed, or its history was pruned)."""


class TaskRunningError(QuivError):
    """The task has a job running, and the call would make it overlap itself."""


class SchedulerStoppedError(QuivError, RuntimeError):
    """The scheduler was shut down; create a new one to schedule more work."""


class JobFailedError(QuivError):
    """`x = %quiv wait ...` on a job that raised. The raised class also derives from the job's own
    exception type when it can be found, so `except ValueError:` catches a job's ValueError."""


class JobCancelledError(QuivError):
    """`x = %quiv wait ...` on a job that was cancelled, timed out or skipped: it has no result."""


class MapError(QuivError):
    """Items of a `Quiv.map` job failed. The job ends failed with this message; `results` is the
    list in input order with each failed item's exception in its slot (also the job's `result`),
    and `traceback` is the first failed item's."""

    def __init__(self, message: str, results: list[object], traceback: str | None = None) -> None:
        super().__init__(message)
        self.results = results
        self.traceback = traceback
