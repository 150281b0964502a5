"""The store: job history and cached step results in one embedded SQLite file (stdlib `sqlite3`).

`Store` is the file; `null.NullStore` stands in when there is none. See docs/design.md, "Store".
`Store` is loaded on first use, so a scheduler without a store never imports `sqlite3`.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .null import NULL_STORE

if TYPE_CHECKING:
    from ..seams import JobStore
    from .store import Store

__all__ = ["Store", "open_store", "pin_of"]


def open_store(store: Any, retention: float, log: logging.Logger) -> JobStore:
    """The store for `Quiv(store=...)`: a path opens (or creates) a `Store`; None: `NULL_STORE`.

    Calling thread. Raises `QuivError` naming the file when it cannot be used, and
    `ConfigurationError` for anything but a path, a `Store` or None.
    """
    if store is None:
        return NULL_STORE
    if isinstance(store, (str, os.PathLike)):
        from .store import Store

        return Store(store, retention=retention, logger=log)
    if hasattr(store, "job_changed") and hasattr(store, "sync"):  # a `seams.JobStore` (a `Store` opened by hand)
        return store
    raise ConfigurationError(f"store must be a file path, a quiv_nb.store.Store or None, got {type(store).__name__}")


def pin_of(cache: Any) -> str | None:
    """`add_task`'s `cache`: the version pin it names, None for True/False; `ConfigurationError` otherwise."""
    if isinstance(cache, bool):
        return None
    if isinstance(cache, str) and cache.strip():
        return cache
    raise ConfigurationError(f"cache must be True, False or a version pin string like 'v2', got {cache!r}")


def __getattr__(name: str) -> Any:
    if name == "Store":
        from .store import Store

        return Store
    raise AttributeError(f"module 'quiv_nb.store' has no attribute {name!r}")
