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


# ---------------------------------------------------------------- quiv's API surface (issue 20)


def test_get_all_tasks_lists_run_once_tasks_only_when_asked(quiv: Quiv) -> None:
    every = quiv.add_task("every", lambda: None, interval=3600, delay=3600)
    once = quiv.add_task("once", lambda: None, run_once=True, delay=3600)
    assert [t.task_id for t in quiv.get_all_tasks()] == [every]
    assert [t.task_id for t in quiv.get_all_tasks(include_run_once=True)] == [every, once]
    with pytest.raises(ConfigurationError, match="include_run_once"):
        quiv.get_all_tasks(include_run_once="yes")  # type: ignore[arg-type]


def test_args_must_be_a_tuple_as_in_quiv(quiv: Quiv) -> None:
    with pytest.raises(ConfigurationError, match=r"args must be a tuple, got list: pass a tuple, e\.g\. args=\(1, 2\)"):
        quiv.add_task("t", print, run_once=True, args=[1])  # type: ignore[arg-type]
    assert quiv.get_all_tasks(include_run_once=True) == []  # nothing half-registered
    assert quiv.wait_for_task(quiv.add_task("t", pow, run_once=True, args=(2, 5)), timeout=WAIT).result == 32


def test_run_now_before_start_queues_the_run_until_start(quiv_factory: Any) -> None:
    q = quiv_factory(start=False)
    ran = threading.Event()
    tid = q.add_task("later", ran.set, run_once=True, delay=3600)
    job_id = q.run_task_immediately(tid)
    assert q.get_job(job_id).status == "scheduled"
    assert not ran.wait(0.2)  # queued: nothing runs before start()
    q.start()
    assert q.wait_for_job(job_id, timeout=WAIT).status == "completed"
    assert ran.is_set()


def test_run_now_before_start_then_shutdown_cancels_the_queued_run(quiv_factory: Any) -> None:
    q = quiv_factory(start=False)
    job_id = q.run_task_immediately(q.add_task("never", lambda: None, interval=60))
    q.shutdown(timeout=WAIT)
    assert q.get_job(job_id).status == "cancelled"


def test_fixed_interval_false_plans_the_next_run_after_the_end(quiv: Quiv) -> None:
    gate = Gate()
    release = threading.Event()

    def work() -> None:
        gate.set()
        release.wait(WAIT)

    tid = quiv.add_task("from-end", work, interval=3600, fixed_interval=False)
    gate.wait()
    assert quiv.get_task(tid).next_run_at is None  # nothing planned while the job runs
    job_id = quiv.get_task(tid).last_job_id
    release.set()
    quiv.wait_for_job(job_id, timeout=WAIT)
    wait_until(lambda: quiv.get_task(tid).next_run_at is not None)
    job = quiv.get_job(job_id)
    assert job.ended_at is not None
    planned = quiv.get_task(tid).next_run_at
    assert planned is not None and 3590 < (planned - job.ended_at).total_seconds() < 3610
    with pytest.raises(ConfigurationError, match="fixed_interval"):
        quiv.add_task("bad", work, interval=1, fixed_interval="no")  # type: ignore[arg-type]


def test_fixed_interval_true_keeps_the_grid_of_the_first_run(quiv: Quiv) -> None:
    gate = Gate()
    tid = quiv.add_task("grid", gate.set, interval=3600)
    gate.wait()
    task = quiv.get_task(tid)
    job = quiv.wait_for_job(task.last_job_id, timeout=WAIT)
    assert task.next_run_at is not None and job.started_at is not None
    # Planned when the slot fired, before the job started: one interval after the slot.
    assert 3590 < (task.next_run_at - job.started_at).total_seconds() < 3600.5


def test_quiv_config_and_timezone(quiv_factory: Any) -> None:
    from datetime import timezone

    from quiv_nb import QuivConfig

    q = Quiv(config=QuivConfig(pool_size=2, history_retention_seconds=5, timezone="Asia/Tokyo"))
    positional = Quiv(QuivConfig(pool_size=3))
    try:
        assert q.stats().pool_size == 2 and positional.stats().pool_size == 3
        tid = q.add_task("daily", lambda: None, at="09:00")
        assert q.get_task(tid).timezone == "Asia/Tokyo"  # the scheduler's zone for a task that names none
        ny = q.add_task("ny", lambda: None, at="09:00", timezone="America/New_York")
        assert q.get_task(ny).timezone == "America/New_York"
    finally:
        q.shutdown(timeout=WAIT)
        positional.shutdown(timeout=WAIT)
    utc = quiv_factory(timezone=timezone.utc, start=False)
    assert utc.get_task(utc.add_task("u", lambda: None, cron="0 * * * *")).timezone == "UTC"
    with pytest.raises(ConfigurationError, match="pass pool_size inside config"):
        Quiv(pool_size=4, config=QuivConfig())
    with pytest.raises(ConfigurationError, match="timezone"):
        Quiv(timezone="Mars/Olympus")
    with pytest.raises(ConfigurationError, match="config must be"):
        Quiv(config={"pool_size": 2})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="pool_size"):
        Quiv(config=QuivConfig(pool_size=0))
