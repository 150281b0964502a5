"""What this kernel can do, detected once: widget generation, comm subshells, anywidget, Colab.

The one place that looks at installed versions; render code reads the answer through
`hooks.capabilities()` (the kernel package registers `detect` there), never by checking versions
itself. Detection imports nothing new when it can help it: ipywidgets' and anywidget's versions
are read from installed package metadata, so asking costs no widget import. Any thread.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from importlib import metadata

from ..hooks import Capabilities

__all__ = ["clear_output_takes_hooks", "detect"]


def _major(dist: str) -> int | None:
    """The installed distribution's major version, or None when it is not installed."""
    try:
        return int(metadata.version(dist).split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return None


def _has(module: str) -> bool:
    if module in sys.modules:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken parent package, or a stub module without a spec
        return False


@functools.cache
def detect() -> Capabilities:
    """This process's capabilities (cached: versions do not change while a kernel runs). Any thread.

    `subshells` is ipykernel >= 7 (JEP 91 kernel subshells; 6.x handles every shell message on the
    main thread, behind the running cell).
    """
    widgets = _major("ipywidgets") if _has("ipywidgets") else None
    kernel = _major("ipykernel")
    return Capabilities(
        widgets=widgets,
        subshells=kernel is not None and kernel >= 7,
        anywidget=_has("anywidget"),
        colab=_has("google.colab"),
    )


@functools.cache
def clear_output_takes_hooks() -> bool:
    """Whether ipykernel's display publisher offers `clear_output` to its display hooks (>= 6.25).

    Older kernels (Colab's 6.17) send it straight to the socket under the publisher's current parent,
    so a job's `clear_output(wait=True)` would bypass its cell route (`routing` routes it itself there).
    """
    try:
        major, minor = (int(part) for part in metadata.version("ipykernel").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return True
    return (major, minor) >= (6, 25)
