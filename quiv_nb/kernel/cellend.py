"""The end of a notebook cell: the final states of bars whose jobs ended are drawn inside it.

A job that ends while its cell still runs (a `wait_for_job`, `%quiv wait`, a cached step that
ends at once) has asked the render pump for its bar's final draw, but the pump draws on its own
thread within a message budget, and a draw that arrives after the cell ended is lost to a
headless run (nbclient, papermill, `python -m quiv_nb demo --notebook`: they save what the cell
held when it ended, so the bar would say "waiting"). IPython's `post_run_cell` runs on the main
thread before the kernel replies, so waiting there for the queued final draws puts them in the
cell. Redraws of bars still running are not waited for.
"""

from __future__ import annotations

import logging
from typing import Any

from ..render.pump import current_pump
from .shell import in_kernel, ipython

__all__ = ["FINAL_DRAWS_TIMEOUT", "draw_finals_at_cell_end"]

_log = logging.getLogger("quiv_nb")

FINAL_DRAWS_TIMEOUT = 5.0  # seconds a cell's end waits at most for final draws (hundreds of bars at once)
_registered = False


def draw_finals_at_cell_end() -> None:
    """Register `_draw_finals` on the shell's `post_run_cell` once (main thread; nothing outside a kernel)."""
    global _registered
    if _registered or not in_kernel():
        return
    shell = ipython()
    events = getattr(shell, "events", None)
    if events is None:
        return
    events.register("post_run_cell", _draw_finals)
    _registered = True


def _draw_finals(result: Any = None) -> None:
    """`post_run_cell` (main thread): wait until the pump has drawn every final state requested so far."""
    pump = current_pump()
    if pump is None or pump.closed:
        return
    try:
        pump.flush(FINAL_DRAWS_TIMEOUT, finals_only=True)
    except Exception:  # never raise into IPython's cell machinery
        _log.exception("quiv_nb: drawing finished bars at the end of the cell failed")
