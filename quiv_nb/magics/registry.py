"""The subcommands of `%quiv` / `%%quiv`, declared with IPython's `magic_arguments`.

Each subcommand is one function in `cmd/`, decorated like any IPython magic:

    @subcommand("add")
    @magic_arguments("%quiv add")
    @argument("name", metavar="NAME", help="...")
    def add(ctx, opts): '''Add a task NAME that calls FUNC.'''

Its parser is built from those declarations, and so is every usage text: `%quiv?`, `%quiv help`,
`%quiv help add` and the usage shown with an error. Nothing here is written by hand.
"""

from __future__ import annotations

import argparse
import difflib
import functools
from dataclasses import dataclass
from typing import Any, Callable

from IPython.core.error import UsageError
from IPython.core.magic_arguments import ArgDecorator, MagicHelpFormatter

__all__ = ["CELL", "LINE", "Command", "exclusive", "lookup", "overview", "subcommand"]


class _Formatter(MagicHelpFormatter):
    """IPython's magic help format, with the usage as a plain line (`%quiv add NAME ...`)."""

    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: Any = "") -> None:
        argparse.RawDescriptionHelpFormatter.add_usage(self, usage, actions, groups, prefix)


class exclusive(ArgDecorator):
    """The `@argument`s declared after this one form a mutually exclusive group ([--a | --b])."""

    def add_to_parser(self, parser: Any, group: Any) -> Any:
        return parser.add_mutually_exclusive_group()


@dataclass(slots=True, frozen=True)
class Command:
    """One subcommand: its parser (from the declarations) and the function that runs it."""

    name: str
    run: Callable[..., Any]  # (ctx, opts) for a line subcommand, (ctx, opts, cell) for a cell one
    parser: argparse.ArgumentParser
    summary: str  # the first line of the function's docstring
    cell: bool  # a %%quiv subcommand (the function also gets the cell body)

    @property
    def usage(self) -> str:
        return " ".join(self.parser.format_usage().split())

    def help(self) -> str:
        return self.parser.format_help().rstrip()

    def parse(self, words: list[str]) -> argparse.Namespace:
        """Parse the words after the subcommand; raises a one-line `UsageError` naming `%quiv help NAME`."""
        try:
            return self.parser.parse_args(words)
        except UsageError as exc:
            # One line: what is wrong, and where the usage is (a usage block under it buries the problem).
            raise UsageError(f"{exc} (usage: `%quiv help {self.name}`)") from None


LINE: dict[str, Command] = {}
CELL: dict[str, Command] = {}


def subcommand(name: str, *, cell: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a function already decorated with `magic_arguments` as `%quiv NAME` (or `%%quiv NAME`)."""

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        parser = func.parser  # type: ignore[attr-defined]  # built by @magic_arguments from the @argument declarations
        parser.formatter_class = functools.partial(_Formatter, width=100, max_help_position=28)
        summary = (parser.description or "").strip().splitlines()[0] if parser.description else ""
        (CELL if cell else LINE)[name] = Command(name, func, parser, summary, cell)
        return func

    return register


def lookup(name: str, *, cell: bool = False) -> Command:
    """The subcommand called `name`; raises `UsageError` suggesting the closest one."""
    table = CELL if cell else LINE
    if name in table:
        return table[name]
    prefix = "%%quiv" if cell else "%quiv"
    choices = list(table)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    hint = f" — did you mean {close[0]!r}?" if close else ""
    raise UsageError(
        f"unknown subcommand {name!r} for {prefix}{hint}\n\n{prefix} subcommands: {', '.join(choices)}"
        "\n(`%quiv help` lists them with their options)"
    )


def overview() -> str:
    """The text of `%quiv?` and `%quiv help`: every subcommand's usage and summary, then the notes."""
    from ..units import DURATION_HELP

    parts = ["Schedule and watch background jobs in this kernel.", ""]
    for command in [*LINE.values(), *CELL.values()]:
        parts.append(command.usage)
        parts.append(f"    {command.summary}")
    parts += [
        "",
        "FUNC is a function in the notebook namespace, by name (train, models.train) or called with",
        "arguments (train(epochs=5), report(day='mon')); the arguments are evaluated when the line runs.",
        f"Durations: {DURATION_HELP}.",
        "",
        "A %%quiv cell body runs as if the cell were re-run in the background: its top-level",
        "assignments, `x += 1` and `del` change the notebook's variables; `progress(...)`, `stop_event`",
        "and `job_id` are local to each run; the last expression is the job's result (`x = %quiv wait`);",
        "top-level `await` works. Without --name, the cell is keyed to its notebook cell: editing and",
        "re-running it replaces what it started.",
    ]
    return "\n".join(parts)
