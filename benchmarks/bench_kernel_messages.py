"""Frontend message budget and kernel responsiveness with 50 flooding jobs and their bars, in a real kernel.

    python benchmarks/bench_kernel_messages.py [--rounds 3] [--jobs 50] [--seconds 20] [--burst 100] [--pause 0.01]

Each round starts a fresh IPython kernel per variant (tests/kernel_harness.py, jupyter_client) and
records every iopub message. Workload: `--jobs` concurrent run-once jobs, each calling its progress
hook `--burst` times in a row (`hook(step=i, total=...)`) and then sleeping `--pause` seconds
(standing in for work that releases the GIL), until it is stopped. After a 2 s warm-up the client
sends `1+1` ten times a second for `--seconds` and times each execute round trip (request sent ->
execute_reply received), while counting the widget messages of that window (kernel-side send times).

Variants, in the same round:
- idle kernel: no jobs (the floor);
- quiv_nb, no bars: the same jobs, `progress_callback=None` (what the flood itself costs);
- quiv_nb + widget bars: one `quiv_nb.bar("widget")` per job, displayed in the starting cell;
- quiv 1.4 + tqdm.notebook: `quiv.Quiv(main_loop=<kernel loop>)`, one `tqdm.notebook.tqdm` per job,
  `t.update(step - t.n)` in the task's progress callback (quiv 1.4 runs it on the kernel loop).

Targets (issue 5): benchmark 2 -- <= 12 refreshes per second per bar, at most one message per changed
widget per refresh, <= 300 widget messages per second in total; benchmark 3 -- `1+1` round trip p99
<= 50 ms and <= 0.25x the quiv 1.4 figure.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import Target, machine_facts, median, parser, print_targets, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from kernel_harness import KernelSession

WARMUP = 2.0
PING_PERIOD = 0.1
REFRESH_GAP = 0.02  # kernel-side seconds: messages of one bar closer than this belong to one refresh
RTT_BOUND, RTT_RATIO = 0.050, 0.25
PING_TIMEOUT = 10.0  # a `1+1` without a reply by then counts as PING_TIMEOUT (a lower bound)
BAR_BOUND, TOTAL_BOUND = 12, 300

FLOOD = """
import time
BURST, PAUSE, TOTAL = {burst}, {pause}, 10**7

def flood({hook}, {stop}):
    i = 0
    while not {stop}.is_set():
        for _ in range(BURST):
            i += 1
            {hook}(step=i, total=TOTAL)
        time.sleep(PAUSE)
"""

SETUP = {
    "idle": "import quiv_nb\n",
    "nobars": "import quiv_nb\n"
    + FLOOD.format(burst="{burst}", pause="{pause}", hook="_progress_hook", stop="_stop_event"),
    "quiv_nb": "import quiv_nb, ipywidgets\n"
    + FLOOD.format(burst="{burst}", pause="{pause}", hook="_progress_hook", stop="_stop_event"),
    "quiv14": "import asyncio, logging, quiv\nfrom tqdm.notebook import tqdm\n"
    "logging.getLogger('Quiv').setLevel(logging.CRITICAL)\nlogging.getLogger('quiv').setLevel(logging.CRITICAL)\n"
    + FLOOD.format(burst="{burst}", pause="{pause}", hook="progress_hook", stop="stop_event"),
}

START = {
    "idle": "pass\n",
    "nobars": """
sched = quiv_nb.Quiv({jobs} + 2)
for k in range({jobs}):
    sched.add_task(f"flood{{k}}", flood, run_once=True)
sched.start()
""",
    "quiv_nb": """
sched = quiv_nb.Quiv({jobs} + 2)
bars = [quiv_nb.bar("widget", desc=f"job {{k}}") for k in range({jobs})]
for k in range({jobs}):
    sched.add_task(f"flood{{k}}", flood, run_once=True, progress_callback=bars[k])
sched.start()
""",
    "quiv14": """
sched = quiv.Quiv(pool_size={jobs} + 2, main_loop=asyncio.get_running_loop())
bars = [tqdm(total=TOTAL, desc=f"job {{k}}") for k in range({jobs})]

def make_cb(t):
    def cb(step, total):
        t.update(step - t.n)
    return cb

for k in range({jobs}):
    sched.add_task(f"flood{{k}}", flood, run_once=True, progress_callback=make_cb(bars[k]))
sched.start()
""",
}

STOP = {
    "idle": "pass\n",
    "nobars": "sched.shutdown(10)\n",
    "quiv_nb": "sched.shutdown(10)\n",
    "quiv14": "sched.shutdown(10)\n",
}

NAMES = {
    "idle": "idle kernel (no jobs)",
    "nobars": "quiv_nb, 50 flooding jobs, no bars",
    "quiv_nb": "quiv_nb + widget bars",
    "quiv14": "quiv 1.4 + tqdm.notebook",
}


def _ts(msg: dict[str, Any]) -> float:
    date = msg["header"]["date"]
    if isinstance(date, str):
        date = datetime.fromisoformat(date.replace("Z", "+00:00"))
    return date.timestamp()


def _pct(values: list[float], pct: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(pct / 100 * (len(s) - 1))))] if s else float("nan")


def fmt_rtt(seconds: float) -> str:
    """Milliseconds; a figure at the ping timeout is only a lower bound."""
    return f"≥ {PING_TIMEOUT * 1e3:.0f} ms" if seconds >= PING_TIMEOUT else f"{seconds * 1e3:.1f} ms"


def bar_groups(states: dict[str, dict[str, Any]]) -> list[set[str]]:
    """The comm ids of each bar: an HBox, its children, and their layout/style models."""

    def ref(value: Any) -> str | None:
        return value[len("IPY_MODEL_") :] if isinstance(value, str) and value.startswith("IPY_MODEL_") else None

    groups = []
    for cid, state in states.items():
        if state.get("_model_name") != "HBoxModel":
            continue
        members = {cid}
        for child in state.get("children", []):
            c = ref(child)
            if c:
                members.add(c)
        for m in list(members):
            for key in ("layout", "style"):
                r = ref(states.get(m, {}).get(key))
                if r:
                    members.add(r)
        groups.append(members)
    return groups


class Measure:
    """What one variant produced in its measured window."""

    def __init__(self) -> None:
        self.rtts: list[float] = []
        self.seconds = 0.0
        self.widget_msgs = 0
        self.max_total_bin = 0
        self.bar_rate_mean = 0.0  # refreshes / s, mean over bars
        self.bar_rate_max = 0.0  # refreshes / s, the busiest bar over the window
        self.bar_bin_max = 0  # refreshes of one bar in one 1-s bin, max over bars and bins
        self.msgs_per_widget_refresh = 0  # most messages one widget got within one refresh
        self.bars = 0
        self.iopub = 0
        self.kernel_cpu = 0.0  # kernel process CPU seconds per second
        self.timeouts = 0  # pings without a reply within PING_TIMEOUT (counted as PING_TIMEOUT)

    @property
    def p50(self) -> float:
        return statistics.median(self.rtts)

    @property
    def p99(self) -> float:
        return _pct(self.rtts, 99)

    @property
    def widget_rate(self) -> float:
        return self.widget_msgs / self.seconds if self.seconds else 0.0


def run_variant(variant: str, args: Any) -> Measure:
    import psutil

    fmt = {"jobs": args.jobs, "burst": args.burst, "pause": args.pause}
    ks = KernelSession()
    try:
        ks.run(SETUP[variant].format(**fmt))
        for _ in range(5):
            ks.ping()
        start_cell = ks.run(START[variant].format(**fmt))
        time.sleep(WARMUP)
        proc = psutil.Process(ks.pid)
        cpu0 = sum(proc.cpu_times()[:2])
        t0, w0 = time.monotonic(), time.time()
        m = Measure()
        next_ping = t0
        while time.monotonic() - t0 < args.seconds:
            try:
                m.rtts.append(ks.ping(timeout=PING_TIMEOUT))
            except TimeoutError:
                m.rtts.append(PING_TIMEOUT)
                m.timeouts += 1
            next_ping += PING_PERIOD
            delay = next_ping - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_ping = time.monotonic()
        t1, w1 = time.monotonic(), time.time()
        m.kernel_cpu = (sum(proc.cpu_times()[:2]) - cpu0) / (t1 - t0)
        m.seconds = w1 - w0
        try:
            ks.run(STOP[variant], timeout=30)
        except TimeoutError:  # an unresponsive kernel (quiv 1.4 under the flood) is shut down as it is
            pass
        _analyse(ks, m, w0, w1, start_cell.msg_id)
        return m
    finally:
        ks.shutdown()


def _analyse(ks: KernelSession, m: Measure, w0: float, w1: float, start_msg: str) -> None:
    with ks._cond:
        log = [msg for _, msg in ks.log]
    window = [(ts, msg) for msg in log for ts in (_ts(msg),) if w0 <= ts <= w1]
    m.iopub = len(window)
    updates = [
        (ts, msg["content"]["comm_id"])
        for ts, msg in window
        if msg["msg_type"] == "comm_msg" and msg["content"].get("data", {}).get("method") == "update"
    ]
    m.widget_msgs = len(updates)
    bins = Counter(int(ts - w0) for ts, _ in updates if ts - w0 < int(m.seconds))
    m.max_total_bin = max(bins.values(), default=0)
    opened = set(ks.comms_opened_by(start_msg))
    groups = [g for g in bar_groups(ks.widget_states()) if g & opened]
    m.bars = len(groups)
    owner = {cid: k for k, g in enumerate(groups) for cid in g}
    per_bar: dict[int, list[tuple[float, str]]] = defaultdict(list)
    for ts, cid in updates:
        if cid in owner:
            per_bar[owner[cid]].append((ts, cid))
    rates, worst_bin, worst_dup = [], 0, 0
    for k in range(len(groups)):
        msgs = sorted(per_bar.get(k, []))
        refreshes: list[list[tuple[float, str]]] = []
        for ts, cid in msgs:
            if refreshes and ts - refreshes[-1][-1][0] <= REFRESH_GAP:
                refreshes[-1].append((ts, cid))
            else:
                refreshes.append([(ts, cid)])
        rates.append(len(refreshes) / m.seconds)
        rb = Counter(int(r[0][0] - w0) for r in refreshes if r[0][0] - w0 < int(m.seconds))
        worst_bin = max(worst_bin, max(rb.values(), default=0))
        for r in refreshes:
            worst_dup = max(worst_dup, max(Counter(cid for _, cid in r).values()))
    m.bar_rate_mean = statistics.mean(rates) if rates else 0.0
    m.bar_rate_max = max(rates, default=0.0)
    m.bar_bin_max = worst_bin
    m.msgs_per_widget_refresh = worst_dup


def main(argv: list[str] | None = None) -> list[Target]:
    p = parser(__doc__.splitlines()[0], rounds=3)
    p.add_argument("--jobs", type=int, default=50, help="concurrent flooding jobs, one bar each (default 50)")
    p.add_argument("--seconds", type=float, default=20.0, help="measured window per variant (default 20)")
    p.add_argument("--burst", type=int, default=100, help="hook calls in a row per job (default 100)")
    p.add_argument("--pause", type=float, default=0.01, help="seconds a job sleeps after each burst (default 0.01)")
    p.add_argument("--variants", default="idle,nobars,quiv_nb,quiv14", help="comma-separated subset to run")
    args = p.parse_args(argv)
    facts = machine_facts()  # load average before this run, not after it
    variants = [v for v in args.variants.split(",") if v]
    NAMES["nobars"] = f"quiv_nb, {args.jobs} flooding jobs, no bars"
    results: dict[str, list[Measure]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in variants:
            m = run_variant(v, args)
            results[v].append(m)
            print(
                f"  round {r + 1}: {NAMES[v]}: rtt p50 {fmt_rtt(m.p50)} p99 {fmt_rtt(m.p99)} "
                f"({len(m.rtts)} pings, {m.timeouts} timed out), "
                f"widget msgs {m.widget_rate:.0f}/s (max 1-s bin {m.max_total_bin}), "
                f"bars {m.bars}: refresh/s mean {m.bar_rate_mean:.1f} max {m.bar_rate_max:.1f} "
                f"(max 1-s bin {m.bar_bin_max}), msgs/widget/refresh {m.msgs_per_widget_refresh}, "
                f"kernel CPU {m.kernel_cpu:.2f}",
                file=sys.stderr,
                flush=True,
            )

    def med(v: str, f: Any) -> float:
        return median([f(m) for m in results[v]])

    print(
        f"## Kernel: {args.jobs} jobs flooding their hooks ({args.burst} calls, then sleep {args.pause * 1e3:g} ms), "
        f"median of {args.rounds} rounds, {args.seconds:g} s windows\n"
    )
    print(facts)
    print()
    rows = []
    for v in variants:
        bars = v in ("quiv_nb", "quiv14")
        rows.append(
            [
                NAMES[v],
                fmt_rtt(med(v, lambda m: m.p50)),
                fmt_rtt(med(v, lambda m: m.p99)),
                f"{med(v, lambda m: len(m.rtts)):.0f} ({sum(m.timeouts for m in results[v])})",
                f"{med(v, lambda m: m.widget_rate):.0f}",
                f"{med(v, lambda m: m.max_total_bin):.0f}",
                f"{med(v, lambda m: m.bar_rate_mean):.1f} / {med(v, lambda m: m.bar_rate_max):.1f}" if bars else "—",
                f"{med(v, lambda m: m.bar_bin_max):.0f}" if bars else "—",
                f"{max(m.msgs_per_widget_refresh for m in results[v])}" if bars else "—",
                f"{med(v, lambda m: m.kernel_cpu):.2f}",
            ]
        )
    print(
        table(
            [
                "variant",
                "`1+1` RTT p50",
                "`1+1` RTT p99",
                "pings (timed out, all rounds)",
                "widget msgs/s",
                "max msgs in a 1-s bin",
                "refreshes/s per bar (mean / busiest)",
                "max refreshes of a bar in a 1-s bin",
                "max msgs per widget per refresh",
                "kernel CPU (cores)",
            ],
            rows,
        )
    )
    targets: list[Target] = []
    if "quiv_nb" in results:
        bin_max = max(m.bar_bin_max for m in results["quiv_nb"])
        dup = max(m.msgs_per_widget_refresh for m in results["quiv_nb"])
        total_bin = max(m.max_total_bin for m in results["quiv_nb"])
        p99 = med("quiv_nb", lambda m: m.p99)
        note14 = ""
        if "quiv14" in results:
            note14 = (
                f"quiv 1.4: {max(m.bar_bin_max for m in results['quiv14'])} per bar, "
                f"{max(m.max_total_bin for m in results['quiv14'])} msgs in a 1-s bin"
            )
        targets += [
            Target(
                f"2: refreshes of one bar in any 1-s bin ≤ {BAR_BOUND} (all rounds)",
                f"{bin_max}",
                f"≤ {BAR_BOUND}",
                bin_max <= BAR_BOUND,
                note14,
            ),
            Target("2: messages per changed widget per refresh ≤ 1 (hold_sync)", f"{dup}", "≤ 1", dup <= 1),
            Target(
                f"2: widget messages in any 1-s bin ≤ {TOTAL_BOUND} (all rounds)",
                f"{total_bin}",
                f"≤ {TOTAL_BOUND}",
                total_bin <= TOTAL_BOUND,
                f"mean {med('quiv_nb', lambda m: m.widget_rate):.0f}/s over {args.jobs} bars",
            ),
            Target(
                f"3: `1+1` RTT p99 ≤ {RTT_BOUND * 1e3:g} ms",
                fmt_rtt(p99),
                f"≤ {RTT_BOUND * 1e3:g} ms",
                p99 <= RTT_BOUND,
                f"idle kernel: {fmt_rtt(med('idle', lambda m: m.p99))}" if "idle" in results else "",
            ),
        ]
        if "quiv14" in results:
            p99_14 = med("quiv14", lambda m: m.p99)
            targets.append(
                Target(
                    f"3: `1+1` RTT p99 ≤ {RTT_RATIO:g}x quiv 1.4",
                    ("≤ " if p99_14 >= PING_TIMEOUT else "") + f"{p99 / p99_14:.4f}x",
                    f"≤ {RTT_RATIO:g}x",
                    p99 / p99_14 <= RTT_RATIO,
                    f"quiv 1.4 p99 {fmt_rtt(p99_14)}"
                    + (" (a lower bound: the ratio is an upper bound)" if p99_14 >= PING_TIMEOUT else ""),
                )
            )
    print_targets(targets)
    return targets


if __name__ == "__main__":
    main()
