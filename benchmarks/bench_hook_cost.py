"""Hook cost on the worker thread: one `_progress_hook(step=i, total=n)` call with each renderer attached.

    python benchmarks/bench_hook_cost.py [--rounds 5] [--blocks 200] [--block 1000]

Every variant runs inside a job body on a scheduler's worker thread (the plain-call rows on a plain
thread), times blocks of `--block` calls with `perf_counter_ns` and reports the median per-call cost
over all blocks of all rounds (rounds interleave the variants; other work shares this machine):

- no-op call:        `noop(step=i, total=n)`, a Python function that does nothing (the floor);
- tqdm.update(1):    a `tqdm.std.tqdm` writing to a StringIO (default mininterval 0.1 s);
- quiv_nb, no callback: the hook of a task without `progress_callback`;
- quiv_nb + widget / tqdm / text bar: `progress_callback=quiv_nb.bar(kind)` (widget: not displayed,
  no kernel, so ipywidgets sends to a dummy comm; the render pump still draws every bar ~10 Hz on its
  own thread, competing for the GIL as it would in a notebook);
- quiv_nb + sync callback via main loop: a plain function callback, main loop on another thread;
- quiv 1.4 hook -> no-op callback / -> tqdm.update(1): no main loop, so quiv 1.4 calls the callback
  inline on the worker (its cheapest path);
- quiv 1.4 hook -> no-op callback via main loop: its notebook path (`call_soon_threadsafe` per call).

Target (issue 5, benchmark 1): median <= 1 µs per call with each renderer attached.
"""

from __future__ import annotations

import gc
import io
import statistics
import sys
import threading
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

from _common import LoopThread, Target, machine_facts, parser, print_targets, quiet_peers, table

TIMEOUT = 300.0
BOUND_US = 1.0


def _time_blocks(call: Callable[..., Any], blocks: int, block: int) -> list[float]:
    """Per-call nanoseconds of `blocks` blocks of `block` calls `call(step=i, total=n)`."""
    total = blocks * block
    out = []
    start = 0
    for _ in range(blocks):
        t0 = perf_counter_ns()
        for i in range(start, start + block):
            call(step=i, total=total)
        out.append((perf_counter_ns() - t0) / block)
        start += block
    return out


def _time_tqdm_blocks(bar: Any, blocks: int, block: int) -> list[float]:
    update = bar.update
    out = []
    for _ in range(blocks):
        t0 = perf_counter_ns()
        for _ in range(block):
            update(1)
        out.append((perf_counter_ns() - t0) / block)
    return out


def _on_thread(fn: Callable[[], list[float]]) -> list[float]:
    """Run `fn` on a fresh plain thread (like a worker) and return its result."""
    box: list[list[float]] = []
    t = threading.Thread(target=lambda: box.append(fn()), name="bench-plain-worker")
    t.start()
    t.join(TIMEOUT)
    return box[0]


def plain_noop(blocks: int, block: int) -> list[float]:
    def noop(*args: Any, **kwargs: Any) -> None:
        return None

    return _on_thread(lambda: _time_blocks(noop, blocks, block))


def plain_tqdm(blocks: int, block: int) -> list[float]:
    from tqdm.std import tqdm

    def run() -> list[float]:
        bar = tqdm(total=blocks * block, file=io.StringIO())
        try:
            return _time_tqdm_blocks(bar, blocks, block)
        finally:
            bar.close()

    return _on_thread(run)


def _in_quiv_nb(
    callback_factory: Callable[[], Any] | None, with_loop: bool = False
) -> Callable[[int, int], list[float]]:
    def run(blocks: int, block: int) -> list[float]:
        import quiv_nb

        lt = LoopThread() if with_loop else None
        out: list[list[float]] = []
        done = threading.Event()
        callback = callback_factory() if callback_factory is not None else None

        def body(_progress_hook: Callable[..., None]) -> None:
            try:
                out.append(_time_blocks(_progress_hook, blocks, block))
            finally:
                done.set()

        q = quiv_nb.Quiv(1, main_loop=lt.loop if lt else None)
        q.start()
        try:
            gc.collect()
            q.add_task("hook-cost", body, run_once=True, progress_callback=callback)
            if not done.wait(TIMEOUT):
                raise RuntimeError("quiv_nb job did not finish")
        finally:
            q.shutdown(10)
            if callback is not None and hasattr(callback, "wait_drawn"):
                callback.wait_drawn(5)
                callback.close()
            if lt:
                lt.close()
        return out[0]

    return run


def _in_quiv14(callback: Callable[..., Any] | Callable[[], Any], with_loop: bool = False, factory: bool = False):
    def run(blocks: int, block: int) -> list[float]:
        import quiv

        lt = LoopThread() if with_loop else None
        out: list[list[float]] = []
        done = threading.Event()
        cb = callback() if factory else callback

        def body(progress_hook: Callable[..., None]) -> None:
            try:
                out.append(_time_blocks(progress_hook, blocks, block))
            finally:
                done.set()

        q = quiv.Quiv(pool_size=1, main_loop=lt.loop if lt else None)
        q.start()
        try:
            gc.collect()
            q.add_task("hook-cost", body, run_once=True, progress_callback=cb)
            if not done.wait(TIMEOUT):
                raise RuntimeError("quiv 1.4 job did not finish")
        finally:
            q.shutdown()
            if lt:
                lt.close()
        return out[0]

    return run


def _noop_cb(*args: Any, **kwargs: Any) -> None:
    return None


def _tqdm_cb_factory() -> Callable[..., None]:
    from tqdm.std import tqdm

    bar = tqdm(file=io.StringIO())

    def cb(*args: Any, **kwargs: Any) -> None:
        bar.update(1)

    return cb


def _bar(kind: str) -> Callable[[], Any]:
    def make() -> Any:
        import quiv_nb

        if kind == "widget":
            return quiv_nb.bar("widget", display=False)
        return quiv_nb.bar(kind, file=io.StringIO())

    return make


NOOP, TQDM, Q14_NOOP, Q14_TQDM, Q14_LOOP = (
    "no-op call (plain thread)",
    "tqdm.update(1) (plain thread)",
    "quiv 1.4 hook -> no-op cb (no loop: inline)",
    "quiv 1.4 hook -> tqdm.update(1) cb (inline)",
    "quiv 1.4 hook -> no-op cb via main loop",
)
RENDERERS = {
    "quiv_nb hook + widget bar": "widget",
    "quiv_nb hook + tqdm bar": "tqdm",
    "quiv_nb hook + text bar": "text",
}


def main(argv: list[str] | None = None) -> list[Target]:
    p = parser(__doc__.splitlines()[0], rounds=5)
    p.add_argument("--blocks", type=int, default=200, help="timed blocks per variant and round (default 200)")
    p.add_argument("--block", type=int, default=1000, help="hook calls per block (default 1000)")
    args = p.parse_args(argv)
    facts = machine_facts()  # load average before this run, not after it
    quiet_peers()
    runners: dict[str, Callable[[int, int], list[float]]] = {
        NOOP: plain_noop,
        TQDM: plain_tqdm,
        "quiv_nb hook, no callback": _in_quiv_nb(None),
        **{name: _in_quiv_nb(_bar(kind)) for name, kind in RENDERERS.items()},
        "quiv_nb hook -> sync cb via main loop": _in_quiv_nb(lambda: _noop_cb, with_loop=True),
        Q14_NOOP: _in_quiv14(_noop_cb),
        Q14_TQDM: _in_quiv14(_tqdm_cb_factory, factory=True),
        Q14_LOOP: _in_quiv14(_noop_cb, with_loop=True),
    }
    for fn in runners.values():  # warm-up: imports, first widget, first tqdm, pump thread
        fn(5, 200)
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(args.rounds):
        for name, fn in runners.items():
            blocks = fn(args.blocks, args.block)
            samples[name] += blocks
            print(
                f"  round {r + 1}: {name}: median {statistics.median(blocks):.0f} ns/call", file=sys.stderr, flush=True
            )

    med = {name: statistics.median(v) / 1e3 for name, v in samples.items()}
    p90 = {name: statistics.quantiles(v, n=10)[-1] / 1e3 for name, v in samples.items()}
    noop, tq, q14, q14_loop = med[NOOP], med[TQDM], med[Q14_NOOP], med[Q14_LOOP]
    rows = [
        [
            name,
            f"{m:.3f} µs",
            f"{p90[name]:.3f} µs",
            f"{m / noop:.1f}x",
            f"{m / tq:.2f}x",
            f"{m / q14:.2f}x",
            f"{m / q14_loop:.3f}x",
        ]
        for name, m in med.items()
    ]
    n = args.rounds * args.blocks
    print(f"## Hook cost on the worker: median of {n} blocks of {args.block:,} calls `hook(step=i, total=n)`\n")
    print(facts)
    print()
    print(
        table(
            [
                "path",
                "median per call",
                "p90 of blocks",
                "vs no-op",
                "vs tqdm.update(1)",
                "vs quiv 1.4 hook (inline)",
                "vs quiv 1.4 hook (main loop)",
            ],
            rows,
        )
    )
    targets = [
        Target(
            f"{name}: median per call ≤ {BOUND_US:g} µs",
            f"{med[name]:.3f} µs",
            f"≤ {BOUND_US:g} µs",
            med[name] <= BOUND_US,
            f"{med[name] / q14:.2f}x quiv 1.4 inline, {med[name] / q14_loop:.3f}x quiv 1.4 main-loop hook, "
            f"{med[name] / tq:.2f}x tqdm.update(1)",
        )
        for name in RENDERERS
    ]
    print_targets(targets)
    return targets


if __name__ == "__main__":
    main()
