"""A notebook's bars after their kernel: recorded while it runs, reopened by the next kernel.

While a kernel runs, each displayed widget bar records (`hooks.view_recorder`) what its model
should read if the kernel ended now, in the kernel scheduler's store (`store.views`). When the
next kernel of the same notebook installs quiv_nb (`%load_ext quiv_nb`, `get_scheduler()`),
`reopen_orphans` opens a widget under each model id a dead kernel of this notebook left, showing
that rendering: "interrupted (kernel died)" for a job that was running, the final bar for one
that ended. A page that loads or reloads while this kernel runs asks it for those models, so the
saved outputs that name them show how their jobs ended instead of "model not found".
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..render.ipyw import reopen
from ..store.views import View, orphans, write_now
from .session import current_scheduler
from .storepath import notebook_path, store_path

__all__ = ["record_view", "reopen_orphans", "write_last_views"]

_log = logging.getLogger("quiv_nb")
# The store views were last recorded to, and what was recorded once its scheduler had closed it: at
# kernel exit the final renderings ("interrupted (kernel restarted)", the frozen dashboard) are drawn
# after the scheduler shut down; `write_last_views` writes them then.
_last_store: list[Path] = []
_late: dict[str, View] = {}


def record_view(model_id: str, html: str, text: str) -> None:
    """Keep `html` / `text` as what `model_id` reads after this kernel (render pump thread; never raises).

    Written to the kernel scheduler's store when there is one (none before the first `get_scheduler`,
    none with `%quiv store off`).
    """
    scheduler = current_scheduler()
    store = scheduler.store if scheduler is not None else None
    if scheduler is not None and store is None:  # a scheduler without a store (`%quiv store off`): nothing
        _last_store.clear()
        _late.clear()
    elif store is not None:
        _last_store[:] = [store.path]
        for late in _late.values():  # recorded while no scheduler ran (`%quiv stop`, then a new one)
            if late.model_id != model_id:
                store.record_view(late.model_id, late.notebook, late.html, late.plain)
        _late.clear()
        store.record_view(model_id, notebook_path(), html, text)
    elif _last_store:  # the scheduler has shut down (kernel exit, `%quiv stop`): kept for `write_last_views`
        _late[model_id] = View(model_id, notebook_path(), html, text)


def write_last_views(timeout: float) -> bool:
    """Write what was recorded after the kernel's scheduler closed its store (main thread, at kernel exit).

    A `hooks.register_before_exit` step, after the render pump's last draws. Returns True; a store
    that cannot be written is logged.
    """
    views, path = list(_late.values()), _last_store[0] if _last_store else None
    _late.clear()
    if views and path is not None:
        try:
            write_now(path, views)
        except Exception:
            _log.warning("quiv_nb: could not record the last state of %d bars", len(views), exc_info=True)
    return True


def reopen_orphans() -> int:
    """Reopen the widget models this notebook's dead kernels displayed; the number reopened (kernel thread).

    Never raises: a store that cannot be read is logged (the scheduler reports it when it opens it).
    """
    path = store_path()
    if path is None:
        return 0
    try:
        views = orphans(path, notebook_path())
        for view in views:
            reopen(view.model_id, view.html)  # ipywidgets keeps it open (its registry of live widgets)
    except Exception:
        _log.warning("quiv_nb: could not reopen the bars an earlier kernel displayed", exc_info=True)
        return 0
    return len(views)
