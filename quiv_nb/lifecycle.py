"""The job lifecycle: start a job for a due task, mark it running, finalize it, plan retries.

Everything here that changes state runs with the scheduler lock held, except the worker-side
entry points `on_start` / `on_done`, which take it. Like the rest of the core, state changes
return `Effect`s that run after the lock is released. The rules (which final status a job gets,
when a retry is due) are plain functions at the top, testable without threads.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from .dispatch import Dispatcher
from .eventbus import Effect, EventBus, InOrder, run_effects
from .execution import Outcome, StopEvent, failure
from .history import JobHistory
from .jobcalls import job_call
from .joblog import JobLog
from .models import Event, Job, JobStatus
from .pipeline import Pipeline, Run, Skip
from .records import JobRecord, TaskRecord, utcnow
from .reuse import keyed_submit, reuse_result
from .store.null import NULL_STORE
from .tasks import TaskTable
from .timeline import RETRY, RUN, TIMEOUT, Entry, Timeline
from .triggers import IntervalTrigger
from .waiters import Waiter, settle

if TYPE_CHECKING:
    from datetime import datetime

    from .execution import JobCall
    from .parts import SchedulerParts
    from .seams import Clock, JobExecutor, JobStore, ProgressSink
    from .waiters import Waiters

__all__ = ["JobLifecycle", "final_state", "retry_delay"]

_CANCEL_MESSAGES = {"cancel": "cancelled", "removed": "cancelled: its task was removed",
                    "shutdown": "cancelled: the scheduler shut down"}  # fmt: skip
_EVENT_FOR_STATUS = {
    JobStatus.COMPLETED: Event.JOB_COMPLETED,
    JobStatus.FAILED: Event.JOB_FAILED,
    JobStatus.CANCELLED: Event.JOB_CANCELLED,
    JobStatus.SKIPPED: Event.JOB_SKIPPED,
}


def _log_failure(log: logging.Logger, job: JobRecord, traceback: str | None) -> None:
    """Log a failed job with its traceback (lock released; the `extra` ids let output routing find its cell)."""
    log.error(
        "quiv_nb: job %s of task %r failed:\n%s", job.job_id, job.task_name, traceback,
        extra={"quiv_job_id": job.job_id, "quiv_task_id": job.task_id, "quiv_task_name": job.task_name},
    )  # fmt: skip


def _tell_started(log: logging.Logger, sink: ProgressSink, snap: Job) -> None:
    """Let a job's renderer open a run for it (lock released; O(1)); one that raises is logged, never fatal."""
    try:
        sink.quiv_job_started(snap)
    except Exception:
        log.exception("quiv_nb: renderer %r failed to record the start of a job", sink)


def _tell_finished(log: logging.Logger, sink: ProgressSink, snap: Job | None) -> None:
    """Let a job's renderer record its end (lock released; O(1)); one that raises is logged, never fatal."""
    try:
        sink.quiv_job_finished(snap)  # type: ignore[arg-type]  # built whenever there is a sink
    except Exception:
        log.exception("quiv_nb: renderer %r failed to record the end of a job", sink)


def _settle_all(waiters: tuple[list[Waiter[Job]], list[Waiter[Job]]], snap: Job | None) -> None:
    """Wake the waiters on a job and on its task's next job (lock released)."""
    for group in waiters:
        for fut in group:
            settle(fut, snap)


def retry_delay(backoff: float, failures: int) -> float:
    """Seconds before retry number `failures` (1 for the first): `backoff * 2**(failures - 1)`."""
    return backoff * 2 ** (failures - 1)


def final_state(
    outcome: Outcome, stop_reason: str | None, timeout: float | None, *, observable: bool = True
) -> tuple[JobStatus, Any, str | None, str | None]:
    """(status, result, error_message, traceback) of a job that ended with `outcome`.

    `stop_reason` is why its stop event was set ("cancel", "timeout", "removed", "shutdown", or ""
    when the handler set it itself), None if it was not set; `timeout` is the task's timeout,
    named in a timed-out job's message. A job whose stop event was set ends CANCELLED (keeping
    what it returned, as quiv does), except a `cancel_job` the handler could not observe
    (`observable` False: a sync handler without a stop-event parameter): it ran to its end, so
    it is recorded as it really ended. A failed job has no result, except a map whose items
    failed: its list, with each failed item's exception in its slot.
    """
    stopped = stop_reason is not None and (observable or stop_reason != "cancel")
    if outcome.cancelled or stopped:
        if stop_reason == "timeout":
            message = f"timed out after {timeout:g}s" if timeout is not None else "timed out"
        elif outcome.error_message and not outcome.ok:
            message = outcome.error_message
        else:
            message = _CANCEL_MESSAGES.get(stop_reason or "cancel", "cancelled")
        # A handler that saw its stop event and returned: keep what it said.
        return JobStatus.CANCELLED, outcome.result if outcome.ok else None, message, outcome.traceback
    if outcome.ok:
        return JobStatus.COMPLETED, outcome.result, None, None
    return JobStatus.FAILED, outcome.result, outcome.error_message, outcome.traceback  # a map's partial list


def _due_at(task: TaskRecord, due: float, now: float) -> datetime:
    """The aware wall-clock time of the slot due at monotonic `due` (fired at `now`)."""
    wall_time = getattr(task.trigger, "wall_time", None)
    at = wall_time(due) if wall_time is not None else None
    if at is not None:
        return at
    from datetime import timedelta  # loaded by `utcnow` already: a dict lookup

    return utcnow() - timedelta(seconds=now - due)


def _after_job(parts: SchedulerParts, task: TaskRecord, job: JobRecord, now: float, stopped: bool) -> bool:
    """What follows `job`'s end for `task` (lock held): free the task, plan a retry of a failed job or
    a from-end interval's next run, retire a finished run-once task; True if retrying."""
    if task.active_job == job.job_id:
        task.active_job = None
    retrying = False
    if job.status is JobStatus.FAILED and task.failures < task.max_retries and not stopped:
        task.failures += 1
        retrying = True
        due = now + retry_delay(task.retry_backoff, task.failures)
        parts.timeline.push(due, RETRY, task.task_id, task.gen)
        if task.next_due is None or due < task.next_due:
            task.next_due = due
    elif job.status is JobStatus.COMPLETED:
        task.failures = 0
    trigger = task.trigger
    if type(trigger) is IntervalTrigger and trigger.from_end and not retrying and not task.paused:
        following = trigger.after_end(now)  # `fixed_interval=False`: the next run counts from this job's end
        if following is not None and not stopped:
            task.gen += 1  # a slot planned meanwhile (a resume) goes stale: one next run
            parts.timeline.schedule(task, following)
    if task.run_once and not retrying:
        parts.tasks.discard(task)
        parts.history.remember_last_run(task.task_id, job.job_id)
    return retrying


class JobLifecycle:
    """Starts, tracks and finalizes jobs for the `Quiv` facade, under its lock."""

    def __init__(
        self,
        parts: SchedulerParts,
        executor: JobExecutor,
        dispatch: Dispatcher,
        log: logging.Logger,
        stopped: Callable[[], bool],
        clock: Clock = time.monotonic,
        store: JobStore = NULL_STORE,
    ) -> None:
        self._parts = parts
        self._lock = parts.lock
        self._tasks: TaskTable = parts.tasks
        self._history: JobHistory = parts.history
        self._timeline: Timeline = parts.timeline
        self._waiters: Waiters = parts.waiters
        self._bus: EventBus = parts.bus
        self._executor = executor
        self._dispatch = dispatch
        self._log = log
        self._stopped = stopped
        self._clock = clock  # what `now` is on the worker side (timeouts, ends); tests pass a fake one
        self._pipeline: Pipeline = parts.pipeline  # `after=` edges and their rule
        self._in_pipeline = self._pipeline.nodes.__contains__
        self._deferred: list[Callable[[], list[Effect]]] = []  # submissions of jobs asked for before `start()`
        self._store = store  # job records and cached results outlive the process there (`quiv_nb.store`)
        self._sink_calls = InOrder()  # renderers see a task's jobs start and end in the order they did

    # ------------------------------------------------------------------ scheduler side (lock held)

    def fire(self, task: TaskRecord, now: float, kind: int, *, due: float | None = None) -> list[Effect]:
        """A due slot of `task` (`kind` RUN or RETRY): plan its next slot, start a job unless one runs."""
        scheduled_at = None
        if kind == RUN:
            task.next_due = None
            if task.data_inject:  # `_scheduled_at`: read before the trigger plans past this slot
                scheduled_at = _due_at(task, now if due is None else due, now)
            nxt = task.trigger.next_due(now if due is None else due, now)
            if nxt is not None:
                self._timeline.schedule(task, nxt)
        if task.active_job is not None:
            return []
        if kind == RETRY:
            return self.start_job(task, now, attempt=task.failures)
        task.failures = 0
        return self.start_job(task, now, 0, {}, scheduled_at)

    def start_job(
        self,
        task: TaskRecord,
        now: float,
        attempt: int = 0,
        upstream: dict[str, Any] | None = None,
        scheduled_at: datetime | None = None,
        *,
        defer: bool = False,
    ) -> list[Effect]:
        """Create a job for `task` and submit it to the executor; the task is then busy.

        A fresh run (`upstream` given, `{}` when no pipeline triggered it) sets the values
        `_upstream` / `_scheduled_at` inject (due now when `scheduled_at` is None); a retry
        (`upstream` None) reuses those of the run it repeats. With `defer` (a run asked for before
        `start()`: `run_task_immediately`, `Quiv.map`), the job stays "scheduled" and is submitted
        by `submit_deferred`. A fresh run of a cached step is submitted once its key is known (see
        `reuse.keyed_submit`); a retry repeats its run's key.
        """
        job = JobRecord.of_task(task, JobStatus.SCHEDULED, attempt, StopEvent(), JobLog())
        if task.cache_base is not None and upstream is None:
            prior = self._history.find(task.last_job_id or "")
            job.cache_key = prior.cache_key if prior is not None else None
        self._history.add(job)
        task.active_job = task.last_job_id = job.job_id
        self._store.job_changed(job)
        call = job_call(task, job, upstream, scheduled_at, self._dispatch, self.on_start)
        submit: Callable[[], list[Effect]] = functools.partial(self._submit, job, call)
        if task.cache_base is not None and upstream is not None:
            keyed = keyed_submit(self._lock, self._store, task, job, upstream, submit, self._stopped)
            submit = functools.partial(list, (keyed,))  # its submission is that one effect
        if defer:
            self._deferred.append(submit)
            return []
        return submit()

    def submit_deferred(self) -> list[Effect]:
        """At `start()` (lock held): submit the jobs `start_job(defer=True)` kept "scheduled", oldest first."""
        deferred, self._deferred = self._deferred, []
        return [effect for submit in deferred for effect in submit()]

    def _submit(self, job: JobRecord, call: JobCall) -> list[Effect]:
        """Hand `job`'s call to the executor, or on a cache hit to the store (lock held).

        The effects resolve a hit (reading the store) and attach the done-callback, after the lock.
        """
        effects: list[Effect] = []
        fut: concurrent.futures.Future[Outcome]
        if job.cache_key is not None and self._store.has_result(job.cache_key):
            fut, resolve = reuse_result(self._lock, self._store, self._executor, job, call, job.cache_key)
            effects.append(resolve)
        else:
            try:
                fut = self._executor.submit(call)
            except Exception as exc:  # the executor refused (e.g. a dead cluster): fail this job, not the caller
                fut = concurrent.futures.Future()
                fut.set_result(failure(exc))
        job.future = fut
        # Attached once the lock is released: a job that already finished calls back at once,
        # and its listeners must not run under our lock.
        effects.append(lambda: fut.add_done_callback(lambda f: self.on_done(job, f)))
        return effects

    def is_live(self, entry: Entry) -> bool:
        """Whether popping `entry` would still do something (see `on_due`)."""
        if entry.kind == TIMEOUT:
            job = self._history.find(entry.key)
            return job is not None and not job.status.is_final
        task = self._tasks.find(entry.key)
        return task is not None and task.gen == entry.gen and not task.paused

    def on_due(self, entry: Entry, now: float) -> list[Effect]:
        """The scheduler thread popped a due entry (lock held): time a job out or fire a task."""
        if entry.kind == TIMEOUT:
            job = self._history.find(entry.key)
            if job is not None and not job.status.is_final:
                return [job.stop_event.set_later("timeout")]  # its callbacks run after the lock
            return []
        task = self._tasks.find(entry.key)
        if task is None or task.gen != entry.gen or task.paused:
            return []  # stale entry: the task was removed, paused or rescheduled
        if entry.kind == RETRY and task.next_due == entry.due:
            task.next_due = None
        return self.fire(task, now, entry.kind, due=entry.due)

    def stop_all(self, reason: str) -> tuple[list[concurrent.futures.Future[Any]], list[Effect]]:
        """Set every unfinished job's stop event (lock held).

        Returns the futures of the jobs still queued, and the effects that run the stop events'
        callbacks (to run after the lock is released).
        """
        queued = []
        effects = []
        for job in self._history.unfinished():
            effects.append(job.stop_event.set_later(reason))
            if job.status is JobStatus.SCHEDULED and job.future is not None:
                queued.append(job.future)
        return queued, effects

    def abandon_unfinished(self, now: float) -> list[Effect]:
        """Finalize, as cancelled, every job still unfinished after shutdown waited for it (lock held)."""
        effects: list[Effect] = []
        for job in self._history.unfinished():
            effects += self.finalize(job, Outcome(False, error_message="abandoned at shutdown", cancelled=True), now)
        return effects

    # ------------------------------------------------------------------ worker side

    def on_start(self, job: JobRecord) -> bool:
        """The worker is about to run `job`'s body (worker thread); False means skip it (cancelled)."""
        with self._lock:
            if job.stop_event.is_set() or job.status is not JobStatus.SCHEDULED:
                return False
            job.status = JobStatus.RUNNING
            job.started_at = utcnow()
            job.t0 = time.perf_counter()
            self._store.job_changed(job)
            task = self._tasks.find(job.task_id)
            if task is not None and task.timeout is not None:
                self._timeline.push(self._clock() + task.timeout, TIMEOUT, job.job_id)
            listened = self._bus.listened(Event.JOB_STARTED)
            sink = job.sink
            snap = job.snapshot() if listened or sink is not None else None  # none that nobody sees
            effects: list[Effect] = []
            if sink is not None and snap is not None:
                effects.append(self._sink_calls.plan(functools.partial(_tell_started, self._log, sink, snap)))
            if listened:
                effects.append(self._bus.emitter(Event.JOB_STARTED, task.snapshot() if task else None, snap))
        run_effects(effects)
        return True

    def on_done(self, job: JobRecord, fut: concurrent.futures.Future[Outcome]) -> None:
        """`job`'s future resolved (the thread that resolved it): finalize and run the effects."""
        try:
            outcome = fut.result()  # asked first: one trip through the future's lock when it has a result
        except BaseException as exc:
            if fut.cancelled():
                outcome = Outcome(False, error_message="cancelled before it started", cancelled=True)
            else:
                outcome = failure(exc)
        if job.cache_key is not None and outcome.ok and not job.cached:
            self._store.dump_result(job, outcome.result)  # pickled here, before the lock
        with self._lock:
            effects = self.finalize(job, outcome, self._clock())
        run_effects(effects)

    # ------------------------------------------------------------------ the end of a job (lock held)

    def finalize(self, job: JobRecord, outcome: Outcome, now: float) -> list[Effect]:
        """Record how `job` ended at `now`, resolve its waiters, plan a retry, forget old history."""
        if job.status.is_final:
            return []
        stop = job.stop_event
        reason = (stop.reason or "") if stop.is_set() else None  # "": the handler set it itself
        task = self._tasks.find(job.task_id)
        job.status, job.result, job.error_message, job.traceback = final_state(
            outcome, reason, task.timeout if task is not None else None, observable=job.cancellable
        )
        effects: list[Effect] = []
        if job.status is JobStatus.FAILED:  # logged first, as before: a routed job's cell shows it before its end
            effects.append(functools.partial(_log_failure, self._log, job, outcome.traceback))
        job.ended_at = utcnow()
        if job.started_at is not None:
            job.duration = time.perf_counter() - job.t0
        job.future = None
        self._store.job_ended(job)

        event = _EVENT_FOR_STATUS[job.status]
        retrying = task is not None and _after_job(self._parts, task, job, now, self._stopped())
        downstream: list[Effect] = []
        if not retrying and self._in_pipeline(job.task_id) and not self._stopped():
            decisions = self._pipeline.on_job_final(job.task_id, job.status, job.result, job.error_message)
            if task is not None and task.run_once:
                self._pipeline.retire(task.task_id)
            downstream = self._downstream(decisions, now)
        # Snapshots only for someone who will see them (a waiter, the renderer, a listener).
        waiters = self._waiters.take(job.job_id, job.task_id)
        listened = self._bus.listened(event) or (retrying and self._bus.listened(Event.JOB_RETRYING))
        task_snap = task.snapshot() if task is not None and listened else None
        snap = job.snapshot() if listened or waiters[0] or waiters[1] or job.sink is not None else None
        self._history.finished(job, now)

        # Run after the lock is released, in this order: the renderer records the end before the
        # waiters wake (so `wait_for_job` returning means the bar knows how the job ended), then
        # the listeners, then what the pipeline started or skipped downstream.
        if job.sink is not None:
            effects.append(self._sink_calls.plan(functools.partial(_tell_finished, self._log, job.sink, snap)))
        if waiters[0] or waiters[1]:
            effects.append(functools.partial(_settle_all, waiters, snap))
        effects.append(self._bus.emitter(event, task_snap, snap))
        if retrying:
            effects.append(self._bus.emitter(Event.JOB_RETRYING, task_snap, snap))
        return effects + downstream

    # ------------------------------------------------------------------ pipelines (lock held)

    def _downstream(self, decisions: list[Run | Skip], now: float) -> list[Effect]:
        """Act on the pipeline's decisions after a job ended: start downstream jobs, record skipped ones."""
        effects: list[Effect] = []
        wall = utcnow()
        for decision in decisions:
            task = self._tasks.find(decision.task_id)
            if task is None:  # removed, or a finished run-once task
                continue
            if not isinstance(decision, Run):
                effects += self.skip_job(task, decision.reason, now)
            elif task.paused:
                continue  # a paused task is not scheduled, by its upstreams either
            elif task.active_job is not None:
                self._pipeline.hold(task.task_id, decision.upstream)  # released when that job ends
            else:
                task.failures = 0
                effects += self.start_job(task, now, 0, decision.upstream, wall)
        return effects

    def skip_job(self, task: TaskRecord, reason: str, now: float) -> list[Effect]:
        """Record a SKIPPED job of `task` (an upstream did not complete) and announce it.

        The job never runs: no start, no duration; its `error_message` is `reason`. Waiters on the
        task are resolved with it, its bar records it, and `Event.JOB_SKIPPED` fires.
        """
        job = JobRecord.of_task(task, JobStatus.SKIPPED, 0, StopEvent(), None)
        job.ended_at, job.error_message = utcnow(), reason
        self._history.add(job)
        self._store.job_ended(job)
        task.last_job_id = job.job_id
        if task.run_once:  # its one job, skipped
            self._tasks.discard(task)
            self._history.remember_last_run(task.task_id, job.job_id)
            self._pipeline.retire(task.task_id)
        snap = job.snapshot()
        effects: list[Effect] = []
        if job.sink is not None:
            effects.append(self._sink_calls.plan(functools.partial(_tell_finished, self._log, job.sink, snap)))
        if task.active_job is None:  # else `wait_for_task` waits for the job that is running
            waiters = self._waiters.take(job.job_id, task.task_id)
            if waiters[1]:
                effects.append(functools.partial(_settle_all, ([], waiters[1]), snap))
        self._history.finished(job, now)
        if self._bus.listened(Event.JOB_SKIPPED):
            effects.append(self._bus.emitter(Event.JOB_SKIPPED, task.snapshot(), snap))
        return effects
