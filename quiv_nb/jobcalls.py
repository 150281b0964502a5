"""How a job of a task is called: its kwargs (with the data the scheduler injects) and its progress hook.

Pure construction, run by the lifecycle with the scheduler lock held: no user code runs here (a
hook only binds the task's callback; it is called later, from the job's body).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .dispatch import Dispatcher, noop_hook
from .execution import UPSTREAM, JobCall
from .records import JobRecord, TaskRecord, utcnow

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["job_call", "job_kwargs", "make_hook"]


def make_hook(task: TaskRecord, job_id: str, dispatch: Dispatcher) -> Callable[..., None]:
    """The `_progress_hook` a job of `task` gets: O(1), never blocks, never raises into the handler."""
    callback = task.callback
    if callback is None:
        return noop_hook
    if task.sink is not None:  # a renderer (`seams.ProgressSink`): record the payload right here
        inline = task.sink.quiv_progress

        def render_hook(*args: Any, **kwargs: Any) -> None:
            inline(job_id, args, kwargs)

        return render_hook
    deliver, is_async = dispatch.deliver, task.callback_async
    label = f"progress callback of task {task.name!r}"

    def hook(*args: Any, **kwargs: Any) -> None:
        deliver(callback, is_async, args, kwargs, label)

    return hook


def job_kwargs(task: TaskRecord, upstream: dict[str, Any] | None, scheduled_at: datetime | None) -> dict[str, Any]:
    """The kwargs a job of `task` is called with: the task's, plus `_upstream` / `_scheduled_at` if injected.

    A fresh run (`upstream` given) sets those values (due now when `scheduled_at` is None); a retry
    (`upstream` None) reuses those of the run it repeats. Plain data in the kwargs: it travels with
    them to wherever the body runs (Dask too).
    """
    if not task.data_inject:
        return task.kwargs
    if upstream is not None or task.data is None:
        due = scheduled_at or utcnow()
        if task.zone is not None:
            due = due.astimezone(task.zone)  # a calendar task's zone; else UTC (no local-time lookup)
        task.data = {name: (upstream or {}) if kind == UPSTREAM else due for name, kind in task.data_inject}
    return {**task.kwargs, **task.data}


def job_call(
    task: TaskRecord,
    job: JobRecord,
    upstream: dict[str, Any] | None,
    scheduled_at: datetime | None,
    dispatch: Dispatcher,
    on_start: Callable[[JobRecord], bool],
) -> JobCall:
    """The `JobCall` an executor runs for `job` of `task` (see `job_kwargs` for `upstream`/`scheduled_at`)."""
    return JobCall(
        job.job_id, task.func, task.args,
        job_kwargs(task, upstream, scheduled_at) if task.data_inject else task.kwargs, task.spec, job.stop_event,
        make_hook(task, job.job_id, dispatch), lambda: on_start(job), task.contexts,
        {"task_name": task.name}, job.log,
    )  # fmt: skip
