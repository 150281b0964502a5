"""The only module that touches ipykernel internals.

It binds the kernel's one scheduler to the kernel's event loop, sends each job's output to the
cell that added its task, and shuts the scheduler down when the kernel exits. Every
version-dependent branch is here and names the version it is for.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import sys
import threading
from typing import Any, Callable, ContextManager, Iterator

from .dispatch import in_worker, register_loop_resolver
from .execution import register_context_capturer
from .scheduler import Quiv

__all__ = [
    "get_scheduler",
    "reset_scheduler",
    "use_executor",
    "ipython",
    "in_kernel",
    "kernel_loop",
    "SHUTDOWN_TIMEOUT",
]

_log = logging.getLogger("quiv_nb")

SHUTDOWN_TIMEOUT = 3.0  # seconds a kernel exit waits for jobs to honour their stop event

_lock = threading.Lock()
_scheduler: Quiv | None = None
_executor: Any = None  # what the next kernel scheduler runs jobs on (None: a local thread pool)
_atexit_registered = False


def ipython() -> Any:
    """The running IPython shell, or None; never imports IPython if nothing else has."""
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    return get_ipython()


def in_kernel() -> bool:
    """True inside a Jupyter kernel (a shell with a kernel attached), where widgets can show."""
    return getattr(ipython(), "kernel", None) is not None


def kernel_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop the kernel runs on.

    ipykernel >= 6 runs tornado on asyncio: `kernel.io_loop.asyncio_loop` is that loop.
    """
    kernel = getattr(ipython(), "kernel", None)
    io_loop = getattr(kernel, "io_loop", None)
    loop = getattr(io_loop, "asyncio_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) and not loop.is_closed() else None


def get_scheduler() -> Quiv:
    """The kernel's one scheduler: created on first use, bound to the kernel loop, started.

    Re-running a cell (or `%load_ext`) returns the same object. Outside a kernel it is a plain
    started `Quiv` (callbacks then run on the worker or on the loop that calls the scheduler).
    """
    global _scheduler, _atexit_registered
    with _lock:
        if _scheduler is not None and not _scheduler.stopped:
            return _scheduler
        loop = None if in_worker() else asyncio._get_running_loop()
        _scheduler = Quiv(main_loop=loop or kernel_loop(), executor=_executor)
        _scheduler.start()
        if not _atexit_registered:
            # Daemon threads never block interpreter exit, so this is what lets jobs that
            # honour their stop event end cleanly when the kernel shuts down or restarts.
            atexit.register(_shutdown_at_exit)
            _atexit_registered = True
        return _scheduler


def reset_scheduler(timeout: float | None = SHUTDOWN_TIMEOUT) -> None:
    """Shut the kernel's scheduler down; the next `get_scheduler()` makes a fresh one."""
    global _scheduler, _executor
    with _lock:
        # The executor goes with its scheduler: shutting down closes what it owns (a cluster).
        scheduler, _scheduler, _executor = _scheduler, None, None
    if scheduler is not None:
        scheduler.shutdown(timeout)


def use_executor(executor: Any) -> Quiv:
    """Replace the kernel's scheduler by one whose jobs run on `executor` (e.g. Dask)."""
    global _executor
    reset_scheduler()
    _executor = executor
    return get_scheduler()


def current_scheduler() -> Quiv | None:
    """The kernel's scheduler if one exists, without creating it."""
    scheduler = _scheduler
    return scheduler if scheduler is not None and not scheduler.stopped else None


def _shutdown_at_exit() -> None:
    try:
        reset_scheduler(SHUTDOWN_TIMEOUT)
    except Exception:  # at exit there is nobody left to tell but the log
        _log.exception("quiv_nb: shutdown at kernel exit failed")


# ---------------------------------------------------------------------- output routing


def _capture_cell_parent() -> Callable[[], ContextManager[Any]] | None:
    """On the thread adding a task: remember the cell it runs in, to send job output there.

    ipykernel >= 7.0: `shell.set_thread_parent(parent)` sets the parent header of stdout,
    stderr, display and the displayhook for the calling thread only (context variables), so
    a worker can write under the adding cell while another cell runs. Older kernels lack it;
    there, output keeps ipykernel's default (the cell running at the time).
    """
    shell = ipython()
    if shell is None or not hasattr(shell, "set_thread_parent") or not hasattr(shell, "get_parent"):
        return None
    parent = shell.get_parent()
    if not parent:
        return None

    @contextlib.contextmanager
    def route_output() -> Iterator[None]:
        tokens = shell.set_thread_parent(parent)
        try:
            yield
        finally:
            try:
                shell.reset_thread_parent(tokens)
            except ValueError:  # tokens from another context (the body switched threads): drop
                pass

    return route_output


def _kernel_loop_resolver() -> asyncio.AbstractEventLoop | None:
    return kernel_loop()


register_context_capturer(_capture_cell_parent)
register_loop_resolver(_kernel_loop_resolver)
