"""The dependency graph behind `add_task(after=...)`, and the rule that decides what runs next.

Pure and thread-free: the scheduler calls a `Pipeline` under its own lock and acts on the
`Run` / `Skip` decisions it returns, so the whole rule is tested without threads.

The rule. A downstream task runs one job each time *all* its upstream tasks have completed a
job since its last trigger; the job gets `{upstream task name: result}` of the latest such jobs.
When an upstream job ends any other way (failed after its retries, cancelled, timed out,
skipped), every task downstream of it, transitively, is skipped once instead: the scheduler
records a SKIPPED job whose error names the upstream, and the broken round starts over (results
already collected from its other upstreams are dropped). A trigger that arrives while the
downstream task still runs a job is held, latest wins, and released when that job ends: a task
never overlaps itself, and no round is lost.
"""

from __future__ import annotations

from collections.abc import Iterable, KeysView, Mapping, Sequence
from typing import Any

from .errors import ConfigurationError, DependentTasksError
from .models import JobStatus

__all__ = ["Pipeline", "Run", "Skip", "resolve_upstream"]


class Run:
    """Start one job of `task_id`, injecting `upstream` as `_upstream`.

    Decisions are plain slotted classes, not frozen dataclasses: a fan-out makes one per task
    below it, and a frozen dataclass's `__init__` costs several times as much.
    """

    __slots__ = ("task_id", "upstream")

    def __init__(self, task_id: str, upstream: dict[str, Any] | None = None) -> None:
        self.task_id = task_id
        self.upstream = {} if upstream is None else upstream

    def __eq__(self, other: object) -> bool:
        return type(other) is Run and (self.task_id, self.upstream) == (other.task_id, other.upstream)

    __hash__ = None  # type: ignore[assignment]  # mutable payload

    def __repr__(self) -> str:
        return f"Run({self.task_id!r}, {self.upstream!r})"


class Skip:
    """Record a SKIPPED job of `task_id` with error `reason` (it names the upstream)."""

    __slots__ = ("reason", "task_id")

    def __init__(self, task_id: str, reason: str) -> None:
        self.task_id = task_id
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        return type(other) is Skip and (self.task_id, self.reason) == (other.task_id, other.reason)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Skip({self.task_id!r}, {self.reason!r})"


_VERB = {
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "was cancelled",
    JobStatus.SKIPPED: "was skipped",
}


def resolve_upstream(task_name: str, after: Any, tasks: Mapping[str, str]) -> dict[str, str]:
    """Turn `after` (a task name or id, or a list of them) into `{task id: task name}`, in order.

    `tasks` maps the id of every registered task to its name (the scheduler's table). Raises
    `ConfigurationError` for anything but a non-empty name/id or list of them, a task naming
    itself, a name that is no task, or a name several tasks share (pass an id then).
    """
    refs: Sequence[Any] = [after] if isinstance(after, str) else after
    if not isinstance(refs, (list, tuple)) or not refs or not all(isinstance(r, str) and r.strip() for r in refs):
        raise ConfigurationError(f"after must be a task name or id, or a non-empty list of them, got {after!r}")
    by_name: dict[str, list[str]] | None = None
    resolved: dict[str, str] = {}
    for ref in refs:
        if ref == task_name:
            raise ConfigurationError(f"task {task_name!r} cannot run after itself (after={after!r})")
        if ref in tasks:  # an id: O(1), so a join over 1,000 ids costs no scan
            resolved[ref] = tasks[ref]
            continue
        if by_name is None:
            by_name = {}
            for task_id, name in tasks.items():
                by_name.setdefault(name, []).append(task_id)
        ids = by_name.get(ref, [])
        if not ids:
            known = ", ".join(sorted(repr(n) for n in set(tasks.values()))[:20]) or "none yet"
            raise ConfigurationError(
                f"after names {ref!r}, which is no task; add the upstream task first (tasks: {known})"
            )
        if len(ids) > 1:
            raise ConfigurationError(
                f"after names {ref!r}, which {len(ids)} tasks share ({', '.join(ids)}); pass one task id instead"
            )
        resolved[ids[0]] = ref
    return resolved


class Pipeline:
    """Edges between tasks, what each downstream task has collected, and held triggers.

    Only tasks that take part in an edge are known here. Calls are not thread-safe: the
    scheduler makes them under its lock.
    """

    def __init__(self) -> None:
        self._up: dict[str, tuple[str, ...]] = {}  # downstream id -> its upstream ids, in `after` order
        self._down: dict[str, list[str]] = {}  # upstream id -> its direct downstream ids
        self._names: dict[str, str] = {}  # id -> task name, for every id in an edge
        self._pending: dict[str, dict[str, Any]] = {}  # downstream id -> {upstream id: result} this round
        self._held: dict[str, dict[str, Any]] = {}  # downstream id -> a trigger that came while it ran
        self._retired: set[str] = set()  # finished run-once upstreams kept only for their dependents

    # ------------------------------------------------------------------ the graph

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._names

    @property
    def nodes(self) -> KeysView[str]:
        """The ids of tasks in an edge, a live view: `task_id in nodes` is one C-level lookup,
        cheap enough for the lifecycle to ask after every job."""
        return self._names.keys()

    def upstream_names(self, task_id: str) -> tuple[str, ...]:
        """Names of the tasks `task_id` runs after (for `Task.after`), in the order given."""
        return tuple(self._names[u] for u in self._up.get(task_id, ()))

    def retired_named(self, name: str) -> list[str]:
        """Ids of finished run-once tasks called `name` that are kept for their dependents.

        A new task of that name takes their place (`add(..., replaces=...)`): re-running the cell
        that adds a run-once upstream feeds the tasks after it again.
        """
        return [t for t in self._retired if self._names.get(t) == name]

    def dependents(self, task_id: str) -> list[str]:
        """Every task downstream of `task_id`, transitively, nearest first (breadth-first)."""
        seen: dict[str, None] = {}
        frontier = list(self._down.get(task_id, ()))
        while frontier:
            nxt: list[str] = []
            for d in frontier:
                if d not in seen:
                    seen[d] = None
                    nxt.extend(self._down.get(d, ()))
            frontier = nxt
        return list(seen)

    def add(self, task_id: str, name: str, upstream: Mapping[str, str], *, replaces: Iterable[str] = ()) -> None:
        """Register `task_id` to run after `upstream` ({id: name}); tasks it `replaces` hand it their dependents.

        `replaces` is for `add_task(replace=True)`: re-running a notebook cell that defines an
        upstream task must not cut the pipeline below it. Raises `ConfigurationError` naming
        the cycle if the new edges would make one; the graph is unchanged then.
        """
        replaces = list(replaces)
        if set(upstream) & set(replaces):
            raise ConfigurationError(f"task {name!r} cannot run after the task it replaces (itself)")
        replaces = [r for r in replaces if r in self._names]
        inherited = [d for r in replaces for d in self._down.get(r, ()) if d != task_id and d not in replaces]
        if inherited:
            cycle = self._path_to_any(inherited, set(upstream), task_id)
            if cycle:
                names = [name] + [self._names[t] for t in cycle] + [name]
                raise ConfigurationError(
                    f"after would make a cycle: {' -> '.join(names)}; a task cannot (indirectly) run after itself"
                )
        for old in replaces:
            dependents = self._down.get(old, [])
            for d in dependents:
                if d == task_id or d in replaces:
                    continue
                self._up[d] = tuple(task_id if u == old else u for u in self._up[d])
                pending = self._pending.get(d)
                if pending is not None:
                    pending.pop(old, None)  # a round keyed on the old task id would never complete
            self._down.pop(old, None)
            self.remove(old)
        if not upstream and not inherited:
            return
        self._names[task_id] = name
        for d in dict.fromkeys(inherited):
            self._down.setdefault(task_id, []).append(d)
        if upstream:
            self._up[task_id] = tuple(upstream)
            for u, u_name in upstream.items():
                self._names.setdefault(u, u_name)
                self._down.setdefault(u, []).append(task_id)

    def _path_to_any(self, starts: list[str], targets: set[str], origin: str) -> list[str] | None:
        """A downstream path from one of `starts` to one of `targets` (for the cycle message), or None."""
        if origin in targets:  # pragma: no cover - resolve_upstream already refuses a task naming itself
            return []
        parent: dict[str, str | None] = {s: None for s in starts}
        queue = list(starts)
        while queue:
            node = queue.pop(0)
            if node in targets:
                path = [node]
                while parent[path[-1]] is not None:
                    path.append(parent[path[-1]])  # type: ignore[arg-type]
                return path[::-1]
            for d in self._down.get(node, ()):
                if d not in parent:
                    parent[d] = node
                    queue.append(d)
        return None

    def check_removal(self, task_id: str, cascade: bool) -> list[str]:
        """The ids `remove_task(task_id, cascade)` must remove besides `task_id`, farthest first.

        Raises `DependentTasksError` listing the dependents when there are some and not `cascade`.
        """
        dependents = self.dependents(task_id)
        if dependents and not cascade:
            names = [self._names[d] for d in dependents]
            raise DependentTasksError(
                f"task {self._names[task_id]!r} cannot be removed: {', '.join(map(repr, names))} "
                f"{'runs' if len(names) == 1 else 'run'} after it; remove "
                f"{'that' if len(names) == 1 else 'those'} first, or pass cascade=True to remove them too",
                names,
            )
        return dependents[::-1]

    def remove(self, task_id: str) -> None:
        """Forget `task_id` and its edges (its dependents, if any, must be removed or rewired first)."""
        for u in self._up.pop(task_id, ()):
            downs = self._down.get(u)
            if downs is not None:
                downs[:] = [d for d in downs if d != task_id]
                if not downs:
                    del self._down[u]
                    self._forget_if_unused(u)
        for d in self._down.pop(task_id, ()):  # only when rewiring: dependents lose this upstream
            self._up[d] = tuple(u for u in self._up.get(d, ()) if u != task_id)
        self._pending.pop(task_id, None)
        self._held.pop(task_id, None)
        self._retired.discard(task_id)
        self._forget_if_unused(task_id)

    def retire(self, task_id: str) -> None:
        """A run-once task finished and left the task table: keep its name only while dependents need it."""
        if task_id in self._names:
            self._retired.add(task_id)
            self._forget_if_unused(task_id)

    def _forget_if_unused(self, task_id: str) -> None:
        if task_id not in self._up and task_id not in self._down:
            self._names.pop(task_id, None)
            self._retired.discard(task_id)
        elif task_id in self._retired and task_id not in self._down:
            self.remove(task_id)

    # ------------------------------------------------------------------ the trigger rule

    def hold(self, task_id: str, upstream: dict[str, Any]) -> None:
        """`Run(task_id)` came while that task had a job running: release it when that job ends."""
        self._held[task_id] = upstream

    def on_job_final(
        self, task_id: str, status: JobStatus, result: Any = None, error: str | None = None
    ) -> list[Run | Skip]:  # the decisions, in the order to apply them
        """A job of `task_id` ended for good (retries exhausted); return what must happen downstream.

        `status` is the job's final status, `result` its result, `error` its error message (it
        goes into the skip reason). A held trigger of `task_id` itself comes first.
        """
        if task_id not in self._names:
            return []
        decisions: list[Run | Skip] = []
        held = self._held.pop(task_id, None)
        if held is not None:
            decisions.append(Run(task_id, held))
        if status is JobStatus.COMPLETED:
            for d in self._down.get(task_id, ()):
                pending = self._pending.setdefault(d, {})
                pending[task_id] = result
                ups = self._up[d]
                if len(pending) == len(ups):
                    del self._pending[d]
                    decisions.append(Run(d, {self._names[u]: pending[u] for u in ups}))
            return decisions
        why = f"upstream {self._names[task_id]!r} {_VERB.get(status, str(status))}"
        if error:
            why += f": {error}"
        # Breadth-first so each task is skipped once (a diamond reaches its join twice), and each
        # reason names the task right above it plus the root cause.
        reasons = {d: why for d in self._down.get(task_id, ())}
        frontier = list(reasons)
        while frontier:
            nxt = []
            for d in frontier:
                self._pending.pop(d, None)
                decisions.append(Skip(d, reasons[d]))
                for dd in self._down.get(d, ()):
                    if dd not in reasons:
                        reasons[dd] = f"upstream {self._names[d]!r} was skipped ({why})"
                        nxt.append(dd)
            frontier = nxt
        return decisions
