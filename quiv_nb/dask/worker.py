"""The worker side: run one job body on a Dask worker and report it through a batching outbox.

Everything here runs on a Dask worker (a handler thread or the worker's event loop); the client
reaches it only through `run_on_worker`, which Dask pickles by reference (so workers need
quiv_nb installed).
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import threading
import time
from typing import Any, Callable

import cloudpickle
from distributed import get_worker

from ..execution import STOP, JobCall, Outcome, StopEvent, run_call
from .wire import INLINE_LIMIT, MAX_BATCH, Ended, JobHeader, JobRecords, Record, Started, encode_batch, plain_payload

__all__ = ["Channel", "Outbox", "active_outboxes", "run_on_worker"]

_log = logging.getLogger("quiv_nb")


class Channel:
    """One job's buffered records on a worker. Guarded by its outbox's lock."""

    __slots__ = ("buf", "closed", "job_id")

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.buf: list[Record] = []
        self.closed = False


class Outbox:
    """Batches the records of every job running on one worker for one executor's topic.

    Records are appended on handler threads and sent from the worker's event loop, at most one
    `log_event` per `interval`; the first record after a quiet spell goes out at once, and a
    batch that reaches `MAX_BATCH` records goes out early (the scheduler stores the last 1000
    messages of a topic, so their size is what bounds its memory).
    """

    def __init__(self, worker: Any, topic: str, interval: float) -> None:
        self.worker = worker
        self._key = (id(worker), topic)
        self._topic = topic
        self._interval = interval
        self._loop: asyncio.AbstractEventLoop = worker.loop.asyncio_loop
        self._lock = threading.Lock()
        self._dirty: dict[str, Channel] = {}
        self._pending = 0  # records buffered in all channels
        self._open = 0  # channels not yet closed
        self._armed = False
        self._last_flush = 0.0

    def open(self, job_id: str) -> Channel:
        """A channel for one job (any thread)."""
        with self._lock:
            self._open += 1
        return Channel(job_id)

    def put(self, channel: Channel, record: Record, *, urgent: bool, last: bool = False) -> None:
        """Buffer one record (any thread); `last` closes the channel after it."""
        with self._lock:
            if channel.closed:
                return  # a thread the handler left behind, calling the hook after the job ended
            channel.buf.append(record)
            if last:
                channel.closed = True
                self._open -= 1
            self._dirty.setdefault(channel.job_id, channel)
            self._pending += 1
            if self._armed and self._pending < MAX_BATCH:
                return
            if self._armed:  # a full batch: send it now, the armed timer finds less to do
                delay = 0.0
            else:
                self._armed = True
                delay = max(0.0, self._last_flush + self._interval - time.monotonic()) if urgent else self._interval
        self._loop.call_soon_threadsafe(self._arm, delay)

    def _arm(self, delay: float) -> None:
        if delay <= 0:
            self._flush()
        else:
            self._loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        """Send every buffered record as one event (on the worker's loop thread)."""
        with self._lock:
            self._armed = False
            self._last_flush = time.monotonic()
            batch = [JobRecords(channel.job_id, channel.buf) for channel in self._dirty.values()]
            for channel in self._dirty.values():
                channel.buf = []
            self._dirty.clear()
            self._pending = 0
            idle = self._open == 0
        if batch:
            try:
                self.worker.log_event(self._topic, encode_batch(batch))
            except Exception:
                _log.exception("quiv_nb: could not send a progress batch from worker %s", self.worker.address)
        if idle:  # no job of this executor runs here: forget the outbox (the next job makes a new one)
            with _outboxes_lock:
                if _outboxes.get(self._key) is self:
                    del _outboxes[self._key]


# (id(worker), topic) -> outbox; keyed by worker because with processes=False workers share a process.
_outboxes: dict[tuple[int, str], Outbox] = {}
_outboxes_lock = threading.Lock()
_watchers: set[asyncio.Task[None]] = set()  # strong references to running watcher tasks


def active_outboxes() -> int:
    """How many outboxes this process holds (0 once no job of any executor runs here)."""
    with _outboxes_lock:
        return len(_outboxes)


def _open_channel(worker: Any, topic: str, interval: float, job_id: str) -> tuple[Outbox, Channel]:
    key = (id(worker), topic)
    with _outboxes_lock:
        box = _outboxes.get(key)
        if box is None or box.worker is not worker:
            box = _outboxes[key] = Outbox(worker, topic, interval)
        return box, box.open(job_id)


async def _watch(worker: Any, header: JobHeader, stop: StopEvent, channel: Channel) -> None:
    """Mirror the job's `distributed.Event` into its local stop event (on the worker's loop).

    Starts after `watch_delay`, so jobs shorter than that cost no scheduler round trip. Each wait
    blocks on the scheduler for up to `watch_period`; setting the event wakes it at once. It
    speaks the `distributed.Event` protocol over the worker's own scheduler connection, which
    `Event.wait` would do through a worker client created just for it.
    """
    await asyncio.sleep(header.watch_delay)
    while not channel.closed and not stop.is_set():
        try:
            hit = await worker.scheduler.event_wait(name=header.event_name, timeout=header.watch_period)
        except Exception:
            if worker.status.name in ("running", "paused"):
                _log.exception("quiv_nb: the stop-event watcher of job %s failed", header.job_id)
            return
        if hit:
            stop.set("cancel")
            return


def _start_watcher(worker: Any, header: JobHeader, stop: StopEvent, channel: Channel) -> None:
    def start() -> None:
        task = asyncio.ensure_future(_watch(worker, header, stop, channel))
        _watchers.add(task)
        task.add_done_callback(_watchers.discard)

    worker.loop.asyncio_loop.call_soon_threadsafe(start)


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def _pack(outcome: Outcome) -> bytes | None:
    """The outcome pickled for the `Ended` record, or None when it is too big (or not picklable).

    Like Dask's own result pickling: plain pickle, or cloudpickle for what pickle cannot do or
    would refer to by a `__main__` name (classes from a notebook, rebuilt on this worker).
    """
    try:
        data = pickle.dumps(outcome, protocol=5)
    except Exception:
        data = b"__main__"
    if b"__main__" in data:
        try:
            data = cloudpickle.dumps(outcome, protocol=5)
        except Exception:
            return None  # the gather that follows reports why
    return data if len(data) <= INLINE_LIMIT else None


def run_on_worker(
    header: JobHeader, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Outcome:
    """The Dask task: run one job body on this worker thread, reporting through the outbox.

    The outcome also goes back in the `Ended` record when small; the task's return value is the
    fallback, gathered only for big outcomes or if the record is lost. Never raises for the body.
    """
    worker = get_worker()
    outbox, channel = _open_channel(worker, header.topic, header.flush_interval, header.job_id)
    stop = StopEvent()
    outbox.put(channel, Started(), urgent=False)
    if header.spec.is_async or any(kind == STOP for _, kind in header.spec.inject):
        _start_watcher(worker, header, stop, channel)  # only handlers that can see a stop need one

    if header.report:

        def hook(*a: Any, **kw: Any) -> None:
            # A TypeError from plain_payload fails the job inside the handler, naming the key.
            outbox.put(channel, plain_payload(a, kw), urgent=True)

    else:
        hook = _noop
    call = JobCall(header.job_id, func, tuple(args), dict(kwargs), header.spec, stop, hook)
    outcome = Outcome(False, error_message="the job wrapper failed")
    try:
        outcome = run_call(call)
    finally:
        outbox.put(channel, Ended(_pack(outcome)), urgent=True, last=True)
    return outcome
