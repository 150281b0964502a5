"""The timeline: a heap of typed due entries and the scheduler thread that fires them.

Entries are never removed when they go stale (a paused task's slot, a finished job's timeout);
the thread skips them when popped (`is_live`), and the heap is compacted once it doubles past its
last live size, so a fast task with a long timeout cannot pile entries up. All methods except
`run` are called with the scheduler lock held; `run` is the scheduler thread's body.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Callable, NamedTuple

from .records import TaskRecord
from .seams import Effect

__all__ = ["RETRY", "RUN", "TIMEOUT", "Entry", "Timeline"]

RUN, RETRY, TIMEOUT = 0, 1, 2  # what an entry is for; RUN and RETRY are keyed by task id, TIMEOUT by job id
_MIN_COMPACT = 64  # below this many heap entries, stale ones are left for the scheduler thread to pop
_MAX_WAIT = 86_400.0  # longest single sleep of the scheduler thread (threading rejects waits past ~292 years)


class Entry(NamedTuple):
    """One due time on the heap. Ordered by `due`, ties by `seq` (insertion order): never by the rest."""

    due: float  # monotonic seconds
    seq: int
    kind: int  # RUN, RETRY or TIMEOUT
    key: str  # task id (RUN, RETRY) or job id (TIMEOUT)
    gen: int  # the task's generation when pushed; a newer one makes the entry stale


class Timeline:
    """Due entries on a heap plus the condition the scheduler thread sleeps on."""

    def __init__(self, lock: threading.RLock, is_live: Callable[[Entry], bool]) -> None:
        self._wakeup = threading.Condition(lock)
        self._lock = lock
        self._heap: list[Entry] = []
        self._seq = itertools.count()
        self._compact_at = _MIN_COMPACT  # heap size that triggers dropping stale entries
        self._is_live = is_live
        self.thread: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def entries(self) -> list[Entry]:
        """The entries, earliest first, stale ones included (lock held; for tests and inspection)."""
        return sorted(self._heap)

    def schedule(self, task: TaskRecord, due: float) -> None:
        """Plan `task`'s next regular run at `due` (lock held)."""
        task.next_due = due
        self.push(due, RUN, task.task_id, task.gen)

    def push(self, due: float, kind: int, key: str, gen: int = 0) -> None:
        """Add an entry and wake the scheduler thread if it is now the earliest (lock held).

        Once the heap doubles past its last live size, stale entries are dropped in place
        (amortised O(log n) a push).
        """
        heap = self._heap
        if len(heap) >= self._compact_at:
            heap[:] = [e for e in heap if self._is_live(e)]  # in place: the scheduler thread holds `heap`
            heapq.heapify(heap)
            self._compact_at = max(_MIN_COMPACT, 2 * len(heap))
        entry = Entry(due, next(self._seq), kind, key, gen)
        heapq.heappush(heap, entry)
        if heap[0] is entry:
            self._wakeup.notify()

    def clear(self) -> None:
        """Drop every entry and wake the thread (at shutdown; lock held)."""
        self._heap.clear()
        self._wakeup.notify_all()

    def start(
        self, on_due: Callable[[Entry, float], list[Effect]], stopped: Callable[[], bool], log: logging.Logger
    ) -> None:
        """Start the scheduler thread (lock held)."""
        self.thread = threading.Thread(
            target=self.run, args=(on_due, stopped, log), name="quiv_nb-scheduler", daemon=True
        )
        self.thread.start()

    def run(
        self, on_due: Callable[[Entry, float], list[Effect]], stopped: Callable[[], bool], log: logging.Logger
    ) -> None:
        """Sleep until the earliest due time, hand every due entry to `on_due`, repeat (no polling).

        `on_due(entry, now)` runs under the lock and returns side effects (listeners, job
        submission callbacks), which run here after the lock is released.
        """
        heap, lock, wakeup = self._heap, self._lock, self._wakeup
        while True:
            effects: list[Effect] = []
            with lock:
                if stopped():
                    return
                now = time.monotonic()
                if not heap:
                    wakeup.wait()
                    continue
                if heap[0].due > now:
                    # Capped: a due time years away (a huge delay, interval, timeout or backoff) would
                    # overflow the lock's timeout and kill this thread; waking early just loops.
                    wakeup.wait(min(heap[0].due - now, _MAX_WAIT))
                    continue
                while heap and heap[0].due <= now:
                    effects += on_due(heapq.heappop(heap), now)
            try:
                for effect in effects:
                    effect()
            except Exception:
                log.exception("quiv_nb: scheduler side effect failed")
