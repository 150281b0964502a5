"""Text bars: `bar("tqdm")` drives a real tqdm bar, `bar("text")` writes its own line.

Both write only from the render pump thread; the worker side is `BarRenderer`'s O(1) inbox.

- "tqdm": one `tqdm.std.tqdm` per run (created, updated and closed on the pump thread), so a
  terminal shows tqdm's usual bar and nested bars of concurrent renderers get their own rows.
  The final state ends with `done`, `failed: <error>` or `cancelled: <reason>` in the postfix,
  coloured green / red / yellow on a terminal.
- "text": `state.format_meter` lines. On a terminal the line is rewritten in place (`\\r`) and
  trimmed to its width; elsewhere (a log file, CI) every redraw is a new line, and identical
  lines are not repeated.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

from . import state as st
from .base import BarRenderer

__all__ = ["TextBar", "TqdmBar"]

_COLOURS = {
    st.COMPLETED: "green",
    st.FAILED: "red",
    st.CANCELLED: "yellow",
    st.SKIPPED: "white",
    st.INTERRUPTED: "yellow",
}


def _isatty(file: Any) -> bool:
    try:
        return bool(file.isatty())
    except Exception:
        return False


def _unicode_ok(file: Any) -> bool:
    encoding = (getattr(file, "encoding", None) or "utf-8").lower().replace("-", "")
    return encoding.startswith("utf")


def _columns(file: Any) -> int:
    try:
        return os.get_terminal_size(file.fileno()).columns
    except Exception:
        return 80


def _count(x: float | None) -> float | int | None:
    """tqdm prints floats as `42.0`: hand it an int when the value is whole."""
    if x is None:
        return None
    return int(x) if x == int(x) else x


class _TextRenderer(BarRenderer):
    """A bar that writes to a text stream (`file`, default: `sys.stderr` at creation)."""

    def __init__(self, *, file: IO[str] | None = None, **options: Any) -> None:
        super().__init__(**options)
        self._file = file if file is not None else sys.stderr
        self._tty = _isatty(self._file)
        self._broken = False

    def _write(self, text: str) -> None:
        """Write and flush; a closed or failing stream turns the bar off instead of raising each redraw."""
        if self._broken:
            return
        try:
            self._file.write(text)
            flush = getattr(self._file, "flush", None)
            if flush is not None:
                flush()
        except (OSError, ValueError):
            self._broken = True


class TextBar(_TextRenderer):
    """`bar("text")`: one self-formatted line per redraw."""

    kind = "text"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._ascii = not _unicode_ok(self._file)
        self._last = ""  # the line on screen (tty) or last written (log)

    def _render(self, state: st.BarState, final: bool) -> int:
        if self._tty:
            line = st.format_meter(state, width=_columns(self._file) - 1, ascii=self._ascii)
            pad = " " * max(0, len(self._last) - len(line))
            if final and not self._leave:
                self._write("\r" + " " * len(self._last) + "\r")
                self._last = ""
            else:
                self._write("\r" + line + pad + ("\n" if final else ""))
                self._last = "" if final else line
            return 1
        if final and not self._leave:
            return 0
        line = st.format_meter(state, ascii=self._ascii)
        if line == self._last:
            return 0
        self._write(line + "\n")
        self._last = line
        return 1


class TqdmBar(_TextRenderer):
    """`bar("tqdm")`: a `tqdm.std.tqdm` bar per run, updated from the pump thread."""

    kind = "tqdm"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._tqdm_class = _tqdm_class()  # import at creation: a missing tqdm fails here, not on the pump
        self._bar: Any = None
        self._bar_seq = 0

    def _render(self, state: st.BarState, final: bool) -> int:
        if self._broken:
            return 0
        try:
            return self._update(state, final)
        except (OSError, ValueError):
            self._broken = True
            return 0

    def _update(self, state: st.BarState, final: bool) -> int:
        if self._drawn_seq == 0:
            # No run yet (the idle state, `note_waiting`): tqdm could only show "0it [00:00, ?it/s]" without what
            # the bar waits for, and an open tqdm instance would push every later bar's row down until this one runs.
            return 0
        bar = self._bar
        if bar is None or self._bar_seq != self._drawn_seq:
            if bar is not None:
                bar.close()
            bar = self._bar = self._new_bar(state)
            self._bar_seq = self._drawn_seq
        bar.total = _count(state.total)
        # `set_description` adds its own ": ", which tqdm doubles while the total is unknown ("load: : 0it").
        bar.set_description_str(st.format_title(state), refresh=False)
        postfix = st.format_postfix(state)
        if final:
            status = st.format_status(state)
            postfix = f"{postfix}, {status}" if postfix else status
            if self._tty:
                bar.colour = "cyan" if state.cached else _COLOURS.get(state.status)
        bar.set_postfix_str(postfix, refresh=False)
        value = _count(state.value)
        delta = value - bar.n
        if delta >= 0 and not final:
            bar.update(delta)  # refreshes (mininterval=0) and feeds tqdm's smoothed rate
        elif final:
            bar.n = value
            bar.close()  # draws the last line (leave=True, with the average rate) or clears it
            self._bar = None
        else:  # the value went back: no rate sample
            bar.n = value
            bar.refresh()
        return 1

    def _new_bar(self, state: st.BarState) -> Any:
        bar = self._tqdm_class(
            total=_count(state.total), desc=st.format_title(state) or None, unit=state.unit, leave=self._leave,
            file=self._file, mininterval=0, miniters=0,
        )  # fmt: skip
        # tqdm's clock (time.time) starts now; the run started `elapsed` seconds ago on ours.
        bar.start_t = bar.last_print_t = time.time() - state.elapsed
        return bar

    def close(self) -> None:
        """Stop drawing and close the current tqdm bar (pump-safe: tqdm locks its own writes)."""
        super().close()
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()


def _tqdm_class() -> type:
    """`tqdm.std.tqdm` without its monitor thread (the pump already paces every redraw)."""
    global _TQDM
    if _TQDM is None:
        try:
            from tqdm.std import tqdm
        except ImportError as exc:  # pragma: no cover - tqdm is a dependency
            raise ImportError("quiv_nb.bar('tqdm') needs tqdm: pip install tqdm") from exc

        class QuivTqdm(tqdm):
            monitor_interval = 0

        _TQDM = QuivTqdm
    return _TQDM


_TQDM: type | None = None
