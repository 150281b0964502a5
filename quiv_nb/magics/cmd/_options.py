"""Options several subcommands declare, as IPython `@argument` decorators (each reusable)."""

from __future__ import annotations

from IPython.core.magic_arguments import argument

from ..args import duration, task_names

BAR_KINDS = ("auto", "widget", "tqdm", "none")

bar = argument(
    "--bar", default="auto", choices=BAR_KINDS, metavar="KIND",
    help="the job's progress bar: auto (default), widget, tqdm or none",
)  # fmt: skip
notify = argument(
    "--notify", action="store_true", help="a desktop notification when a job ends while this tab is hidden"
)
timeout = argument("--timeout", type=duration, metavar="DUR", help="cancel a job that runs longer than DUR")
after = argument(
    "--after", type=task_names, action="append", metavar="TASK",
    help="run after TASK completes (repeat, or comma-separate, for several: runs when all have)",
)  # fmt: skip
name = argument("--name", metavar="NAME", help="the task's name (default: keyed to this notebook cell)")
cache = argument(
    "--cache", action="store_true",
    help="a cached step: reuse the stored result of a run with the same code, arguments and upstream results "
    "(also after a kernel restart; see %%quiv store)",
)  # fmt: skip
new = argument("--new", action="store_true", help="start another job even if this cell's last one still runs")


def flatten(groups: list[list[str]] | None) -> list[str]:
    """`--after a,b --after c` -> ['a', 'b', 'c']."""
    return [n for group in groups or [] for n in group]
