"""Shared fixtures for the scheduler-core tests: real threads and loops, no mocks.

`app` stands in for an application's event loop (a notebook kernel's loop) by running an asyncio
loop on a dedicated thread, so tests can tell "ran on the main loop" from "ran on a worker".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from quiv_nb import Event, Job, Quiv

# No test writes to the user's real store (the kernel's per-user default under the Jupyter data
# directory): kernels, Jupyter servers and notebooks started by tests inherit this. A test that
# wants a store passes a temporary path (`Quiv(store=...)`, `KernelSession(store=...)`).
os.environ["QUIV_NB_STORE"] = "off"

# Generous: the CI box has two cores shared with other engineers' test runs.
WAIT = 10.0


def quiv_threads() -> list[threading.Thread]:
    """Threads quiv_nb owns per scheduler; the process-wide render pump is allowed to outlive tests."""
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith("quiv_nb-") and not t.name.startswith("quiv_nb-render") and t.is_alive()
    ]


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a quiv_nb thread running after its schedulers shut down.

    Threads alive before the test are ignored so one leak is reported once, not by every later test.
    """
    before = set(quiv_threads())
    yield
    deadline = time.monotonic() + 2.0  # a joined-with-timeout thread may still be returning
    leaked = [t for t in quiv_threads() if t not in before]
    while leaked and time.monotonic() < deadline:
        time.sleep(0.01)
        leaked = [t for t in quiv_threads() if t not in before]
    if leaked:
        pytest.fail(f"test leaked quiv_nb threads: {sorted(t.name for t in leaked)}")


@dataclass
class AppLoop:
    """An asyncio loop running forever on its own thread (the "app loop")."""

    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = WAIT) -> Any:
        """Run `fn(*args)` as a plain callback on the loop's thread and return its result."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return fut.result(timeout)

    def run(self, coro: Any, timeout: float = WAIT) -> Any:
        """Run a coroutine as a task on the loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@pytest.fixture
def app() -> Iterator[AppLoop]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    thread = threading.Thread(target=main, name="app-loop", daemon=True)
    thread.start()
    assert ready.wait(WAIT)
    yield AppLoop(loop, thread)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(WAIT)
    loop.close()


@pytest.fixture
def quiv_factory() -> Iterator[Callable[..., Quiv]]:
    """Make schedulers (started unless start=False); every one is shut down after the test."""
    made: list[Quiv] = []

    def make(*, start: bool = True, **kwargs: Any) -> Quiv:
        kwargs.setdefault("pool_size", 4)
        q = Quiv(**kwargs)
        made.append(q)
        if start:
            q.start()
        return q

    yield make
    for q in reversed(made):
        q.shutdown(timeout=5)


@pytest.fixture
def quiv(quiv_factory: Callable[..., Quiv]) -> Quiv:
    """A started scheduler with no main loop (the test thread runs none)."""
    return quiv_factory()


def wait_until(predicate: Callable[[], Any], timeout: float = WAIT, interval: float = 0.005) -> Any:
    """Poll `predicate` until it is truthy; fail the test on timeout. For state no event signals."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running on this thread, or None (never creates one)."""
    return asyncio._get_running_loop()


class Gate:
    """A `threading.Event` that fails the test instead of hanging when never set."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self, *args: Any, **kwargs: Any) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float = WAIT) -> None:
        if not self._event.wait(timeout):
            pytest.fail(f"gate not opened within {timeout}s")


def pytest_collection_modifyitems(config, items):
    """Run the browser tests last.

    Playwright's sync API drives its own event loop from the main thread; while it is open that
    loop reads as "running" there, and a scheduler created by a later test would take it for the
    application's main loop. The browser fixture is module-scoped (its loop closes after each
    browser module), and putting those modules last keeps every other test away from it.
    """
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


def next_job(q: Quiv, name: str) -> concurrent.futures.Future[Job]:
    """The next job of the task named `name` to end, whatever its status.

    Registered before the run is triggered, so it cannot miss a job that ends at once (which
    `wait_for_task`, waiting for the task's *next* job, could).
    """
    fut: concurrent.futures.Future[Job] = concurrent.futures.Future()

    def listener(event: Event, task: Any, job: Job) -> None:
        if job.task_name == name:
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                fut.set_result(job)

    for event in (Event.JOB_COMPLETED, Event.JOB_FAILED, Event.JOB_CANCELLED, Event.JOB_SKIPPED):
        q.add_listener(event, listener)
    return fut


def ended_event(q: Quiv, task_id: str) -> threading.Event:
    """Set when a job of `task_id` completes (registered before the run, so it cannot be missed)."""
    ended = threading.Event()
    q.add_listener(Event.JOB_COMPLETED, lambda e, t, j: j.task_id == task_id and ended.set())
    return ended
