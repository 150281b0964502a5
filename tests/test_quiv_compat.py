"""quiv compatibility and reliability fixes (issue 9 items 2-4, issue 12 item 9 core part).

Each test here fails on the scheduler as it was before these fixes: waiters that gave up stayed
registered, a handler setting its own stop event ended "completed", run-now on a queued task raised,
a sync callback's coroutine was dropped, waits after shutdown raised the wrong error, stop-event
callbacks could run twice, cancel said "cancelled" for jobs it could not stop, `notify` was unknown.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import tracemalloc
from typing import Any

import pytest
from conftest import WAIT, AppLoop, Gate, running_loop, wait_until

from quiv_nb import ConfigurationError, Quiv, SchedulerStoppedError, TaskRunningError
from quiv_nb.execution import StopEvent

# ---------------------------------------------------------------- waiters that give up are forgotten


def test_ten_thousand_timed_out_waits_leave_waiters_and_memory_flat(quiv: Quiv) -> None:
    tid = quiv.add_task("daily", lambda: None, interval=86_400, delay=86_400)
    paused = quiv.add_task("paused", lambda: None, interval=86_400, delay=86_400)
    quiv.pause_task(paused)

    def burst(n: int) -> None:
        for i in range(n):
            with pytest.raises(TimeoutError):
                quiv.wait_for_task(tid if i % 2 else paused, timeout=0)

    burst(1_000)  # warm-up: caches, free lists
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        burst(10_000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert quiv.stats().waiters == 0
    assert grown < 200_000, f"{grown} bytes kept after 10,000 timed-out waits"  # one future each would be ~10 MB


def test_timed_out_and_cancelled_awaits_are_forgotten(quiv: Quiv) -> None:
    tid = quiv.add_task("daily", lambda: None, interval=86_400, delay=86_400)

    async def main() -> None:
        for _ in range(100):
            with pytest.raises(TimeoutError):
                await quiv.await_task(tid, timeout=0.001)
        waiting = asyncio.ensure_future(quiv.await_task(tid))
        await asyncio.sleep(0.01)
        assert quiv.stats().waiters == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(main())
    assert quiv.stats().waiters == 0


def test_a_job_wait_that_times_out_is_forgotten_and_the_job_still_ends(quiv: Quiv) -> None:
    release = Gate()
    tid = quiv.add_task("slow", lambda: release.wait(), run_once=True)
    job_id = quiv.get_task(tid).last_job_id
    with pytest.raises(TimeoutError):
        quiv.wait_for_job(job_id, timeout=0.01)
    assert quiv.stats().waiters == 0
    release.set()
    assert quiv.wait_for_job(job_id, timeout=WAIT).status == "completed"


# ---------------------------------------------------------------- a handler that sets its own stop event


def test_a_handler_that_sets_its_own_stop_event_ends_cancelled_with_its_result(quiv: Quiv) -> None:
    def handler(_stop_event: Any) -> str:
        _stop_event.set()
        return "stopped early"

    job = quiv.wait_for_task(quiv.add_task("t", handler, run_once=True), timeout=WAIT)
    assert (job.status, job.result, job.error_message) == ("cancelled", "stopped early", "cancelled")


# ---------------------------------------------------------------- run now on a full pool


def test_run_now_on_a_full_pool_queues_the_run(quiv_factory: Any) -> None:
    q = quiv_factory(pool_size=1)
    release = Gate()
    q.add_task("hog", lambda: release.wait(), run_once=True)
    tid = q.add_task("t", lambda: "ran", interval=3600)  # its first job is queued behind the hog
    queued = q.get_task(tid).last_job_id
    assert q.get_job(queued).status == "scheduled"
    assert q.run_task_immediately(tid) == queued  # the run asked for is the queued one: no raise
    other = q.add_task("u", lambda: "ran too", interval=3600, delay=3600)
    job_id = q.run_task_immediately(other)  # nothing queued for it: a new job, queued too
    assert q.get_job(job_id).status == "scheduled"
    release.set()
    assert q.wait_for_job(queued, timeout=WAIT).result == "ran"
    assert q.wait_for_job(job_id, timeout=WAIT).result == "ran too"


def test_run_now_while_the_task_runs_still_raises(quiv: Quiv) -> None:
    started, release = Gate(), Gate()
    tid = quiv.add_task("t", lambda: (started.set(), release.wait()), interval=3600)
    started.wait()
    with pytest.raises(TaskRunningError):
        quiv.run_task_immediately(tid)
    release.set()


# ---------------------------------------------------------------- awaitables returned by sync callbacks


def _coroutine_callback(seen: list[Any], done: Gate, expect: int) -> Any:
    async def record(value: Any) -> None:
        await asyncio.sleep(0)  # a real await: proves a loop drives it
        seen.append((value, running_loop()))
        if len(seen) == expect:
            done.set()

    return lambda step: record(step)  # sync: returns a coroutine


def test_a_sync_callback_returning_a_coroutine_is_awaited_on_the_main_loop_in_order(
    app: AppLoop, quiv_factory: Any, recwarn: pytest.WarningsRecorder
) -> None:
    q = quiv_factory(main_loop=app.loop)
    seen: list[Any] = []
    done = Gate()

    def handler(_progress_hook: Any) -> None:
        for i in range(200):
            _progress_hook(i)

    q.wait_for_task(q.add_task("t", handler, run_once=True, progress_callback=_coroutine_callback(seen, done, 200)))
    done.wait()
    assert [v for v, _ in seen] == list(range(200))
    assert all(loop is app.loop for _, loop in seen)
    gc.collect()
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


def test_a_sync_callback_returning_a_coroutine_without_a_main_loop_is_awaited_on_the_worker(quiv: Quiv) -> None:
    seen: list[Any] = []
    done = Gate()
    tid = quiv.add_task(
        "t",
        lambda _progress_hook: _progress_hook(1),
        run_once=True,
        progress_callback=_coroutine_callback(seen, done, 1),
    )
    quiv.wait_for_task(tid, timeout=WAIT)
    done.wait()
    assert seen[0][0] == 1 and seen[0][1] is not None


def test_a_sync_listener_returning_a_coroutine_is_awaited(app: AppLoop, quiv_factory: Any) -> None:
    from quiv_nb import Event

    q = quiv_factory(main_loop=app.loop)
    seen: list[Any] = []
    done = Gate()
    record = _coroutine_callback(seen, done, 1)
    q.add_listener(Event.JOB_COMPLETED, lambda event, task, job: record(job.result))
    q.wait_for_task(q.add_task("t", lambda: 5, run_once=True), timeout=WAIT)
    done.wait()
    assert seen == [(5, app.loop)]


# ---------------------------------------------------------------- waits after shutdown


def test_waits_after_shutdown_raise_scheduler_stopped(quiv_factory: Any) -> None:
    q = quiv_factory()
    tid = q.add_task("t", lambda: 1, run_once=True)
    job = q.wait_for_task(tid, timeout=WAIT)
    q.shutdown(timeout=5)
    for wait in (lambda: q.wait_for_job(job.job_id, timeout=1), lambda: q.wait_for_task(tid, timeout=1)):
        with pytest.raises(SchedulerStoppedError):
            wait()
    with pytest.raises(SchedulerStoppedError):
        asyncio.run(q.await_job(job.job_id, timeout=1))
    with pytest.raises(SchedulerStoppedError):
        asyncio.run(q.await_task(tid, timeout=1))
    assert q.get_job(job.job_id).result == 1  # reading history stays possible


def test_a_waiter_of_a_job_abandoned_at_shutdown_gets_scheduler_stopped(quiv_factory: Any) -> None:
    q = quiv_factory(pool_size=1)
    started, release = Gate(), threading.Event()
    tid = q.add_task("stubborn", lambda: (started.set(), release.wait(WAIT)), run_once=True)  # ignores stop
    started.wait()
    job_id = q.get_task(tid).last_job_id
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            q.wait_for_job(job_id, timeout=WAIT)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=waiter, name="test-waiter")
    thread.start()
    wait_until(lambda: q.stats().waiters)
    q.shutdown(timeout=0.05)  # the handler ignores its stop event: abandoned
    thread.join(WAIT)
    release.set()  # let the abandoned worker finish, so no thread outlives the test
    assert len(errors) == 1 and isinstance(errors[0], SchedulerStoppedError), errors
    assert q.get_job(job_id).status == "cancelled"  # history still says how it was left


# ---------------------------------------------------------------- StopEvent


def _race_set_and_on_set() -> tuple[StopEvent, list[int]]:
    """8 threads register a callback while 4 set the event, all released at once."""
    event = StopEvent()
    counts = [0] * 8
    barrier = threading.Barrier(12)

    def register(i: int) -> None:
        barrier.wait()
        event.on_set(lambda: counts.__setitem__(i, counts[i] + 1))

    def setter() -> None:
        barrier.wait()
        event.set("cancel")

    threads = [threading.Thread(target=register, args=(i,)) for i in range(8)]
    threads += [threading.Thread(target=setter) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    return event, counts


def test_stop_event_callbacks_run_exactly_once_under_racing_set_and_on_set() -> None:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race window is a few bytecodes
    try:
        for _ in range(300):
            event, counts = _race_set_and_on_set()
            assert counts == [1] * 8
            assert event.is_set() and event.reason == "cancel"
    finally:
        sys.setswitchinterval(old)


def test_stop_event_is_an_event_without_threading_internals() -> None:
    event = StopEvent()
    assert isinstance(event, threading.Event)
    assert not hasattr(event, "_flag") and not hasattr(event, "_cond")
    assert event.wait(0) is False
    event.set("timeout")
    event.set("cancel")  # the first reason stays
    assert event.wait(0) is True and event.reason == "timeout"
    event.clear()
    assert not event.is_set()


# ---------------------------------------------------------------- honest cancel


def test_cancel_of_a_handler_that_cannot_see_it_is_recorded_truthfully(quiv: Quiv) -> None:
    started, release = Gate(), threading.Event()
    tid = quiv.add_task("blind", lambda: (started.set(), release.wait(WAIT), "finished")[-1], run_once=True)
    started.wait()
    job_id = quiv.get_task(tid).last_job_id
    assert quiv.can_cancel(job_id) is False  # the magic and the dashboard can say so at once
    assert quiv.cancel_job(job_id) is True  # requested (the job was running)
    release.set()
    job = quiv.wait_for_job(job_id, timeout=WAIT)
    assert (job.status, job.result, job.error_message, job.cancel_requested) == ("completed", "finished", None, True)


def test_cancel_of_handlers_that_can_see_it(quiv_factory: Any) -> None:
    q = quiv_factory(pool_size=1)
    started = Gate()

    def watcher(_stop_event: Any) -> str:
        started.set()
        _stop_event.wait(WAIT)
        return "saw it"

    async def sleeper() -> None:
        await asyncio.sleep(WAIT)

    tid = q.add_task("watcher", watcher, run_once=True)
    queued_tid = q.add_task("queued", lambda: None, run_once=True)  # behind the watcher: pool of 1
    started.wait()
    job_id, queued = q.get_task(tid).last_job_id, q.get_task(queued_tid).last_job_id
    assert q.can_cancel(job_id) and q.can_cancel(queued)
    assert q.cancel_job(job_id) and q.cancel_job(queued)
    job = q.wait_for_job(job_id, timeout=WAIT)
    assert (job.status, job.result, job.cancel_requested) == ("cancelled", "saw it", True)
    assert q.wait_for_job(queued, timeout=WAIT).status == "cancelled"
    assert q.can_cancel(job_id) is False  # finished

    atid = q.add_task("async", sleeper, run_once=True)
    ajob = q.get_task(atid).last_job_id
    wait_until(lambda: q.get_job(ajob).status == "running")
    assert q.can_cancel(ajob)
    q.cancel_job(ajob)
    assert q.wait_for_job(ajob, timeout=WAIT).status == "cancelled"
    assert q.can_cancel("no-such-job") is False


# ---------------------------------------------------------------- notify


def test_notify_is_stored_and_validated(quiv: Quiv) -> None:
    tid = quiv.add_task("t", lambda: None, interval=3600, delay=3600, notify=True)
    assert quiv.get_task(tid).notify is True
    assert quiv.get_task(quiv.add_task("u", lambda: None, interval=3600, delay=3600)).notify is False
    with pytest.raises(ConfigurationError, match="notify"):
        quiv.add_task("v", lambda: None, interval=3600, notify="yes")  # type: ignore[arg-type]
