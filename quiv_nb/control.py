"""Steering tasks: register, remove, pause, resume, run now, and plan first runs (lock held).

The `Quiv` facade validates arguments and takes the scheduler lock; these methods change the task
table and the timeline and return the `Effect`s (listener deliveries, job submissions) for the
facade to run once the lock is released.
"""

from __future__ import annotations

from typing import Callable

from .errors import QuivError, TaskNotFoundError, TaskRunningError
from .eventbus import Effect, EventBus
from .history import JobHistory
from .lifecycle import JobLifecycle
from .models import Event, JobStatus
from .records import TaskRecord
from .tasks import TaskTable
from .timeline import RUN, Timeline
from .waiters import Waiters

__all__ = ["TaskControl"]


class TaskControl:
    """Task-level operations of one scheduler; every method runs with the scheduler lock held."""

    def __init__(
        self,
        tasks: TaskTable,
        history: JobHistory,
        timeline: Timeline,
        jobs: JobLifecycle,
        waiters: Waiters,
        bus: EventBus,
        started: Callable[[], bool],
    ) -> None:
        self._tasks = tasks
        self._history = history
        self._timeline = timeline
        self._jobs = jobs
        self._waiters = waiters
        self._bus = bus
        self._started = started

    def plan_all(self, now: float) -> None:
        """At `start()`: put every task added before it on the timeline (its trigger's first run)."""
        for task in self._tasks:
            if task.next_due is None and not task.paused:
                due = task.trigger.first_due(now)
                if due is not None:
                    self._timeline.schedule(task, due)

    def add(self, task: TaskRecord, now: float, *, replace: bool) -> list[Effect]:
        """Register `task` (after removing same-named tasks if `replace`); run or plan its first run."""
        effects: list[Effect] = []
        if replace:
            for other in self._tasks.named(task.name):
                effects += self.remove(other)
        self._tasks.add(task)
        if self._bus.listened(Event.TASK_ADDED):  # no snapshot nobody would see
            effects.append(self._bus.emitter(Event.TASK_ADDED, task.snapshot()))
        if self._started():
            due = task.trigger.first_due(now)
            if due is not None and due <= now:
                effects += self._jobs.fire(task, now, RUN, due=now)
            elif due is not None:
                self._timeline.schedule(task, due)
        return effects

    def remove(self, task: TaskRecord) -> list[Effect]:
        """Forget `task`; its running job gets its stop event set, waiters on its next job fail."""
        self._tasks.discard(task)
        if task.active_job is not None:
            job = self._history.find(task.active_job)
            if job is not None:
                job.stop_event.set("removed")
        else:
            self._waiters.fail_task(task.task_id, TaskNotFoundError(f"task {task.name!r} was removed"))
        return [self._bus.emitter(Event.TASK_REMOVED, task.snapshot())]

    def pause(self, task: TaskRecord) -> list[Effect]:
        if task.paused:
            return []
        task.paused = True
        task.gen += 1  # its timeline entries go stale
        task.next_due = None
        return [self._bus.emitter(Event.TASK_PAUSED, task.snapshot())]

    def resume(self, task: TaskRecord, due: float) -> list[Effect]:
        if not task.paused:
            return []
        task.paused = False
        task.gen += 1
        if self._started():
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
        if not self._started():
            raise QuivError("the scheduler is not started yet; call start() first")
        effects = self._jobs.start_job(task, now)
        assert task.active_job is not None
        return task.active_job, effects
