"""Import cost: `import quiv_nb` in a fresh interpreter vs the standard-library modules it needs.

    python benchmarks/bench_import.py [--rounds 40]

Each round starts one fresh subprocess per variant (interleaved, so load changes hit all alike):
- bare:     an interpreter that imports nothing (the RSS baseline);
- stdlib:   `import asyncio, concurrent.futures, threading` (what quiv_nb cannot do without);
- quiv_nb:  `import quiv_nb`;
- quiv 1.4: `import quiv`.
In each, `perf_counter()` around the import statement gives the time, and the peak RSS after it is
read two ways: `VmHWM` from /proc/self/status (the process's own high-water mark, used for the target)
and `resource.getrusage(RUSAGE_SELF).ru_maxrss`. On Linux ru_maxrss also keeps the high-water mark of
the image the child was exec'd from (the benchmark process itself, ~17 MiB here), so for a small
child it reports the parent's figure; it is shown for reference only. Medians over the rounds are
reported; the RSS increase is relative to the bare interpreter. Byte-code caches are written and warmed
first (PYTHONDONTWRITEBYTECODE is dropped for the children, as an installed package has its .pyc files).
A `-X importtime` run then lists the modules `import quiv_nb` loads beyond the stdlib set.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from _common import Target, machine_facts, median, parser, print_targets, table

SNIPPET = (
    "import resource, time\n"
    "t0 = time.perf_counter()\n"
    "{stmt}\n"
    "t1 = time.perf_counter()\n"
    "hwm = next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:'))\n"
    "print(t1 - t0, hwm, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
)
VARIANTS = {
    "bare interpreter": "pass",
    "stdlib: asyncio, concurrent.futures, threading": "import asyncio, concurrent.futures, threading",
    "quiv_nb": "import quiv_nb",
    "quiv 1.4": "import quiv",
}
STDLIB = "stdlib: asyncio, concurrent.futures, threading"
# Children may write byte-code caches (as an installed package has them): with
# PYTHONDONTWRITEBYTECODE set, a module edited since its .pyc was written is recompiled on every
# import, which measures the compiler, not the import.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(stmt: str) -> tuple[float, float, float]:
    """(seconds, VmHWM KiB, ru_maxrss KiB) of `stmt` in a fresh interpreter started from a neutral directory."""
    out = subprocess.run(
        [sys.executable, "-c", SNIPPET.format(stmt=stmt)],
        capture_output=True, text=True, check=True, cwd=tempfile.gettempdir(), env=_ENV,
    ).stdout.split()  # fmt: skip
    return float(out[0]), float(out[1]), float(out[2])


def extra_modules(limit: int = 15) -> list[tuple[str, int]]:
    """Modules (and their self import time, µs) that `import quiv_nb` loads beyond the stdlib set."""

    def run(stmt: str) -> dict[str, int]:
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", stmt],
            capture_output=True, text=True, check=True, cwd=tempfile.gettempdir(), env=_ENV,
        ).stderr  # fmt: skip
        mods: dict[str, int] = {}
        for line in err.splitlines():
            if line.startswith("import time:") and "|" in line and "self" not in line:
                self_us, _, name = line[len("import time:") :].split("|")
                mods[name.strip()] = int(self_us)
        return mods

    base = run(VARIANTS[STDLIB])
    ours = run(VARIANTS["quiv_nb"])
    extra = [(name, us) for name, us in ours.items() if name not in base]
    return sorted(extra, key=lambda x: -x[1])[:limit]


def main(argv: list[str] | None = None) -> list[Target]:
    p = parser(__doc__.splitlines()[0], rounds=40)
    args = p.parse_args(argv)
    for stmt in VARIANTS.values():  # warm byte-code caches
        measure(stmt)
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in VARIANTS}
    for r in range(args.rounds):
        for name, stmt in VARIANTS.items():
            results[name].append(measure(stmt))
        if (r + 1) % 10 == 0:
            print(f"  round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
    t = {name: median([v[0] for v in vs]) for name, vs in results.items()}
    rss = {name: median([v[1] for v in vs]) for name, vs in results.items()}
    maxrss = {name: median([v[2] for v in vs]) for name, vs in results.items()}
    base_rss, std = rss["bare interpreter"], t[STDLIB]
    rows = [
        [name, f"{t[name] * 1e3:.2f} ms", "—" if name == "bare interpreter" else f"{t[name] / std:.2f}x",
         f"{rss[name] / 1024:.1f} MiB", f"{(rss[name] - base_rss) / 1024:+.1f} MiB",
         f"{maxrss[name] / 1024:.1f} MiB", f"{(maxrss[name] - maxrss['bare interpreter']) / 1024:+.1f} MiB"]
        for name in VARIANTS
    ]  # fmt: skip
    print(f"## Import: fresh interpreter per measurement, {args.rounds} rounds, medians\n")
    print(machine_facts())
    print()
    headers = ["import", "median time", "vs stdlib set", "peak RSS (VmHWM)", "VmHWM vs bare", "ru_maxrss",
               "ru_maxrss vs bare"]  # fmt: skip
    print(table(headers, rows))
    print("\nModules `import quiv_nb` adds beyond the stdlib set (self time, one `-X importtime` run):\n")
    print(table(["module", "self µs"], extra_modules()))
    ours_t, ours_rss = t["quiv_nb"], (rss["quiv_nb"] - base_rss) / 1024
    q14 = f"quiv 1.4: {t['quiv 1.4'] / std:.2f}x, {(rss['quiv 1.4'] - base_rss) / 1024:+.1f} MiB"
    targets = [
        Target("import quiv_nb ≤ 1.3x stdlib set", f"{ours_t / std:.2f}x ({ours_t * 1e3:.1f} vs {std * 1e3:.1f} ms)",
               "≤ 1.30x", ours_t <= 1.3 * std, q14),
        Target("import quiv_nb RSS increase vs bare", f"{ours_rss:+.1f} MiB", "< 20 MiB", ours_rss < 20),
    ]  # fmt: skip
    print_targets(targets)
    return targets


if __name__ == "__main__":
    main()
