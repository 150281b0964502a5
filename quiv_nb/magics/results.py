"""What `x = %quiv wait ...` gives back: the job's result, or the job's failure raised in the cell.

A failed job raises a `JobFailedError` whose class also derives from the job's own exception
type when it can be found again (builtins, an importable module, or the notebook), named like
it, so the cell shows `ValueError: ...` and `except ValueError:` catches it. The traceback shown
is the job's own, with quiv_nb's and the standard library's frames left out. IPython draws it
through `_render_traceback_`, the hook it offers for exceptions that carry a remote traceback.
"""

from __future__ import annotations

import builtins
import os
import re
import sys
import sysconfig
from typing import Any

from ..errors import JobCancelledError, JobFailedError
from ..models import Job, JobStatus
from ..units import format_duration

__all__ = ["describe", "failure_of", "result_of"]

_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")
_QUIV_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_STDLIB_DIRS = tuple({os.path.abspath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")})
_classes: dict[type, type] = {}  # job exception type -> its JobFailedError twin (made once)


def result_of(job: Job, user_ns: dict[str, Any]) -> Any:
    """`job.result` if it completed; else raises (see the module docstring). Any thread."""
    if job.status is JobStatus.COMPLETED:
        return job.result
    raise failure_of(job, user_ns)


def failure_of(job: Job, user_ns: dict[str, Any]) -> Exception:
    """The exception `%quiv wait` raises for a job that ended without completing."""
    if job.status is JobStatus.FAILED:
        message = job.error_message or "failed"
        name, _, text = message.partition(": ")
        found = _find_type(name, job.traceback or "", user_ns) if _EXC_LINE.match(name) else None
        exc = _failed_class(found)(text if found is not None else message)  # unknown type: keep its name
        exc.job = job
        exc.results = job.result  # a failed map's list (None for other jobs)
        return exc
    reason = job.error_message or str(job.status)
    if job.status is JobStatus.SKIPPED:
        what = f"was skipped: {reason}"
    elif reason.startswith(("timed out", "cancelled")):
        what = reason if reason.startswith("timed out") else f"was {reason}"
    else:
        what = f"was cancelled: {reason}"
    exc2 = _OneLine(f"job {job.job_id} of {job.task_name!r} {what}; it has no result")
    exc2.job = job  # type: ignore[attr-defined]
    exc2.results = job.result  # type: ignore[attr-defined]  # a cancelled map's list so far (else None)
    return exc2


def describe(job: Job) -> str:
    """One line saying how a job ended, for the magics' output."""
    took = f" in {format_duration(job.duration_seconds)}" if job.duration_seconds is not None else ""
    text = f"quiv: job {job.job_id} of {job.task_name!r} {job.status}{took}"
    if job.error_message and job.error_message != str(job.status):
        text += f": {job.error_message}"
    return text


class _OneLine(JobCancelledError):
    """Shown as one line: there is no traceback worth reading for a cancel."""

    def _render_traceback_(self) -> list[str]:
        return [f"JobCancelledError: {self}"]


class _Failed(JobFailedError):
    """Base of the twins: draws the job's traceback instead of the waiting cell's."""

    job: Job
    results: Any  # a failed map's list, with each failed item's exception in its slot (else None)

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self._message = message

    def __str__(self) -> str:
        return self._message

    def _render_traceback_(self) -> list[str]:
        job = self.job
        head = f"job {job.job_id} of {job.task_name!r} failed"
        frames = user_frames(job.traceback or "")
        name = type(self).__name__
        last = f"{name}: {self._message}" if self._message else name
        return [f"{head}; its traceback (quiv_nb and standard-library frames left out):", *frames, last]


# The names a cell shows (`ename`) when no more specific type applies.
_Failed.__name__ = _Failed.__qualname__ = "JobFailedError"
_OneLine.__name__ = _OneLine.__qualname__ = "JobCancelledError"


def user_frames(traceback_text: str) -> list[str]:
    """The lines of a formatted traceback minus its exception line and the frames in quiv_nb or the stdlib."""
    lines = traceback_text.rstrip("\n").splitlines()
    # The final exception line(s) are drawn by the caller; cut from the last unindented line.
    last = max((i for i, line in enumerate(lines) if line and not line.startswith(" ")), default=len(lines))
    kept, keep = [], True
    for line in lines[:last]:
        if line.startswith('  File "'):
            path = line[len('  File "') :].split('"', 1)[0]
            keep = not _hidden(path)
        elif not line.startswith("    "):
            keep = True  # "Traceback (most recent call last):", chained-exception text
        if keep:
            kept.append(line)
    return kept


def _hidden(path: str) -> bool:
    path = os.path.abspath(path) if not path.startswith("<") else path
    return path.startswith(_QUIV_DIR + os.sep) or (path.startswith(_STDLIB_DIRS) and "site-packages" not in path)


def _find_type(name: str, traceback_text: str, user_ns: dict[str, Any]) -> type | None:
    """The exception class a job raised, found from its name; None if it cannot be found."""
    lines = traceback_text.rstrip("\n").splitlines()
    match = _EXC_LINE.match(lines[-1]) if lines else None
    dotted = match.group(1) if match and match.group(1).rsplit(".", 1)[-1] == name else name
    candidates: list[Any] = []
    if "." in dotted:
        module = dotted.rpartition(".")[0]
        while module:  # "pkg.mod.Outer.Error": the longest prefix that is a loaded module
            if module in sys.modules:
                obj: Any = sys.modules[module]
                for part in dotted[len(module) + 1 :].split("."):
                    obj = getattr(obj, part, None)
                candidates.append(obj)
                break
            module = module.rpartition(".")[0]
    else:
        candidates += [user_ns.get(dotted), getattr(builtins, dotted, None)]
    for obj in candidates:
        if isinstance(obj, type) and issubclass(obj, Exception):
            return obj
    return None


def _failed_class(cls: type | None) -> type[_Failed]:
    """A `JobFailedError` subclass that is also `cls` and carries its name (made once per `cls`)."""
    if cls is None:
        return _Failed
    twin = _classes.get(cls)
    if twin is None:
        try:
            twin = type(cls.__name__, (_Failed, cls), {"__module__": cls.__module__, "__qualname__": cls.__qualname__})
        except TypeError:  # a base that cannot be combined (layout conflict, final class)
            return _Failed
        _classes[cls] = twin
    return twin
