"""Control calls to the cluster, run on the Dask client's event loop without blocking the caller.

`ClusterOps` is the client side's only door to the cluster besides `Client.submit`: it sets and
clears the stop events, cancels queued tasks, awaits Dask futures and gathers outcomes (posting
what it learns to the dispatch thread), and trims the progress topic on the Dask scheduler.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import traceback
from collections.abc import Coroutine
from typing import Any, Callable

from distributed import Client

from ..execution import Outcome, failure
from .jobs import ClientJob, DaskFinished, InboxItem, Resolved

__all__ = ["ClusterOps"]

_log = logging.getLogger("quiv_nb")


class ClusterOps:
    """Fire-and-forget calls on `client`'s loop; failures are logged, never raised to the caller.

    `lock` is the job table's lock (it guards `ClientJob.set_op`); `post` hands a message to the
    dispatch thread.
    """

    def __init__(self, client: Client, topic: str, lock: threading.Lock, post: Callable[[InboxItem], None]) -> None:
        # Typed loosely: `Client.loop` and `Client.scheduler` are Optional until it connects, and
        # this client is connected (`connected` says when it no longer is).
        self._client: Any = client
        self._topic = topic
        self._lock = lock
        self._post = post
        self._ops: set[concurrent.futures.Future[Any]] = set()
        self._ops_lock = threading.Lock()
        self._trim_ok = True  # cleared when the Dask scheduler refuses our trim function

    @property
    def connected(self) -> bool:
        return self._client.status == "running"

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any] | None:
        """Run `coro` on the client's loop without waiting for it (any thread); None if that loop is closed."""
        try:
            fut = asyncio.run_coroutine_threadsafe(coro, self._client.loop.asyncio_loop)
        except RuntimeError:  # the client's loop is closed: nothing left to tell the cluster
            coro.close()
            return None
        with self._ops_lock:
            self._ops.add(fut)
        fut.add_done_callback(self._op_done)
        return fut

    def _op_done(self, fut: concurrent.futures.Future[Any]) -> None:
        with self._ops_lock:
            self._ops.discard(fut)
        if not fut.cancelled() and fut.exception() is not None and self.connected:
            exc = fut.exception()
            _log.warning("quiv_nb: a Dask control call failed: %s", "".join(traceback.format_exception_only(exc)))

    def drain(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the control calls in flight (at shutdown)."""
        with self._ops_lock:
            ops = list(self._ops)
        if ops and self.connected:
            concurrent.futures.wait(ops, timeout=timeout)

    # ------------------------------------------------------------------ stop events and cancel

    def set_stop(self, job: ClientJob) -> None:
        """Set the job's `distributed.Event` (once), so its watcher on the worker sees the stop."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._lock:
            if job.set_op is not None:
                return
            job.set_op = done  # in place before the call goes out, so a clear always waits for it
        fut = self.spawn(self._client.scheduler.event_set(name=job.event_name))
        if fut is None:
            done.set_result(None)
        else:
            fut.add_done_callback(lambda _: done.set_result(None))

    def clear_stop(self, name: str, after: concurrent.futures.Future[None]) -> None:
        """Clear the stop event `name` once its set (`after`) is done, so the scheduler forgets it."""
        self.spawn(self._clear(name, after))

    async def _clear(self, name: str, after: concurrent.futures.Future[None]) -> None:
        await asyncio.wrap_future(after)
        await self._client.scheduler.event_clear(name=name)

    def cancel(self, dask_future: Any) -> None:
        """Take a queued task off the cluster."""
        self.spawn(self._cancel(dask_future))

    async def _cancel(self, dask_future: Any) -> None:
        await self._client.cancel([dask_future], asynchronous=True, reason="quiv_nb: cancelled while queued")

    # ------------------------------------------------------------------ outcomes

    def watch(self, job: ClientJob, dask_future: Any) -> None:
        """Post `DaskFinished` when the task finishes, or `Resolved` when it errs or is cancelled."""
        self._client.loop.add_callback(self._await_dask, job, dask_future)

    async def _await_dask(self, job: ClientJob, dask_future: Any) -> None:
        try:
            await dask_future.exception(asynchronous=True)
        except Exception:  # cancelled: the status below says so
            pass
        if dask_future.status == "finished":
            if not job.released:  # usually its Ended record came first and it is complete
                self._post(DaskFinished(job))
        else:
            self._post(Resolved(job, await _dask_failure(dask_future)))

    def fetch(self, job: ClientJob) -> None:
        """Gather an outcome that did not come with the `Ended` record (once per job); posts `Resolved`."""
        if not job.fetching and job.dask_future is not None:
            job.fetching = True
            self.spawn(self._fetch(job))

    async def _fetch(self, job: ClientJob) -> None:
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
        self._post(Resolved(job, outcome))

    # ------------------------------------------------------------------ the progress topic

    def trim_topic(self) -> None:
        """Forget the topic's stored batches on the Dask scheduler (in the background)."""
        self.spawn(self._trim())

    def release_topic(self) -> None:
        """Drop the topic, its subscription and stored batches, from the scheduler (blocks up to 2 s).

        Failing that, unsubscribe. (Not both: the unsubscribe message travels another route
        and, arriving after the drop, would recreate the topic empty.)
        """
        if not self.connected:
            return
        trim = self.spawn(self._trim(drop=True))
        if trim is not None:
            concurrent.futures.wait([trim], timeout=2.0)
        if not self._trim_ok or trim is None or not trim.done():
            try:
                self._client.unsubscribe_topic(self._topic)
            except Exception:
                _log.debug("quiv_nb: unsubscribing %s failed", self._topic, exc_info=True)

    async def _trim(self, drop: bool = False) -> None:
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
