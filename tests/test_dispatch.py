"""Progress dispatch (DESIGN §3): the four paths, main-loop resolution, payloads, order, errors.

Every test asserts on the thread and loop a callback actually ran on, with real threads and loops.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from conftest import WAIT, AppLoop, Gate, running_loop, wait_until

from quiv_nb import Quiv


class Recorder:
    """A progress callback (sync or async) that records payload, thread and running loop."""

    def __init__(self, expect: int = 1) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any], threading.Thread, Any]] = []
        self.expect = expect
        self.done = Gate()

    def record(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.calls.append((args, kwargs, threading.current_thread(), running_loop()))
        if len(self.calls) >= self.expect:
            self.done.set()

    def sync(self, *args: Any, **kwargs: Any) -> None:
        self.record(args, kwargs)

    async def async_(self, *args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0)  # a real await: proves a loop is driving the coroutine
        self.record(args, kwargs)

    def callback(self, kind: str) -> Any:
        return self.sync if kind == "sync" else self.async_


def sync_handler(_progress_hook: Any) -> threading.Thread:
    _progress_hook("tick")
    return threading.current_thread()


async def async_handler(_progress_hook: Any) -> tuple[threading.Thread, Any]:
    loop = asyncio.get_running_loop()
    _progress_hook("tick")
    # The handler's own loop is back in place after a nested temporary loop, and still works.
    assert asyncio.get_running_loop() is loop
    await asyncio.sleep(0)
    return threading.current_thread(), loop


def run_one(q: Quiv, handler: Any, callback: Any) -> Any:
    tid = q.add_task("t", handler, run_once=True, progress_callback=callback)
    job = q.wait_for_task(tid, timeout=WAIT)
    assert job.status == "completed", job.error_message
    return job.result


# ---------------------------------------------------------------- the four paths


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("handler", [sync_handler, async_handler], ids=["sync-handler", "async-handler"])
def test_with_main_loop_callbacks_run_on_that_loop(app: AppLoop, quiv_factory: Any, kind: str, handler: Any) -> None:
    q = quiv_factory(main_loop=app.loop)
    rec = Recorder()
    run_one(q, handler, rec.callback(kind))
    rec.done.wait()
    (args, kwargs, thread, loop) = rec.calls[0]
    assert (args, kwargs) == (("tick",), {})
    assert thread is app.thread
    assert loop is app.loop


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("via", ["start", "add_task"])
def test_main_loop_is_captured_lazily_from_a_caller_inside_it(
    app: AppLoop, quiv_factory: Any, kind: str, via: str
) -> None:
    q = quiv_factory(start=False)  # built on a thread with no loop, like a module-level Quiv()
    rec = Recorder()
    if via == "start":
        app.call(q.start)
        tid = q.add_task("t", sync_handler, run_once=True, progress_callback=rec.callback(kind))
    else:
        q.start()
        tid = app.call(
            lambda: q.add_task("t", sync_handler, run_once=True, progress_callback=rec.callback(kind))
        )
    q.wait_for_task(tid, timeout=WAIT)
    rec.done.wait()
    (_, _, thread, loop) = rec.calls[0]
    assert thread is app.thread
    assert loop is app.loop


def test_no_main_loop_sync_callback_runs_directly_on_the_worker(quiv: Quiv) -> None:
    rec = Recorder()
    worker = run_one(quiv, sync_handler, rec.sync)
    (_, _, thread, loop) = rec.calls[0]
    assert thread is worker
    assert thread.name.startswith("quiv_nb-worker")
    assert loop is None


def test_no_main_loop_async_callback_runs_in_a_temporary_loop_on_the_worker(quiv: Quiv) -> None:
    rec = Recorder()
    worker = run_one(quiv, sync_handler, rec.async_)
    (_, _, thread, loop) = rec.calls[0]
    assert thread is worker
    assert loop is not None and loop.is_closed()  # temporary: closed once the callback finished


def test_no_main_loop_sync_callback_of_async_handler_runs_inline_in_its_loop(quiv: Quiv) -> None:
    rec = Recorder()
    worker, handler_loop = run_one(quiv, async_handler, rec.sync)
    (_, _, thread, loop) = rec.calls[0]
    assert thread is worker
    assert loop is handler_loop


def test_no_main_loop_async_callback_of_async_handler_nests_a_temporary_loop(quiv: Quiv) -> None:
    rec = Recorder()
    worker, handler_loop = run_one(quiv, async_handler, rec.async_)
    (_, _, thread, loop) = rec.calls[0]
    assert thread is worker
    assert loop is not None and loop is not handler_loop


def test_async_handler_never_runs_on_the_main_loop(app: AppLoop, quiv_factory: Any) -> None:
    q = quiv_factory(main_loop=app.loop)
    worker, handler_loop = run_one(q, async_handler, None)
    assert worker is not app.thread
    assert handler_loop is not app.loop


# ---------------------------------------------------------------- main-loop resolution


def test_a_worker_loop_is_never_taken_as_the_main_loop(quiv: Quiv) -> None:
    """An async handler calling the scheduler from its own loop must not make that loop "main"."""
    rec = Recorder()

    async def spawner() -> str:
        quiv.start()  # both calls reveal a running loop, but it is a worker's
        inner = quiv.add_task("inner", sync_handler, run_once=True, progress_callback=rec.sync)
        # Keep this loop running while the inner job reports: a callback routed here would run now.
        for _ in range(int(WAIT / 0.005)):
            if rec.calls:
                break
            await asyncio.sleep(0.005)
        return inner

    inner = run_one(quiv, spawner, None)
    job = quiv.wait_for_task(inner, timeout=WAIT)
    assert job.status == "completed"
    (_, _, thread, loop) = rec.calls[0]
    assert thread is job.result  # ran on the inner job's worker, directly
    assert loop is None


def test_a_closed_cached_loop_is_dropped_and_resolution_restarts(quiv_factory: Any) -> None:
    q = quiv_factory(start=False)
    landed: list[tuple[Any, Any]] = []

    async def session() -> None:
        here = asyncio.get_running_loop()
        got = asyncio.Event()

        def cb(*_: Any) -> None:
            landed.append((here, running_loop()))
            got.set()

        q.start()
        tid = q.add_task("t", sync_handler, run_once=True, progress_callback=cb, replace=True)
        await q.await_task(tid, timeout=WAIT)
        await asyncio.wait_for(got.wait(), WAIT)

    # Explicit loops rather than asyncio.run: a patched asyncio.run (nest_asyncio2) may reuse one.
    for _ in range(2):
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(session())
        finally:
            loop.close()
    assert len(landed) == 2
    assert landed[0][0] is not landed[1][0]
    assert all(expected is actual for expected, actual in landed)


def test_asyncio_run_twice_with_the_same_quiv(quiv_factory: Any) -> None:
    q = quiv_factory(start=False)
    landed: list[bool] = []

    async def session() -> None:
        got = asyncio.Event()
        here = asyncio.get_running_loop()

        def cb(*_: Any) -> None:
            landed.append(running_loop() is here)
            got.set()

        q.start()
        tid = q.add_task("t", sync_handler, run_once=True, progress_callback=cb, replace=True)
        await q.await_task(tid, timeout=WAIT)
        await asyncio.wait_for(got.wait(), WAIT)

    asyncio.run(session())
    asyncio.run(session())
    assert landed == [True, True]


def test_explicit_main_loop_that_closed_falls_back_to_the_worker(quiv_factory: Any) -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    q = quiv_factory(main_loop=loop)
    rec = Recorder()
    worker = run_one(q, sync_handler, rec.sync)
    assert rec.calls[0][2] is worker


# ---------------------------------------------------------------- payload and order


@pytest.mark.parametrize("main", [False, True], ids=["no-main-loop", "main-loop"])
def test_payload_is_forwarded_exactly(app: AppLoop, quiv_factory: Any, main: bool) -> None:
    q = quiv_factory(main_loop=app.loop if main else None)
    rec = Recorder(expect=4)
    marker = object()

    def handler(_progress_hook: Any) -> None:
        _progress_hook()
        _progress_hook(1, 2)
        _progress_hook(step=3, total=10)
        _progress_hook(marker, stage="x", extra=None)

    run_one(q, handler, rec.sync)
    rec.done.wait()
    assert [(a, k) for a, k, _, _ in rec.calls] == [
        ((), {}),
        ((1, 2), {}),
        ((), {"step": 3, "total": 10}),
        ((marker,), {"stage": "x", "extra": None}),
    ]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_ten_thousand_callbacks_arrive_in_hook_order_on_the_main_loop(
    app: AppLoop, quiv_factory: Any, kind: str
) -> None:
    q = quiv_factory(main_loop=app.loop)
    n = 10_000
    seen: list[int] = []
    done = Gate()

    def sync_cb(i: int) -> None:
        seen.append(i)
        if i == n - 1:
            done.set()

    async def async_cb(i: int) -> None:
        sync_cb(i)

    def handler(_progress_hook: Any) -> None:
        for i in range(n):
            _progress_hook(i)

    run_one(q, handler, sync_cb if kind == "sync" else async_cb)
    done.wait()
    assert seen == list(range(n))


def test_hook_without_callback_returns_at_once(quiv: Quiv) -> None:
    def handler(_progress_hook: Any) -> int:
        for i in range(100_000):
            assert _progress_hook(i, stage="s") is None
        return 1

    assert run_one(quiv, handler, None) == 1


def test_hook_never_waits_for_a_busy_main_loop(app: AppLoop, quiv_factory: Any) -> None:
    """With the main loop blocked, the handler still finishes; callbacks catch up afterwards."""
    q = quiv_factory(main_loop=app.loop)
    unblock = Gate()
    app.loop.call_soon_threadsafe(unblock.wait)  # the app loop is now busy
    rec = Recorder(expect=100)

    def handler(_progress_hook: Any) -> None:
        for i in range(100):
            _progress_hook(i)

    try:
        run_one(q, handler, rec.sync)
        assert rec.calls == []
    finally:
        unblock.set()
    rec.done.wait()
    assert [c[0] for c in rec.calls] == [(i,) for i in range(100)]


# ---------------------------------------------------------------- failing callbacks


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("main", [False, True], ids=["no-main-loop", "main-loop"])
def test_failing_callback_is_logged_with_traceback_and_job_completes(
    app: AppLoop, quiv_factory: Any, caplog: pytest.LogCaptureFixture, kind: str, main: bool
) -> None:
    q = quiv_factory(main_loop=app.loop if main else None)
    second = Gate()

    def sync_cb(n: int) -> None:
        if n == 1:
            raise RuntimeError("callback boom")
        second.set()

    async def async_cb(n: int) -> None:
        await asyncio.sleep(0)
        sync_cb(n)

    def handler(_progress_hook: Any) -> str:
        _progress_hook(1)
        _progress_hook(2)
        return "ok"

    with caplog.at_level(logging.ERROR, logger="quiv_nb"):
        assert run_one(q, handler, sync_cb if kind == "sync" else async_cb) == "ok"
        second.wait()  # the callback after the failing one still ran
    failures = [r for r in caplog.records if r.exc_info and "callback boom" in str(r.exc_info[1])]
    assert failures, [r.getMessage() for r in caplog.records]
    assert "progress callback" in failures[0].getMessage()


def test_callback_may_call_back_into_the_scheduler(app: AppLoop, quiv_factory: Any) -> None:
    """Callbacks never run under the scheduler's lock, so re-entering it cannot deadlock."""
    q = quiv_factory(main_loop=app.loop)
    snapshots: list[Any] = []
    got = Gate()

    def cb(*_: Any) -> None:
        snapshots.append(q.get_all_tasks())
        got.set()

    run_one(q, sync_handler, cb)
    got.wait()
    wait_until(lambda: snapshots)


# ---------------------------------------------------------------- floods: pacing, interleaved producers


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_concurrent_floods_sharing_a_callback_arrive_whole_and_in_order_per_job(
    app: AppLoop, quiv_factory: Any, kind: str
) -> None:
    """Payloads are queued as (entry, args, kwargs) triples: concurrent producers never interleave a triple."""
    q = quiv_factory(pool_size=4, main_loop=app.loop)
    n, jobs = 20_000, 4
    seen: dict[int, list[int]] = {k: [] for k in range(jobs)}
    count = [0]
    done = Gate()

    def sync_cb(k: int, *, i: int) -> None:
        seen[k].append(i)
        count[0] += 1
        if count[0] == n * jobs:
            done.set()

    async def async_cb(k: int, *, i: int) -> None:
        sync_cb(k, i=i)

    def handler(_progress_hook: Any, k: int) -> None:
        for i in range(n):
            _progress_hook(k, i=i)

    cb = sync_cb if kind == "sync" else async_cb
    ids = [q.add_task(f"flood{k}", handler, run_once=True, kwargs={"k": k}, progress_callback=cb) for k in range(jobs)]
    for tid in ids:
        assert q.wait_for_task(tid, timeout=WAIT).status == "completed"
    done.wait()
    assert all(seen[k] == list(range(n)) for k in range(jobs))


def test_a_flood_against_a_blocked_loop_is_paced_not_stopped(app: AppLoop, quiv_factory: Any) -> None:
    """Far ahead of its loop, a worker sleeps briefly now and then (handing over the GIL), never waits for it."""
    q = quiv_factory(main_loop=app.loop)
    unblock = Gate()
    app.loop.call_soon_threadsafe(unblock.wait)  # the app loop is now busy
    n = 50_000
    rec = Recorder(expect=n)

    def handler(_progress_hook: Any) -> None:
        for i in range(n):
            _progress_hook(i)

    try:
        run_one(q, handler, rec.sync)  # ~190 pauses of 0.2 ms: well within WAIT
        assert rec.calls == []
    finally:
        unblock.set()
    rec.done.wait()
    assert [c[0] for c in rec.calls] == [(i,) for i in range(n)]
