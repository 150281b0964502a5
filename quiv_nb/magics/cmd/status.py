"""`%quiv` / `%quiv status`: the live dashboard."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.magic_arguments import magic_arguments

from ..context import Context
from ..registry import subcommand


@subcommand("status")
@magic_arguments("%quiv status")
def status(ctx: Context, opts: argparse.Namespace) -> Any:
    """Live dashboard of tasks and jobs with Cancel / Pause / Resume / Run-now buttons (also plain `%quiv`)."""
    from ...render.dashboard import dashboard

    return dashboard(ctx.scheduler)
