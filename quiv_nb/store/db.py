"""Opening a store's SQLite file: private folders, WAL mode, the schema, and honest errors.

Every connection is opened here. A file that is not a SQLite database (or cannot be read) is a
`QuivError` naming it, raised when the store is opened, never later from a background thread.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path

from ..errors import QuivError

__all__ = ["BUSY_TIMEOUT", "connect", "make_private_dir", "private", "unreadable"]

BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's write lock before failing

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    task_name TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    duration REAL,
    error TEXT,
    traceback TEXT,
    output TEXT NOT NULL DEFAULT '',
    attempt INTEGER NOT NULL DEFAULT 0,
    cache_key TEXT,
    cached INTEGER NOT NULL DEFAULT 0,
    computed_at REAL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pstart TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_unfinished ON jobs (status) WHERE status IN ('scheduled', 'running');
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,
    task_name TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    computed_at REAL NOT NULL,
    last_used REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS views (
    model_id TEXT PRIMARY KEY,
    notebook TEXT,
    html TEXT NOT NULL,
    plain TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pstart TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS views_of_notebook ON views (notebook, updated);
DROP TABLE IF EXISTS displays;
"""


def unreadable(path: Path, exc: BaseException) -> QuivError:
    """The error for a store file SQLite cannot use, saying what to do."""
    return QuivError(
        f"the quiv_nb store {str(path)!r} cannot be used ({exc}); move or delete that file, "
        "or pass another store= (QUIV_NB_STORE in a notebook, or 'off')"
    )


def make_private_dir(folder: Path) -> None:
    """Create `folder` and its missing parents, each readable by this user only (0700)."""
    missing = []
    for parent in (folder, *folder.parents):
        if parent.exists():
            break
        missing.append(parent)
    for parent in reversed(missing):
        try:
            parent.mkdir(mode=0o700)
        except FileExistsError:  # another process made it meanwhile
            pass
        os.chmod(parent, 0o700)  # mkdir's mode is masked by the umask


def private(path: Path) -> bool:
    """Whether `path` belongs to this user and nobody else may write it (its folder likewise, or sticky)."""
    getuid = getattr(os, "getuid", None)
    if getuid is None:  # Windows: folder ACLs are the user's profile's; nothing to compare here
        return True
    try:
        for p in (path, path.parent):
            st = p.stat()
            if p is path and st.st_uid != getuid():
                return False
            if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (p is not path and st.st_mode & stat.S_ISVTX):
                return False
    except OSError:
        return False
    return True


def _enter_wal(con: sqlite3.Connection) -> None:
    """Switch the file to WAL mode, waiting (up to `BUSY_TIMEOUT`) while another connection switches it.

    SQLite answers this pragma "database is locked" at once, without its busy handler, when another
    connection is switching the same new file at the same moment (two kernels opening the default
    store together: 35 of 900 opens by three threads at once, before this wait). So wait here.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT
    pause = 0.001
    while True:
        try:
            con.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating it 0600 if needed) the store at `path`, in WAL mode with the schema in place.

    Any thread; the connection may be used from other threads under the caller's own lock.
    Raises `QuivError` naming the file when it is not a database or cannot be opened.
    """
    make_private_dir(path.parent)
    try:
        if not path.exists():
            # Created private (an existing file keeps its mode). Only a file nobody has open: closing any
            # descriptor of a file drops every POSIX lock this process holds on it, SQLite's included.
            try:
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:  # another process created it meanwhile
                pass
        con = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    except OSError as exc:
        raise unreadable(path, exc) from None
    except sqlite3.Error as exc:
        raise unreadable(path, exc) from None
    try:
        _enter_wal(con)
        # WAL + NORMAL: a commit survives a killed process (not a power cut) without an fsync each.
        con.execute("PRAGMA synchronous=NORMAL")
        con.executescript(_SCHEMA)
        con.execute("SELECT count(*) FROM jobs").fetchone()
    except sqlite3.Error as exc:
        con.close()
        raise unreadable(path, exc) from None
    for suffix in ("-wal", "-shm"):  # SQLite creates these with the umask's mode: keep them private
        side = Path(f"{path}{suffix}")
        try:
            if side.exists() and side.stat().st_uid == getattr(os, "getuid", lambda: -1)():
                os.chmod(side, 0o600)
        except OSError:
            pass
    return con
