"""The render pump: one daemon thread per process that redraws every live bar and dashboard.

Hooks only record state and call `request()` (O(1)); the pump decides when to draw. It serves
dirty drawables round-robin, at most one redraw per `min_interval` each (~10 Hz), and all of
them together within one message budget (a token bucket of `RATE` messages per second), so any
number of bars stays under ipykernel's iopub rate limit and never floods the frontend. A final
state is drawn as soon as the budget allows, never skipped. Drawing happens on this thread, so
bars stay live while a notebook cell blocks the kernel's loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Protocol

__all__ = ["Drawable", "RenderPump", "get_pump", "RATE"]

_log = logging.getLogger("quiv_nb")

RATE = 250.0  # messages per second for all drawables together (DESIGN §3: <= 300)
BURST = 25.0  # tokens the bucket may hold: a short burst after a quiet spell


class Drawable(Protocol):
    """Something the pump redraws. `pump_draw` runs on the pump thread only."""

    min_interval: float  # seconds between two redraws of this drawable (0.1 → ~10 Hz)

    def pump_draw(self) -> int:
        """Redraw from the latest recorded state; return how many frontend messages it sent."""
        ...


class _Slot:
    __slots__ = ("queued", "last", "final")

    def __init__(self) -> None:
        self.queued = False
        self.last = 0.0
        self.final = False


class RenderPump:
    """Round-robin redraws of dirty drawables within a shared message budget."""

    def __init__(self, rate: float = RATE, burst: float = BURST) -> None:
        self.rate, self.burst = rate, burst
        self._queue: deque[Drawable] = deque()
        self._slots: dict[int, _Slot] = {}
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.messages_sent = 0  # for benchmarks and tests

    def request(self, drawable: Drawable, final: bool = False) -> None:
        """Ask for a redraw of `drawable` (thread-safe, O(1)); `final=True` for a last state."""
        slot = self._slots.get(id(drawable))
        if slot is None:
            with self._lock:
                slot = self._slots.setdefault(id(drawable), _Slot())
        if final:
            slot.final = True
        if slot.queued:
            return
        with self._lock:
            if slot.queued:
                return
            slot.queued = True
            self._queue.append(drawable)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="quiv_nb-render", daemon=True)
                self._thread.start()
        self._wake.set()

    def forget(self, drawable: Drawable) -> None:
        """Stop tracking `drawable` (after its last draw); a queued redraw is dropped."""
        with self._lock:
            self._slots.pop(id(drawable), None)
            try:
                self._queue.remove(drawable)
            except ValueError:
                pass

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until nothing is queued (for tests and clean shutdowns); True if drained."""
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.005)
        return not self._queue

    def _run(self) -> None:
        tokens, last_refill = self.burst, time.monotonic()
        queue = self._queue
        while True:
            self._wake.wait(None if not queue else 0.02)
            self._wake.clear()
            now = time.monotonic()
            tokens = min(self.burst, tokens + (now - last_refill) * self.rate)
            last_refill = now
            for _ in range(len(queue)):
                if tokens < 1:
                    break
                with self._lock:
                    if not queue:
                        break
                    drawable = queue.popleft()
                    slot = self._slots.get(id(drawable))
                    if slot is None:
                        continue
                    interval = getattr(drawable, "min_interval", 0.1)
                    if not slot.final and now - slot.last < interval:
                        queue.append(drawable)  # too soon: keep its place in the round
                        continue
                    slot.queued = False
                    slot.final = False
                    slot.last = now
                try:
                    sent = drawable.pump_draw()
                except Exception:
                    _log.exception("quiv_nb: redrawing %r failed", drawable)
                    sent = 1
                tokens -= sent
                self.messages_sent += sent


_pump: RenderPump | None = None
_pump_lock = threading.Lock()


def get_pump() -> RenderPump:
    """The process-wide pump (created on first use; its thread starts on the first request)."""
    global _pump
    if _pump is None:
        with _pump_lock:
            if _pump is None:
                _pump = RenderPump()
    return _pump
