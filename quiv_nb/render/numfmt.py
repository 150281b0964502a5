"""Numbers and text for bars, pure and never raising: clocks, rates, values, one-line labels.

Split from `render.state` (which applies payloads to a `BarState`), so each stays one job; tqdm's
`format_interval` / `format_sizeof` are the model.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["as_number", "clean_text", "compact", "finite", "format_interval", "format_number", "format_rate", "si"]

CONTROL = dict.fromkeys([*range(32), *range(127, 160)], " ")  # C0 and C1 control characters -> spaces


def format_interval(seconds: float | None) -> str:
    """Seconds as a clock, `MM:SS` or `H:MM:SS` (`?` when unknown)."""
    if seconds is None or not finite(seconds) or seconds >= 1e8:  # beyond ~3 years an ETA means nothing
        return "?"
    minutes, secs = divmod(int(max(0.0, seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"



def format_rate(rate: float | None, unit: str = "it") -> str:
    """`12.30it/s`, `1.23kit/s`, or `2.50s/it` below one unit per second (`?it/s` when unknown)."""
    if rate is None or not finite(rate) or rate <= 1e-9:
        return f"?{unit}/s"
    if rate < 1.0:
        return f"{si(1.0 / rate)}s/{unit}"
    return f"{si(rate)}{unit}/s"



def format_number(x: float) -> str:
    """A value or total: integers as such, other numbers to 3 significant digits."""
    if not finite(x):
        return "?"
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return compact(f"{x:.3g}")
    return f"{x:.2f}".rstrip("0").rstrip(".")



def clean_text(obj: Any, limit: int) -> str:
    """`obj` as one line of at most `limit` characters: control characters become spaces,
    whitespace runs collapse, the cut is marked with `…`; never raises."""
    try:
        if isinstance(obj, str):
            text = obj
        elif isinstance(obj, bytes):
            text = obj[: 4 * limit + 8].decode("utf-8", "replace")
        else:
            text = str(obj)
            if not isinstance(text, str):
                return "?"
        head = text[: 4 * limit + 8]  # bounded work for a 1 MB string
        out = " ".join(head.translate(CONTROL).split())
        out = out.encode("utf-8", "replace").decode("utf-8")  # lone surrogates would break a JSON or file write
        if len(out) > limit or len(head) < len(text):
            out = out[: max(0, limit - 1)].rstrip() + "…"
        return out
    except Exception:
        return "?"



def as_number(x: Any) -> float | None:
    """A finite float from a payload number (ints, floats, numpy scalars, 1-element tensors), else None."""
    if x is None or isinstance(x, (str, bytes, bool)):
        return None
    try:
        f = float(x)
    except Exception:
        return None
    return f if math.isfinite(f) else None



def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)



def compact(text: str) -> str:
    return text.replace("e+0", "e+").replace("e-0", "e-")



def si(x: float) -> str:
    """`x` to 2 decimals with an SI prefix from 1000 up (`12.30`, `1.23k`, `4.56M`)."""
    if abs(x) >= 1e27:
        return compact(f"{x:.2e}")
    for prefix in ("", "k", "M", "G", "T", "P", "E", "Z"):
        if abs(x) < 999.995:
            return f"{x:.2f}{prefix}"
        x /= 1000.0
    return f"{x:.2f}Y"
