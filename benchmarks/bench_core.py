"""All core benchmarks (issue 2) in one run, then one PASS/MISS summary.

    python benchmarks/bench_core.py            # full: ~3-4 minutes on 2 cores
    python benchmarks/bench_core.py --quick    # fewer rounds, no quiv 1.4 one-shot run: ~1 minute

Runs, in this order and in this one process: bench_oneshot, bench_hooks, bench_timing, bench_import
(the import benchmark starts its own fresh interpreters). Each prints its own tables; see those
scripts for what exactly is measured.
"""

from __future__ import annotations

import argparse

import bench_hooks
import bench_import
import bench_oneshot
import bench_timing
from _common import machine_facts, table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run, not for RESULTS.md)")
    args = p.parse_args()
    q = args.quick
    sections = [
        ("one-shot throughput", bench_oneshot.main, ["--rounds", "3", "--quiv-rounds", "0"] if q else []),
        ("progress hooks", bench_hooks.main, ["--rounds", "2", "-n", "30000"] if q else []),
        ("timing", bench_timing.main, ["--rounds", "1", "--seconds", "2"] if q else []),
        ("import", bench_import.main, ["--rounds", "10"] if q else []),
    ]
    summary = []
    for name, fn, argv in sections:
        print(f"\n# {name}\n", flush=True)
        for t in fn(argv):
            summary.append([name, *t.row()])
    print("\n# Summary (issue 2 targets)\n")
    print(machine_facts())
    print()
    print(table(["benchmark", "target", "measured (median)", "bound", "verdict", "note"], summary))


if __name__ == "__main__":
    main()
