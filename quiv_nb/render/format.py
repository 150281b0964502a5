"""Text for bars and tables: relative times, schedules, job outcomes, short reprs, aligned columns.

Pure functions (no display library, no clock: the current time is an argument), shared by the
dashboard (`dash_model`, `dash_view`), the bars (`widget`, `state`) and the magics' listings.
Durations themselves are `quiv_nb.units`.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..models import Job, JobStatus, Task
from ..units import format_duration

__all__ = [
    "cached_note",
    "clip",
    "format_ago",
    "format_outcome",
    "format_schedule",
    "format_table",
    "format_until",
    "short_repr",
    "text_table",
]

TOOLTIP = 1000  # characters of a tooltip (the full text of a shortened cell)
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = TOOLTIP
_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxstring = _SHORT_REPR.maxother = 40
_SHORT_REPR.maxlist = _SHORT_REPR.maxtuple = _SHORT_REPR.maxdict = _SHORT_REPR.maxset = 4


def clip(text: Any, limit: int) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short_repr(value: Any, limit: int = 40) -> str:
    """A one-line repr of at most `limit` characters ('ok' → "'ok'"); bounded work on big containers; never raises."""
    try:  # reprlib looks at a few items of a big container only
        return clip(_SHORT_REPR.repr(value), limit)
    except Exception:
        return f"<{type(value).__name__}>"


def format_ago(then: datetime | None, now: datetime) -> str:
    """'just now', '15s ago', '4m ago', '2h ago', '3d ago' (coarse: few widget updates)."""
    if then is None:
        return "—"
    age = (now - then).total_seconds()
    if age < 5:
        return "just now"
    if age < 60:
        return f"{int(age) // 5 * 5}s ago"
    if age < 3600:
        return f"{int(age) // 60}m ago"
    if age < 86400:
        return f"{int(age) // 3600}h ago"
    return f"{int(age) // 86400}d ago"


def format_clock(at: datetime | None, now: datetime) -> str:
    """`14:03:07` (local time) today, `Dec 05 14:03` on another day, `—` for None."""
    if at is None:
        return "—"
    local = at.astimezone()
    return f"{local:%H:%M:%S}" if local.date() == now.astimezone().date() else f"{local:%b %d %H:%M}"


EARLIER = "earlier kernel"  # the dashboard's tag on a job that an earlier process (kernel) ran


def cached_note(computed_at: datetime | None, now: datetime) -> str:
    """`computed 09:14, 2h ago` (local time, with the date when not today): a cached step's reused result."""
    if computed_at is None:
        return "computed earlier"
    local = computed_at.astimezone()
    at = f"{local:%H:%M}" if local.date() == now.astimezone().date() else f"{local:%b %d %H:%M}"
    return f"computed {at}, {format_ago(computed_at, now)}"


def format_until(when: datetime | None, now: datetime) -> str:
    """'in 3s', 'in 4m', 'due' for a time in the past, '—' for none."""
    if when is None:
        return "—"
    left = (when - now).total_seconds()
    if left < 0.5:
        return "due"
    if left < 60:
        return f"in {round(left)}s"
    if left < 3600:
        return f"in {int(left) // 60}m"
    if left < 86400:
        return f"in {int(left) // 3600}h"
    return f"in {int(left) // 86400}d"


def format_schedule(task: Task) -> str:
    """When a task runs: 'after extract', 'cron 0 9 * * 1-5 (Europe/Paris)', 'daily 09:30', 'every 5s', 'once'."""
    after = getattr(task, "after", ())
    if after:
        return "after " + ", ".join(str(name) for name in after)
    zone = f" ({task.timezone})" if getattr(task, "timezone", None) else ""
    if getattr(task, "cron", None):
        return f"cron {task.cron}{zone}"
    if getattr(task, "at", None):
        return f"daily {task.at}{zone}"
    if task.run_once or task.interval is None:
        return "once"
    return f"every {format_duration(task.interval)}"


def format_outcome(job: Job) -> str:
    """A finished job's result (a bounded repr) or error/skip reason; never raises."""
    if job.status is not JobStatus.COMPLETED:
        return job.error_message or str(job.status)
    if job.result is None:
        return ""
    try:  # redrawn every second: this must stay cheap on a big result
        return _REPR.repr(job.result)
    except Exception:
        return f"<{type(job.result).__name__}>"


def text_table(rows: Sequence[Sequence[Any]], limit: int = 40) -> list[str]:
    """Rows of cells as aligned lines (two spaces between columns, each cell clipped to `limit`)."""
    if not rows:
        return []
    cells = [[clip(c, limit) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]


def format_table(
    title: str, rows: Sequence[Any], recent: list[Job], now: datetime, earlier: frozenset[str] = frozenset()
) -> str:
    """The plain-text dashboard (for `text/plain`, saved notebooks and non-widget frontends).

    `rows` are `dash_rows.RowView`s; not imported here, since dash_rows builds on this module.
    Recent jobs whose ids are in `earlier` ran in an earlier process: their status says so.
    """
    lines = [title]
    if not rows:
        lines.append(EMPTY_TEXT)
    else:
        table: list[tuple[str, ...]] = [("TASK", "STATUS", "SCHEDULE", "LAST RUN", "NEXT RUN", "PROGRESS")]
        for r in rows:
            status = r.status + (f", last {r.last_status}" if r.last_status else "")
            last = r.last_when + (f": {r.last_outcome}" if r.last_outcome else "")
            table.append((r.name, status, r.interval, last, r.next_run, r.progress_text))
        lines += text_table(table)
    if recent:
        lines.append("")
        lines.append("recent jobs")
        table = [("TASK", "STATUS", "ENDED", "DURATION", "RESULT / ERROR")]
        for job in recent:
            table.append((
                job.task_name,
                f"{job.status} ({EARLIER})" if job.job_id in earlier else str(job.status),
                format_ago(job.ended_at or job.started_at, now),
                format_duration(job.duration_seconds) if job.duration_seconds is not None else "—",
                format_outcome(job),
            ))  # fmt: skip
        lines += text_table(table)
    return "\n".join(lines)


EMPTY_TEXT = "(no tasks yet: add one with %quiv add NAME FUNC --every 10s, or get_scheduler().add_task(...))"
