"""`%quiv` / `%%quiv`: a thin parser over the public API, one small module per subcommand.

Layout: `magic.py` dispatches; `registry.py` holds the subcommands declared with IPython's
`magic_arguments` and builds every usage text from them; `cmd/` has one module per subcommand;
`args.py` splits a line and types its arguments; `callexpr.py` reads `FUNC(args)`;
`cellbody.py` compiles a `%%quiv` body with cell semantics; `results.py` turns a finished job
into a result or a raised failure; `handle.py` is the job handle `%quiv run` returns.
"""

from __future__ import annotations

from typing import Any

from ..kernel import install
from .magic import QuivMagics

__all__ = ["QuivMagics", "load_ipython_extension", "unload_ipython_extension"]

_loaded: dict[int, QuivMagics] = {}


def load_ipython_extension(ipython: Any) -> None:
    """Install the kernel package's hooks and register the magics (idempotent: a second `%load_ext` changes nothing)."""
    install()
    if id(ipython) in _loaded:
        return
    magics = QuivMagics(ipython)
    ipython.register_magics(magics)
    _loaded[id(ipython)] = magics


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics and shut the kernel's scheduler down (mirror of loading)."""
    from ..kernel import reset_scheduler

    magics = _loaded.pop(id(ipython), None)
    if magics is not None:
        for kind in ("line", "cell"):
            ipython.magics_manager.magics[kind].pop("quiv", None)
    reset_scheduler()
