"""What each private-API speed shortcut of the core buys on a figure a user sees: the one-shot burst.

    python benchmarks/bench_shortcuts.py [--rounds 9] [-n 2000]

The workload is `bench_oneshot.py`'s quiv_nb one: 2,000 run-once tasks with a trivial handler on a
pool of 10, from the first `add_task` until a JOB_COMPLETED listener saw all (wall time), plus the
process CPU time of that burst (steadier on a shared machine). Variants, interleaved per round in
one process, each undoing ONE shortcut with its public equivalent:

- shipped: everything as in quiv_nb;
- `threading.RLock()` as the scheduler lock instead of `locks.YieldingRLock` (a `_thread.RLock`
  subclass whose contended acquire yields the GIL with `time.sleep(0)` first);
- `str(uuid.uuid4())` per id instead of `records.new_id` (ids cut from one `os.urandom` read per 64);
- snapshots built with the frozen dataclasses' own `__init__` instead of `object.__new__` plus one
  `__dict__.update` (`records.JobRecord.snapshot` / `TaskRecord.snapshot`).

A shortcut is kept only where undoing it costs at least 10 % on one of these figures
(benchmarks/RESULTS.md, "Private-API shortcuts").
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
import uuid
from collections.abc import Iterator
from time import perf_counter, process_time
from typing import Any, Callable

from _common import fmt_ms, machine_facts, median, parser, table

import quiv_nb
from quiv_nb import records, scheduler, tasks
from quiv_nb.models import Job, Task, TaskStatus

POOL = 10
TIMEOUT = 300.0


def noop() -> None:
    return None


def burst(n: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) for n one-shot tasks, first add -> the last JOB_COMPLETED."""
    q = quiv_nb.Quiv(POOL)
    done = threading.Event()
    seen = iter(range(1, n + 1))

    def listener(*_: Any) -> None:
        if next(seen) == n:
            done.set()

    q.add_listener(quiv_nb.Event.JOB_COMPLETED, listener)
    q.start()
    gc.collect()
    t0, c0 = perf_counter(), process_time()
    for _ in range(n):
        q.add_task("bench", noop, run_once=True)
    if not done.wait(TIMEOUT):
        raise RuntimeError("not all jobs completed")
    wall, cpu = perf_counter() - t0, process_time() - c0
    q.shutdown()
    return wall, cpu


@contextlib.contextmanager
def patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def _uuid4() -> str:
    return str(uuid.uuid4())


def _job_snapshot(self: records.JobRecord) -> Job:
    return Job(
        job_id=self.job_id, task_id=self.task_id, status=self.status, started_at=self.started_at,
        ended_at=self.ended_at, duration_seconds=self.duration, result=self.result,
        error_message=self.error_message, traceback=self.traceback, task_name=self.task_name,
        attempt=self.attempt, output=self.log.text() if self.log is not None else "",
        cancel_requested=self.cancel_requested,
    )  # fmt: skip


def _task_snapshot(self: records.TaskRecord) -> Task:
    # The same values as `TaskRecord.snapshot` (a one-shot task has no zone: next run from the monotonic clock).
    status = TaskStatus.PAUSED if self.paused else TaskStatus.RUNNING if self.active_job else TaskStatus.ACTIVE
    next_run_at = None
    if self.next_due is not None and not self.paused:
        from datetime import timedelta

        next_run_at = records.utcnow() + timedelta(seconds=max(0.0, self.next_due - time.monotonic()))
    return Task(
        task_id=self.task_id, task_name=self.name, status=status, interval=self.interval, run_once=self.run_once,
        next_run_at=next_run_at, delay=self.delay, timeout=self.timeout, max_retries=self.max_retries,
        last_job_id=self.last_job_id, after=self.after, cron=self.cron, at=self.at, timezone=self.timezone,
        notify=self.notify,
    )  # fmt: skip


@contextlib.contextmanager
def shipped() -> Iterator[None]:
    yield


@contextlib.contextmanager
def plain_rlock() -> Iterator[None]:
    with patched(scheduler, "YieldingRLock", threading.RLock):
        yield


@contextlib.contextmanager
def uuid_per_id() -> Iterator[None]:
    with patched(records, "new_id", _uuid4), patched(tasks, "new_id", _uuid4):
        yield


@contextlib.contextmanager
def dataclass_init() -> Iterator[None]:
    with patched(records.JobRecord, "snapshot", _job_snapshot), patched(records.TaskRecord, "snapshot", _task_snapshot):
        yield


VARIANTS: list[tuple[str, Callable[[], contextlib.AbstractContextManager[None]]]] = [
    ("shipped (all shortcuts)", shipped),
    ("threading.RLock() lock", plain_rlock),
    ("uuid.uuid4() per id", uuid_per_id),
    ("snapshots via dataclass __init__", dataclass_init),
]


def main() -> None:
    p = parser(__doc__.splitlines()[0], rounds=9)
    p.add_argument("-n", type=int, default=2000, help="tasks per round (default 2000)")
    args = p.parse_args()
    print(machine_facts())
    burst(200)  # warm-up: imports, caches
    walls: dict[str, list[float]] = {name: [] for name, _ in VARIANTS}
    cpus: dict[str, list[float]] = {name: [] for name, _ in VARIANTS}
    for r in range(args.rounds):
        for name, variant in VARIANTS:
            with variant():
                wall, cpu = burst(args.n)
            walls[name].append(wall)
            cpus[name].append(cpu)
        print(f"round {r + 1}/{args.rounds} done", file=__import__("sys").stderr, flush=True)
    base_wall, base_cpu = median(walls[VARIANTS[0][0]]), median(cpus[VARIANTS[0][0]])
    rows = []
    for name, _ in VARIANTS:
        wall, cpu = median(walls[name]), median(cpus[name])
        rows.append([name, fmt_ms(wall), f"{wall / base_wall:.2f}x", fmt_ms(cpu), f"{cpu / base_cpu:.2f}x"])
    print(f"\n{args.n:,} one-shot tasks, pool of {POOL}, median of {args.rounds} interleaved rounds\n")
    print(table(["variant", "wall", "vs shipped", "CPU", "vs shipped"], rows))


if __name__ == "__main__":
    main()
