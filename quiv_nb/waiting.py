"""Blocking waits that keep the main loop turning.

A notebook cell runs *on* the kernel's event loop, so a cell that blocks on a job would freeze
every main-loop progress callback until it returns. When `wait_for_job` is called on the thread
that runs the main loop, we instead run that loop re-entrantly until the job's future resolves.
Re-entrancy comes from nest-asyncio2 (the maintained nest-asyncio fork that ipykernel already
depends on); it is applied lazily, the first time such a wait happens, and only to that loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import weakref
from typing import TypeVar

__all__ = ["block_on"]

T = TypeVar("T")

_patched: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def _make_reentrant(loop: asyncio.AbstractEventLoop) -> None:
    """Patch `loop` (once) so `run_until_complete` may be called while it is already running."""
    if loop in _patched:
        return
    import nest_asyncio2

    nest_asyncio2.apply(loop)
    _patched.add(loop)


def block_on(
    future: concurrent.futures.Future[T],
    timeout: float | None,
    loop: asyncio.AbstractEventLoop | None,
) -> T:
    """Wait for `future`; when `loop` runs on this thread, keep it turning meanwhile.

    Raises the builtin `TimeoutError` when `timeout` passes first.
    """
    if loop is None or future.done():
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"still not done after {timeout}s") from None
    _make_reentrant(loop)

    async def wait() -> T:
        return await asyncio.wait_for(asyncio.wrap_future(future, loop=loop), timeout)

    try:
        return loop.run_until_complete(wait())
    except asyncio.TimeoutError:
        raise TimeoutError(f"still not done after {timeout}s") from None
