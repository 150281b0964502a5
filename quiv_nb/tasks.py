"""The task table and the building of a task record from `add_task`'s arguments (validated)."""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from datetime import tzinfo
from typing import Any, Callable, Iterator, NamedTuple

from .dispatch import is_async_callable
from .errors import ConfigurationError, TaskNotFoundError
from .execution import DATA_KINDS, HandlerSpec, capture_job_contexts, inspect_handler, observes_stop
from .records import TaskRecord, new_id
from .seams import as_progress_sink
from .triggers import AfterTrigger, IntervalTrigger, OnceTrigger

__all__ = ["TaskSpec", "TaskTable", "build_task", "check_arguments", "handler_spec", "number"]


_PLAIN_NUMBERS = (int, float)  # exact types: bool is an int subclass and is rejected below


def number(name: str, value: Any, *, allow_none: bool, minimum: float, strict: bool) -> float | None:
    """Validate a non-bool finite number against a bound, naming the argument on failure."""
    if value is None and allow_none:
        return None
    if type(value) in _PLAIN_NUMBERS and (value > minimum if strict else value >= minimum) and value < math.inf:
        return float(value)  # the common case, checked first: `add_task` validates four numbers per task
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a number of seconds {bound}, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise ConfigurationError(f"{name} must be {bound} seconds, got {value!r}")
    return float(value)


def _plain_function() -> None:
    return None


# What `inspect_handler` learned about a plain function, per (number of args, kwarg names): the
# signature inspection and bind check cost more than the rest of `add_task` together, and their
# result depends on nothing else. Only plain functions without attributes (no `__wrapped__` or
# `__signature__` to follow) are cached, and an entry is dropped if the function's code or
# defaults are replaced.
_FunctionType = type(_plain_function)
_specs: weakref.WeakKeyDictionary[Any, tuple[Any, Any, Any, dict[tuple[int, tuple[str, ...]], HandlerSpec]]] = (
    weakref.WeakKeyDictionary()
)


def handler_spec(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> HandlerSpec:
    """`inspect_handler(func, args, kwargs)`, cached for plain functions; raises `ConfigurationError` alike."""
    if type(func) is not _FunctionType or func.__dict__:
        return inspect_handler(func, args, kwargs)
    key = (len(args), tuple(kwargs))
    code, defaults, kwdefaults = func.__code__, func.__defaults__, func.__kwdefaults__
    entry = _specs.get(func)
    if entry is None or entry[0] is not code or entry[1] is not defaults or entry[2] is not kwdefaults:
        entry = _specs[func] = (code, defaults, kwdefaults, {})
    spec = entry[3].get(key)
    if spec is None:
        spec = entry[3][key] = inspect_handler(func, args, kwargs)
    return spec


def _check_schedule(interval: Any, cron: Any, at: Any, after: Any, timezone: Any, delay: Any) -> None:
    """Refuse schedule arguments that do not go together (`ConfigurationError` saying which)."""
    given = [n for n, v in (("interval", interval), ("cron", cron), ("at", at), ("after", after)) if v is not None]
    if len(given) > 1:
        raise ConfigurationError(
            f"{' and '.join(given)} are mutually exclusive: give a task one schedule (interval, cron, at or after)"
        )
    if timezone is not None and cron is None and at is None:
        raise ConfigurationError("timezone applies to cron= and at= schedules only; drop it or add one of them")
    if after is not None and delay is not None:
        raise ConfigurationError("delay does not apply to an after= task: it runs when its upstream tasks complete")


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")
    return value


class TaskSpec(NamedTuple):
    """`add_task`'s arguments, unvalidated, as one value (`build_task` checks and turns them into a record).

    A `NamedTuple` rather than a frozen dataclass: one is built per `add_task`, and a frozen
    dataclass's generated `__init__` (a `object.__setattr__` per field) costs ~4 µs more here.
    """

    task_name: Any
    func: Any
    interval: Any = None
    delay: Any = None
    run_once: Any = False
    args: Any = ()
    kwargs: Any = None
    progress_callback: Any = None
    timeout: Any = None
    max_retries: Any = 0
    retry_backoff: Any = 1.0
    notify: Any = False
    after: Any = None
    cron: Any = None
    at: Any = None
    timezone: Any = None
    fixed_interval: Any = True
    default_zone: str | tzinfo | None = None  # the scheduler's `timezone=`: cron/at tasks that name none


def check_arguments(args: Any, kwargs: Any) -> dict[str, Any]:
    """Check a handler's `args` and `kwargs` as `add_task` takes them; return the kwargs (a dict).

    Raises `ConfigurationError`: `args` must be a tuple (as in quiv: a list is refused rather than
    silently copied), `kwargs` a dict with string keys or None.
    """
    if not isinstance(args, tuple):
        raise ConfigurationError(
            f"args must be a tuple, got {type(args).__name__}: pass a tuple, e.g. args=(1, 2) or args=(x,)"
        )
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ConfigurationError("kwargs must be a dict with string keys, or None")
    return kwargs


def build_task(given: TaskSpec) -> TaskRecord:
    """A new, unregistered task record from `add_task`'s arguments (calling thread).

    Raises `ConfigurationError` naming the first bad argument. Captures the calling thread's job
    contexts (e.g. the notebook cell that output should go to). `after` is only checked for
    presence here; the facade resolves it against the task table (`pipeline.resolve_upstream`).
    """
    (task_name, func, interval, delay, run_once, args, kwargs, progress_callback, timeout, max_retries,
     retry_backoff, notify, after, cron, at, timezone, fixed_interval, default_zone) = given  # fmt: skip
    if not isinstance(task_name, str) or not task_name.strip():
        raise ConfigurationError(f"task_name must be a non-empty string, got {task_name!r}")
    _flag("run_once", run_once)
    calendar = cron is not None or at is not None
    if calendar or after is not None or timezone is not None:
        _check_schedule(interval, cron, at, after, timezone, delay)
        interval = number("interval", interval, allow_none=True, minimum=0, strict=True)
    elif run_once:
        interval = number("interval", interval, allow_none=True, minimum=0, strict=True)
    elif interval is None:
        raise ConfigurationError(
            "interval is required for a recurring task (seconds > 0), or cron=, at= or after=; or pass run_once=True"
        )
    else:
        interval = number("interval", interval, allow_none=False, minimum=0, strict=True)
    delay = number("delay", delay, allow_none=True, minimum=0, strict=False)
    timeout = number("timeout", timeout, allow_none=True, minimum=0, strict=True)
    retry_backoff = number("retry_backoff", retry_backoff, allow_none=False, minimum=0, strict=False) or 0.0
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigurationError(f"max_retries must be an integer >= 0, got {max_retries!r}")
    kwargs = check_arguments(args, kwargs)
    if fixed_interval is not True:
        _flag("fixed_interval", fixed_interval)
    if progress_callback is not None and not callable(progress_callback):
        raise ConfigurationError(
            f"progress_callback must be callable (sync or async) or None, got {type(progress_callback).__name__}"
        )
    _flag("notify", notify)
    spec = handler_spec(func, args, kwargs)

    task = TaskRecord()
    task.task_id = new_id()
    task.name, task.func, task.args, task.kwargs, task.spec = task_name, func, args, dict(kwargs), spec
    task.interval, task.run_once, task.delay = interval, run_once, delay
    task.zone = task.timezone = task.cron = task.at = None
    if calendar:
        # Calendar triggers load datetime, zoneinfo and cronsim: on first use, not at `import quiv_nb`.
        from .cron import CronTrigger, DailyTrigger, resolve_zone, zone_name

        if timezone is not None:
            zone = resolve_zone(timezone)
        elif isinstance(default_zone, tzinfo):
            zone = default_zone
        else:
            zone = resolve_zone(default_zone)
        task.zone = zone
        task.timezone = zone_name(zone)
        if cron is not None:
            task.trigger = trigger = CronTrigger(cron, zone, delay)
            task.cron = trigger.expression
        else:
            task.trigger = daily = DailyTrigger(at, zone, delay)
            task.at = daily.at
    elif after is not None:
        task.trigger = AfterTrigger()
    elif run_once or interval is None:
        task.trigger = OnceTrigger(delay)
    else:
        task.trigger = IntervalTrigger(interval, delay, from_end=not fixed_interval)
    task.after = ()  # upstream names, filled by the facade once `after` is resolved
    # `_upstream` / `_scheduled_at`: values the lifecycle puts into the job's kwargs (see execution.DATA_KINDS).
    task.data_inject = tuple((n, kind) for n, kind in spec.inject if kind in DATA_KINDS) if spec.inject else ()
    task.data = None
    task.cache_base = None  # set by the facade for `cache=` tasks with a store
    task.callback = progress_callback
    task.sink = None if progress_callback is None else as_progress_sink(progress_callback)
    task.callback_async = progress_callback is not None and is_async_callable(progress_callback)
    task.timeout, task.max_retries, task.retry_backoff = timeout, max_retries, retry_backoff
    task.notify = notify
    task.cancellable = observes_stop(spec)
    task.paused, task.gen, task.next_due = False, 0, None
    task.active_job, task.failures, task.last_job_id = None, 0, None
    task.contexts = capture_job_contexts(recurring=not run_once)
    return task


class _Names(Mapping[str, str]):
    __slots__ = ("_tasks",)

    def __init__(self, tasks: dict[str, TaskRecord]) -> None:
        self._tasks = tasks

    def __getitem__(self, task_id: str) -> str:
        return self._tasks[task_id].name

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __iter__(self) -> Iterator[str]:
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)


class TaskTable:
    """Registered tasks by id (scheduler lock held by every caller)."""

    __slots__ = ("_tasks", "find")

    def __init__(self) -> None:
        self._tasks: dict[str, TaskRecord] = {}
        # `find(task_id)`: the task or None. The dict's own `get`: a C call on the per-job path.
        self.find: Callable[[str], TaskRecord | None] = self._tasks.get

    def get(self, task_id: str) -> TaskRecord:
        """The task, or `TaskNotFoundError` with a hint."""
        task = self._tasks.get(task_id)
        if task is None:
            raise TaskNotFoundError(f"no task with id {task_id!r}; see get_all_tasks() for the ids that exist")
        return task

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def add(self, task: TaskRecord) -> None:
        self._tasks[task.task_id] = task

    def discard(self, task: TaskRecord) -> None:
        """Forget `task` and make its timeline entries stale."""
        self._tasks.pop(task.task_id, None)
        task.gen += 1
        task.next_due = None

    def named(self, name: str) -> list[TaskRecord]:
        return [t for t in self._tasks.values() if t.name == name]

    def names(self) -> Mapping[str, str]:
        """The table as {task id: name}, a live view without copying (for `pipeline.resolve_upstream`)."""
        return _Names(self._tasks)

    def __iter__(self) -> Iterator[TaskRecord]:
        return iter(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)

    def callback(self, task_id: str) -> Callable[..., Any] | None:
        """The task's progress callback (or None); lock-free: one dict lookup, one attribute read."""
        task = self._tasks.get(task_id)
        return None if task is None else task.callback
