"""The client's record of each submitted job, the table that holds them, and the dispatch thread's messages."""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any, NamedTuple

from ..execution import HandlerSpec, JobCall, Outcome, StopEvent

__all__ = ["RELEASED", "ClientJob", "DaskFinished", "InboxItem", "JobTable", "Resolved", "TopicBatch", "settle"]


def _released(*args: Any, **kwargs: Any) -> None:
    return None


# A finished `ClientJob` drops its call (the handler and its arguments) but keeps the attribute valid.
RELEASED = JobCall("", _released, (), {}, HandlerSpec(False, ()), StopEvent(), _released)


class ClientJob:
    """The client's record of one submitted job (kept until its end is known).

    `started`, `set_op` and table membership are guarded by the `JobTable` lock; the rest belongs
    to the dispatch thread once the job is submitted.
    """

    __slots__ = ("call", "dask_future", "deadline", "event_name", "fetching", "future", "job_id", "key", "live",
                 "set_op", "started")  # fmt: skip

    def __init__(self, call: JobCall, key: str, event_name: str) -> None:
        self.call = call
        self.job_id = call.job_id
        self.key = key
        self.event_name = event_name
        self.future: concurrent.futures.Future[Outcome] = concurrent.futures.Future()
        self.dask_future: Any = None
        self.started = False  # the worker's Started record was seen
        self.live = False  # started and accepted by the scheduler: payloads go to the callback
        self.fetching = False  # gathering the outcome (too big for the Ended record, or it got lost)
        self.deadline = 0.0
        self.set_op: concurrent.futures.Future[None] | None = None  # the remote stop event was set

    @property
    def released(self) -> bool:
        """The job is complete and has dropped its call."""
        return self.call is RELEASED


class JobTable:
    """Jobs by id, under one lock that also guards each job's `started` and `set_op`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._jobs: dict[str, ClientJob] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, job: ClientJob) -> None:
        with self.lock:
            self._jobs[job.job_id] = job

    def get(self, job_id: str) -> ClientJob | None:
        return self._jobs.get(job_id)

    def holds(self, job: ClientJob) -> bool:
        """`job` is still in the table (not complete, not replaced). Call with `lock` held."""
        return self._jobs.get(job.job_id) is job

    def discard(self, job_id: str) -> None:
        with self.lock:
            self._jobs.pop(job_id, None)

    def discard_locked(self, job_id: str) -> None:
        """`discard` for a caller that holds `lock`."""
        self._jobs.pop(job_id, None)

    def all(self) -> list[ClientJob]:
        with self.lock:
            return list(self._jobs.values())

    def clear(self) -> None:
        with self.lock:
            self._jobs.clear()


def settle(future: concurrent.futures.Future[Outcome], outcome: Outcome) -> None:
    """Resolve `future` unless it is already done (cancelled by the scheduler, or abandoned)."""
    try:
        future.set_result(outcome)
    except concurrent.futures.InvalidStateError:
        pass


# ------------------------------------------------------------------------------------------ inbox


class TopicBatch(NamedTuple):
    """A batch from the progress topic, still in wire form (see `wire.decode_batch`)."""

    raw: Any


class DaskFinished(NamedTuple):
    """Dask reports the job's task finished; its `Ended` record should be here or arrive soon."""

    job: ClientJob


class Resolved(NamedTuple):
    """The job's outcome, known on the client (a Dask error or cancel, or a gathered result)."""

    job: ClientJob
    outcome: Outcome


# None asks the dispatch thread to stop.
InboxItem = TopicBatch | DaskFinished | Resolved | None
