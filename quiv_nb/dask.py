"""Run quiv_nb jobs on a Dask cluster: `Quiv(executor=DaskExecutor(client))`.

The scheduler keeps timing, retries and bookkeeping; this executor only moves job bodies to the
cluster and brings three things back:

* **Progress.** On the worker, `_progress_hook(...)` converts the payload to plain values (a bad
  value raises `TypeError` in the handler, naming the key) and buffers it. Each worker batches the
  records of all its jobs into one `Worker.log_event` message on this executor's topic, at most
  one per `flush_interval` (the first payload after a quiet spell goes out at once). The client
  receives them through `Client.subscribe_topic` and replays them in order, on one dispatch
  thread, into the scheduler's normal progress hook (renderers coalesce; the wire never drops).
* **Outcomes.** A job's start and end travel the same way, so the client sees start, every
  payload, then end, in that order. The end record carries the outcome when it pickles small
  (most do: one message per batch instead of a gather per job); a bigger one is gathered.
  Results, failures (traceback formatted on the worker) and cancellations become the same
  `Outcome` the thread pool produces. Each job's Dask key is `quiv-<task>-<job id>`; its future is
  released as soon as the job is finished.
* **Cancel.** `cancel_job` and timeouts set the job's stop event. A job that has started gets its
  `distributed.Event` (`quiv_nb-stop-<job id>`) set; a small watcher coroutine on the worker's
  event loop mirrors it into the local `threading.Event` the handler was given (`Event.wait` with
  a timeout, in a loop). A job still queued is cancelled with `Client.cancel`. The event is
  cleared when the job ends.

Workers (and, as for any Dask graph, the scheduler) need quiv_nb installed: the job body runs
inside a function of this module. The client must be synchronous (the default).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import numbers
import pickle
import queue
import re
import threading
import time
import traceback
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

try:
    import cloudpickle
    import distributed
    from distributed import Client, get_worker
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "quiv_nb.dask needs the 'distributed' package; install it with: pip install 'quiv_nb[dask]'"
    ) from exc

from .dispatch import worker_scope
from .errors import ConfigurationError
from .execution import STOP, HandlerSpec, JobCall, Outcome, StopEvent, failure, run_call

__all__ = ["DaskExecutor", "connect", "start_local_cluster"]

_log = logging.getLogger("quiv_nb")

# A job's end record normally arrives before or just after Dask reports its task finished
# (they travel different routes); past this the client gathers the task's result instead.
_END_GRACE = 2.0
# Keys the scheduler owns; `submit_options` may not override them.
_RESERVED_SUBMIT = frozenset({"key", "pure", "retries", "actor", "actors"})


# ---------------------------------------------------------------------------------------------
# Payload conversion (pure; runs on the worker, inside the handler's own call of the hook)

_PLAIN = (str, float, bool, type(None), bytes)
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what msgpack can carry


def _to_plain(value: Any, where: str = "value") -> Any:
    """`value` as msgpack-safe plain data; raises `TypeError` naming `where` if it cannot be.

    Numbers of other libraries (numpy scalars, `Decimal`, `Fraction`) become `int`/`float` via
    `.item()` or the `numbers` ABCs, without importing those libraries; lists and tuples become
    lists, dicts need string keys. Anything else (a `datetime`, an array, an object) is refused
    rather than silently stringified, so the author sees the mistake at once.
    """
    t = type(value)
    if t in _PLAIN:
        return value
    if t is int:
        if _INT_MIN <= value <= _INT_MAX:
            return value
        raise TypeError(f"progress payload {where} = {_short_repr(value)}: integer too large to send from Dask")
    if isinstance(value, (list, tuple)):
        return [_to_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"progress payload {where} has a non-string key {k!r}; dict keys must be strings")
            out[str.__str__(k)] = _to_plain(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, str):  # a str subclass (an enum member, say): send the plain text
        return str.__str__(value)
    if isinstance(value, numbers.Number) or (getattr(value, "shape", None) == () and hasattr(value, "item")):
        item = getattr(value, "item", None)
        if callable(item):
            try:
                plain = item()
            except Exception:
                plain = None
            if type(plain) in (int, float, bool):
                return _to_plain(plain, where)
        if isinstance(value, numbers.Integral):
            return _to_plain(int(value), where)
        if isinstance(value, numbers.Real) or not isinstance(value, numbers.Complex):  # Decimal is no Real
            try:
                return float(value)
            except (TypeError, ValueError):
                pass
    raise TypeError(
        f"progress payload {where} = {_short_repr(value)} has type {type(value).__qualname__}, which cannot be "
        "sent from a Dask worker; send numbers, strings, booleans, None, or lists/dicts of them"
    )


def _short_repr(value: Any, limit: int = 60) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__qualname__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain_payload(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """One hook call as wire data; the fast path is a kwargs-only payload of plain scalars."""
    plain_args = [_to_plain(v, f"positional argument {i}") for i, v in enumerate(args)]
    for v in kwargs.values():
        if type(v) not in _PLAIN and type(v) is not int:
            return plain_args, {k: _to_plain(v, f"key {k!r}") for k, v in kwargs.items()}
    return plain_args, kwargs


def _restore(value: Any) -> Any:
    """Undo the wire's sequence handling (msgpack hands lists back as tuples): nested sequences are lists."""
    t = type(value)
    if t is tuple or t is list:
        return [_restore(v) for v in value]
    if t is dict:
        return {k: _restore(v) for k, v in value.items()}
    return value


def _restore_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    for v in kwargs.values():
        if type(v) in (tuple, list, dict):
            return {k: _restore(v) for k, v in kwargs.items()}
    return kwargs


# ---------------------------------------------------------------------------------------------
# Worker side

# Records, in the order a job produces them. All go through the worker's outbox, so the client
# sees a job's start, every payload and its end in exactly that order.
_START, _PROGRESS, _END = 0, 1, 2
# Outcomes up to this size (pickled) ride in the end record; bigger ones are fetched with a
# gather. Bounded because the scheduler keeps the last 1000 batches of every topic.
_INLINE_LIMIT = 16 * 1024
_MAX_BATCH = 1000  # records per progress message at most
_TRIM_EVERY = 2.0  # seconds between trims of the topic's stored history on the scheduler


@dataclass(frozen=True)
class _Header:
    """What the worker needs besides the handler and its arguments (small; pickled by reference)."""

    topic: str
    job_id: str
    event_name: str
    spec: HandlerSpec
    report: bool  # does the task have a progress callback at all?
    flush_interval: float
    watch_delay: float
    watch_period: float


class _Channel:
    """One job's buffered records on a worker. Guarded by its outbox's lock."""

    __slots__ = ("buf", "closed", "job_id")

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.buf: list[Any] = []
        self.closed = False


class _Outbox:
    """Batches the records of every job running on one worker for one executor's topic.

    Records are appended on handler threads and sent from the worker's event loop, at most one
    `log_event` per `interval`; the first record after a quiet spell goes out at once, and a
    batch that reaches `_MAX_BATCH` records goes out early (the scheduler stores the last 1000
    messages of a topic, so their size is what bounds its memory).
    """

    def __init__(self, worker: Any, topic: str, interval: float) -> None:
        self.worker = worker
        self._key = (id(worker), topic)
        self._topic = topic
        self._interval = interval
        self._loop: asyncio.AbstractEventLoop = worker.loop.asyncio_loop
        self._lock = threading.Lock()
        self._dirty: dict[str, _Channel] = {}
        self._pending = 0  # records buffered in all channels
        self._open = 0  # channels not yet closed
        self._armed = False
        self._last_flush = 0.0

    def open(self, job_id: str) -> _Channel:
        with self._lock:
            self._open += 1
        return _Channel(job_id)

    def put(self, channel: _Channel, record: Any, *, urgent: bool, last: bool = False) -> None:
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
            if self._armed and self._pending < _MAX_BATCH:
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
            batch = [[channel.job_id, channel.buf] for channel in self._dirty.values()]
            for channel in self._dirty.values():
                channel.buf = []
            self._dirty.clear()
            self._pending = 0
            idle = self._open == 0
        if batch:
            try:
                self.worker.log_event(self._topic, batch)
            except Exception:
                _log.exception("quiv_nb: could not send a progress batch from worker %s", self.worker.address)
        if idle:  # no job of this executor runs here: forget the outbox (the next job makes a new one)
            with _outboxes_lock:
                if _outboxes.get(self._key) is self:
                    del _outboxes[self._key]


# (id(worker), topic) -> outbox; keyed by worker because with processes=False workers share a process.
_outboxes: dict[tuple[int, str], _Outbox] = {}
_outboxes_lock = threading.Lock()
_watchers: set[asyncio.Task[None]] = set()  # strong references to running watcher tasks


def _open_channel(worker: Any, topic: str, interval: float, job_id: str) -> tuple[_Outbox, _Channel]:
    key = (id(worker), topic)
    with _outboxes_lock:
        box = _outboxes.get(key)
        if box is None or box.worker is not worker:
            box = _outboxes[key] = _Outbox(worker, topic, interval)
        return box, box.open(job_id)


async def _watch(worker: Any, header: _Header, stop: StopEvent, channel: _Channel) -> None:
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


def _start_watcher(worker: Any, header: _Header, stop: StopEvent, channel: _Channel) -> None:
    def start() -> None:
        task = asyncio.ensure_future(_watch(worker, header, stop, channel))
        _watchers.add(task)
        task.add_done_callback(_watchers.discard)

    worker.loop.asyncio_loop.call_soon_threadsafe(start)


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def _pack(outcome: Outcome) -> bytes | None:
    """The outcome pickled for the end record, or None when it is too big (or not picklable).

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
    return data if len(data) <= _INLINE_LIMIT else None


def _run_on_worker(header: _Header, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Outcome:
    """The Dask task: run one job body on this worker thread, reporting through the outbox.

    The outcome also goes back in the end record when small; the task's return value is the
    fallback, gathered only for big outcomes or if the end record is lost.
    """
    worker = get_worker()
    outbox, channel = _open_channel(worker, header.topic, header.flush_interval, header.job_id)
    stop = StopEvent()
    outbox.put(channel, (_START,), urgent=False)
    if header.spec.is_async or any(kind == STOP for _, kind in header.spec.inject):
        _start_watcher(worker, header, stop, channel)  # only handlers that can see a stop need one

    if header.report:

        def hook(*a: Any, **kw: Any) -> None:
            plain_args, plain_kwargs = _plain_payload(a, kw)  # TypeError here fails the job, naming the key
            outbox.put(channel, (_PROGRESS, plain_args, plain_kwargs), urgent=True)

    else:
        hook = _noop
    call = JobCall(header.job_id, func, tuple(args), dict(kwargs), header.spec, stop, hook)
    outcome = Outcome(False, error_message="the job wrapper failed")
    try:
        outcome = run_call(call)
    finally:
        outbox.put(channel, (_END, _pack(outcome)), urgent=True, last=True)
    return outcome


# ---------------------------------------------------------------------------------------------
# Client side


class _Job:
    """The client's record of one submitted job (kept until its end is known)."""

    __slots__ = ("call", "dask_future", "deadline", "event_name", "fetching", "future", "job_id", "key", "live",
                 "set_op", "started")  # fmt: skip

    def __init__(self, call: JobCall, key: str, event_name: str) -> None:
        self.call = call
        self.job_id = call.job_id
        self.key = key
        self.event_name = event_name
        self.future: concurrent.futures.Future[Outcome] = concurrent.futures.Future()
        self.dask_future: Any = None
        self.started = False  # the worker's start record was seen
        self.live = False  # started and accepted by the scheduler: payloads go to the callback
        self.fetching = False  # gathering the outcome (too big for the end record, or it got lost)
        self.deadline = 0.0
        self.set_op: concurrent.futures.Future[None] | None = None  # the remote event was set


# What the dispatch thread receives.
_EVENTS, _FINISHED, _OUTCOME = 0, 1, 2


class _TopicHandler:
    """Runs on the client's loop for each batch on the topic: hands it to the dispatch thread."""

    __slots__ = ("_inbox",)

    def __init__(self, inbox: queue.SimpleQueue[Any]) -> None:
        self._inbox: weakref.ref[queue.SimpleQueue[Any]] = weakref.ref(inbox)

    def __call__(self, event: tuple[float, Any]) -> None:
        inbox = self._inbox()
        if inbox is not None:
            inbox.put((_EVENTS, event[1]))


class DaskExecutor:
    """A `JobExecutor` that runs every job of a `Quiv` on a Dask cluster.

    `client` is a `distributed.Client` (never closed by us unless `close_client=True`), a
    scheduler address (we connect, and close that client at shutdown), or None for the current
    default client. `flush_interval` bounds how often each worker sends a progress batch;
    `watch_delay` is how long a job runs before its cancel watcher starts (shorter jobs need
    none); `watch_period` is the timeout of one watcher wait. `submit_options` go to
    `Client.submit` (e.g. `resources=`, `workers=`, `priority=`).

    Thread use: `submit` may be called from any thread and never waits on the cluster. Progress
    callbacks (when the scheduler has no main loop), `on_start` and outcome delivery run on one
    dispatch thread per executor, named ``quiv_nb-dask-…``.
    """

    def __init__(
        self,
        client: Client | str | None = None,
        *,
        close_client: bool | None = None,
        flush_interval: float = 0.02,
        watch_delay: float = 0.02,
        watch_period: float = 0.5,
        submit_options: Mapping[str, Any] | None = None,
    ) -> None:
        for name, value in (("flush_interval", flush_interval), ("watch_delay", watch_delay)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 10:
                raise ConfigurationError(f"{name} must be a number of seconds between 0 and 10, got {value!r}")
        if isinstance(watch_period, bool) or not isinstance(watch_period, (int, float)) or not 0 < watch_period <= 60:
            raise ConfigurationError(f"watch_period must be a number of seconds in (0, 60], got {watch_period!r}")
        options = dict(submit_options or {})
        reserved = sorted(_RESERVED_SUBMIT & set(options))
        if reserved:
            raise ConfigurationError(
                f"submit_options must not set {', '.join(reserved)}: quiv_nb chooses keys and does its own retries"
            )
        if isinstance(client, str):
            owned = True
            client = connect(client)
        elif client is None:
            owned = False
            try:
                client = distributed.default_client()
            except ValueError:
                raise ConfigurationError(
                    "DaskExecutor needs a Dask client: pass DaskExecutor(client), a scheduler address, "
                    "or create a distributed.Client first (quiv_nb.dask.start_local_cluster() makes one)"
                ) from None
        elif isinstance(client, Client):
            owned = False
            if client.asynchronous:
                raise ConfigurationError(
                    "DaskExecutor needs a synchronous distributed.Client (asynchronous=False): the scheduler "
                    "submits from its own threads"
                )
        else:
            raise ConfigurationError(
                f"client must be a distributed.Client, a scheduler address or None, got {type(client).__name__}"
            )
        self._client: Client = client
        self._close_client = owned if close_client is None else bool(close_client)
        self._flush_interval = float(flush_interval)
        self._watch_delay = float(watch_delay)
        self._watch_period = float(watch_period)
        self._submit_options = options
        token = uuid.uuid4().hex
        self._topic = f"quiv_nb-progress-{token}"

        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._waiting: dict[str, _Job] = {}  # dispatch thread only: finished on Dask, end record not seen yet
        self._ops: set[concurrent.futures.Future[Any]] = set()
        self._closed = False
        self._trim_ok = True
        # The client keeps topic handlers even after unsubscribing: hand it one that does not
        # keep this executor alive.
        self._client.subscribe_topic(self._topic, _TopicHandler(self._inbox))
        self._thread = threading.Thread(target=self._dispatch, name=f"quiv_nb-dask-{token[:8]}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        state = "shut down" if self._closed else f"{len(self._jobs)} jobs"
        address = getattr(self._client.scheduler, "address", "?")
        return f"<DaskExecutor {address} ({state})>"

    @property
    def client(self) -> Client:
        """The `distributed.Client` jobs are submitted through."""
        return self._client

    # ------------------------------------------------------------------ submitting (any thread)

    def submit(self, call: JobCall) -> concurrent.futures.Future[Outcome]:
        """Send one job to the cluster; the future resolves to its `Outcome` (it never raises).

        Raises `RuntimeError` after `shutdown` (the scheduler turns that into a failed job).
        """
        if self._closed:
            raise RuntimeError("this DaskExecutor is shut down")
        name = call.extra.get("task_name") or getattr(call.func, "__name__", None) or "job"
        key = f"quiv-{_key_part(str(name))}-{call.job_id}"
        job = _Job(call, key, f"quiv_nb-stop-{call.job_id}")
        header = _Header(
            self._topic, call.job_id, job.event_name, call.spec, call.progress is not _SCHEDULER_NOOP,
            self._flush_interval, self._watch_delay, self._watch_period,
        )  # fmt: skip
        with self._lock:
            self._jobs[call.job_id] = job
        try:
            dask_future = self._client.submit(
                _run_on_worker, header, call.func, call.args, call.kwargs, key=key, pure=False, **self._submit_options
            )
        except BaseException:
            with self._lock:
                self._jobs.pop(call.job_id, None)
            raise
        job.dask_future = dask_future
        self._client.loop.add_callback(self._await_dask, job, dask_future)
        call.stop_event.on_set(functools.partial(self._on_stop, job))
        return job.future

    def _on_stop(self, job: _Job) -> None:
        """The job's stop event was set (any thread, maybe under the scheduler's lock: never block)."""
        with self._lock:
            if self._jobs.get(job.job_id) is not job:
                return
            started, dask_future = job.started, job.dask_future
        if started:
            self._set_remote(job)
        elif dask_future is not None:  # still queued as far as we know: take it off the cluster
            self._spawn(self._cancel_dask(dask_future))

    def _set_remote(self, job: _Job) -> None:
        """Set the job's `distributed.Event` (once), so its watcher on the worker sees the stop."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._lock:
            if job.set_op is not None:
                return
            job.set_op = done  # in place before the call goes out, so a clear always waits for it
        fut = self._spawn(self._client.scheduler.event_set(name=job.event_name))
        if fut is None:
            done.set_result(None)
        else:
            fut.add_done_callback(lambda _: done.set_result(None))

    async def _cancel_dask(self, dask_future: Any) -> None:
        await self._client.cancel([dask_future], asynchronous=True, reason="quiv_nb: cancelled while queued")

    async def _clear_remote(self, name: str, after: concurrent.futures.Future[None]) -> None:
        await asyncio.wrap_future(after)
        await self._client.scheduler.event_clear(name=name)

    def _spawn(self, coro: Any) -> concurrent.futures.Future[Any] | None:
        """Run a coroutine on the client's loop without waiting for it; log its failure."""
        try:
            fut = asyncio.run_coroutine_threadsafe(coro, self._client.loop.asyncio_loop)
        except RuntimeError:  # the client's loop is closed: nothing left to tell the cluster
            coro.close()
            return None
        with self._lock:
            self._ops.add(fut)
        fut.add_done_callback(self._op_done)
        return fut

    def _op_done(self, fut: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._ops.discard(fut)
        if not fut.cancelled() and fut.exception() is not None and self._client.status == "running":
            exc = fut.exception()
            _log.warning("quiv_nb: a Dask control call failed: %s", "".join(traceback.format_exception_only(exc)))

    # ------------------------------------------------------------------ on the client's loop

    async def _await_dask(self, job: _Job, dask_future: Any) -> None:
        """Wait for the Dask future; report an error or cancel, or that the task finished."""
        try:
            await dask_future.exception(asynchronous=True)
        except Exception:
            pass
        if dask_future.status == "finished":
            if job.call is not _RELEASED:  # usually its end record came first and it is complete
                self._inbox.put((_FINISHED, job))
        else:
            self._inbox.put((_OUTCOME, job, await _dask_failure(dask_future)))

    async def _fetch(self, job: _Job) -> None:
        """Gather an outcome that did not come with the end record."""
        try:
            outcome = await self._client.gather(job.dask_future, asynchronous=True)
            if not isinstance(outcome, Outcome):  # released meanwhile: the job is complete already
                return
        except Exception as exc:
            # Dask logs this error with its traceback; a handler that keeps log records (pytest
            # does) would keep the future alive through those frames' locals.
            traceback.clear_frames(exc.__traceback__)
            out = failure(exc)
            outcome = Outcome(False, error_message=f"could not fetch the job's result: {out.error_message}",
                              traceback=out.traceback)  # fmt: skip
        self._inbox.put((_OUTCOME, job, outcome))

    # ------------------------------------------------------------------ the dispatch thread

    def _dispatch(self) -> None:
        """Replay starts, progress and ends in arrival order (our own thread)."""
        waiting = self._waiting
        last_trim = time.monotonic()
        with worker_scope():
            while True:
                timeout = None
                if waiting:
                    now = time.monotonic()
                    for job in [j for j in waiting.values() if j.deadline <= now]:
                        del waiting[job.job_id]
                        _log.warning("quiv_nb: job %s ended without its last updates; fetching its result", job.key)
                        try:
                            self._start_fetch(job)
                        except Exception:
                            _log.exception("quiv_nb: could not fetch the result of job %s", job.key)
                    if waiting:
                        timeout = max(0.0, min(j.deadline for j in waiting.values()) - now)
                try:
                    item = self._inbox.get(timeout=timeout)
                except queue.Empty:
                    continue
                if item is None:
                    return
                try:
                    kind, job = item[0], item[1]
                    if kind == _EVENTS:
                        for job_id, records in item[1]:
                            job = self._jobs.get(job_id)
                            if job is not None:
                                self._feed(job, records)
                        now = time.monotonic()
                        if now - last_trim > _TRIM_EVERY:
                            last_trim = now
                            self._spawn(self._trim())
                    elif job.call is _RELEASED:
                        continue  # already complete
                    elif kind == _FINISHED:
                        if not job.fetching:
                            job.deadline = time.monotonic() + _END_GRACE
                            waiting[job.job_id] = job
                    else:
                        self._complete(job, item[2])
                except Exception:
                    _log.exception("quiv_nb: the Dask dispatch thread hit an error; it goes on")

    def _feed(self, job: _Job, records: Any) -> None:
        progress = job.call.progress
        for record in records:
            tag = record[0]
            if tag == _PROGRESS:
                if job.live:
                    try:
                        progress(*[_restore(a) for a in record[1]], **_restore_kwargs(record[2]))
                    except Exception:
                        _log.exception("quiv_nb: progress delivery for job %s failed", job.key)
            elif tag == _START:
                self._start(job)
            elif tag == _END:
                if record[1] is None:
                    self._start_fetch(job)
                    return
                try:
                    outcome = pickle.loads(record[1])
                except Exception as exc:
                    out = failure(exc)
                    outcome = Outcome(False, error_message=f"could not load the job's result here: {out.error_message}",
                                      traceback=out.traceback)  # fmt: skip
                self._complete(job, outcome)
                return

    def _start_fetch(self, job: _Job) -> None:
        if not job.fetching and job.dask_future is not None:
            job.fetching = True
            self._spawn(self._fetch(job))

    def _start(self, job: _Job) -> None:
        with self._lock:
            if job.started:
                return
            job.started = True  # from here on a stop sets the remote event (see _on_stop)
        if job.future.cancelled():  # cancelled while queued, but the worker had already begun
            self._set_remote(job)
            return
        if not job.call.on_start():
            self._set_remote(job)
            _settle(job.future, Outcome(False, error_message="cancelled before it started", cancelled=True))
            return
        job.live = job.future.set_running_or_notify_cancel()

    def _complete(self, job: _Job, outcome: Outcome) -> None:
        """Resolve the job's future and forget it: release its Dask key, clear its event."""
        if not job.started and outcome.ok:  # cannot happen (start precedes end); never report
            outcome = Outcome(False, error_message="the job's start was never reported", cancelled=True)
        _settle(job.future, outcome)
        self._waiting.pop(job.job_id, None)
        with self._lock:
            self._jobs.pop(job.job_id, None)
            set_op = job.set_op
        if set_op is not None:  # events are cleared when the job ends
            self._spawn(self._clear_remote(job.event_name, set_op))
        job.dask_future = None
        job.call = _RELEASED

    # ------------------------------------------------------------------ shutdown

    def shutdown(self, timeout: float | None = None) -> list[str]:
        """Wait up to `timeout` for submitted jobs, then release everything; return abandoned keys.

        Jobs still running after `timeout` are abandoned: their stop event is set, their futures
        are released and they resolve as cancelled; a handler that ignores its stop event may
        keep a worker thread busy until it returns. Unsubscribes the progress topic, stops the
        dispatch thread and closes the client only if this executor created it. Idempotent.
        """
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        with self._lock:
            if self._closed:
                return []
            self._closed = True
            jobs = list(self._jobs.values())
        on_dispatch = threading.current_thread() is self._thread
        pending = [j.future for j in jobs if not j.future.done()]
        while pending and not on_dispatch and self._client.status == "running":
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            # In slices: a client closed meanwhile will never deliver these outcomes.
            _, still = concurrent.futures.wait(pending, 0.5 if remaining is None else min(0.5, remaining))
            pending = list(still)
        with self._lock:
            left = list(self._jobs.values())
        abandoned = [j.key for j in left if not j.future.done()]
        for job in left:
            call, dask_future = job.call, job.dask_future
            if call is not _RELEASED:
                call.stop_event.set("shutdown")
            _settle(job.future, Outcome(False, error_message="abandoned at shutdown", cancelled=True))
            if dask_future is not None:
                self._spawn(self._cancel_dask(dask_future))
        with self._lock:
            ops = list(self._ops)
        if ops and self._client.status == "running":
            concurrent.futures.wait(ops, timeout=2.0)
        self._inbox.put(None)
        if not on_dispatch:
            self._thread.join(2.0)
        with self._lock:
            self._jobs.clear()
        self._release_topic()
        if self._close_client:
            try:
                self._client.close()
            except Exception:
                _log.exception("quiv_nb: closing the Dask client failed")
        return abandoned

    def _release_topic(self) -> None:
        """Drop the topic, its subscription and stored batches, from the scheduler.

        Failing that, unsubscribe. (Not both: the unsubscribe message travels another route
        and, arriving after the drop, would recreate the topic empty.)
        """
        if self._client.status != "running":
            return
        trim = self._spawn(self._trim(drop=True))
        if trim is not None:
            concurrent.futures.wait([trim], timeout=2.0)
        if not self._trim_ok or trim is None or not trim.done():
            try:
                self._client.unsubscribe_topic(self._topic)
            except Exception:
                _log.debug("quiv_nb: unsubscribing %s failed", self._topic, exc_info=True)

    async def _trim(self, drop: bool = False) -> None:
        """Trim the topic's history on the scheduler; a scheduler that refuses it is left alone."""
        if not self._trim_ok:
            return
        try:
            await self._client.run_on_scheduler(_trim_topic, self._topic, drop, asynchronous=True)
        except Exception:  # pickled functions refused (distributed.scheduler.pickle: false), etc.
            self._trim_ok = False
            _log.debug("quiv_nb: could not trim topic %s on the scheduler", self._topic, exc_info=True)


async def _dask_failure(dask_future: Any) -> Outcome:
    """An `Outcome` for a Dask future that erred or was cancelled (our wrapper never returned)."""
    if dask_future.status == "cancelled":
        return Outcome(False, error_message="cancelled on the Dask cluster", cancelled=True)
    try:
        exc = await dask_future.exception(asynchronous=True)
        tb = await dask_future.traceback(asynchronous=True)
    except Exception as error:
        return failure(error)
    if exc is None:
        return Outcome(False, error_message=f"the Dask future ended as {dask_future.status!r}")
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, ModuleNotFoundError) and "quiv_nb" in str(exc):
        message += " (install quiv_nb on the Dask workers and scheduler)"
    return Outcome(False, error_message=message, traceback=text)


def _trim_topic(topic: str, drop: bool, dask_scheduler: Any = None) -> None:
    """On the scheduler: forget a topic's stored events, or (`drop`) the whole topic.

    The scheduler's event broker keeps the last 1000 messages of every topic for `get_events`;
    nobody reads ours back, so they are only memory. Reaches into the broker (distributed >=
    2024.x keeps topics in `Scheduler._broker._topics`); on any other layout it does nothing.
    """
    topics = getattr(getattr(dask_scheduler, "_broker", None), "_topics", None)
    if not isinstance(topics, dict) or topic not in topics:
        return
    if drop:
        del topics[topic]
    else:
        topics[topic].events.clear()


def _settle(future: concurrent.futures.Future[Outcome], outcome: Outcome) -> None:
    """Resolve `future` unless it is already done (cancelled by the scheduler, or abandoned)."""
    try:
        future.set_result(outcome)
    except concurrent.futures.InvalidStateError:
        pass


def _key_part(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_")[:40] or "job"


def _released(*args: Any, **kwargs: Any) -> None:
    return None


# A finished `_Job` drops its call (the handler and its arguments) but keeps the attribute valid.
_RELEASED = JobCall("", _released, (), {}, HandlerSpec(False, ()), StopEvent(), _released)


def _scheduler_noop() -> Any:
    """The scheduler's hook for tasks without a progress callback (compared by identity)."""
    from .dispatch import noop_hook

    return noop_hook


_SCHEDULER_NOOP = _scheduler_noop()


# ---------------------------------------------------------------------------------------------
# Getting a client (used by `%quiv cluster`)


def start_local_cluster(
    n_workers: int = 2,
    *,
    processes: bool = True,
    threads_per_worker: int | None = None,
    **cluster_kwargs: Any,
) -> Client:
    """Start a `LocalCluster` bound to 127.0.0.1 and return a client that owns it.

    Closing the returned client also closes its cluster. `processes=True` (Dask's default) runs
    each worker in its own process, so CPU-bound Python code runs in parallel; `processes=False`
    keeps workers as threads of this process (fast to start, shares the GIL). Other keywords go
    to `distributed.LocalCluster` (e.g. `dashboard_address=":0"` for a free port; Dask's
    default is 8787). Blocks until the workers are up (a few seconds with processes).
    """
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ConfigurationError(f"n_workers must be an integer >= 1, got {n_workers!r}")
    if processes or "protocol" in cluster_kwargs or "host" in cluster_kwargs:
        cluster_kwargs.setdefault("host", "127.0.0.1")
    # With processes=False and no host, Dask talks in-process (inproc://) and binds no socket.
    return Client(n_workers=n_workers, processes=processes, threads_per_worker=threads_per_worker, **cluster_kwargs)


def connect(address: str, *, timeout: float = 10.0, **client_kwargs: Any) -> Client:
    """Connect to the Dask scheduler at `address` (e.g. ``tcp://10.0.0.5:8786``).

    Raises `ConfigurationError` for an address that is not a string and `ConnectionError` when
    no scheduler answers within `timeout` seconds.
    """
    if not isinstance(address, str) or not address.strip():
        raise ConfigurationError(f"address must be a Dask scheduler address such as 'tcp://host:8786', got {address!r}")
    try:
        return Client(address.strip(), timeout=timeout, **client_kwargs)
    except OSError as exc:
        raise ConnectionError(f"no Dask scheduler answered at {address!r} within {timeout:g}s: {exc}") from exc
