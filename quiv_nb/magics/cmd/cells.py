"""`%%quiv every DUR` and `%%quiv run`: the cell body as a background job, with cell semantics.

How the body behaves is `cellbody.py`'s job. Here: its identity. Without `--name` the task is
keyed to the notebook cell (its `cellId`; the body's hash where the frontend sends none), so
editing and re-running the cell replaces what it started instead of adding a second task. Its
name is readable: `cell-` and the words of the body's first line (`cell-load_sales_csv`), made
unique with `-2`, `-3`, … and kept for that cell while it is edited.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import re
from typing import Any

from IPython.core.magic_arguments import argument, magic_arguments

from ...kernel import cell_id
from ...units import format_duration
from .. import args as types
from ..cellbody import compile_cell, register_source
from ..context import Context, make_bar, note_waiting, say, short_id
from ..handle import JobHandle, show_bar
from ..registry import subcommand
from . import _options as option
from .run import start, still_running


@subcommand("every", cell=True)
@magic_arguments("%%quiv every")
@argument("every", type=types.duration, metavar="DUR", help="run the cell every DUR")
@option.name
@option.bar
@option.notify
def every(ctx: Context, opts: argparse.Namespace, cell: str) -> None:
    """Run this cell's body every DUR in the background (re-running the cell replaces it)."""
    name = _identity(ctx, opts, cell)
    handler = _handler(ctx, f"every {format_duration(opts.every)}", cell, name)
    extra = ctx.api_kwargs(ctx.scheduler.add_task, notify=opts.notify)
    _forget_previous(ctx, name)
    say(f"quiv: task {name!r} runs this cell every {format_duration(opts.every)} (re-running this cell replaces it)")
    bar = make_bar(opts.bar, name)
    task_id = ctx.scheduler.add_task(name, handler, interval=opts.every, progress_callback=bar, replace=True, **extra)
    note_waiting(bar, ctx.scheduler, task_id)


@subcommand("run", cell=True)
@magic_arguments("%%quiv run")
@option.name
@option.after
@option.bar
@option.new
@option.notify
@option.cache
def run_cell(ctx: Context, opts: argparse.Namespace, cell: str) -> None:
    """Run this cell's body once in the background, now (or, with --after, each time TASK completes; the body
    reads their results as `upstream`)."""
    name = _identity(ctx, opts, cell)
    after = option.flatten(opts.after)
    handler = _handler(ctx, "run", cell, name)
    # A cell body's code is its text: the digest is the pin (the compiled body has no source file).
    cache = f"cell:{_digest(cell)}" if opts.cache else None
    extra = ctx.api_kwargs(ctx.scheduler.add_task, after=after, notify=opts.notify, cache=cache)
    _forget_previous(ctx, name)
    if after:
        say(f"quiv: task {name!r} runs this cell after {', '.join(after)} (re-running this cell replaces it)")
        bar = make_bar(opts.bar, name)
        task_id = ctx.scheduler.add_task(name, handler, progress_callback=bar, replace=True, **extra)
        note_waiting(bar, ctx.scheduler, task_id)
        return
    body = _digest(cell)
    previous: tuple[JobHandle, str] | None = ctx.state.cell_runs.get(name)
    if previous is not None and not opts.new and still_running(ctx, previous[0]):
        handle, previous_body = previous
        if previous_body == body:
            say(
                f"quiv: this cell's job {short_id(handle)} is still running; showing its live bar again "
                f"(`--new` starts another, `%quiv cancel {short_id(handle)}` stops it)"
            )
            if handle.bar is not None:
                show_bar(handle.bar)
            ctx.last_job = str(handle)
            return
        say(f"quiv: the cell changed; its running job {handle} is stopped and the new body starts")
    bar = make_bar(opts.bar, name)
    handle = start(ctx, name, handler, bar, replace=not opts.new, **extra)
    ctx.state.cell_runs[name] = (handle, body)


def _identity(ctx: Context, opts: argparse.Namespace, cell: str) -> str:
    """The task name: --name, else the readable name this notebook cell (or, without a cell id, this body) got."""
    if opts.name:
        return opts.name
    key = cell_id() or _digest(cell)
    names = ctx.state.cell_names
    if key not in names:
        taken = set(names.values()) | {t.task_name for t in ctx.scheduler.get_all_tasks()}
        base = _readable(cell)
        candidates = itertools.chain([base], (f"{base}-{i}" for i in itertools.count(2)))
        names[key] = next(n for n in candidates if n not in taken)
    return names[key]


_WORD = re.compile(r"[A-Za-z0-9]+")


def _readable(cell: str) -> str:
    """`cell-` and the words of the body's first line of code, at most 32 characters (`cell-` alone if none)."""
    for line in cell.splitlines():
        words = _WORD.findall(line.split("#", 1)[0])
        if words:
            return "cell-" + "_".join(words)[:27].rstrip("_")
    return "cell"


def _forget_previous(ctx: Context, name: str) -> None:
    """If this notebook cell started a task under another name before (it gained or changed
    --name), remove that one: re-running a cell replaces what it started."""
    cid = cell_id()
    if cid is None:
        return
    old = ctx.state.cell_tasks.get(cid)
    ctx.state.cell_tasks[cid] = name
    if old is not None and old != name:
        scheduler = ctx.scheduler
        for task in scheduler.get_all_tasks(include_run_once=True):
            if task.task_name == old:
                scheduler.remove_task(task.task_id)


def _handler(ctx: Context, line: str, cell: str, name: str) -> Any:
    # IPython syntax in the body (`%time`, `!ls`) is transformed as in any cell.
    source = ctx.shell.transform_cell(cell)
    filename = f"<%%quiv cell {name} {_digest(cell)[:8]}>"
    register_source(filename, f"%%quiv {line}\n{cell}")  # line numbers match the cell as shown
    return compile_cell(source, ctx.user_ns, filename, first_line=2)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()
