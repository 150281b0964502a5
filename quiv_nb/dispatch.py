"""Progress and listener dispatch: the four paths (README, "Progress callbacks") and main-loop resolution.

A worker calls `Dispatcher.deliver(...)`; it never waits on the main loop. With a main loop the
payload goes into one FIFO per loop, drained on the loop in batches (one wake-up per batch rather
than one per payload), so a handler flooding its hook neither blocks nor lags the loop. Async
callbacks are awaited one after another by a single drainer task per loop, which keeps them in
hook order and creates no task per payload.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import weakref
from collections import deque
from typing import Any, Callable, NamedTuple

from .hooks import loop_resolvers

__all__ = ["Dispatcher", "MainLoop", "await_awaitable", "in_worker", "noop_hook", "worker_scope"]

_log = logging.getLogger("quiv_nb")

# Threads that run job bodies mark themselves here, so their loops (an async handler's own
# loop) are never mistaken for the application's main loop.
_worker_state = threading.local()
# Every loop created on a worker thread; checked again on resolution in case one leaks out.
_worker_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()

# How long one drain may hold the main loop before yielding to other callbacks (seconds). A
# waiting probe (or the next cell) runs within about two budgets once the loop has the GIL, so
# this is kept small: 4 ms gave a 100k async flood a ~11 ms median loop lag, 1 ms about 2 ms
# (benchmarks/bench_async_flood.py, before pacing); a yield costs one loop turn (~10 µs).
_DRAIN_BUDGET = 0.001
# Pacing of a thread that floods the loop faster than it drains: once more than `_BACKLOG`
# payloads wait, every `_PACE_EVERY`-th one sleeps `_PACE` seconds on the producing thread. The
# sleep hands the GIL to the loop thread, which otherwise gets it back only after CPython's 5 ms
# switch interval, once per loop turn: a 100k async flood's loop-lag p99 went from ~14 ms to
# ~2 ms, at no cost in delivered throughput (benchmarks/bench_async_flood.py, bench_hooks.py).
_BACKLOG, _PACE_EVERY, _PACE = 1000, 256, 0.0002


def noop_hook(*args: Any, **kwargs: Any) -> None:
    """The `_progress_hook` of a job whose task has no progress callback (executors may compare by identity)."""
    return None


def in_worker() -> bool:
    """True on a thread that is running a job body."""
    return getattr(_worker_state, "active", False)


class worker_scope:
    """Mark the current thread as a worker for the duration of a `with` block."""

    __slots__ = ("_prev",)

    def __enter__(self) -> None:
        self._prev = in_worker()
        _worker_state.active = True

    def __exit__(self, *exc: object) -> None:
        _worker_state.active = self._prev


def new_worker_loop() -> asyncio.AbstractEventLoop:
    """Create an event loop for worker-side use; it is never taken as a main loop."""
    loop = asyncio.new_event_loop()
    _worker_loops.add(loop)
    return loop


def _usable(loop: asyncio.AbstractEventLoop | None) -> bool:
    return loop is not None and not loop.is_closed() and loop not in _worker_loops


def run_in_temporary_loop(coro: Any) -> Any:
    """Run `coro` to completion in a fresh loop on this thread, even inside a running loop.

    A worker running an async handler already has a running loop; asyncio refuses to start a
    second one there, so the running-loop marker is set aside for the nested run and restored.
    """
    outer = asyncio._get_running_loop()
    loop = new_worker_loop()
    if outer is not None:
        asyncio._set_running_loop(None)
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            if outer is not None:
                asyncio._set_running_loop(outer)


class MainLoop:
    """Lazily resolves the loop that callbacks run on (README, "Progress callbacks")."""

    def __init__(self, explicit: asyncio.AbstractEventLoop | None = None) -> None:
        self._explicit = explicit
        self._loop = explicit

    def note_caller(self) -> None:
        """Called by public methods: a non-worker caller inside a running loop reveals the main loop."""
        if self._explicit is not None or in_worker():
            return
        if self._loop is not None and not self._loop.is_closed():
            return
        loop = asyncio._get_running_loop()
        if _usable(loop):
            self._loop = loop

    def get(self) -> asyncio.AbstractEventLoop | None:
        """The main loop now, or None; a closed cached loop is dropped and resolution restarts."""
        loop = self._loop
        if loop is not None:
            if not loop.is_closed():
                return loop
            self._loop = None
            if loop is self._explicit:
                self._explicit = None
        if not in_worker():
            self.note_caller()
            if self._loop is not None:
                return self._loop
        for resolver in loop_resolvers():  # the kernel package registers the kernel's loop
            try:
                candidate = resolver()
            except Exception:
                _log.exception("quiv_nb: a main-loop resolver failed")
                continue
            if _usable(candidate):
                self._loop = candidate
                return candidate
        return None

    def running_here(self) -> asyncio.AbstractEventLoop | None:
        """The main loop if the calling thread is the one running it, else None."""
        loop = asyncio._get_running_loop()
        if loop is not None and loop is self.get():
            return loop
        return None


def is_async_callable(func: Callable[..., Any]) -> bool:
    """True for `async def` functions and objects whose `__call__` is `async def`."""
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - we want the bound method itself
    return call is not None and inspect.iscoroutinefunction(call)


class _Entry(NamedTuple):
    """What a queued payload is for; one per callback, shared by all of its queued payloads."""

    callback: Callable[..., Any]
    is_async: bool
    label: str


class _LoopQueue:
    """One FIFO of pending callbacks per main loop, drained on that loop in time-bounded batches."""

    def __init__(self, loop: asyncio.AbstractEventLoop, log: logging.Logger) -> None:
        self.loop = loop
        self._log = log
        # Each payload is three items in a row: the callback's shared entry (callback, is_async,
        # label), the args tuple and the kwargs dict. CPython stops tracking tuples and dicts that
        # hold only atomic values, so a flood's backlog holds no GC-tracked object per payload;
        # with one (a 5-tuple naming the callback) a 100k flood set off three full collections of
        # 15-30 ms each, the main lag left once dispatch itself yields every millisecond.
        # Async callbacks go straight to their own FIFO: no per-payload hop through `_drain`.
        self._items: deque[Any] = deque()
        self._async_items: deque[Any] = deque()
        # id(callback) -> its entry, so a flood reuses one entry; emptied whenever both FIFOs are.
        self._entries: dict[int, _Entry] = {}
        self._armed = False
        self._async_running = False
        self._lock = threading.Lock()

    def put(
        self, callback: Callable[..., Any], is_async: bool, args: tuple[Any, ...], kwargs: dict[str, Any], label: str
    ) -> None:
        """Queue one call (any thread; O(1), paced under a backlog). Raises RuntimeError if the loop is closed."""
        entry = self._entries.get(id(callback))
        if entry is None or entry[0] is not callback or entry[2] != label:
            entry = self._entries[id(callback)] = _Entry(callback, is_async, label)
        # One C call appends all three, so no other thread's payload can land in between.
        queue = self._async_items if is_async else self._items
        queue.extend((entry, args, kwargs))
        if not self._armed:
            with self._lock:
                arm, self._armed = not self._armed, True
            if arm:
                self.loop.call_soon_threadsafe(self._drain)
        n = len(queue)
        if n > 3 * _BACKLOG and not n % (3 * _PACE_EVERY) and asyncio._get_running_loop() is not self.loop:
            time.sleep(_PACE)

    def _drain(self) -> None:
        # Disarm before popping: an item appended after this point re-arms a new drain, and
        # one appended before it is popped below, so nothing is ever stranded.
        with self._lock:
            self._armed = False
        if self._async_items and not self._async_running:
            self._async_running = True
            self.loop.create_task(self._drain_async())
        items, pop = self._items, self._items.popleft
        deadline = time.perf_counter() + _DRAIN_BUDGET
        while items:
            entry = pop()
            if type(entry) is not _Entry:  # see `_realign`
                continue
            (callback, _, label), args, kwargs = entry, pop(), pop()
            try:
                result = callback(*args, **kwargs)
                if result is not None and inspect.isawaitable(result):
                    self._await_result(result, label)
            except KeyboardInterrupt:  # a Ctrl-C landing while a callback runs is the user's: let it out
                raise
            except BaseException:  # SystemExit too: out of a loop callback it would end the kernel
                self._log.exception("quiv_nb: %s raised; the job goes on", label)
            if items and time.perf_counter() > deadline:
                # Yield to the loop so other work (the next cell, I/O) is not starved.
                with self._lock:
                    if not self._armed:
                        self._armed = True
                        self.loop.call_soon(self._drain)
                return
        self._forget_entries_if_idle()

    def _await_result(self, awaitable: Any, label: str) -> None:
        """A sync callback returned an awaitable (e.g. a lambda around an async def): await it on
        this loop like an async callback's payload, behind the earlier ones, so results are
        awaited in hook order (as quiv does) and no coroutine is left "never awaited" (loop thread)."""
        entry = self._entries.get(id(await_awaitable))
        if entry is None or entry[2] != label:
            entry = self._entries[id(await_awaitable)] = _Entry(await_awaitable, True, label)
        self._async_items.extend((entry, (awaitable,), {}))
        if not self._async_running:
            self._async_running = True
            self.loop.create_task(self._drain_async())

    # `_realign`: a KeyboardInterrupt (Ctrl-C reaches the kernel's main thread, which runs the
    # loop) can land between the pops of one payload. Whatever of it is left at the head of a
    # FIFO is not an `_Entry` and is skipped, so that one payload is lost (as a payload popped
    # just before the interrupt always was) and the next ones stay aligned.

    def _forget_entries_if_idle(self) -> None:
        """Drop cached entries (and the callbacks they hold) once nothing is queued (loop thread)."""
        if not self._items and not self._async_items:
            self._entries.clear()

    async def _drain_async(self) -> None:
        items, pop = self._async_items, self._async_items.popleft
        try:
            last_yield = time.perf_counter()
            while items:
                entry = pop()
                if type(entry) is not _Entry:  # see `_realign`
                    continue
                (callback, _, label), args, kwargs = entry, pop(), pop()
                try:
                    await callback(*args, **kwargs)
                except (KeyboardInterrupt, asyncio.CancelledError):
                    raise
                except BaseException:  # as in `_drain`
                    self._log.exception("quiv_nb: %s raised; the job goes on", label)
                now = time.perf_counter()
                if now - last_yield > _DRAIN_BUDGET:
                    await asyncio.sleep(0)
                    last_yield = time.perf_counter()
        finally:
            self._async_running = False
            self._forget_entries_if_idle()
            if items:  # cancelled mid-way (loop closing): keep order for a later drain
                self._async_running = True
                try:
                    self.loop.create_task(self._drain_async())
                except RuntimeError:
                    self._async_running = False


async def await_awaitable(awaitable: Any) -> Any:
    """A coroutine that awaits `awaitable` (a future or any awaitable), for APIs that take coroutines only."""
    return await awaitable


class Dispatcher:
    """Delivers progress payloads and listener events along the four paths (README, "Progress callbacks")."""

    def __init__(self, main_loop: MainLoop, log: logging.Logger | None = None) -> None:
        self.main_loop = main_loop
        self._log = log or _log
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopQueue] = weakref.WeakKeyDictionary()
        self._queues_lock = threading.Lock()

    def _queue_for(self, loop: asyncio.AbstractEventLoop) -> _LoopQueue:
        queue = self._queues.get(loop)
        if queue is None:
            with self._queues_lock:
                queue = self._queues.get(loop)
                if queue is None:
                    queue = self._queues[loop] = _LoopQueue(loop, self._log)
        return queue

    def deliver(
        self,
        callback: Callable[..., Any],
        is_async: bool,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        label: str,
    ) -> None:
        """Hand one call of `callback(*args, **kwargs)` to the right thread; never raises, never waits.

        Runs on the caller's thread (usually a worker). With a main loop the call is queued for
        that loop; without one it runs here (async callbacks in a temporary loop). Never waits
        for the loop; a thread flooding it faster than it drains is only paced (`_PACE`).
        """
        loop = self.main_loop.get()
        if loop is not None:
            try:
                self._queue_for(loop).put(callback, is_async, args, kwargs, label)
                return
            except RuntimeError:  # closed between the check and the call: run it here instead
                pass
        try:
            if is_async:
                run_in_temporary_loop(callback(*args, **kwargs))
            else:
                result = callback(*args, **kwargs)
                if result is not None and inspect.isawaitable(result):  # awaited here, as on a loop
                    run_in_temporary_loop(await_awaitable(result))
        except (KeyboardInterrupt, asyncio.CancelledError):
            raise
        except BaseException:  # as in `_LoopQueue._drain`: a callback never fails the job
            self._log.exception("quiv_nb: %s raised; the job goes on", label)
