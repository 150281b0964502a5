"""Blocking waits that keep the main loop turning.

A notebook cell runs *on* the kernel's event loop, so a cell that blocks on a job would freeze
every main-loop progress callback until it returns. When `wait_for_job` is called on the thread
that runs the main loop, we instead run that loop re-entrantly until the job's future resolves.
Re-entrancy comes from nest-asyncio2 (the maintained nest-asyncio fork that ipykernel already
depends on); it is applied lazily, the first time such a wait happens. Its effect is process-wide,
not limited to that loop: it patches the loop's class and `asyncio.run`, and swaps in the
pure-Python `Task`/`Future` (nest-asyncio2 1.7, Python < 3.14), as ipykernel's own use of it does.
While such a wait blocks, widget (comm) messages are handled too, so dashboard buttons act during
`%quiv wait`; the per-ipykernel details are in `quiv_nb.kernel.controls.comm_messages_flow`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import weakref
from contextlib import nullcontext
from typing import TYPE_CHECKING, TypeVar

from .hooks import wait_helper

if TYPE_CHECKING:
    from .hooks import Poll

__all__ = ["POLL_INTERVAL", "block_on"]

T = TypeVar("T")

POLL_INTERVAL = 0.05  # seconds between two widget-message polls while a wait blocks (ipykernel 6.x)

_patched: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_unpatchable: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def _make_reentrant(loop: asyncio.AbstractEventLoop) -> bool:
    """Patch `loop` (once) so `run_until_complete` may be called while it is already running.

    Returns False for a loop nest-asyncio2 cannot patch (e.g. uvloop): the wait then simply
    blocks, as a plain `Future.result()` would.
    """
    if loop in _patched:
        return True
    import nest_asyncio2

    try:
        nest_asyncio2.apply(loop)
    except Exception:
        logging.getLogger("quiv_nb").warning(
            "quiv_nb: cannot run %r re-entrantly; main-loop callbacks pause while this wait blocks", loop
        )
        _unpatchable.add(loop)
        return False
    _patched.add(loop)
    return True


def block_on(
    future: concurrent.futures.Future[T],
    timeout: float | None,
    loop: asyncio.AbstractEventLoop | None,
) -> T:
    """Wait for `future`; when `loop` runs on this thread, keep it turning meanwhile.

    Runs on the calling thread. With `loop` (the kernel loop, running on this thread) the loop
    turns re-entrantly until `future` resolves, so main-loop callbacks keep flowing, and widget
    (comm) messages are handled meanwhile (the kernel package registers that through
    `hooks.register_wait_helper`), so a dashboard click acts during the wait. Returns the
    future's result or raises its exception; raises the builtin `TimeoutError` when `timeout`
    passes first; a KeyboardInterrupt ends the wait, not the job.
    """
    if timeout is not None and timeout >= threading.TIMEOUT_MAX:  # else OverflowError; it means "forever"
        timeout = None
    if loop is None or future.done() or loop in _unpatchable or not _make_reentrant(loop):
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"still not done after {timeout}s") from None

    helper = wait_helper()
    with helper(loop) if helper is not None else nullcontext() as poll:
        task = loop.create_task(_wait(future, timeout, loop, poll))
        try:
            return loop.run_until_complete(task)
        except asyncio.TimeoutError:
            raise TimeoutError(f"still not done after {timeout}s") from None
        finally:
            # An interrupt (KeyboardInterrupt) leaves the nested run with the wait still pending:
            # cancel it, so the outer loop does not resume a wait nobody reads any more.
            task.cancel()


async def _wait(
    future: concurrent.futures.Future[T],
    timeout: float | None,
    loop: asyncio.AbstractEventLoop,
    poll: Poll | None,
) -> T:
    """Await `future` on `loop`; with a `poll`, call it every `POLL_INTERVAL` seconds meanwhile."""
    waited = asyncio.wrap_future(future, loop=loop)
    if poll is None:
        return await asyncio.wait_for(waited, timeout)
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        await poll()
        left = POLL_INTERVAL if deadline is None else min(POLL_INTERVAL, deadline - loop.time())
        if left <= 0:
            waited.cancel()
            raise asyncio.TimeoutError
        done, _ = await asyncio.wait({waited}, timeout=left)
        if done:
            return waited.result()
