"""The shortcuts the core takes for speed behave exactly like the slow paths they replace.

No timings here (benchmarks/ measures those): ids, the handler-spec cache, the lazily built
stop-event Condition, the worker pool's idle tokens and the scheduler's yielding lock.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from conftest import WAIT, Gate

from quiv_nb import ConfigurationError, Quiv
from quiv_nb.execution import StopEvent
from quiv_nb.locks import YieldingRLock as _YieldingRLock
from quiv_nb.pool import ThreadPool
from quiv_nb.records import new_id as _new_id
from quiv_nb.tasks import handler_spec as _handler_spec


def test_ids_are_unique_version_4_uuid_strings_from_any_thread() -> None:
    ids: list[str] = []

    def take() -> None:
        ids.extend(_new_id() for _ in range(2_000))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert len(ids) == len(set(ids)) == 8_000
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_handler_spec_cache_follows_arguments_and_function_changes() -> None:
    def handler(a: int, _stop_event: Any = None) -> None:
        return None

    spec = _handler_spec(handler, (1,), {})
    assert spec is _handler_spec(handler, (1,), {})  # cached
    assert spec.inject == (("_stop_event", "stop_event"),)
    with pytest.raises(ConfigurationError):
        _handler_spec(handler, (), {})  # same function, another shape: checked, not served from cache
    with pytest.raises(ConfigurationError):
        _handler_spec(handler, (1, 2, 3), {})

    def other(_progress_hook: Any) -> None:
        return None

    handler.__code__ = other.__code__  # a changed signature is not served stale
    handler.__defaults__ = None
    assert _handler_spec(handler, (), {}).inject == (("_progress_hook", "progress_hook"),)
    with pytest.raises(ConfigurationError):
        _handler_spec(handler, (1,), {})


def test_handler_spec_cache_skips_wrapped_functions() -> None:
    import functools

    def inner(_job_id: str) -> None:
        return None

    @functools.wraps(inner)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        return inner(*args, **kwargs)

    assert _handler_spec(wrapper, (), {}).inject == (("_job_id", "job_id"),)  # follows __wrapped__


def test_stop_event_condition_is_built_on_first_use_and_works_across_threads() -> None:
    event = StopEvent()
    assert event._waiters_cond is None and not event.is_set()  # white-box: no Condition until a wait
    woke = Gate()

    def waiter() -> None:
        if event.wait(WAIT):
            woke.set()

    t = threading.Thread(target=waiter)
    t.start()
    event.set("cancel")
    woke.wait()
    t.join(WAIT)
    assert event.is_set() and event.reason == "cancel" and event.wait(0)
    with pytest.raises(AttributeError):
        event.no_such_attribute  # noqa: B018 - the lazy attribute hook must not swallow typos


def test_pool_reuses_idle_workers_and_never_exceeds_its_size() -> None:
    pool = ThreadPool(3, name="quiv_nb-test-pool")
    try:
        for _ in range(20):  # sequential: one worker comes free before each submit
            assert pool.submit(lambda: 1).result(WAIT) == 1
        assert len(pool.threads) <= 2  # a token can trail its job by a moment; never one thread per job
        release = threading.Event()
        futures = [pool.submit(release.wait, WAIT) for _ in range(10)]
        assert len(pool.threads) <= 3
        release.set()
        assert all(f.result(WAIT) for f in futures)
    finally:
        assert pool.shutdown(WAIT) == []


def test_yielding_lock_is_a_reentrant_lock_that_conditions_accept() -> None:
    lock = _YieldingRLock()
    with lock, lock:  # re-entrant
        assert lock._is_owned()
    assert lock.acquire(False)
    got: list[bool] = []
    t = threading.Thread(target=lambda: got.extend([lock.acquire(False), lock.acquire(True, 0.01)]))
    t.start()
    t.join(WAIT)
    assert got == [False, False]  # held by this thread: non-blocking and timed acquires fail
    lock.release()

    cond = threading.Condition(lock)
    ready, done = Gate(), Gate()

    def waiter() -> None:
        with cond:
            ready.set()
            if cond.wait(WAIT):
                done.set()

    t = threading.Thread(target=waiter)
    t.start()
    ready.wait()
    with cond:
        cond.notify()
    done.wait()
    t.join(WAIT)


def test_contended_scheduler_lock_still_excludes(quiv: Quiv) -> None:
    counter = [0]

    def bump() -> None:
        for _ in range(2_000):
            with quiv._lock:
                value = counter[0]
                counter[0] = value + 1

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert counter[0] == 8_000


def test_snapshots_built_without_init_are_complete_frozen_dataclasses(quiv: Quiv) -> None:
    import dataclasses

    from quiv_nb import Job, Task

    tid = quiv.add_task("t", lambda: 7, run_once=True, delay=3600)
    task = quiv.get_task(tid)
    assert set(vars(task)) == {f.name for f in dataclasses.fields(Task)}
    assert task == Task(**vars(task)) and repr(task) == repr(Task(**vars(task)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.task_name = "other"  # type: ignore[misc]
    job = quiv.wait_for_job(quiv.run_task_immediately(tid), timeout=WAIT)
    assert set(vars(job)) == {f.name for f in dataclasses.fields(Job)}
    assert job == Job(**vars(job)) and hash(job.job_id) == hash(Job(**vars(job)).job_id)
    assert dataclasses.replace(job, result=8).result == 8 and job.result == 7
