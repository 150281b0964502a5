"""CPU time per one-shot task: quiv_nb vs a bare pool, robust to a busy machine.

    python benchmarks/bench_cpu.py [--rounds 7] [-n 2000]

Wall-clock bursts (`bench_oneshot.py`) swing 2-3x when other processes share the cores; the CPU
time a process spends per task moves far less, so before/after comparisons of the core use this.
Measured with `time.process_time()` (all threads of this process), rounds interleaved:
- bare `concurrent.futures.ThreadPoolExecutor(10)`: n `submit`s, then `result()` on each;
- quiv_nb `Quiv(10)`: n `add_task(..., run_once=True)`, done when a JOB_COMPLETED listener saw all;
- quiv_nb single-threaded: the same with an executor that runs each job body inline at submit, so
  the figure is the scheduler's own bookkeeping with no thread hand-offs at all.
"""

from __future__ import annotations

import concurrent.futures
import gc
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _common import Target, finisher, machine_facts, median, parser, print_targets, table

from quiv_nb import Event, Quiv
from quiv_nb.execution import JobCall, Outcome, run_call

POOL = 10


def noop() -> None:
    return None


class InlineExecutor:
    """A `JobExecutor` that runs the body on the submitting thread."""

    def submit(self, call: JobCall) -> concurrent.futures.Future[Outcome]:
        fut: concurrent.futures.Future[Outcome] = concurrent.futures.Future()
        fut.set_result(run_call(call))
        return fut

    def shutdown(self, timeout: float | None = None) -> list[str]:
        return []


def cpu_bare(n: int) -> float:
    pool = ThreadPoolExecutor(POOL)
    gc.collect()
    c0 = time.process_time()
    for f in [pool.submit(noop) for _ in range(n)]:
        f.result()
    spent = time.process_time() - c0
    pool.shutdown()
    return spent / n


def cpu_quiv(n: int, executor: Any = None) -> float:
    q = Quiv(POOL, executor=executor)
    q.start()
    done, listener = finisher(n)
    q.add_listener(Event.JOB_COMPLETED, listener)
    gc.collect()
    c0 = time.process_time()
    for _ in range(n):
        q.add_task("t", noop, run_once=True)
    if not done.wait(300):
        raise RuntimeError("jobs did not finish")
    spent = time.process_time() - c0
    q.shutdown(timeout=10)
    return spent / n


def main(argv: list[str] | None = None) -> list[Target]:
    p = parser(__doc__.splitlines()[0], rounds=7)
    p.add_argument("-n", type=int, default=2000, help="tasks per round")
    args = p.parse_args(argv)
    variants = {
        "bare ThreadPoolExecutor(10)": lambda: cpu_bare(args.n),
        "quiv_nb Quiv(10) + listener": lambda: cpu_quiv(args.n),
        "quiv_nb, jobs inline (single thread)": lambda: cpu_quiv(args.n, InlineExecutor()),
    }
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            results[name].append(fn())
    bare = median(results["bare ThreadPoolExecutor(10)"])
    rows = [
        [name, f"{median(v) * 1e6:.2f} µs", f"{min(v) * 1e6:.2f} µs", f"{median(v) / bare:.2f}x"]
        for name, v in results.items()
    ]
    print(f"## CPU time per one-shot task: {args.n} tasks, {args.rounds} rounds\n")
    print(machine_facts())
    print()
    print(table(["variant", "median CPU per task", "min", "vs bare"], rows))
    quiv = median(results["quiv_nb Quiv(10) + listener"])
    targets = [
        Target("quiv_nb CPU per task ≤ 2x bare ThreadPoolExecutor", f"{quiv / bare:.2f}x", "≤ 2.00x", quiv <= 2 * bare)
    ]
    print_targets(targets)
    return targets


if __name__ == "__main__":
    main()
