"""The scheduler's one lock: a re-entrant lock whose contended acquire yields the GIL first."""

from __future__ import annotations

import _thread
import time

__all__ = ["YieldingRLock"]

_YIELDS = 50  # GIL hand-overs a contended acquire tries before it blocks


class YieldingRLock(_thread.RLock):  # type: ignore[misc]  # the C type behind threading.RLock()
    """An `RLock` whose contended acquire first hands the GIL over a few times, then blocks.

    Why: the lock is taken by the adding thread once per task and by a worker twice per job. A
    thread blocked on a plain lock is woken owning it but must still wait for the GIL, which the
    thread that just released the lock holds; that thread then wants the lock again and blocks
    in turn. Once started, this convoy costs two context switches per acquisition and more than
    doubled the time for a burst of short jobs. `time.sleep(0)` instead gives the GIL to the
    lock's holder at once, and the waiter takes the lock when it is free. Release, `__exit__`
    and what `threading.Condition` uses stay the C ones.
    """

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if _rlock_acquire(self, False):
            return True
        if not blocking:
            return False
        if timeout < 0:
            for _ in range(_YIELDS):
                time.sleep(0)  # releases the GIL
                if _rlock_acquire(self, False):
                    return True
        return _rlock_acquire(self, True, timeout)

    __enter__ = acquire


_rlock_acquire = _thread.RLock.acquire
