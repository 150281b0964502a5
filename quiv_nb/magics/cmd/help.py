"""`%quiv help [SUBCOMMAND]`: the overview (as `%quiv?`), or one subcommand's options."""

from __future__ import annotations

import argparse

from IPython.core.magic_arguments import argument, magic_arguments

from ..context import Context
from ..registry import CELL, LINE, lookup, overview, subcommand


@subcommand("help")
@magic_arguments("%quiv help")
@argument("command", nargs="?", metavar="SUBCOMMAND", help="a subcommand, e.g. add (cell ones: every, run)")
def help(ctx: Context, opts: argparse.Namespace) -> None:
    """This overview, or one subcommand's options in detail."""
    if opts.command is None:
        print(overview())
        return
    commands = [c for c in (LINE.get(opts.command), CELL.get(opts.command)) if c is not None]
    if not commands:
        lookup(opts.command)  # UsageError with a suggestion
    print("\n\n".join(c.help() for c in commands))
