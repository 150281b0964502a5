"""Start, shutdown and what is left behind: threads, waiters, calls after shutdown, import cost."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from conftest import WAIT, Gate, quiv_threads, wait_until

from quiv_nb import Event, Quiv, QuivError, SchedulerStoppedError


def test_start_and_shutdown_are_idempotent() -> None:
    q = Quiv(pool_size=2)
    assert not q.is_running
    q.start()
    q.start()
    assert q.is_running
    assert [t.name for t in quiv_threads()].count("quiv_nb-scheduler") == 1
    q.shutdown(timeout=5)
    q.shutdown(timeout=5)
    q.stop()  # the alias
    assert not q.is_running


def test_shutdown_of_a_never_started_scheduler() -> None:
    q = Quiv()
    q.add_task("t", lambda: None, interval=1)
    q.shutdown(timeout=1)
    assert not q.is_running


def test_context_manager_starts_and_shuts_down() -> None:
    with Quiv(pool_size=1) as q:
        tid = q.add_task("t", lambda: 3, run_once=True)
        assert q.wait_for_task(tid, timeout=WAIT).result == 3
    assert not q.is_running
    assert quiv_threads() == []


def test_shutdown_leaves_no_thread_behind() -> None:
    q = Quiv(pool_size=3)
    q.start()
    started = threading.Barrier(4, timeout=WAIT)

    def handler(_stop_event: Any) -> None:
        started.wait()
        _stop_event.wait(WAIT)

    for i in range(3):
        q.add_task(f"t{i}", handler, interval=3600)
    started.wait()  # three workers busy, plus the scheduler thread
    assert len(quiv_threads()) >= 4
    t0 = time.monotonic()
    q.shutdown(timeout=5)
    assert time.monotonic() - t0 < 5
    assert quiv_threads() == []
    assert all(j.status == "cancelled" for j in q.get_all_jobs())


def test_shutdown_abandons_a_handler_that_ignores_its_stop_event(caplog: pytest.LogCaptureFixture) -> None:
    q = Quiv(pool_size=1)
    q.start()
    started, release = Gate(), Gate()
    worker: list[threading.Thread] = []

    def stubborn() -> None:
        worker.append(threading.current_thread())
        started.set()
        release.wait()  # no stop event: shutdown cannot reach it

    tid = q.add_task("stubborn", stubborn, run_once=True)
    started.wait()
    job_id = q.get_task(tid).last_job_id
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="quiv_nb"):
        q.shutdown(timeout=0.2)
    try:
        assert time.monotonic() - t0 < 2
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "abandoned" in r.getMessage()]
        assert warnings and worker[0].name in warnings[0].getMessage()
        job = q.get_job(job_id)
        assert job.status == "cancelled" and "abandoned" in job.error_message
        assert [t.name for t in quiv_threads()] == [worker[0].name]  # only the abandoned daemon worker
    finally:
        release.set()
        worker[0].join(WAIT)
    assert not worker[0].is_alive()
    assert q.get_job(job_id).status == "cancelled"  # the late return does not rewrite history


@pytest.mark.parametrize("where", ["handler", "listener"])
def test_shutdown_from_inside_a_job(quiv_factory: Any, where: str) -> None:
    """A worker cannot join itself: shutting down from a job (or a worker-side listener) must work."""
    q = quiv_factory()
    returned, errors = Gate(), []

    def stop_here(*_: Any) -> None:
        try:
            q.shutdown(timeout=WAIT)
        except BaseException as exc:
            errors.append(exc)
        finally:
            returned.set()

    if where == "listener":
        q.add_listener(Event.JOB_STARTED, stop_here)  # no main loop: runs on the worker
        q.add_task("t", lambda: None, run_once=True)
    else:
        q.add_task("t", stop_here, run_once=True)
    returned.wait()
    assert errors == []
    assert not q.is_running
    assert all(j.status.is_final for j in q.get_all_jobs())


def test_calls_after_shutdown_raise_scheduler_stopped(quiv_factory: Any) -> None:
    q = quiv_factory()
    tid = q.add_task("t", lambda: None, interval=3600, delay=3600)
    q.pause_task(tid)
    q.shutdown(timeout=5)
    with pytest.raises(SchedulerStoppedError):
        q.add_task("t2", lambda: None, run_once=True)
    with pytest.raises(SchedulerStoppedError):
        q.start()
    with pytest.raises(SchedulerStoppedError):
        q.run_task_immediately(tid)
    with pytest.raises(SchedulerStoppedError):
        q.resume_task(tid)
    with pytest.raises(SchedulerStoppedError):
        q.wait_for_task(tid, timeout=1)
    assert isinstance(SchedulerStoppedError("x"), QuivError)
    # Reading state stays possible.
    assert q.get_task(tid).task_name == "t"
    assert q.stats().is_running is False


def test_run_task_immediately_before_start_queues_the_run(quiv_factory: Any) -> None:
    """As quiv: the run waits for `start()` (issue 20; more in test_quiv_compat.py)."""
    q = quiv_factory(start=False)
    tid = q.add_task("t", lambda: None, interval=3600, delay=3600)
    job_id = q.run_task_immediately(tid)
    assert q.get_job(job_id).status == "scheduled"
    q.start()
    assert q.wait_for_job(job_id, timeout=10).status == "completed"


@pytest.mark.parametrize("how", ["wait_for_task", "await_task", "wait_for_job"])
def test_pending_waiters_get_scheduler_stopped(quiv_factory: Any, how: str) -> None:
    q = quiv_factory()
    tid = q.add_task("later", lambda: None, interval=3600, delay=3600)
    job_tid = q.add_task("now", lambda _stop_event: _stop_event.wait(WAIT), run_once=True)
    errors: list[BaseException | None] = []
    waiting = Gate()

    def waiter() -> None:
        try:
            waiting.set()
            if how == "wait_for_task":
                q.wait_for_task(tid, timeout=WAIT)
            elif how == "await_task":
                asyncio.run(q.await_task(tid, timeout=WAIT))
            else:
                job = q.wait_for_job(q.get_task(job_tid).last_job_id, timeout=WAIT)
                errors.append(None if job.status == "cancelled" else AssertionError(job))
                return
            errors.append(None)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=waiter, name="test-waiter")
    thread.start()
    waiting.wait()
    # White-box: make sure the waiter is registered (pending), not merely about to call.
    wait_until(lambda: q.stats().waiters)
    q.shutdown(timeout=5)
    thread.join(WAIT)
    assert not thread.is_alive()
    if how == "wait_for_job":
        assert errors == [None]  # a running job's waiter gets the job, ended as cancelled
    else:
        assert len(errors) == 1 and isinstance(errors[0], SchedulerStoppedError)


def test_import_is_display_free() -> None:
    """`import quiv_nb` (and running a job) must not pull in IPython, ipywidgets or tqdm."""
    code = (
        "import sys, quiv_nb\n"
        "q = quiv_nb.Quiv(pool_size=1); q.start()\n"
        "tid = q.add_task('t', lambda _progress_hook: _progress_hook(1), run_once=True, progress_callback=print)\n"
        "q.wait_for_task(tid, timeout=10); q.shutdown(timeout=5)\n"
        "print(sorted(m for m in ('IPython', 'ipywidgets', 'tqdm', 'ipykernel') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
