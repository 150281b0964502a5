"""`%quiv run FUNC`: run once now, with a live bar in this cell.

Re-running the same cell while the job it started still runs does not start a second one: it
shows the running job's live bar again, sends the job's further output to the cell, and says so
(`--new` starts another).
"""

from __future__ import annotations

import argparse
import hashlib
from typing import Any

from IPython.core.magic_arguments import argument, magic_arguments

from ...kernel import cell_id, cell_source, follow_job_output
from ..callexpr import parse_call
from ..context import Context, make_bar, say, short_id
from ..handle import JobHandle, show_bar
from ..registry import subcommand
from . import _options as option


@subcommand("run")
@magic_arguments("%quiv run")
@argument("func", metavar="FUNC", help="the function to call: train, or with arguments: train(epochs=5)")
@option.bar
@option.new
@option.notify
@option.cache
def run(ctx: Context, opts: argparse.Namespace) -> JobHandle:
    """Run FUNC once now in the background, its live bar in this cell; `jid = %quiv run ...` keeps the job id."""
    call = parse_call(opts.func, ctx.user_ns)
    key = (cell_key(), opts.func)
    running = None if opts.new else reattach(ctx, key, call.name)
    if running is not None:
        return running
    extra = ctx.api_kwargs(ctx.scheduler.add_task, notify=opts.notify, cache=opts.cache)
    bar = make_bar(opts.bar, call.name)
    handle = start(ctx, call.name, call.func, bar, args=call.args, kwargs=call.kwargs, **extra)
    ctx.state.line_runs[key] = handle
    return handle


def reattach(ctx: Context, key: tuple[str, str], name: str) -> JobHandle | None:
    """If this cell's line `key` started a job that still runs: show its live bar here again, send its
    further output here, say so, and return a handle on it; else None (kernel thread)."""
    running = ctx.state.line_runs.get(key)
    if running is None or not still_running(ctx, running):
        return None
    say(
        # one line at the default width: ids are shown by their 8-character prefix, which the magics accept
        f"quiv: {name!r} from this cell is still running; its live bar is below again. "
        f"`--new` starts another, `%quiv cancel {short_id(running)}` stops it."
    )
    if running.bar is not None:
        show_bar(running.bar)
    follow_job_output(str(running))  # its further lines come here: the old cell's output is gone
    ctx.last_job = str(running)
    return JobHandle(str(running), running.bar)


def start(ctx: Context, name: str, func: Any, bar: Any, **add_kwargs: Any) -> JobHandle:
    """Add a run-once task and return a handle on its job (the job starts at once)."""
    scheduler = ctx.scheduler
    task_id = scheduler.add_task(name, func, run_once=True, progress_callback=bar, **add_kwargs)
    jobs = scheduler.get_all_jobs(task_id=task_id)
    job_id = jobs[-1].job_id if jobs else (scheduler.get_task(task_id).last_job_id or "")
    ctx.last_job = job_id
    return JobHandle(job_id, bar)


def still_running(ctx: Context, job_id: str) -> bool:
    try:
        return not ctx.scheduler.get_job(job_id).status.is_final
    except Exception:  # pruned from history, or from a scheduler since stopped
        return False


def cell_key() -> str:
    """This notebook cell's id; where the frontend sends none, a hash of the cell's code."""
    return cell_id() or "code:" + hashlib.sha1(cell_source().encode()).hexdigest()
