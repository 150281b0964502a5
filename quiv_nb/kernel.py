"""The only module that detects and touches IPython and ipykernel.

It binds the kernel's one scheduler to the kernel's event loop, sends each job's output to the
cell that added its task, and quiesces quiv_nb when the kernel exits. Every version-dependent
branch is here and names the version it is for. The package imports this module as soon as it
is imported inside a kernel, so a plain `quiv_nb.Quiv()` in a notebook routes output too; the
core learns about the kernel only through the registries in `hooks` that this module fills.

Kernel exit (docs/design.md, "Kernel exit"): ipykernel's own atexit handlers stop its IOPub
thread and close its zmq sockets. A thread of ours that sends on iopub meanwhile (the render
pump drawing the final state of a job abandoned at shutdown) races that close: once the IOPub
thread is gone, `IOPubThread.schedule` sends from the caller's thread on a socket the main
thread is closing, and just before it is gone a send on the caller's event pipe blocks in libzmq
while the main thread closes that pipe; libzmq then aborts the process with
`Assertion failed: pfd.revents & POLLIN (src/signaler.cpp)`. So our exit handler, registered
after ipykernel's and therefore run before them (atexit is last-in, first-out), shuts the
scheduler down, then runs every `hooks.register_before_exit` step (the pump draws what is queued,
refuses new draws and joins its thread) while every socket is still open.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import sys
import threading
from typing import Any, Callable, ContextManager, Iterator

from .dispatch import in_worker
from .hooks import before_exit_steps, register_context_capturer, register_loop_resolver
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
QUIESCE_TIMEOUT = 2.0  # seconds a kernel exit gives each `hooks.register_before_exit` step

_lock = threading.Lock()
_scheduler: Quiv | None = None
_executor: Any = None  # what the next kernel scheduler runs jobs on (None: a local thread pool)
_atexit_registered = False
_watching_exit = False  # observing `shell.exit_now` (see `_register_exit_handler`)


def ipython() -> Any:
    """The running IPython shell, or None; never imports IPython if nothing else has. Any thread."""
    module = sys.modules.get("IPython")
    if module is None:
        return None
    try:
        return module.get_ipython()
    except Exception:  # a half-imported or stubbed IPython: not a shell we can use
        return None


def in_kernel() -> bool:
    """True inside an IPython kernel (Jupyter, VS Code, Colab), where widgets can show. Any thread.

    Checked like tqdm.autonotebook: a `ZMQInteractiveShell` (by class name, so ipykernel is never
    imported here), or any shell with a kernel attached.
    """
    shell = ipython()
    if shell is None:
        return False
    if any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__):
        return True
    return getattr(shell, "kernel", None) is not None


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
    global _scheduler
    with _lock:
        if _scheduler is not None and not _scheduler._stopped:
            return _scheduler
        loop = None if in_worker() else asyncio._get_running_loop()
        _scheduler = Quiv(main_loop=loop or kernel_loop(), executor=_executor)
        _scheduler.start()
        _register_exit_handler()
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


def _register_exit_handler() -> None:
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
    try:
        atexit.unregister(_quiesce_at_exit)
        atexit.register(_quiesce_at_exit)
    except Exception:  # never raise into ipykernel's shutdown handling
        _log.exception("quiv_nb: re-registering the kernel exit handler failed")


def _quiesce_at_exit() -> None:
    """At interpreter exit, on the main thread: stop everything of ours that sends on iopub.

    Order matters: the scheduler first (its last act finalizes abandoned jobs, which requests
    their bars' final draws), then the exit steps (the pump draws those and stops), then a flush
    of the kernel's streams, so buffered job output still reaches the cell, and last the streams
    stop taking writes from job threads (abandoned handlers). All of it runs while ipykernel's
    IOPub thread and sockets are alive; afterwards no thread of ours sends.
    """
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
if in_kernel():
    # Imported by the package inside a kernel: quiesce at exit even if only plain `Quiv()`s
    # and bars are used (their bars draw on the process-wide pump too).
    _register_exit_handler()
