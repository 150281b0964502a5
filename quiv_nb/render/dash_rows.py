"""The dashboard's rows, pure: `Task`/`Job` snapshots and a renderer's state → `RowView`s of plain text.

No clock (the current time is an argument), no threads, no ipywidgets: `dash_model` feeds these
functions fresh snapshots and `dash_view` turns their results into HTML and widgets.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Callable, NamedTuple

from ..models import Job, JobStatus, Task, TaskStatus
from ..units import format_duration
from .format import format_ago, format_outcome, format_schedule, format_until

__all__ = ["Progress", "RowView", "Snapshot", "last_fields", "read_progress", "row_view"]

_log = logging.getLogger("quiv_nb")

BUSY_TICK = 1.0  # redraw period while a job runs or a run is scheduled (relative times move)
PROGRESS_TICK = 0.5  # ... while a running job reports progress through a renderer
IDLE_TICK = 5.0  # ... otherwise, while the scheduler lives (to notice a shutdown)


class Progress(NamedTuple):
    fraction: float | None  # 0..1, None when the total is unknown
    text: str


_NOT_RUNNING = frozenset({"idle", "completed", "failed", "cancelled", "skipped"})  # a bar state from an earlier run


def read_progress(renderer: Any, job: Job, now: datetime) -> Progress:
    """What a running job's progress cell shows; duck-types the renderer's `state`.

    A renderer may expose `state` (attribute, property or no-argument method) with `value` and
    `total`, optionally `desc`, `label`, `status`, `job_id` (attributes or mapping keys;
    `render.state.BarState` fits). A state of another job or of a finished run is ignored.
    Without one the text is "running <elapsed>". Never raises.
    """
    elapsed = ""
    if job.started_at is not None:
        elapsed = format_duration(int(max(0.0, (now - job.started_at).total_seconds())))  # whole seconds
    if job.status is JobStatus.SCHEDULED:
        return Progress(None, "queued")
    state = _renderer_state(renderer)
    if state is not None:
        get = state.get if isinstance(state, Mapping) else lambda key: getattr(state, key, None)
        owner, status = get("job_id"), get("status")
        stale = (owner is not None and owner != job.job_id) or str(status) in _NOT_RUNNING
        value = None if stale else _number(_first(get, "value", "step", "n"))
        if value is not None:
            total = _number(get("total"))
            if total is not None and total > 0:
                fraction: float | None = min(1.0, max(0.0, value / total))
                text = f"{value:g}/{total:g}"
            else:
                # 0 of an unknown total: the job reports no progress (its bar is indeterminate), so "0" would mislead
                fraction, text = None, "running" if value == 0 else f"{value:g}"
            desc = get("desc")
            if desc == job.task_name:  # the row already names the task: keep the cell for the numbers
                desc = None
            label = ": ".join(str(p) for p in (desc, _first(get, "label", "stage", "message")) if p)
            return Progress(fraction, " · ".join(p for p in (label, text, elapsed) if p))
    return Progress(None, f"running {elapsed}".strip())


def _first(get: Callable[[str], Any], *keys: str) -> Any:
    for key in keys:
        value = get(key)
        if value is not None and value != "":
            return value
    return None


def _renderer_state(renderer: Any) -> Any:
    if renderer is None:
        return None
    try:
        state = getattr(renderer, "state", None)
        if callable(state):
            state = state()
    except Exception:  # a renderer's bug must not break the dashboard
        _log.debug("quiv_nb: reading a renderer's state failed", exc_info=True)
        return None
    return state


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class RowView(NamedTuple):
    """Everything one task row shows, as plain text (escaped only when it becomes HTML)."""

    task_id: str
    name: str
    status: str  # task status, or "stopped" once the scheduler is
    last_status: str  # status of the last finished job, or ""
    last_error: str  # its error message (or skip reason), or ""
    interval: str  # the schedule: "every 5s", "once", "after extract", "cron ...", "daily 09:30"
    last_when: str
    last_outcome: str  # result repr or error, one line, not clipped
    next_run: str
    progress: float | None
    progress_text: str
    running: bool  # a job of the task is scheduled or running
    can_cancel: bool
    can_pause: bool
    can_resume: bool
    can_run: bool


def row_view(task: Task, current: Job | None, last: Job | None, renderer: Any, now: datetime, live: bool) -> RowView:
    """Pure: the row for `task`, given its running job, last finished job and progress renderer.

    `live` is False once the scheduler is stopped: the row then says "stopped", shows no next
    run and offers no button (a job abandoned by the shutdown still shows its progress).
    """
    running = current is not None and not current.status.is_final
    if live and current is None:
        running = task.status is TaskStatus.RUNNING
    progress = Progress(None, "")
    if running and current is not None:
        progress = read_progress(renderer, current, now)
    elif running:
        progress = Progress(None, "running")
    paused = task.status is TaskStatus.PAUSED
    if not live:
        status, next_run = "stopped", "—"
    else:
        status, next_run = str(task.status), "paused" if paused else format_until(task.next_run_at, now)
        if next_run == "—" and getattr(task, "after", None) and not running:
            next_run = "on upstream"
    return RowView(
        task_id=task.task_id,
        name=task.task_name,
        status=status,
        interval=format_schedule(task),
        next_run=next_run,
        **last_fields(last, now),
        progress=progress.fraction,
        progress_text=progress.text,
        running=running,
        can_cancel=live and running,
        can_pause=live and not paused,
        can_resume=live and paused,
        can_run=live and not running,
    )


def last_fields(last: Job | None, now: datetime) -> dict[str, Any]:
    """The row fields that describe the task's last finished job."""
    if last is None:
        return {"last_status": "", "last_error": "", "last_when": "—", "last_outcome": ""}
    return {
        "last_status": str(last.status),
        "last_error": (last.error_message or "") if last.status is not JobStatus.COMPLETED else "",
        "last_when": format_ago(last.ended_at, now),
        "last_outcome": " ".join(format_outcome(last).split()),
    }


class Snapshot(NamedTuple):
    live: bool
    state: str  # "running" | "not started" | "stopped"
    rows: list[RowView]
    recent: list[Job]
    busy: bool  # something runs or is scheduled: keep relative times moving
    progress: bool  # a running job reports progress through a renderer
    now: datetime
    earlier: frozenset[str] = frozenset()  # ids of recent jobs an earlier process (kernel) ran, from the store
    stopped_at: datetime | None = None  # when the dashboard first saw the scheduler stopped

    @property
    def title(self) -> str:
        """'2 tasks · 1 running · scheduler running'."""
        running = sum(1 for r in self.rows if r.running)
        paused = sum(1 for r in self.rows if r.status == "paused")
        parts = [f"{len(self.rows)} task{'s' if len(self.rows) != 1 else ''}"]
        if self.state != "stopped":  # a stopped scheduler runs nothing (an abandoned job's row says so itself)
            parts.append(f"{running} running")
        if paused:
            parts.append(f"{paused} paused")
        stopped_at = f" at {self.stopped_at.astimezone():%H:%M}" if self.stopped_at is not None else ""
        parts.append(f"scheduler {self.state}{stopped_at}")
        return " · ".join(parts)

    @property
    def period(self) -> float:
        """Seconds until the next redraw without an event."""
        return PROGRESS_TICK if self.progress else BUSY_TICK if self.busy else IDLE_TICK
