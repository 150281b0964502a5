"""The dispatch thread: replays each job's start, progress and end on the client, in arrival order.

One thread per executor (``quiv_nb-dask-…``) reads the inbox: batches from the progress topic
and what `ClusterOps` learns about Dask futures. Progress callbacks (when the scheduler has no
main loop), `on_start` and outcome delivery run on it.
"""

from __future__ import annotations

import logging
import pickle
import queue
import threading
import time

from ..dispatch import worker_scope
from ..execution import Outcome, failure
from .jobs import RELEASED, ClientJob, DaskFinished, InboxItem, JobTable, Resolved, TopicBatch, settle
from .remote import ClusterOps
from .wire import Ended, Progress, Record, Started, decode_batch, restore, restore_kwargs

__all__ = ["END_GRACE", "Replayer"]

_log = logging.getLogger("quiv_nb")

# A job's Ended record normally arrives before or just after Dask reports its task finished
# (they travel different routes); past this the client gathers the task's result instead.
END_GRACE = 2.0
_TRIM_EVERY = 2.0  # seconds between trims of the topic's stored history on the scheduler
# A job that ends with at least this many batches stored since the last trim trims at once: after
# a flood the scheduler would otherwise hold them until the next batch, which may never come.
_TRIM_AT_END = 50


class Replayer:
    """Owns the inbox and the thread that empties it; everything below `_run` runs on that thread."""

    def __init__(self, jobs: JobTable, ops: ClusterOps, inbox: queue.SimpleQueue[InboxItem], name: str) -> None:
        self._jobs = jobs
        self._ops = ops
        self._inbox = inbox
        self._waiting: dict[str, ClientJob] = {}  # finished on Dask, Ended record not seen yet
        self._last_trim = time.monotonic()
        self._untrimmed = 0  # batches the scheduler stored since the last trim
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def on_thread(self) -> bool:
        """Is the caller the dispatch thread (a callback calling shutdown, say)?"""
        return threading.current_thread() is self._thread

    def stop(self, timeout: float) -> None:
        """Ask the thread to end after the messages already queued; wait up to `timeout` unless called on it."""
        self._inbox.put(None)
        if not self.on_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        with worker_scope():
            while True:
                timeout = self._expire_waiting()
                try:
                    item = self._inbox.get(timeout=timeout)
                except queue.Empty:
                    continue
                if item is None:
                    return
                try:
                    self._handle(item)
                except Exception:
                    _log.exception("quiv_nb: the Dask dispatch thread hit an error; it goes on")

    def _expire_waiting(self) -> float | None:
        """Fetch the outcome of jobs whose Ended record is overdue; return the time to the next deadline."""
        if not self._waiting:
            return None
        now = time.monotonic()
        for job in [j for j in self._waiting.values() if j.deadline <= now]:
            del self._waiting[job.job_id]
            _log.warning("quiv_nb: job %s ended without its last updates; fetching its result", job.key)
            try:
                self._ops.fetch(job)
            except Exception:
                _log.exception("quiv_nb: could not fetch the result of job %s", job.key)
        if not self._waiting:
            return None
        return max(0.0, min(j.deadline for j in self._waiting.values()) - now)

    def _handle(self, item: TopicBatch | DaskFinished | Resolved) -> None:
        if isinstance(item, TopicBatch):
            for job_id, records in decode_batch(item.raw):
                job = self._jobs.get(job_id)
                if job is not None:
                    self._feed(job, records)
            self._untrimmed += 1
            self._maybe_trim()
        elif item.job.released:
            return  # already complete
        elif isinstance(item, DaskFinished):
            job = item.job
            if not job.fetching:
                job.deadline = time.monotonic() + END_GRACE
                self._waiting[job.job_id] = job
        else:
            self.complete(item.job, item.outcome)

    def _maybe_trim(self, job_ended: bool = False) -> None:
        """Trim the topic every `_TRIM_EVERY` seconds of traffic, and when a job ends after a flood."""
        now = time.monotonic()
        if now - self._last_trim > _TRIM_EVERY or (job_ended and self._untrimmed >= _TRIM_AT_END):
            self._last_trim = now
            self._untrimmed = 0
            self._ops.trim_topic()

    def _feed(self, job: ClientJob, records: list[Record]) -> None:
        progress = job.call.progress
        for record in records:
            if isinstance(record, Progress):
                if job.live:
                    try:
                        progress(*[restore(a) for a in record.args], **restore_kwargs(record.kwargs))
                    except Exception:
                        _log.exception("quiv_nb: progress delivery for job %s failed", job.key)
            elif isinstance(record, Started):
                self._start(job)
            elif isinstance(record, Ended):
                self._end(job, record)
                return

    def _start(self, job: ClientJob) -> None:
        with self._jobs.lock:
            if job.started:
                return
            job.started = True  # from here on a stop sets the remote event (see DaskExecutor._on_stop)
        if job.future.cancelled():  # cancelled while queued, but the worker had already begun
            self._ops.set_stop(job)
            return
        if not job.call.on_start():
            self._ops.set_stop(job)
            settle(job.future, Outcome(False, error_message="cancelled before it started", cancelled=True))
            return
        job.live = job.future.set_running_or_notify_cancel()

    def _end(self, job: ClientJob, record: Ended) -> None:
        if record.outcome is None:  # too big to ride along, or not picklable: gather it
            self._ops.fetch(job)
            return
        try:
            outcome = pickle.loads(record.outcome)
        except Exception as exc:
            out = failure(exc)
            outcome = Outcome(False, error_message=f"could not load the job's result here: {out.error_message}",
                              traceback=out.traceback)  # fmt: skip
        self.complete(job, outcome)

    def complete(self, job: ClientJob, outcome: Outcome) -> None:
        """Resolve the job's future and forget it: release its Dask key, clear its event."""
        if not job.started and outcome.ok:  # cannot happen (start precedes end); never report
            outcome = Outcome(False, error_message="the job's start was never reported", cancelled=True)
        settle(job.future, outcome)
        self._waiting.pop(job.job_id, None)
        with self._jobs.lock:
            self._jobs.discard_locked(job.job_id)
            set_op = job.set_op
        if set_op is not None:  # events are cleared when the job ends
            self._ops.clear_stop(job.event_name, set_op)
        job.dask_future = None
        job.call = RELEASED
        self._maybe_trim(job_ended=True)
