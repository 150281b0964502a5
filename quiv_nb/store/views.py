"""Which widget view shows what: how a notebook's bars read after the kernel that drew them is gone.

A page renders a widget output by asking the kernel for its model. After the kernel died (or a page
missed the display update that replaced a bar with its static end: a reload, a restart) the saved
output still names that model, and a kernel without it makes the page read "model not found". So
each displayed bar records, per model id, the static rendering it should show if its process ended
now: while a job runs, "interrupted (kernel died)"; once it ended, its final rendering. The next
kernel of the notebook (`kernel.afterlife`) reopens those models from the rows its dead
predecessors left, and a page that loads or reloads then renders each one's end.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .db import connect
from .procs import alive, this_process

if TYPE_CHECKING:
    from .procs import Process
    from .writer import Op

__all__ = ["MAX_VIEWS", "View", "orphans", "prune_views", "record_op", "write_now"]

MAX_VIEWS = 2_000  # rows kept at most; the oldest go first
VIEW_DAYS = 30  # and none older than this
_PUT = (
    "INSERT OR REPLACE INTO views (model_id, notebook, html, plain, host, pid, pstart, updated) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class View:
    """A widget model a dead process displayed in `notebook`, with the static rendering it should show."""

    model_id: str
    notebook: str | None
    html: str
    plain: str


def record_op(model_id: str, notebook: str | None, html: str, plain: str, proc: Process) -> Op:
    """The write (run on the store's writer thread) that makes `model_id` show `html` / `plain` from now on."""
    row = (model_id, notebook, html, plain, *proc, time.time())

    def write(con: sqlite3.Connection) -> None:
        con.execute(_PUT, row)

    return write


def write_now(path: str | Path, views: list[View]) -> None:
    """Write `views` (as this process's) to the store at `path` in one transaction (calling thread).

    For the last renderings at kernel exit, drawn after the scheduler closed its store. Raises
    `QuivError` naming the file when it is not a usable store, `sqlite3.Error` when the write fails.
    """
    if not views:
        return
    proc, now = this_process(), time.time()
    con = connect(Path(path).expanduser().absolute())
    try:
        con.execute("BEGIN IMMEDIATE")
        con.executemany(_PUT, [(v.model_id, v.notebook, v.html, v.plain, *proc, now) for v in views])
        con.execute("COMMIT")
    finally:
        con.close()


def prune_views(con: sqlite3.Connection) -> None:
    """Forget views older than `VIEW_DAYS` or beyond `MAX_VIEWS` (inside the caller's transaction)."""
    con.execute("DELETE FROM views WHERE updated < ?", (time.time() - VIEW_DAYS * 86_400,))
    con.execute(
        "DELETE FROM views WHERE model_id IN (SELECT model_id FROM views ORDER BY updated DESC LIMIT -1 OFFSET ?)",
        (MAX_VIEWS,),
    )


def orphans(path: str | Path, notebook: str | None, limit: int = 200) -> list[View]:
    """The views of `notebook` whose process (on this host) no longer runs, newest first (calling thread).

    Opens the store at `path` for this one read; an absent file has none. At most `limit` views.
    Raises `QuivError` naming the file when it exists but is not a usable store.
    """
    path = Path(path).expanduser().absolute()
    if not path.exists():
        return []
    host, pid, _token = this_process()
    con = connect(path)
    try:
        rows = con.execute(
            "SELECT model_id, notebook, html, plain, pid, pstart FROM views "
            "WHERE notebook IS ? AND host = ? AND pid != ? ORDER BY updated DESC",
            (notebook, host, pid),
        ).fetchall()
    finally:
        con.close()
    found: list[View] = []
    living: dict[tuple[int, str], bool] = {}
    for model_id, nb, html, plain, owner, token in rows:
        if (owner, token) not in living:
            living[(owner, token)] = alive(owner, token)
        if not living[(owner, token)]:
            found.append(View(model_id, nb, html, plain))
            if len(found) >= limit:
                break
    return found
