"""`%quiv pause | resume | remove TASK_NAME` and `%quiv stop`."""

from __future__ import annotations

import argparse

from IPython.core.magic_arguments import argument, magic_arguments

from ...kernel import reset_scheduler
from ..context import Context, say
from ..registry import subcommand

_task = argument("task", metavar="TASK_NAME", help="the task's name (or id)")


@subcommand("pause")
@magic_arguments("%quiv pause")
@_task
def pause(ctx: Context, opts: argparse.Namespace) -> None:
    """Stop scheduling a task (a job already running finishes)."""
    ctx.scheduler.pause_task(ctx.task_id(opts.task))
    say(f"quiv: {opts.task!r} paused")


@subcommand("resume")
@magic_arguments("%quiv resume")
@_task
def resume(ctx: Context, opts: argparse.Namespace) -> None:
    """Schedule a paused task again."""
    ctx.scheduler.resume_task(ctx.task_id(opts.task))
    say(f"quiv: {opts.task!r} resumed")


@subcommand("remove")
@magic_arguments("%quiv remove")
@_task
@argument("--cascade", action="store_true", help="also remove the tasks that run after it")
def remove(ctx: Context, opts: argparse.Namespace) -> None:
    """Remove a task; its running job is asked to stop."""
    extra = ctx.api_kwargs(ctx.scheduler.remove_task, cascade=opts.cascade)
    ctx.scheduler.remove_task(ctx.task_id(opts.task), **extra)
    say(f"quiv: {opts.task!r} removed")


@subcommand("stop")
@magic_arguments("%quiv stop")
def stop(ctx: Context, opts: argparse.Namespace) -> None:
    """Shut the kernel's scheduler down (the next command starts a fresh one)."""
    reset_scheduler()
    ctx.state.clear()
    say("quiv: scheduler stopped (the next %quiv command starts a fresh one)")
