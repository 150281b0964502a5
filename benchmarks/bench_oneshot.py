"""2,000 one-shot tasks with a trivial handler on a pool of 10: time from the first add to all finished.

    python benchmarks/bench_oneshot.py [--rounds 7] [--quiv-rounds 3] [-n 2000]

Compared in one process, rounds interleaved (bare, quiv_nb, APScheduler, quiv 1.4, bare, ...):
- bare `concurrent.futures.ThreadPoolExecutor(10)`: 2,000 `submit`s, then `result()` on each;
- quiv_nb `Quiv(10)`: `add_task(..., run_once=True)`, finished when a JOB_COMPLETED listener saw all;
  also (informational) the same adds followed by `wait_for_task` on each id;
- APScheduler 3.11 `BackgroundScheduler` + `ThreadPoolExecutor(10)`: `add_job(func)` (date trigger, run
  now, misfire_grace_time=None), finished when an EVENT_JOB_EXECUTED listener saw all;
- quiv 1.4 `Quiv(pool_size=10)`: `add_task(..., run_once=True)` + JOB_COMPLETED listener (fewer rounds:
  one round takes ~10 s because every task and job is a SQLite row).
Each scheduler is created and started before the clock starts; worker threads spawn lazily in all four,
so thread start-up is inside every measurement alike.
"""

from __future__ import annotations

import gc
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter
from typing import Any

from _common import Target, finisher, fmt_ms, fmt_us, machine_facts, median, parser, print_targets, quiet_peers, table

POOL = 10
TIMEOUT = 300.0


def noop() -> None:
    return None


def run_bare(n: int) -> float:
    pool = ThreadPoolExecutor(POOL)
    gc.collect()
    t0 = perf_counter()
    futures = [pool.submit(noop) for _ in range(n)]
    for f in futures:
        f.result()
    elapsed = perf_counter() - t0
    pool.shutdown()
    return elapsed


def _run_quiv_model(quiv_module: Any, n: int) -> float:
    """quiv_nb and quiv 1.4 share the API: 2,000 run-once adds, done when a JOB_COMPLETED listener saw all."""
    q = quiv_module.Quiv(pool_size=POOL)
    done, listener = finisher(n)
    q.add_listener(quiv_module.Event.JOB_COMPLETED, listener)
    q.start()
    gc.collect()
    t0 = perf_counter()
    for _ in range(n):
        q.add_task("bench", noop, run_once=True)
    if not done.wait(TIMEOUT):
        raise RuntimeError(f"{quiv_module.__name__}: not all jobs completed")
    elapsed = perf_counter() - t0
    q.shutdown()
    return elapsed


def run_quiv_nb(n: int) -> float:
    import quiv_nb

    return _run_quiv_model(quiv_nb, n)


def run_quiv_nb_wait(n: int) -> float:
    import quiv_nb

    q = quiv_nb.Quiv(POOL)
    q.start()
    gc.collect()
    t0 = perf_counter()
    ids = [q.add_task("bench", noop, run_once=True) for _ in range(n)]
    for task_id in ids:
        q.wait_for_task(task_id, timeout=TIMEOUT)
    elapsed = perf_counter() - t0
    q.shutdown()
    return elapsed


def run_apscheduler(n: int) -> float:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
    from apscheduler.executors.pool import ThreadPoolExecutor as APThreadPool
    from apscheduler.schedulers.background import BackgroundScheduler

    sched = BackgroundScheduler(executors={"default": APThreadPool(POOL)}, job_defaults={"misfire_grace_time": None})
    done, listener = finisher(n)
    sched.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    sched.start()
    gc.collect()
    t0 = perf_counter()
    for _ in range(n):
        sched.add_job(noop)
    if not done.wait(TIMEOUT):
        raise RuntimeError("APScheduler: not all jobs executed")
    elapsed = perf_counter() - t0
    sched.shutdown()
    return elapsed


def run_quiv14(n: int) -> float:
    import quiv

    return _run_quiv_model(quiv, n)


def main(argv: list[str] | None = None) -> list[Target]:
    p = parser(__doc__.splitlines()[0], rounds=7)
    p.add_argument("--quiv-rounds", type=int, default=3, help="rounds for quiv 1.4 (slow), default 3")
    p.add_argument("-n", type=int, default=2000, help="tasks per round (default 2000)")
    args = p.parse_args(argv)
    quiet_peers()
    n = args.n
    runners = {
        "bare ThreadPoolExecutor(10)": run_bare,
        "quiv_nb Quiv(10) + listener": run_quiv_nb,
        "quiv_nb Quiv(10) + wait_for_task": run_quiv_nb_wait,
        "APScheduler 3.11 BackgroundScheduler": run_apscheduler,
        "quiv 1.4 Quiv(pool_size=10)": run_quiv14,
    }
    # Warm-up: imports and first-use costs of every library, outside the measurements.
    for fn in runners.values():
        if fn is not run_quiv14:
            fn(50)
    import quiv  # noqa: F401

    results: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(args.rounds):
        for name, fn in runners.items():
            if fn is run_quiv14 and r >= args.quiv_rounds:
                continue
            value = fn(n)
            results[name].append(value)
            print(f"  round {r + 1}: {name}: {fmt_ms(value)}", flush=True, file=__import__("sys").stderr)

    med = {name: median(v) for name, v in results.items() if v}
    bare_name, ours_name = "bare ThreadPoolExecutor(10)", "quiv_nb Quiv(10) + listener"
    bare, ours = med[bare_name], med[ours_name]
    # Rounds are interleaved, so a round's figures share the machine's load at that moment: the
    # median of per-round ratios is steadier than the ratio of medians when other work competes.
    bares = results[bare_name]
    paired = {k: median([a / b for a, b in zip(v, bares[: len(v)], strict=True)]) for k, v in results.items() if v}
    rows = [
        [name, len(results[name]), fmt_ms(m), fmt_us(m / n), fmt_ms(min(results[name])), fmt_ms(max(results[name])),
         f"{m / bare:.2f}x", f"{paired[name]:.2f}x", f"{m / ours:.2f}x"]
        for name, m in med.items()
    ]  # fmt: skip
    print(f"## One-shot throughput: {n} run-once tasks, trivial handler, pool of {POOL}\n")
    print(machine_facts())
    print()
    headers = ["scheduler", "rounds", "median total", "per task", "min", "max", "vs bare (medians)",
               "vs bare (median of per-round ratios)", "vs quiv_nb"]  # fmt: skip
    print(table(headers, rows))
    aps = med["APScheduler 3.11 BackgroundScheduler"]
    q14 = med.get("quiv 1.4 Quiv(pool_size=10)")
    targets = [
        Target("quiv_nb ≤ 2x bare ThreadPoolExecutor", f"{ours / bare:.2f}x (per-round: {paired[ours_name]:.2f}x)",
               "≤ 2.00x", ours <= 2 * bare),
        Target("quiv_nb ≥ 50x faster than quiv 1.4", "not run" if q14 is None else f"{q14 / ours:.1f}x", "≥ 50x",
               q14 is not None and q14 >= 50 * ours),
        Target("quiv_nb faster than APScheduler 3.11", f"{aps / ours:.2f}x", "> 1x", aps > ours),
    ]  # fmt: skip
    print_targets(targets)
    return targets


if __name__ == "__main__":
    main()
