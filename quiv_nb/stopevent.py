"""`StopEvent`: a job's stop event, a `threading.Event` that also runs callbacks once when set.

The scheduler sets stop events under its lock and runs their callbacks (anyone's code) after
releasing it (`set_later`); a handler waits on one or polls it. A leaf: imports nothing of quiv_nb.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

__all__ = ["StopEvent"]

_log = logging.getLogger("quiv_nb")


class StopEvent(threading.Event):
    """A job's stop event: a `threading.Event` that also runs callbacks, once, when it is set.

    Every `threading.Event` method is reimplemented on this class's own lock, so nothing depends
    on CPython's private `Event` internals (`_flag`, `_cond`); it subclasses `Event` only so
    `isinstance(stop, threading.Event)` holds for handlers. The lock makes `set` and `on_set`
    atomic with respect to each other: each callback runs exactly once, on the thread that set
    the event (or, registered after that, on the registering thread). The `Condition` that
    `wait` needs is built on first wait, on the same lock: most jobs' stop events are never
    waited on, and building it costs more than the rest of starting a job.
    """

    __slots__ = ("_callbacks", "_lock", "_set", "_waiters_cond", "reason")

    def __init__(self) -> None:  # not `super().__init__()`: nothing of `Event`'s own state is used
        self._lock = threading.Lock()
        self._set = False
        self._waiters_cond: threading.Condition | None = None
        self._callbacks: list[Callable[[], None]] | None = None
        self.reason: str | None = None  # why it was set first ("cancel", "timeout", ...), None if unsaid

    def is_set(self) -> bool:
        return self._set

    isSet = is_set

    def set(self, reason: str | None = None) -> None:
        """Set the event (any thread); the first call records `reason` and runs the callbacks."""
        self.set_later(reason)()

    def set_later(self, reason: str | None = None) -> Callable[[], None]:
        """Set the event now; return the effect that runs its callbacks (call it without locks held).

        The scheduler sets stop events under its lock (so a worker starting or finishing the job
        sees the flag at once) but runs the callbacks, which may be anyone's code, after releasing it.
        """
        with self._lock:
            if self._set:
                return _nothing
            self._set = True
            self.reason = reason
            callbacks, self._callbacks = self._callbacks, None
            if self._waiters_cond is not None:
                self._waiters_cond.notify_all()
        if not callbacks:
            return _nothing

        def run_callbacks() -> None:
            for callback in callbacks:
                _run_stop_callback(callback)

        return run_callbacks

    def clear(self) -> None:
        with self._lock:
            self._set = False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set or `timeout` seconds pass; True if set (any thread)."""
        if self._set:
            return True
        with self._lock:
            if self._waiters_cond is None:
                self._waiters_cond = threading.Condition(self._lock)
            return self._waiters_cond.wait_for(self.is_set, timeout)

    def on_set(self, callback: Callable[[], None]) -> None:
        """Call `callback()` once the event is set (at once, on this thread, if it already is)."""
        with self._lock:
            if not self._set:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return
        _run_stop_callback(callback)

    def __repr__(self) -> str:
        return f"<StopEvent {'set' if self._set else 'unset'}{f' ({self.reason})' if self.reason else ''}>"


def _nothing() -> None:
    return None


def _run_stop_callback(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:
        _log.exception("quiv_nb: a stop-event listener failed")
