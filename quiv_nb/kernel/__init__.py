"""The kernel adapter: the only part of quiv_nb that detects and touches IPython and ipykernel.

It binds the kernel's one scheduler to the kernel's event loop (`session`), sends each job's
output to the cell that added its task (`routing`), lets widget clicks act while a cell is busy
(`controls`), and quiesces quiv_nb when the kernel exits (`session`). Every version-dependent
branch lives in these modules and names the version it is for. Importing it registers nothing:
`install()` fills the registries in `hooks` (the core and render learn about the kernel only
through them). `quiv_nb.get_scheduler()`, `%load_ext quiv_nb` and, inside a kernel process,
`Quiv()` / `quiv_nb.bar()` (through `hooks.install_host`) call it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..hooks import (
    register_before_exit,
    register_capability_probe,
    register_context_capturer,
    register_exit_start,
    register_host,
    register_loop_resolver,
    register_notify_attacher,
    register_view_recorder,
    register_wait_helper,
)
from ..render.base import interrupt_running
from ..render.pump import close_pump
from .afterlife import record_view, reopen_orphans, write_last_views
from .capabilities import detect as detect_capabilities
from .cellend import draw_finals_at_cell_end
from .controls import answer_on_sender_shell, comm_messages_flow
from .routing import capture_cell_parent, follow_job_output
from .session import (
    SHUTDOWN_TIMEOUT,
    current_scheduler,
    register_exit_handler,
    reset_scheduler,
    use_executor,
)
from .session import get_scheduler as _get_scheduler
from .shell import cell_id, cell_source, in_kernel, ipython, kernel_loop, request_id
from .storepath import choose as choose_store
from .storepath import store_path

if TYPE_CHECKING:
    from ..scheduler import Quiv

__all__ = [
    "SHUTDOWN_TIMEOUT",
    "KernelHost",
    "answer_on_sender_shell",
    "cell_id",
    "cell_source",
    "choose_store",
    "current_scheduler",
    "detect_capabilities",
    "follow_job_output",
    "get_scheduler",
    "in_kernel",
    "install",
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
    from ..render.notify import attach, end_all

    register_exit_start(end_all)  # notifiers end "kernel restarted" (and so on) at kernel exit
    attach(scheduler, task_id, since=since)


class KernelHost:
    """The kernel as render sees it (`seams.Host`): every method delegates to this package."""

    @staticmethod
    def in_kernel() -> bool:
        return in_kernel()

    @staticmethod
    def ipython() -> Any:
        return ipython()

    @staticmethod
    def answer_on_sender_shell(widget: Any) -> None:
        answer_on_sender_shell(widget)

    @staticmethod
    def get_scheduler() -> Any:
        return get_scheduler()


_installed = False


def install() -> None:
    """Fill the core's and render's registries in `hooks` with this kernel's (idempotent; any thread).

    Registers the capability probe (`kernel.capabilities`), the cell-output capturer, the
    kernel-loop resolver, the notify attacher, the comm-flowing wait helper, the `KernelHost` and
    the render pump's kernel-exit step; inside a running kernel also the kernel-exit handler, the
    exit-start step that ends running bars as interrupted (`render.base.interrupt_running`) and
    the cell-end wait for final bar draws (`kernel.cellend`), the recorder of each bar's afterlife,
    and it reopens the bars this notebook's dead kernels left (`kernel.afterlife`). Returns None.
    """
    global _installed
    if _installed:
        return
    _installed = True
    register_capability_probe(detect_capabilities)
    register_context_capturer(capture_cell_parent)
    register_notify_attacher(_show_notify_widget)
    register_loop_resolver(_kernel_loop_resolver)
    register_wait_helper(comm_messages_flow)
    register_before_exit(close_pump)
    register_host(KernelHost())
    if in_kernel():
        # Quiesce at exit even if only plain `Quiv()`s and bars are used (their bars draw on
        # the process-wide pump too).
        register_exit_handler()
        register_exit_start(interrupt_running)  # a running job's bar ends "interrupted (kernel restarted)"
        draw_finals_at_cell_end()  # a headless run keeps the final bars of the jobs a cell waited for
        register_view_recorder(record_view)
        register_before_exit(write_last_views)  # after `close_pump`: the last draws' renderings
        reopen_orphans()  # after a kernel death: the dead kernel's bars read "interrupted (kernel died)"


def get_scheduler() -> Quiv:
    """The kernel's one scheduler, with this package's hooks installed first (see `session.get_scheduler`)."""
    install()
    return _get_scheduler()
