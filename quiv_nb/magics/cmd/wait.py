"""`x = %quiv wait [JOB_ID | TASK_NAME]`: block until the job ends; return its result or raise its failure."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from ...errors import QuivError
from ...units import format_duration
from ..context import Context, say, short_id
from ..registry import subcommand
from ..results import describe, result_of
from . import _options as option


class WaitInterrupted(KeyboardInterrupt):
    """The user interrupted `%quiv wait`; the job goes on. Shown as one line, not a traceback."""

    def _render_traceback_(self) -> list[str]:
        return [f"KeyboardInterrupt: {self}"]


WaitInterrupted.__name__ = WaitInterrupted.__qualname__ = "KeyboardInterrupt"


@subcommand("wait")
@magic_arguments("%quiv wait")
@argument("target", nargs="?", metavar="JOB_ID|TASK_NAME", help="a job id, or a task (its running or latest job)")
@option.timeout
def wait(ctx: Context, opts: argparse.Namespace) -> Any:
    """Wait for a job (default: the latest `%quiv run`) and return its result; a failed job raises here."""
    scheduler = ctx.scheduler
    target = opts.target or ctx.last_job
    if not target:
        raise UsageError("nothing to wait for: name a JOB_ID or TASK_NAME (no `%quiv run` yet in this kernel)")
    # A job id; else the task's running or last job (a cell that adds a task and then waits
    # should see the run it just started, however fast); else its next job.
    job_id = ctx.job_of(target)
    task_id = None if job_id is not None else ctx.task_id(target)
    try:
        if job_id is not None:
            job = scheduler.wait_for_job(job_id, timeout=opts.timeout)
        else:
            assert task_id is not None  # `ctx.task_id` found it, or raised
            job = scheduler.wait_for_task(task_id, timeout=opts.timeout)
    except TimeoutError:
        raise UsageError(f"{target!r} did not finish within {format_duration(opts.timeout)}") from None
    except KeyboardInterrupt:
        raise _interrupted(ctx, target, job_id) from None
    if job.status == "completed":
        say(describe(job))
    return result_of(job, ctx.user_ns)


def _interrupted(ctx: Context, target: str, job_id: str | None) -> WaitInterrupted:
    try:
        job_id = job_id or ctx.job_of(target)
        job = ctx.scheduler.get_job(job_id) if job_id else None
    except QuivError:
        job = None
    if job is None or job.status.is_final:
        return WaitInterrupted(f"stopped waiting for {target!r}")
    return WaitInterrupted(
        f"stopped waiting; job {short_id(job.job_id)} of {job.task_name!r} keeps running "
        f"(`%quiv cancel {short_id(job.job_id)}` stops it)"
    )
