"""Timing accuracy: a recurring 0.1 s task for 5 s; median interval and total drift.

    python benchmarks/bench_timing.py [--rounds 3] [--seconds 5] [--parallel]

Each scheduler runs a handler that stamps `perf_counter()` on entry:
- quiv_nb `Quiv(2).add_task(..., interval=0.1)`;
- quiv 1.4 `Quiv(pool_size=2).add_task(..., interval=0.1)` (fixed_interval=True, its default);
- APScheduler 3.11 `BackgroundScheduler` + `add_job(..., "interval", seconds=0.1)`.
By default the three run one after another (each has the machine to itself; rounds interleave the
three), so a round takes 3 x `--seconds`. With `--parallel` they run at the same time in one window.

Figures per run: ticks, median interval, p95 and max of abs(interval - 0.1 s), and the total drift:
with offset_k = t_k - t_0 - k x 0.1 s (how far run k lands from a perfect fixed-rate clock started
at the first run), drift = median(offset of the last 5 runs) - median(offset of the first 5). The
medians keep one run delayed by a busy machine (jitter) from reading as drift; the offset of the
very last run alone is reported too ("last-run offset"). A skipped tick would show as a ~100 ms
drift, so the tick count is reported as well.
"""

from __future__ import annotations

import itertools
import statistics
import sys
import threading
import time
from collections.abc import Callable
from time import perf_counter

from _common import Target, machine_facts, median, parser, print_targets, quiet_peers, table

INTERVAL = 0.1


def _stamper(stamps: list[float]) -> Callable[[], None]:
    def tick() -> None:
        stamps.append(perf_counter())

    return tick


def run_quiv_nb(seconds: float) -> list[float]:
    import quiv_nb

    stamps: list[float] = []
    q = quiv_nb.Quiv(2)
    q.start()
    q.add_task("tick", _stamper(stamps), interval=INTERVAL)
    time.sleep(seconds + INTERVAL / 2)
    q.shutdown()
    return stamps


def run_quiv14(seconds: float) -> list[float]:
    import quiv

    stamps: list[float] = []
    q = quiv.Quiv(pool_size=2)
    q.start()
    q.add_task("tick", _stamper(stamps), interval=INTERVAL)
    time.sleep(seconds + INTERVAL / 2)
    q.shutdown()
    return stamps


def run_apscheduler(seconds: float) -> list[float]:
    from apscheduler.executors.pool import ThreadPoolExecutor as APThreadPool
    from apscheduler.schedulers.background import BackgroundScheduler

    stamps: list[float] = []
    sched = BackgroundScheduler(executors={"default": APThreadPool(2)})
    sched.start()
    sched.add_job(_stamper(stamps), "interval", seconds=INTERVAL)
    time.sleep(seconds + INTERVAL)
    sched.shutdown()
    return stamps


def analyse(stamps: list[float], seconds: float) -> dict[str, float]:
    # Only the runs inside the window of `seconds` after the first one count, so every scheduler is
    # judged on the same number of periods regardless of when its first run landed.
    stamps = [t for t in stamps if t - stamps[0] <= seconds + INTERVAL / 2]
    intervals = [b - a for a, b in itertools.pairwise(stamps)]
    errors = sorted(abs(d - INTERVAL) for d in intervals)
    offsets = [t - stamps[0] - k * INTERVAL for k, t in enumerate(stamps)]
    return {
        "ticks": len(stamps),
        "median": statistics.median(intervals),
        "p95_err": errors[min(len(errors) - 1, int(0.95 * len(errors)))],
        "max_err": errors[-1],
        "drift": statistics.median(offsets[-5:]) - statistics.median(offsets[:5]),
        "last": offsets[-1],
    }


def main(argv: list[str] | None = None) -> list[Target]:
    p = parser(__doc__.splitlines()[0], rounds=3)
    p.add_argument("--seconds", type=float, default=5.0, help="length of each run (default 5)")
    p.add_argument("--parallel", action="store_true", help="run the three schedulers at the same time")
    args = p.parse_args(argv)
    quiet_peers()
    runners: dict[str, Callable[[float], list[float]]] = {
        "quiv_nb": run_quiv_nb,
        "quiv 1.4": run_quiv14,
        "APScheduler 3.11 (interval trigger)": run_apscheduler,
    }
    import apscheduler.schedulers.background  # noqa: F401 - imports outside the measured windows
    import quiv  # noqa: F401

    import quiv_nb  # noqa: F401

    results: dict[str, list[dict[str, float]]] = {name: [] for name in runners}
    for r in range(args.rounds):
        if args.parallel:
            out: dict[str, list[float]] = {}

            def run(name: str, fn: Callable[[float], list[float]], out: dict[str, list[float]] = out) -> None:
                out[name] = fn(args.seconds)

            threads = [threading.Thread(target=run, args=(name, fn)) for name, fn in runners.items()]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for name in runners:
                results[name].append(analyse(out[name], args.seconds))
        else:
            for name, fn in runners.items():
                results[name].append(analyse(fn(args.seconds), args.seconds))
        for name in runners:
            a = results[name][-1]
            print(f"  round {r + 1}: {name}: ticks {a['ticks']}, median {a['median'] * 1e3:.3f} ms, "
                  f"drift {a['drift'] * 1e3:+.2f} ms", file=sys.stderr, flush=True)  # fmt: skip

    def med(name: str, key: str) -> float:
        return median([a[key] for a in results[name]])

    rows = [
        [name, f"{med(name, 'ticks'):.0f}", f"{med(name, 'median') * 1e3:.3f} ms",
         f"{abs(med(name, 'median') - INTERVAL) * 1e3:.3f} ms", f"{med(name, 'p95_err') * 1e3:.2f} ms",
         f"{med(name, 'max_err') * 1e3:.2f} ms", f"{med(name, 'drift') * 1e3:+.2f} ms",
         ", ".join(f"{a['drift'] * 1e3:+.1f}" for a in results[name]), f"{med(name, 'last') * 1e3:+.2f} ms"]
        for name in runners
    ]  # fmt: skip
    mode = "in parallel threads" if args.parallel else "one after another"
    what = f"recurring {INTERVAL} s task for {args.seconds:g} s ({args.rounds} rounds, schedulers run {mode})"
    print(f"## Timing: {what}\n")
    print(machine_facts())
    print()
    headers = ["scheduler", "ticks", "median interval", "median - 0.1 s (abs)", "p95 abs error", "max abs error",
               "total drift (median)", "drift per round (ms)", "last-run offset (median)"]  # fmt: skip
    print(table(headers, rows))
    dev, drift = abs(med("quiv_nb", "median") - INTERVAL), abs(med("quiv_nb", "drift"))
    peers = ", ".join(f"{name}: {med(name, 'drift') * 1e3:+.1f} ms" for name in runners if name != "quiv_nb")
    targets = [
        Target("quiv_nb median interval within 1 ms of 0.1 s", f"{dev * 1e3:.3f} ms", "≤ 1 ms", dev <= 0.001),
        Target("quiv_nb total drift over the run", f"{drift * 1e3:.2f} ms", "< 5 ms", drift < 0.005, peers),
    ]
    print_targets(targets)
    return targets


if __name__ == "__main__":
    main()
