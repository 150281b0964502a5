"""`%quiv log JOB_ID | TASK_NAME`: what a job printed or logged, and its traceback if it failed."""

from __future__ import annotations

import argparse

from IPython.core.magic_arguments import argument, magic_arguments

from ..context import Context
from ..registry import subcommand
from ..results import describe


@subcommand("log")
@magic_arguments("%quiv log")
@argument("target", metavar="JOB_ID|TASK_NAME", help="a job id, or a task (its running or latest job)")
def log(ctx: Context, opts: argparse.Namespace) -> None:
    """Print a job's captured output (stdout, stderr, logging) and, if it failed, its traceback."""
    job_id = ctx.job_of(opts.target)
    if job_id is None:
        ctx.task_id(opts.target)  # an unknown name is a UsageError listing the tasks
        print(f"quiv: task {opts.target!r} has no job yet")
        return
    job = ctx.scheduler.get_job(job_id)
    parts = [describe(job) if job.status.is_final else f"quiv: job {job.job_id} of {job.task_name!r} {job.status}"]
    output = getattr(job, "output", "")
    parts.append(output.rstrip("\n") if output else "(no output captured)")
    if job.status == "failed" and job.traceback:
        parts.append(job.traceback.rstrip("\n"))
    print("\n".join(parts))
