"""Reading a magic line: splitting it into words, and the argument types the subcommands declare.

Words split as a shell would (quotes group), except a call expression such as
`report(day="mon", n=2)`, which stays one word exactly as typed so its quotes and spaces reach
the Python parser intact (`callexpr.py`).
"""

from __future__ import annotations

import argparse
import io
import re
import shlex
import tokenize
import zoneinfo

from IPython.core.error import UsageError

from ..units import parse_duration

__all__ = ["at_time", "duration", "non_negative_int", "positive_int", "split_line", "task_names", "time_zone"]

# A word that starts like `name(` or `pkg.mod.name(`: a call expression begins here.
_CALL_START = re.compile(r"[A-Za-z_][\w.]*\(")
_HH_MM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def split_line(line: str) -> list[str]:
    """Split a magic line into words; raises `UsageError` (showing the line) if it cannot.

    A `#` starting a word outside quotes begins a comment, as in Python.

    Runs on the kernel's main thread, like every magic.
    """
    calls: dict[str, str] = {}
    rest, i = [], 0
    # Cut every call expression out (replacing it by a placeholder), then shell-split the rest.
    while i < len(line):
        ch = line[i]
        if ch in "'\"":  # a quoted word: copy it whole, so a "(" inside it is not a call
            end = _closing_quote(line, i)
            rest.append(line[i:end])
            i = end
            continue
        at_word_start = i == 0 or line[i - 1].isspace()
        if at_word_start and ch == "#":  # a comment to the end of the line
            break
        if at_word_start and _CALL_START.match(line, i):
            end = _call_end(line, i)
            key = f"\x00call{len(calls)}\x00"
            calls[key] = line[i:end]
            rest.append(key)
            i = end
            continue
        rest.append(ch)
        i += 1
    try:
        words = shlex.split("".join(rest))  # (the loop above already dropped a trailing comment)
    except ValueError as exc:
        raise UsageError(f"cannot parse {line!r}: {exc}") from None
    for key, text in calls.items():  # put each call back where it was, also inside a longer word
        words = [w.replace(key, text) for w in words]
    return words


def _closing_quote(line: str, start: int) -> int:
    """Index just past the quote closing the one at `start` (or the end of the line)."""
    quote, i = line[start], start + 1
    while i < len(line):
        if line[i] == "\\" and quote == '"':
            i += 2
            continue
        if line[i] == quote:
            return i + 1
        i += 1
    return len(line)


def _call_end(line: str, start: int) -> int:
    """Index just past the parenthesis that closes the call starting at `start`.

    Python's own tokenizer finds it, so parentheses inside string literals do not count.
    """
    depth = 0
    readline = io.StringIO(line[start:]).readline
    try:
        for tok in tokenize.generate_tokens(readline):
            if tok.type == tokenize.OP and tok.string in "([{":
                depth += 1
            elif tok.type == tokenize.OP and tok.string in ")]}":
                depth -= 1
                if depth == 0:
                    return start + tok.end[1]
            elif tok.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER) and depth <= 0:
                break
    except (tokenize.TokenError, SyntaxError):
        pass
    raise UsageError(f"unbalanced parentheses in {line[start:]!r}: close every '(' of the call")


# ---------------------------------------------------------------------- argument types
# argparse shows the message of an ArgumentTypeError; any other error becomes "invalid value".


def duration(text: str) -> float:
    """A positive duration in seconds ('500ms', '10s', '5m', '1h', '1d')."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def at_time(text: str) -> str:
    """A daily wall-clock time 'HH:MM' (24-hour), returned as given."""
    if not _HH_MM.match(text):
        raise argparse.ArgumentTypeError(f"expected a time of day HH:MM (24-hour, e.g. 09:30), got {text!r}")
    return text


def cron_expression(text: str) -> str:
    """A cron expression ('0 9 * * 1-5' or a nickname such as '@daily'), checked now, returned as given.

    Checked while parsing, so a bad one is the magic's only output: nothing is printed or drawn first.
    """
    from ..cron import CronTrigger, local_zone  # the scheduler's own reading of the expression
    from ..errors import QuivError

    try:
        CronTrigger(text, local_zone())
    except QuivError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def time_zone(text: str) -> str:
    """An IANA time zone name such as 'Europe/Paris'."""
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"unknown time zone {text!r}: use an IANA name such as Europe/Paris") from None
    return text


def task_names(text: str) -> list[str]:
    """One or more task names, comma-separated ('extract' or 'extract,clean')."""
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected task names separated by commas, got {text!r}")
    return names
