"""`Store`: one SQLite file that keeps job history and cached step results across processes.

The scheduler talks to it through `seams.JobStore`: O(1) calls under its lock (a job changed,
whether a result is held) and a few off the lock (a run's cache key, pickling and loading
results). Writes happen on the writer thread (`writer.py`); reads (`history`, `clear_cache`) on
the calling thread, through a second connection of its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .blobs import BlobFolder
from .db import connect, private, unreadable
from .procs import alive, this_process
from .rows import COLUMNS, job_of
from .steps import CACHE_BYTES, StepCache
from .views import prune_views, record_op
from .writer import Writer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from ..models import Job
    from ..records import JobRecord, TaskRecord

__all__ = ["MAX_ROWS", "Store"]

MAX_ROWS = 10_000  # job rows kept at most, whatever the retention time
PRUNE_EVERY = 1_000  # finished jobs between two prunes while the store is open (and once when it opens)
_UNFINISHED = ("scheduled", "running")
_DIED = "interrupted: its process ended while the job was queued or running"


class Store:
    """Open (or create, with its folders) the store at `path`; raises `QuivError` if it is unusable.

    `retention` is how long finished jobs are kept (seconds); `cache_bytes` bounds the cached
    results' total size. Cached results are read only when the store's folder belongs to this
    user and nobody else can write it; otherwise one warning names the folder and steps run
    uncached. Opening marks jobs left unfinished by dead processes `INTERRUPTED`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention: float = 3600.0,
        cache_bytes: int = CACHE_BYTES,
        logger: logging.Logger | None = None,
    ) -> None:
        self.path = Path(path).expanduser().absolute()
        self._log = logger or logging.getLogger("quiv_nb")
        self._retention = retention
        self._proc = this_process()
        self._read = connect(self.path)
        self._read_lock = threading.Lock()
        try:
            self._mark_interrupted()
            self._read.execute("BEGIN IMMEDIATE")
            self._prune(self._read)
            self._read.execute("COMMIT")
        except sqlite3.Error as exc:
            self._read.close()
            raise unreadable(self.path, exc) from None
        folder = self.path.with_name(self.path.name + ".cache")
        trusted = private(self.path) and (not folder.exists() or private(folder))
        if not trusted:
            self._log.warning(
                "quiv_nb: the store folder %s is writable by other users or not yours: cached results "
                "are not read from it (steps run uncached); use a private folder for the store",
                self.path.parent,
            )
        self._writer = Writer(connect(self.path), self._proc, self._log)
        self._steps = StepCache(BlobFolder(folder), self._writer, self._log, cache_bytes, enabled=trusted)
        if trusted:
            with self._read_lock:
                self._steps.load_index(self._read)
        self._ended = 0  # jobs finished through this store (scheduler lock held)
        self._closed = False

    def __repr__(self) -> str:
        return f"<quiv_nb Store {str(self.path)!r}>"

    # ------------------------------------------------------------------ opening (calling thread)

    def _mark_interrupted(self) -> None:
        """Jobs this host's dead processes left queued or running are now INTERRUPTED."""
        host = self._proc[0]
        con = self._read
        owners = con.execute(
            "SELECT DISTINCT pid, pstart FROM jobs WHERE status IN (?, ?) AND host=?", (*_UNFINISHED, host)
        ).fetchall()
        dead = [(pid, token) for pid, token in owners if not alive(pid, token)]
        if dead:
            con.execute("BEGIN IMMEDIATE")
            con.executemany(
                "UPDATE jobs SET status='interrupted', error=? "
                "WHERE status IN (?, ?) AND host=? AND pid=? AND pstart=?",
                [(_DIED, *_UNFINISHED, host, pid, token) for pid, token in dead],
            )
            con.execute("COMMIT")

    def _prune(self, con: sqlite3.Connection) -> None:
        """Forget finished jobs older than the retention time or beyond `MAX_ROWS` (inside a transaction)."""
        horizon = time.time() - self._retention
        con.execute(
            "DELETE FROM jobs WHERE status NOT IN (?, ?) AND coalesce(ended_at, started_at, created) < ?",
            (*_UNFINISHED, horizon),
        )
        con.execute(
            "DELETE FROM jobs WHERE job_id IN (SELECT job_id FROM jobs WHERE status NOT IN (?, ?) "
            "ORDER BY coalesce(ended_at, started_at, created) DESC LIMIT -1 OFFSET ?)",
            (*_UNFINISHED, MAX_ROWS),
        )
        prune_views(con)

    # ------------------------------------------------------------------ seams.JobStore (scheduler side)

    def job_changed(self, job: JobRecord) -> None:
        """Queue `job`'s row for the next batch (scheduler lock held: one deque append)."""
        self._writer.append_job(job)

    def job_ended(self, job: JobRecord) -> None:
        """`job` is final (scheduler lock held): queue its row, and keep a cached step's result."""
        self._writer.append_job(job)
        self._steps.ended(job)
        self._ended += 1
        if self._ended % PRUNE_EVERY == 0:  # a long-lived process keeps the file bounded too
            self._writer.append_op(self._prune)

    def cache_base(self, task: TaskRecord, pin: str | None) -> str | None:
        """A `cache=` task's key before upstream results, None if it cannot be cached (adding thread)."""
        return self._steps.base(task, pin)

    def step_key(self, task: TaskRecord, upstream: dict[str, Any]) -> str | None:
        """The key of a run of `task` with these upstream results (no lock held: it may pickle them)."""
        return self._steps.key_for(task, upstream)

    def has_result(self, key: str) -> bool:
        """Whether a result for `key` is held (scheduler lock held: a dict lookup)."""
        return self._steps.has(key)

    def load_result(self, key: str) -> tuple[bool, Any, datetime | None]:
        """(found, result, computed_at) for `key` (no lock held; reads and unpickles a file)."""
        return self._steps.load(key)

    def dump_result(self, job: JobRecord, result: Any) -> None:
        """Pickle a cached step's result before its job is finalized (worker thread, no lock)."""
        self._steps.dump(job, result)

    # ------------------------------------------------------------------ the facade's calls

    def sync(self, timeout: float | None = 30.0) -> bool:
        """Block until every write queued so far is committed; False on timeout (calling thread)."""
        return self._writer.sync(timeout)

    def history(self, task_name: str | None = None, limit: int = 100) -> list[Job]:
        """Finished and interrupted jobs on record, newest first (calling thread; syncs first)."""
        self._writer.sync()
        where = "status NOT IN (?, ?)" + ("" if task_name is None else " AND task_name=?")
        params: tuple[Any, ...] = _UNFINISHED if task_name is None else (*_UNFINISHED, task_name)
        sql = (
            f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE {where} "
            "ORDER BY coalesce(ended_at, started_at, created) DESC LIMIT ?"
        )
        with self._reading() as con:
            rows = con.execute(sql, (*params, limit)).fetchall()
        return [job_of(row) for row in rows]

    def clear_cache(self, task_name: str | None = None) -> int:
        """Forget cached results (of `task_name`, or all); return how many (calling thread)."""
        self._writer.sync()
        with self._reading() as con:
            return self._steps.clear(con, task_name)

    def record_view(self, model_id: str, notebook: str | None, html: str, plain: str) -> None:
        """Widget model `model_id` (in `notebook`, if known) should read `html` / `plain` once this process ends.

        Any thread; written with the next batch, so it costs the caller one deque append. See `views`.
        """
        self._writer.append_op(record_op(model_id, notebook, html, plain, self._proc))

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The reading connection, held; once closed, a fresh one for this call (history outlives a shutdown)."""
        with self._read_lock:
            if not self._closed:
                yield self._read
                return
            con = connect(self.path)
            try:
                yield con
            finally:
                con.close()

    def close(self, timeout: float | None = 30.0) -> None:
        """Commit what is queued, stop the writer thread, close the files (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._writer.sync(timeout)
        # The reading connection first, while the writer's is open: the last one closed checkpoints
        # the WAL, and the writer thread does that after `close` returns (see `Writer.close`).
        with self._read_lock:
            self._read.close()
        self._writer.close(timeout)
