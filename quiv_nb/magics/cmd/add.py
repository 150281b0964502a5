"""`%quiv add NAME FUNC ...`: add (or replace) a task."""

from __future__ import annotations

import argparse

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from ...errors import QuivError
from ...units import format_duration
from .. import args as types
from ..callexpr import parse_call
from ..context import Context, make_bar, note_waiting, say
from ..registry import exclusive, subcommand
from . import _options as option


@subcommand("add")
@magic_arguments("%quiv add")
@argument("name", metavar="NAME", help="the task's name; adding NAME again replaces that task")
@argument("func", metavar="FUNC", help="the function to call: train, or with arguments: train(epochs=5)")
@argument("--tz", type=types.time_zone, metavar="ZONE", help="IANA time zone for --cron / --at (default: local)")
@argument("--delay", type=types.duration, metavar="DUR", help="wait DUR before the first run")
@option.timeout
@argument("--retries", type=types.non_negative_int, default=0, metavar="N", help="retry a failed job N times")
@option.bar
@option.notify
@argument("--map", action="store_true", help="with --after TASK: call FUNC on each item of TASK's result")
@option.cache
@exclusive()
@argument("--every", type=types.duration, metavar="DUR", help="run every DUR")
@argument("--once", action="store_true", help="run once (the default)")
@argument("--cron", type=types.cron_expression, metavar="EXPR", help='run on a cron schedule, e.g. "0 9 * * 1-5"')
@argument("--at", type=types.at_time, metavar="HH:MM", help="run daily at HH:MM")
@option.after
def add(ctx: Context, opts: argparse.Namespace) -> None:
    """Add task NAME that calls FUNC: once, every DUR, on a cron schedule, daily at HH:MM, or after other tasks."""
    after = option.flatten(opts.after)
    if opts.tz and not (opts.cron or opts.at):
        raise UsageError("--tz ZONE applies to --cron or --at; add one of them, or drop --tz")
    call = parse_call(opts.func, ctx.user_ns)
    scheduler = ctx.scheduler
    extra = ctx.api_kwargs(
        scheduler.add_task,
        after=after,
        cron=opts.cron,
        at=opts.at,
        timezone=opts.tz,
        notify=opts.notify,
        cache=opts.cache,
        map=opts.map,
    )
    say(f"quiv: task {opts.name!r} runs {_when(opts, after)} (adding {opts.name!r} again replaces it)")
    bar = make_bar(opts.bar, opts.name)
    try:
        task_id = scheduler.add_task(
            opts.name, call.func, interval=opts.every, delay=opts.delay,
            run_once=not (opts.every or opts.cron or opts.at or after),
            args=call.args, kwargs=call.kwargs, progress_callback=bar,
            timeout=opts.timeout, max_retries=opts.retries, replace=True, **extra,
        )  # fmt: skip
    except QuivError as exc:
        raise UsageError(f"task {opts.name!r} was not added: {exc}") from None
    note_waiting(bar, scheduler, task_id)


def _when(opts: argparse.Namespace, after: list[str]) -> str:
    zone = f" ({opts.tz})" if opts.tz else ""
    if opts.every:
        return f"every {format_duration(opts.every)}"
    if opts.cron:
        return f"on cron {opts.cron!r}{zone}"
    if opts.at:
        return f"daily at {opts.at}{zone}"
    if after:
        return f"after {', '.join(after)}" + (" on each item of its result" if opts.map else "")
    return "once"
