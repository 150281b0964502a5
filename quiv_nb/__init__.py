"""quiv_nb: a Jupyter-native background task scheduler with live progress.

Importing this package is cheap and display-free: IPython, ipywidgets and tqdm load only when
the notebook parts (`bar`, `dashboard`, `get_scheduler`, the magics) are first used.
"""

from __future__ import annotations

import sys as _sys
from typing import Any

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

if "ipykernel" in _sys.modules:
    # Inside a kernel: the kernel package fills the core's hooks (output to the adding cell, the kernel's
    # loop) and quiesces at exit, so a plain `Quiv()` in a notebook behaves like the kernel's own.
    from . import kernel  # noqa: F401

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
    from .kernel import get_scheduler as _get

    return _get()


def bar(kind: str = "auto", **options: Any) -> Any:
    """A progress renderer to pass as `progress_callback` (widget in a kernel, tqdm elsewhere)."""
    from .render import bar as _bar

    return _bar(kind, **options)


def dashboard(scheduler: Quiv | None = None) -> Any:
    """Display a live table of tasks and jobs with Cancel / Pause / Resume / Run-now buttons."""
    from .render.dashboard import dashboard as _dashboard

    return _dashboard(scheduler)


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext quiv_nb`: register the `%quiv` / `%%quiv` magics."""
    from .magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext quiv_nb`: remove the magics and undo what loading did."""
    from .magics import unload_ipython_extension as _unload
    from .output import uninstall as _uninstall_output

    _unload(ipython)
    _uninstall_output()  # the job-output stream proxies (the next job puts them back)
