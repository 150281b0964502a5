"""Running one job: injection by signature, sync/async bodies, cancel, timeout and retries."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from conftest import WAIT, Gate

from quiv_nb import ConfigurationError, Event, Quiv

# ---------------------------------------------------------------- injection


def run_once(q: Quiv, handler: Any, **kwargs: Any) -> Any:
    tid = q.add_task("t", handler, run_once=True, **kwargs)
    return q.wait_for_task(tid, timeout=WAIT)


def test_underscore_spellings_are_injected(quiv: Quiv) -> None:
    def handler(_stop_event: Any, _progress_hook: Any, _job_id: str) -> tuple[Any, ...]:
        return _stop_event, _progress_hook, _job_id

    job = run_once(quiv, handler)
    stop, hook, job_id = job.result
    assert isinstance(stop, threading.Event) and not stop.is_set()
    assert callable(hook)
    assert job_id == job.job_id


def test_quiv1_spellings_are_injected(quiv: Quiv) -> None:
    def handler(stop_event: Any, progress_hook: Any, job_id: str) -> tuple[Any, ...]:
        return stop_event, progress_hook, job_id

    job = run_once(quiv, handler)
    stop, hook, job_id = job.result
    assert isinstance(stop, threading.Event)
    assert callable(hook)
    assert job_id == job.job_id


def test_only_the_declared_names_are_injected(quiv: Quiv) -> None:
    def handler(x: int, *, _job_id: str) -> tuple[int, str]:
        return x, _job_id

    job = run_once(quiv, handler, args=(7,))
    assert job.status == "completed", job.error_message
    assert job.result == (7, job.job_id)


def test_handler_with_var_kwargs_gets_nothing_injected(quiv: Quiv) -> None:
    def handler(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        return args, kwargs

    assert run_once(quiv, handler).result == ((), {})
    assert run_once(quiv, handler, args=(1,), kwargs={"a": 2}).result == ((1,), {"a": 2})


@pytest.mark.parametrize("name", ["_stop_event", "stop_event", "_progress_hook", "progress_hook", "_job_id", "job_id"])
def test_kwargs_colliding_with_an_injected_name_are_rejected(quiv: Quiv, name: str) -> None:
    def handler(**kwargs: Any) -> None:
        pass

    with pytest.raises(ConfigurationError, match=name):
        quiv.add_task("t", handler, run_once=True, kwargs={name: 1})
    assert quiv.get_all_tasks() == []


def test_both_spellings_of_one_name_are_rejected(quiv: Quiv) -> None:
    def handler(_stop_event: Any, stop_event: Any) -> None:
        pass

    with pytest.raises(ConfigurationError, match="both spellings"):
        quiv.add_task("t", handler, run_once=True)


@pytest.mark.parametrize(
    ("source", "suggestion"),
    [
        ("def h(_progress_hok): pass", "_progress_hook"),
        ("def h(_stop_evnt): pass", "_stop_event"),
        ("def h(x, _jobid): pass", "_job_id"),
        ("def h(_progress_hok=None): pass", "_progress_hook"),  # a default must not hide the typo
    ],
)
def test_misspelled_injected_name_suggests_the_right_one(quiv: Quiv, source: str, suggestion: str) -> None:
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    with pytest.raises(ConfigurationError, match=f"did you mean '{suggestion}'"):
        quiv.add_task("t", namespace["h"], run_once=True, args=(1,) if "x," in source else ())
    assert quiv.get_all_tasks() == []


def test_ordinary_parameters_with_defaults_are_left_alone(quiv: Quiv) -> None:
    def handler(job_ids: Any = None, stop: Any = None) -> tuple[Any, Any]:
        return job_ids, stop

    assert run_once(quiv, handler).result == (None, None)


def test_args_that_do_not_fit_the_signature_are_rejected(quiv: Quiv) -> None:
    def handler(a: int) -> None:
        pass

    with pytest.raises(ConfigurationError, match="cannot be called"):
        quiv.add_task("t", handler, run_once=True, args=(1, 2))


# ---------------------------------------------------------------- sync and async bodies


def test_sync_and_async_handlers_return_results(quiv: Quiv) -> None:
    def sync_handler(a: int, b: int = 0) -> int:
        return a + b

    async def async_handler(a: int, b: int = 0) -> int:
        await asyncio.sleep(0)
        return a * b

    assert run_once(quiv, sync_handler, args=(2,), kwargs={"b": 3}).result == 5
    assert run_once(quiv, async_handler, args=(2,), kwargs={"b": 3}).result == 6


def test_lambda_returning_a_coroutine_is_awaited(quiv: Quiv) -> None:
    async def body() -> str:
        await asyncio.sleep(0)
        return "awaited"

    assert run_once(quiv, lambda: body()).result == "awaited"


@pytest.mark.parametrize("exc", [ValueError("bad value"), SystemExit(3), KeyboardInterrupt()])
def test_a_raising_handler_fails_the_job_not_the_worker(quiv: Quiv, exc: BaseException) -> None:
    def handler() -> None:
        raise exc

    job = run_once(quiv, handler)
    assert job.status == "failed"
    assert type(exc).__name__ in job.error_message
    assert type(exc).__name__ in job.traceback and "raise exc" in job.traceback
    assert run_once(quiv, lambda: "still alive").result == "still alive"


# ---------------------------------------------------------------- cancel


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_cancel_job_is_cooperative(quiv: Quiv, kind: str) -> None:
    started = Gate()

    def sync_handler(_stop_event: Any) -> str:
        started.set()
        assert _stop_event.wait(WAIT)
        return "stopped"

    async def async_handler(_stop_event: Any) -> str:
        started.set()
        while not _stop_event.is_set():
            await asyncio.sleep(0.005)
        return "stopped"

    tid = quiv.add_task("t", sync_handler if kind == "sync" else async_handler, run_once=True)
    started.wait()
    job_id = quiv.get_task(tid).last_job_id
    assert quiv.get_job(job_id).status == "running"
    assert quiv.cancel_job(job_id) is True
    job = quiv.wait_for_job(job_id, timeout=WAIT)
    assert job.status == "cancelled"
    assert quiv.cancel_job(job_id) is False  # already finished
    assert quiv.cancel_job("no-such-job") is False


def test_cancel_of_a_queued_job_skips_its_body(quiv_factory: Any) -> None:
    q = quiv_factory(pool_size=1)
    release, ran = Gate(), []
    first = q.add_task("busy", lambda: release.wait(), run_once=True)
    second = q.add_task("queued", lambda: ran.append(1), run_once=True)
    queued_job = q.get_task(second).last_job_id
    assert q.get_job(queued_job).status == "scheduled"
    assert q.cancel_job(queued_job) is True
    release.set()
    assert q.wait_for_job(queued_job, timeout=WAIT).status == "cancelled"
    assert q.wait_for_task(first, timeout=WAIT).status == "completed"
    assert ran == []


# ---------------------------------------------------------------- timeout


def test_timeout_sets_the_stop_event_and_cancels_the_job(quiv: Quiv) -> None:
    saw_stop: list[bool] = []

    def handler(_stop_event: Any) -> None:
        saw_stop.append(_stop_event.wait(WAIT))

    t0 = time.monotonic()
    job = run_once(quiv, handler, timeout=0.1)
    assert time.monotonic() - t0 < WAIT / 2
    assert saw_stop == [True]
    assert job.status == "cancelled"
    assert "timed out" in job.error_message


def test_timeout_cancels_an_async_handler_that_has_no_stop_event(quiv: Quiv) -> None:
    outcome = []

    async def handler() -> None:
        try:
            await asyncio.sleep(WAIT)
            outcome.append("reached the end")
        except asyncio.CancelledError:
            outcome.append("task cancelled")
            raise

    t0 = time.monotonic()
    job = run_once(quiv, handler, timeout=0.1)
    assert time.monotonic() - t0 < WAIT / 2
    assert job.status == "cancelled"
    assert "timed out" in job.error_message
    assert outcome == ["task cancelled"]


def test_a_job_within_its_timeout_completes(quiv: Quiv) -> None:
    assert run_once(quiv, lambda: 1, timeout=WAIT).status == "completed"


# ---------------------------------------------------------------- retries


def test_retries_with_backoff_then_final_failure_keeps_traceback(quiv: Quiv) -> None:
    attempts: list[tuple[float, float]] = []
    retrying: list[Any] = []
    failed: list[Any] = []
    all_failed = Gate()

    def on_failed(event: Event, task: Any, job: Any) -> None:
        failed.append(job)
        if len(failed) == 3:
            all_failed.set()

    quiv.add_listener(Event.JOB_RETRYING, lambda event, task, job: retrying.append(job))
    quiv.add_listener(Event.JOB_FAILED, on_failed)

    def handler() -> None:
        start = time.monotonic()
        attempts.append((start, time.monotonic()))  # (start, end): the body is just this raise
        raise RuntimeError(f"attempt {len(attempts)}")

    quiv.add_task("flaky", handler, run_once=True, max_retries=2, retry_backoff=0.01)
    all_failed.wait()
    assert len(attempts) == 3
    assert [j.attempt for j in failed] == [0, 1, 2]
    assert [j.attempt for j in retrying] == [0, 1]
    # Attempt n+1 starts no sooner than backoff * 2**n after attempt n ended.
    for n in range(2):
        assert attempts[n + 1][0] - attempts[n][1] >= 0.01 * 2**n * 0.9
    final = failed[-1]
    assert final.status == "failed"
    assert "RuntimeError: attempt 3" in final.error_message
    assert "Traceback" in final.traceback and "RuntimeError" in final.traceback
    wait_gone = quiv.wait_for_task(final.task_id, timeout=WAIT)  # run-once: finished, its last job
    assert wait_gone.job_id == final.job_id


def test_a_retry_that_succeeds_completes(quiv: Quiv) -> None:
    calls = []
    done = Gate()
    quiv.add_listener(Event.JOB_COMPLETED, lambda event, task, job: done.set())

    def handler() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first time")
        return len(calls)

    tid = quiv.add_task("flaky", handler, run_once=True, max_retries=3, retry_backoff=0.01)
    done.wait()
    job = quiv.wait_for_task(tid, timeout=WAIT)
    assert (job.status, job.result, job.attempt) == ("completed", 2, 1)


def test_a_cancelled_job_is_not_retried(quiv: Quiv) -> None:
    started = Gate()
    runs = []

    def handler(_stop_event: Any) -> None:
        runs.append(1)
        started.set()
        _stop_event.wait(WAIT)
        raise RuntimeError("stopped")

    tid = quiv.add_task("t", handler, interval=3600, max_retries=3, retry_backoff=0.01)
    started.wait()
    job_id = quiv.get_task(tid).last_job_id
    quiv.cancel_job(job_id)
    assert quiv.wait_for_job(job_id, timeout=WAIT).status == "cancelled"
    # A retry would be due within 0.01 s; the next run is the hourly slot.
    next_run = quiv.get_task(tid).next_run_at
    assert next_run is not None and (next_run - datetime.now(timezone.utc)).total_seconds() > 3000
    assert runs == [1]
