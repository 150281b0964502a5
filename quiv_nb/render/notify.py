"""Opt-in desktop notifications: tell the user when a job of a task ends while the notebook's tab is hidden.

`attach(scheduler, task_id)` (called by `%quiv run/add --notify` and `add_task(..., notify=True)`)
displays a small anywidget in the current cell and listens for `JOB_COMPLETED` / `JOB_FAILED` of
that task. Each job end becomes a `Note` (title, body); the widget's ES module (`notify.js`)
shows it with the browser's `Notification` API when the page is hidden and permission is granted
(its "Enable notifications" button asks, since browsers allow that only from a click). A visible
page shows nothing: the user is looking at the bar already.

Messages go through the render pump like any bar redraw: the listener only records the note
(O(1), on whichever thread delivers listeners) and requests a draw; the pump sends at most one
custom widget message per `MIN_INTERVAL` per task, carrying the latest note and how many earlier
ones it folds in. So a task ending 1,000 jobs a second costs one message a second, inside the
pump's shared budget. anywidget and ipywidgets load only when `attach` runs in a kernel.
"""

from __future__ import annotations

import functools
import html
import logging
import reprlib
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Protocol

from ..errors import TaskNotFoundError
from ..hooks import capabilities, host
from ..models import Event, Job, JobStatus, Task
from .ipyw import view_bundle
from .pump import RenderPump, get_pump

__all__ = ["MIN_INTERVAL", "Note", "NoteBox", "Notifier", "attach", "end_all", "note_for"]

_log = logging.getLogger("quiv_nb")

MIN_INTERVAL = 1.0  # seconds between two notification messages of one task
_BODY_MAX = 200  # characters of an error message or result in a notification body
_ENDS = (Event.JOB_COMPLETED, Event.JOB_FAILED)


class Listenable(Protocol):
    """What notifications need from a scheduler (`quiv_nb.Quiv` is one)."""

    def add_listener(self, event: Event, callback: Callable[..., Any]) -> None: ...

    def remove_listener(self, event: Event, callback: Callable[..., Any]) -> None: ...

    def get_task(self, task_id: str) -> Task: ...

    def get_all_jobs(self, status: Any = None, task_id: str | None = None) -> list[Job]: ...


# ------------------------------------------------------------------------------------------ notes (pure)


@dataclass(slots=True, frozen=True)
class Note:
    """One notification as the browser shows it; `tag` groups a task's notes (a newer one replaces the older)."""

    title: str
    body: str
    tag: str

    def message(self) -> dict[str, str]:
        """The custom widget message `notify.js` reads."""
        return {"kind": "quiv-notify", "title": self.title, "body": self.body, "tag": self.tag}


def note_for(task_name: str, job: Job) -> Note:
    """The note for a job that ended: "NAME completed" with its duration and result, or "NAME failed" with the error."""
    took = f"{job.duration_seconds:.1f} s" if job.duration_seconds is not None else None
    if job.status == JobStatus.FAILED:
        lines = (job.error_message or "").strip().splitlines() or ["failed"]
        body = _shorten(lines[-1]) + (f" (after {took})" if took else "")
        return Note(f"{task_name} failed", body, tag=f"quiv-{job.task_id}")
    body = "done" + (f" in {took}" if took else "")
    if job.result is not None:
        body += f" \u2192 {_short_repr(job.result)}"
    return Note(f"{task_name} completed", body, tag=f"quiv-{job.task_id}")


def _short_repr(value: Any) -> str:
    try:
        return _shorten(reprlib.repr(value))
    except Exception:
        return f"<{type(value).__qualname__}>"


def _shorten(text: str) -> str:
    return text if len(text) <= _BODY_MAX else text[: _BODY_MAX - 1] + "\u2026"


class NoteBox:
    """The notes waiting for the pump: only the latest is kept, with a count of those it replaced. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: Note | None = None
        self._folded = 0

    def put(self, note: Note) -> None:
        with self._lock:
            if self._latest is not None:
                self._folded += 1
            self._latest = note

    def take(self) -> Note | None:
        """The latest note (its body saying how many earlier ones it stands for), or None; empties the box."""
        with self._lock:
            note, folded = self._latest, self._folded
            self._latest, self._folded = None, 0
        if note is None or not folded:
            return note
        more = f"{folded} earlier job end" + ("s" if folded > 1 else "")
        return Note(note.title, f"{note.body}\n(+{more})", note.tag)


# ------------------------------------------------------------------------------------------ kernel-side glue


class Notifier:
    """Listens for the ends of one task's jobs and sends each as a note through `send` (a `Drawable`).

    `send(message)` is called on the render pump's thread (the widget's `send` in a kernel). The
    notifier detaches itself when its task is removed (a re-run cell replacing it, say).
    """

    def __init__(
        self,
        scheduler: Listenable,
        task_id: str,
        send: Callable[[dict[str, str]], None],
        *,
        pump: RenderPump | None = None,
        min_interval: float = MIN_INTERVAL,
    ) -> None:
        self.task_id = task_id
        self.min_interval = min_interval
        self.widget: Any = None  # the NotifyWidget, when `attach()` made one
        self._scheduler = scheduler
        self._send = send
        self._pump = pump or get_pump()
        self._box = NoteBox()
        self._attached = False
        self._caught_up: str | None = None  # the job `attach(since=...)` notified already
        # How it ends (docs/design.md, "How a bar ends"): `attach` displays the widget under a display id;
        # once the notifier stops, the display becomes a static line that needs no widget model.
        self.handle: Any = None
        self.task_name = ""
        self._ended = ""  # why it stopped ("task removed", "kernel restarted"), once it did
        self._frozen = False

    @property
    def attached(self) -> bool:
        """Listening for the task's job ends (until `detach`, or the task's removal)."""
        return self._attached

    def attach(self, since: datetime | None = None) -> None:
        """Start listening (any thread). With `since`, jobs of the task that already ended at or after it
        (between adding the task and this call) are notified too, so a quick first job is not missed."""
        if self._attached:
            return
        self._attached = True
        for event in _ENDS:
            self._scheduler.add_listener(event, self._on_job_end)
        self._scheduler.add_listener(Event.TASK_REMOVED, self._on_task_removed)
        if since is not None:
            self._catch_up(since)

    def detach(self) -> None:
        """Stop listening and drop a note not sent yet (any thread). Idempotent."""
        self._stop_listening()
        self._pump.forget(self)

    def _stop_listening(self) -> None:
        """Stop listening; a note already queued is still sent (the task's last job end, say)."""
        if not self._attached:
            return
        self._attached = False
        self.end("task removed or finished")
        with _current_lock:
            if _current.get(self.task_id) is self:
                del _current[self.task_id]
        for event in _ENDS:
            self._scheduler.remove_listener(event, self._on_job_end)
        self._scheduler.remove_listener(Event.TASK_REMOVED, self._on_task_removed)

    def end(self, reason: str) -> None:
        """Stop for `reason`: the next draw turns the display static (any thread; the first reason wins)."""
        if not self._ended:
            self._ended = reason
            self._pump.request(self, final=True)

    def pump_draw(self) -> int:
        """Send the waiting note, if any, then a static display once ended (pump thread); the messages sent."""
        sent = 0
        note = self._box.take()
        if note is not None:
            try:
                self._send(note.message())
                sent += 1
            except Exception:
                _log.exception("quiv_nb: could not send the notification for task %s", self.task_id)
        if self._ended and not self._frozen and self.handle is not None:
            self._frozen = True
            self.handle.update(_static_bundle(self.task_name, self._ended), raw=True)
            sent += 1
        return sent

    def _catch_up(self, since: datetime) -> None:
        ended = [
            j
            for j in self._scheduler.get_all_jobs(task_id=self.task_id)
            if j.status in (JobStatus.COMPLETED, JobStatus.FAILED) and j.ended_at is not None and j.ended_at >= since
        ]
        if ended:
            last = max(ended, key=lambda j: j.ended_at or since)  # each has one (filtered above)
            self._caught_up = last.job_id  # its listener call may still be on its way: skip that one
            self._record(note_for(last.task_name, last))
        if not self._task_exists():  # a run-once task that is over: nothing more will end
            self._stop_listening()

    def _on_job_end(self, event: Event, task: Task, job: Job) -> None:
        if job.task_id != self.task_id or job.job_id == self._caught_up:
            return
        self._record(note_for(task.task_name, job))
        # A run-once task leaves the table after its last job without a TASK_REMOVED event.
        if task.run_once and not self._task_exists():
            self._stop_listening()

    def _task_exists(self) -> bool:
        try:
            self._scheduler.get_task(self.task_id)
        except TaskNotFoundError:
            return False
        return True

    def _on_task_removed(self, event: Event, task: Task) -> None:
        if task.task_id == self.task_id:
            self._stop_listening()

    def _record(self, note: Note) -> None:
        self._box.put(note)
        self._pump.request(self)


def attach(scheduler: Listenable, task_id: str, *, since: datetime | None = None) -> Notifier | None:
    """Show the notify widget in the current cell and notify on the ends of `task_id`'s jobs.

    Call on the cell's thread right after adding the task; pass `since` (a UTC-aware time taken
    before `add_task`) so a job that ends before this call is still notified. Returns the
    `Notifier` (its widget is `notifier.widget`), or None outside a Jupyter kernel, where no
    browser could show a notification. Raises `TaskNotFoundError` for an unknown task.
    """
    name = _task_name(scheduler, task_id)
    kernel = host()
    if kernel is None or not kernel.in_kernel():
        _log.info("quiv_nb: notify=True has no effect outside a Jupyter kernel (task %s)", name)
        return None
    caps = capabilities()
    if not caps.anywidget:  # degrade with one clear line, never raise: the task was added either way
        print(f"quiv_nb: notifications for {name!r} need anywidget (pip install anywidget); the task runs without them")
        return None
    if caps.colab:
        _enable_colab_widgets()
    from IPython.display import display

    widget = _widget_class()(task_name=name)
    notifier = Notifier(scheduler, task_id, widget.send)
    notifier.widget, notifier.task_name = widget, name
    with _current_lock:
        # Re-running the cell (or `--notify` again) replaces the task's notifier: one notification per job end.
        previous = _current.pop(task_id, None)
        _current[task_id] = notifier
    if previous is not None:
        previous.end("replaced")
        previous.detach()
    # The widget view built as the bars' and the dashboard's are (both ipywidgets generations), and the
    # text for renderers without widgets.
    live = {**view_bundle(widget), **_static_bundle(name, "")}
    notifier.handle = display(live, raw=True, display_id=True)
    notifier.attach(since)
    return notifier


def _static_bundle(task_name: str, ended: str) -> dict[str, str]:
    """The notify line without a widget: live (`ended` "") or stopped, as text/html and text/plain."""
    what = f"desktop notifications for {task_name}"
    text = f"{what}: off ({ended})" if ended else f"{what} (while the kernel runs)"
    return {"text/html": f'<div class="quiv-notify quiv-notify-static">{html.escape(text)}</div>', "text/plain": text}


def end_all(reason: str) -> None:
    """Kernel exit (a `hooks.register_exit_start` step `kernel.install()` adds): every notifier ends.

    Runs on the main thread at interpreter exit; the pump's exit step draws the ends. Returns None.
    """
    with _current_lock:
        notifiers = list(_current.values())
    for notifier in notifiers:
        notifier.end(reason)


@functools.cache
def _enable_colab_widgets() -> None:
    """Colab renders only its core widgets until asked: enable its custom widget manager, once, for anywidget.

    Called only when a notify widget is about to show (core-widget bars and the dashboard need nothing).
    """
    try:
        from google.colab import output  # type: ignore[import-not-found]

        output.enable_custom_widget_manager()
    except Exception:  # not Colab after all, or an older Colab: the widget may then not render
        _log.warning("quiv_nb: could not enable Colab's custom widget manager", exc_info=True)


# task id -> the notifier `attach` made last for it (task ids are uuid4: unique across schedulers).
_current: dict[str, Notifier] = {}
_current_lock = threading.Lock()


def _task_name(scheduler: Listenable, task_id: str) -> str:
    """The task's name, also for a run-once task whose job ended already (it has left the task table)."""
    try:
        return scheduler.get_task(task_id).task_name
    except TaskNotFoundError:
        jobs = scheduler.get_all_jobs(task_id=task_id)
        if not jobs:
            raise
        return jobs[-1].task_name


@functools.cache
def _widget_class() -> type:
    """The anywidget class, defined on first use so `import quiv_nb` never loads anywidget."""
    try:
        import anywidget
        import traitlets
    except ImportError as exc:  # pragma: no cover - anywidget is a dependency
        raise ImportError("quiv_nb notifications need anywidget: pip install anywidget") from exc

    class NotifyWidget(anywidget.AnyWidget):
        """The notify row in a cell; kernel -> browser messages are `Note.message()` dicts."""

        _esm = Path(__file__).with_name("notify.js")
        _css = """
        .quiv-notify { display: flex; gap: 0.5em; align-items: center; font-size: var(--jp-ui-font-size1, 13px);
                       color: var(--jp-ui-font-color1, #212121); padding: 2px 0; }
        .quiv-notify-bell { display: inline-flex; color: var(--jp-ui-font-color2, #757575); }
        .quiv-notify-last { color: var(--jp-ui-font-color2, #757575); }
        """
        task_name = traitlets.Unicode("").tag(sync=True)

    return NotifyWidget
