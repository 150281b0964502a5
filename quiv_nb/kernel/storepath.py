"""Where the kernel's scheduler keeps its store (`QUIV_NB_STORE`, `%quiv store`, a per-user default).

Never beside the notebook: a file there would end up in the notebook's git repository. The default
is one database per notebook under the Jupyter data directory (`jupyter --data-dir`), private to the
user; a kernel that does not know its notebook shares one default database.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from .shell import ipython

__all__ = ["ENV", "choose", "notebook_path", "store_path"]

ENV = "QUIV_NB_STORE"  # a path, or "off"
_OFF = {"off", "none", "0", "false", "no", ""}
_chosen: list[str | None] = []  # `%quiv store PATH|off` for this kernel: [choice], or [] for the environment


def notebook_path() -> str | None:
    """The notebook this kernel runs, when the frontend said (`__session__` / `JPY_SESSION_NAME`), else None."""
    shell = ipython()
    session = getattr(shell, "user_ns", {}).get("__session__") if shell is not None else None
    session = session or os.environ.get("JPY_SESSION_NAME")
    return str(session) if session else None


def _default(notebook: str | None) -> Path | None:
    try:
        from jupyter_core.paths import jupyter_data_dir  # ipykernel's dependency; imported when first needed
    except ImportError:  # IPython without Jupyter (a terminal): no Jupyter data directory, so no default store
        return None
    folder = Path(jupyter_data_dir()) / "quiv_nb" / "stores"
    if notebook is None:
        return folder / "default.db"
    stem = re.sub(r"[^\w.-]+", "_", Path(notebook).stem)[:60] or "notebook"
    digest = hashlib.sha256(notebook.encode()).hexdigest()[:10]  # two notebooks with one name: two files
    return folder / f"{stem}-{digest}.db"


def store_path() -> str | None:
    """The store the kernel's next scheduler opens: `%quiv store`'s choice, else `QUIV_NB_STORE`,
    else the per-notebook default; None when turned off. Any thread."""
    if _chosen:
        return _chosen[0]
    value = os.environ.get(ENV)
    if value is not None:
        return None if value.strip().lower() in _OFF else value
    default = _default(notebook_path())
    return None if default is None else str(default)


def choose(value: str | None) -> None:
    """Set the store for this kernel: a path, "off"/None to turn it off (takes effect on the next scheduler)."""
    _chosen[:] = [None if value is None or value.strip().lower() in _OFF else value]
