"""100,000 progress-hook calls delivered to a callback on a main loop that runs on another thread.

    python benchmarks/bench_hooks.py [--rounds 5] [-n 100000]

Delivered throughput = calls / (first call -> the last callback has run on the loop). Compared in one
process, rounds interleaved, each against a fresh asyncio loop running on its own thread:
- raw sync:  a plain thread calls `loop.call_soon_threadsafe(cb, i)` n times;
- raw async: a plain thread calls `asyncio.run_coroutine_threadsafe(acb(i), loop)` n times;
- quiv_nb:   a run-once job calls its `_progress_hook(i)` n times; `Quiv(main_loop=loop)`, the task's
             `progress_callback` is `cb` (sync) or `acb` (async);
- quiv 1.4:  the same with quiv's `progress_hook` and `Quiv(main_loop=loop)`.
The callbacks do the same trivial work: compare `i` with the last index and, on the last one, stamp
`perf_counter()`. The clock starts at the first call (inside the job for the schedulers).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from collections.abc import Callable
from time import perf_counter
from typing import Any

from _common import LoopThread, Target, fmt_ms, machine_facts, median, parser, print_targets, quiet_peers, table

TIMEOUT = 120.0


class Probe:
    """Callbacks that stamp the time the last expected call ran."""

    def __init__(self, n: int) -> None:
        self.last = n - 1
        self.t_end = 0.0
        self.done = threading.Event()

    def sync_cb(self, i: int) -> None:
        if i == self.last:
            self.t_end = perf_counter()
            self.done.set()

    async def async_cb(self, i: int) -> None:
        if i == self.last:
            self.t_end = perf_counter()
            self.done.set()

    def wait(self, what: str) -> None:
        if not self.done.wait(TIMEOUT):
            raise RuntimeError(f"{what}: last callback never ran")


def raw_sync(n: int) -> tuple[float, float]:
    lt, probe = LoopThread(), Probe(n)
    call, cb = lt.loop.call_soon_threadsafe, probe.sync_cb
    gc.collect()
    t0 = perf_counter()
    for i in range(n):
        call(cb, i)
    t_calls = perf_counter() - t0
    probe.wait("raw call_soon_threadsafe")
    lt.close()
    return probe.t_end - t0, t_calls


def raw_async(n: int) -> tuple[float, float]:
    lt, probe = LoopThread(), Probe(n)
    loop, acb, submit = lt.loop, probe.async_cb, asyncio.run_coroutine_threadsafe
    gc.collect()
    t0 = perf_counter()
    for i in range(n):
        submit(acb(i), loop)
    t_calls = perf_counter() - t0
    probe.wait("raw run_coroutine_threadsafe")
    lt.close()
    return probe.t_end - t0, t_calls


def _in_job(make_scheduler: Callable[[asyncio.AbstractEventLoop], Any], hook_param: str, is_async: bool, n: int):
    def run() -> tuple[float, float]:
        lt, probe = LoopThread(), Probe(n)
        stamps: list[float] = []

        def body(hook: Callable[..., None]) -> None:
            t0 = perf_counter()
            stamps.append(t0)
            for i in range(n):
                hook(i)
            stamps.append(perf_counter() - t0)

        # The handler must name the injected parameter; build it with the right spelling.
        handler = eval(f"lambda {hook_param}: body({hook_param})", {"body": body})
        sched = make_scheduler(lt.loop)
        sched.start()
        gc.collect()
        sched.add_task("hooks", handler, run_once=True, progress_callback=probe.async_cb if is_async else probe.sync_cb)
        probe.wait("scheduler hook")
        elapsed = probe.t_end - stamps[0]
        sched.shutdown()
        lt.close()
        return elapsed, stamps[1]

    return run


def _quiv_nb(loop: asyncio.AbstractEventLoop) -> Any:
    import quiv_nb

    return quiv_nb.Quiv(1, main_loop=loop)


def _quiv14(loop: asyncio.AbstractEventLoop) -> Any:
    import quiv

    return quiv.Quiv(pool_size=1, main_loop=loop)


def main(argv: list[str] | None = None) -> list[Target]:
    p = parser(__doc__.splitlines()[0], rounds=5)
    p.add_argument("-n", type=int, default=100_000, help="hook calls per round (default 100000)")
    args = p.parse_args(argv)
    quiet_peers()
    n = args.n
    runners: dict[str, Callable[[], tuple[float, float]]] = {
        "raw loop.call_soon_threadsafe (sync)": lambda: raw_sync(n),
        "quiv_nb _progress_hook -> sync cb": _in_job(_quiv_nb, "_progress_hook", False, n),
        "quiv 1.4 progress_hook -> sync cb": _in_job(_quiv14, "progress_hook", False, n),
        "raw run_coroutine_threadsafe (async)": lambda: raw_async(n),
        "quiv_nb _progress_hook -> async cb": _in_job(_quiv_nb, "_progress_hook", True, n),
        "quiv 1.4 progress_hook -> async cb": _in_job(_quiv14, "progress_hook", True, n),
    }
    # Warm-up (imports, first-use costs) outside the measurements.
    for name, fn in runners.items():
        warm = {"raw loop.call_soon_threadsafe (sync)": lambda: raw_sync(1000),
                "raw run_coroutine_threadsafe (async)": lambda: raw_async(1000)}.get(name)  # fmt: skip
        (warm or fn)()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
    for r in range(args.rounds):
        for name, fn in runners.items():
            value = fn()
            results[name].append(value)
            msg = f"  round {r + 1}: {name}: {fmt_ms(value[0])} (calls {fmt_ms(value[1])})"
            print(msg, file=sys.stderr, flush=True)

    med = {name: median([v[0] for v in vs]) for name, vs in results.items()}
    med_calls = {name: median([v[1] for v in vs]) for name, vs in results.items()}
    raw_s, raw_a = med["raw loop.call_soon_threadsafe (sync)"], med["raw run_coroutine_threadsafe (async)"]
    rows = []
    for name, m in med.items():
        base = raw_a if "async" in name else raw_s
        rows.append([name, fmt_ms(m), f"{n / m / 1e3:,.0f} k/s", f"{n / med_calls[name] / 1e3:,.0f} k/s",
                     f"{base / m:.2f}x"])  # fmt: skip
    print(f"## Progress hooks: {n:,} calls to a main-loop callback (loop on another thread)\n")
    print(machine_facts())
    print()
    headers = ["path", "median delivered time", "delivered throughput", "caller-side rate", "vs raw (throughput)"]
    print(table(headers, rows))
    ours_s, ours_a = med["quiv_nb _progress_hook -> sync cb"], med["quiv_nb _progress_hook -> async cb"]
    q14_s, q14_a = med["quiv 1.4 progress_hook -> sync cb"], med["quiv 1.4 progress_hook -> async cb"]
    targets = [
        Target("sync cb: quiv_nb ≥ 0.8x raw call_soon_threadsafe", f"{raw_s / ours_s:.2f}x", "≥ 0.80x",
               raw_s / ours_s >= 0.8, f"quiv 1.4: {raw_s / q14_s:.2f}x"),
        Target("async cb: quiv_nb ≥ 0.8x raw run_coroutine_threadsafe", f"{raw_a / ours_a:.2f}x", "≥ 0.80x",
               raw_a / ours_a >= 0.8, f"quiv 1.4: {raw_a / q14_a:.2f}x"),
    ]  # fmt: skip
    print_targets(targets)
    return targets


if __name__ == "__main__":
    main()
