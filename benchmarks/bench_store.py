"""2,000 one-shot tasks with and without a store: what recording every job to SQLite costs.

    python benchmarks/bench_store.py [--rounds 7] [-n 2000]

Side by side in one process, rounds interleaved (no store, store, no store, ...), each on a fresh
`Quiv(10)` started before the clock starts:
- `Quiv(10)`: `add_task(..., run_once=True)`, finished when a JOB_COMPLETED listener saw all;
- `Quiv(10, store=...)`: the same, recording every job to a new SQLite file; the clock stops once
  the listener saw all *and* `shutdown()` flushed the records (so the writes are inside the time);
- both again with `wait_for_task` on each id (a wait returns only once its job is on disk).
Target: with a store at most 1.3x the time without (median of per-round ratios).
"""

from __future__ import annotations

import gc
import shutil
import tempfile
from pathlib import Path
from time import perf_counter, process_time

from _common import Target, finisher, fmt_ms, fmt_us, machine_facts, median, parser, print_targets, table

POOL = 10
TIMEOUT = 300.0


def noop() -> None:
    return None


def _run(n: int, store: bool, wait: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole process: every thread, the store's writer included)."""
    import quiv_nb

    folder = Path(tempfile.mkdtemp(prefix="quiv-bench-store-"))
    try:
        q = quiv_nb.Quiv(POOL, store=folder / "bench.db" if store else None)
        done, listener = finisher(n)
        q.add_listener(quiv_nb.Event.JOB_COMPLETED, listener)
        q.start()
        gc.collect()
        c0, t0 = process_time(), perf_counter()
        ids = [q.add_task("bench", noop, run_once=True) for _ in range(n)]
        if wait:
            for task_id in ids:
                q.wait_for_task(task_id, timeout=TIMEOUT)
        elif not done.wait(TIMEOUT):
            raise RuntimeError("not all jobs completed")
        q.shutdown()  # with a store: the last records are committed here, inside the measurement
        elapsed, cpu = perf_counter() - t0, process_time() - c0
        if store and len(q.history(limit=n)) != n:
            raise RuntimeError("the store does not hold every job")
        return elapsed, cpu
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> list[Target]:
    p = parser(__doc__.splitlines()[0], rounds=7)
    p.add_argument("-n", type=int, default=2000, help="tasks per round (default 2000)")
    args = p.parse_args(argv)
    n = args.n
    runners = {
        "Quiv(10) + listener": lambda: _run(n, False, False),
        "Quiv(10, store) + listener": lambda: _run(n, True, False),
        "Quiv(10) + wait_for_task": lambda: _run(n, False, True),
        "Quiv(10, store) + wait_for_task": lambda: _run(n, True, True),
    }
    _run(50, True, True)  # warm-up: imports (sqlite3) and first-use costs, outside the measurements
    results: dict[str, list[float]] = {name: [] for name in runners}
    cpus: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(args.rounds):
        for name, fn in runners.items():
            value, cpu = fn()
            results[name].append(value)
            cpus[name].append(cpu)
            print(f"  round {r + 1}: {name}: {fmt_ms(value)}", flush=True, file=__import__("sys").stderr)

    def paired(table_: dict[str, list[float]], with_store: str, without: str) -> float:
        return median([a / b for a, b in zip(table_[with_store], table_[without], strict=True)])

    ratio = paired(results, "Quiv(10, store) + listener", "Quiv(10) + listener")
    ratio_wait = paired(results, "Quiv(10, store) + wait_for_task", "Quiv(10) + wait_for_task")
    cpu_ratio = paired(cpus, "Quiv(10, store) + listener", "Quiv(10) + listener")
    rows = [
        [name, len(v), fmt_ms(median(v)), fmt_us(median(v) / n), fmt_ms(min(v)), fmt_ms(max(v)),
         fmt_ms(median(cpus[name]))]
        for name, v in results.items()
    ]  # fmt: skip
    print(f"## One-shot throughput with a store: {n} run-once tasks, trivial handler, pool of {POOL}\n")
    print(machine_facts())
    print()
    print(table(["scheduler", "rounds", "median total", "per task", "min", "max", "median CPU (all threads)"], rows))
    print(
        f"\nstore / no store (median of per-round ratios): listener {ratio:.2f}x (CPU {cpu_ratio:.2f}x), "
        f"wait_for_task {ratio_wait:.2f}x"
    )
    targets = [
        Target("2,000 one-shot jobs with a store ≤ 1.3x without", f"{ratio:.2f}x", "≤ 1.30x", ratio <= 1.3),
        Target("the same in CPU time (all threads)", f"{cpu_ratio:.2f}x", "(informational)", True),
        Target("the same, waiting for each job", f"{ratio_wait:.2f}x", "(informational)", True),
    ]
    print_targets(targets)
    return targets


if __name__ == "__main__":
    main()
