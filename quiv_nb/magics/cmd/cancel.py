"""`%quiv cancel JOB_ID | TASK_NAME`: ask a running job to stop, and say honestly whether it can."""

from __future__ import annotations

import argparse

from IPython.core.magic_arguments import argument, magic_arguments

from ..context import Context, say
from ..registry import subcommand

_CANNOT = (
    "quiv: job {job} of {name!r} cannot be stopped: its handler takes no `_stop_event` parameter, so it runs "
    "to its end. To make it cancellable, add `_stop_event` and return when `_stop_event.is_set()`."
)


@subcommand("cancel")
@magic_arguments("%quiv cancel")
@argument("target", metavar="JOB_ID|TASK_NAME", help="a job id, or a task (its running job)")
def cancel(ctx: Context, opts: argparse.Namespace) -> None:
    """Ask a running job to stop (it sees its stop event); says so at once if it cannot see one."""
    scheduler = ctx.scheduler
    job_id = ctx.job_of(opts.target)
    if job_id is None:
        ctx.task_id(opts.target)  # an unknown name is a UsageError listing the tasks
        say(f"quiv: task {opts.target!r} has no running job")
        return
    job = scheduler.get_job(job_id)
    if job.status.is_final:
        say(f"quiv: job {job_id} of {job.task_name!r} already {job.status}")
        return
    if not scheduler.can_cancel(job_id):
        scheduler.cancel_job(job_id)  # recorded on the job (`cancel_requested`); it runs to its end
        say(_CANNOT.format(job=job_id, name=job.task_name))
        return
    if scheduler.cancel_job(job_id):
        say(f"quiv: cancel requested for job {job_id} of {job.task_name!r}")
    else:
        say(f"quiv: job {job_id} of {job.task_name!r} already {scheduler.get_job(job_id).status}")
