"""Registries through which the host application plugs into the core, filled from above.

A leaf: it imports nothing of quiv_nb, so the core (execution.py, dispatch.py, the render pump)
reads these lists and the kernel package fills and runs them without any module importing one above it
(docs/design.md, "Layers"). Every function here is thread-safe for the way it is used: lists are
only appended to (idempotently) and read as tuple snapshots.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, ContextManager

if TYPE_CHECKING:
    import asyncio
    from datetime import datetime

    from .seams import Host

__all__ = [
    "Capabilities",
    "HOST_PACKAGE",
    "before_exit_steps",
    "capabilities",
    "exit_start_steps",
    "host",
    "install_host",
    "register_capability_probe",
    "register_exit_start",
    "register_host",
    "register_view_recorder",
    "register_wait_helper",
    "view_recorder",
    "wait_helper",
    "context_capturers",
    "notify_attachers",
    "register_notify_attacher",
    "loop_resolvers",
    "register_before_exit",
    "register_context_capturer",
    "register_loop_resolver",
]

ContextCapturer = Callable[[], "Callable[[], ContextManager[Any]] | None"]
LoopResolver = Callable[[], "asyncio.AbstractEventLoop | None"]
ExitStep = Callable[[float], Any]
ExitStart = Callable[[str], Any]  # (why the process exits: "kernel restarted", ...)
Poll = Callable[[], Awaitable[None]]  # handle the messages waiting now (on the loop a wait runs)
WaitHelper = Callable[["asyncio.AbstractEventLoop"], ContextManager["Poll | None"]]
NotifyAttacher = Callable[[Any, str, "datetime"], Any]  # (scheduler, task id, since) on the adding thread
ViewRecorder = Callable[[str, str, str], Any]  # (widget model id, html, text) on the render pump thread

# Called on the thread that adds a task; each returns a context-manager factory to wrap that
# task's job bodies, or None. the kernel package registers one that sends a job's output to the cell
# that added its task.
_context_capturers: list[ContextCapturer] = []
# Extra ways to find a main loop at dispatch time (the kernel package registers the kernel's loop).
_loop_resolvers: list[LoopResolver] = []
# Run once by the kernel package at kernel exit (see `register_before_exit`).
_before_exit: list[ExitStep] = []
# Run once by the kernel package at kernel exit, first (see `register_exit_start`).
_exit_start: list[ExitStart] = []
# Wraps a blocking wait that runs the main loop re-entrantly (see `register_wait_helper`).
_wait_helper: list[WaitHelper] = []
# Called by `Quiv.add_task(..., notify=True)` on the adding thread (see `register_notify_attacher`).
_notify_attachers: list[NotifyAttacher] = []
# Keeps what a displayed widget model should read once this process is gone (see `register_view_recorder`).
_view_recorder: list[ViewRecorder] = []
# The application render draws in (`seams.Host`; the kernel package registers itself, see `register_host`).
_host: list[Host] = []

# The package that plugs a Jupyter kernel into these registries, found by name (like a plugin's
# entry point): `install_host` imports it only inside a kernel process, so neither the core nor
# render imports it, and nothing is registered until something asks.
HOST_PACKAGE = "quiv_nb.kernel"


def install_host() -> None:
    """Inside a kernel process, install the kernel package's hooks (once); elsewhere do nothing.

    Called by `Quiv()`, `quiv_nb.bar()` and the dashboard/notify widgets on the calling thread, so
    a plain `Quiv()` in a notebook routes output to its cells like the kernel's own scheduler.
    "A kernel process" is one that imported ipykernel; outside one nothing is imported or
    registered. Returns None; what the install raises propagates.
    """
    if not _host and "ipykernel" in sys.modules:
        importlib.import_module(HOST_PACKAGE).install()


def register_host(host: Host) -> None:
    """Set the application render draws in (the last one set wins). Any thread; returns None."""
    _host[:] = [host]


def host() -> Host | None:
    """The registered `seams.Host` after `install_host()`, or None outside a kernel (any thread)."""
    if not _host:
        install_host()
    return _host[0] if _host else None


@dataclass(frozen=True)
class Capabilities:
    """What the host can do, as detected once by the kernel package (the defaults: no kernel at all).

    `widgets`: the ipywidgets generation importable here (7 or 8), or None. `subshells`: the kernel
    can handle a comm message on a subshell while a cell runs (ipykernel >= 7); whether the frontend
    sends it there is not knowable from the kernel, so controls never rely on it to be honest.
    `anywidget`: anywidget is importable (the notify widget needs it). `colab`: running in Google
    Colab, whose output frames need `enable_custom_widget_manager()` for non-core widgets.
    """

    widgets: int | None = None
    subshells: bool = False
    anywidget: bool = False
    colab: bool = False


_NO_HOST = Capabilities()
# Returns the host's capabilities (the kernel package registers one that detects them once).
_capability_probe: list[Callable[[], Capabilities]] = []


def register_context_capturer(capturer: ContextCapturer) -> None:
    """Add a job-context capturer (idempotent). Any thread; returns None."""
    if capturer not in _context_capturers:
        _context_capturers.append(capturer)


def context_capturers() -> tuple[ContextCapturer, ...]:
    """The registered capturers, in registration order (a snapshot)."""
    return tuple(_context_capturers)


def register_loop_resolver(resolver: LoopResolver) -> None:
    """Add a fallback that names a main loop when no caller has revealed one (idempotent)."""
    if resolver not in _loop_resolvers:
        _loop_resolvers.append(resolver)


def loop_resolvers() -> tuple[LoopResolver, ...]:
    """The registered loop resolvers, in registration order (a snapshot)."""
    return tuple(_loop_resolvers)


def register_before_exit(step: ExitStep) -> None:
    """Add a quiesce step for kernel exit (idempotent). Any thread; returns None.

    The kernel package calls `step(timeout)` once, on the main thread at interpreter exit, after the
    kernel's scheduler has shut down and before ipykernel stops its IOPub thread and closes its
    sockets. A step must make its threads stop sending on the kernel's channels (widget comm
    messages, display updates, stream writes) and return once they have, within `timeout`
    seconds; what it raises is logged and the next step still runs.
    """
    if step not in _before_exit:
        _before_exit.append(step)


def register_exit_start(step: ExitStart) -> None:
    """Add a step run first at kernel exit (idempotent). Any thread; returns None.

    The kernel package calls `step(reason)` once, on the main thread at interpreter exit, before
    the kernel's scheduler shuts down; `reason` says why ("kernel restarted", "kernel shut down").
    A step only records (e.g. marks running bars interrupted and asks the render pump to draw);
    it must not send or block. What it raises is logged.
    """
    if step not in _exit_start:
        _exit_start.append(step)


def exit_start_steps() -> tuple[ExitStart, ...]:
    """The registered exit-start steps, in registration order (a snapshot)."""
    return tuple(_exit_start)


def before_exit_steps() -> tuple[ExitStep, ...]:
    """The registered exit steps, in registration order (a snapshot)."""
    return tuple(_before_exit)


def register_wait_helper(helper: WaitHelper) -> None:
    """Set the context a blocking wait on the loop's own thread runs in (the last one set wins).

    `blocking.block_on` enters `helper(loop)` around its re-entrant run of `loop`; the context
    yields None, or an async `poll()` the wait awaits every few tens of milliseconds. The kernel
    package sets one that lets widget (comm) messages in during the wait, so a dashboard click
    acts while `%quiv wait` blocks.
    """
    _wait_helper[:] = [helper]


def wait_helper() -> WaitHelper | None:
    """The registered wait helper, or None (outside a kernel)."""
    return _wait_helper[0] if _wait_helper else None


def register_view_recorder(recorder: ViewRecorder) -> None:
    """Set what records a displayed widget's afterlife (the last one set wins). Any thread; returns None.

    A widget bar calls `recorder(model_id, html, text)` on the render pump thread when it is first
    drawn, when a run starts and when a run ends: the static rendering its displayed model should
    show if the process ended now. Must be quick and must not raise. The kernel package sets one
    that writes to the kernel scheduler's store (`store.views`).
    """
    _view_recorder[:] = [recorder]


def view_recorder() -> ViewRecorder | None:
    """The registered view recorder, or None (outside a kernel, or before `install_host`)."""
    return _view_recorder[0] if _view_recorder else None


def register_notify_attacher(attacher: NotifyAttacher) -> None:
    """Add what announces a `notify=True` task's job ends (idempotent). Any thread; returns None.

    `Quiv.add_task` calls `attacher(scheduler, task_id, since)` on the thread that added the task
    (a notebook cell's, for a cell that calls `add_task` or `%quiv run/add --notify`), after the
    task is registered and the scheduler lock released; `since` is a UTC-aware time taken before
    the task was added, so a job that ended in between is still announced. The kernel package
    registers one that shows the notify widget in that cell. What it raises is logged, not raised
    from `add_task`: the task is added either way.
    """
    if attacher not in _notify_attachers:
        _notify_attachers.append(attacher)


def notify_attachers() -> tuple[NotifyAttacher, ...]:
    """The registered notify attachers, in registration order (a snapshot)."""
    return tuple(_notify_attachers)


def register_capability_probe(probe: Callable[[], Capabilities]) -> None:
    """Set what answers `capabilities()` (the last one set wins). Any thread; returns None.

    The kernel package sets one that detects the widget generation, comm subshells, anywidget and
    Colab once and then returns the same answer; render code reads capabilities only through here.
    """
    _capability_probe[:] = [probe]


def capabilities() -> Capabilities:
    """The host's capabilities: the registered probe's answer (after `install_host()`), or "no kernel" defaults.

    Any thread; never raises but what the install raises.
    """
    if not _capability_probe:
        install_host()
    return _capability_probe[0]() if _capability_probe else _NO_HOST
