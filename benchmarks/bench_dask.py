"""quiv_nb on a Dask cluster: job overhead against bare `client.submit`, progress and cancel latency.

    python benchmarks/bench_dask.py [--rounds 3] [-n 1000] [--threads]

On one 2-worker `LocalCluster` (worker processes; `--threads` for `processes=False`), rounds interleaved:
- bare: `client.submit(trivial, i, pure=False)` 1,000 times, then one `client.gather` of all;
- quiv_nb: `Quiv(executor=DaskExecutor(client))`, 1,000 `add_task(..., run_once=True)` of the same
  function, finished when a JOB_COMPLETED listener saw all (scheduler built and started off the clock);
- quiv_nb, full contract: the same, but the handler takes `_stop_event` and `_progress_hook` and sends
  one payload to a progress callback (informational: what the features cost on trivial jobs).
Progress latency: 2 jobs each send `_progress_hook(t=time.time())` every 2 ms for 2 s; the callback
(no main loop: it runs on the executor's dispatch thread) records `time.time() - t`. All processes
share the machine's clock. Cancel latency: from `cancel_job` to the handler seeing its stop event.
"""

from __future__ import annotations

import gc
import logging
import statistics
import sys
import threading
import time
from time import perf_counter

from _common import Target, finisher, fmt_ms, machine_facts, median, parser, print_targets, table

TIMEOUT = 300.0


def trivial(i: int) -> int:
    return i + 1


def trivial_full(i: int, _stop_event: threading.Event, _progress_hook: object) -> int:
    _progress_hook(step=1, total=1)  # type: ignore[operator]
    return i + 1


def stream(seconds: float, every: float, _progress_hook: object, _stop_event: threading.Event) -> int:
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end and not _stop_event.is_set():
        _progress_hook(t=time.time())  # type: ignore[operator]
        n += 1
        time.sleep(every)
    return n


def wait_for_stop(_stop_event: threading.Event, _progress_hook: object) -> None:
    _progress_hook(running=True)  # type: ignore[operator]
    _stop_event.wait(60)
    _progress_hook(seen=time.time())  # type: ignore[operator]


def run_bare(client: object, n: int) -> float:
    gc.collect()
    t0 = perf_counter()
    futures = [client.submit(trivial, i, pure=False) for i in range(n)]  # type: ignore[attr-defined]
    client.gather(futures)  # type: ignore[attr-defined]
    elapsed = perf_counter() - t0
    del futures
    return elapsed


def run_quiv(client: object, n: int, full: bool) -> float:
    from quiv_nb import Event, Quiv
    from quiv_nb.dask import DaskExecutor

    q = Quiv(executor=DaskExecutor(client))
    done, listener = finisher(n)
    q.add_listener(Event.JOB_COMPLETED, listener)
    q.start()
    func = trivial_full if full else trivial
    callback = (lambda **kw: None) if full else None
    gc.collect()
    t0 = perf_counter()
    for i in range(n):
        q.add_task(f"t{i}", func, run_once=True, args=(i,), progress_callback=callback)
    if not done.wait(TIMEOUT):
        raise RuntimeError("quiv_nb jobs did not finish")
    elapsed = perf_counter() - t0
    failed = q.get_all_jobs(status="failed")
    q.shutdown(timeout=10)
    if failed:
        raise RuntimeError(f"{len(failed)} jobs failed: {failed[0].error_message}")
    return elapsed


def progress_latency(client: object, seconds: float = 2.0, every: float = 0.002) -> list[float]:
    from quiv_nb import Quiv
    from quiv_nb.dask import DaskExecutor

    lags: list[float] = []

    def on_progress(t: float) -> None:
        lags.append(time.time() - t)

    q = Quiv(executor=DaskExecutor(client))
    q.start()
    ids = [
        q.add_task(f"stream{k}", stream, run_once=True, args=(seconds, every), progress_callback=on_progress)
        for k in range(2)
    ]
    for task_id in ids:
        job = q.wait_for_task(task_id, timeout=60)
        if job.status != "completed":
            raise RuntimeError(f"stream job {job.status}: {job.error_message}")
    q.shutdown(timeout=10)
    return lags


def cancel_latency(client: object, rounds: int = 5) -> list[float]:
    from quiv_nb import Quiv
    from quiv_nb.dask import DaskExecutor

    out = []
    q = Quiv(executor=DaskExecutor(client))
    q.start()
    for _ in range(rounds):
        running, seen = threading.Event(), []

        def on_progress(_running: threading.Event = running, _seen: list[float] = seen, **kw: float) -> None:
            if "seen" in kw:
                _seen.append(kw["seen"])
            else:
                _running.set()

        task_id = q.add_task("waiter", wait_for_stop, run_once=True, progress_callback=on_progress)
        if not running.wait(30):
            raise RuntimeError("waiter did not start")
        time.sleep(0.2)  # let its watcher settle into a wait, as in a long job
        job_id = q.get_task(task_id).last_job_id
        t0 = time.time()
        q.cancel_job(job_id)
        q.wait_for_job(job_id, timeout=30)
        out.append(seen[0] - t0)
    q.shutdown(timeout=10)
    return out


def main() -> None:
    p = parser(__doc__.splitlines()[0], rounds=3)
    p.add_argument("-n", type=int, default=1000, help="jobs per round (default 1000)")
    p.add_argument("--threads", action="store_true", help="LocalCluster(processes=False) over tcp instead of processes")
    args = p.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)

    from distributed import Client, LocalCluster

    kind = "processes=False (tcp)" if args.threads else "processes=True"
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=not args.threads,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = Client(cluster)
    try:
        client.gather([client.submit(trivial, i, pure=False) for i in range(50)])  # warm up
        run_quiv(client, 50, full=True)
        bare, quiv, full = [], [], []
        for r in range(args.rounds):
            bare.append(run_bare(client, args.n))
            quiv.append(run_quiv(client, args.n, full=False))
            full.append(run_quiv(client, args.n, full=True))
            print(
                f"  round {r + 1}/{args.rounds}: bare {bare[-1]:.3f}s quiv_nb {quiv[-1]:.3f}s full {full[-1]:.3f}s",
                file=sys.stderr,
                flush=True,
            )
        lags = sorted(progress_latency(client))
        cancels = cancel_latency(client)
    finally:
        client.close()
        cluster.close()

    b, qv, fl = median(bare), median(quiv), median(full)
    p50 = statistics.median(lags)
    p95 = lags[int(0.95 * (len(lags) - 1))]
    print(f"## quiv_nb on Dask: {args.n} trivial jobs, 2-worker LocalCluster ({kind}, 1 thread each)\n")
    print(machine_facts())
    print()
    print(
        table(
            ["measurement", "median", "per job", "vs bare"],
            [
                [f"bare client.submit x{args.n} + gather", f"{b:.3f} s", fmt_ms(b / args.n), "1.00x"],
                [f"quiv_nb DaskExecutor x{args.n}", f"{qv:.3f} s", fmt_ms(qv / args.n), f"{qv / b:.2f}x"],
                [
                    f"quiv_nb x{args.n}, handler takes _stop_event + _progress_hook, 1 payload",
                    f"{fl:.3f} s",
                    fmt_ms(fl / args.n),
                    f"{fl / b:.2f}x",
                ],
            ],
        )
    )
    print()
    print(
        table(
            ["latency", "p50", "p95", "max", "samples"],
            [
                [
                    "progress worker -> callback (2 jobs, 1 payload / 2 ms each)",
                    fmt_ms(p50),
                    fmt_ms(p95),
                    fmt_ms(lags[-1]),
                    len(lags),
                ],
                [
                    "cancel_job -> handler sees _stop_event",
                    fmt_ms(statistics.median(cancels)),
                    "",
                    fmt_ms(max(cancels)),
                    len(cancels),
                ],
            ],
        )
    )
    print_targets(
        [
            Target("quiv_nb / bare client.submit", f"{qv / b:.2f}x", "<= 1.5x", qv / b <= 1.5),
            Target("progress latency p50", fmt_ms(p50), "<= 20 ms", p50 <= 0.020),
            Target(
                "cancel latency (median)",
                fmt_ms(statistics.median(cancels)),
                "< 100 ms",
                statistics.median(cancels) < 0.1,
            ),
        ]
    )


if __name__ == "__main__":
    main()
