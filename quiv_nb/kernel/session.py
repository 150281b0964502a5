"""The kernel's one scheduler, and quiescing quiv_nb when the kernel exits.

Kernel exit (docs/design.md, "Kernel exit"): ipykernel's own atexit handlers stop its IOPub
thread and close its zmq sockets. A thread of ours that sends on iopub meanwhile (the render
pump drawing the final state of a job abandoned at shutdown) races that close: once the IOPub
thread is gone, `IOPubThread.schedule` sends from the caller's thread on a socket the main
thread is closing, and just before it is gone a send on the caller's event pipe blocks in libzmq
while the main thread closes that pipe; libzmq then aborts the process with
`Assertion failed: pfd.revents & POLLIN (src/signaler.cpp)`. So our exit handler, registered
after ipykernel's and therefore run before them (atexit is last-in, first-out), shuts the
scheduler down, then runs every `hooks.register_before_exit` step (the pump draws what is queued,
refuses new draws, waits for a job thread's end-of-job send and refuses later ones, and joins its
thread) while every socket is still open.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
from typing import Any

from ..dispatch import in_worker
from ..hooks import before_exit_steps, exit_start_steps
from ..scheduler import Quiv
from .shell import in_kernel, ipython, kernel_loop
from .storepath import store_path

__all__ = [
    "SHUTDOWN_TIMEOUT",
    "current_scheduler",
    "get_scheduler",
    "register_exit_handler",
    "reset_scheduler",
    "use_executor",
]

_log = logging.getLogger("quiv_nb")

SHUTDOWN_TIMEOUT = 3.0  # seconds a kernel exit waits for jobs to honour their stop event
QUIESCE_TIMEOUT = 2.0  # seconds a kernel exit gives each `hooks.register_before_exit` step

_lock = threading.Lock()
_scheduler: Quiv | None = None
_executor: Any = None  # what the next kernel scheduler runs jobs on (None: a local thread pool)
_atexit_registered = False
_watching_exit = False  # observing `shell.exit_now` (see `register_exit_handler`)
_exit_reason = "kernel exited"  # what the exit-start steps are told; set when a shutdown request is seen


def get_scheduler() -> Quiv:
    """The kernel's one scheduler: created on first use, bound to the kernel loop, started.

    Re-running a cell (or `%load_ext`) returns the same object. Outside a kernel it is a plain
    started `Quiv` (callbacks then run on the worker or on the loop that calls the scheduler).
    It records to the store `kernel.storepath.store_path()` names (`QUIV_NB_STORE`, else a
    per-user default); raises `QuivError` naming the file when that store cannot be opened.
    """
    global _scheduler
    with _lock:
        if _scheduler is not None and not _scheduler.stopped:
            return _scheduler
        loop = None if in_worker() else asyncio._get_running_loop()
        _scheduler = Quiv(main_loop=loop or kernel_loop(), executor=_executor, store=store_path())
        _scheduler.start()
        register_exit_handler()
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


def register_exit_handler() -> None:
    """Register `_quiesce_at_exit` once, and in a kernel watch for the shutdown (any thread).

    Daemon threads never block interpreter exit, so this is what lets jobs that honour their stop
    event end cleanly when the kernel shuts down or restarts. It must run before ipykernel's own
    atexit handlers, i.e. be registered after them (atexit is last-in, first-out): true when
    registered from a cell, since the kernel registers its handlers at start. For the rare other
    order (quiv_nb used before an embedded kernel started), the earliest shutdown point moves it
    last again: ipykernel's `do_shutdown` (a shutdown or restart request) and `exit` in a cell set
    `shell.exit_now`, and by then every handler of ipykernel's is registered.
    """
    global _atexit_registered, _watching_exit
    if not _atexit_registered:
        _atexit_registered = True
        atexit.register(_quiesce_at_exit)
    if not _watching_exit and in_kernel():
        shell = ipython()
        if hasattr(shell, "observe"):  # a traitlets HasTraits shell: every IPython shell is one
            shell.observe(_exit_handler_last, names="exit_now")
            _watching_exit = True


def _exit_handler_last(change: Any) -> None:
    """`shell.exit_now` changed (ipykernel 7: on its control thread): run our handler first at exit."""
    if not change["new"]:
        return
    global _exit_reason
    _exit_reason = _reason_of_shutdown()
    try:
        atexit.unregister(_quiesce_at_exit)
        atexit.register(_quiesce_at_exit)
    except Exception:  # never raise into ipykernel's shutdown handling
        _log.exception("quiv_nb: re-registering the kernel exit handler failed")


def _reason_of_shutdown() -> str:
    """Why the kernel exits, read from the shutdown request being handled (on its thread).

    "kernel restarted" or "kernel shut down"; "kernel exited" for `exit` in a cell or anything unreadable.
    """
    try:
        parent = ipython().kernel.get_parent("control")
        if parent.get("header", {}).get("msg_type") == "shutdown_request":
            return "kernel restarted" if parent.get("content", {}).get("restart") else "kernel shut down"
    except Exception:  # an older ipykernel, or no kernel: the generic reason
        pass
    return "kernel exited"


def _quiesce_at_exit() -> None:
    """At interpreter exit, on the main thread: stop everything of ours that sends on iopub.

    Order matters: the scheduler first (its last act finalizes abandoned jobs, which requests
    their bars' final draws), then the exit steps (the pump draws those and stops), then a flush
    of the kernel's streams, so buffered job output still reaches the cell, and last the streams
    stop taking writes from job threads (abandoned handlers). All of it runs while ipykernel's
    IOPub thread and sockets are alive; afterwards no thread of ours sends. Before all of it the
    exit-start steps record what the exit interrupts (a running job's bar ends "interrupted
    (kernel restarted)" at the step it reached, whatever its handler does once told to stop).
    """
    for start in exit_start_steps() if in_kernel() else ():
        try:
            start(_exit_reason)
        except Exception:
            _log.exception("quiv_nb: exit step %r failed", start)
    try:
        reset_scheduler(SHUTDOWN_TIMEOUT)
    except Exception:  # at exit there is nobody left to tell but the log
        _log.exception("quiv_nb: shutdown at kernel exit failed")
    # Outside a kernel (a script that used `get_scheduler`) there is no socket to protect; the
    # pump's own exit flush draws a script's last text-bar line.
    for step in before_exit_steps() if in_kernel() else ():
        try:
            if step(QUIESCE_TIMEOUT) is False:
                _log.warning("quiv_nb: %r did not quiesce within %.1fs at kernel exit", step, QUIESCE_TIMEOUT)
        except Exception:
            _log.exception("quiv_nb: quiescing %r at kernel exit failed", step)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or replaced stream: nothing left to flush
            pass
    if in_kernel():
        # A handler abandoned at shutdown still runs on our worker thread; its prints would make
        # that thread send on iopub (ipykernel's stream flush) while ipykernel closes it.
        sys.stdout, sys.stderr = _JobOutputDropped(sys.stdout), _JobOutputDropped(sys.stderr)


class _JobOutputDropped:
    """Stands in for a kernel stream once the exit handler has run: drops what job threads write.

    Job threads are those running a job body (`dispatch.in_worker()`): after the exit handler
    only abandoned handlers still run there, and the kernel is closing the channel their output
    would take. Every other thread writes through. ipykernel's own exit restores the process's
    streams right after (`IPKernelApp.reset_io`).
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return len(text) if in_worker() else self._stream.write(text)

    def flush(self) -> None:
        if not in_worker():
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
