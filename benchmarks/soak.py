"""Soak: a mixed quiv_nb workload in a real kernel for N minutes; threads, RSS, comms and iopub rate stay flat.

    python benchmarks/soak.py --minutes 10 [--sample 5] [--warmup SECONDS] [--json PATH]

A kernel (tests/kernel_harness.py) runs one `quiv_nb.Quiv` with a widget bar per task and the live
dashboard displayed, and this mix of tasks:

=========  ==========  ===============================================================
task       every       what it does
=========  ==========  ===============================================================
tick       1 s         5 hook calls, prints a line (output routed to the setup cell)
fast       0.25 s      20 hook calls with 2 ms sleeps (sub-second)
fetch      0.5 s       async handler: 5 x `await asyncio.sleep(0.02)` + hook
boom       1.5 s       fails (ValueError), retried once after 0.1 s
long       1 s         runs until cancelled; `canceller` (every 1 s) cancels it
slow       1 s         honours its stop event, `timeout=0.3` ends it as timed out
flood      2 s         200,000 hook calls as fast as it can
sync-cb    0.5 s       50 hook calls to a plain sync callback (main-loop dispatch)
async-cb   0.5 s       50 hook calls to an async callback (main-loop drainer)
=========  ==========  ===============================================================

Every 15 s the client re-runs a cell that replaces `tick` (`replace=True`, same bar), so the
dashboard rebuilds its rows. Every `--sample` seconds it records, from outside the kernel (psutil):
OS thread count and RSS; from a user expression of an empty execute request (its round trip is the
"sample RTT"): Python thread count, open comms and job totals; from the iopub log: messages per
second (all, widget `comm_msg`, stream) and the busiest 1-s bin of widget messages. Job history is
kept 10 s (`history_retention_seconds=10`) so it reaches its steady size during warm-up; the default
(1 h, at most 10,000 jobs) would grow by design, not by a leak.

Invariants after warm-up (default: 15% of the run, at least 20 s, at most 60 s): OS thread count
constant; RSS growth < 15 MiB; open comms outside bars and kept dashboard rows constant; widget
messages <= 300 in every 1-s bin and non-stream iopub <= 330 msg/s per sample. Prints a table of
samples and a verdict; exits 1 if an invariant is violated.
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from kernel_harness import KernelSession

RSS_BOUND_MIB = 15.0
WIDGET_BIN_BOUND = 300
NON_STREAM_RATE_BOUND = 330.0  # widget budget + status/execute_input of the sampling cells
RERUN_EVERY = 15.0
POOL = 6

SETUP = r"""
import asyncio, json, threading, time
import quiv_nb
from comm import get_comm_manager

sched = quiv_nb.Quiv(POOL, history_retention_seconds=10)
ids = {}
seen = {"sync": 0, "async": 0}

def tick(_progress_hook):
    for i in range(5):
        _progress_hook(step=i + 1, total=5, stage="tick")
    print("tick", time.strftime("%H:%M:%S"), flush=True)

def fast(_progress_hook):
    for i in range(20):
        _progress_hook(step=i + 1, total=20)
        time.sleep(0.002)

async def fetch(_progress_hook):
    for i in range(5):
        await asyncio.sleep(0.02)
        _progress_hook(step=i + 1, total=5, stage="fetch")

def boom(_progress_hook):
    _progress_hook(step=1, total=3)
    raise ValueError("soak: planned failure")

def long(_progress_hook, _stop_event):
    i = 0
    while not _stop_event.wait(0.01):
        i += 1
        _progress_hook(step=i)

def slow(_progress_hook, _stop_event):
    i = 0
    while not _stop_event.wait(0.02):
        i += 1
        _progress_hook(step=i, total=100)

def flood(_progress_hook):
    for i in range(200_000):
        _progress_hook(step=i + 1, total=200_000)

def canceller():
    for job in sched.get_all_jobs(status="running", task_id=ids["long"]):
        sched.cancel_job(job.job_id)

def counted(_progress_hook):
    for i in range(50):
        _progress_hook(i)

def on_sync(*args, **kwargs):
    seen["sync"] += 1

async def on_async(*args, **kwargs):
    seen["async"] += 1

bars = {name: quiv_nb.bar("widget", desc=name) for name in ("tick", "fast", "fetch", "boom", "long", "slow", "flood")}
ids["tick"] = sched.add_task("tick", tick, interval=1.0, progress_callback=bars["tick"])
ids["fast"] = sched.add_task("fast", fast, interval=0.25, progress_callback=bars["fast"])
ids["fetch"] = sched.add_task("fetch", fetch, interval=0.5, progress_callback=bars["fetch"])
ids["boom"] = sched.add_task("boom", boom, interval=1.5, max_retries=1, retry_backoff=0.1,
                             progress_callback=bars["boom"])
ids["long"] = sched.add_task("long", long, interval=1.0, progress_callback=bars["long"])
ids["slow"] = sched.add_task("slow", slow, interval=1.0, timeout=0.3, progress_callback=bars["slow"])
ids["flood"] = sched.add_task("flood", flood, interval=2.0, progress_callback=bars["flood"])
ids["canceller"] = sched.add_task("canceller", canceller, interval=1.0, delay=0.5)
ids["sync-cb"] = sched.add_task("sync-cb", counted, interval=0.5, progress_callback=on_sync)
ids["async-cb"] = sched.add_task("async-cb", counted, interval=0.5, progress_callback=on_async)
totals = {"completed": 0, "failed": 0, "cancelled": 0, "timed_out": 0}

def _count(event, task=None, job=None):
    if job is None:
        return
    key = "timed_out" if (job.error_message or "").startswith("timed out") else getattr(job.status, "value", job.status)
    totals[key] = totals.get(key, 0) + 1

for _event in (quiv_nb.Event.JOB_COMPLETED, quiv_nb.Event.JOB_FAILED, quiv_nb.Event.JOB_CANCELLED):
    sched.add_listener(_event, _count)
sched.start()
dash = quiv_nb.dashboard(sched)
"""

# Every task due at once: the pool starts all its threads during warm-up, not later.
SATURATE = """
for _tid in ids.values():
    try:
        sched.run_task_immediately(_tid)
    except quiv_nb.TaskRunningError:
        pass
"""

RERUN = 'ids["tick"] = sched.add_task("tick", tick, interval=1.0, progress_callback=bars["tick"], replace=True)\n'

# Evaluated as a user expression of an empty cell: the figures come back in the execute_reply,
# so taking a sample never scans the (growing) iopub log.
# A finished bar becomes a static rendering and keeps its widget models (bounded by
# render.widget.KEEP_FINISHED); its next run draws into them again. The bars' own comms are counted
# apart; what must stay flat is every other comm.
# `bar_parts`: each bar's displayed widget models (HBox, its children, their layouts and styles);
# `bar_comms`: those open now.
_BAR_PARTS = (
    "[x for b in bars.values() for w in (b.widget, *b.widget.children) "
    "for x in (w, getattr(w, 'layout', None), getattr(w, 'style', None)) if x is not None]"
)
SAMPLE = (
    "json.dumps({'py_threads': threading.active_count(), 'comms': len(get_comm_manager().comms), "
    f"'bar_comms': sum(1 for x in {_BAR_PARTS} if x.comm is not None), "
    f"'bar_parts': max(len({_BAR_PARTS}) // len(bars), 1), "
    "'dash_kept': dash.retired_models, "
    "'totals': totals, 'seen': seen, 'jobs_retained': sched.stats().jobs_retained})"
)

STOP = "sched.shutdown(5); dash.close()\n"


@dataclass
class Sample:
    t: float  # seconds since the workload started
    threads: int  # OS threads of the kernel process (psutil)
    py_threads: int  # threading.active_count() in the kernel
    rss_mib: float
    comms: int  # open comms in the kernel's comm manager
    bar_comms: int  # of those, the models of the bars (a finished bar keeps its own, see KEEP_FINISHED)
    bar_parts: int  # widget models of one bar
    dash_kept: int  # of the comms, the dashboard's rows of replaced tasks kept open (bounded: RETIRED_KEPT rows)
    cell_ms: float  # round trip of the sampling request (execute -> execute_reply): kernel responsiveness
    iopub_rate: float  # all iopub messages per second since the previous sample
    widget_rate: float  # comm_msg per second
    stream_rate: float  # stream messages per second
    widget_bin_max: int  # widget messages in the busiest 1-s bin since the previous sample
    jobs: dict[str, int] = field(default_factory=dict)
    jobs_retained: int = 0
    callbacks: dict[str, int] = field(default_factory=dict)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class SoakResult:
    minutes: float
    warmup: float
    samples: list[Sample]
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def after_warmup(self) -> list[Sample]:
        return [s for s in self.samples if s.t >= self.warmup]


def _ts(msg: dict[str, Any]) -> float:
    date = msg["header"]["date"]
    if isinstance(date, str):
        date = datetime.fromisoformat(date.replace("Z", "+00:00"))
    return date.timestamp()


def default_warmup(minutes: float) -> float:
    return min(60.0, max(20.0, 0.15 * minutes * 60))


def run_soak(
    minutes: float,
    sample_every: float = 5.0,
    warmup: float | None = None,
    progress: Callable[[Sample], None] | None = None,
) -> SoakResult:
    """Run the workload in a fresh kernel for `minutes`, sampling every `sample_every` seconds."""
    import psutil

    duration = minutes * 60
    warmup = default_warmup(minutes) if warmup is None else warmup
    ks = KernelSession()
    samples: list[Sample] = []
    try:
        ks.run(f"POOL = {POOL}\n" + SETUP, timeout=120)
        proc = psutil.Process(ks.pid)
        t_start = time.monotonic()
        ks.run(SATURATE)
        saturated_again = False
        prev = t_start
        next_sample, next_rerun = t_start + sample_every, t_start + RERUN_EVERY
        while True:
            now = time.monotonic()
            if now - t_start >= duration:
                break
            if not saturated_again and now - t_start >= warmup / 2:
                ks.run(SATURATE)
                saturated_again = True
            if now >= next_sample:
                sample = _sample(ks, proc, t_start, prev)
                prev = t_start + sample.t
                samples.append(sample)
                if progress is not None:
                    progress(sample)
                next_sample += sample_every
            if now >= next_rerun:
                # Right after a sample, so the dashboard's row rebuild (new rows opened, old ones
                # closed, on the pump thread) is long done when the next sample counts comms.
                ks.run(RERUN)
                next_rerun += RERUN_EVERY
            time.sleep(max(0.0, min(next_sample, next_rerun, t_start + duration) - time.monotonic()))
        try:
            ks.run(STOP, timeout=30)
        except (TimeoutError, AssertionError):
            pass
    finally:
        ks.shutdown()
    result = SoakResult(minutes, warmup, samples, [])
    result.checks = check(result)
    return result


def _sample(ks: KernelSession, proc: Any, t_start: float, prev: float) -> Sample:
    reply, cell_s = ks.execute_reply("", user_expressions={"sample": SAMPLE}, timeout=60)
    result = reply["content"]["user_expressions"]["sample"]
    if result.get("status") != "ok":
        raise RuntimeError(f"sampling failed in the kernel: {result}")
    data = json.loads(ast.literal_eval(result["data"]["text/plain"]))
    mem = proc.memory_info().rss / 2**20
    threads = proc.num_threads()
    now = time.monotonic()
    window = ks.log_between(prev, now)
    span = max(1e-9, now - prev)
    widget = [m for _, m in window if m["msg_type"] == "comm_msg"]
    stream = sum(1 for _, m in window if m["msg_type"] == "stream")
    bins = Counter(int(_ts(m)) for m in widget)
    return Sample(
        t=round(now - t_start, 1),
        threads=threads,
        py_threads=data["py_threads"],
        rss_mib=round(mem, 1),
        comms=data["comms"],
        bar_comms=data["bar_comms"],
        bar_parts=data["bar_parts"],
        dash_kept=data["dash_kept"],
        cell_ms=round(cell_s * 1e3, 1),
        iopub_rate=round(len(window) / span, 1),
        widget_rate=round(len(widget) / span, 1),
        stream_rate=round(stream / span, 1),
        widget_bin_max=max(bins.values(), default=0),
        jobs=data["totals"],
        jobs_retained=data["jobs_retained"],
        callbacks=data["seen"],
    )


def check(result: SoakResult) -> list[Check]:
    """The soak's invariants over the samples taken after warm-up."""
    post = result.after_warmup
    if len(post) < 2:
        return [Check("enough samples after warm-up", False, f"{len(post)} samples after {result.warmup:g} s")]
    threads = sorted({s.threads for s in post})
    rss_growth = max(s.rss_mib for s in post) - post[0].rss_mib
    comms = sorted({s.comms - s.bar_comms - s.dash_kept for s in post})
    comm_slack = max(s.bar_parts for s in post)
    widget_bin = max(s.widget_bin_max for s in post)
    non_stream = max(s.iopub_rate - s.stream_rate for s in post)
    first, last = post[0].jobs, post[-1].jobs
    ran = {k: last.get(k, 0) - first.get(k, 0) for k in ("completed", "failed", "cancelled", "timed_out")}
    cbs = {k: post[-1].callbacks.get(k, 0) - post[0].callbacks.get(k, 0) for k in ("sync", "async")}
    return [
        Check("OS thread count constant after warm-up", len(threads) == 1, f"thread counts seen: {threads}"),
        Check(
            f"RSS growth after warm-up < {RSS_BOUND_MIB:g} MiB",
            rss_growth < RSS_BOUND_MIB,
            f"{post[0].rss_mib:.1f} -> max {max(s.rss_mib for s in post):.1f} MiB (+{rss_growth:.1f} MiB), "
            f"slope {_slope(post):+.2f} MiB/min",
        ),
        Check(
            "open comms outside live bars and kept dashboard rows constant after warm-up",
            comms[-1] - comms[0] <= comm_slack,
            f"counts seen: {comms} (slack {comm_slack}: one bar being built or closed while the sample counts)",
        ),
        Check(
            f"widget messages ≤ {WIDGET_BIN_BOUND} in every 1-s bin",
            widget_bin <= WIDGET_BIN_BOUND,
            f"busiest bin {widget_bin}, mean {statistics.mean(s.widget_rate for s in post):.0f} msg/s",
        ),
        Check(
            f"non-stream iopub ≤ {NON_STREAM_RATE_BOUND:g} msg/s per sample",
            non_stream <= NON_STREAM_RATE_BOUND,
            f"max {non_stream:.0f} msg/s (stream adds {max(s.stream_rate for s in post):.1f} msg/s at most)",
        ),
        Check(
            "the workload kept running (completed, failed, cancelled, timed out, callbacks)",
            all(v > 0 for v in ran.values()) and all(v > 0 for v in cbs.values()),
            f"after warm-up: {ran}, callbacks {cbs}",
        ),
    ]


def _slope(samples: list[Sample]) -> float:
    """Least-squares RSS slope in MiB per minute."""
    if len(samples) < 2:
        return 0.0
    xs, ys = [s.t / 60 for s in samples], [s.rss_mib for s in samples]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


HEADERS = ["t (s)", "threads (OS/py)", "RSS MiB", "comms", "sample RTT ms", "iopub/s", "widget/s", "stream/s",
           "widget max 1-s bin", "jobs done/failed/cancelled/timed out", "history"]  # fmt: skip


def row(s: Sample, warmup: float) -> list[str]:
    j = s.jobs
    return [
        f"{s.t:.0f}{'' if s.t >= warmup else ' (warm-up)'}",
        f"{s.threads}/{s.py_threads}",
        f"{s.rss_mib:.1f}",
        str(s.comms),
        f"{s.cell_ms:.0f}",
        f"{s.iopub_rate:.0f}",
        f"{s.widget_rate:.0f}",
        f"{s.stream_rate:.1f}",
        str(s.widget_bin_max),
        f"{j.get('completed', 0)}/{j.get('failed', 0)}/{j.get('cancelled', 0)}/{j.get('timed_out', 0)}",
        str(s.jobs_retained),
    ]


def report(result: SoakResult) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    lines += ["| " + " | ".join(row(s, result.warmup)) + " |" for s in result.samples]
    lines += ["", "| invariant | verdict | detail |", "|---|---|---|"]
    lines += [f"| {c.name} | {'PASS' if c.ok else 'FAIL'} | {c.detail} |" for c in result.checks]
    lines += ["", f"verdict: {'PASS' if result.ok else 'FAIL'} ({result.minutes:g} min, warm-up {result.warmup:g} s)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="run time including warm-up (default 10)")
    p.add_argument("--sample", type=float, default=5.0, help="seconds between samples (default 5)")
    p.add_argument("--warmup", type=float, default=None, help="seconds before invariants apply (default: 15%%)")
    p.add_argument("--json", type=Path, default=None, help="also write samples and checks as JSON here")
    args = p.parse_args(argv)

    def show(s: Sample) -> None:
        print("  " + " | ".join(row(s, warmup)), file=sys.stderr, flush=True)

    warmup = default_warmup(args.minutes) if args.warmup is None else args.warmup
    print(f"soak: {args.minutes:g} min, sample every {args.sample:g} s, warm-up {warmup:g} s", file=sys.stderr)
    result = run_soak(args.minutes, args.sample, warmup, progress=show)
    print(f"## Soak: {args.minutes:g} min mixed workload in a real kernel\n")
    print(report(result))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"minutes": result.minutes, "warmup": result.warmup, "ok": result.ok,
                 "samples": [asdict(s) for s in result.samples], "checks": [asdict(c) for c in result.checks]},
                indent=1,
            )
        )  # fmt: skip
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
