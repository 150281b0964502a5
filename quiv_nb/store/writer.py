"""The store's writer thread: job rows and other writes leave the hot path and land in batches.

The scheduler only appends to a deque (an atomic C call, no lock, no wake-up); the thread
`quiv_nb-store` wakes every `INTERVAL` seconds, or at once when someone waits in `sync`, and
commits everything pending in one transaction. A job appended several times before a commit is
written once, in its latest state. `sync` returns when everything appended before it is
committed, which is how "what a wait returned is on disk" holds.
"""

from __future__ import annotations

import atexit
import logging
import sqlite3
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from .rows import COLUMNS, rows_of

if TYPE_CHECKING:
    from ..records import JobRecord
    from .procs import Process

__all__ = ["INTERVAL", "Writer"]

INTERVAL = 0.25  # seconds between two commits: a job's start is on disk well within a second
EXIT_TIMEOUT = 5.0  # seconds the interpreter's exit waits for the last commit

_UPSERT = f"INSERT OR REPLACE INTO jobs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"

Op = Callable[[sqlite3.Connection], object]  # a write run inside the batch's transaction (its value ignored)


class Writer:
    """Batches writes to one connection on a thread of its own (started on first use)."""

    def __init__(self, con: sqlite3.Connection, proc: Process, log: logging.Logger) -> None:
        self._con = con
        self._proc = proc
        self._log = log
        self._jobs: deque[JobRecord] = deque()
        self._ops: deque[Op] = deque()
        self._created: dict[str, float] = {}  # job id -> when first queued (writer thread only)
        self._cond = threading.Condition()
        self._appended = 0  # sync targets: appends counted under `_cond`
        self._committed = 0
        self._hurry = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.append_job: Callable[[JobRecord], None] = self._append_job_first

    # ------------------------------------------------------------------ any thread

    def _append_job_first(self, job: JobRecord) -> None:
        self._ensure_thread()
        self.append_job = self._jobs.append  # from now on a bare deque append
        self._jobs.append(job)

    def append_op(self, op: Op) -> None:
        """Queue `op(connection)` for the next batch (any thread)."""
        self._ensure_thread()
        self._ops.append(op)

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None and not self._closed:
                    thread = threading.Thread(target=self._run, name="quiv_nb-store", daemon=True)
                    thread.start()
                    self._thread = thread
                    # A process that ends without `shutdown()` still commits what it recorded (weakly
                    # held: a store that was garbage-collected has nothing left to commit).
                    ref = weakref.ref(self)
                    atexit.register(lambda: (writer := ref()) is not None and writer.sync(EXIT_TIMEOUT))

    def sync(self, timeout: float | None = 30.0) -> bool:
        """Block until everything appended before this call is committed; False on timeout (calling thread)."""
        if self._thread is None or (not self._jobs and not self._ops and self._committed == self._appended):
            return True
        with self._cond:
            self._appended += 1
            target = self._appended
            self._hurry = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._committed >= target or self._closed, timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Commit what is pending, stop the thread and close the connection (idempotent)."""
        self.sync(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if thread is None or not thread.is_alive():
            self._con.close()

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._hurry and not self._closed:
                    self._cond.wait(INTERVAL)
                self._hurry = False
                target, closing = self._appended, self._closed
            self._commit_pending()
            with self._cond:
                self._committed = max(self._committed, target)
                self._cond.notify_all()
            if closing:
                self._commit_pending()  # anything appended while the last batch ran
                return

    def _commit_pending(self) -> None:
        jobs, ops = self._jobs, self._ops
        # Exactly as many as are queued now: appends from other threads meanwhile wait for the next batch.
        pop_job, pop_op = jobs.popleft, ops.popleft
        latest = {job.job_id: job for job in [pop_job() for _ in range(len(jobs))]}  # each job once, latest state
        batch = [pop_op() for _ in range(len(ops))]
        if not latest and not batch:
            return
        rows = rows_of(latest.values(), self._created, time.time(), self._proc)
        try:
            self._write(rows, batch)
        except Exception:
            self._log.exception("quiv_nb: could not write %d job record(s) to the store", len(rows))

    def _write(self, rows: list[tuple[Any, ...]], ops: list[Op]) -> None:
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                con.executemany(_UPSERT, rows)
            for op in ops:
                # Each op in a savepoint: one that fails (a full disk for a blob) costs only itself.
                con.execute("SAVEPOINT op")
                try:
                    op(con)
                except Exception:
                    con.execute("ROLLBACK TO op")
                    self._log.exception("quiv_nb: a store write failed")
                con.execute("RELEASE op")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
