"""The store: job history and cached step results in one embedded SQLite file (stdlib `sqlite3`).

`Store` is the file; `null.NullStore` stands in when there is none. See docs/design.md, "Store".
`Store` is loaded on first use, so a scheduler without a store never imports `sqlite3`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Store"]


def __getattr__(name: str) -> Any:
    if name == "Store":
        from .store import Store

        return Store
    raise AttributeError(f"module 'quiv_nb.store' has no attribute {name!r}")
