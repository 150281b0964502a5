"""A recurring task's output area in a notebook cell: its latest run's lines, then its failure, redrawn by the pump.

One `OutputArea` per recurring task added from a cell (made by `quiv_nb.kernel`, which supplies the
`CellSink` that sends messages with that cell's parent header; one-off jobs stream instead, see
`quiv_nb.render.cell_stream`). It is the `OutputRoute` of the task's jobs (`quiv_nb.output`) and a
pump `Drawable`:

- Text is one display (`display_data` with a transient `display_id`, then `update_display_data`)
  holding the current run's newest lines: at most `MAX_LINES` / `MAX_CHARS`, with
  "… N lines elided (see %quiv log JOB_ID)" on top when the run wrote more. A new run replaces the
  previous run's text (older runs stay in their job logs), so a recurring task's cell does not grow.
  Each job's lines land only in its own area, whole, in order; stdout and stderr keep their order.
- A failure is a second display under the text (created after it, so it stays below): one headline
  line with the trimmed traceback collapsed (text/html; text/plain has both, see `render.failure`).
  When the next run fails the same way the headline carries a count ("[the same failure N runs in a
  row]"); a run that does not fail empties it when its text is drawn.
- `display(...)` calls in the job (rich objects, matplotlib figures) are forwarded as they are, with
  the cell's parent header; their k-th display of a run replaces the previous run's k-th (display ids),
  and `clear_output()` starts counting again (it is not sent: it would clear the whole cell).

Budget: at most one redraw per `min_interval` per area, within the pump's shared message budget
(with the bars), and all routes together within `BYTE_RATE` bytes per second, so a job printing in a
hot loop can trip neither the server's iopub limits (1,000 msg/s, 1 MB/s) nor the frontend. A final
state (end of a run, a failure) is always drawn. Writers only record state (O(1) amortised) and
call `pump.request`; messages are sent on the pump thread only.

The pieces both routes share (the sink protocol, token buckets, the display queue, the elision
marker) live here too.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections import deque
from typing import Any, Iterator, Protocol

from .failure import FailureNote, FailureRepeats
from .pump import RenderPump, TokenBucket, get_pump

__all__ = [
    "BYTE_RATE",
    "MAX_CHARS",
    "MAX_LINES",
    "CellSink",
    "DisplayQueue",
    "OutputArea",
    "SHARED_BYTES",
    "display_size",
    "elision_marker",
    "send_display",
    "split_lines",
]

MAX_LINES = 1000  # lines of the current run an area shows
MAX_CHARS = 64 * 1024  # characters of the current run an area shows
BYTE_RATE = 400_000.0  # bytes per second for all areas together (the server drops output above 1 MB/s)
BYTE_BURST = 2 * MAX_CHARS  # so the largest text always fits in one go after a pause
MAX_PENDING_DISPLAYS = 32  # display() calls queued per area beyond which the oldest are dropped


class CellSink(Protocol):
    """Sends to one cell (the kernel binding implements it). Thread-safe: the pump thread sends, and a
    one-off job's end flushes from the job's own thread."""

    def send(self, msg_type: str, content: dict[str, Any]) -> None:
        """Send a new message of `msg_type` with the cell's parent header."""
        ...

    def forward(self, msg: dict[str, Any]) -> None:
        """Send a message built elsewhere (a display publisher's), re-parented to the cell."""
        ...

    def reparent(self, parent: dict[str, Any]) -> None:
        """Send to another cell from now on (`parent`: that cell's execute request)."""
        ...


SHARED_BYTES = TokenBucket(BYTE_RATE, BYTE_BURST)  # every area and one-off stream together
_ids = itertools.count()


class DisplayQueue:
    """A route's pending `display(...)` messages, newest state per display id; the owner locks it.

    A display without an id gets one per (route, position in the run), so a recurring task's k-th
    display replaces the previous run's k-th and the live-plot idiom (`clear_output(wait=True)`,
    then `display`) updates one display. `clear_output` is never sent: it would clear the whole cell
    (its bars, other tasks' output).
    """

    def __init__(self, key: str) -> None:
        self._key = key
        # (sequence number, message, the type to send it as or None)
        self._queue: deque[tuple[int, dict[str, Any], str | None]] = deque(maxlen=MAX_PENDING_DISPLAYS)
        self._index = 0  # display() calls in the current run (slot k: the k-th without its own id)
        self._slots_made = 0  # display slots created in the cell so far

    def add(self, msg: dict[str, Any], seq: int = 0) -> bool:
        """Record a display publisher's message; False if there is nothing to send (clear_output)."""
        msg_type = msg.get("header", {}).get("msg_type") or msg.get("msg_type")
        if msg_type == "clear_output":
            self._index = 0
            return False
        force: str | None = None
        content = msg.setdefault("content", {})
        if msg_type == "display_data":
            transient = content.get("transient") or {}
            if "display_id" not in transient:
                slot = self._index
                content["transient"] = {**transient, "display_id": f"{self._key}-d{slot}"}
                # Decided here, in call order: an earlier message created the slot's display.
                if slot < self._slots_made:
                    force = "update_display_data"
                self._slots_made = max(self._slots_made, slot + 1)
            self._index += 1
        display_id = (content.get("transient") or {}).get("display_id")
        if display_id is not None:  # a newer state of a display still queued supersedes it
            for i, (_, pending, pending_force) in enumerate(self._queue):
                if (pending.get("content", {}).get("transient") or {}).get("display_id") == display_id:
                    del self._queue[i]
                    if (pending_force or pending["header"]["msg_type"]) == "display_data":
                        force = "display_data"  # the queued one would have created it: this one must
                    break
        self._queue.append((seq, msg, force))
        return True

    def new_run(self) -> None:
        self._index = 0

    def new_cell(self) -> None:
        """The route now sends to another cell: the next display of each slot creates it there."""
        self._slots_made = 0

    def head(self) -> tuple[int, dict[str, Any], str | None] | None:
        return self._queue[0] if self._queue else None

    def pop(self) -> tuple[int, dict[str, Any], str | None]:
        return self._queue.popleft()

    def drain(self) -> list[tuple[int, dict[str, Any], str | None]]:
        """Everything queued, oldest first; the queue is empty afterwards."""
        items = list(self._queue)
        self._queue.clear()
        return items

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any], str | None]]:
        return iter(self._queue)


def send_display(sink: CellSink, msg: dict[str, Any], force: str | None) -> None:
    """Forward a queued display message as the type `DisplayQueue` decided."""
    if force is not None:
        msg["msg_type"] = msg["header"]["msg_type"] = force
    sink.forward(msg)


class OutputArea:
    """A recurring task's output area in one cell. Route methods run on job threads; `pump_draw` on the pump."""

    min_interval = 0.25  # seconds between redraws: a few messages per second per area at most

    def __init__(self, sink: CellSink, *, pump: RenderPump | None = None, budget: TokenBucket | None = None) -> None:
        self._sink = sink
        self._pump = pump
        self._budget = budget or SHARED_BYTES
        self._key = f"quiv-out-{uuid.uuid4().hex[:12]}-{next(_ids)}"
        self._lock = threading.Lock()
        self._job: str | None = None
        self._lines: deque[str] = deque()  # the run's newest lines (the last may lack its newline)
        self._chars = 0
        self._total = 0  # lines the run wrote
        self._failure: FailureNote | None = None  # the run's failure, drawn under the lines
        self._failure_drawn: FailureNote | None = None  # what the failure display shows
        self._failure_shown = False  # the failure display exists in the cell
        self._repeats = FailureRepeats()
        self._failed_job: str | None = None
        self._displays = DisplayQueue(self._key)
        self._dirty = False
        self._shown = False  # the text display exists in the cell
        self.messages_sent = 0  # for tests and benchmarks (pump thread only)
        self.bytes_sent = 0

    # ------------------------------------------------------------------ route (job threads)

    def job_started(self, job_id: str) -> None:
        with self._lock:
            if self._failed_job is None or self._failed_job != self._job:
                self._repeats.reset()  # the previous run did not fail: start counting anew
            self._job = job_id
            self._lines.clear()
            self._chars = self._total = 0
            self._failure = None
            self._displays.new_run()
            # Not dirty: the previous run's text stays until this run writes or ends (no flicker).

    def job_text(self, job_id: str, stream: str, text: str) -> None:
        with self._lock:
            if job_id != self._job:
                return
            lines = self._lines
            if text.find("\n") == len(text) - 1 and (not lines or lines[-1][-1] == "\n"):
                new = [text]  # the common case: one whole line after whole lines
            else:
                new = split_lines(text)
                if lines and lines[-1][-1] != "\n":  # continue a flushed partial line
                    last = lines.pop()
                    self._chars -= len(last)
                    self._total -= 1
                    new[0] = last + new[0]
            lines.extend(new)
            self._total += len(new)
            self._chars += sum(map(len, new))
            while len(lines) > MAX_LINES or (self._chars > MAX_CHARS and len(lines) > 1):
                self._chars -= len(lines.popleft())
            self._dirty = True
        self._request(False)

    def job_ended(self, job_id: str) -> None:
        with self._lock:
            if job_id != self._job:
                return
            self._dirty = self._dirty or self._shown  # an empty run clears the previous run's text
        self._request(True)

    def job_failed(self, job_id: str, headline: str, traceback: str) -> None:
        with self._lock:
            if job_id != self._job:
                return
            self._failure = self._repeats.describe(headline, traceback)
            self._failed_job = job_id
            self._dirty = True
        self._request(True)

    def display_message(self, msg: dict[str, Any]) -> None:
        """A display publisher's message from the job (display_data, update_display_data, clear_output).

        Returns None, which tells the publisher the message was taken.
        """
        with self._lock:
            queued = self._displays.add(msg)
        if queued:
            self._request(False)
        return None

    def reparent(self, parent: dict[str, Any]) -> None:
        """Show this area in another cell from now on (`parent`: its execute request); any thread."""
        with self._lock:
            self._sink.reparent(parent)
            self._displays.new_cell()
            self._shown = self._failure_shown = False
            self._failure_drawn = None
            self._dirty = True
        self._request(True)

    # ------------------------------------------------------------------ drawing (pump thread)

    def pump_draw(self) -> int:
        sent = 0
        while True:
            with self._lock:  # peek, spend and pop at once: a newer state may supersede the head meanwhile
                head = self._displays.head()
                if head is None:
                    break
                _, msg, force = head
                size = display_size(msg)
                affordable = self._budget.take(size)
                if affordable:
                    self._displays.pop()
            if not affordable:
                self._request(False)
                return sent
            send_display(self._sink, msg, force)
            sent += 1
            self.messages_sent += 1
            self.bytes_sent += size
        with self._lock:
            if not self._dirty:
                return sent
            text = self._compose_lines()
            failure = self._failure
            # The failure display changes with the text: made on the first failure, emptied by a run without one.
            redraw_failure = failure is not self._failure_drawn and (failure is not None or self._failure_shown)
            size = len(text) + (failure.size() if redraw_failure and failure is not None else 0)
            if not self._budget.take(size):
                self._request(False)
                return sent
            self._dirty = False
            first = not self._shown
            self._shown = True
            first_failure = redraw_failure and not self._failure_shown
            if redraw_failure:
                self._failure_drawn, self._failure_shown = failure, True
        content = {"data": {"text/plain": text}, "metadata": {}, "transient": {"display_id": self._key}}
        self._sink.send("display_data" if first else "update_display_data", content)
        drawn = 1
        if redraw_failure:  # after the text's display, so a new one lands below it
            data = failure.bundle() if failure is not None else {"text/plain": ""}
            content = {"data": data, "metadata": {}, "transient": {"display_id": f"{self._key}-failure"}}
            self._sink.send("display_data" if first_failure else "update_display_data", content)
            drawn += 1
        self.messages_sent += drawn
        self.bytes_sent += size
        return sent + drawn

    def _compose_lines(self) -> str:
        """The text display's content: the elision marker and the run's lines (with the lock held)."""
        elided = self._total - len(self._lines)
        head = elision_marker(elided, self._job) if elided > 0 else ""
        return head + "".join(self._lines)

    def _compose(self) -> str:
        """Everything the area shows as text: its lines, then the failure's text (with the lock held)."""
        body = self._compose_lines()
        if self._failure is None:
            return body
        if body and not body.endswith("\n"):
            body += "\n"
        return body + self._failure.text()

    def _request(self, final: bool) -> None:
        (self._pump or get_pump()).request(self, final=final)

    @property
    def sink(self) -> CellSink:
        return self._sink

    def text(self) -> str:
        """What the area would show now (for tests and the plain-text repr); any thread."""
        with self._lock:
            return self._compose()

    def __repr__(self) -> str:
        return f"<OutputArea {self._key} job={self._job}>"


def elision_marker(count: int, job_id: str | None) -> str:
    """The line shown in place of `count` lines a cell did not get."""
    return f"… {count} lines elided (see %quiv log {job_id})\n"


def split_lines(text: str) -> list[str]:
    """`text` cut after each newline (only "\\n": a carriage return stays inside its line)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def display_size(msg: dict[str, Any]) -> int:
    """Roughly how many bytes a display message carries (its data values)."""
    data = msg.get("content", {}).get("data", {})
    return 200 + sum(len(v) if isinstance(v, str) else len(str(v)) for v in data.values())
