"""The internal seams of quiv_nb, declared in one place.

Each is a `typing.Protocol`: implementations do not inherit from them, they only match. The core
calls through these and nothing else, so a new executor (Dask), renderer (a bar, the dashboard),
trigger (cron, a daily time) or clock plugs in without the core knowing its type.

| seam | implemented by | called by |
|---|---|---|
| `JobExecutor` | `pool.PoolExecutor`, `dask.DaskExecutor`, `mapfanout.LocalBodies` | `JobLifecycle.start_job` |
| `ProgressSink` | `render.base.BarRenderer` (`quiv_nb.bar()`) | job hooks, `JobLifecycle.on_start`/`finalize` |
| `Drawable` | bars and the dashboard | `render.pump.RenderPump` |
| `Trigger` | `triggers.*Trigger`, `cron.CronTrigger`/`DailyTrigger` | `Quiv.start`/`add_task`, `JobLifecycle.fire` |
| `Clock` | `time.monotonic` | the facade; rules take `now` as an argument instead |
| `JobStore` | `store.Store`, `store.null.NullStore` | `JobLifecycle`, `reuse.reuse_result`, the facade |
| `Host` | `kernel.KernelHost` (`kernel.install()` registers it) | render (bars, dashboard, notify): `hooks.host()` |
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

if TYPE_CHECKING:
    from concurrent.futures import Future
    from datetime import datetime

    from .execution import JobCall, Outcome
    from .models import Job
    from .records import JobRecord, TaskRecord

__all__ = [
    "Clock",
    "Drawable",
    "Effect",
    "Host",
    "JobExecutor",
    "JobStore",
    "ProgressSink",
    "Trigger",
    "as_progress_sink",
]


# A side effect a state change returns, run by the caller once the scheduler lock is released
# (listener deliveries, a renderer's end, waking waiters, job submissions' done-callbacks).
Effect = Callable[[], None]


@runtime_checkable
class JobExecutor(Protocol):
    """Where job bodies run. `submit` returns a future that resolves to an `Outcome` (never raises)."""

    def submit(self, call: JobCall) -> Future[Outcome]:
        """Start running `call` (scheduler lock held: never block); may raise to refuse the job."""
        ...

    def shutdown(self, timeout: float | None = None) -> list[str]:
        """Stop; return the names of threads (or jobs) abandoned because they did not finish."""
        ...


@runtime_checkable
class ProgressSink(Protocol):
    """A progress callback the scheduler talks to directly: `quiv_nb.bar()`'s renderers, or any
    object with all three methods (recognised once, when its task is added: `as_progress_sink`).

    Any other callback is called as `callback(*args, **kwargs)` through dispatch. `quiv_progress`
    runs inline on the worker thread; the other two run on a worker or the scheduler thread, never
    with the scheduler lock held. All three must be O(1), thread-safe and never raise.
    """

    def quiv_progress(self, job_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Record one `_progress_hook(*args, **kwargs)` call of job `job_id`."""
        ...

    def quiv_job_started(self, job: Job) -> None:
        """Job `job` starts now (just before its handler runs)."""
        ...

    def quiv_job_finished(self, job: Job) -> None:
        """Job `job` reached its final status (before its waiters are woken)."""
        ...


_sink_types: weakref.WeakKeyDictionary[type, bool] = weakref.WeakKeyDictionary()


def as_progress_sink(callback: object) -> ProgressSink | None:
    """`callback` if it is a `ProgressSink`, else None (any thread; decided once per type).

    The type's answer is cached: `isinstance` against a runtime protocol inspects the class, and a
    renderer class is asked once per `add_task`.
    """
    if callback is None:
        return None
    kind = type(callback)
    known = _sink_types.get(kind)
    if known is None:
        known = _sink_types[kind] = isinstance(callback, ProgressSink)
    return callback if known else None  # type: ignore[return-value]


class Drawable(Protocol):
    """Something the render pump redraws. `pump_draw` runs on the pump thread only."""

    @property
    def min_interval(self) -> float:
        """Seconds between two redraws of this drawable (0.1 → ~10 Hz); an attribute or a property."""
        ...

    def pump_draw(self) -> int:
        """Redraw from the latest recorded state; return how many frontend messages it sent."""
        ...


class Trigger(Protocol):
    """When a task runs, on the scheduler's monotonic clock (seconds). See `quiv_nb.triggers`.

    Called with the scheduler lock held: pure and quick. `None` means no (further) run is planned.
    """

    def first_due(self, now: float) -> float | None:
        """The first run, for a task added to a started scheduler (or at `start()`) at `now`."""
        ...

    def next_due(self, previous_due: float, now: float) -> float | None:
        """The run after the slot due at `previous_due`, which fires at `now` (>= previous_due)."""
        ...

    def resume_due(self, now: float, delay: float) -> float | None:
        """The first run after `resume_task(delay=delay)` at `now` (a calendar: the first time >= now + delay)."""
        ...


class Clock(Protocol):
    """Monotonic seconds, as `time.monotonic`."""

    def __call__(self) -> float: ...


@runtime_checkable
class JobStore(Protocol):
    """Where job records and cached step results outlive the process (see `quiv_nb.store`).

    The calls marked "lock held" are made under the scheduler lock: O(1), never blocking on I/O.
    """

    def job_changed(self, job: JobRecord) -> None:
        """`job` was queued or started (lock held): record its state, off this thread."""
        ...

    def job_ended(self, job: JobRecord) -> None:
        """`job` reached its final status (lock held): record it; keep a cached step's result."""
        ...

    def cache_base(self, task: TaskRecord, pin: str | None) -> str | None:
        """A `cache=` task's key before upstream results, None to run it uncached (adding thread)."""
        ...

    def step_key(self, task: TaskRecord, upstream: dict[str, Any]) -> str | None:
        """The cache key of a run of `task` given `{upstream name: result}` (no lock held: it may pickle them)."""
        ...

    def has_result(self, key: str) -> bool:
        """Whether a result is held for `key` (lock held)."""
        ...

    def load_result(self, key: str) -> tuple[bool, Any, datetime | None]:
        """(found, result, when it was computed) for `key` (no lock held)."""
        ...

    def dump_result(self, job: JobRecord, result: Any) -> None:
        """Serialise a cached step's result before its job is finalized (worker thread, no lock)."""
        ...

    def sync(self, timeout: float | None = ...) -> bool:
        """Block until what was recorded so far is durable; False on timeout (calling thread)."""
        ...

    def close(self, timeout: float | None = ...) -> None:
        """Flush and release the store (idempotent)."""
        ...


class Host(Protocol):
    """The application quiv_nb runs in (a Jupyter kernel), as the render layer sees it.

    The kernel package implements it and registers it with `hooks.register_host`; render reads
    it through `hooks.host()`, so render never imports the kernel package. Any thread.
    """

    def in_kernel(self) -> bool:
        """True inside a running Jupyter kernel (widgets and displays can be shown)."""
        ...

    def ipython(self) -> Any:
        """The running IPython shell, or None."""
        ...

    def answer_on_sender_shell(self, widget: Any) -> None:
        """Let `widget`'s clicks be handled on the subshell they arrive on (busy-cell controls)."""
        ...

    def get_scheduler(self) -> Any:
        """The kernel's one scheduler (created and started on first use)."""
        ...
