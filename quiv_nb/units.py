"""Durations as people write and read them: `parse_duration("5m")` and `format_duration(300.0)`.

One module so the magics (`%quiv add ... --every 5m`), the dashboard and the bars agree on the
spelling. Pure functions: no IPython, no clock, importable anywhere.
"""

from __future__ import annotations

import math
import re

__all__ = ["DURATION_HELP", "format_duration", "parse_duration"]

DURATION_HELP = "500ms, 10, 10s, 5m, 1h, 1d"  # the examples error messages and usage texts show

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_UNIT = r"(?:ms|sec|min|s|m|h|d)"
# One number with an optional unit, or several number+unit parts as format_duration writes them ("1m30s").
_DURATION = re.compile(rf"^\s*(?:{_NUMBER}\s*{_UNIT}?|(?:{_NUMBER}\s*{_UNIT}\s*)+)\s*$", re.IGNORECASE)
_PART = re.compile(rf"({_NUMBER})\s*({_UNIT})?", re.IGNORECASE)
_UNITS = {None: 1.0, "s": 1.0, "sec": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration: '500ms' → 0.5, '10' and '10s' → 10, '5m' → 300, '1h' → 3600, '1d' → 86400,
    and what `format_duration` writes ('1m30s' → 90).

    Pure; runs on the caller's thread. Raises `ValueError` (saying what is accepted) for anything
    that is not a positive, finite number with an optional unit.
    """
    text = str(text)
    seconds = 0.0
    if _DURATION.match(text):
        for number, unit in _PART.findall(text):
            seconds += float(number) * _UNITS[unit.lower() if unit else None]
    if not 0 < seconds < math.inf:  # "0" is no interval; a few hundred digits parse to inf
        raise ValueError(f"bad duration {text!r}: use a positive number with an optional unit, e.g. {DURATION_HELP}")
    return seconds


def format_duration(seconds: float) -> str:
    """A compact human duration: '500ms', '1.5s', '5s', '1m30s', '2h', '1h05m', '3d', '2d04h'.

    Pure; never raises for a number (negative and NaN read as '0s', infinity as '∞').
    """
    if seconds != seconds or seconds <= 0:  # NaN or not positive
        return "0s"
    if seconds == math.inf:
        return "∞"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms" if seconds >= 0.0005 else "<1ms"
    if seconds < 10 and not float(seconds).is_integer():
        text = f"{seconds:.1f}s"
        return "10s" if text == "10.0s" else text
    if seconds < 60:
        return f"{int(seconds)}s"
    s = round(seconds)
    if s < 3600:
        m, s = divmod(s, 60)
        return f"{m}m{s:02d}s" if s else f"{m}m"
    if s < 86400:
        h, s = divmod(s, 3600)
        m = s // 60
        return f"{h}h{m:02d}m" if m else f"{h}h"
    d, s = divmod(s, 86400)
    h = s // 3600
    return f"{d}d{h:02d}h" if h else f"{d}d"
