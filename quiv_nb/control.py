"""Steering tasks: register, remove, pause, resume, run now, and plan first runs (lock held).

The `Quiv` facade validates arguments and takes the scheduler lock; these methods change the task
table, the timeline and the `after=` pipeline graph, and return the `Effect`s (listener
deliveries, job submissions) for the facade to run once the lock is released.
"""

from __future__ import annotations

from typing import Any, Callable

from .errors import TaskNotFoundError, TaskRunningError
from .eventbus import Effect, EventBus
from .history import JobHistory
from .lifecycle import JobLifecycle
from .models import Event, JobStatus
from .parts import SchedulerParts
from .pipeline import Pipeline, resolve_upstream
from .records import TaskRecord
from .tasks import TaskTable
from .timeline import RUN, Timeline
from .waiters import Waiters

__all__ = ["TaskControl"]


class TaskControl:
    """Task-level operations of one scheduler; every method runs with the scheduler lock held."""

    def __init__(self, parts: SchedulerParts, jobs: JobLifecycle, started: Callable[[], bool]) -> None:
        self._tasks: TaskTable = parts.tasks
        self._history: JobHistory = parts.history
        self._timeline: Timeline = parts.timeline
        self._jobs = jobs
        self._waiters: Waiters = parts.waiters
        self._bus: EventBus = parts.bus
        self._started = started
        self._pipeline: Pipeline = parts.pipeline

    def plan_all(self, now: float) -> None:
        """At `start()`: put every task added before it on the timeline (its trigger's first run)."""
        for task in self._tasks:
            if task.next_due is None and not task.paused:
                due = task.trigger.first_due(now)
                if due is not None:
                    self._timeline.schedule(task, due)

    def add(self, task: TaskRecord, now: float, *, replace: bool, after: Any = None) -> list[Effect]:
        """Register `task` (after removing same-named tasks if `replace`); run or plan its first run.

        `after` (a task name/id or a list of them) is resolved here against the task table and
        added to the pipeline; raises `ConfigurationError` for an unknown upstream or a cycle,
        before anything changes.
        """
        effects: list[Effect] = []
        replaced = self._tasks.named(task.name) if replace else []
        # A replaced upstream (or a finished run-once one of the same name) hands its dependents to
        # the new task, so re-running a notebook cell keeps the pipeline below it.
        heirs = [t.task_id for t in replaced] + self._pipeline.retired_named(task.name)
        if after is not None or any(h in self._pipeline for h in heirs):
            upstream = {} if after is None else resolve_upstream(task.name, after, self._tasks.names())
            self._pipeline.add(task.task_id, task.name, upstream, replaces=heirs)  # checks for a cycle first
            task.after = tuple(upstream.values())
        for other in replaced:
            effects += self._forget(other)  # `add` above already took it out of the graph
        self._tasks.add(task)
        if self._bus.listened(Event.TASK_ADDED):  # no snapshot nobody would see
            effects.append(self._bus.emitter(Event.TASK_ADDED, task.snapshot()))
        if self._started():
            due = task.trigger.first_due(now)
            if due is not None and due <= now:
                effects += self._jobs.fire(task, now, RUN, due=due)
            elif due is not None:
                self._timeline.schedule(task, due)
        return effects

    def remove(self, task: TaskRecord, *, cascade: bool = False) -> list[Effect]:
        """Forget `task` and, with `cascade`, every task that runs after it (farthest first).

        Without `cascade`, raises `DependentTasksError` listing the tasks that run after it.
        """
        effects: list[Effect] = []
        if task.task_id in self._pipeline:
            for other_id in self._pipeline.check_removal(task.task_id, cascade):
                other = self._tasks.find(other_id)  # a finished run-once dependent is gone already
                if other is not None:
                    effects += self._forget(other)
                self._pipeline.remove(other_id)
            self._pipeline.remove(task.task_id)
        return effects + self._forget(task)

    def _forget(self, task: TaskRecord) -> list[Effect]:
        """Forget `task`; its running job gets its stop event set, waiters on its next job fail."""
        self._tasks.discard(task)
        effects: list[Effect] = []
        if task.active_job is not None:
            job = self._history.find(task.active_job)
            if job is not None:
                effects.append(job.stop_event.set_later("removed"))  # its callbacks run after the lock
        else:
            self._waiters.fail_task(task.task_id, TaskNotFoundError(f"task {task.name!r} was removed"))
        effects.append(self._bus.emitter(Event.TASK_REMOVED, task.snapshot()))
        return effects

    def pause(self, task: TaskRecord) -> list[Effect]:
        if task.paused:
            return []
        task.paused = True
        task.gen += 1  # its timeline entries go stale
        task.next_due = None
        return [self._bus.emitter(Event.TASK_PAUSED, task.snapshot())]

    def resume(self, task: TaskRecord, now: float, delay: float) -> list[Effect]:
        if not task.paused:
            return []
        task.paused = False
        task.gen += 1
        if self._started():
            due = task.trigger.resume_due(now, delay)  # a calendar: the first time >= now + delay
            if due is not None:  # an `after` task waits for its upstreams again
                self._timeline.schedule(task, due)
        return [self._bus.emitter(Event.TASK_RESUMED, task.snapshot())]

    def run_now(self, task: TaskRecord, now: float) -> tuple[str, list[Effect]]:
        """(job id, effects) of a run outside the schedule; see `Quiv.run_task_immediately`."""
        if task.active_job is not None:
            active = self._history.find(task.active_job)
            if active is not None and active.status is JobStatus.SCHEDULED:
                return active.job_id, []  # queued behind a busy pool: that queued job is this run
            raise TaskRunningError(
                f"task {task.name!r} has job {task.active_job} running; wait for it or cancel it first"
            )
        # A fresh run (`_upstream` is {}); before `start()` it waits for it, queued (as quiv does).
        effects = self._jobs.start_job(task, now, 0, {}, defer=not self._started())
        assert task.active_job is not None
        return task.active_job, effects
