"""Map: one job that calls a function on every item of its input, with one bar (`Quiv.map`).

The job's body is a `MapBody`. It runs on one worker of the scheduler's executor and works
through the items itself; on the thread pool it also asks for up to `max_workers - 1` helpers on
other workers, which pull from the same queue. Helpers are only help: one that starts after the
queue ran dry (the pool was busy, or has a single thread that the map itself holds) returns at
once, so a map never waits for a worker it cannot get and finishes even on a pool of one.

Items are handed out in chunks whose size shrinks as the queue empties (guided scheduling): few
claims for 10,000 trivial items, and no runner left holding many slow ones at the end. Progress
and cancel do not depend on the chunking: each runner counts items one by one in its own slot, a
progress thread per map (only when someone listens) reports the sum every `EMIT_INTERVAL` seconds
while it changes, plus at the start and the end, as `step`/`total`/`failed`, never going
backwards; and the stop event is checked before every item. On other executors (Dask) the items
go out in batches instead (`_run_batches`); where the work goes is `quiv_nb.mapfanout`.

The rules without threads — argument checks, chunk sizes, the failure message — are plain
functions, tested on their own.
"""

from __future__ import annotations

import functools
import threading
import traceback as _traceback
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable

from .dispatch import noop_hook, worker_scope
from .errors import ConfigurationError, MapError, QuivError
from .execution import JOB_ID, PROGRESS, STOP, UPSTREAM, HandlerSpec, JobCall, Outcome, StopEvent, inspect_handler
from .mapfanout import (
    BATCH_SPEC,
    EMIT_INTERVAL,
    Fanout,
    PoolHelpers,
    RemoteBatches,
    batch_size,
    item_caller,
    label_payload,
    run_batch,
)
from .output import current_output
from .output import join as join_output
from .seams import JobExecutor
from .tasks import check_arguments

__all__ = [
    "EMIT_INTERVAL",
    "MapBody",
    "MapSpec",
    "chunk_size",
    "failure_message",
    "prepare",
    "upstream_body",
]

CHUNKS_PER_RUNNER = 4  # guided scheduling: a claim takes 1/(runners * this) of what is left


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
    func: Any, iterables: tuple[Any, ...], max_workers: Any, fail_fast: Any, default_workers: int, name: Any = None
) -> tuple[MapSpec, list[tuple[Any, ...]], Any]:
    """Check `Quiv.map`'s arguments and read the items (calling thread).

    Returns the spec, the items as argument tuples, like `zip(*iterables)` (the iterables are
    consumed here, so the total is known), and the task name (`name`, else `func`'s name).
    Raises `ConfigurationError` naming the bad argument:
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
    if name is None:
        name = getattr(func, "__name__", None) or type(func).__name__
    return MapSpec(func, spec, workers, fail_fast), items, name


def upstream_body(
    flag: Any, func: Any, args: Any, kwargs: Any, after: Any, fanout: Fanout, workers: int, task_name: Any = None
) -> MapBody:
    """The body of an `add_task(..., after=UP, map=True)` task: `func(item, *args, **kwargs)` per item
    of UP's result (calling thread). Raises `ConfigurationError` unless `flag` (map=) is True, there is
    exactly one upstream and `func` can take an item plus `args`/`kwargs`. `task_name` is for messages."""
    if flag is not True:
        raise ConfigurationError(f"map must be True or False, got {flag!r}")
    kwargs = dict(check_arguments(args, kwargs))  # as `add_task`'s own
    names = [after] if isinstance(after, str) else list(after) if isinstance(after, (list, tuple)) else None
    if not names or len(names) != 1:
        raise ConfigurationError(
            f"map=True needs exactly one upstream task in after= (its result is the items), got after={after!r}"
        )
    _check_common(func, None, False, workers)
    spec = inspect_handler(func, (None, *args), kwargs)
    return MapBody(MapSpec(func, spec, workers, False, tuple(args), dict(kwargs)), None, fanout, task_name)


def chunk_size(remaining: int, runners: int) -> int:
    """How many of `remaining` items the next claim takes (guided scheduling; at least 1)."""
    return max(1, remaining // (runners * CHUNKS_PER_RUNNER))


def failure_message(failed: int, total: int, first_index: int, first: BaseException) -> str:
    """The `error_message` of a map whose items failed: how many of how many, and the first."""
    what = f"{type(first).__name__}: {first}" if str(first) else type(first).__name__
    items = "item" if total == 1 else "items"
    return f"{failed} of {total} {items} failed; the first, item {first_index}: {what}"


class MapBody:
    """The handler of a map job (a worker thread): runs the items, returns the list in input order.

    Raises `MapError` (with the list) when items failed. `quiv_runs_here` asks `mapfanout.LocalBodies` to
    keep it in this process when jobs go to a cluster.
    """

    quiv_runs_here = True

    def __init__(
        self, spec: MapSpec, items: list[tuple[Any, ...]] | None, fanout: Fanout, task_name: Any = None
    ) -> None:
        self._spec, self._items, self._fanout, self._task_name = spec, items, fanout, task_name

    def quiv_cache_identity(self) -> tuple[Callable[..., Any], Any, dict[str, Any]]:
        """(item function, what else its results depend on, its keyword arguments): what a cached map's key
        hashes instead of this body's code (`quiv_nb.store.keys`; adding thread). The items are part of it
        for `Quiv.map`; for `map=True` they are the upstream's result, keyed per run."""
        return self._spec.func, (self._spec.args, self._items), self._spec.kwargs

    def __call__(
        self, _stop_event: Any, _progress_hook: Callable[..., None], _job_id: str, _upstream: Any = None
    ) -> Any:
        items = self._items
        upstream = _upstream or {}
        if items is None:  # map=True: the items are the one upstream's result
            if not upstream:  # `run_task_immediately`: a run not triggered by its upstream
                raise QuivError(
                    f"task {self._task_name!r} maps over its upstream's result; run-now has no upstream result "
                    "— run the upstream task instead"
                )
            (value,) = upstream.values()
            try:
                items = [(item,) for item in value]
            except TypeError:
                raise TypeError(
                    f"map=True: the upstream result must be iterable (its items are mapped), got {type(value).__name__}"
                ) from None
        run = _Run(self._spec, items, _stop_event, _progress_hook, _job_id, upstream)
        return run.run(self._fanout)


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
        self._started: set[int] = set()  # first indices of the remote batches that began
        self._tracebacks: dict[int, str | None] = {}  # of items that failed remotely (no __traceback__ here)
        self._upstream = upstream
        self._output = current_output()  # the job's capture (this is its thread), joined by the helpers
        values = {STOP: stop, PROGRESS: self._item_hook, JOB_ID: job_id, UPSTREAM: upstream}
        self._call = item_caller(spec.func, spec.spec, spec.args, spec.kwargs, values)

    # ------------------------------------------------------------------ the job's thread

    def run(self, fanout: Fanout) -> list[Any]:
        self._emit(force=True)  # the total, at once
        done = threading.Event()
        flusher = None
        if self._hook is not noop_hook:  # someone listens: report the count every EMIT_INTERVAL
            flusher = threading.Thread(
                target=self._flush, args=(done,), name=f"quiv_nb-map-progress-{self._job_id[:8]}", daemon=True
            )
            flusher.start()
        try:
            if isinstance(fanout, RemoteBatches):
                self._run_batches(fanout.executor)
            else:
                self._run_here(fanout)
        finally:
            done.set()
            if flusher is not None:
                flusher.join()
        self._emit(force=True)
        if self._failed and not self._stop.is_set():
            first = min(self._failed)
            exc = self._results[first]
            tb = self._tracebacks.get(first) or "".join(_traceback.format_exception(type(exc), exc, exc.__traceback__))
            message = failure_message(len(self._failed), self._total, first, exc)
            raise MapError(message, self._results, f"item {first} of {self._total} failed:\n{tb}")
        return self._results

    def _flush(self, done: threading.Event) -> None:
        """The progress thread of one map: the count so far, every `EMIT_INTERVAL` while it changes.

        Not the runners: a runner that just finished items and then starts a long one would
        leave them unreported for as long as that item runs.
        """
        with worker_scope():  # a callback without a main loop runs here, as it would on a worker
            while not done.wait(EMIT_INTERVAL):
                self._emit()

    def _run_here(self, helpers: PoolHelpers | None) -> None:
        """Run items on this thread, with helpers on other workers of the pool."""
        if helpers is not None:
            for _ in range(min(self._runners, helpers.size) - 1):
                helpers.spawn(self._job_id, self._stop, self._help)
        try:
            self._work(0)
        finally:
            with self._cond:
                self._closed = True  # helpers not started yet will not start
                while self._active:
                    self._cond.wait()

    def _run_batches(self, executor: JobExecutor) -> None:
        """Send the items to `executor` in batches, at most `max_workers` at once, and collect them.

        A cancel takes the queued batches back and sets the stop event of the running ones.
        """
        size = batch_size(self._total, self._runners)
        pending = deque(range(start, min(start + size, self._total)) for start in range(0, self._total, size))
        in_flight: dict[Future[Outcome], tuple[range, StopEvent, int]] = {}
        wake = threading.Event()
        self._stop.on_set(wake.set)
        name = f"map-{getattr(self._spec.func, '__name__', 'items')}"
        while pending or in_flight:
            if self._stop.is_set() or self._halted:
                pending.clear()
                if self._stop.is_set():
                    with self._claim_lock:  # see `_batch_started`
                        for batch, batch_stop, _ in in_flight.values():
                            if batch.start in self._started:
                                batch_stop.set("cancel")
            while pending and len(in_flight) < self._runners:
                batch = pending.popleft()
                slot = len(self._counts)
                self._counts.append(0)
                batch_stop = StopEvent()
                call = JobCall(
                    f"{self._job_id}-{batch.start}", run_batch, self._batch_args(batch), {}, BATCH_SPEC, batch_stop,
                    functools.partial(self._batch_progress, slot), functools.partial(self._batch_started, batch.start),
                    extra={"task_name": name},
                )  # fmt: skip
                try:
                    future = executor.submit(call)
                except Exception as exc:  # refused (a closed cluster): its items fail
                    self._take(batch, slot, Outcome(False, error_message=f"{type(exc).__name__}: {exc}"))
                    continue
                in_flight[future] = (batch, batch_stop, slot)
                future.add_done_callback(lambda _: wake.set())
            if not in_flight:
                continue
            wake.wait(0.5)
            wake.clear()  # before the scan: a batch ending after it sets `wake` again
            for future in [f for f in in_flight if f.done()]:
                batch, _, slot = in_flight.pop(future)
                self._take(batch, slot, future.result())

    def _batch_started(self, start: int) -> bool:
        """A batch's `on_start` (the executor's thread, as its worker reports it began): False once the
        map is cancelled, and the executor stops it there.

        Only batches known to have started get their stop event set on cancel: for one the executor
        still thinks queued it would take the Dask task back, and a worker that had begun it
        meanwhile would never hear of the cancel. Checked and marked under the claim lock, which the
        cancel holds while it reads the marks, so each batch is stopped one way or the other.
        """
        with self._claim_lock:
            if self._stop.is_set():
                return False
            self._started.add(start)
            return True

    def _batch_args(self, batch: range) -> tuple[Any, ...]:
        spec = self._spec
        items = self._items[batch.start : batch.stop]
        return (spec.func, spec.spec, spec.args, spec.kwargs, items, spec.fail_fast, self._job_id, self._upstream)

    def _take(self, batch: range, slot: int, outcome: Outcome) -> None:
        """A batch ended (the job's thread): put its items' results in their slots."""
        if outcome.ok:
            for offset, (ok, value, tb) in enumerate(outcome.result or ()):
                index = batch.start + offset
                self._results[index] = value
                if not ok:
                    self._tracebacks[index] = tb
                    self._failed.append(index)
                    self._halted = self._halted or self._spec.fail_fast
            self._counts[slot] = len(outcome.result or ())
        elif not outcome.cancelled:  # the batch itself failed (a worker died, an item that does not pickle)
            exc = RuntimeError(f"its batch failed: {outcome.error_message}")
            for index in batch:
                self._results[index] = exc
                self._tracebacks[index] = outcome.traceback
                self._failed.append(index)
            self._counts[slot] = len(batch)
            self._halted = self._halted or self._spec.fail_fast
        self._emit()

    def _batch_progress(self, slot: int, *args: Any, **kwargs: Any) -> None:
        """A batch's `_progress_hook(k, **labels)`, relayed from its worker: k of its items are done."""
        if args and isinstance(args[0], int):
            self._counts[slot] = max(self._counts[slot], args[0])
        labels = label_payload(kwargs)
        if labels:
            self._emit(extra=labels)

    # ------------------------------------------------------------------ any runner's thread

    def _help(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._active += 1
            slot = len(self._counts)
            self._counts.append(0)
        try:
            with join_output(self._output):  # before `_active` drops: the job's capture ends after this
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
        stop = self._stop
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
                counts[slot] += 1  # reported by the progress thread (`_flush`)

    def _emit(self, force: bool = False, extra: dict[str, Any] | None = None) -> None:
        """Report step/total/failed; the step shown never goes backwards (any runner's thread)."""
        with self._emit_lock:
            done = sum(self._counts)
            if done < self._shown or (done == self._shown and not force and not extra):
                return
            self._shown = done
            payload = {"step": done, "total": self._total, "failed": len(self._failed)}
            if extra:
                payload.update(extra)
            self._hook(**payload)

    def _item_hook(self, *args: Any, **kwargs: Any) -> None:
        """An item's `_progress_hook`: its labels and other keys travel with the map's counts."""
        extra = label_payload(kwargs)
        if extra:
            self._emit(extra=extra)
