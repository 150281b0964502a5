"""`%quiv map FUNC ITEMS`: one background job that calls FUNC on each item, one bar in this cell."""

from __future__ import annotations

import argparse
import functools
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from .. import args as types
from ..callexpr import parse_call
from ..context import Context, make_bar
from ..handle import JobHandle
from ..registry import subcommand
from . import _options as option


@subcommand("map")
@magic_arguments("%quiv map")
@argument("func", metavar="FUNC", help="the function to call on each item: fetch, or with keywords: fetch(timeout=5)")
@argument("items", nargs="+", metavar="ITEMS", help="an expression for the items: urls, range(100), [1, 2, 3]")
@argument("--name", metavar="NAME", help="the job's task name (default: FUNC's name)")
@argument("--workers", type=types.positive_int, metavar="K", help="run at most K items at once (default: the pool)")
@argument("--fail-fast", action="store_true", help="stop at the first item that fails")
@option.timeout
@option.cache
@option.bar
def map_(ctx: Context, opts: argparse.Namespace) -> JobHandle:
    """Call FUNC on each item in one background job, one bar here; `x = %quiv wait` gives the list."""
    call = parse_call(opts.func, ctx.user_ns)
    if call.args:
        raise UsageError(
            f"FUNC `{opts.func}` gets each item as its first argument: give it keyword arguments only, "
            "like fetch(timeout=5)"
        )
    func = functools.partial(call.func, **call.kwargs) if call.kwargs else call.func
    items = _items(" ".join(opts.items), ctx.user_ns)
    name = opts.name or call.name
    bar = make_bar(opts.bar, name)
    job_id = ctx.scheduler.map(
        func, items, name=name, max_workers=opts.workers, fail_fast=opts.fail_fast, progress_callback=bar,
        timeout=opts.timeout, **ctx.api_kwargs(ctx.scheduler.map, cache=opts.cache),
    )  # fmt: skip
    ctx.last_job = job_id
    return JobHandle(job_id, bar)


def _items(text: str, user_ns: dict[str, Any]) -> Any:
    """ITEMS evaluated in the notebook namespace (main thread); `UsageError` quoting it if that fails."""
    try:
        return eval(text, user_ns)  # the user's own expression, as typed in their cell
    except Exception as exc:
        raise UsageError(f"cannot evaluate ITEMS `{text}`: {type(exc).__name__}: {exc}") from None
