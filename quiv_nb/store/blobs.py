"""Cached results on disk: one pickle file per cache key in the store's private folder.

Files are written to a temporary name and renamed, so a process killed mid-write leaves either
no file or a whole one; each is checked against the digest recorded with it before it is
unpickled. Files are created 0600 inside a 0700 folder.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .db import make_private_dir

__all__ = ["BlobFolder"]


class BlobFolder:
    """Pickled results by cache key under `folder` (any thread; each call is one file operation)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.pickle"

    def write(self, key: str, data: bytes) -> None:
        """Store `data` under `key` atomically; raises `OSError` (e.g. a full disk)."""
        make_private_dir(self.folder)
        tmp = self.folder / f".{key}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self._path(key))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def read(self, key: str, sha256: str) -> bytes | None:
        """The bytes stored under `key` if they match `sha256`, else None (missing or damaged)."""
        try:
            data = self._path(key).read_bytes()
        except OSError:
            return None
        return data if hashlib.sha256(data).hexdigest() == sha256 else None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
