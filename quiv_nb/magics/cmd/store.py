"""`%quiv history [TASK]`, `%quiv cache clear [TASK]` and `%quiv store [PATH|off]`: the store's side."""

from __future__ import annotations

import argparse

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from ...errors import QuivError
from ...kernel import choose_store, current_scheduler, get_scheduler, reset_scheduler, store_path
from ...units import format_duration
from ..context import Context, say
from ..registry import subcommand
from .listing import table


@subcommand("history")
@magic_arguments("%quiv history")
@argument("task", nargs="?", metavar="TASK", help="only the jobs of the task named TASK")
@argument("--limit", type=int, default=50, metavar="N", help="the latest N jobs (default 50)")
def history(ctx: Context, opts: argparse.Namespace) -> None:
    """List finished jobs, newest first, earlier kernels' included (with a store): interrupted ones too."""
    if opts.limit < 1:
        raise UsageError(f"--limit must be 1 or more, got {opts.limit}")
    rows = [("TASK", "STATUS", "ENDED", "DURATION", "JOB ID", "ERROR")]
    for j in ctx.scheduler.history(opts.task, limit=opts.limit):
        ended = j.ended_at.astimezone().strftime("%m-%d %H:%M:%S") if j.ended_at else "-"
        took = format_duration(j.duration_seconds) if j.duration_seconds is not None else "-"
        status = f"{j.status} (cached)" if j.cached else str(j.status)
        rows.append((j.task_name, status, ended, took, j.job_id, (j.error_message or "")[:60]))
    if len(rows) > 1:
        print(table(rows))
    else:
        print(f"quiv: no finished jobs{f' of {opts.task!r}' if opts.task else ''} on record")


@subcommand("cache")
@magic_arguments("%quiv cache")
@argument("action", choices=["clear"], metavar="clear", help="clear: forget stored results")
@argument("task", nargs="?", metavar="TASK", help="only those of the task named TASK")
def cache(ctx: Context, opts: argparse.Namespace) -> None:
    """Forget the stored results of cached steps (of TASK, or all): they run again next time."""
    n = ctx.scheduler.clear_cache(opts.task)
    say(f"quiv: forgot {n} cached result{'s' if n != 1 else ''}{f' of {opts.task!r}' if opts.task else ''}")


@subcommand("store")
@magic_arguments("%quiv store")
@argument("path", nargs="?", metavar="PATH|off", help="record to the store at PATH, or to none (off)")
def store(ctx: Context, opts: argparse.Namespace) -> None:
    """Show where job history and cached results are kept; PATH or off changes it (restarts the scheduler)."""
    if opts.path is None:
        current = current_scheduler()
        where = current.store.path if current is not None and current.store is not None else store_path()
        say(f"quiv: the store is {str(where)!r}" if where else "quiv: no store (off): history ends with the kernel")
        return
    previous = store_path()
    choose_store(opts.path)
    reset_scheduler()  # as `%quiv stop`: the next scheduler records to the new store
    ctx.state.clear()
    try:
        scheduler = get_scheduler()
    except QuivError as exc:
        choose_store(previous)
        raise UsageError(f"the store was not changed: {exc}") from None
    where = scheduler.store.path if scheduler.store is not None else None
    say(f"quiv: the store is now {str(where)!r}" if where else "quiv: store off: history ends with the kernel")
