"""quiv_nb: a Jupyter-native background task scheduler with live progress.

Importing this package is cheap, display-free and has no side effects: IPython, ipywidgets and
tqdm load only when the notebook parts (`bar`, `dashboard`, `get_scheduler`, the magics) are first
used. Inside a kernel process the kernel package's hooks are installed explicitly, by
`get_scheduler()`, `%load_ext quiv_nb`, and the first `Quiv()` or `bar()` (`hooks.install_host`).
"""

from __future__ import annotations

from typing import Any

from .config import QuivConfig
from .errors import (
    ConfigurationError,
    DependentTasksError,
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    MapError,
    QuivError,
    SchedulerStoppedError,
    TaskNotFoundError,
    TaskRunningError,
)
from .models import Event, Job, JobStatus, Stats, Task, TaskStatus
from .scheduler import Quiv

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "DependentTasksError",
    "Event",
    "Job",
    "JobCancelledError",
    "JobFailedError",
    "JobNotFoundError",
    "JobStatus",
    "MapError",
    "Quiv",
    "QuivConfig",
    "QuivError",
    "SchedulerStoppedError",
    "Stats",
    "Task",
    "TaskNotFoundError",
    "TaskRunningError",
    "TaskStatus",
    "bar",
    "dashboard",
    "get_scheduler",
    "load_ipython_extension",
    "unload_ipython_extension",
]


def get_scheduler() -> Quiv:
    """The kernel's one scheduler: created on first use, bound to the running loop, started."""
    from .kernel import get_scheduler as _get  # installs the kernel package's hooks first

    return _get()


def bar(kind: str = "auto", **options: Any) -> Any:
    """A progress renderer to pass as `progress_callback` (widget in a kernel, tqdm elsewhere)."""
    from .render import bar as _bar

    return _bar(kind, **options)


def dashboard(scheduler: Quiv | None = None) -> Any:
    """Display a live table of tasks and jobs with Cancel / Pause / Resume / Run-now buttons."""
    from .render.dashboard import dashboard as _dashboard

    return _dashboard(scheduler if scheduler is not None else get_scheduler())


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext quiv_nb`: register the `%quiv` / `%%quiv` magics."""
    from .magics import load_ipython_extension as _load  # installs the kernel package's hooks

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext quiv_nb`: remove the magics and undo what loading did."""
    from .magics import unload_ipython_extension as _unload
    from .output import uninstall as _uninstall_output

    _unload(ipython)
    _uninstall_output()  # the job-output stream proxies (the next job puts them back)
