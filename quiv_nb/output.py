"""What a job body writes, captured per job and line-whole: stdout, stderr and console log records.

`capture(job_id, log)` is entered around every job body (by `execution.run_call`). While it is
active, writes to `sys.stdout` / `sys.stderr` from that job's context on its worker thread (the
body, the tasks of an async handler) are cut into whole lines, appended to the
job's `JobLog` (`Job.output`) and handed to the job's `OutputRoute`. Partial writes wait for their
newline (or a `flush()`, or the end of the job), so two jobs' lines never interleave mid-line.
Writes from any other thread pass through to the real stream untouched (also a main-loop callback
the job scheduled, although asyncio copied the job's context into it).

The route is where lines go besides the log: by default the real stdout/stderr, one whole line
per write under one lock (scripts); in a kernel, `quiv_nb.kernel` routes a job to the display
area of the cell that added its task (`quiv_nb.render.output_area`). The scheduler's failure
record for a routed job (`extra={"quiv_job_id": ...}`) goes to that route too, instead of to
whatever cell the console happens to be writing under.

Mechanism: process-wide stream proxies installed once (`install`, idempotent, re-applied when
something replaced `sys.stdout`; `uninstall` restores what was there) that look the current job
up in a context variable. No IPython import here.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import OrderedDict
from contextlib import ExitStack
from contextvars import ContextVar
from typing import Any, Callable, ContextManager, Protocol, TextIO

from .joblog import JobLog
from .tracebacks import trim_traceback

__all__ = [
    "JobOutput",
    "OutputRoute",
    "capture",
    "current_output",
    "current_route",
    "failure_headline",
    "install",
    "join",
    "on_joined_threads",
    "route_current_job",
    "route_of",
    "trim_traceback",
    "uninstall",
]

_log = logging.getLogger("quiv_nb")
_get_ident = threading.get_ident
_sleep = time.sleep

YIELD_EVERY = 64  # a job hands the GIL over once per this many writes of whole lines (see `_emit`)
PARTIAL_LIMIT = 8192  # characters a line may grow without a newline before it is passed on anyway
_ROUTED_JOBS_KEPT = 1024  # recently routed jobs whose failure record may still arrive


class OutputRoute(Protocol):
    """Where one job's lines go besides its log. Called on the job's thread; must not block long."""

    def job_started(self, job_id: str) -> None: ...

    def job_text(self, job_id: str, stream: str, text: str) -> None:
        """`text` is one or more whole lines of `stream` ("stdout" / "stderr"), or a flushed partial line."""
        ...

    def job_ended(self, job_id: str) -> None: ...

    def job_failed(self, job_id: str, headline: str, traceback: str) -> None:
        """The scheduler's failure record for the job: one headline and the full traceback text."""
        ...


class _ConsoleRoute:
    """Scripts: whole lines to the real stream, one write per batch under one lock."""

    _lock = threading.Lock()

    def job_started(self, job_id: str) -> None:
        pass

    def job_text(self, job_id: str, stream: str, text: str) -> None:
        proxy = _proxies.get(stream)
        target = proxy.stream if proxy is not None else getattr(sys, f"__{stream}__", None)
        if target is None:
            return
        with self._lock:
            target.write(text)

    def job_ended(self, job_id: str) -> None:
        pass

    def job_failed(self, job_id: str, headline: str, traceback: str) -> None:
        pass  # never registered for failures: the record takes its ordinary logging path

    def flush(self, stream: str) -> None:
        proxy = _proxies.get(stream)
        if proxy is not None:
            proxy.stream.flush()


_CONSOLE = _ConsoleRoute()


class JobOutput:
    """One job's capture: partial-line buffers, its log and its route.

    Used from the job's own thread only (the proxies check `thread`), so it needs no lock of its
    own; the log and the route lock what other threads read.
    """

    __slots__ = ("_emitted", "_partial", "job_id", "joined_contexts", "log", "route", "thread")

    def __init__(self, job_id: str, log: JobLog | None) -> None:
        self.job_id = job_id
        self.log = log
        self.route: OutputRoute | None = None  # None: the console
        # Entered on each thread that joins this job's output (`join`): set by the job's contexts.
        self.joined_contexts: list[Callable[[], ContextManager[Any]]] | None = None  # made when first needed
        self._partial: dict[str, str] = {"stdout": "", "stderr": ""}
        self._emitted = 0
        # Only this thread's writes are the job's. The context variable alone would also claim a
        # main-loop callback the job scheduled (asyncio copies the caller's context into it).
        self.thread = threading.get_ident()

    def write(self, stream: str, text: str) -> None:
        """Buffer `text`; pass on every completed line, in order."""
        partial = self._partial
        buffered = partial[stream] + text if partial[stream] else text
        if "\n" not in text:
            if len(buffered) < PARTIAL_LIMIT:
                partial[stream] = buffered
                return
            cut = len(buffered)  # a line this long is passed on in pieces
        else:
            cut = buffered.rfind("\n") + 1
        partial[stream] = buffered[cut:]
        self._emit(stream, buffered[:cut])

    def flush(self, stream: str) -> None:
        """Pass on the partial line of `stream` as it is (the body asked for it with `flush()`)."""
        text, self._partial[stream] = self._partial[stream], ""
        if text:
            self._emit(stream, text)
        if self.route is None:
            _CONSOLE.flush(stream)

    def drain(self) -> None:
        """Pass on the partial lines (this thread's writes for the job end here)."""
        for stream in ("stdout", "stderr"):
            if self._partial[stream]:  # a job that wrote nothing costs no flush (OutStream's waits for its thread)
                self.flush(stream)

    def close(self) -> None:
        """End of the job body: pass on what is buffered, then tell the route."""
        self.drain()
        try:
            (self.route or _CONSOLE).job_ended(self.job_id)
        except Exception:
            _log_quietly("quiv_nb: an output route failed at the end of job %s", self.job_id)

    def _emit(self, stream: str, text: str) -> None:
        self._emitted += 1
        if not self._emitted % YIELD_EVERY:
            # A body printing in a hot loop holds the GIL for a whole switch interval (5 ms) at a time,
            # so every kernel thread (shell, iopub, the pump) waits that long per hand-off and `1+1`
            # takes tens of ms. Handing the GIL over now and then keeps them prompt (measured: a
            # waiting thread's p50 delay 9 ms -> 0.5 ms) at no visible cost to the job.
            _sleep(0)
        if self.log is not None:
            self.log.write(text)
        try:
            (self.route or _CONSOLE).job_text(self.job_id, stream, text)
        except Exception:
            _log_quietly("quiv_nb: an output route failed for job %s", self.job_id)


_current: ContextVar[JobOutput | None] = ContextVar("quiv_nb_job_output", default=None)
# Set while the failure record of a routed job is being handled: console writes are dropped (the
# route has the failure), so it does not also land in the cell running at the moment.
_diverted: ContextVar[bool] = ContextVar("quiv_nb_output_diverted", default=False)


def _log_quietly(message: str, *args: Any) -> None:
    """`_log.exception` outside any job capture, so the report cannot loop back into the route."""
    token = _current.set(None)
    try:
        _log.exception(message, *args)
    finally:
        _current.reset(token)


class _StreamProxy:
    """Stands in for `sys.stdout` / `sys.stderr`: job writes go to the job, the rest pass through."""

    def __init__(self, name: str, stream: TextIO) -> None:
        self.name = name
        self.stream = stream  # the stream it replaced (ipykernel's OutStream, a terminal, pytest's capture)

    def write(self, text: str) -> int:
        out = _current.get()
        if out is None or out.thread != _get_ident():
            if _diverted.get():
                return len(text)
            return self.stream.write(text)
        if type(text) is not str and not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        out.write(self.name, text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        out = _current.get()
        if out is None or out.thread != _get_ident():
            self.stream.flush()
        else:
            out.flush(self.name)

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, buffer, ...
        return getattr(self.stream, name)

    def __repr__(self) -> str:
        return f"<quiv_nb job-output proxy for {self.stream!r}>"


_install_lock = threading.Lock()
_proxies: dict[str, _StreamProxy] = {}
_redirected: list[tuple[logging.StreamHandler[Any], Any]] = []  # (handler, the stream it had)
_routes_lock = threading.Lock()
_routes: OrderedDict[str, OutputRoute] = OrderedDict()  # job id -> route, for the failure record


def install() -> None:
    """Put the stream proxies in place (idempotent; re-wraps a stream someone replaced since).

    Also points root-logger console handlers made before the proxies at them (so a job's log
    records are captured with it), and hooks the "quiv_nb" logger so a routed job's failure
    record goes to its route. Called on the first job of the process; any thread.
    """
    with _install_lock:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is None or isinstance(stream, _StreamProxy):
                continue
            proxy = _proxies[name] = _StreamProxy(name, stream)
            setattr(sys, name, proxy)
        wrapped = {id(p.stream): p for p in _proxies.values()}
        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler and id(handler.stream) in wrapped:
                _redirected.append((handler, handler.stream))
                handler.setStream(wrapped[id(handler.stream)])
        logger = logging.getLogger("quiv_nb")
        if "handle" not in vars(logger):
            logger.handle = _make_handle(type(logger).handle.__get__(logger))  # type: ignore[method-assign]


def uninstall() -> None:
    """Undo `install` where nothing replaced our objects since (safe to repeat)."""
    with _install_lock:
        for name, proxy in list(_proxies.items()):
            if getattr(sys, name) is proxy:
                setattr(sys, name, proxy.stream)
            del _proxies[name]
        for handler, stream in _redirected:
            if isinstance(handler.stream, _StreamProxy):
                handler.setStream(stream)
        _redirected.clear()
        logger = logging.getLogger("quiv_nb")
        if "handle" in vars(logger):
            del logger.handle


def _make_handle(handle: Any) -> Any:
    def quiv_handle(record: logging.LogRecord) -> None:
        """`Logger.handle` of "quiv_nb": a routed job's failure goes to its route, not to the console."""
        job_id = getattr(record, "quiv_job_id", None)
        with _routes_lock:
            route = _routes.pop(job_id, None) if job_id is not None else None
        if route is None or job_id is None:
            return handle(record)
        try:
            headline, tb = _split_failure(record)
            route.job_failed(job_id, headline, tb)
        except Exception:
            _log_quietly("quiv_nb: routing the failure of job %s failed", job_id)
            return handle(record)
        token = _diverted.set(True)  # file handlers still get the record; the console does not
        try:
            return handle(record)
        finally:
            _diverted.reset(token)

    return quiv_handle


def _split_failure(record: logging.LogRecord) -> tuple[str, str]:
    """(headline, traceback text) from the scheduler's failure record.

    The headline names the task ("extract failed: ValueError: ...") when the record carries its
    name (`quiv_task_name`), else it is the record's first line with the exception appended.
    """
    message = record.getMessage()
    first, _, rest = message.partition("\n")
    if record.exc_info and not rest:
        import traceback

        rest = "".join(traceback.format_exception(*record.exc_info))
    task_name = getattr(record, "quiv_task_name", None)
    if task_name:
        first = f"{task_name} failed"
    return failure_headline(first, rest), rest


def failure_headline(first_line: str, traceback_text: str) -> str:
    """ "<first line of the record>: <exception line>" (the last line of the traceback)."""
    lines = [line for line in traceback_text.rstrip().splitlines() if line.strip()]
    exc_line = lines[-1].strip() if lines else ""
    first_line = first_line.rstrip().rstrip(":")
    return f"{first_line}: {exc_line}" if exc_line else first_line


class capture:  # lower case: used as a context manager, like contextlib's
    """Capture the current job's output around its body (on the worker thread).

    A class, not a generator context manager: it runs around every job, and this is a few
    times cheaper.
    """

    __slots__ = ("_out", "_token")

    def __init__(self, job_id: str, log: JobLog | None) -> None:
        self._out = JobOutput(job_id, log)
        self._token: Any = None

    def __enter__(self) -> JobOutput:
        if not (type(sys.stdout) is _StreamProxy and type(sys.stderr) is _StreamProxy):
            install()
        self._token = _current.set(self._out)
        return self._out

    def __exit__(self, *exc: object) -> None:
        try:
            self._out.close()
        finally:
            _current.reset(self._token)


class join:  # lower case: a context manager, like `capture`
    """Capture this thread's writes as `parent`'s job's output (its log and route), line-whole.

    For a thread that does part of a running job's work (a map's helper thread): `parent` is the
    job's capture, taken on the job's thread with `current_output()` after its contexts routed it.
    The job's own capture starts and ends its route; a joined thread only adds its lines and, on
    leaving, passes on its partial ones (so it must leave before the job's body returns).
    `parent=None` (no capture there) captures nothing.
    """

    __slots__ = ("_out", "_parent", "_stack", "_token")

    def __init__(self, parent: JobOutput | None) -> None:
        self._parent = parent
        self._out: JobOutput | None = None
        self._token: Any = None
        self._stack = ExitStack()

    def __enter__(self) -> None:
        parent = self._parent
        if parent is None:
            return
        if not (type(sys.stdout) is _StreamProxy and type(sys.stderr) is _StreamProxy):
            install()
        out = self._out = JobOutput(parent.job_id, parent.log)  # this thread's own partial lines
        out.route = parent.route
        self._token = _current.set(out)
        try:
            for context in parent.joined_contexts or ():
                self._stack.enter_context(context())
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc: object) -> None:
        if self._out is None:
            return
        try:
            self._stack.close()
            self._out.drain()
        finally:
            _current.reset(self._token)


def on_joined_threads(context: Callable[[], ContextManager[Any]]) -> None:
    """Enter `context()` on every thread that `join`s the running job's output, too (a kernel's
    display routing is per thread). Called on the job's thread by a job context; a no-op outside a job."""
    out = current_output()
    if out is not None:
        if out.joined_contexts is None:
            out.joined_contexts = []
        out.joined_contexts.append(context)


def current_output() -> JobOutput | None:
    """The capture of the job running on this thread (None outside a job), for `join` on its helpers."""
    out = _current.get()
    return None if out is None or out.thread != _get_ident() else out


def route_current_job(route: OutputRoute) -> None:
    """Send the running job's output (and its failure record) to `route`; on the job's thread.

    Called by a job context (see `execution.register_context_capturer`) once `capture` is active;
    does nothing outside a job.
    """
    out = _current.get()
    if out is None:
        return
    out.route = route
    with _routes_lock:
        _routes[out.job_id] = route
        while len(_routes) > _ROUTED_JOBS_KEPT:  # jobs that ended without a failure record
            _routes.popitem(last=False)
    route.job_started(out.job_id)


def route_of(job_id: str) -> OutputRoute | None:
    """The route a recent job's output goes to (None: the console, or long forgotten); any thread."""
    with _routes_lock:
        return _routes.get(job_id)


def current_route() -> OutputRoute | None:
    """The route of the job running on this thread (None outside a job or on the console)."""
    out = current_output()
    return None if out is None else out.route
