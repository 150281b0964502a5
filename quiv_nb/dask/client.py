"""`DaskExecutor`: the `JobExecutor` that sends each job body of a `Quiv` to a Dask cluster.

A thin facade over the client side's parts: `cluster.resolve_client` (which client),
`ClusterOps` (control calls on the client's loop), `Replayer` (the dispatch thread) and the
`JobTable`; the worker side is `worker.run_on_worker`.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import queue
import re
import time
import uuid
import weakref
from collections.abc import Mapping
from typing import Any

from distributed import Client

from ..dispatch import noop_hook
from ..errors import ConfigurationError
from ..execution import JobCall, Outcome
from .cluster import resolve_client
from .jobs import ClientJob, InboxItem, JobTable, TopicBatch, settle
from .remote import ClusterOps
from .replay import Replayer
from .wire import JobHeader
from .worker import run_on_worker

__all__ = ["DaskExecutor"]

_log = logging.getLogger("quiv_nb")

# What this package needs from the scheduler, by public name: `noop_hook` is the progress hook
# the scheduler gives jobs of tasks without a progress callback. Compared by identity, so such
# jobs send no payloads from the worker.
_NO_PROGRESS = noop_hook
# Keys the scheduler owns; `submit_options` may not override them.
_RESERVED_SUBMIT = frozenset({"key", "pure", "retries", "actor", "actors"})


class _TopicHandler:
    """Runs on the client's loop for each batch on the topic: hands it to the dispatch thread.

    The client keeps topic handlers even after unsubscribing: this one holds the inbox weakly,
    so it does not keep an executor alive.
    """

    __slots__ = ("_inbox",)

    def __init__(self, inbox: queue.SimpleQueue[InboxItem]) -> None:
        self._inbox: weakref.ref[queue.SimpleQueue[InboxItem]] = weakref.ref(inbox)

    def __call__(self, event: tuple[float, Any]) -> None:
        inbox = self._inbox()
        if inbox is not None:
            inbox.put(TopicBatch(event[1]))


class DaskExecutor:
    """A `JobExecutor` that runs every job of a `Quiv` on a Dask cluster.

    `client` is a `distributed.Client` (never closed by us unless `close_client=True`), a
    scheduler address (we connect, and close that client at shutdown), or None for the current
    default client. `flush_interval` bounds how often each worker sends a progress batch;
    `watch_delay` is how long a job runs before its cancel watcher starts (shorter jobs need
    none); `watch_period` is the timeout of one watcher wait. `submit_options` go to
    `Client.submit` (e.g. `resources=`, `workers=`, `priority=`). Raises `ConfigurationError`
    for a bad argument or when there is no client to use.

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
        _check_timing(flush_interval, watch_delay, watch_period)
        options = dict(submit_options or {})
        reserved = sorted(_RESERVED_SUBMIT & set(options))
        if reserved:
            raise ConfigurationError(
                f"submit_options must not set {', '.join(reserved)}: quiv_nb chooses keys and does its own retries"
            )
        self._client, owned = resolve_client(client)
        self._close_client = owned if close_client is None else bool(close_client)
        self._flush_interval = float(flush_interval)
        self._watch_delay = float(watch_delay)
        self._watch_period = float(watch_period)
        self._submit_options = options
        token = uuid.uuid4().hex
        self._topic = f"quiv_nb-progress-{token}"
        self._closed = False

        self._jobs = JobTable()
        inbox: queue.SimpleQueue[InboxItem] = queue.SimpleQueue()
        self._ops = ClusterOps(self._client, self._topic, self._jobs.lock, inbox.put)
        self._replayer = Replayer(self._jobs, self._ops, inbox, name=f"quiv_nb-dask-{token[:8]}")
        self._client.subscribe_topic(self._topic, _TopicHandler(inbox))
        self._replayer.start()

    def __repr__(self) -> str:
        state = "shut down" if self._closed else f"{len(self._jobs)} jobs"
        address = getattr(self._client.scheduler, "address", "?")
        return f"<DaskExecutor {address} ({state})>"

    @property
    def client(self) -> Client:
        """The `distributed.Client` jobs are submitted through."""
        return self._client

    def submit(self, call: JobCall) -> concurrent.futures.Future[Outcome]:
        """Send one job to the cluster (any thread); the future resolves to its `Outcome` (it never raises).

        Raises `RuntimeError` after `shutdown` (the scheduler turns that into a failed job).
        """
        if self._closed:
            raise RuntimeError("this DaskExecutor is shut down")
        name = call.extra.get("task_name") or getattr(call.func, "__name__", None) or "job"
        key = f"quiv-{_key_part(str(name))}-{call.job_id}"
        job = ClientJob(call, key, f"quiv_nb-stop-{call.job_id}")
        header = JobHeader(
            self._topic, call.job_id, job.event_name, call.spec, call.progress is not _NO_PROGRESS,
            self._flush_interval, self._watch_delay, self._watch_period,
        )  # fmt: skip
        self._jobs.add(job)
        try:
            dask_future = self._client.submit(
                run_on_worker, header, call.func, call.args, call.kwargs, key=key, pure=False, **self._submit_options
            )
        except BaseException:
            self._jobs.discard(call.job_id)
            raise
        job.dask_future = dask_future
        self._ops.watch(job, dask_future)
        call.stop_event.on_set(functools.partial(self._on_stop, job))
        return job.future

    def _on_stop(self, job: ClientJob) -> None:
        """The job's stop event was set (any thread, maybe under the scheduler's lock: never block)."""
        with self._jobs.lock:
            if not self._jobs.holds(job):
                return
            started, dask_future = job.started, job.dask_future
        if started:
            self._ops.set_stop(job)
        elif dask_future is not None:  # still queued as far as we know: take it off the cluster
            self._ops.cancel(dask_future)

    def shutdown(self, timeout: float | None = None) -> list[str]:
        """Wait up to `timeout` for submitted jobs, then release everything; return abandoned keys.

        Jobs still running after `timeout` are abandoned: their stop event is set, their futures
        are released and they resolve as cancelled; a handler that ignores its stop event may
        keep a worker thread busy until it returns. Unsubscribes the progress topic, stops the
        dispatch thread and closes the client only if this executor created it. Idempotent.
        """
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        with self._jobs.lock:
            if self._closed:
                return []
            self._closed = True
        if not self._replayer.on_thread():  # its own callbacks cannot wait for what it delivers
            self._wait_for_jobs(deadline)
        abandoned = self._abandon_the_rest()
        self._ops.drain(timeout=2.0)
        self._replayer.stop(timeout=2.0)
        self._jobs.clear()
        self._ops.release_topic()
        if self._close_client:
            try:
                self._client.close()
            except Exception:
                _log.exception("quiv_nb: closing the Dask client failed")
        return abandoned

    def _wait_for_jobs(self, deadline: float | None) -> None:
        pending = [j.future for j in self._jobs.all() if not j.future.done()]
        while pending and self._ops.connected:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            # In slices: a client closed meanwhile will never deliver these outcomes.
            _, still = concurrent.futures.wait(pending, 0.5 if remaining is None else min(0.5, remaining))
            pending = list(still)

    def _abandon_the_rest(self) -> list[str]:
        left = self._jobs.all()
        abandoned = [j.key for j in left if not j.future.done()]
        for job in left:
            call, dask_future = job.call, job.dask_future
            if not job.released:
                call.stop_event.set("shutdown")
            settle(job.future, Outcome(False, error_message="abandoned at shutdown", cancelled=True))
            if dask_future is not None:
                self._ops.cancel(dask_future)
        return abandoned


def _check_timing(flush_interval: float, watch_delay: float, watch_period: float) -> None:
    for name, value in (("flush_interval", flush_interval), ("watch_delay", watch_delay)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 10:
            raise ConfigurationError(f"{name} must be a number of seconds between 0 and 10, got {value!r}")
    if isinstance(watch_period, bool) or not isinstance(watch_period, (int, float)) or not 0 < watch_period <= 60:
        raise ConfigurationError(f"watch_period must be a number of seconds in (0, 60], got {watch_period!r}")


def _key_part(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_")[:40] or "job"
