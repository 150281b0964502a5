"""Payload -> bar state, and bar state -> text. Pure: no display library, no clock, no threads.

A renderer keeps one `BarState` per bar and rebuilds it with these functions on the render pump
thread: `start` a run, `apply` each payload, `tick` the clock (elapsed, smoothed rate), `finish`
with the job's outcome, then format it (`format_meter` for a text line, `format_stats` and
`format_title` for the pieces of a widget bar). Every function takes the current time as an
argument and returns a new frozen state, so all of it is tested without a frontend or a clock.

Payload conventions (docs/design.md): value = `step` (or `progress`, `n`); `total`; `pct` alone means
value = pct of 100 (of `total` when one is known); label = `stage` or `desc` or `message`; any
other scalar key shows as a postfix `key=value`. A single positional number is the step, two are
`(step, total)`, a single positional string is the label and a single positional mapping is read
like keywords. A payload updates only what it names: the label, total and postfix keys stay until
changed. Garbage never raises: non-numbers, NaN, infinities and negative totals are ignored,
negative values count as 0, a value past the total shows a full bar, containers are skipped and
all text is stripped of control characters and truncated.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, time, timedelta
from typing import Any

from ..units import format_duration
from .numfmt import as_number, clean_text, compact, finite, format_interval, format_number, format_rate

__all__ = [
    "FINAL",
    "INTERRUPTED",
    "BarState",
    "apply",
    "clean_text",
    "finish",
    "format_interval",
    "format_meter",
    "format_number",
    "format_postfix",
    "format_rate",
    "format_stats",
    "format_status",
    "format_title",
    "new_state",
    "rewound",
    "start",
    "tick",
]

VALUE_KEYS = ("step", "progress", "n")
LABEL_KEYS = ("stage", "desc", "message")
TOTAL_KEY = "total"
PCT_KEY = "pct"

IDLE, RUNNING = "idle", "running"
COMPLETED, FAILED, CANCELLED, SKIPPED, INTERRUPTED = "completed", "failed", "cancelled", "skipped", "interrupted"
FINAL = frozenset({COMPLETED, FAILED, CANCELLED, SKIPPED, INTERRUPTED})

MAX_LABEL = 60  # characters of a label (desc or payload label)
MAX_KEY = 24  # characters of a postfix key
MAX_VALUE = 40  # characters of a postfix value
MAX_POSTFIX_ITEMS = 8  # postfix entries shown; later keys are dropped
MAX_KEYS_SCANNED = 64  # payload keys looked at per apply, so a huge mapping costs O(1)
MAX_MESSAGE = 300  # characters of an error / cancel message in a bar's line
MAX_DETAIL = 1000  # characters of the same message kept for a hover title
SMOOTHING = 0.3  # weight of the newest rate sample (tqdm's default)
MIN_RATE_WINDOW = 0.05  # seconds: a shorter sampling window is too noisy to update the rate

_SCALARS = (str, bytes, numbers.Number, date, time, timedelta)
# Control characters (C0, DEL, C1) would break a terminal line or inject escape sequences.


@dataclass(slots=True, frozen=True)
class BarState:
    """Everything a bar shows. Immutable: each function returns a new one."""

    desc: str = ""  # the renderer's own label (the `desc` option)
    unit: str = "it"
    value: float = 0.0  # >= 0, finite
    total: float | None = None  # > 0, finite, or None when unknown
    label: str = ""  # the payload's label (`stage` / `desc` / `message`)
    postfix: tuple[tuple[str, str], ...] = ()  # (key, formatted value), in payload order
    status: str = IDLE  # idle | running | completed | failed | cancelled | skipped | interrupted
    message: str = ""  # the error, cancel or skip reason of a final state
    result: str = ""  # a short repr of a completed job's result ("" for None)
    cached: str = ""  # a cached step's reused result: when it was computed (`format.cached_note`); else ""
    detail: str = ""  # `message` at more length (MAX_DETAIL), for a hover title
    started: float | None = None  # clock reading at the start of the run
    elapsed: float = 0.0  # seconds since `started` at the last tick (the job's duration once final)
    rate: float | None = None  # units per second, smoothed (the average rate once final)
    mark: tuple[float, float] | None = None  # (clock, value) of the last rate sample

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    @property
    def reported(self) -> bool:
        """True once the run reported any progress number, total or postfix (else its bar is indeterminate)."""
        return self.total is not None or self.value > 0 or bool(self.postfix)

    @property
    def fraction(self) -> float | None:
        """Value / total in [0, 1], or None while the total is unknown."""
        if self.total is None:
            return None
        return min(1.0, max(0.0, self.value / self.total))

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate, or None when unknown (or final)."""
        if self.total is None or self.status != RUNNING:
            return None
        if self.value >= self.total:
            return 0.0
        return (self.total - self.value) / self.rate if self.rate else None


def new_state(desc: Any = "", unit: Any = "it", total: Any = None) -> BarState:
    """An idle bar with the renderer's options; `start` copies it for each run."""
    return BarState(desc=clean_text(desc, MAX_LABEL), unit=clean_text(unit, 16) or "it", total=_positive(total))


def start(blank: BarState, now: float) -> BarState:
    """A fresh run of `blank` (the renderer's idle state) whose clock starts at `now`."""
    return replace(blank, status=RUNNING, message="", started=now, elapsed=0.0, rate=None, mark=(now, blank.value))


def apply(state: BarState, args: Any = (), kwargs: Any = None) -> BarState:
    """`state` updated with one progress payload `(*args, **kwargs)`; never raises."""
    try:
        return _apply(state, args, kwargs)
    except Exception:  # a payload object whose __eq__ / __str__ / __float__ misbehaves
        return state


def _apply(state: BarState, args: Any, kwargs: Any) -> BarState:
    payload: Mapping[Any, Any] = kwargs if isinstance(kwargs, Mapping) else {}
    value = total = None
    label: str | None = None
    if isinstance(args, tuple) and args:
        first = args[0]
        if len(args) == 1 and isinstance(first, Mapping):
            payload = {**first, **payload} if payload else first
        elif len(args) == 1 and isinstance(first, str):
            label = clean_text(first, MAX_LABEL)
        else:
            value = as_number(first)
            if len(args) > 1 and value is not None:
                total = _positive(args[1])

    used: set[str] = set()
    keyed = None
    for key in VALUE_KEYS:  # the first of step / progress / n that holds a number; keywords beat positionals
        if key in payload:
            used.add(key)
            if keyed is None:
                keyed = as_number(payload[key])
    if keyed is not None:
        value = keyed
    if TOTAL_KEY in payload:
        used.add(TOTAL_KEY)
        total = _positive(payload[TOTAL_KEY]) or total
    if PCT_KEY in payload:
        used.add(PCT_KEY)
        pct = as_number(payload[PCT_KEY])
        if pct is not None and value is None:
            base = total or state.total
            if base is None:
                value, total = pct, 100.0
            else:
                value = base * pct / 100.0
    for key in LABEL_KEYS:
        if key in payload and _is_scalar(payload[key]):
            text = clean_text(payload[key], MAX_LABEL)
            if text:
                label = text
                used.add(key)
                break

    postfix = _merge_postfix(state.postfix, payload, used)
    changes: dict[str, Any] = {}
    if value is not None:
        changes["value"] = max(0.0, value)
    if total is not None:
        changes["total"] = total
    if label is not None:
        changes["label"] = label
    if postfix is not state.postfix:
        changes["postfix"] = postfix
    return replace(state, **changes) if changes else state


def _merge_postfix(
    old: tuple[tuple[str, str], ...], payload: Mapping[Any, Any], used: set[str]
) -> tuple[tuple[str, str], ...]:
    """The postfix with the payload's other scalar keys updated in place or appended."""
    items = dict(old)
    for scanned, (key, raw) in enumerate(payload.items()):
        if scanned >= MAX_KEYS_SCANNED:
            break
        if (isinstance(key, str) and key in used) or not _is_scalar(raw):
            continue
        name = clean_text(key, MAX_KEY)
        if not name or (name not in items and len(items) >= MAX_POSTFIX_ITEMS):
            continue
        items[name] = _format_scalar(raw)
    new = tuple(items.items())
    return old if new == old else new


def tick(state: BarState, now: float) -> BarState:
    """Advance the clock of a running bar: elapsed time and the smoothed rate."""
    if state.status != RUNNING or state.started is None or not finite(now):
        return state
    elapsed = max(0.0, now - state.started)
    rate, mark = state.rate, state.mark
    if mark is None or state.value < mark[1]:  # first sample, or the value went back: restart the estimate
        rate, mark = None, (now, state.value)
    elif now - mark[0] >= MIN_RATE_WINDOW:
        sample = (state.value - mark[1]) / (now - mark[0])
        rate = sample if rate is None else SMOOTHING * sample + (1.0 - SMOOTHING) * rate
        mark = (now, state.value)
    return replace(state, elapsed=elapsed, rate=rate, mark=mark)


def finish(state: BarState, status: Any, message: Any = "", now: float | None = None,
           duration: float | None = None, result: str = "", cached: str = "") -> BarState:  # fmt: skip
    """The final state of a run: `status` is "completed", "failed", "cancelled", "skipped" or "interrupted".

    `duration` (the job's own) is preferred over `now - started` for the elapsed time. A
    completed bar with a known total shows full; the rate becomes the run's average. `result`
    is a short repr of the job's result, shown after a completed bar ("done in 1.5s → 'ok'").
    `cached` (`format.cached_note`) marks a completed job whose stored result was reused.
    """
    status = str(status)
    if status not in FINAL:
        status = FAILED
    if duration is not None and finite(duration) and duration >= 0:
        elapsed = float(duration)
    elif now is not None and state.started is not None and finite(now):
        elapsed = max(0.0, now - state.started)
    else:
        elapsed = state.elapsed
    value = state.value
    if status == COMPLETED and state.total is not None and value < state.total:
        value = state.total
    rate = value / elapsed if elapsed > 0 and value > 0 else state.rate
    result = clean_text(result, MAX_VALUE) if status == COMPLETED and result else ""
    detail = clean_text(message or "", MAX_DETAIL)
    cached = clean_text(cached, MAX_LABEL) if status == COMPLETED and cached else ""
    return replace(state, status=status, message=clean_text(message or "", MAX_MESSAGE), detail=detail, value=value,
                   elapsed=elapsed, rate=rate, result=result, cached=cached)  # fmt: skip


def rewound(before: BarState, after: BarState) -> bool:
    """True when a bar that had reached its total went back: the next run of a job-less renderer."""
    return (
        before.status == RUNNING
        and before.total is not None
        and before.value >= before.total
        and after.value < before.value
    )


# ---------------------------------------------------------------------------------------- formatting


def format_title(state: BarState) -> str:
    """The bar's label: the renderer's desc, the payload's label, or `desc: label`."""
    if state.desc and state.label:
        return f"{state.desc}: {state.label}"
    return state.desc or state.label


def format_postfix(state: BarState) -> str:
    """`key=value, key=value` of the payload's extra scalar keys."""
    return ", ".join(f"{key}={value}" for key, value in state.postfix)


def format_status(state: BarState) -> str:
    """What a final (or idle) state adds after the numbers: `done`, `failed: …`, `cancelled: …`, `skipped: …`.

    A run that reported no progress has no numbers to show: its status says how long it took
    (`done in 1.5s → 'ok'`, `failed after 2s: …`).
    """
    took = "" if state.reported else format_duration(state.elapsed)
    if state.status == COMPLETED and state.cached:  # not run: its stored result was reused
        return f"cached · {state.cached} → {state.result}" if state.result else f"cached · {state.cached}"
    if state.status == COMPLETED:  # numbers say how it went; without them, the duration and the result do
        return (f"done in {took} → {state.result}" if state.result else f"done in {took}") if took else "done"
    if state.status == FAILED and took:
        return f"failed after {took}: {state.message}" if state.message else f"failed after {took}"
    if state.status == FAILED:
        return f"failed: {state.message}" if state.message else "failed"
    if state.status == CANCELLED:
        if not state.message or state.message.lower().startswith("cancelled"):
            return state.message or "cancelled"
        return f"cancelled: {state.message}"
    if state.status == SKIPPED:
        return f"skipped: {state.message}" if state.message else "skipped"
    if state.status == INTERRUPTED:
        return f"interrupted ({state.message})" if state.message else "interrupted"
    if state.status == IDLE:  # what it waits for, when its owner said ("waiting for extract", "next run 09:00")
        return state.message or "waiting"
    return ""


def format_stats(state: BarState, percent: bool = True) -> str:
    """The numbers of a bar, like tqdm's right part: `42% 42/100 [00:03<00:04, 12.30it/s, loss=0.1]`."""
    unit = state.unit
    if state.total is None:
        counts = f"{format_number(state.value)}{unit}"
        times = format_interval(state.elapsed)
    else:
        counts = f"{format_number(state.value)}/{format_number(state.total)}"
        if percent:
            counts = f"{_percent(state):3.0f}% {counts}"
        eta = state.eta
        if state.is_final:
            times = format_interval(state.elapsed)
        else:
            times = f"{format_interval(state.elapsed)}<{format_interval(eta) if eta is not None else '?'}"
    postfix = format_postfix(state)
    inside = f"{times}, {format_rate(state.rate, unit)}" + (f", {postfix}" if postfix else "")
    return f"{counts} [{inside}]"


def format_meter(state: BarState, width: int | None = None, ascii: bool = False, bar_width: int = 20) -> str:
    """One text line, like tqdm's `format_meter`: `desc:  42%|████▏     | 42/100 [00:03<00:04, 12.30it/s]`.

    A final state ends with its status (`done`, `failed: …`, `cancelled: …`). `width` trims the
    line to fit a terminal; `ascii` draws the bar with `#` instead of block characters.
    """
    title = format_title(state)
    prefix = f"{title}: " if title else ""
    stats = format_stats(state, percent=False)
    if (state.is_final and not state.reported) or state.status == IDLE:  # no numbers: "train: done in 1.5s → 'ok'"
        line = f"{prefix}{format_status(state)}"
    elif state.total is None:
        line = f"{prefix}{stats}"
    else:
        line = f"{prefix}{_percent(state):3.0f}%|{_bar(state.fraction or 0.0, bar_width, ascii)}| {stats}"
    status = format_status(state)
    if status and state.status != IDLE and (state.reported or not state.is_final):
        line = f"{line} {status}"
    if ascii:
        line = line.replace("→", "->")
    if width is not None and width > 0 and len(line) > width:
        line = line[: max(0, width - 1)] + ("~" if ascii else "…")
    return line


# ---------------------------------------------------------------------------------------- helpers


def _positive(x: Any) -> float | None:
    f = as_number(x)
    return f if f is not None and f > 0 else None


def _is_scalar(x: Any) -> bool:
    """A value that reads as one short text: strings, numbers, dates, numpy scalars, 1-element tensors."""
    return x is not None and (isinstance(x, _SCALARS) or (hasattr(x, "__float__") and as_number(x) is not None))


def _format_scalar(x: Any) -> str:
    if isinstance(x, (bool, str, bytes, date, time, timedelta)):
        return clean_text(x, MAX_VALUE)
    if isinstance(x, numbers.Real):  # int, float, numpy numbers, Fraction
        return _format_real(x)
    if isinstance(x, numbers.Number):  # complex, Decimal
        return clean_text(x, MAX_VALUE)
    f = as_number(x)  # a numpy 0-d array or a 1-element tensor
    return _format_real(f) if f is not None else "?"


def _format_real(x: Any) -> str:
    """tqdm's `format_num`: `.3g` when shorter than `str()`."""
    try:
        short = compact(f"{x:.3g}")
        full = str(x)
    except Exception:
        return clean_text(x, MAX_VALUE)
    return clean_text(short if len(short) < len(full) else full, MAX_VALUE)


def _percent(state: BarState) -> float:
    return 100.0 * (state.fraction or 0.0)


def _bar(fraction: float, width: int, ascii: bool) -> str:
    """A `width`-character bar filled to `fraction`, in eighths (block characters) or tenths (ascii)."""
    charset = " 123456789#" if ascii else " ▏▎▍▌▋▊▉█"
    steps = len(charset) - 1
    cells = int(max(0.0, min(1.0, fraction)) * width * steps)
    full, part = divmod(cells, steps)
    bar = charset[-1] * full
    if full < width:
        bar += charset[part] + " " * (width - full - 1)
    return bar
