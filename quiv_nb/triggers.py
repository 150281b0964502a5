"""When a task runs: trigger objects that name a task's due times on the scheduler's clock.

This is the seam for calendar time and pipelines (see `quiv_nb.seams.Trigger`). The timeline asks
a task's trigger:

- `first_due(now)` when the task is added to a started scheduler, or when `start()` runs;
- `next_due(previous_due, now)` each time a scheduled slot fires (before its job starts), with
  the slot's own due time, so a recurring task keeps its phase however late the slot fired;
- `resume_due(now, delay)` when a paused task is resumed with `resume_task(delay=...)`.

All take and return seconds on the scheduler's monotonic clock (`time.monotonic()`); `None`
means "no (further) run is planned" and the task then stays registered but off the timeline,
which is how a task fired only by events (`AfterTrigger`: an `after=` pipeline) or a finished
run-once task looks. Triggers hold no scheduler state and run under the scheduler lock: keep them
pure and quick.

The calendar triggers (a cron line, a daily "HH:MM", in a time zone) live in `quiv_nb.cron`,
imported only when a task uses them: they need `datetime`, `zoneinfo` and cronsim, which
`import quiv_nb` does not load.
"""

from __future__ import annotations

import math

__all__ = ["AfterTrigger", "IntervalTrigger", "OnceTrigger"]


class OnceTrigger:
    """One run, `delay` seconds after the task is added (or the scheduler starts)."""

    __slots__ = ("delay",)

    def __init__(self, delay: float | None = None) -> None:
        self.delay = delay or 0.0

    def first_due(self, now: float) -> float | None:
        return now + self.delay

    def next_due(self, previous_due: float, now: float) -> float | None:
        return None

    def resume_due(self, now: float, delay: float) -> float | None:
        return now + delay

    def __repr__(self) -> str:
        return f"OnceTrigger(delay={self.delay:g})"


class IntervalTrigger:
    """Every `interval` seconds, the first run after `delay` (default: at once).

    Slots missed while a job overran or the machine stalled are skipped, not queued: the next
    due time is the first slot on the original grid that is still in the future. With
    `from_end` (quiv's `fixed_interval=False`) there is no grid: `next_due` plans nothing and the
    lifecycle plans the next run `interval` seconds after each job ends (`after_end`).
    """

    __slots__ = ("delay", "from_end", "interval")

    def __init__(self, interval: float, delay: float | None = None, *, from_end: bool = False) -> None:
        self.interval = interval
        self.delay = delay or 0.0
        self.from_end = from_end

    def first_due(self, now: float) -> float | None:
        return now + self.delay

    def next_due(self, previous_due: float, now: float) -> float | None:
        if self.from_end:
            return None  # planned when the job ends (`after_end`)
        interval = self.interval
        nxt = previous_due + interval
        if nxt <= now:
            nxt += math.ceil((now - nxt) / interval + 1e-9) * interval
        return nxt

    def resume_due(self, now: float, delay: float) -> float | None:
        return now + delay

    def after_end(self, now: float) -> float | None:
        """The next run after a job ended at `now`: `interval` later with `from_end`, else None (planned at fire)."""
        return now + self.interval if self.from_end else None

    def __repr__(self) -> str:
        extra = ", from_end=True" if self.from_end else ""
        return f"IntervalTrigger(interval={self.interval:g}, delay={self.delay:g}{extra})"


class AfterTrigger:
    """No clock at all: the task runs when its upstream tasks complete (`add_task(after=...)`)."""

    __slots__ = ()

    def first_due(self, now: float) -> float | None:
        return None

    def next_due(self, previous_due: float, now: float) -> float | None:
        return None

    def resume_due(self, now: float, delay: float) -> float | None:
        return None

    def __repr__(self) -> str:
        return "AfterTrigger()"
