"""Stress: the kernel-restart test N times in a row while two busy processes load both cores.

    python benchmarks/stress_restart.py [--runs 50] [--busy 2]

Runs `tests/test_faults.py::test_kernel_restart_with_running_jobs_lets_the_old_process_exit_promptly`
`--runs` times (each run: a fresh kernel with four running jobs, two of which ignore their stop
event, restarted; the old process must exit by itself with code 0 — a libzmq abort at exit is -6).
`--busy` processes spin on the CPU for the whole run (started here, killed by PID at the end,
also on Ctrl-C). Prints one line per run and the tally; exits 1 if any run failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--busy", type=int, default=2, help="CPU-spinning processes to run alongside")
    args = parser.parse_args()
    sys.path.insert(0, str(TESTS))
    import test_faults

    test = test_faults.test_kernel_restart_with_running_jobs_lets_the_old_process_exit_promptly
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    failures: list[str] = []
    started = time.monotonic()
    try:
        for run in range(1, args.runs + 1):
            t0 = time.monotonic()
            try:
                test()
                verdict = "ok"
            except Exception as exc:  # an assertion (exit code -6, a kill, a slow exit) or a harness error
                verdict = f"FAILED: {type(exc).__name__}: {exc}".splitlines()[0]
                failures.append(f"run {run}: {verdict}")
            print(f"run {run:3d}/{args.runs}: {verdict} ({time.monotonic() - t0:.1f} s)", flush=True)
    finally:
        for proc in busy:
            proc.kill()
        for proc in busy:
            proc.wait(30)
    total = time.monotonic() - started
    print(f"\n{args.runs - len(failures)}/{args.runs} runs passed with {args.busy} busy processes, {total:.0f} s")
    for line in failures:
        print("  " + line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
