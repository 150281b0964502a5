"""Where a map's items run: helpers on our pool, batches on a cluster (with the batch body that
runs on a remote worker), calling one item (`item_first`: the item before given arguments), and
keeping map bodies local when jobs go to a cluster.

On the thread pool a map body gets up to `pool size - 1` helpers (`PoolHelpers`), more jobs on
the same pool that pull from its queue (`quiv_nb.mapping`).

On `DaskExecutor` a map job's body stays in this process (`LocalBodies` runs it on a local
thread: it only hands out work) and sends the items to the cluster in batches, like
`client.map`: each batch is one `JobCall` whose body is `run_batch`, so it gets the executor's
stop-event mirroring and progress relay like any job. `quiv_nb.mapping` drives the batches.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
import traceback
from concurrent.futures import Future
from typing import Any, Callable

from .dispatch import is_async_callable, noop_hook, run_in_temporary_loop
from .errors import ConfigurationError
from .execution import JOB_ID, PROGRESS, STOP, UPSTREAM, HandlerSpec, JobCall, Outcome, run_call
from .pool import PoolExecutor
from .seams import JobExecutor

__all__ = [
    "BATCH_SPEC",
    "Fanout",
    "LocalBodies",
    "PoolHelpers",
    "RemoteBatches",
    "batch_size",
    "item_caller",
    "item_first",
    "map_fanout",
    "run_batch",
]

# What `run_batch` takes by injection: the batch's own stop event and progress hook.
BATCH_SPEC = HandlerSpec(False, (("_stop_event", STOP), ("_progress_hook", PROGRESS)))
_COUNTER_KEYS = frozenset({"step", "total", "progress", "n", "pct", "failed"})  # the map reports these itself
EMIT_INTERVAL = 0.05  # seconds between two progress payloads (of a map, or of one batch on its worker)
_PLAIN = HandlerSpec(False, ())  # a helper: nothing injected


class PoolHelpers:
    """How a map body gets helpers on our thread pool (or a plain Executor): one more `JobCall` on
    it each, at most `size - 1` (the pool's size; the body holds one worker itself)."""

    __slots__ = ("_executor", "size")

    def __init__(self, executor: JobExecutor, size: int) -> None:
        self._executor, self.size = executor, size

    def spawn(self, job_id: str, stop: Any, fn: Callable[[], None]) -> None:
        """Queue `fn` on another worker (the body's thread); a refusal (shut down) is ignored."""
        try:
            self._executor.submit(JobCall(job_id, fn, (), {}, _PLAIN, stop, noop_hook))
        except Exception:  # shut down meanwhile: the body does the work alone
            pass


class RemoteBatches:
    """Where a map body sends its items when jobs run elsewhere (a cluster): batch jobs on `executor`."""

    __slots__ = ("executor",)

    def __init__(self, executor: JobExecutor) -> None:
        self.executor = executor


Fanout = PoolHelpers | RemoteBatches | None


def map_fanout(executor: JobExecutor, pool_size: int) -> tuple[JobExecutor, Fanout]:
    """(the executor the scheduler should use, how map bodies get help on it), at `Quiv()` time.

    On our thread pool (or a plain Executor) helpers are more jobs on it (`PoolHelpers`). On any
    other executor (a Dask cluster) map bodies run here (`LocalBodies`) and send their items to it
    in batches (`RemoteBatches`).
    """
    if not isinstance(executor, PoolExecutor):
        return LocalBodies(executor), RemoteBatches(executor)
    return executor, PoolHelpers(executor, pool_size)


def item_caller(
    func: Callable[..., Any], spec: HandlerSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
    values: dict[str, Any],
) -> Callable[..., Any]:  # fmt: skip
    """`func(*item, *args, **kwargs)` plus the injected names `spec` asks for, taken from `values`
    ({kind: value}); an async `func` is run to completion in a fresh loop per item."""
    kwargs = dict(kwargs)
    for name, kind in spec.inject:
        kwargs[name] = values.get(kind)  # `_scheduled_at`: an item has no slot of its own
    if spec.is_async:
        return lambda *item: run_in_temporary_loop(func(*item, *args, **kwargs))
    if not args and not kwargs:
        return func
    return lambda *item: func(*item, *args, **kwargs)


_ITEM = object()  # stands for the item when the rest of a signature is read


class _ItemFirst:
    """`func(item, *args, **kwargs)` as a function of the item (see `item_first`); pickles for Dask workers."""

    __slots__ = ("__name__", "_args", "_func", "_kwargs")

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._func, self._args, self._kwargs = func, args, kwargs
        self.__name__ = getattr(func, "__name__", type(func).__name__)

    @property
    def __signature__(self) -> inspect.Signature:
        """An item, then what `func` still takes (its injected names among them), as `functools.partial` shows."""
        rest = inspect.signature(functools.partial(self._func, _ITEM, *self._args, **self._kwargs))
        item = inspect.Parameter("_quiv_item", inspect.Parameter.POSITIONAL_ONLY)
        return rest.replace(parameters=[item, *rest.parameters.values()])

    def __call__(self, item: Any, /, **injected: Any) -> Any:
        return self._func(item, *self._args, **self._kwargs, **injected)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self._func, self._args, self._kwargs)

    def quiv_cache_identity(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        """(func, its arguments after the item, its keyword arguments): a cached map's key hashes `func`'s
        code and these, not this wrapper's (`quiv_nb.store.keys.base_key`; adding thread)."""
        return self._func, self._args, self._kwargs


class _AsyncItemFirst(_ItemFirst):
    """`_ItemFirst` of an async `func`: awaited like one (`dispatch.is_async_callable` sees `async def`)."""

    __slots__ = ()

    async def __call__(self, item: Any, /, **injected: Any) -> Any:
        return await self._func(item, *self._args, **self._kwargs, **injected)


def item_first(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[..., Any]:
    """`func(item, *args, **kwargs)` as a function of one item that still takes the names the
    scheduler injects (`_stop_event`...), like `functools.partial` but with the item first (the
    `%quiv map f(1, x=2) items` form); any thread.

    Raises `ConfigurationError` when `func` cannot take an item plus `args` and `kwargs`.
    """
    if not args:
        return functools.partial(func, **kwargs) if kwargs else func
    wrapped = (_AsyncItemFirst if is_async_callable(func) else _ItemFirst)(func, tuple(args), dict(kwargs))
    try:
        inspect.signature(func)
    except (TypeError, ValueError):  # no signature to read (some builtins): called as given
        return wrapped
    try:
        inspect.signature(wrapped)
    except (TypeError, ValueError):  # partial's "has incorrect arguments"
        given = f"args={tuple(args)!r}" + (f" and kwargs={kwargs!r}" if kwargs else "")
        raise ConfigurationError(
            f"{wrapped.__name__}{inspect.signature(func)} cannot take an item followed by {given}: "
            "each item is its first argument, the arguments given follow it"
        ) from None
    return wrapped


def label_payload(kwargs: dict[str, Any]) -> dict[str, Any]:
    """What of an item's `_progress_hook(**kwargs)` travels with the map's counts: all but the counters."""
    return {k: v for k, v in kwargs.items() if k not in _COUNTER_KEYS}


def batch_size(total: int, workers: int) -> int:
    """Items per remote batch: about four batches per worker slot, at least one item."""
    return max(1, -(-total // (workers * 4)))


def run_batch(
    func: Callable[..., Any], spec: HandlerSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
    items: list[tuple[Any, ...]], fail_fast: bool, job_id: str, upstream: dict[str, Any],
    _stop_event: Any, _progress_hook: Callable[..., None],
) -> list[tuple[bool, Any, str | None]]:  # fmt: skip
    """Run one batch of a map's items on this (remote) worker thread, in order.

    Returns `(ok, result or exception, traceback text or None)` per item run; stops before the
    next item once the stop event is set (or after a failure with `fail_fast`). Reports the count
    done as `_progress_hook(k)` at most every `EMIT_INTERVAL`, and items' labels with it.
    """
    done: list[tuple[bool, Any, str | None]] = []

    def item_hook(*_: Any, **payload: Any) -> None:
        labels = label_payload(payload)
        if labels:
            _progress_hook(len(done), **labels)

    call = item_caller(
        func, spec, args, kwargs, {STOP: _stop_event, PROGRESS: item_hook, JOB_ID: job_id, UPSTREAM: upstream}
    )
    next_emit = time.monotonic() + EMIT_INTERVAL
    for item in items:
        if _stop_event.is_set():
            break
        try:
            done.append((True, call(*item), None))
        except BaseException as exc:  # the item's failure is its slot's value
            done.append((False, exc, "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))))
            if fail_fast:
                break
        if time.monotonic() >= next_emit:
            next_emit = time.monotonic() + EMIT_INTERVAL
            _progress_hook(len(done))
    return done


class LocalBodies:
    """A `JobExecutor` over another one that runs map bodies (a `JobCall` whose func has a true
    `quiv_runs_here` attribute) on a local daemon thread each, and every other job on `inner`.

    A map body only hands batches to `inner` and collects them; sending it to a cluster would need
    the cluster to reach back. `submit` never blocks; `shutdown` shuts `inner` down (which settles
    the batches the bodies wait for), then waits for the bodies within what is left of `timeout`.
    """

    def __init__(self, inner: JobExecutor) -> None:
        self._inner = inner
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def inner(self) -> JobExecutor:
        """The executor every job but a map body runs on."""
        return self._inner

    def submit(self, call: JobCall) -> Future[Outcome]:
        if not getattr(call.func, "quiv_runs_here", False):
            return self._inner.submit(call)
        future: Future[Outcome] = Future()
        thread = threading.Thread(
            target=self._run, args=(future, call), name=f"quiv_nb-map-{call.job_id[:8]}", daemon=True
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()
        return future

    @staticmethod
    def _run(future: Future[Outcome], call: JobCall) -> None:
        if future.set_running_or_notify_cancel():
            future.set_result(run_call(call))  # run_call never raises

    def shutdown(self, timeout: float | None = None) -> list[str]:
        deadline = None if timeout is None else time.monotonic() + timeout
        abandoned = self._inner.shutdown(timeout)
        with self._lock:
            threads = [t for t in self._threads if t is not threading.current_thread()]
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return abandoned + [t.name for t in threads if t.is_alive()]
