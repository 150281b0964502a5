"""The render pump: one daemon thread per process that redraws every live bar and dashboard.

Hooks only record state and call `request()` (O(1)); the pump decides when to draw. It serves
dirty drawables round-robin, at most one redraw per `min_interval` each (~10 Hz), and all of
them together within one message budget (a token bucket of `RATE` messages per second), so any
number of bars stays under ipykernel's iopub rate limit and never floods the frontend. A final
state is drawn as soon as the budget allows, never skipped. Drawing happens on this thread, so
bars stay live while a notebook cell blocks the kernel's loop.

The thread sleeps without a timeout while nothing is queued and otherwise exactly until the next
drawable is due (or the budget refills), so an idle process pays nothing for it. At interpreter
exit the pump gets a moment to draw what is still queued (the last line of a script's text bar).
In a kernel, the kernel package closes the process-wide pump at exit (`close`, registered through
`hooks.register_before_exit`) before ipykernel closes its sockets: a draw racing that close
would send on a zmq socket being closed and can abort the kernel inside libzmq.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque
from typing import Callable

from ..seams import Drawable

__all__ = ["BURST", "RATE", "Drawable", "RenderPump", "TokenBucket", "close_pump", "current_pump", "get_pump"]

_log = logging.getLogger("quiv_nb")

RATE = 250.0  # messages per second for all drawables together (the server limits iopub to 1,000)
BURST = 25.0  # tokens the bucket may hold: a short burst after a quiet spell
_EXIT_FLUSH = 0.5  # seconds the pump may still draw at interpreter exit
# Seconds `close` still gives a draw in progress (on the pump's thread or a job's) once its flush used up the
# timeout: one draw takes milliseconds, and returning while it sends is the race `close` exists to prevent.
_CLOSE_GRACE = 0.5


class TokenBucket:
    """A thread-safe token bucket (messages or bytes): the pump's message budget, and the output routes' byte budget."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._at = burst, time.monotonic()
        self._lock = threading.Lock()

    def take(self, size: float) -> bool:
        """Spend `size` if it is there (or the bucket is full: one oversized message may pass); any thread."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= size or self._tokens >= self.burst:
                self._tokens -= size
                return True
            return False

    def spend(self, size: float) -> None:
        """Spend `size` even if it is not there (a final flush): later takes wait for the debt."""
        with self._lock:
            self._tokens -= size

    def level(self) -> float:
        """The tokens there now (refilled first; negative while in debt); any thread."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            return self._tokens

    def seconds_until(self, size: float) -> float:
        """Seconds until `size` tokens are there (0.0 if they are now); any thread."""
        missing = size - self.level()
        return missing / self.rate if missing > 0 else 0.0



class _Slot:
    __slots__ = ("count", "dead", "final", "last", "queued")

    def __init__(self) -> None:
        self.queued = False
        self.last = float("-inf")  # pump clock of the last draw
        self.final = False
        self.count = 0  # draws so far (flush waits for it to move)
        self.dead = False  # forgotten: flush stops waiting for it


class RenderPump:
    """Round-robin redraws of dirty drawables within a shared message budget."""

    def __init__(self, rate: float = RATE, burst: float = BURST) -> None:
        self.rate, self.burst = rate, burst
        self._budget = TokenBucket(rate, burst)  # messages: one budget for every drawable
        self._queue: deque[Drawable] = deque()
        # Keyed by id() because a drawable need not be hashable; a weakref finalizer drops the
        # slot when the drawable dies, so a new object that reuses the id starts clean.
        self._slots: dict[int, _Slot] = {}
        self._lock = threading.Lock()
        self._drew = threading.Condition(self._lock)  # notified after every draw (for flush)
        self._wake = threading.Event()
        self._current: _Slot | None = None  # the slot being drawn right now
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # the running thread's stop flag (a new one per thread)
        self._atexit = False
        self._closed = False  # set by `close`: requests are dropped from then on
        # Held by `send_now` while it sends on a caller's thread, and by `close` to refuse further ones.
        self._sync_lock = threading.Lock()
        self.messages_sent = 0  # for benchmarks and tests (written by the pump thread only)
        self.draws = 0

    def request(self, drawable: Drawable, final: bool = False) -> None:
        """Ask for a redraw of `drawable`; thread-safe, O(1), never blocks on a draw.

        `final=True` marks a last state: it is drawn without waiting out `min_interval`.
        """
        slot = self._slots.get(id(drawable))
        if slot is None:
            slot = self._new_slot(drawable)
        if final:
            slot.final = True
        if slot.queued:
            return
        with self._lock:
            if slot.queued or self._closed:
                return
            slot.queued = True
            self._queue.append(drawable)
            if self._thread is None or not self._thread.is_alive():
                self._start()
        self._wake.set()

    def forget(self, drawable: Drawable) -> None:
        """Stop tracking `drawable` (after its last draw); a queued redraw is dropped."""
        with self._lock:
            slot = self._slots.pop(id(drawable), None)
            if slot is not None:
                slot.dead = True
            try:
                self._queue.remove(drawable)
            except ValueError:
                pass
            self._drew.notify_all()

    def flush(self, timeout: float = 2.0, *, finals_only: bool = False) -> bool:
        """Block until every drawable queued or being drawn now has been drawn; True if in time.

        A drawable not yet due is waited for (at most its `min_interval`); requests made after
        the call are not, so a drawable that keeps itself queued (a live dashboard) cannot make
        this wait forever. For tests and clean exits. `finals_only`: wait only for final states
        (a bar whose job ended), not for redraws of running ones (the end of a notebook cell).
        """
        with self._drew:
            slots = [slot for slot in map(self._slots.get, map(id, self._queue)) if slot is not None]
            pending = [slot for slot in slots if slot.final or not finals_only]
            if self._current is not None:
                pending.append(self._current)
            marks = [(slot, slot.count) for slot in pending]
            return self._drew.wait_for(lambda: all(s.count > n or s.dead for s, n in marks), timeout)

    def shutdown(self, timeout: float = 2.0) -> bool:
        """Draw what is queued, then stop the thread; True if it ended in time.

        For private pumps (tests); the process-wide pump is never shut down. A later `request`
        starts a new thread.
        """
        self.flush(timeout)
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        self._wake.set()
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def send_now(self, send: Callable[[], int]) -> int | None:
        """Run `send` (a draw that must not wait for the pump) on the calling thread, unless closed.

        Any thread (a job's own thread sends its last lines at its end). Returns what `send`
        returned, or None when the pump is closed and `send` was not called. `close` waits for a
        send in progress and refuses later ones: these sends, too, stop before the kernel closes
        its sockets.
        """
        with self._sync_lock:
            if self._closed:
                return None
            return send()

    def close(self, timeout: float = 2.0) -> bool:
        """Draw what is queued, then stop for good; True if the thread ended in time.

        Runs on the calling thread (the kernel package calls it on the main thread at kernel exit). Later
        `request` and `send_now` calls are dropped and never start a thread, so once this returns
        True the pump sends nothing more, on its thread or on a caller's. Idempotent.
        """
        deadline = time.monotonic() + timeout
        self.flush(timeout)  # final states still reach the frontend while its channel is open
        # Wait for a `send_now` in progress (a job's end-of-job lines), and refuse the next ones.
        quiet = self._sync_lock.acquire(timeout=max(_CLOSE_GRACE, deadline - time.monotonic()))
        try:
            with self._lock:
                self._closed = True
                thread, self._thread = self._thread, None
                self._stop.set()
                self._queue.clear()  # undrawn after `timeout`: dropped, the pump is going away
                self._drew.notify_all()
        finally:
            if quiet:
                self._sync_lock.release()
        self._wake.set()
        if thread is None:
            return quiet
        thread.join(max(_CLOSE_GRACE, deadline - time.monotonic()))
        return quiet and not thread.is_alive()

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        return self._closed

    @property
    def pending(self) -> int:
        """How many drawables wait for a redraw."""
        return len(self._queue)

    # ------------------------------------------------------------------------------ internals

    def _new_slot(self, drawable: Drawable) -> _Slot:
        key = id(drawable)
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot()
                try:
                    weakref.finalize(drawable, self._drop, key).atexit = False
                except TypeError:  # not weak-referenceable: its slot lives as long as the pump
                    pass
        return slot

    def _drop(self, key: int) -> None:
        # No lock: a finalizer runs wherever the last reference dies, possibly on a thread that
        # already holds `_lock` (the pump dropping a drawable it just drew). The dict pop is
        # atomic, and no live object can share the dead one's id yet.
        self._slots.pop(key, None)

    def _start(self) -> None:
        """Start the pump thread (called with the lock held)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name="quiv_nb-render", daemon=True)
        self._thread.start()
        if not self._atexit:
            self._atexit = True
            atexit.register(self.flush, _EXIT_FLUSH)

    def _run(self, stop: threading.Event) -> None:
        wait = None
        while True:
            self._wake.wait(wait)
            if stop.is_set():
                return
            self._wake.clear()
            try:
                self._round()
                wait = self._next_wait()
            except Exception:  # a bug here must not stop every bar for good
                _log.exception("quiv_nb: render pump error")
                wait = 0.1

    def _round(self) -> None:
        """Draw each queued drawable that is due, in queue order, while the budget lasts."""
        queue, budget = self._queue, self._budget
        for _ in range(len(queue)):
            if budget.level() < 1:
                break
            with self._lock:
                if not queue:
                    break
                drawable = queue.popleft()
                slot = self._slots.get(id(drawable))
                if slot is None:  # forgotten while queued
                    continue
                now = time.monotonic()
                if not slot.final and now - slot.last < _interval(drawable):
                    queue.append(drawable)  # too soon: keep its place in the round
                    continue
                slot.queued = slot.final = False
                slot.last = now
                self._current = slot
            sent = 1
            try:
                sent = int(drawable.pump_draw() or 0)
            except Exception:
                _log.exception("quiv_nb: redrawing %r failed", drawable)
            finally:
                with self._lock:
                    self._current = None
                    slot.count += 1
                    self._drew.notify_all()
            budget.spend(sent)
            self.messages_sent += sent
            self.draws += 1

    def _next_wait(self) -> float | None:
        """Seconds until the next queued drawable is due and the budget allows it (None: sleep until woken)."""
        with self._lock:
            if not self._queue:
                return None
            now = time.monotonic()
            due = min(
                (0.0 if slot is None or slot.final else slot.last + _interval(d) - now)
                for d in self._queue
                for slot in (self._slots.get(id(d)),)
            )
        return min(1.0, max(0.001, due, self._budget.seconds_until(1.0)))


def _interval(drawable: Drawable) -> float:
    """The drawable's `min_interval` (0.1 s if it has none or it is unreadable)."""
    try:
        return float(drawable.min_interval)
    except Exception:
        return 0.1


_pump: RenderPump | None = None
_pump_lock = threading.Lock()


def current_pump() -> RenderPump | None:
    """The process-wide pump if one was created, else None (never creates one; any thread)."""
    return _pump


def get_pump() -> RenderPump:
    """The process-wide pump (created on first use; its thread starts on the first request)."""
    global _pump
    if _pump is None:
        with _pump_lock:
            if _pump is None:
                _pump = RenderPump()
    return _pump


def close_pump(timeout: float = 2.0) -> bool:
    """Close the process-wide pump if one was made (see `RenderPump.close`); True when it is quiet.

    The kernel package registers this as a kernel-exit step (`hooks.register_before_exit`).
    """
    pump = _pump
    return True if pump is None else pump.close(timeout)
