"""`%quiv cluster local | ADDRESS`: run the kernel's jobs on Dask."""

from __future__ import annotations

import argparse

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from ...kernel import use_executor
from .. import args as types
from ..context import Context, say
from ..registry import subcommand


@subcommand("cluster")
@magic_arguments("%quiv cluster")
@argument("address", metavar="local|ADDRESS", help="`local` starts a local cluster; else a scheduler address")
@argument("--workers", type=types.positive_int, default=2, metavar="N", help="workers of a local cluster (2)")
def cluster(ctx: Context, opts: argparse.Namespace) -> None:
    """Run jobs on Dask: a new local cluster, or the one at ADDRESS (restarts the kernel's scheduler)."""
    try:
        from ... import dask as quiv_dask
    except ImportError as exc:
        raise UsageError(f"%quiv cluster needs Dask: pip install 'quiv_nb[dask]' ({exc})") from None
    client = (
        quiv_dask.start_local_cluster(n_workers=opts.workers)
        if opts.address == "local"
        else quiv_dask.connect(opts.address)
    )
    use_executor(quiv_dask.DaskExecutor(client, close_client=True))
    ctx.state.clear()
    address = client.scheduler.address if client.scheduler is not None else opts.address
    say(f"quiv: jobs now run on Dask at {address}")
