"""Where the kernel is: the running IPython shell, the kernel's loop, the request being executed.

The one place that detects IPython (`ipython()`, `in_kernel()`); everything else in quiv_nb asks
here. Never imports IPython when nothing else has. Every function is safe from any thread.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

__all__ = ["cell_id", "cell_source", "in_kernel", "ipython", "kernel_loop", "request_id"]


def ipython() -> Any:
    """The running IPython shell, or None; never imports IPython if nothing else has. Any thread."""
    module = sys.modules.get("IPython")
    if module is None:
        return None
    try:
        return module.get_ipython()
    except Exception:  # a half-imported or stubbed IPython: not a shell we can use
        return None


def in_kernel() -> bool:
    """True inside an IPython kernel (Jupyter, VS Code, Colab), where widgets can show. Any thread.

    Checked like tqdm.autonotebook: a `ZMQInteractiveShell` (by class name, so ipykernel is never
    imported here), or any shell with a kernel attached.
    """
    shell = ipython()
    if shell is None:
        return False
    if any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__):
        return True
    return getattr(shell, "kernel", None) is not None


def _request() -> dict[str, Any]:
    """The execute request the kernel is running now ({} outside one)."""
    shell = ipython()
    return (shell.get_parent() if hasattr(shell, "get_parent") else None) or {}


def cell_id() -> str | None:
    """The notebook cell id of the running request (JupyterLab >= 3 and Notebook 7 send it as
    `cellId` in the execute request's metadata), or None."""
    return _request().get("metadata", {}).get("cellId") or None


def cell_source() -> str:
    """The code of the running request as the frontend sent it ("" outside one)."""
    return _request().get("content", {}).get("code") or ""


def request_id() -> str | None:
    """The msg_id of the running execute request (one per cell run), or None."""
    return _request().get("header", {}).get("msg_id") or None


def kernel_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop the kernel runs on.

    ipykernel >= 6 runs tornado on asyncio: `kernel.io_loop.asyncio_loop` is that loop.
    """
    kernel = getattr(ipython(), "kernel", None)
    io_loop = getattr(kernel, "io_loop", None)
    loop = getattr(io_loop, "asyncio_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) and not loop.is_closed() else None
