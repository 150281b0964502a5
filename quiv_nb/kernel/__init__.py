"""The kernel adapter: the only part of quiv_nb that detects and touches IPython and ipykernel.

It binds the kernel's one scheduler to the kernel's event loop (`lifecycle`), sends each job's
output to the cell that added its task (`routing`), lets widget clicks act while a cell is busy
(`controls`), and quiesces quiv_nb when the kernel exits (`lifecycle`). Every version-dependent
branch lives in these modules and names the version it is for. The package facade imports this
package as soon as quiv_nb is imported inside a kernel, so a plain `quiv_nb.Quiv()` in a notebook
routes output too; the core learns about the kernel only through the registries in `hooks` that
this module fills on import.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from ..hooks import (
    register_capability_probe,
    register_context_capturer,
    register_loop_resolver,
    register_notify_attacher,
    register_wait_helper,
)
from .capabilities import detect as detect_capabilities
from .controls import answer_on_sender_shell, comm_messages_flow
from .lifecycle import (
    SHUTDOWN_TIMEOUT,
    current_scheduler,
    get_scheduler,
    register_exit_handler,
    reset_scheduler,
    use_executor,
)
from .routing import capture_cell_parent, follow_job_output
from .shell import cell_id, cell_source, in_kernel, ipython, kernel_loop, request_id
from .storepath import choose as choose_store
from .storepath import store_path

__all__ = [
    "SHUTDOWN_TIMEOUT",
    "answer_on_sender_shell",
    "cell_id",
    "cell_source",
    "choose_store",
    "current_scheduler",
    "detect_capabilities",
    "follow_job_output",
    "get_scheduler",
    "in_kernel",
    "ipython",
    "kernel_loop",
    "request_id",
    "reset_scheduler",
    "store_path",
    "use_executor",
]


def _kernel_loop_resolver() -> asyncio.AbstractEventLoop | None:
    return kernel_loop()


def _show_notify_widget(scheduler: Any, task_id: str, since: datetime) -> None:
    """`add_task(..., notify=True)` (API or `--notify` magic): the notify widget in the adding cell.

    Runs on the adding thread; `attach` does nothing outside a kernel. Imported here, not at the
    top: the render layer (and anywidget, on first use) loads only when a task asks to notify.
    """
    from ..render.notify import attach

    attach(scheduler, task_id, since=since)


register_capability_probe(detect_capabilities)
register_context_capturer(capture_cell_parent)
register_notify_attacher(_show_notify_widget)
register_loop_resolver(_kernel_loop_resolver)
register_wait_helper(comm_messages_flow)
if in_kernel():
    # Imported by the package inside a kernel: quiesce at exit even if only plain `Quiv()`s
    # and bars are used (their bars draw on the process-wide pump too).
    register_exit_handler()
