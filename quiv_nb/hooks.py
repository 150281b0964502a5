"""Registries through which the host application plugs into the core, filled from above.

A leaf: it imports nothing of quiv_nb, so the core (execution.py, dispatch.py, the render pump)
reads these lists and kernel.py fills and runs them without any module importing one above it
(docs/design.md, "Layers"). Every function here is thread-safe for the way it is used: lists are
only appended to (idempotently) and read as tuple snapshots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ContextManager

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "before_exit_steps",
    "context_capturers",
    "loop_resolvers",
    "register_before_exit",
    "register_context_capturer",
    "register_loop_resolver",
]

ContextCapturer = Callable[[], "Callable[[], ContextManager[Any]] | None"]
LoopResolver = Callable[[], "asyncio.AbstractEventLoop | None"]
ExitStep = Callable[[float], Any]

# Called on the thread that adds a task; each returns a context-manager factory to wrap that
# task's job bodies, or None. kernel.py registers one that sends a job's output to the cell
# that added its task.
_context_capturers: list[ContextCapturer] = []
# Extra ways to find a main loop at dispatch time (kernel.py registers the kernel's loop).
_loop_resolvers: list[LoopResolver] = []
# Run once by kernel.py at kernel exit (see `register_before_exit`).
_before_exit: list[ExitStep] = []


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

    kernel.py calls `step(timeout)` once, on the main thread at interpreter exit, after the
    kernel's scheduler has shut down and before ipykernel stops its IOPub thread and closes its
    sockets. A step must make its threads stop sending on the kernel's channels (widget comm
    messages, display updates, stream writes) and return once they have, within `timeout`
    seconds; what it raises is logged and the next step still runs.
    """
    if step not in _before_exit:
        _before_exit.append(step)


def before_exit_steps() -> tuple[ExitStep, ...]:
    """The registered exit steps, in registration order (a snapshot)."""
    return tuple(_before_exit)
