"""Running one job: which names a handler gets injected, sync vs async bodies (its stop event: `stopevent`).

The scheduler hands an executor a `JobCall`; the executor runs it and resolves a future with an
`Outcome` (never an exception), so a handler that raises anything — even `SystemExit` — becomes
a failed job and the worker thread lives on. Executors only run bodies; timing, retries and
bookkeeping stay in the scheduler, which is what lets `quiv_nb.dask.DaskExecutor` plug in; the
default executor, a pool of daemon threads, is in `quiv_nb.pool`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import traceback
from contextlib import ExitStack, nullcontext
from contextvars import ContextVar
from typing import Any, Callable, ContextManager

from .dispatch import await_awaitable, is_async_callable, new_worker_loop, worker_scope
from .errors import ConfigurationError, MapError
from .hooks import context_capturers
from .joblog import JobLog
from .output import capture as capture_output
from .stopevent import StopEvent

__all__ = [
    "DATA_KINDS",
    "INJECTED_NAMES",
    "HandlerSpec",
    "JobCall",
    "Outcome",
    "StopEvent",
    "inspect_handler",
    "observes_stop",
    "run_call",
]

_log = logging.getLogger("quiv_nb")

STOP, PROGRESS, JOB_ID = "stop_event", "progress_hook", "job_id"
UPSTREAM, SCHEDULED_AT = "upstream", "scheduled_at"
# Both spellings: quiv 0.x (`_stop_event`) and quiv 1.x (`stop_event`).
INJECTED_NAMES: dict[str, str] = {
    "_stop_event": STOP,
    "stop_event": STOP,
    "_progress_hook": PROGRESS,
    "progress_hook": PROGRESS,
    "_job_id": JOB_ID,
    "job_id": JOB_ID,
    "_upstream": UPSTREAM,
    "upstream": UPSTREAM,
    "_scheduled_at": SCHEDULED_AT,
    "scheduled_at": SCHEDULED_AT,
}
# Plain data the scheduler puts into a job's `JobCall.kwargs` itself ({upstream name: result}, the
# aware due datetime), so it travels with the arguments to wherever the body runs (Dask workers).
DATA_KINDS = frozenset({UPSTREAM, SCHEDULED_AT})


_adding_recurring: ContextVar[bool] = ContextVar("quiv_nb_adding_recurring", default=False)


def adding_recurring_task() -> bool:
    """For a capturer: True if the task being added runs more than once (not `run_once`)."""
    return _adding_recurring.get()


def capture_job_contexts(recurring: bool = False) -> tuple[Callable[[], ContextManager[Any]], ...]:
    """Collect the contexts to re-enter around this task's jobs, on the adding thread.

    The capturers come from `hooks` (the kernel package registers the one that routes output to the cell);
    they read `adding_recurring_task()` to pick the output shape for this task.
    """
    token = _adding_recurring.set(recurring)
    try:
        return _capture_job_contexts()
    finally:
        _adding_recurring.reset(token)


def _capture_job_contexts() -> tuple[Callable[[], ContextManager[Any]], ...]:
    found = []
    for capturer in context_capturers():
        try:
            context = capturer()
        except Exception:
            _log.exception("quiv_nb: a job-context capturer failed")
            continue
        if context is not None:
            found.append(context)
    return tuple(found)


class _Value:
    """Base of the small value classes below: equality, hash and repr from `_fields`, in order.

    Not dataclasses: generating a dataclass's methods costs ~0.5-1 ms per class at import, and
    these three are internal plain data (`HandlerSpec` and `Outcome` also cross to Dask workers).
    """

    __slots__ = ()
    _fields: tuple[str, ...] = ()  # the constructor's parameters, in order

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self._fields)})"


class _Frozen(_Value):
    """A `_Value` whose fields cannot be reassigned (shared instances such as `_DONE` stay intact)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    __delattr__ = __setattr__  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), self._values()  # rebuilt through __init__: unpickling must not setattr


_set = object.__setattr__


class HandlerSpec(_Frozen):
    """What the scheduler learned from a handler's signature, once, at `add_task` time."""

    _fields = ("is_async", "inject")
    __slots__ = _fields
    is_async: bool
    inject: tuple[tuple[str, str], ...]  # (parameter name, kind)

    def __init__(self, is_async: bool, inject: tuple[tuple[str, str], ...]) -> None:
        _set(self, "is_async", is_async)
        _set(self, "inject", inject)


def observes_stop(spec: HandlerSpec) -> bool:
    """Whether a running job of this handler can be cancelled: it takes the stop event by name,
    or it is async (a cancel then cancels its asyncio task at its next `await`)."""
    return spec.is_async or any(kind == STOP for _, kind in spec.inject)


def inspect_handler(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> HandlerSpec:
    """Validate `func(*args, **kwargs)` plus injections; raise `ConfigurationError` on a bad fit."""
    if not callable(func):
        raise ConfigurationError(f"func must be callable (a function or an async function), got {type(func).__name__}")
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):  # some builtins have no signature: call them as given
        return HandlerSpec(is_async_callable(func), ())
    params = sig.parameters
    inject = tuple(
        (name, INJECTED_NAMES[name])
        for name, p in params.items()
        if name in INJECTED_NAMES and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )
    kinds = [kind for _, kind in inject]
    if len(kinds) != len(set(kinds)):
        raise ConfigurationError(
            f"handler {_name(func)} names both spellings of one injected parameter "
            f"({', '.join(n for n, _ in inject)}); keep one of each"
        )
    clash = sorted(set(kwargs) & set(INJECTED_NAMES))
    if clash:
        raise ConfigurationError(
            f"kwargs must not contain {', '.join(map(repr, clash))}: the scheduler injects "
            f"{'that name' if len(clash) == 1 else 'those names'} itself"
        )
    typo = _misspelled(func, params, args, kwargs, optional=True)
    if typo is not None:
        raise ConfigurationError(typo)
    try:
        sig.bind(*args, **kwargs, **{name: None for name, _ in inject})
    except TypeError as exc:
        why = _misspelled(func, params, args, kwargs, optional=False)
        raise ConfigurationError(
            why or f"handler {_name(func)} cannot be called with args={args!r} kwargs={kwargs!r}: {exc}"
        ) from None
    return HandlerSpec(is_async_callable(func), inject)


def _misspelled(func: Any, params: Any, args: tuple[Any, ...], kwargs: dict[str, Any], *, optional: bool) -> str | None:
    """Advice naming a parameter that looks like a misspelled injected name, or None.

    With `optional=False` (after `bind` failed) any required parameter nobody fills is suspect.
    With `optional=True` only `_`-prefixed parameters with a default are: like the scheduler's own
    names they are never meant for the caller, and `_progress_hok=None` would otherwise silently
    never get a hook, while an ordinary `job_ids=None` is left alone.
    """
    positional = [n for n, p in params.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    filled = set(positional[: len(args)]) | set(kwargs)
    for name, p in params.items():
        if name in INJECTED_NAMES or name in filled or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        has_default = p.default is not p.empty
        suspect = (has_default and name.startswith("_")) if optional else not has_default
        if not suspect:
            continue
        import difflib  # only on this path: keeps `import quiv_nb` light

        close = difflib.get_close_matches(name, INJECTED_NAMES, n=1, cutoff=0.7)
        if close:
            return (
                f"handler {_name(func)} has a parameter {name!r}, which the scheduler does not inject; "
                f"did you mean {close[0]!r}? Injected names: {', '.join(INJECTED_NAMES)}"
            )
    return None


def _name(func: Any) -> str:
    return repr(getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or func)


def _always() -> bool:
    return True


class JobCall(_Value):
    """Everything an executor needs to run one job body."""

    _fields = (
        "job_id", "func", "args", "kwargs", "spec", "stop_event", "progress", "on_start", "contexts", "extra", "log",
    )  # fmt: skip
    __slots__ = _fields

    def __init__(
        self,
        job_id: str,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        spec: HandlerSpec,
        stop_event: StopEvent,
        progress: Callable[..., None],
        on_start: Callable[[], bool] = _always,
        contexts: tuple[Callable[[], ContextManager[Any]], ...] = (),
        extra: dict[str, Any] | None = None,
        log: JobLog | None = None,
    ) -> None:
        self.job_id = job_id
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.spec = spec
        self.stop_event = stop_event
        self.progress = progress
        # Called on the worker just before the body; False means "cancelled while queued: skip it".
        self.on_start = on_start
        # Context managers entered around the body on the worker (e.g. route output to a cell).
        self.contexts = contexts
        self.extra = {} if extra is None else extra
        # The job's own output log (`Job.output`); capture machinery appends what the body writes.
        self.log = log

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces


class Outcome(_Frozen):
    """How a job body ended. Plain data, so it also crosses process boundaries (Dask)."""

    _fields = ("ok", "result", "error_message", "traceback", "cancelled")
    __slots__ = _fields
    ok: bool
    result: Any
    error_message: str | None
    traceback: str | None
    cancelled: bool

    def __init__(
        self,
        ok: bool,
        result: Any = None,
        error_message: str | None = None,
        traceback: str | None = None,
        cancelled: bool = False,
    ) -> None:
        _set(self, "ok", ok)
        _set(self, "result", result)
        _set(self, "error_message", error_message)
        _set(self, "traceback", traceback)
        _set(self, "cancelled", cancelled)


def failure(exc: BaseException) -> Outcome:
    """An `Outcome` for an exception, keeping its formatted traceback.

    A `MapError` (items of a map failed) keeps its own message, the first item's traceback and
    the list of results, which the failed job still carries.
    """
    if isinstance(exc, MapError):
        return Outcome(False, result=exc.results, error_message=str(exc), traceback=exc.traceback)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return Outcome(False, error_message=message, traceback=tb)


def run_call(call: JobCall) -> Outcome:
    """Run a job body on this thread and describe how it ended; never raises."""
    if not call.on_start():
        return Outcome(False, error_message="cancelled before it started", cancelled=True)
    kwargs = dict(call.kwargs)
    for name, kind in call.spec.inject:
        if kind not in DATA_KINDS:  # those are in call.kwargs already
            kwargs[name] = call.stop_event if kind == STOP else call.progress if kind == PROGRESS else call.job_id
    # Output capture is entered first, so the contexts inside (a kernel's cell routing) find the job's capture.
    with worker_scope(), capture_output(call.job_id, call.log), ExitStack() if call.contexts else _NO_CONTEXT as stack:
        try:
            if stack is not None:  # an ExitStack exactly when the task has contexts
                for context in call.contexts:
                    stack.enter_context(context())
            if call.spec.is_async:
                result = _run_async(call, call.func(*call.args, **kwargs))
            else:
                result = call.func(*call.args, **kwargs)
                if result is not None and inspect.isawaitable(result):  # e.g. a lambda wrapping an async def
                    result = _run_async(call, result)
        except asyncio.CancelledError:
            return Outcome(False, error_message="cancelled", cancelled=True)
        except BaseException as exc:
            return failure(exc)
    return _DONE if result is None else Outcome(True, result=result)


_NO_CONTEXT = nullcontext()  # stands in for the ExitStack of a job with no contexts to enter
_DONE = Outcome(True)  # the outcome of most handlers, which return None (frozen, so shared)


def _run_async(call: JobCall, awaitable: Any) -> Any:
    """Run an async handler in a fresh loop on this worker thread, never on the main loop.

    If the handler did not ask for the stop event it cannot see a cancel, so a cancel (or
    timeout) cancels its task instead: it stops at its next `await`.
    """
    loop = new_worker_loop()
    try:
        asyncio.set_event_loop(loop)
        task = loop.create_task(await_awaitable(awaitable))
        if not any(kind == STOP for _, kind in call.spec.inject):

            def cancel() -> None:
                with contextlib.suppress(RuntimeError):  # a closed loop: the body has finished
                    loop.call_soon_threadsafe(task.cancel)

            call.stop_event.on_set(cancel)
        return loop.run_until_complete(task)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


