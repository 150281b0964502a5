"""A cached step's hit: the job's result comes from the store instead of the executor.

The lifecycle decides under the scheduler lock that a stored result exists for the job's key
(a dict lookup) and calls `reuse_result`, which returns the job's future and the effect that
resolves it once the lock is released: it reads and unpickles the result there (on the thread
that runs the effects), marks the job running and cached, and resolves the future with the
result. If the file turns out to be missing or damaged, the job is submitted to the executor
after all, as an uncached run. Deciding before submitting is what makes this the same for every
executor (Dask included).

A fresh run's key digests its upstream results, pickling those no cached step returned; pickling
runs the results' own code (`__reduce__`), so `keyed_submit` computes the key after the lock is
released and only then submits the job, which stays "scheduled" meanwhile.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import TYPE_CHECKING, Any, Callable

from .eventbus import run_effects
from .execution import Outcome, failure
from .models import JobStatus
from .records import utcnow

if TYPE_CHECKING:
    import threading

    from .execution import JobCall
    from .records import JobRecord, TaskRecord
    from .seams import Effect, JobExecutor, JobStore

__all__ = ["keyed_submit", "reuse_result"]


def _chain(source: concurrent.futures.Future[Outcome], target: concurrent.futures.Future[Outcome]) -> None:
    try:
        target.set_result(source.result())
    except BaseException as exc:  # cancelled or failed: an outcome, as executors give
        target.set_result(Outcome(False, error_message="cancelled before it started", cancelled=True)
                          if source.cancelled() else failure(exc))  # fmt: skip


def reuse_result(
    lock: threading.RLock,
    store: JobStore,
    executor: JobExecutor,
    job: JobRecord,
    call: JobCall,
    key: str,
) -> tuple[concurrent.futures.Future[Outcome], Callable[[], None]]:
    """(the job's future, the effect that resolves it from the store); call with the lock held."""
    fut: concurrent.futures.Future[Outcome] = concurrent.futures.Future()

    def resolve() -> None:
        if not fut.set_running_or_notify_cancel():
            return  # cancelled while queued: its done-callback already finalized it
        found, result, computed_at = store.load_result(key)
        with lock:
            if job.stop_event.is_set() or job.status is not JobStatus.SCHEDULED:
                outcome: Any = Outcome(False, error_message="cancelled before it started", cancelled=True)
            elif found:
                job.status, job.started_at, job.t0 = JobStatus.RUNNING, utcnow(), time.perf_counter()
                job.cached, job.computed_at = True, computed_at
                outcome = Outcome(True, result=result)
            else:
                try:  # the stored result is gone or damaged: run the step after all
                    real = executor.submit(call)
                except Exception as exc:
                    outcome = failure(exc)
                else:
                    outcome = real
        if isinstance(outcome, Outcome):
            fut.set_result(outcome)
        else:
            outcome.add_done_callback(lambda f: _chain(f, fut))

    return fut, resolve


def keyed_submit(
    lock: threading.RLock,
    store: JobStore,
    task: TaskRecord,
    job: JobRecord,
    upstream: dict[str, Any],
    submit: Callable[[], list[Effect]],
    stopped: Callable[[], bool],
) -> Effect:
    """The effect that keys a fresh run of cached step `task` and then calls `submit()` (lock held).

    Made under the lock, run after it is released (the thread that runs the lifecycle's effects):
    the key is computed there, then the lock is taken to set `job.cache_key` and submit. A job that
    ended meanwhile is left alone; one of a scheduler shutting down is left to `abandon_unfinished`.
    """

    def run() -> None:
        key = store.step_key(task, upstream)  # may pickle upstream results: no lock held
        with lock:
            if job.status is not JobStatus.SCHEDULED or job.future is not None or stopped():
                return
            job.cache_key = key
            effects = submit()
        run_effects(effects)

    return run
