"""Nothing but quiv_nb's own bookkeeping runs under the scheduler lock (docs/design.md, Core).

The scheduler's lock is instrumented: every scheduler made here gets a lock class that remembers
its instances, and each piece of foreign code that the scheduler calls (a renderer's three
methods, a listener, a logging handler, a stop-event callback, a progress callback) records
whether the calling thread held any of them. Every path that ends a job is driven: success,
failure with a retry, a pipeline skip, cancel, timeout, removal and shutdown.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import WAIT, Gate

import quiv_nb.scheduler as scheduler_module
from quiv_nb import Event, Quiv
from quiv_nb.locks import YieldingRLock
from quiv_nb.render.text import TextBar

_locks: list[YieldingRLock] = []


class _RecordedLock(YieldingRLock):
    """The scheduler's own lock type, remembering each instance so a test can ask who holds it."""

    __slots__ = ()

    def __init__(self) -> None:
        _locks.append(self)


def _held() -> bool:
    # `_is_owned` is what `threading.Condition` asks a lock (C RLock and Python RLock alike).
    return any(lock._is_owned() for lock in _locks)


class Calls:
    """What ran, and whether the scheduler lock was held on that thread when it did."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seen: list[tuple[str, bool]] = []

    def note(self, what: str) -> None:
        held = _held()
        with self._lock:
            self.seen.append((what, held))

    def under_lock(self) -> list[str]:
        with self._lock:
            return [what for what, held in self.seen if held]

    def kinds(self) -> set[str]:
        with self._lock:
            return {what for what, _ in self.seen}


class SpyBar(TextBar):
    """A real text bar whose scheduler-facing methods note the lock before doing their work."""

    def __init__(self, calls: Calls) -> None:
        super().__init__(file=io.StringIO())
        self.calls = calls
        self.finished: list[str] = []

    def quiv_progress(self, job_id: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.calls.note("renderer.quiv_progress")
        super().quiv_progress(job_id, args, kwargs)

    def quiv_job_started(self, job: Any) -> None:
        self.calls.note("renderer.quiv_job_started")
        super().quiv_job_started(job)

    def quiv_job_finished(self, job: Any) -> None:
        self.calls.note("renderer.quiv_job_finished")
        self.finished.append(job.job_id)
        super().quiv_job_finished(job)


class SpyHandler(logging.Handler):
    def __init__(self, calls: Calls) -> None:
        super().__init__(logging.DEBUG)
        self.calls = calls

    def emit(self, record: logging.LogRecord) -> None:
        self.calls.note("logging handler")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Calls]:
    monkeypatch.setattr(scheduler_module, "YieldingRLock", _RecordedLock)
    calls = Calls()
    handler = SpyHandler(calls)
    logger = logging.getLogger("quiv_nb")
    logger.addHandler(handler)
    yield calls
    logger.removeHandler(handler)
    _locks.clear()


def _listen_to_everything(q: Quiv, calls: Calls) -> None:
    for event in Event:
        q.add_listener(event, lambda event, *rest: calls.note(f"listener {event.value}"))


def test_the_instrumentation_sees_the_lock(calls: Calls, quiv_factory: Any) -> None:
    """The check can fail: holding the scheduler's lock is seen as held."""
    quiv_factory()
    with _locks[0]:
        calls.note("inside")
    assert calls.under_lock() == ["inside"]


def test_no_foreign_code_runs_under_the_scheduler_lock(calls: Calls, quiv_factory: Any) -> None:
    q = quiv_factory()
    _listen_to_everything(q, calls)
    bar = SpyBar(calls)

    # Success, with progress, a renderer and every listener.
    def ok(_progress_hook: Any) -> int:
        _progress_hook(step=1, total=2)
        return 1

    job = q.wait_for_task(q.add_task("ok", ok, run_once=True, progress_callback=bar, delay=0.05), timeout=WAIT)
    assert job.status == "completed"
    assert job.job_id in bar.finished  # the renderer knew the end before the wait returned

    # Failure with a retry (logged), then a pipeline skip downstream of the final failure.
    def boom() -> None:
        raise RuntimeError("boom")

    q.add_task("up", boom, run_once=True, max_retries=1, retry_backoff=0.01, delay=0.05)
    q.add_task("down", ok, after="up", progress_callback=bar)
    skipped = threading.Event()
    q.add_listener(Event.JOB_SKIPPED, lambda *a: skipped.set())
    assert skipped.wait(WAIT)

    # Cancel, timeout, removal and shutdown each set a stop event with a callback on it.
    started = {name: Gate() for name in ("cancel", "timeout", "remove", "shutdown")}

    def waits(_stop_event: Any, _job_id: str) -> None:
        _stop_event.on_set(lambda: calls.note("stop-event callback"))
        started[name_of[_job_id]].set()
        _stop_event.wait(WAIT)

    name_of: dict[str, str] = {}
    ids = {}
    for name in started:
        ids[name] = q.add_task(name, waits, run_once=True, timeout=0.2 if name == "timeout" else None,
                               delay=3600)  # fmt: skip
        name_of[q.run_task_immediately(ids[name])] = name
    for gate in started.values():
        gate.wait()
    q.cancel_job(q.get_task(ids["cancel"]).last_job_id)
    q.remove_task(ids["remove"])
    assert q.wait_for_task(ids["timeout"], timeout=WAIT).status == "cancelled"
    q.shutdown(timeout=WAIT)

    kinds = calls.kinds()
    for expected in (
        "renderer.quiv_progress", "renderer.quiv_job_started", "renderer.quiv_job_finished", "logging handler",
        "stop-event callback", "listener job_completed", "listener job_failed", "listener job_retrying",
        "listener job_skipped", "listener job_cancelled", "listener task_removed",
    ):  # fmt: skip
        assert expected in kinds, f"{expected} never ran: the test did not drive that path"
    assert calls.under_lock() == [], f"ran while the scheduler lock was held: {calls.under_lock()}"


class Noted:
    """A result whose pickling and unpickling is user code: each notes whether the scheduler lock is held."""

    calls: Calls | None = None

    def __init__(self, value: int) -> None:
        self.value = value

    def __reduce__(self) -> tuple[Any, ...]:
        if Noted.calls is not None:
            Noted.calls.note("pickle")
        return _rebuild, (self.value,)


def _rebuild(value: int) -> Noted:
    if Noted.calls is not None:
        Noted.calls.note("unpickle")
    return Noted(value)


def test_the_store_and_maps_run_no_foreign_code_under_the_lock(
    calls: Calls, quiv_factory: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached step's key (over an upstream result's pickle), its stored result and a hit's load pickle
    and unpickle user objects; maps report to a renderer. None of it runs under the lock."""
    monkeypatch.setattr(Noted, "calls", calls)
    path = tmp_path / "s.db"

    def up() -> Noted:
        return Noted(2)

    def down(_upstream: dict[str, Any]) -> Noted:
        return Noted(_upstream["up"].value * 3)

    for _round in range(2):  # the second scheduler reuses the stored result of `down`
        q = quiv_factory(store=path)
        _listen_to_everything(q, calls)
        bar = SpyBar(calls)
        q.add_task("up", up, run_once=True, delay=0.05)  # uncached: keyed by the digest of its result's pickle
        down_id = q.add_task("down", down, after="up", cache=True, progress_callback=bar)
        job = q.wait_for_task(down_id, timeout=WAIT)
        assert job.status == "completed" and job.result.value == 6
        assert job.cached is (_round == 1)
        mapped = q.wait_for_job(q.map(lambda x: x + 1, range(20), progress_callback=bar), timeout=WAIT)
        assert mapped.result == list(range(1, 21))
        q.add_task("items", lambda: [1, 2, 3], run_once=True, delay=0.05)
        each = q.add_task("each", lambda x, k: x * k, after="items", map=True, args=(10,), progress_callback=bar)
        assert q.wait_for_task(each, timeout=WAIT).result == [10, 20, 30]
        q.shutdown(timeout=WAIT)

    kinds = calls.kinds()
    for expected in ("pickle", "unpickle", "renderer.quiv_progress", "renderer.quiv_job_finished"):
        assert expected in kinds, f"{expected} never ran: the test did not drive that path"
    assert calls.under_lock() == [], f"ran while the scheduler lock was held: {calls.under_lock()}"
