"""Shared helpers for the core benchmarks: rounds, medians, machine facts, markdown tables.

Every benchmark runs quiv_nb and its peers in one process, repeats each measurement for a
few rounds (other work shares this machine) and reports the median, never the best case.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

__all__ = [
    "Target",
    "fmt_ms",
    "fmt_us",
    "machine_facts",
    "median",
    "parser",
    "print_targets",
    "quiet_peers",
    "repeat",
    "table",
]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def repeat(fn: Callable[[], float], rounds: int, label: str) -> list[float]:
    """Call `fn()` `rounds` times; each call returns one measured figure. Prints progress to stderr."""
    out = []
    for i in range(rounds):
        value = fn()
        out.append(value)
        print(f"  {label}: round {i + 1}/{rounds}: {value:.6g}", file=sys.stderr, flush=True)
    return out


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f} µs"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_facts() -> str:
    """nproc, CPU, Python and package versions, as a markdown list."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    return "\n".join(
        [
            f"- nproc: {usable} (os.cpu_count() = {os.cpu_count()}), CPU: {cpu}",
            f"- Python {platform.python_version()} ({platform.python_implementation()}), {platform.platform()}",
            f"- quiv_nb {_version('quiv_nb')}, quiv {_version('quiv')}, APScheduler {_version('APScheduler')}",
            f"- load average at start: {load}",
            f"- switch interval: {sys.getswitchinterval() * 1e3:g} ms",
        ]
    )


class Target:
    """One target line: what was compared, the measured figure, the bound, and PASS/MISS."""

    def __init__(self, name: str, measured: str, bound: str, ok: bool, note: str = "") -> None:
        self.name, self.measured, self.bound, self.ok, self.note = name, measured, bound, ok, note

    def row(self) -> list[str]:
        return [self.name, self.measured, self.bound, "PASS" if self.ok else "MISS", self.note]


def print_targets(targets: Sequence[Target]) -> None:
    print()
    print(table(["target", "measured (median)", "bound", "verdict", "note"], [t.row() for t in targets]))
    print()


def quiet_peers() -> None:
    """quiv 1.4 and APScheduler log every job at INFO/WARNING; keep the benchmark output readable."""
    for name in ("Quiv", "quiv", "apscheduler"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def parser(description: str, rounds: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--rounds", type=int, default=rounds, help=f"rounds per measurement (default {rounds}); median reported"
    )
    return p


def now() -> float:
    return time.perf_counter()


class LoopThread:
    """An asyncio loop running forever on a daemon thread (stand-in for a kernel's or an app's loop)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="bench-main-loop", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


def finisher(n: int) -> tuple[threading.Event, Callable[..., None]]:
    """An event set by the n-th call of the returned listener (itertools.count is atomic in CPython)."""
    done = threading.Event()
    count = itertools.count(1)

    def listener(*_: object) -> None:
        if next(count) == n:
            done.set()

    return done, listener
