"""Map: one job that calls a function on every item of its input, with one bar (`Quiv.map`).

The job's body is a `MapBody`. It runs on one worker of the scheduler's executor and works
through the items itself; on the thread pool it also asks for up to `max_workers - 1` helpers on
other workers, which pull from the same queue. Helpers are only help: one that starts after the
queue ran dry (the pool was busy, or has a single thread that the map itself holds) returns at
once, so a map never waits for a worker it cannot get and finishes even on a pool of one.

Items are handed out in chunks whose size shrinks as the queue empties (guided scheduling): few
claims for 10,000 trivial items, and no runner left holding many slow ones at the end. Progress
and cancel do not depend on the chunking: each runner counts items one by one in its own slot,
progress is emitted at most every `EMIT_INTERVAL` seconds (and at the start and the end) as
`step`/`total`/`failed`, never going backwards, and the stop event is checked before every item.

The rules without threads — argument checks, chunk sizes, the failure message — are plain
functions, tested on their own.
"""

from __future__ import annotations

import threading
import time
import traceback as _traceback
from typing import Any, Callable

from .dispatch import noop_hook, run_in_temporary_loop
from .errors import ConfigurationError, MapError
from .execution import JOB_ID, PROGRESS, STOP, UPSTREAM, HandlerSpec, JobCall, inspect_handler
from .pool import PoolExecutor
from .seams import JobExecutor

__all__ = [
    "EMIT_INTERVAL",
    "MapBody",
    "MapSpec",
    "chunk_size",
    "failure_message",
    "make_spawner",
    "prepare",
    "upstream_body",
]

EMIT_INTERVAL = 0.05  # seconds between two progress payloads of one map (bars draw at ~10 Hz anyway)
CHUNKS_PER_RUNNER = 4  # guided scheduling: a claim takes 1/(runners * this) of what is left
_COUNTER_KEYS = frozenset({"step", "total", "progress", "n", "pct", "failed"})  # the map reports these itself
_PLAIN = HandlerSpec(False, ())

Spawner = Callable[[str, Any, Callable[[], None]], None]  # (job id, stop event, fn): run fn on another worker


class MapSpec:
    """What one map calls: the function, its extra arguments, and how (checked at the call)."""

    __slots__ = ("args", "fail_fast", "func", "kwargs", "max_workers", "spec")

    def __init__(
        self,
        func: Callable[..., Any],
        spec: HandlerSpec,
        max_workers: int,
        fail_fast: bool,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.func, self.spec, self.max_workers, self.fail_fast = func, spec, max_workers, fail_fast
        self.args, self.kwargs = args, kwargs or {}


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an integer >= 1 or None, got {value!r}")
    return value


def _check_common(func: Any, max_workers: Any, fail_fast: Any, default_workers: int) -> int:
    if not callable(func):
        raise ConfigurationError(
            f"func must be callable (the function to call on each item), got {type(func).__name__}"
        )
    if not isinstance(fail_fast, bool):
        raise ConfigurationError(f"fail_fast must be True or False, got {fail_fast!r}")
    return default_workers if max_workers is None else _positive_int("max_workers", max_workers)


def prepare(
    func: Any, iterables: tuple[Any, ...], max_workers: Any, fail_fast: Any, default_workers: int
) -> tuple[MapSpec, list[tuple[Any, ...]]]:
    """Check `Quiv.map`'s arguments and read the items (calling thread).

    Returns the spec and the items as argument tuples, like `zip(*iterables)` (the iterables are
    consumed here, so the total is known). Raises `ConfigurationError` naming the bad argument:
    a non-callable `func`, no iterable, a non-iterable, a `func` that cannot take one argument per
    iterable, a bad `max_workers` or `fail_fast`.
    """
    workers = _check_common(func, max_workers, fail_fast, default_workers)
    if not iterables:
        raise ConfigurationError("map needs at least one iterable of items: map(func, items)")
    for position, iterable in enumerate(iterables, 1):
        try:
            iter(iterable)
        except TypeError:
            raise ConfigurationError(
                f"iterable {position} must be iterable (a list, range, generator...), got {type(iterable).__name__}"
            ) from None
    spec = inspect_handler(func, (None,) * len(iterables), {})
    items = list(zip(*iterables, strict=False))  # as map(): the shortest iterable ends it
    return MapSpec(func, spec, workers, fail_fast), items


def upstream_body(
    func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], after: Any, spawner: Spawner | None, workers: int
) -> MapBody:
    """The body of an `add_task(..., after=UP, map=True)` task: `func(item, *args, **kwargs)` per item
    of UP's result (calling thread). Raises `ConfigurationError` unless there is exactly one upstream
    and `func` can take an item plus `args`/`kwargs`."""
    names = [after] if isinstance(after, str) else list(after) if isinstance(after, (list, tuple)) else None
    if not names or len(names) != 1:
        raise ConfigurationError(
            f"map=True needs exactly one upstream task in after= (its result is the items), got after={after!r}"
        )
    _check_common(func, None, False, workers)
    spec = inspect_handler(func, (None, *args), kwargs)
    return MapBody(MapSpec(func, spec, workers, False, tuple(args), dict(kwargs)), None, spawner)


def chunk_size(remaining: int, runners: int) -> int:
    """How many of `remaining` items the next claim takes (guided scheduling; at least 1)."""
    return max(1, remaining // (runners * CHUNKS_PER_RUNNER))


def failure_message(failed: int, total: int, first_index: int, first: BaseException) -> str:
    """The `error_message` of a map whose items failed: how many of how many, and the first."""
    what = f"{type(first).__name__}: {first}" if str(first) else type(first).__name__
    items = "item" if total == 1 else "items"
    return f"{failed} of {total} {items} failed; the first, item {first_index}: {what}"


def make_spawner(executor: JobExecutor) -> Spawner | None:
    """How a map body gets helpers on `executor`: on our thread pool (or a plain Executor) a helper
    is one more `JobCall` on it; elsewhere (a Dask cluster) None, and the body runs every item."""
    if not isinstance(executor, PoolExecutor):
        return None

    def spawn(job_id: str, stop: Any, fn: Callable[[], None]) -> None:
        try:
            executor.submit(JobCall(job_id, fn, (), {}, _PLAIN, stop, noop_hook))
        except Exception:  # shut down meanwhile: the body does the work alone
            pass

    return spawn


class MapBody:
    """The handler of a map job (a worker thread): runs the items, returns the list in input order.

    Raises `MapError` (with the list) when items failed. Picklable when its function and items are
    (no thread state until it runs), so a remote executor can run it whole.
    """

    def __init__(self, spec: MapSpec, items: list[tuple[Any, ...]] | None, spawner: Spawner | None) -> None:
        self._spec, self._items, self._spawner = spec, items, spawner

    def __call__(
        self, _stop_event: Any, _progress_hook: Callable[..., None], _job_id: str, _upstream: Any = None
    ) -> Any:
        items = self._items
        upstream = _upstream or {}
        if items is None:  # map=True: the items are the one upstream's result
            (value,) = upstream.values() or (None,)
            try:
                items = [(item,) for item in value]
            except TypeError:
                raise TypeError(
                    f"map=True: the upstream result must be iterable (its items are mapped), got {type(value).__name__}"
                ) from None
        run = _Run(self._spec, items, _stop_event, _progress_hook, _job_id, upstream)
        return run.run(self._spawner)


class _Run:
    """One run of a map: the queue, the result slots, the counters (shared by its runner threads)."""

    def __init__(
        self, spec: MapSpec, items: list[tuple[Any, ...]], stop: Any, hook: Callable[..., None], job_id: str,
        upstream: dict[str, Any],
    ) -> None:  # fmt: skip
        self._spec, self._items, self._stop, self._hook, self._job_id = spec, items, stop, hook, job_id
        self._total = len(items)
        self._results: list[Any] = [None] * self._total
        self._failed: list[int] = []  # indices; list.append is atomic
        self._halted = False  # fail_fast saw a failure
        self._next = 0  # the first unclaimed index
        self._runners = max(1, min(spec.max_workers, self._total))
        self._claim_lock = threading.Lock()
        self._counts: list[int] = [0]  # items done, one slot per runner: each thread adds to its own only
        self._cond = threading.Condition()
        self._active = 0
        self._closed = False
        self._emit_lock = threading.Lock()
        self._shown = -1
        self._next_emit = 0.0
        self._call = self._caller(upstream)

    def _caller(self, upstream: dict[str, Any]) -> Callable[..., Any]:
        """`func(*item)` with the extra arguments and the injected names it asked for."""
        spec = self._spec
        func, args, kwargs = spec.func, spec.args, dict(spec.kwargs)
        values = {STOP: self._stop, PROGRESS: self._item_hook, JOB_ID: self._job_id, UPSTREAM: upstream}
        for name, kind in spec.spec.inject:
            kwargs[name] = values.get(kind)  # `_scheduled_at`: an item has no slot of its own
        if spec.spec.is_async:
            return lambda *item: run_in_temporary_loop(func(*item, *args, **kwargs))
        if not args and not kwargs:
            return func
        return lambda *item: func(*item, *args, **kwargs)

    # ------------------------------------------------------------------ the job's thread

    def run(self, spawner: Spawner | None) -> list[Any]:
        self._emit(force=True)  # the total, at once
        if spawner is not None:
            for _ in range(self._runners - 1):
                spawner(self._job_id, self._stop, self._help)
        try:
            self._work(0)
        finally:
            with self._cond:
                self._closed = True  # helpers not started yet will not start
                while self._active:
                    self._cond.wait()
        self._emit(force=True)
        if self._failed and not self._stop.is_set():
            first = min(self._failed)
            exc = self._results[first]
            tb = "".join(_traceback.format_exception(type(exc), exc, exc.__traceback__))
            message = failure_message(len(self._failed), self._total, first, exc)
            raise MapError(message, self._results, f"item {first} of {self._total} failed:\n{tb}")
        return self._results

    # ------------------------------------------------------------------ any runner's thread

    def _help(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._active += 1
            slot = len(self._counts)
            self._counts.append(0)
        try:
            self._work(slot)
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def _claim(self) -> range | None:
        with self._claim_lock:
            start = self._next
            left = self._total - start
            if left <= 0 or self._halted:
                return None
            self._next = end = start + chunk_size(left, self._runners)
        return range(start, end)

    def _work(self, slot: int) -> None:
        call, items, results, counts = self._call, self._items, self._results, self._counts
        stop, clock = self._stop, time.monotonic
        fail_fast = self._spec.fail_fast
        while True:
            chunk = self._claim()
            if chunk is None:
                return
            for index in chunk:
                if stop.is_set() or self._halted:
                    return
                try:
                    results[index] = call(*items[index])
                except BaseException as exc:  # an item's failure is its slot's value, never the runner's end
                    results[index] = exc
                    self._failed.append(index)
                    if fail_fast:
                        self._halted = True
                counts[slot] += 1
                if clock() >= self._next_emit:
                    self._emit()

    def _emit(self, force: bool = False, extra: dict[str, Any] | None = None) -> None:
        """Report step/total/failed; the step shown never goes backwards (any runner's thread)."""
        with self._emit_lock:
            done = sum(self._counts)
            if done < self._shown or (done == self._shown and not force and not extra):
                return
            self._shown = done
            self._next_emit = time.monotonic() + EMIT_INTERVAL
            payload = {"step": done, "total": self._total, "failed": len(self._failed)}
            if extra:
                payload.update(extra)
            self._hook(**payload)

    def _item_hook(self, *args: Any, **kwargs: Any) -> None:
        """An item's `_progress_hook`: its labels and other keys travel with the map's counts."""
        extra = {k: v for k, v in kwargs.items() if k not in _COUNTER_KEYS}
        if extra:
            self._emit(extra=extra)
