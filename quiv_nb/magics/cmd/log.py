"""`%quiv log JOB_ID | TASK_NAME [--all]`: what a job printed or logged, and its traceback if it failed."""

from __future__ import annotations

import argparse

from IPython.core.magic_arguments import argument, magic_arguments

from ...models import Job
from ..context import Context
from ..registry import subcommand
from ..results import describe


@subcommand("log")
@magic_arguments("%quiv log")
@argument("target", metavar="JOB_ID|TASK_NAME", help="a job id, or a task (its running or latest job)")
@argument("--all", action="store_true", help="every run of the task still in history, newest first")
def log(ctx: Context, opts: argparse.Namespace) -> None:
    """Print a job's captured output (stdout, stderr, logging) and, if it failed, its traceback."""
    job_id = ctx.job_of(opts.target)
    if job_id is None:
        ctx.task_id(opts.target)  # an unknown name is a UsageError listing the tasks
        print(f"quiv: task {opts.target!r} has no job yet")
        return
    job = ctx.scheduler.get_job(job_id)
    jobs = [job]
    if opts.all:
        jobs = [j for j in ctx.scheduler.get_all_jobs(task_id=job.task_id)][::-1] or jobs
    print("\n\n".join(_report(j) for j in jobs))


def _report(job: Job) -> str:
    """One job's status line, captured output and traceback."""
    parts = [describe(job) if job.status.is_final else f"quiv: job {job.job_id} of {job.task_name!r} {job.status}"]
    output = getattr(job, "output", "")
    parts.append(output.rstrip("\n") if output else "(no output captured)")
    if job.status == "failed" and job.traceback:
        parts.append(job.traceback.rstrip("\n"))
    return "\n".join(parts)
