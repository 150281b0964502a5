"""A routed job's failure as its cell shows it: one headline line, the trimmed traceback collapsed (pure).

A notebook that expects an error (and catches it from `%quiv wait`) should not look broken: the
headline says what failed ("✗ extract failed: ValueError: no rows") and the traceback, with the
machinery's frames trimmed, sits in a closed `<details>` a click opens. The text/plain of the same
bundle keeps headline and traceback, so terminals, nbconvert to text and papermill's logs show it
all. `%quiv log TASK` and `Job.traceback` have the full traceback.

Hosts: JupyterLab 4 and Notebook 7 render text/html (their sanitizer, used for untrusted outputs,
keeps `details`, `summary` and `pre`); classic Notebook, VS Code and Colab render it as plain HTML.
Every piece of text is escaped; only inline styles, so nothing depends on a stylesheet.

`FailureRepeats` counts a task's runs that fail the same way in a row (the headline then says
"[the same failure N runs in a row]"), shared by both routes (`output_area`, `cell_stream`).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from ..tracebacks import trim_traceback

__all__ = ["MARK", "FailureNote", "FailureRepeats"]

MARK = "✗"  # before the headline, in text/plain and text/html alike
# Each themed value follows a plain one: JupyterLab's sanitizer (untrusted outputs) drops var() and ch values and
# keeps the plain ones; a trusted output takes the later, themed value.
_MARK_STYLE = "color:#d32f2f;color:var(--jp-error-color1,#d32f2f)"
# The job's lines around it are text/plain: the same font, line height and left edge (JupyterLab pads a text
# output by 1ch), so the failure reads as part of the job's output.
_TEXT_STYLE = (
    "font-family:monospace;font-family:var(--jp-code-font-family,monospace);"
    "font-size:13px;font-size:var(--jp-code-font-size,13px);"
    "line-height:1.3077;line-height:var(--jp-code-line-height,1.3077);padding-left:8px;padding-left:1ch"
)
# Indented under its toggle, so an open traceback does not run into the lines the cell prints after it.
_PRE_STYLE = (
    "margin:0;padding:0 0 0 16px;padding-left:2ch;white-space:pre-wrap;background:none;border:none;line-height:inherit"
)


@dataclass(frozen=True)
class FailureNote:
    """What a cell shows for one failure: `headline` (one line, without the mark) and the trimmed
    `traceback` ("" when a repeat in a stream leaves it out)."""

    headline: str
    traceback: str

    def text(self) -> str:
        """The text/plain rendering: mark and headline, then the traceback (ends with a newline)."""
        text = f"{MARK} {self.headline}\n{self.traceback}"
        return text if text.endswith("\n") else text + "\n"

    def html(self) -> str:
        """The text/html rendering: the headline line, the traceback in a closed `<details>`."""
        headline = (
            f'<div class="quiv-failure-headline" style="white-space:pre-wrap">'
            f'<span style="{_MARK_STYLE}">{MARK}</span> {html.escape(self.headline, quote=False)}</div>'
        )
        details = ""
        if self.traceback:
            details = (
                '<details class="quiv-failure-traceback"><summary style="cursor:pointer;width:fit-content">'
                f'traceback</summary><pre style="{_PRE_STYLE}">{html.escape(self.traceback, quote=False)}</pre>'
                "</details>"
            )
        return f'<div class="quiv-failure" style="{_TEXT_STYLE}">{headline}{details}</div>'

    def bundle(self) -> dict[str, str]:
        """The mime bundle of a `display_data` holding this failure."""
        return {"text/html": self.html(), "text/plain": self.text()}

    def size(self) -> int:
        """About how many bytes the bundle carries (for the byte budget)."""
        return 2 * (len(self.headline) + len(self.traceback)) + 400


class FailureRepeats:
    """The failure notes of a task's runs: the trimmed traceback, or a repeat count when the run before
    failed the same way. The owner locks it."""

    def __init__(self) -> None:
        self._signature: str | None = None  # the trimmed traceback of the last failure
        self._count = 0  # runs in a row that failed that way

    def reset(self) -> None:
        self._signature, self._count = None, 0

    def describe(self, headline: str, traceback: str, *, repeat_traceback: bool = True) -> FailureNote:
        """Headline and trimmed traceback; when the run before failed the same way the headline says
        "[the same failure N runs in a row]" (and the traceback follows only if `repeat_traceback`:
        an area replaces the last run's, a stream would add another)."""
        trimmed = trim_traceback(traceback)
        if trimmed == self._signature:
            self._count += 1
            counted = f"{headline}  [the same failure {self._count} runs in a row]"
            return FailureNote(counted, trimmed if repeat_traceback else "")
        self._signature, self._count = trimmed, 1
        return FailureNote(headline, trimmed)
