"""`blocking.block_on` without a kernel: the polled wait (ipykernel 6.x's route) and an interrupted wait.

What the polls do inside a kernel (widget messages handled during `%quiv wait`) is tested in a real kernel
in tests/test_kernel_controls.py; here a poll is a plain coroutine that records when it runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import WAIT

from quiv_nb import blocking
from quiv_nb.kernel import controls

REPO = Path(__file__).resolve().parent.parent


def test_comm_route_is_off_outside_a_kernel() -> None:
    loop = asyncio.new_event_loop()
    try:
        with controls.comm_messages_flow(loop) as poll:
            assert poll is None
    finally:
        loop.close()


def test_a_polled_wait_polls_on_the_loop_until_the_future_resolves() -> None:
    fut: concurrent.futures.Future[str] = concurrent.futures.Future()
    polled_on: list[threading.Thread] = []
    three_polls = threading.Event()

    async def poll() -> None:
        polled_on.append(threading.current_thread())
        if len(polled_on) == 3:
            three_polls.set()

    def resolver() -> None:  # a worker finishing the job once the wait has polled a few times
        if three_polls.wait(WAIT):
            fut.set_result("done")

    worker = threading.Thread(target=resolver, name="test-resolver")
    worker.start()
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(blocking._wait(fut, WAIT, loop, poll)) == "done"
    finally:
        loop.close()
        worker.join(WAIT)
    assert len(polled_on) >= 3 and set(polled_on) == {threading.current_thread()}


def test_a_polled_wait_times_out_and_gives_up_its_future() -> None:
    fut: concurrent.futures.Future[str] = concurrent.futures.Future()
    polls = []

    async def poll() -> None:
        polls.append(1)

    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(asyncio.TimeoutError):
            loop.run_until_complete(blocking._wait(fut, 0.2, loop, poll))
    finally:
        loop.close()
    assert fut.cancelled(), "the scheduler must see that nobody waits any more"
    assert len(polls) >= 2


# Run in a fresh interpreter: a wait on the loop's own thread applies nest-asyncio2, which patches asyncio for the
# whole process (its `asyncio.run` then leaves loops open), and later tests in this process must not inherit that.
_INTERRUPTED_WAIT = """
import asyncio, concurrent.futures
from quiv_nb import blocking

fut = concurrent.futures.Future()
loop = asyncio.new_event_loop()

def interrupt():
    raise KeyboardInterrupt

async def cell():  # a notebook cell blocking on a job, on the loop's own thread
    loop.call_later(0.05, interrupt)
    return blocking.block_on(fut, None, loop)

try:
    loop.run_until_complete(cell())
except KeyboardInterrupt:
    print("interrupted")
loop.run_until_complete(asyncio.sleep(0.01))  # the loop carries on after the interrupt
print("future cancelled:", fut.cancelled())
"""


def test_an_interrupted_wait_on_the_loop_thread_is_cancelled_not_left_pending() -> None:
    """A KeyboardInterrupt inside the nested run ends the wait; the wait must not resume later."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_WAIT], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["interrupted", "future", "cancelled:", "True"], done.stdout + done.stderr
