"""Job output to the cell that added its task: one sender per cell, ipykernel 6.17+ and 7.x alike.

`capture_cell_parent` runs on the thread adding a task (a `hooks` job-context capturer) and
returns the context that sends that task's job output under the adding cell's parent header:
a `CellStream` for one-off jobs, an `OutputArea` for recurring tasks (docs/design.md, "Output path").
"""

from __future__ import annotations

import logging
from typing import Any, Callable, ContextManager

from ..execution import adding_recurring_task
from ..output import current_route, on_joined_threads, route_current_job, route_of
from ..render.cell_stream import CellStream
from ..render.output_area import OutputArea
from .capabilities import clear_output_takes_hooks
from .shell import ipython

__all__ = ["capture_cell_parent", "follow_job_output"]

_log = logging.getLogger("quiv_nb")


class _CellSink:
    """Sends iopub messages under one cell's parent header (the `CellSink` of an `OutputArea`).

    Works the same on ipykernel 6.17+ and 7.x (before 6.25 a job's `clear_output` is routed by
    `_route_clear_output`): `kernel.get_parent("shell")` (>= 6.0) is the request being executed, and
    `session.send` to `kernel.iopub_socket` hands the message to the IOPub thread, which is safe from
    any thread. ipykernel's own per-thread routing is not used: on 6.x a thread's output follows the
    cell that created the thread (wrong for pooled threads), and `set_thread_parent` exists only
    from 7.0.
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


class _DisplayToCell:
    """On one thread: its `display()` calls go to `area`.

    The display hook is ipykernel's `ZMQDisplayPublisher.register_hook` (thread-local, present in
    6.29 and 7.x; ipywidgets' `Output` widget uses the same): a hook that returns None has taken
    the message, so it is sent by the area (from the pump thread) with the cell's parent header.
    """

    __slots__ = ("_area", "_publisher")

    def __init__(self, area: _CellRoute, publisher: Any) -> None:
        self._area = area
        self._publisher = publisher

    def __enter__(self) -> None:
        self._publisher.register_hook(self._area.display_message)

    def __exit__(self, *exc: object) -> None:
        try:
            self._publisher.unregister_hook(self._area.display_message)
        except Exception:  # registered on another thread (the body moved): nothing left to undo here
            _log.debug("quiv_nb: display hook already gone", exc_info=True)


class _RouteToCell:
    """Around one job body: its output goes to `area`, and its `display()` calls too (on the job's
    thread and on threads that join its output, such as a map's helpers)."""

    __slots__ = ("_area", "_display", "_publisher")

    def __init__(self, area: _CellRoute, publisher: Any) -> None:
        self._area = area
        self._publisher = publisher
        self._display: _DisplayToCell | None = None

    def __enter__(self) -> None:
        route_current_job(self._area)
        if self._publisher is not None:
            self._display = _DisplayToCell(self._area, self._publisher)
            self._display.__enter__()
            on_joined_threads(lambda: _DisplayToCell(self._area, self._publisher))

    def __exit__(self, *exc: object) -> None:
        if self._display is not None:
            self._display.__exit__()


def capture_cell_parent() -> Callable[[], ContextManager[Any]] | None:
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
    elif not clear_output_takes_hooks():
        _route_clear_output(publisher)
    sink = _CellSink(kernel, parent, getattr(publisher, "topic", None) or b"display_data")
    area = OutputArea(sink) if adding_recurring_task() else CellStream(sink)
    return lambda: _RouteToCell(area, publisher)


def _route_clear_output(publisher: Any) -> None:
    """ipykernel < 6.25: offer a job's `clear_output` to its route, as newer kernels' hooks do (idempotent).

    Replaces the publisher instance's `clear_output` once (kernel thread, inside a cell): on a job's
    thread with a cell route the message goes to that route; anywhere else the original runs.
    """
    original = publisher.clear_output
    if getattr(original, "_quiv_routed", False):
        return

    def clear_output(wait: bool = False) -> None:
        route = current_route()
        if not isinstance(route, (OutputArea, CellStream)):
            original(wait)
            return
        route.display_message(publisher.session.msg("clear_output", {"wait": bool(wait)}))

    clear_output._quiv_routed = True  # type: ignore[attr-defined]
    publisher.clear_output = clear_output


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
