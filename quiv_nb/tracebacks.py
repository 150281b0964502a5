"""Tracebacks as a notebook shows them: without the frames of the machinery that ran the handler."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import sys

__all__ = ["trim_traceback"]

_FRAME = re.compile(r'^  File "(?P<file>[^"]+)", line \d+')
_MACHINERY = tuple(
    os.path.dirname(os.path.abspath(module.__file__ or "")) + os.sep
    for module in (sys.modules[__name__.rpartition(".")[0]], asyncio, concurrent.futures)
)


def trim_traceback(text: str) -> str:
    """`text` without the frames of quiv_nb, asyncio and concurrent.futures (the machinery that
    ran the handler), followed by a note saying how many were hidden. Pure; any thread."""
    kept: list[str] = []
    hidden = 0
    skipping = False
    for line in text.splitlines(keepends=True):
        frame = _FRAME.match(line)
        if frame is not None:
            skipping = os.path.abspath(frame.group("file")).startswith(_MACHINERY)
            hidden += skipping
        elif not (skipping and line.startswith("    ")):  # a hidden frame's source and caret lines
            skipping = False
        if not skipping:
            kept.append(line)
    body = "".join(kept)
    if hidden:
        if not body.endswith("\n"):
            body += "\n"
        frames = "frame" if hidden == 1 else "frames"
        body += f"[{hidden} quiv_nb/asyncio {frames} hidden; the full traceback is in Job.traceback]\n"
    return body
