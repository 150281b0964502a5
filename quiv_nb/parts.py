"""`SchedulerParts`: the state one `Quiv` shares between its collaborators, handed over as one value.

The lifecycle and the task control both work on the same task table, job history, timeline,
waiters, event bus and pipeline, under the same lock; the facade builds them once and passes this
instead of six or seven positional parameters each. Only names types (under `TYPE_CHECKING`), so
it is a leaf.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .eventbus import EventBus
    from .history import JobHistory
    from .pipeline import Pipeline
    from .tasks import TaskTable
    from .timeline import Timeline
    from .waiters import Waiters

__all__ = ["SchedulerParts"]


@dataclass(slots=True, frozen=True)
class SchedulerParts:
    """One scheduler's shared state; every part is used with `lock` held (see each part's docstring)."""

    lock: threading.RLock
    tasks: TaskTable
    history: JobHistory
    timeline: Timeline
    waiters: Waiters
    bus: EventBus
    pipeline: Pipeline
