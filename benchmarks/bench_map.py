"""Map: 10,000 trivial items on 4 threads with a progress bar attached, four ways; then cancel and progress
liveness of a map whose items are chunked.

    python benchmarks/bench_map.py [--rounds 7] [-n 10000] [--workers 4] [--dask-n 2000] [--dask-rounds 3] [--no-dask]

Contenders, run in one process, rounds interleaved, each calling `item(x) = x + 1` on `range(n)`
with `--workers` threads and getting back the list in input order:
- `ThreadPoolExecutor(4).map`: the floor, one future per item and no progress at all (its pool is
  started off the clock, as the scheduler's is);
- tqdm's `thread_map(item, items, max_workers=4)`: its own executor and a tqdm bar per call;
- joblib `Parallel(n_jobs=4, prefer="threads", return_as="generator")` iterated through a tqdm bar
  (the usual way to give joblib a bar), with joblib's automatic batching;
- quiv_nb: `Quiv(4).map(item, items, progress_callback=cb)` then `wait_for_job`, where `cb` moves a
  tqdm bar to each `step` it is given (one job, its items chunked onto the pool's workers).
Every tqdm bar writes to /dev/null, with tqdm's default refresh rate.
Targets: quiv_nb no slower than the `ThreadPoolExecutor(4).map` floor, and faster than `thread_map`
and joblib+tqdm.

Second part (quiv_nb only): a map of 4,000 items that each sleep 1 ms on 4 workers (about 1 s of
work in chunks of up to 250 items): the longest gap between two progress payloads while it runs,
and how long after `cancel_job` (called 0.3 s in) the job has ended. Targets: both under 0.5 s.

Third part (skipped by `--no-dask` or without `distributed`): on a `LocalCluster` of 2 worker processes
with one thread each, `--dask-n` items (2,000) of the same `item`, `--dask-rounds` (3) rounds interleaved:
`client.gather(client.map(item, items))` (one Dask task per item) against
`Quiv(pool_size=2, executor=DaskExecutor(client)).map(item, items, progress_callback=cb)` + `wait_for_job`
(the items go in batches, at most 2 in flight; `cb` moves a tqdm bar as above). Target: quiv_nb no slower.
"""

from __future__ import annotations

import gc
import itertools
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from _common import Target, fmt_ms, machine_facts, median, parser, print_targets, table

TIMEOUT = 120.0


def item(x: int) -> int:
    return x + 1


def devnull_bar(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, file=open(os.devnull, "w"))  # closed with the bar


class Floor:
    name = "ThreadPoolExecutor(4).map"

    def __init__(self, workers: int) -> None:
        self.pool = ThreadPoolExecutor(workers)
        list(self.pool.map(int, range(workers * 4)))  # its threads started off the clock

    def run(self, items: range) -> list[int]:
        return list(self.pool.map(item, items))

    def close(self) -> None:
        self.pool.shutdown()


class ThreadMap:
    name = "tqdm thread_map"

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(self, items: range) -> list[int]:
        from tqdm.contrib.concurrent import thread_map

        with open(os.devnull, "w") as sink:
            return thread_map(item, items, max_workers=self.workers, file=sink)

    def close(self) -> None:
        pass


class Joblib:
    name = "joblib threads + tqdm"

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(self, items: range) -> list[int]:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=self.workers, prefer="threads", return_as="generator")
        bar = devnull_bar(len(items))
        out = []
        for value in parallel(delayed(item)(x) for x in items):
            out.append(value)
            bar.update(1)
        bar.close()
        return out

    def close(self) -> None:
        pass


class QuivMap:
    name = "quiv_nb Quiv.map"

    def __init__(self, workers: int) -> None:
        from quiv_nb import Quiv

        self.q = Quiv(pool_size=workers, history_retention_seconds=60)
        self.q.start()
        self.q.wait_for_job(self.q.map(int, range(workers * 4)), timeout=TIMEOUT)  # threads started off the clock

    def run(self, items: range) -> list[int]:
        bar = devnull_bar(len(items))

        def progress(step: int, total: int, failed: int) -> None:
            bar.update(step - bar.n)

        job = self.q.wait_for_job(self.q.map(item, items, progress_callback=progress), timeout=TIMEOUT)
        bar.close()
        assert bar.n == len(items), bar.n
        return job.result

    def close(self) -> None:
        self.q.shutdown(timeout=10)


CONTENDERS: list[Callable[[int], Any]] = [Floor, ThreadMap, Joblib, QuivMap]


def throughput(args: Any) -> list[Target]:
    items = range(args.n)
    expected = [x + 1 for x in items]
    runners = [make(args.workers) for make in CONTENDERS]
    times: dict[str, list[float]] = {r.name: [] for r in runners}
    try:
        for round_no in range(args.rounds):
            for runner in runners:
                gc.collect()
                t0 = time.perf_counter()
                result = runner.run(items)
                elapsed = time.perf_counter() - t0
                assert result == expected, runner.name
                times[runner.name].append(elapsed)
            print(f"  round {round_no + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    finally:
        for runner in runners:
            runner.close()
    ours = times[QuivMap.name]
    rows = []
    for name, values in times.items():
        ratios = [q / v for q, v in zip(ours, values, strict=True)]
        rows.append([name, fmt_ms(median(values)), fmt_ms(min(values)), f"{median(ratios):.2f}x"])
    print(f"## {args.n:,} trivial items on {args.workers} threads, progress attached\n")
    print(table(["contender", "median", "best", "quiv_nb time / this (median of per-round ratios)"], rows))

    def ratio(name: str) -> float:
        return median([q / v for q, v in zip(ours, times[name], strict=True)])

    return [
        Target(f"quiv_nb vs {Floor.name}", f"{ratio(Floor.name):.2f}x", "≤ 1x", ratio(Floor.name) <= 1.0),
        Target(f"quiv_nb vs {ThreadMap.name}", f"{ratio(ThreadMap.name):.2f}x", "< 1x", ratio(ThreadMap.name) < 1.0),
        Target(f"quiv_nb vs {Joblib.name}", f"{ratio(Joblib.name):.2f}x", "< 1x", ratio(Joblib.name) < 1.0),
    ]


def liveness(args: Any) -> list[Target]:
    from quiv_nb import JobStatus, Quiv

    def slow(x: int) -> int:
        time.sleep(0.001)  # the item's own work
        return x

    gaps, cancels = [], []
    q = Quiv(pool_size=args.workers)
    q.start()
    try:
        for _ in range(args.rounds):
            stamps: list[float] = []
            first = threading.Event()

            def progress(
                step: int, total: int, failed: int, stamps: list[float] = stamps, first: threading.Event = first
            ) -> None:
                stamps.append(time.perf_counter())
                if step > 0:
                    first.set()

            job_id = q.map(slow, range(4000), progress_callback=progress)
            assert first.wait(TIMEOUT)
            time.sleep(0.3)  # let it run a while in its chunks
            t0 = time.perf_counter()
            q.cancel_job(job_id)
            job = q.wait_for_job(job_id, timeout=TIMEOUT)
            cancels.append(time.perf_counter() - t0)
            assert job.status is JobStatus.CANCELLED, job.status
            running = [s for s in stamps if s < t0]
            gaps.append(max(b - a for a, b in itertools.pairwise(running)))
    finally:
        q.shutdown(timeout=10)
    print("\n## Chunked map of 1 ms items: progress gaps and cancel latency (quiv_nb)\n")
    print(
        table(
            ["figure", "median", "worst"],
            [
                ["longest gap between progress payloads", fmt_ms(median(gaps)), fmt_ms(max(gaps))],
                ["cancel_job to job ended", fmt_ms(median(cancels)), fmt_ms(max(cancels))],
            ],
        )
    )
    return [
        Target("progress gap while chunked (worst round)", fmt_ms(max(gaps)), "< 500 ms", max(gaps) < 0.5),
        Target("cancel latency while chunked (worst round)", fmt_ms(max(cancels)), "< 500 ms", max(cancels) < 0.5),
    ]


def dask_side_by_side(args: Any) -> list[Target]:
    import logging

    from distributed import Client, LocalCluster

    from quiv_nb import Quiv
    from quiv_nb.dask import DaskExecutor

    logging.getLogger("distributed").setLevel(logging.ERROR)
    started = time.perf_counter()
    items = range(args.dask_n)
    expected = [x + 1 for x in items]
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, protocol="tcp://", host="127.0.0.1", dashboard_address=None
    )
    client = Client(cluster)
    q = Quiv(pool_size=2, executor=DaskExecutor(client), history_retention_seconds=60)
    q.start()
    times: dict[str, list[float]] = {"client.map + client.gather": [], "quiv_nb Quiv.map on DaskExecutor": []}
    try:
        client.gather(client.map(item, range(100)))  # workers warmed up, `item` shipped, off the clock
        q.wait_for_job(q.map(item, range(100)), timeout=TIMEOUT)
        for round_no in range(args.dask_rounds):
            gc.collect()
            t0 = time.perf_counter()
            futures = client.map(item, items, pure=False)  # fresh keys each round: nothing cached on the cluster
            result = client.gather(futures)
            times["client.map + client.gather"].append(time.perf_counter() - t0)
            assert result == expected
            del futures
            gc.collect()
            bar = devnull_bar(len(items))

            def progress(step: int, total: int, failed: int, bar: Any = bar) -> None:
                bar.update(step - bar.n)

            t0 = time.perf_counter()
            job = q.wait_for_job(q.map(item, items, progress_callback=progress), timeout=TIMEOUT)
            times["quiv_nb Quiv.map on DaskExecutor"].append(time.perf_counter() - t0)
            bar.close()
            assert job.result == expected and bar.n == len(items), (job.status, bar.n)
            print(f"  dask round {round_no + 1}/{args.dask_rounds} done", file=sys.stderr, flush=True)
    finally:
        q.shutdown(timeout=10)
        client.close()
        cluster.close()
    bare, ours = times["client.map + client.gather"], times["quiv_nb Quiv.map on DaskExecutor"]
    ratios = [a / b for a, b in zip(ours, bare, strict=True)]
    print(f"\n## Dask: {args.dask_n:,} trivial items on a 2-worker LocalCluster (processes, 1 thread each)\n")
    print(f"{args.dask_rounds} rounds; this part took {time.perf_counter() - started:.1f} s with the cluster's start\n")
    print(
        table(
            ["contender", "median", "best", "quiv_nb time / this (median of per-round ratios)"],
            [[name, fmt_ms(median(v)), fmt_ms(min(v)), f"{median([a / b for a, b in zip(ours, v, strict=True)]):.2f}x"]
             for name, v in times.items()],
        )
    )  # fmt: skip
    return [
        Target(
            "quiv_nb Quiv.map vs client.map + gather (Dask)", f"{median(ratios):.2f}x", "≤ 1x", median(ratios) <= 1.0
        )
    ]


def main() -> int:
    p = parser(__doc__.split("\n", 1)[0], rounds=7)
    p.add_argument("-n", type=int, default=10_000, help="items per map (default 10000)")
    p.add_argument("--workers", type=int, default=4, help="threads per contender (default 4)")
    p.add_argument("--dask-n", type=int, default=2000, help="items per map on the Dask cluster (default 2000)")
    p.add_argument("--dask-rounds", type=int, default=3, help="rounds of the Dask part (default 3)")
    p.add_argument("--no-dask", action="store_true", help="skip the Dask part")
    args = p.parse_args()
    print("# Map — `bench_map.py`\n")
    print(machine_facts())
    import joblib
    import tqdm

    print(f"- tqdm {tqdm.__version__}, joblib {joblib.__version__}\n")
    targets = throughput(args) + liveness(args)
    try:
        import distributed
    except ImportError:
        distributed = None
    if distributed is not None and not args.no_dask:
        print(f"\n- distributed {distributed.__version__}")
        targets += dask_side_by_side(args)
    print_targets(targets)
    return 0 if all(t.ok for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
