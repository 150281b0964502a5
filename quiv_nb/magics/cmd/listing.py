"""`%quiv tasks` and `%quiv jobs`: plain-text tables."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.magic_arguments import argument, magic_arguments

from ...models import JobStatus, Task
from ...units import format_duration
from ..context import Context
from ..registry import subcommand


@subcommand("tasks")
@magic_arguments("%quiv tasks")
def tasks(ctx: Context, opts: argparse.Namespace) -> None:
    """List the tasks: name, status, schedule, next run."""
    rows = [("NAME", "STATUS", "SCHEDULE", "NEXT RUN", "TASK ID")]
    for t in ctx.scheduler.get_all_tasks(include_run_once=True):
        nxt = t.next_run_at.strftime("%H:%M:%S") if t.next_run_at else "-"
        rows.append((t.task_name, str(t.status), schedule_of(t), nxt, t.task_id))
    print(table(rows) if len(rows) > 1 else "quiv: no tasks")


@subcommand("jobs")
@magic_arguments("%quiv jobs")
@argument("--status", choices=[s.value for s in JobStatus], metavar="STATUS", help="only jobs in STATUS")
def jobs(ctx: Context, opts: argparse.Namespace) -> None:
    """List the latest 50 jobs: task, status, start, duration, error."""
    rows = [("TASK", "STATUS", "STARTED", "DURATION", "JOB ID", "ERROR")]
    for j in ctx.scheduler.get_all_jobs(status=opts.status)[-50:]:
        started = j.started_at.strftime("%H:%M:%S") if j.started_at else "-"
        took = format_duration(j.duration_seconds) if j.duration_seconds is not None else "-"
        rows.append((j.task_name, str(j.status), started, took, j.job_id, (j.error_message or "")[:60]))
    print(table(rows) if len(rows) > 1 else "quiv: no jobs")


def schedule_of(task: Task) -> str:
    """'every 5m', 'once', 'cron 0 9 * * 1-5', 'daily 09:30', 'after extract' (+ its time zone)."""
    zone = f" {task.timezone}" if getattr(task, "timezone", None) else ""
    if getattr(task, "after", ()):
        return "after " + ", ".join(task.after)
    if getattr(task, "cron", None):
        return f"cron {task.cron}{zone}"
    if getattr(task, "at", None):
        return f"daily {task.at}{zone}"
    return f"every {format_duration(task.interval)}" if task.interval and not task.run_once else "once"


def table(rows: list[tuple[Any, ...]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
