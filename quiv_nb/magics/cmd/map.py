"""`%quiv map FUNC ITEMS`: one background job that calls FUNC on each item, one bar in this cell.

FUNC may be a call, `f(1, x=2)`: each item is then its first argument, those given follow it.
Re-running the cell while its map still runs shows that map's bar again, as `%quiv run` does
(`--new` starts another).
"""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from ...errors import ConfigurationError
from ...mapfanout import item_first
from .. import args as types
from ..callexpr import parse_call
from ..context import Context, make_bar
from ..handle import JobHandle
from ..registry import subcommand
from . import _options as option
from .run import cell_key, reattach


@subcommand("map")
@magic_arguments("%quiv map")
@argument(
    "func", metavar="FUNC",
    help="the function to call on each item: fetch, or fetch(1, timeout=5) to call fetch(item, 1, timeout=5)",
)  # fmt: skip
@argument("items", nargs="+", metavar="ITEMS", help="an expression for the items: urls, range(100), [1, 2, 3]")
@argument("--name", metavar="NAME", help="the job's task name (default: FUNC's name)")
@argument("--workers", type=types.positive_int, metavar="K", help="run at most K items at once (default: the pool)")
@argument("--fail-fast", action="store_true", help="stop at the first item that fails")
@option.timeout
@option.cache
@option.bar
@option.new
def map_(ctx: Context, opts: argparse.Namespace) -> JobHandle:
    """Call FUNC on each item in one background job, one bar here; `x = %quiv wait` gives the list."""
    call = parse_call(opts.func, ctx.user_ns)
    text = " ".join(opts.items)
    name = opts.name or call.name
    key = (cell_key(), f"map {opts.func} {text} {name}")
    running = None if opts.new else reattach(ctx, key, name)
    if running is not None:
        return running
    try:
        func = item_first(call.func, call.args, call.kwargs)
    except ConfigurationError as exc:
        raise UsageError(f"FUNC `{opts.func}`: {exc}") from None
    items = _items(text, ctx.user_ns)
    bar = make_bar(opts.bar, name)
    job_id = ctx.scheduler.map(
        func, items, name=name, max_workers=opts.workers, fail_fast=opts.fail_fast, progress_callback=bar,
        timeout=opts.timeout, **ctx.api_kwargs(ctx.scheduler.map, cache=opts.cache),
    )  # fmt: skip
    ctx.last_job = job_id
    handle = ctx.state.line_runs[key] = JobHandle(job_id, bar)
    return handle


def _items(text: str, user_ns: dict[str, Any]) -> Any:
    """ITEMS evaluated in the notebook namespace (main thread); `UsageError` quoting it if that fails."""
    try:
        return eval(text, user_ns)  # the user's own expression, as typed in their cell
    except Exception as exc:
        raise UsageError(f"cannot evaluate ITEMS `{text}`: {type(exc).__name__}: {exc}") from None
