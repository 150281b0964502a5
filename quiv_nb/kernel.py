"""The only module that touches ipykernel internals.

It binds the kernel's one scheduler to the kernel's event loop, sends each job's output to the
cell that added its task, and shuts the scheduler down when the kernel exits. Every
version-dependent branch is here and names the version it is for.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
from typing import Any, Callable, ContextManager

from .dispatch import in_worker, register_loop_resolver
from .execution import adding_recurring_task, register_context_capturer
from .output import current_route, route_current_job, route_of
from .render.cell_stream import CellStream
from .render.output_area import OutputArea
from .scheduler import Quiv

__all__ = [
    "get_scheduler",
    "reset_scheduler",
    "use_executor",
    "ipython",
    "in_kernel",
    "kernel_loop",
    "cell_id",
    "cell_source",
    "request_id",
    "follow_job_output",
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


def _request() -> dict[str, Any]:
    """The execute request the kernel is running now ({} outside one)."""
    shell = ipython()
    return (shell.get_parent() if hasattr(shell, "get_parent") else None) or {}


def cell_id() -> str | None:
    """The notebook cell id of the running request (JupyterLab >= 3 and Notebook 7 send it as
    `cellId` in the execute request's metadata), or None."""
    return _request().get("metadata", {}).get("cellId") or None


def cell_source() -> str:
    """The code of the running request as the frontend sent it ("" outside one)."""
    return _request().get("content", {}).get("code") or ""


def request_id() -> str | None:
    """The msg_id of the running execute request (one per cell run), or None."""
    return _request().get("header", {}).get("msg_id") or None


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
        if _scheduler is not None and not _scheduler._stopped:
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
    return scheduler if scheduler is not None and not scheduler._stopped else None


def _shutdown_at_exit() -> None:
    try:
        reset_scheduler(SHUTDOWN_TIMEOUT)
    except Exception:  # at exit there is nobody left to tell but the log
        _log.exception("quiv_nb: shutdown at kernel exit failed")


# ---------------------------------------------------------------------- output routing


class _CellSink:
    """Sends iopub messages under one cell's parent header (the `CellSink` of an `OutputArea`).

    Works the same on ipykernel 6.29+ and 7.x: `kernel.get_parent("shell")` (>= 6.0) is the
    request being executed, and `session.send` to `kernel.iopub_socket` hands the message to the
    IOPub thread, which is safe from any thread. ipykernel's own per-thread routing is not used:
    on 6.x a thread's output follows the cell that created the thread (wrong for pooled threads),
    and `set_thread_parent` exists only from 7.0.
    """

    def __init__(self, kernel: Any, parent: dict[str, Any], topic: bytes) -> None:
        self._session = kernel.session
        self._socket = kernel.iopub_socket
        self._parent = parent
        self._topic = topic

    @property
    def parent(self) -> dict[str, Any]:
        return self._parent

    def reparent(self, parent: dict[str, Any]) -> None:
        self._parent = parent  # one reference swap: a send on another thread uses the old or the new

    def send(self, msg_type: str, content: dict[str, Any]) -> None:
        self._session.send(self._socket, msg_type, content, parent=self._parent, ident=self._topic)

    def forward(self, msg: dict[str, Any]) -> None:
        msg["parent_header"] = dict(self._parent.get("header", self._parent))
        self._session.send(self._socket, msg, ident=self._topic)


_CellRoute = OutputArea | CellStream  # a recurring task's area, or a one-off job's stream


class _RouteToCell:
    """Around one job body: its output goes to `area`, and its `display()` calls too.

    The display hook is ipykernel's `ZMQDisplayPublisher.register_hook` (thread-local, present in
    6.29 and 7.x; ipywidgets' `Output` widget uses the same): a hook that returns None has taken
    the message, so it is sent by the area (from the pump thread) with the cell's parent header.
    """

    __slots__ = ("_area", "_publisher")

    def __init__(self, area: _CellRoute, publisher: Any) -> None:
        self._area = area
        self._publisher = publisher

    def __enter__(self) -> None:
        route_current_job(self._area)
        if self._publisher is not None:
            self._publisher.register_hook(self._area.display_message)

    def __exit__(self, *exc: object) -> None:
        if self._publisher is not None:
            try:
                self._publisher.unregister_hook(self._area.display_message)
            except Exception:  # registered on another thread (the body moved): nothing left to undo here
                _log.debug("quiv_nb: display hook already gone", exc_info=True)


def _capture_cell_parent() -> Callable[[], ContextManager[Any]] | None:
    """On the thread adding a task: the route to the cell it runs in, for the task's jobs.

    A one-off task's jobs stream their lines into the cell (`CellStream`: it reads like a cell that
    printed); a recurring task gets one area showing its latest run (`OutputArea`: the cell does not
    grow run after run). A task added by a running job goes to that job's cell. Returns None outside
    a kernel or when no cell is running (the jobs' output then goes to the real streams, line-whole).
    """
    shell = ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return None
    inherited = current_route()
    if isinstance(inherited, (OutputArea, CellStream)) and isinstance(inherited.sink, _CellSink):
        parent = inherited.sink.parent
    else:
        parent = kernel.get_parent("shell")
    if not parent or not parent.get("header"):
        return None
    publisher = getattr(shell, "display_pub", None)
    if not hasattr(publisher, "register_hook"):
        publisher = None
    sink = _CellSink(kernel, parent, getattr(publisher, "topic", None) or b"display_data")
    area = OutputArea(sink) if adding_recurring_task() else CellStream(sink)
    return lambda: _RouteToCell(area, publisher)


def follow_job_output(job_id: str) -> bool:
    """Send a running job's further output to the cell running now (a re-attached `%quiv run`).

    On the kernel thread, inside a cell. Returns False when the job has no cell route (it ended
    long ago, or it runs outside a kernel); raises nothing.
    """
    route = route_of(job_id)
    parent = getattr(getattr(ipython(), "kernel", None), "get_parent", lambda *_: None)("shell")
    if not isinstance(route, (OutputArea, CellStream)) or not isinstance(route.sink, _CellSink) or not parent:
        return False
    route.reparent(parent)
    return True


def _kernel_loop_resolver() -> asyncio.AbstractEventLoop | None:
    return kernel_loop()


register_context_capturer(_capture_cell_parent)
register_loop_resolver(_kernel_loop_resolver)
