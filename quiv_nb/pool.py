"""Where job bodies run by default: a small pool of daemon threads behind the `JobExecutor` seam."""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Executor, Future
from queue import SimpleQueue
from typing import Any, Callable

from .errors import ConfigurationError
from .execution import JobCall, Outcome, run_call
from .seams import JobExecutor

__all__ = ["PoolExecutor", "ThreadPool", "as_job_executor"]


class ThreadPool:
    """A small pool of daemon threads.

    Not `ThreadPoolExecutor`: its threads are joined at interpreter exit, so one handler that
    ignores its stop event would hang a kernel shutdown or restart forever. Ours are daemons,
    started lazily up to `size`, and `shutdown(timeout)` waits at most `timeout`.
    """

    def __init__(self, size: int, name: str = "quiv_nb-worker") -> None:
        self._size = size
        self._name = name
        self._queue: SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        # One token per job a worker finished, at most `size`: a submit that takes one knows a
        # worker came free and starts no thread. A deque, not a Semaphore: its append/pop are
        # atomic, with no Python-level Condition for workers and submitters to contend on.
        self._idle: deque[None] = deque()
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("pool is shut down")
            self._queue.put((future, fn, args))
            if self._idle:  # only submitters pop, under self._lock: the check holds until the pop
                self._idle.pop()
            elif len(self._threads) < self._size:
                thread = threading.Thread(target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        return future

    def _work(self) -> None:
        get, idle, size = self._queue.get, self._idle, self._size
        while True:
            item = get()
            if item is None:
                return
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:
                    future.set_exception(exc)
            del item, future, fn, args
            if len(idle) < size:
                idle.append(None)

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        return tuple(self._threads)

    def shutdown(self, timeout: float | None = None) -> list[str]:
        import time

        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        # Called from a job (a handler or a worker-side listener shutting the scheduler down),
        # the calling worker cannot join itself; it exits on its sentinel once that job returns.
        me = threading.current_thread()
        threads = [t for t in threads if t is not me]
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return [t.name for t in threads if t.is_alive()]


class PoolExecutor:
    """The default `JobExecutor`: job bodies on a `ThreadPool` (or any `concurrent.futures.Executor`)."""

    def __init__(self, pool: ThreadPool | Executor) -> None:
        self._pool = pool

    def submit(self, call: JobCall) -> Future[Outcome]:
        return self._pool.submit(run_call, call)

    def shutdown(self, timeout: float | None = None) -> list[str]:
        if isinstance(self._pool, ThreadPool):
            return self._pool.shutdown(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        return []


def as_job_executor(executor: Any, pool_size: int) -> JobExecutor:
    """Accept None (our pool), a `JobExecutor`, or a plain `concurrent.futures.Executor`."""
    if executor is None:
        return PoolExecutor(ThreadPool(pool_size))
    if isinstance(executor, Executor):
        return PoolExecutor(executor)
    if isinstance(executor, JobExecutor):
        return executor
    raise ConfigurationError(
        "executor must be None, a concurrent.futures.Executor, or a quiv_nb JobExecutor "
        f"(e.g. quiv_nb.dask.DaskExecutor), got {type(executor).__name__}"
    )
