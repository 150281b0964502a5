"""A one-off job's output in its notebook cell: its new lines as ordinary `stream` messages, budgeted.

One `CellStream` per one-off task (`run_once=True`, `%quiv run`) added from a cell, made by
`quiv_nb.kernel` with a `CellSink` that sends with that cell's parent header. It is the
`OutputRoute` of the task's jobs (`quiv_nb.output`) and a pump `Drawable`. A cell running a job
once reads like a cell that printed: stdout in the cell's stdout stream, stderr in the red stderr box,
and its failure as one headline line with the traceback collapsed (`render.failure`); recurring tasks
use `OutputArea` instead (one area showing the latest run).

- Each message carries only text not sent before, in order: stdout as name "stdout", stderr as
  "stderr" (one message per change of stream), `display(...)` messages in their place between them.
  Text is whole lines; a partial line only where the job flushed one itself (`flush()`, tqdm's "\\r"
  updates) or a line outgrew 8 KiB, as on a terminal.
- Budget: pending text is sent at most once per `min_interval` (0.25 s; 1 s while the job writes
  faster than that lets through), within the pump's shared message budget and the shared byte
  budget. At most `MAX_LINES` lines / `MAX_CHARS` characters wait; beyond, the oldest are dropped
  and the next message starts with "… N lines elided (see %quiv log JOB_ID)". `Job.output` keeps
  them all (up to its bound).
- End of the job: what it printed is sent at once, on the job's own thread, before its outcome goes
  back to the scheduler, so it arrives before the bar's final state and before `wait_for_job`
  returns. The failure is sent at once too, in its place after the job's lines, when the scheduler
  records it (before it settles the job's waiters): a `display_data` whose text/html is the headline
  with the trimmed traceback in a closed `<details>` and whose text/plain has both. Not a stderr
  stream: a notebook that expects the error and catches it should not show a pink traceback. These synchronous sends are
  ordered with the pump's draws by a send lock and share `SYNC_RATE`; beyond it (thousands of
  one-off jobs ending within a second) they fall back to the pump and arrive a moment later. They
  pass the pump's gate (`RenderPump.send_now`), so they stop when the pump closes at kernel exit.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import uuid
from collections import deque
from typing import Any

from .failure import FailureNote, FailureRepeats
from .output_area import (
    MAX_CHARS,
    MAX_LINES,
    SHARED_BYTES,
    CellSink,
    DisplayQueue,
    display_size,
    elision_marker,
    send_display,
    split_lines,
)
from .pump import RenderPump, TokenBucket, get_pump

__all__ = ["MAX_MESSAGES", "SYNC_RATE", "CellStream"]

MAX_MESSAGES = 8  # messages per send; a job alternating stdout/stderr line by line gets its latest lines
SYNC_RATE = 100.0  # end-of-job and failure sends per second, all one-off jobs together (the rest: the pump)
_SYNC = TokenBucket(SYNC_RATE, SYNC_RATE / 2)
_ids = itertools.count()

_Out = tuple[str, Any, Any]  # ("stream", name, text), ("display", msg, force) or ("failure", note, display id)


class CellStream:
    """One one-off task's output in one cell. Route methods run on job threads; `pump_draw` on the pump."""

    def __init__(self, sink: CellSink, *, pump: RenderPump | None = None, budget: TokenBucket | None = None) -> None:
        self._sink = sink
        self._pump = pump
        self._budget = budget or SHARED_BYTES
        self._key = f"quiv-out-{uuid.uuid4().hex[:12]}-{next(_ids)}"
        self._lock = threading.Lock()  # the recorded state
        self._send_lock = threading.Lock()  # taking and sending, so two senders never reorder messages
        self._seq = itertools.count()  # call order across text, displays and failures
        self._job: str | None = None
        self._text: deque[tuple[int, str, str]] = deque()  # (seq, stream, whole lines) not sent yet
        self._chars = 0
        self._lines = 0
        self._elided = 0  # lines dropped since the last send
        self._flooding = False  # the last send had an elision: draw less often
        self._failures: list[tuple[int, FailureNote]] = []
        self._failures_made = 0  # failure displays sent so far (each has its own display id)
        self._repeats = FailureRepeats()
        self._displays = DisplayQueue(self._key)
        self.messages_sent = 0  # for tests and benchmarks (under the send lock)
        self.bytes_sent = 0

    @property
    def min_interval(self) -> float:
        """Seconds between two sends: 0.25, or 1 while the job floods (a cell cannot show it all anyway)."""
        return 1.0 if self._flooding else 0.25

    @property
    def sink(self) -> CellSink:
        return self._sink

    # ------------------------------------------------------------------ route (job threads)

    def job_started(self, job_id: str) -> None:
        with self._lock:
            self._job = job_id
            self._displays.new_run()

    def job_text(self, job_id: str, stream: str, text: str) -> None:
        """Record `text` for the next send (O(1) for one line); on the job's thread, never sends.

        Not filtered by job id: a one-off task's jobs (its retries) run one after another into one cell.
        """
        with self._lock:
            text_queue = self._text
            if text.find("\n") == len(text) - 1:  # the common case: one whole line
                text_queue.append((next(self._seq), stream, text))
                self._lines += 1
            else:  # line by line, so a flood in one write is trimmed like one in many
                lines = split_lines(text)
                text_queue.extend((next(self._seq), stream, line) for line in lines)
                self._lines += len(lines)
            self._chars += len(text)
            while (self._lines > MAX_LINES or self._chars > MAX_CHARS) and len(text_queue) > 1:
                _, _, dropped = text_queue.popleft()
                self._chars -= len(dropped)
                self._lines -= 1
                self._elided += 1
        self._request(False)

    def job_ended(self, job_id: str) -> None:
        """The body returned: send what it printed now, on its thread, before the scheduler hears of it."""
        self.flush_now()

    def job_failed(self, job_id: str, headline: str, traceback: str) -> None:
        """The scheduler's failure record (on the thread that logs it): sent at once, as a display."""
        with self._lock:
            note = self._repeats.describe(headline, traceback, repeat_traceback=False)
            self._failures.append((next(self._seq), note))
        self.flush_now()

    def display_message(self, msg: dict[str, Any]) -> None:
        """A display publisher's message from the job; returns None (the publisher's "taken")."""
        with self._lock:
            queued = self._displays.add(msg, next(self._seq))
        if queued:
            self._request(False)
        return None

    def reparent(self, parent: dict[str, Any]) -> None:
        """Send to another cell from now on (`parent`: its execute request); any thread."""
        with self._send_lock, self._lock:
            self._sink.reparent(parent)
            self._displays.new_cell()

    def flush_now(self) -> None:
        """Send what is pending on this thread now (within `SYNC_RATE`; else ask the pump); any thread."""
        with self._lock:
            if not (self._text or self._failures or self._displays.head()):
                return
        if not _SYNC.take(1):
            self._request(True)
            return

        def send() -> int:
            with self._lock:
                size = self._pending_size()
                out = self._take()
            self._budget.spend(size)
            return self._send(out, size)

        with self._send_lock:
            # Through the pump's gate: after its `close` at kernel exit, a handler abandoned then that
            # ends later (IPython's exit clears the namespace it runs in) must not send while ipykernel
            # closes its sockets; its lines stay in `Job.output`.
            (self._pump or get_pump()).send_now(send)

    # ------------------------------------------------------------------ drawing (pump thread)

    def pump_draw(self) -> int:
        """Send what is pending if the byte budget allows (else ask again); returns the messages sent."""
        with self._send_lock:
            with self._lock:
                size = self._pending_size()
                if not size:
                    return 0
                affordable = self._budget.take(size)
                out = self._take() if affordable else []
            if not affordable:
                self._request(False)
                return 0
            return self._send(out, size)

    # ------------------------------------------------------------------ internals

    def _pending_size(self) -> int:
        """Bytes (about) that wait to be sent (with the lock held)."""
        displays = sum(display_size(msg) for _, msg, _ in self._displays)
        failures = sum(note.size() for _, note in self._failures)
        return self._chars + failures + displays + (80 if self._elided else 0)

    def _take(self) -> list[_Out]:
        """Pop everything pending as messages in call order (with the lock held)."""
        displays = self._displays.drain()
        text, self._text, self._chars, self._lines = self._text, deque(), 0, 0
        failures, self._failures = self._failures, []
        elided, self._elided = self._elided, 0
        self._flooding = elided > 0
        groups: list[list[Any]] = []  # [kind, name or msg, pieces or force, lines]
        for _, kind, a, b in heapq.merge(
            ((seq, 0, stream, chunk) for seq, stream, chunk in text),
            ((seq, 1, note, None) for seq, note in failures),
            ((seq, 1, msg, force) for seq, msg, force in displays),
        ):
            if kind == 1 and isinstance(a, FailureNote):
                groups.append(["failure", a, f"{self._key}-failure-{self._failures_made}", 0])
                self._failures_made += 1
            elif kind == 1:
                groups.append(["display", a, b, 0])
            elif groups and groups[-1][0] == "stream" and groups[-1][1] == a:
                groups[-1][2].append(b)
                groups[-1][3] += 1
            else:
                groups.append(["stream", a, [b], 1])
        out: list[_Out] = [(k, a, "".join(b) if k == "stream" else b) for k, a, b, _ in groups]
        lines = [n for *_, n in groups]
        # Too many messages (streams alternating line by line): keep the latest, elide the oldest text.
        i = 0
        while len(out) > MAX_MESSAGES and i < len(out):
            if out[i][0] == "stream":
                elided += lines[i]
                del out[i], lines[i]
            else:
                i += 1
        if elided:
            first = next((k for k, m in enumerate(out) if m[0] == "stream"), None)
            if first is None:
                out.append(("stream", "stdout", elision_marker(elided, self._job)))
            else:
                _, name, chunk = out[first]
                out[first] = ("stream", name, elision_marker(elided, self._job) + chunk)
        return out

    def _send(self, out: list[_Out], size: int) -> int:
        """Send taken messages (with the send lock held); returns how many."""
        sent = 0
        for kind, a, b in out:
            if kind == "stream":
                self._sink.send("stream", {"name": a, "text": b})
            elif kind == "failure":
                content = {"data": a.bundle(), "metadata": {}, "transient": {"display_id": b}}
                self._sink.send("display_data", content)
            else:
                send_display(self._sink, a, b)
            sent += 1
        self.messages_sent += sent
        self.bytes_sent += size
        return sent

    def _request(self, final: bool) -> None:
        (self._pump or get_pump()).request(self, final=final)

    def __repr__(self) -> str:
        return f"<CellStream {self._key} job={self._job}>"
