"""A job's own output log: what its body wrote, kept with the job and bounded.

The scheduler gives every job one `JobLog`; whatever captures the job's stdout, stderr and log
records (see `quiv_nb.output`) appends to it from the worker thread, and `Job.output` reads it.
Only the newest `limit` characters are kept, so a job printing in a hot loop cannot grow memory.
"""

from __future__ import annotations

import threading
from collections import deque

__all__ = ["JobLog"]

DEFAULT_LIMIT = 1 << 20  # characters kept per job (about 1 MiB of text)


class JobLog:
    """Append-only, thread-safe, bounded text. `write` is called from any thread."""

    __slots__ = ("_chunks", "_dropped", "_limit", "_lock", "_size")

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._chunks: deque[str] = deque()
        self._size = 0
        self._dropped = 0  # characters forgotten from the front to stay under the limit
        self._limit = limit
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        """Append `text`; forget the oldest text beyond the limit. Never raises for a str."""
        if not text:
            return
        with self._lock:
            self._chunks.append(text)
            self._size += len(text)
            while self._size > self._limit and self._chunks:
                excess = self._size - self._limit
                head = self._chunks[0]
                if len(head) <= excess:
                    self._chunks.popleft()
                    self._size -= len(head)
                    self._dropped += len(head)
                else:
                    self._chunks[0] = head[excess:]
                    self._size -= excess
                    self._dropped += excess

    def text(self) -> str:
        """Everything kept, oldest first (prefixed by a marker when older text was dropped)."""
        with self._lock:
            body = "".join(self._chunks)
            if len(self._chunks) > 1:  # join once, keep one chunk: later reads are O(1)
                self._chunks.clear()
                self._chunks.append(body)
            dropped = self._dropped
        return f"[… {dropped} earlier characters dropped]\n{body}" if dropped else body

    def __len__(self) -> int:
        return self._size
