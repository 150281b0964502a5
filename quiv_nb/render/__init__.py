"""Progress renderers: `bar()` returns a thread-safe callback that draws a live progress bar.

Pass it as `progress_callback` to `quiv_nb.Quiv.add_task` (each job gets a fresh run of the bar)
or to any scheduler that calls `callback(*args, **payload)`. Handlers report with the payload
conventions of docs/design.md (`step`, `total`, `pct`, `stage`, extra keys as a postfix). Recording a
payload costs O(1) on the worker; one render pump thread per process (`pump.py`) draws every bar
at most ~10 times a second within a shared message budget. ipywidgets and tqdm load here only
when a bar of that kind is created.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from ..errors import ConfigurationError
from ..hooks import install_host
from .base import BarRenderer

__all__ = ["KINDS", "BarRenderer", "bar"]

KINDS = ("auto", "widget", "tqdm", "text")
_COMMON = frozenset({"desc", "label", "total", "unit", "leave", "min_interval"})
_OPTIONS = {
    "widget": _COMMON | {"display"},
    "tqdm": _COMMON | {"file"},
    "text": _COMMON | {"file"},
}
_OPTIONS["auto"] = _OPTIONS["widget"] | _OPTIONS["tqdm"]


def bar(kind: str = "auto", **options: Any) -> BarRenderer:
    """A progress renderer to pass as `progress_callback`.

    `kind`: "auto" (a widget bar inside an IPython kernel with ipywidgets, else tqdm), "widget",
    "tqdm" or "text". Options: `desc` (alias `label`), `total`, `unit` ("it"), `leave` (True: keep
    the final state on screen), `min_interval` (0.1 s between redraws); `file` (text and tqdm,
    default `sys.stderr`); `display` (widget: show it in the current cell; default: when in a
    kernel). Called on the thread of the caller; a widget bar is displayed in the cell that
    creates it. Raises `ConfigurationError` for an unknown kind or option or a bad option value.
    """
    if not isinstance(kind, str) or kind not in KINDS:
        allowed = ", ".join(repr(k) for k in KINDS)
        raise ConfigurationError(f"bar kind must be one of {allowed}; got {kind!r}")
    allowed_options = _OPTIONS[kind]
    unknown = sorted(set(options) - allowed_options)
    if unknown:
        raise ConfigurationError(
            f"bar({kind!r}) got unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed_options))}"
        )
    install_host()  # inside a kernel process: the kernel's hooks (its exit quiesces this bar's pump)
    if kind == "auto":
        kind = _auto_kind()
    common = _common_options(options)
    if kind == "widget":
        from .widget import WidgetBar

        display = options.get("display")
        if display is not None and not isinstance(display, bool):
            raise ConfigurationError(f"bar option display must be True, False or None; got {display!r}")
        return WidgetBar(display=display, **common)
    file = options.get("file")
    if file is not None and not callable(getattr(file, "write", None)):
        raise ConfigurationError(f"bar option file must be a writable text stream; got {type(file).__name__}")
    if kind == "tqdm":
        from .text import TqdmBar

        return TqdmBar(file=file, **common)
    from .text import TextBar

    return TextBar(file=file, **common)


def _auto_kind() -> str:
    """The kind "auto" means: "widget" inside a kernel with ipywidgets importable, else "tqdm"."""
    from .widget import in_kernel

    if not in_kernel():
        return "tqdm"
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return "tqdm"
    return "widget"


def _common_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options every kind takes, validated (ConfigurationError names the option and what is allowed)."""
    if "desc" in options and "label" in options:
        raise ConfigurationError("bar options desc and label are aliases; pass only one")
    desc = options.get("desc", options.get("label"))
    if desc is not None and not isinstance(desc, str):
        raise ConfigurationError(f"bar option desc must be a string; got {type(desc).__name__}")
    total = options.get("total")
    if total is not None and not _real(total, lambda x: x > 0):
        raise ConfigurationError(f"bar option total must be a finite number > 0 or None; got {total!r}")
    unit = options.get("unit", "it")
    if not isinstance(unit, str) or not unit.strip():
        raise ConfigurationError(f"bar option unit must be a non-empty string; got {unit!r}")
    leave = options.get("leave", True)
    if not isinstance(leave, bool):
        raise ConfigurationError(f"bar option leave must be True or False; got {leave!r}")
    min_interval = options.get("min_interval", 0.1)
    if not _real(min_interval, lambda x: x >= 0):
        raise ConfigurationError(f"bar option min_interval must be finite seconds >= 0; got {min_interval!r}")
    return {"desc": desc or "", "total": total, "unit": unit, "leave": leave, "min_interval": float(min_interval)}


def _real(x: Any, ok: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x) and ok(x)
