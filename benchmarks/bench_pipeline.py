"""Pipelines: a 1,000-task fan-out/fan-in DAG and a 200-step chain of no-op tasks, three ways.

    python benchmarks/bench_pipeline.py [--rounds 7] [--workers 8]

The same two graphs, run in one process, rounds interleaved:
- fan-out/fan-in: one root, 998 middle tasks that each run after the root, one join after all
  998 middles (1,000 tasks); every task returns a small value, passed downstream;
- chain: 200 steps, each after the previous one, each getting the previous result.
Contenders, each with `--workers` threads:
- quiv_nb: the graph declared once with `add_task(..., after=...)` (upstreams given by task id),
  then one run: `run_task_immediately(root)` until the last task's job has ended;
- Dask: the graph built once with `dask.delayed`, then one `compute(scheduler="threads",
  num_workers=workers)`;
- hand-written: a `ThreadPoolExecutor`: submit the root and wait, submit the middles, wait for
  all, submit the join and wait (the chain: submit, wait, submit the next with that result).
"run" is that one run; "declare" is building the graph (the quiv_nb tasks / the delayed objects),
reported too but not part of the targets: a pipeline is declared once and run many times.
Targets: quiv_nb's run at least 2x faster than Dask's, and within 3x of the hand-written one.
"""

from __future__ import annotations

import gc
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from _common import Target, fmt_ms, machine_facts, median, parser, print_targets, table

TIMEOUT = 120.0
MIDDLES = 998
CHAIN = 200


def root() -> int:
    return 1


def middle(_upstream: dict[str, int]) -> int:
    return next(iter(_upstream.values())) + 1


def join(_upstream: dict[str, int]) -> int:
    return len(_upstream)


def step(_upstream: dict[str, int]) -> int:
    return next(iter(_upstream.values())) + 1


# Dask and the hand-written runner pass results positionally: the same work, their own idiom.
def p_middle(x: int) -> int:
    return x + 1


def p_join(*xs: int) -> int:
    return len(xs)


def p_step(x: int) -> int:
    return x + 1


# ---------------------------------------------------------------- quiv_nb


class QuivRun:
    """A scheduler with the graph declared; `run()` runs it once and returns seconds.

    The last task is run-once and declared again before each round (off the clock), so
    `wait_for_task` on it cannot miss its job: a finished run-once task returns its final job.
    A JOB_COMPLETED listener would do as well, but would cost every job two snapshots.
    """

    def __init__(self, shape: str, workers: int) -> None:
        from quiv_nb import Quiv

        self.q = Quiv(pool_size=workers)
        self.q.start()
        t0 = time.perf_counter()
        add = self.q.add_task
        self.first = add_root(self.q)
        if shape == "fan":
            mids = [add(f"m{i}", middle, after=self.first) for i in range(MIDDLES)]
            self.last_spec: tuple[str, Callable[..., Any], Any] = ("join", join, mids)
            self.expected = MIDDLES
        else:
            prev = self.first
            for i in range(1, CHAIN - 1):
                prev = add(f"s{i}", step, after=prev)
            self.last_spec = (f"s{CHAIN - 1}", step, prev)
            self.expected = CHAIN
        self.last = self._add_last()
        self.declare = time.perf_counter() - t0

    def _add_last(self) -> str:
        name, func, after = self.last_spec
        return self.q.add_task(name, func, after=after, run_once=True, replace=True)

    def run(self) -> float:
        if self.q.get_all_jobs(task_id=self.last):  # ran in the previous round: declare it again
            self.last = self._add_last()
        gc.collect()
        t0 = time.perf_counter()
        self.q.run_task_immediately(self.first)
        job = self.q.wait_for_task(self.last, timeout=TIMEOUT)
        elapsed = time.perf_counter() - t0
        assert job.result == self.expected, (job.status, job.result, job.error_message)
        return elapsed

    def close(self) -> None:
        self.q.shutdown(timeout=10)


def add_root(q: Any) -> str:
    """The root runs only when asked (`run_task_immediately`): a long interval, first run far away."""
    return q.add_task("root", root, interval=1e9, delay=1e9)


# ---------------------------------------------------------------- Dask


class DaskRun:
    def __init__(self, shape: str, workers: int) -> None:
        import dask

        self.dask, self.workers = dask, workers
        t0 = time.perf_counter()
        delayed = dask.delayed
        r = delayed(root, pure=False)()
        if shape == "fan":
            mids = [delayed(p_middle, pure=False)(r) for _ in range(MIDDLES)]
            self.graph = delayed(p_join, pure=False)(*mids)
            self.expected = MIDDLES
        else:
            x = r
            for _ in range(1, CHAIN):
                x = delayed(p_step, pure=False)(x)
            self.graph = x
            self.expected = CHAIN
        self.declare = time.perf_counter() - t0

    def run(self) -> float:
        gc.collect()
        t0 = time.perf_counter()
        (result,) = self.dask.compute(self.graph, scheduler="threads", num_workers=self.workers)
        elapsed = time.perf_counter() - t0
        assert result == self.expected, result
        return elapsed

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- hand-written


class PoolRun:
    def __init__(self, shape: str, workers: int) -> None:
        self.shape = shape
        self.pool = ThreadPoolExecutor(workers)
        self.declare = 0.0
        list(self.pool.map(int, range(workers * 4)))  # start its threads off the clock, like the others'

    def run(self) -> float:
        pool = self.pool
        gc.collect()
        t0 = time.perf_counter()
        r = pool.submit(root).result()
        if self.shape == "fan":
            mids = [pool.submit(p_middle, r) for _ in range(MIDDLES)]
            result = pool.submit(p_join, *[m.result() for m in mids]).result()
            expected = MIDDLES
        else:
            x = r
            for _ in range(1, CHAIN):
                x = pool.submit(p_step, x).result()
            result, expected = x, CHAIN
        elapsed = time.perf_counter() - t0
        assert result == expected, result
        return elapsed

    def close(self) -> None:
        self.pool.shutdown()


CONTENDERS: dict[str, Callable[[str, int], Any]] = {
    "quiv_nb": QuivRun,
    "Dask threads": DaskRun,
    "hand-written ThreadPoolExecutor": PoolRun,
}


def main() -> int:
    p = parser(__doc__.split("\n", 1)[0], rounds=7)
    p.add_argument("--workers", type=int, default=8, help="threads per contender (default 8)")
    args = p.parse_args()
    print("# Pipelines — `bench_pipeline.py`\n")
    print(machine_facts())
    print(f"- workers: {args.workers} threads per contender; {args.rounds} interleaved rounds (chain: 3x), medians\n")
    targets = []
    for shape, title in (("fan", "fan-out/fan-in, 1,000 tasks"), ("chain", f"chain, {CHAIN} steps")):
        runners = {name: make(shape, args.workers) for name, make in CONTENDERS.items()}
        times: dict[str, list[float]] = {name: [] for name in runners}
        rounds = args.rounds * (3 if shape == "chain" else 1)  # a chain run is short: more rounds, steadier median
        try:
            for i in range(rounds):
                for name, runner in runners.items():
                    times[name].append(runner.run())
                    print(f"  {title}: {name}: round {i + 1}/{rounds}: {times[name][-1]:.4f}s", file=sys.stderr)
        finally:
            for runner in runners.values():
                runner.close()
        med = {name: median(v) for name, v in times.items()}
        quiv, dask_, pool = med["quiv_nb"], med["Dask threads"], med["hand-written ThreadPoolExecutor"]
        # A round's contenders run back to back and share that moment's load: the median of
        # per-round ratios is steadier than the ratio of medians on a busy machine.
        q_times, d_times, p_times = times["quiv_nb"], times["Dask threads"], times["hand-written ThreadPoolExecutor"]
        vs_dask = median([d / q for q, d in zip(q_times, d_times, strict=True)])
        vs_pool = median([q / p for q, p in zip(q_times, p_times, strict=True)])
        rows = [
            [name, fmt_ms(med[name]), fmt_ms(min(times[name])), fmt_ms(max(times[name])),
             f"{med[name] / pool:.2f}x", f"{med[name] / quiv:.2f}x", fmt_ms(runners[name].declare)]
            for name in runners
        ]  # fmt: skip
        print(f"## {title}\n")
        headers = ["contender", "run (median)", "min", "max", "vs hand-written", "vs quiv_nb", "declare (once)"]
        print(table(headers, rows))
        print()
        targets.append(Target(f"{title}: quiv_nb faster than Dask threads", f"{dask_ / quiv:.2f}x", ">= 2x",
                              dask_ / quiv >= 2, f"per-round ratios: {vs_dask:.2f}x"))  # fmt: skip
        targets.append(Target(f"{title}: quiv_nb vs hand-written pool", f"{quiv / pool:.2f}x", "<= 3x",
                              quiv / pool <= 3, f"per-round ratios: {vs_pool:.2f}x"))  # fmt: skip
    print_targets(targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
