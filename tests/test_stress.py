"""Kernel-exit races, repeated under CPU load, so a race that fails one run in a few fails CI.

Each test starts two busy-looping processes (both cores of a CI box; killed by PID in a
`finally`, even when the test fails), then repeats, 20 times, a kernel exit with jobs running:
a restart, or a graceful shutdown, of a kernel whose scheduler runs jobs that ignore their stop
event (one of them printing all the time) and jobs that honour it, with widget bars. The verdict
does not depend on timing:

- every old kernel ends by itself with exit code 0 (a libzmq abort is -6, a kill -9 / -15);
- an in-kernel probe (`EXIT_PROBE`) records every iopub send from a quiv_nb thread and the moment
  quiv_nb's exit handler returned: no send may come after it. That order is what makes the
  abort impossible, and it is checked every time, however the scheduling falls.

The kernel's `SHUTDOWN_TIMEOUT` is set to 0.5 s so that abandoning the stubborn jobs (the path
that draws their final bars at the very end of the exit) costs half a second, not three.
Recorded in benchmarks/RESULTS.md: `python -m pytest tests/test_stress.py` takes 1-2.5 minutes here.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel_harness import KernelSession
from test_faults import CHATTY_JOB, EXIT_PROBE, RESTART_SETUP

pytestmark = [pytest.mark.slow, pytest.mark.kernel, pytest.mark.timeout(900)]

ROUNDS = 20
FAST_EXIT = "import quiv_nb.kernel.session as session; session.SHUTDOWN_TIMEOUT = 0.5"
JOBS = ("s1", "s2", "p1", "p2")


@pytest.fixture
def busy_cores() -> Iterator[list[int]]:
    """Two processes spinning on the CPU for the whole test; stopped by PID afterwards."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(30)


def _start_jobs(session: KernelSession, probe: Path) -> None:
    """Probe first (its atexit marker must be registered before quiv_nb's), then the jobs."""
    since = session.mark()
    session.run(EXIT_PROBE.format(path=str(probe)))
    session.run(RESTART_SETUP + CHATTY_JOB + "\n" + FAST_EXIT)
    session.wait_for(
        lambda: all(f"RUNNING {n}" in session.output_text(since=since) for n in JOBS),
        timeout=60,
        what="all four jobs to run",
    )


def _verdict(round_: int, returncode: int | None, probe: Path) -> list[str]:
    """What went wrong in one round (nothing: an empty list)."""
    problems = []
    if returncode != 0:
        problems.append(f"round {round_}: the old kernel ended with exit code {returncode}")
    lines = probe.read_text().splitlines() if probe.exists() else []
    if "EXIT-HANDLER-DONE" not in lines:
        problems.append(f"round {round_}: quiv_nb's exit handler never returned")
    late = [line for line in lines if line.startswith("LATE")]
    if late:
        problems.append(f"round {round_}: {len(late)} iopub send(s) after the exit handler: {late[:3]}")
    return problems


def test_kernel_restart_with_running_jobs_20_times_under_load(busy_cores: list[int], tmp_path: Path) -> None:
    session = KernelSession()
    problems: list[str] = []
    try:
        for round_ in range(ROUNDS):
            probe = tmp_path / f"restart-{round_}.txt"
            _start_jobs(session, probe)
            popen = session.km.provisioner.process
            session.km.shutdown_wait_time = 60  # a kill would come only after this: the exit is the kernel's own
            session.restart(now=False, timeout=120)
            problems += _verdict(round_, popen.wait(120), probe)
    finally:
        session.shutdown()
    assert problems == []


def test_graceful_shutdown_with_running_jobs_20_times_under_load(busy_cores: list[int], tmp_path: Path) -> None:
    problems: list[str] = []
    for round_ in range(ROUNDS):
        probe = tmp_path / f"shutdown-{round_}.txt"
        session = KernelSession(startup_timeout=120)
        try:
            _start_jobs(session, probe)
            popen = session.km.provisioner.process
            session.km.shutdown_wait_time = 60
            session.km.shutdown_kernel(now=False)
            problems += _verdict(round_, popen.wait(120), probe)
        finally:
            session.shutdown()
    assert problems == []
