"""What every subcommand works with: the shell, the kernel's scheduler, and name resolution."""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from IPython.core.error import UsageError

from ..errors import QuivError
from ..kernel import get_scheduler
from ..scheduler import Quiv

__all__ = ["LAST_JOB", "Context", "MagicState", "make_bar", "note_waiting", "say"]

LAST_JOB = "_quiv_last_job"


@dataclass
class MagicState:
    """What the magics remember between lines, per shell."""

    # For re-attaching to a job still running when its cell runs again:
    line_runs: dict[tuple[str, str], Any] = field(default_factory=dict)  # (cell key, FUNC) -> JobHandle
    cell_runs: dict[str, tuple[Any, str]] = field(default_factory=dict)  # task name -> (JobHandle, body hash)
    cell_tasks: dict[str, str] = field(default_factory=dict)  # notebook cell id -> task name it added
    # notebook cell id (or body hash) -> the readable name given to its unnamed %%quiv task, kept while
    # the cell is edited so re-running it still replaces what it started
    cell_names: dict[str, str] = field(default_factory=dict)

    def clear(self) -> None:
        self.line_runs.clear()
        self.cell_runs.clear()
        self.cell_tasks.clear()
        self.cell_names.clear()


@dataclass
class Context:
    """Handed to each subcommand; its methods run on the kernel's main thread."""

    shell: Any
    state: MagicState

    @property
    def user_ns(self) -> dict[str, Any]:
        return self.shell.user_ns

    @property
    def last_job(self) -> str | None:
        """The job of the latest `%quiv run` (what a bare `%quiv wait` waits for)."""
        value = self.user_ns.get(LAST_JOB)
        return str(value) if isinstance(value, str) and value else None

    @last_job.setter
    def last_job(self, job_id: str) -> None:
        # Kept in the namespace under IPython's underscore convention (like `_`), as it always was:
        # notebooks and scripts read `_quiv_last_job`.
        self.user_ns[LAST_JOB] = job_id

    @property
    def scheduler(self) -> Quiv:
        return get_scheduler()

    def job_of(self, target: str) -> str | None:
        """`target` if it is a job id, else the newest job (running or finished) of the task named
        `target`, else the job whose id a notebook variable called `target` holds (`jid`)."""
        scheduler = self.scheduler
        jobs = [j for j in scheduler.get_all_jobs() if j.task_name == target]
        if jobs:
            return jobs[-1].job_id
        for candidate in (target, self._variable(target)):
            if candidate is None:
                continue
            try:
                return scheduler.get_job(candidate).job_id
            except QuivError:
                pass
        return self._job_by_prefix(target)

    def _job_by_prefix(self, prefix: str) -> str | None:
        """The one job whose id starts with `prefix` (at least 6 characters, as the messages show 8), or None.

        Raises `UsageError` when several jobs share the prefix, naming them.
        """
        if len(prefix) < SHORT_ID_MIN or not all(c in "0123456789abcdef-" for c in prefix.lower()):
            return None
        found = [j.job_id for j in self.scheduler.get_all_jobs() if j.job_id.startswith(prefix.lower())]
        if len(found) > 1:
            raise UsageError(f"job id prefix {prefix!r} is ambiguous: {', '.join(found)}")
        return found[0] if found else None

    def _variable(self, name: str) -> str | None:
        """The string a notebook variable `name` holds (e.g. a job handle), or None."""
        value = self.shell.user_ns.get(name) if self.shell is not None and name.isidentifier() else None
        return str(value) if isinstance(value, str) else None

    def task_id(self, name: str) -> str:
        """The id of the (newest) task called `name` (or with that id); `UsageError` listing the names otherwise."""
        tasks = self.scheduler.get_all_tasks(include_run_once=True)
        matches = [t.task_id for t in tasks if t.task_name == name or t.task_id == name]
        if not matches:
            names = ", ".join(sorted({t.task_name for t in tasks})) or "none"
            raise UsageError(f"no task or job named {name!r} (tasks: {names})")
        return matches[-1]

    @staticmethod
    def api_kwargs(method: Callable[..., Any], **wanted: Any) -> dict[str, Any]:
        """The keyword arguments for `method` (a scheduler method) that were given (not None/False/[]).

        A flag whose keyword this scheduler does not take (yet) is a `UsageError` naming the
        flag, not a TypeError from inside.
        """
        given = {k: v for k, v in wanted.items() if v is not None and v is not False and v != []}
        params = inspect.signature(method).parameters
        missing = [k for k in given if k not in params]
        if missing:
            flags = ", ".join("--" + ("tz" if k == "timezone" else k) for k in missing)
            raise UsageError(f"{flags}: this version of quiv_nb's scheduler does not support it")
        return given


SHORT_ID_MIN = 6  # shortest job-id prefix `%quiv cancel/wait/log` accept


def short_id(job_id: str) -> str:
    """The 8-character prefix messages show; any unique prefix of 6+ characters names the job."""
    return str(job_id)[:8]


def make_bar(kind: str, name: str) -> Any:
    """The bar a magic shows in its cell, labelled with the task's name (None for `--bar none`)."""
    if kind == "none":
        return None
    from ..render import bar

    return bar(kind, desc=name)


def note_waiting(bar: Any, scheduler: Any, task_id: str) -> None:
    """Tell a task's bar what its first run waits for: "waiting for extract", "next run 09:00" (kernel thread)."""
    if bar is None or not hasattr(bar, "note_waiting"):
        return
    task = scheduler.get_task(task_id)
    if task.after:
        bar.note_waiting(f"waiting for {', '.join(task.after)}")
    elif task.next_run_at is not None and not task.run_once:
        when = task.next_run_at.astimezone()
        today = datetime.now(when.tzinfo).date() == when.date()
        bar.note_waiting(f"next run {when:%H:%M}" if today else f"next run {when:%a %d %b %H:%M}")


def say(text: str) -> None:
    """Print one line of the magic's own, in one write and flushed.

    `print` writes the text and the newline separately, and a job printing into the same cell
    from a worker could slip between them, gluing its output onto our line. Callers say what
    they are about to start *before* starting it, so a job cannot be mid-line either.
    """
    sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()
