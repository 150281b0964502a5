"""`QuivMagics`: the `%quiv` line magic and `%%quiv` cell magic, dispatching to `cmd/`.

Thin on purpose: split the line, find the subcommand (suggesting the closest name for a typo),
parse its declared arguments, run it. A bad line is a `UsageError` (a message and the usage, no
traceback); an error the API raises on purpose (`QuivError`) is shown the same way, except the
failures `%quiv wait` re-raises from a job, which must fail the cell like the job did.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand

from ..errors import JobCancelledError, JobFailedError, QuivError
from . import cmd  # noqa: F401 (registers the subcommands)
from .args import split_line
from .context import Context, MagicState
from .registry import lookup, overview

__all__ = ["QuivMagics"]


@magics_class
class QuivMagics(Magics):
    """%quiv line magic and %%quiv cell magic (their help text is generated: see `registry.overview`)."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        self._ctx = Context(shell, MagicState())

    # No `$x` / `{x}` expansion: a FUNC(args) expression must reach Python exactly as typed
    # (`{"a": 1}` is a dict). Targets may name a variable holding a job id instead (`%quiv wait jid`).
    @no_var_expand
    @line_magic
    def quiv(self, line: str) -> Any:
        words = split_line(line)
        command = lookup(words[0]) if words else lookup("status")
        return self._run(command, words[1:])

    @no_var_expand
    @cell_magic("quiv")  # type: ignore[arg-type]  # IPython types `cell_magic("name")`'s result as a bare decorator
    def quiv_cell(self, line: str, cell: str) -> Any:
        words = split_line(line)
        if not words:
            raise UsageError("%%quiv needs a subcommand: `%%quiv every DUR` or `%%quiv run`\n\n" + overview())
        return self._run(lookup(words[0], cell=True), words[1:], cell)

    def _run(self, command: Any, words: list[str], *cell: str) -> Any:
        if "-h" in words or "--help" in words:
            print(command.help())
            return None
        opts = command.parse(words)
        try:
            return command.run(self._ctx, opts, *cell)
        except (JobFailedError, JobCancelledError):
            raise  # the job's own failure: the cell fails as the job did
        except QuivError as exc:
            raise UsageError(str(exc)) from None

    @staticmethod
    def _task_id(name: str) -> str:
        """The id of the task called `name` in the kernel's scheduler (for tests and scripts)."""
        return Context(None, MagicState()).task_id(name)


QuivMagics.quiv.__doc__ = QuivMagics.quiv_cell.__doc__ = overview()  # type: ignore[assignment]  # as above
