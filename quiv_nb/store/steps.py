"""Cached steps: which results the store holds, their keys per run, and reading/writing them.

Called by the store on the threads its docstrings name: `base` on the adding thread, `key_for`
with no lock held (it may pickle upstream results), `has`/`ended` under the scheduler lock (dict
lookups), `dump` on the worker that finished the job (pickling, before the lock), `load` after
the lock is released, and
the blob writes on the store's writer thread. A result that cannot be pickled, or a task whose
key cannot be computed, logs one warning per task and runs uncached.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from .keys import Uncacheable, base_key, result_key, step_key

if TYPE_CHECKING:
    from datetime import datetime

    from ..records import JobRecord, TaskRecord
    from .blobs import BlobFolder
    from .writer import Writer

__all__ = ["CACHE_BYTES", "StepCache"]

CACHE_BYTES = 1 << 30  # total size of cached results kept per store (1 GiB); least recently used go first


class StepCache:
    """The cache part of a store: an in-memory index of its entries plus the blob folder."""

    def __init__(self, blobs: BlobFolder, writer: Writer, log: logging.Logger, limit: int, *, enabled: bool) -> None:
        self._blobs = blobs
        self._writer = writer
        self._log = log
        self._limit = limit
        self.enabled = enabled  # False: a folder others may write, so no result is read from it
        self._index: dict[str, tuple[str, float]] = {}  # key -> (sha256, computed_at)
        self._result_keys: dict[str, str] = {}  # task name -> key of its latest cached result
        self._pending: dict[str, tuple[str, bytes]] = {}  # job id -> (sha256, pickle) until it ends
        self._unwritten: dict[str, bytes] = {}  # key -> pickle, until the writer thread has written its file
        self._warned: set[str] = set()
        self._warn_lock = threading.Lock()

    def load_index(self, con: sqlite3.Connection) -> None:
        """Read the entries other processes left (opening thread)."""
        for key, sha, computed in con.execute("SELECT key, sha256, computed_at FROM cache"):
            self._index[key] = (sha, computed)

    def warn_once(self, task_name: str, why: str) -> None:
        with self._warn_lock:
            if task_name in self._warned:
                return
            self._warned.add(task_name)
        self._log.warning("quiv_nb: task %r runs uncached: %s", task_name, why)

    # ------------------------------------------------------------------ keys

    def base(self, task: TaskRecord, pin: str | None) -> str | None:
        """The task's key before upstream results, or None (warned) when it cannot be cached."""
        if not self.enabled:
            return None
        try:
            return base_key(task.name, task.func, pin, task.args, task.kwargs)
        except Uncacheable as exc:
            self.warn_once(task.name, str(exc))
            return None

    def key_for(self, task: TaskRecord, upstream: dict[str, Any]) -> str | None:
        """The key of a run of `task` given `{upstream name: result}` (no lock held: it may pickle them)."""
        base = task.cache_base
        if base is None:
            return None
        keys = {}
        for name, result in upstream.items():
            key = self._result_keys.get(name) or result_key(result)
            if key is None:
                self.warn_once(task.name, f"the result of its upstream task {name!r} cannot be pickled")
                return None
            keys[name] = key
        return step_key(base, keys)

    def has(self, key: str) -> bool:
        return key in self._index

    # ------------------------------------------------------------------ results

    def dump(self, job: JobRecord, result: Any) -> None:
        """Pickle a cached step's result for `ended` (the worker thread, before the scheduler lock)."""
        try:
            data = pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            self.warn_once(job.task_name, f"its result cannot be pickled ({type(exc).__name__}: {exc})")
            return
        self._pending[job.job_id] = (hashlib.sha256(data).hexdigest(), data)

    def ended(self, job: JobRecord) -> None:
        """`job` reached its final status (scheduler lock held): keep its pickled result if it completed."""
        pending = self._pending.pop(job.job_id, None)
        key = job.cache_key
        if job.status.value != "completed":
            return
        if key is None:  # an uncached run: its result's key is its digest, not an earlier cached run's key
            self._result_keys.pop(job.task_name, None)
            return
        self._result_keys[job.task_name] = key
        if job.cached:  # a reused result: just note that it was used
            self._writer.append_op(
                lambda con: con.execute("UPDATE cache SET last_used=? WHERE key=?", (time.time(), key))
            )
            return
        if pending is None:
            return
        sha, data = pending
        computed = time.time()
        self._index[key] = (sha, computed)
        self._unwritten[key] = data  # a hit before the next commit reads it from here
        self._writer.append_op(self._put_op(key, job.task_name, sha, data, computed))

    def _put_op(self, key: str, task_name: str, sha: str, data: bytes, computed: float) -> Callable[..., None]:
        def put(con: sqlite3.Connection) -> None:
            self._blobs.write(key, data)
            con.execute(
                "INSERT OR REPLACE INTO cache (key, task_name, size, sha256, computed_at, last_used) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key, task_name, len(data), sha, computed, computed),
            )
            self._evict(con)
            self._unwritten.pop(key, None)

        return put

    def _evict(self, con: sqlite3.Connection) -> None:
        """Forget least-recently-used entries until the total is within the limit (writer thread)."""
        (total,) = con.execute("SELECT coalesce(sum(size), 0) FROM cache").fetchone()
        if total <= self._limit:
            return
        for key, size in con.execute("SELECT key, size FROM cache ORDER BY last_used").fetchall():
            if total <= self._limit:
                break
            con.execute("DELETE FROM cache WHERE key=?", (key,))
            self._blobs.delete(key)
            self._index.pop(key, None)
            total -= size

    def load(self, key: str) -> tuple[bool, Any, datetime | None]:
        """(found, result, computed_at) of `key` (no lock held); a missing or damaged file is not found."""
        entry = self._index.get(key)
        if entry is None:
            return False, None, None
        sha, computed = entry
        data = self._unwritten.get(key) or self._blobs.read(key, sha)
        if data is not None:
            try:
                result = pickle.loads(data)
            except Exception:
                self._log.warning(
                    "quiv_nb: a cached result in %s cannot be unpickled; running the step", self._blobs.folder
                )
            else:
                from datetime import datetime, timezone

                return True, result, datetime.fromtimestamp(computed, timezone.utc)
        self._index.pop(key, None)
        return False, None, None

    def clear(self, con: sqlite3.Connection, task_name: str | None) -> int:
        """Forget the entries of `task_name` (all when None); return how many (calling thread)."""
        where, params = ("", ()) if task_name is None else (" WHERE task_name=?", (task_name,))
        con.execute("BEGIN IMMEDIATE")
        try:
            keys = [k for (k,) in con.execute(f"SELECT key FROM cache{where}", params)]
            con.execute(f"DELETE FROM cache{where}", params)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        for key in keys:
            self._blobs.delete(key)
            self._index.pop(key, None)
        for name in list(self._result_keys):
            if task_name is None or name == task_name:
                self._result_keys.pop(name, None)
        return len(keys)
