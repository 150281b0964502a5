"""Widget controls that still act while the kernel is busy.

A click on a button reaches the kernel as a `comm_msg` on the shell channel, and the kernel
handles shell messages one at a time: while a cell runs, a click waits for the cell to end.
Two routes get our buttons through anyway (see docs/design.md, "Controls while a cell is busy"):

1. **During quiv_nb's own waits** (`wait_for_job/task`, `%quiv wait` on the kernel thread), the
   wait runs the kernel loop re-entrantly (`blocking.block_on`) and `comm_messages_flow()` lets
   comm messages through meanwhile, whatever the frontend:
   - ipykernel 7.x: the kernel runs every main-shell message in one shared `Context`, which a
     nested loop cannot enter again (nest-asyncio2 defers such callbacks until the wait ends). So
     for the wait we take over the main shell's receive callback, hand comm messages to the
     kernel's own concurrent-comm path in a copy of that context, and pass everything else to
     the saved callback unchanged; the saved callback is put back when the wait ends.
   - ipykernel 6.x: messages sit in the kernel's queue behind the running cell; jupyter-ui-poll
     dispatches them from inside the wait (`do_one_iteration`) and holds back execute requests
     until the cell ends, then replays them in order.
2. **During any busy cell** (`time.sleep(30)`), ipykernel >= 7 with JupyterLab >= 4.4 or
   Notebook >= 7.4: those frontends send comm messages on a kernel subshell (JEP 91), a thread
   of its own. ipykernel 7.4 then re-routes each reply to the subshell that last *published* on
   the comm (the main shell, for a widget drawn by a cell), which puts a click back behind the
   running cell. `answer_on_sender_shell(widget)` makes one widget's comm follow the frontend's
   choice again, so its click handlers run on the subshell thread at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
from typing import Any, Awaitable, Callable, Iterator

from .shell import ipython

__all__ = ["answer_on_sender_shell", "comm_messages_flow"]

_log = logging.getLogger("quiv_nb")

_COMM_TYPES = frozenset({"comm_open", "comm_msg", "comm_close"})

Poll = Callable[[], Awaitable[None]]  # process the shell messages waiting now (kernel loop only)

_warned: list[bool] = []  # the "cannot reach the stream" error is logged once per process, not at every wait


def _kernel() -> Any:
    """The running ipykernel kernel, or None (no IPython imported, or a terminal shell)."""
    return getattr(ipython(), "kernel", None)


# ---------------------------------------------------------------------------------- route 1


@contextlib.contextmanager
def comm_messages_flow(loop: asyncio.AbstractEventLoop) -> Iterator[Poll | None]:
    """While the block runs `loop` re-entrantly on the kernel thread, let widget messages in.

    Runs on the kernel's main thread, around a nested run of its loop. Yields None when comm
    messages are delivered by the loop itself (ipykernel 7.x), or an async `poll()` the waiter
    must await every few tens of milliseconds (ipykernel 6.x). Yields None and changes nothing
    outside a kernel or on a kernel neither branch knows. Whatever it patches is restored on
    exit, also on KeyboardInterrupt; nesting is safe (each level restores what it found).
    """
    kernel = _kernel()
    if kernel is None or getattr(kernel, "io_loop", None) is None or kernel.io_loop.asyncio_loop is not loop:
        yield None
        return
    if getattr(kernel, "shell_channel_thread", None) is not None:
        with _comms_beside_the_cell(kernel) as poll:
            yield poll
    elif inspect.iscoroutinefunction(getattr(kernel, "do_one_iteration", None)):
        with _ui_poll(kernel) as poll:
            yield poll
    else:
        yield None


def _accepts_concurrent(kernel: Any) -> bool:
    try:
        return "concurrent" in inspect.signature(kernel.dispatch_shell).parameters
    except (TypeError, ValueError):
        return False


@contextlib.contextmanager
def _comms_beside_the_cell(kernel: Any) -> Iterator[None]:
    """ipykernel >= 7 (shell channel thread, one shared shell Context): comms bypass the cell.

    ipykernel 7.x (checked on 7.4) receives main-shell messages on the kernel loop through a
    ZMQStream whose callback runs each message as a task in one shared `Context`; the running
    cell has that context entered, so nest-asyncio2 defers the task until the cell returns.
    `shell_main` already dispatches comm messages concurrently while the cell holds the main
    lock (`dispatch_shell(..., concurrent=True)`, 7.x); it only needs to run in a context it can
    enter: a copy of the current one, so the cell's context variables are not touched.
    """
    if not _accepts_concurrent(kernel):  # ipykernel 7.0-7.3: no concurrent comm path; clicks wait for the cell
        yield None
        return
    try:
        stream = kernel.shell_channel_thread.manager.get_shell_channel_to_subshell_pair(None).to_stream
        # pyzmq's ZMQStream keeps its callback here and has no public getter; we must restore it exactly
        # (it carries the kernel's shared Context).
        saved, saved_copy = stream._recv_callback, stream._recv_copy
    except Exception:  # an ipykernel whose internals moved: waits still work, clicks wait for the cell
        if not _warned:
            _warned.append(True)
            _log.exception(
                "quiv_nb: cannot reach the kernel's main shell stream; clicks during waits wait for the cell"
            )
        yield None
        return
    if saved is None:
        yield None
        return
    session = kernel.session

    def on_recv(msg: list[Any]) -> Any:
        try:
            _, frames = session.feed_identities(msg, copy=False)
            msg_type = session.deserialize(frames, content=False, copy=False)["header"]["msg_type"]
        except Exception:  # malformed: the kernel's own path reports it
            msg_type = None
        if msg_type not in _COMM_TYPES:
            return saved(msg)
        ctx = contextvars.copy_context()
        return ctx.run(asyncio.ensure_future, kernel.shell_main(None, msg))

    stream.on_recv(on_recv, copy=saved_copy)
    try:
        yield None
    finally:
        stream.on_recv(saved, copy=saved_copy)


@contextlib.contextmanager
def _ui_poll(kernel: Any) -> Iterator[Poll | None]:
    """ipykernel 6.x (messages queued on the kernel loop): jupyter-ui-poll dispatches them.

    jupyter-ui-poll holds back execute requests that arrive meanwhile and replays them when the
    cell ends (on IPython's `post_run_cell`), so it is used only inside an execute request: a
    wait started from anywhere else (a button handler) would hold the next cells forever.
    """
    parent = kernel.get_parent() if hasattr(kernel, "get_parent") else {}
    if (parent or {}).get("header", {}).get("msg_type") != "execute_request":
        yield None
        return
    try:
        from jupyter_ui_poll import ui_events
    except ImportError:  # a trimmed install: keep the plain wait
        yield None
        return
    wrapper = ui_events()

    async def poll() -> None:
        async with wrapper as process:
            await process(_POLL_BATCH)

    yield poll


_POLL_BATCH = 20  # shell messages dispatched per poll (ipykernel 6.x); a click is one


# ---------------------------------------------------------------------------------- route 2


def _frontend_route(data: Any, default: str | None) -> str | None:
    return default


def answer_on_sender_shell(widget: Any) -> None:
    """Handle this widget's messages on the (sub)shell the frontend sent them on.

    Call it on the thread that made the widget, right after making it. A no-op outside a kernel,
    on ipykernel < 7.4 (7.0-7.3 already route by the frontend's choice; 6.x has no subshells) and
    for a widget without a comm. ipykernel 7.4 routes a comm's incoming messages to the subshell that last published on
    it (`BaseComm._reply_subshell_for`), so a button drawn by a cell would be handled by the main
    shell, behind whatever cell runs; overriding that hook on this one comm object restores the
    frontend's choice. The override lives and dies with the comm; setting it twice is harmless.
    Handlers of such a widget may run on a subshell thread, concurrently with a cell.
    """
    comm = getattr(widget, "comm", None)
    if comm is not None and hasattr(comm, "_reply_subshell_for"):
        comm._reply_subshell_for = _frontend_route
