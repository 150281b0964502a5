"""`dashboard()`: a live ipywidgets table of a scheduler's tasks and recent jobs, with buttons.

Threads. Scheduler listeners (any thread) only mark the dashboard dirty and ask the render pump
for a redraw; every widget update happens in `Dashboard.pump_draw` on the pump thread, which
pulls fresh snapshots from the scheduler (so the table stays live even while a notebook cell
blocks the kernel loop that listeners are delivered on). Rows are rebuilt (`box.children` is
reassigned) only when the set of tasks changes; otherwise each changed widget gets one batched
update (`hold_sync`), and an unchanged widget gets nothing. Events are drawn within 0.25 s; with
no event the dashboard still redraws every second while a job runs or a run is scheduled (twice
a second while a bar reports progress, every 5 s otherwise), so relative and elapsed times move
and a shutdown shows; it stops once the scheduler is stopped or the dashboard closed. Button
clicks run on the kernel's shell thread; they call the scheduler's public API and never raise:
a `QuivError` (or anything else) is shown in the dashboard's status line.

DOM hooks for browser tests (CSS classes set with `add_class`/`_dom_classes`):

=================================  ===========================================================
``quiv-dash``                      the root box; plus ``quiv-dash-stopped`` once the scheduler
                                   is shut down (or garbage-collected)
``quiv-dash-title``                title line: task/running counts and scheduler state
``quiv-dash-message``              status line for button feedback; plus
                                   ``quiv-dash-message-error`` or ``quiv-dash-message-ok``
``quiv-dash-table``                the box holding the header row and the task rows
``quiv-dash-header``               the column-title row
``quiv-dash-row``                  one task row; also ``quiv-dash-task-<task_id>``,
                                   ``quiv-dash-status-<active|running|paused>`` and, once a job
                                   finished, ``quiv-dash-last-<completed|failed|cancelled>``
``quiv-dash-name``                 cell: task name (find a row with
                                   ``.quiv-dash-row:has(.quiv-dash-name :text-is("NAME"))``)
``quiv-dash-status``               cell: task status and last job status (error as tooltip)
``quiv-dash-interval``             cell: "every 5s" / "once"
``quiv-dash-last``                 cell: last run (relative) and its result or error
``quiv-dash-next``                 cell: next run (relative)
``quiv-dash-progress``             the FloatProgress of the running job; plus
                                   ``quiv-dash-indeterminate`` while its progress is unknown
``quiv-dash-progress-text``        cell: value/total, label, elapsed ("running 3s" if unknown)
``quiv-dash-cancel``               button: cancel the running job
``quiv-dash-pause``                button: pause the task
``quiv-dash-resume``               button: resume the task
``quiv-dash-run``                  button: run the task now
``quiv-dash-recent``               the recent-jobs HTML; inside it one ``<tr>`` per job with
                                   classes ``quiv-dash-job quiv-dash-job-<status>``
=================================  ===========================================================

Disabled buttons carry the ``disabled`` attribute (ipywidgets renders ``<button disabled>``).

Progress. A task whose ``progress_callback`` is a quiv_nb renderer may expose ``state`` (an
attribute, property or no-argument method) holding ``value`` and ``total`` (``None`` when
unknown), optionally ``desc``, ``label``, ``status`` and ``job_id`` (attributes or mapping keys;
`render.state.BarState` fits). A state whose ``status`` is idle/completed/failed/cancelled, or
whose ``job_id`` names another job, is left from an earlier run and ignored. It is read on the
pump thread without locking, so it must be an immutable snapshot replaced atomically. Without
it the row shows "running <elapsed>".
"""

from __future__ import annotations

import html
import logging
import math
import reprlib
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Callable, NamedTuple

from ..errors import JobNotFoundError, QuivError
from ..models import Event, Job, JobStatus, Task, TaskStatus
from .pump import get_pump

__all__ = ["Dashboard", "dashboard"]

_log = logging.getLogger("quiv_nb")

RECENT = 12  # finished jobs listed under the table
_EVENT_INTERVAL = 0.25  # seconds between two redraws while events keep arriving
_BUSY_TICK = 1.0  # redraw period while a job runs or a run is scheduled (relative times move)
_PROGRESS_TICK = 0.5  # ... while a running job reports progress through a renderer
_IDLE_TICK = 5.0  # ... otherwise, while the scheduler lives (to notice a shutdown)
_SHORT = 60  # characters of a result or error shown in a cell (the full text is the tooltip)
_TOOLTIP = 1000  # characters of a tooltip

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _TOOLTIP

_ELLIPSIS = "display:block;white-space:nowrap;overflow:hidden;text-overflow:ellipsis"
_COLORS = {
    "active": "#2e7d32",
    "running": "#1565c0",
    "paused": "#757575",
    "completed": "#2e7d32",
    "failed": "#c62828",
    "cancelled": "#757575",
    "scheduled": "#1565c0",
}
_COLUMNS = (  # (part, title, css width): with the buttons ~1,090px: a JupyterLab output at 1280px
    ("name", "task", "130px"),
    ("status", "status", "175px"),
    ("interval", "every", "72px"),
    ("last", "last run", "160px"),
    ("next", "next run", "66px"),
    ("progress", "progress", "70px"),
    ("progress_text", "", "120px"),
)
# Scoped to the dashboard; an HTML widget's <style> applies where the frontend renders it
# (JupyterLab, Notebook 7, VS Code). Without it the bar of a job of unknown progress is plain full.
_CSS = (
    "<style>.quiv-dash .quiv-dash-indeterminate .progress-bar{width:100%!important;"
    "background-image:linear-gradient(45deg,rgba(255,255,255,.35) 25%,transparent 25%,transparent 50%,"
    "rgba(255,255,255,.35) 50%,rgba(255,255,255,.35) 75%,transparent 75%,transparent);"
    "background-size:16px 16px;animation:quiv-dash-stripes 1s linear infinite}"
    "@keyframes quiv-dash-stripes{from{background-position:16px 0}to{background-position:0 0}}</style>"
)
_BUTTONS = (  # (part, label, tooltip, action)
    ("cancel", "Cancel", "Cancel the running job (sets its stop event)", "cancel"),
    ("pause", "Pause", "Stop scheduling this task", "pause"),
    ("resume", "Resume", "Resume scheduling this task", "resume"),
    ("run", "Run now", "Run this task now, outside its schedule", "run"),
)


# ---------------------------------------------------------------------- pure formatting


def _esc(text: Any) -> str:
    """HTML-escape any value's text (quotes too, so it is safe inside attributes)."""
    return html.escape(str(text), quote=True)


def _clip(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_duration(seconds: float) -> str:
    """Compact duration: 500ms, 1.5s, 5s, 1m30s, 2h, 1h05m, 3d."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms" if seconds >= 0.0005 else "<1ms"
    if seconds < 10 and not float(seconds).is_integer():
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{int(seconds)}s"
    s = round(seconds)
    if s < 3600:
        m, s = divmod(s, 60)
        return f"{m}m{s:02d}s" if s else f"{m}m"
    if s < 86400:
        h, s = divmod(s, 3600)
        m = s // 60
        return f"{h}h{m:02d}m" if m else f"{h}h"
    return f"{s // 86400}d"


def format_ago(then: datetime | None, now: datetime) -> str:
    """'just now', '15s ago', '4m ago', '2h ago', '3d ago' (coarse: few widget updates)."""
    if then is None:
        return "—"
    age = (now - then).total_seconds()
    if age < 5:
        return "just now"
    if age < 60:
        return f"{int(age) // 5 * 5}s ago"
    if age < 3600:
        return f"{int(age) // 60}m ago"
    if age < 86400:
        return f"{int(age) // 3600}h ago"
    return f"{int(age) // 86400}d ago"


def format_until(when: datetime | None, now: datetime) -> str:
    """'in 3s', 'in 4m', 'due' for a time in the past, '—' for none."""
    if when is None:
        return "—"
    left = (when - now).total_seconds()
    if left < 0.5:
        return "due"
    if left < 60:
        return f"in {round(left)}s"
    if left < 3600:
        return f"in {int(left) // 60}m"
    if left < 86400:
        return f"in {int(left) // 3600}h"
    return f"in {int(left) // 86400}d"


def format_interval(task: Task) -> str:
    """'every 5s' for a recurring task, 'once' for a one-off."""
    if task.run_once or task.interval is None:
        return "once"
    return f"every {format_duration(task.interval)}"


def format_outcome(job: Job) -> str:
    """A finished job's result (a bounded repr) or error; never raises."""
    if job.status is not JobStatus.COMPLETED:
        return job.error_message or str(job.status)
    if job.result is None:
        return ""
    try:  # reprlib looks at a few items of a big container only: redrawn every second, this must stay cheap
        return _REPR.repr(job.result)
    except Exception:
        return f"<{type(job.result).__name__}>"


class Progress(NamedTuple):
    fraction: float | None  # 0..1, None when the total is unknown
    text: str


def read_progress(renderer: Any, job: Job, now: datetime) -> Progress:
    """What a running job's progress cell shows; duck-types the renderer's `state` (module doc)."""
    elapsed = ""
    if job.started_at is not None:
        elapsed = format_duration(int(max(0.0, (now - job.started_at).total_seconds())))  # whole seconds
    if job.status is JobStatus.SCHEDULED:
        return Progress(None, "queued")
    state = _renderer_state(renderer)
    if state is not None:
        get = state.get if isinstance(state, Mapping) else lambda key: getattr(state, key, None)
        owner, status = get("job_id"), get("status")
        stale = (owner is not None and owner != job.job_id) or str(status) in _NOT_RUNNING
        value = None if stale else _number(_first(get, "value", "step", "n"))
        if value is not None:
            total = _number(get("total"))
            if total is not None and total > 0:
                fraction: float | None = min(1.0, max(0.0, value / total))
                text = f"{value:g}/{total:g}"
            else:
                fraction, text = None, f"{value:g}"
            label = ": ".join(str(p) for p in (get("desc"), _first(get, "label", "stage", "message")) if p)
            return Progress(fraction, " · ".join(p for p in (label, text, elapsed) if p))
    return Progress(None, f"running {elapsed}".strip())


_NOT_RUNNING = frozenset({"idle", "completed", "failed", "cancelled"})  # a bar state left from an earlier run


def _first(get: Callable[[str], Any], *keys: str) -> Any:
    for key in keys:
        value = get(key)
        if value is not None and value != "":
            return value
    return None


def _renderer_state(renderer: Any) -> Any:
    if renderer is None:
        return None
    try:
        state = getattr(renderer, "state", None)
        if callable(state):
            state = state()
    except Exception:  # a renderer's bug must not break the dashboard
        _log.debug("quiv_nb: reading a renderer's state failed", exc_info=True)
        return None
    return state


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class RowView(NamedTuple):
    """Everything one task row shows, as plain text (escaped only when it becomes HTML)."""

    task_id: str
    name: str
    status: str  # task status
    last_status: str  # status of the last finished job, or ""
    last_error: str  # its error message, or ""
    interval: str
    last_when: str
    last_outcome: str  # result repr or error, one line, not clipped
    next_run: str
    progress: float | None
    progress_text: str
    running: bool  # a job of the task is scheduled or running
    can_cancel: bool
    can_pause: bool
    can_resume: bool
    can_run: bool


def row_view(task: Task, current: Job | None, last: Job | None, renderer: Any, now: datetime, live: bool) -> RowView:
    """Pure: the row for `task`, given its running job, last finished job and progress renderer."""
    running = task.status is TaskStatus.RUNNING or (current is not None and not current.status.is_final)
    progress: Progress = Progress(None, "")
    if running and current is not None:
        progress = read_progress(renderer, current, now)
    elif running:
        progress = Progress(None, "running")
    paused = task.status is TaskStatus.PAUSED
    return RowView(
        task_id=task.task_id,
        name=task.task_name,
        status=str(task.status),
        last_status=str(last.status) if last is not None else "",
        last_error=(last.error_message or "") if last is not None and last.status is not JobStatus.COMPLETED else "",
        interval=format_interval(task),
        last_when=format_ago(last.ended_at, now) if last is not None else "—",
        last_outcome=" ".join(format_outcome(last).split()) if last is not None else "",
        next_run="paused" if paused else format_until(task.next_run_at, now),
        progress=progress.fraction,
        progress_text=progress.text,
        running=running,
        can_cancel=live and running,
        can_pause=live and not paused,
        can_resume=live and paused,
        can_run=live and not running,
    )


def format_table(title: str, rows: list[RowView], recent: list[Job], now: datetime) -> str:
    """The plain-text dashboard (for `text/plain`, saved notebooks and non-widget frontends)."""
    lines = [title]
    if not rows:
        lines.append("(no tasks)")
    else:
        table = [("TASK", "STATUS", "EVERY", "LAST RUN", "NEXT RUN", "PROGRESS")]
        for r in rows:
            status = r.status + (f", last {r.last_status}" if r.last_status else "")
            last = r.last_when + (f": {r.last_outcome}" if r.last_outcome else "")
            table.append((r.name, status, r.interval, last, r.next_run, r.progress_text))
        lines += _columns(table)
    if recent:
        lines.append("")
        lines.append("recent jobs")
        table = [("TASK", "STATUS", "ENDED", "DURATION", "RESULT / ERROR")]
        for job in recent:
            table.append((
                job.task_name,
                str(job.status),
                format_ago(job.ended_at, now),
                format_duration(job.duration_seconds) if job.duration_seconds is not None else "—",
                format_outcome(job),
            ))  # fmt: skip
        lines += _columns(table)
    return "\n".join(lines)


def _columns(table: list[tuple[str, ...]]) -> list[str]:
    cells = [[_clip(c, 40) for c in row] for row in table]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]


# ---------------------------------------------------------------------- HTML of the cells


def _span(text: str, *, title: str = "", style: str = _ELLIPSIS) -> str:
    attr = f' title="{_esc(_clip(title, _TOOLTIP))}"' if title else ""
    return f'<span style="{style}"{attr}>{_esc(text)}</span>'


def _status_html(view: RowView) -> str:
    color = _COLORS.get(view.status, "inherit")
    out = f'<span style="font-weight:600;color:{color}">{_esc(view.status)}</span>'
    if view.last_status:
        color = _COLORS.get(view.last_status, "inherit")
        title = view.last_error or f"last job {view.last_status}"
        tip = _esc(_clip(title, _TOOLTIP))
        out += f' <span style="color:{color}" title="{tip}">· last {_esc(view.last_status)}</span>'
    return f'<span style="{_ELLIPSIS}">{out}</span>'


def _last_html(view: RowView) -> str:
    if not view.last_status:
        return _span("—")
    color = _COLORS.get(view.last_status, "inherit") if view.last_status != "completed" else "inherit"
    outcome = _clip(view.last_outcome, _SHORT)
    body = _esc(view.last_when)
    if outcome:
        body += f' · <span style="color:{color}">{_esc(outcome)}</span>'
    return f'<span style="{_ELLIPSIS}" title="{_esc(_clip(view.last_outcome, _TOOLTIP))}">{body}</span>'


def _row_traits(view: RowView) -> dict[str, dict[str, Any]]:
    """Per widget of a row, the trait values it should have for `view`."""
    classes = ["quiv-dash-row", f"quiv-dash-task-{view.task_id}", f"quiv-dash-status-{view.status}"]
    if view.last_status:
        classes.append(f"quiv-dash-last-{view.last_status}")
    running = view.running
    return {
        "box": {"_dom_classes": tuple(classes)},
        "name": {"value": _span(view.name, title=f"{view.name} · task {view.task_id}")},
        "status": {"value": _status_html(view)},
        "interval": {"value": _span(view.interval)},
        "last": {"value": _last_html(view)},
        "next": {"value": _span(view.next_run)},
        "progress": {  # unknown progress: a full bar, striped and moving where our CSS applies
            "value": view.progress if view.progress is not None else 1.0 if running else 0.0,
            "bar_style": "info" if running else "",
            "_dom_classes": ("quiv-dash-progress", "quiv-dash-indeterminate")
            if running and view.progress is None
            else ("quiv-dash-progress",),
        },
        "progress_text": {"value": _span(view.progress_text, title=view.progress_text)},
        "cancel": {"disabled": not view.can_cancel},
        "pause": {"disabled": not view.can_pause},
        "resume": {"disabled": not view.can_resume},
        "run": {"disabled": not view.can_run},
    }


def _recent_html(recent: list[Job]) -> str:
    if not recent:
        return ""
    rows = []
    for job in recent:
        ended = job.ended_at.astimezone().strftime("%H:%M:%S") if job.ended_at is not None else "—"
        duration = format_duration(job.duration_seconds) if job.duration_seconds is not None else "—"
        outcome = format_outcome(job)
        color = _COLORS.get(str(job.status), "inherit")
        rows.append(
            f'<tr class="quiv-dash-job quiv-dash-job-{_esc(job.status)}" data-job-id="{_esc(job.job_id)}">'
            f'<td style="padding:0 8px 0 0">{_esc(_clip(job.task_name, 40))}</td>'
            f'<td style="padding:0 8px 0 0;color:{color}">{_esc(job.status)}</td>'
            f'<td style="padding:0 8px 0 0">{ended}</td>'
            f'<td style="padding:0 8px 0 0">{duration}</td>'
            f'<td title="{_esc(_clip(outcome, _TOOLTIP))}">{_esc(_clip(outcome, _SHORT))}</td></tr>'
        )
    return (
        '<details open><summary style="cursor:pointer">recent jobs</summary>'
        '<table class="quiv-dash-recent-table" style="font-size:90%;border-collapse:collapse">'
        + "".join(rows)
        + "</table></details>"
    )


# ---------------------------------------------------------------------- widgets


class _Shared:
    """Layouts and styles shared by every row: one widget model each instead of one per cell."""

    def __init__(self) -> None:
        import ipywidgets as w
        from ipywidgets.widgets.widget_int import ProgressStyle  # these two are not exported at the top level (8.1)
        from ipywidgets.widgets.widget_string import HTMLStyle

        self.columns = {part: w.Layout(width=width, min_width=width, overflow="hidden") for part, _, width in _COLUMNS}
        self.button_layout = w.Layout(width="auto")  # as wide as its label
        # wrap rather than clip the buttons in a narrow output
        self.row_layout = w.Layout(align_items="center", flex_flow="row wrap", border_bottom="1px solid #e0e0e0")
        self.plain = w.Layout()  # the boxes and the title, message and recent-jobs lines
        self.html_style = HTMLStyle()
        self.progress_style = ProgressStyle()
        self.button_style = w.ButtonStyle()

    def close(self) -> None:
        """Close them; `Widget.close()` of a widget leaves its layout and style open."""
        for widget in (*self.columns.values(), self.button_layout, self.row_layout, self.plain):
            widget.close()
        for widget in (self.html_style, self.progress_style, self.button_style):
            widget.close()


class _Row:
    """The widgets of one task row; `apply` sends one update per widget whose traits changed."""

    def __init__(self, view: RowView, shared: _Shared, on_click: Callable[[str, str], None]) -> None:
        import ipywidgets as w

        traits = _row_traits(view)
        self.task_id = view.task_id
        self.parts: dict[str, Any] = {}
        for part, _, _ in _COLUMNS:
            layout = shared.columns[part]
            if part == "progress":
                self.parts[part] = w.FloatProgress(
                    min=0.0, max=1.0, layout=layout, style=shared.progress_style, **traits[part]
                )
            else:
                classes = (f"quiv-dash-{part.replace('_', '-')}",)
                self.parts[part] = w.HTML(layout=layout, style=shared.html_style, _dom_classes=classes, **traits[part])
        for part, label, tooltip, action in _BUTTONS:
            button = w.Button(
                description=label,
                tooltip=tooltip,
                layout=shared.button_layout,
                style=shared.button_style,
                _dom_classes=(f"quiv-dash-{part}",),
                **traits[part],
            )
            button.on_click(lambda _b, action=action, task_id=view.task_id: on_click(action, task_id))
            self.parts[part] = button
        children = [self.parts[p] for p, _, _ in _COLUMNS] + [self.parts[p] for p, _, _, _ in _BUTTONS]
        self.parts["box"] = self.box = w.HBox(children=children, layout=shared.row_layout, **traits["box"])
        self._applied = traits

    @property
    def opened(self) -> int:
        """Comm-open messages its creation sent (one per widget)."""
        return len(self.parts)

    def apply(self, view: RowView) -> int:
        traits = _row_traits(view)
        sent = 0
        for part, values in traits.items():
            old = self._applied[part]
            changed = {k: v for k, v in values.items() if old.get(k) != v}
            if changed:
                sent += _update(self.parts[part], changed)
        self._applied = traits
        return sent

    def close(self) -> int:
        for widget in self.parts.values():
            widget.close()
        return len(self.parts)


def _update(widget: Any, values: dict[str, Any]) -> int:
    """Set traits in one batched message; returns the number of messages (0 or 1)."""
    with widget.hold_sync():
        for key, value in values.items():
            setattr(widget, key, value)
    return 1


class _Snapshot(NamedTuple):
    live: bool
    state: str  # "running" | "not started" | "stopped"
    rows: list[RowView]
    recent: list[Job]
    busy: bool  # something runs or is scheduled: keep relative times moving
    progress: bool  # a running job reports progress through a renderer
    now: datetime


class Dashboard:
    """A live table of one scheduler's tasks; displays as its widget, reprs as a text table.

    Create it with `dashboard()`. `widget` is the root `VBox` (to embed it in other layouts);
    `close()` removes the listeners and closes every widget. It holds the scheduler weakly.
    """

    def __init__(self, scheduler: Any, *, recent: int = RECENT, pump: Any = None) -> None:
        import ipywidgets as w

        self._ref = weakref.ref(scheduler)
        self._pump = pump if pump is not None else get_pump()
        self._recent_limit = max(0, int(recent))
        self._draw_lock = threading.Lock()  # one draw at a time; close() waits for it
        self._state_lock = threading.Lock()  # guards _recent / _last_done, written by listeners
        self._closed = False
        self._dirty = True
        self._next_tick = 0.0  # monotonic time of the next redraw without an event
        self._message: tuple[str, str] = ("", "")  # (kind, text); kind "ok" | "error"
        self._recent: dict[str, Job] = {}  # job id -> finished job, newest kept
        self._last_done: dict[str, Job] = {}  # task id -> its newest finished job we know of
        self._last_seen: dict[str, str] = {}  # task id -> last job id seen (catches run-once ends)
        self._views: list[RowView] = []  # rows of the last draw, kept once the scheduler is gone
        self._shown: tuple[int, Any] | None = None  # (shell id, execution count) of the last display

        self._shared = _Shared()
        self._rows: dict[str, _Row] = {}
        shared = self._shared
        html_kw = {"layout": shared.plain, "style": shared.html_style}
        self._title = w.HTML(_dom_classes=("quiv-dash-title",), **html_kw)
        self._msg = w.HTML(_dom_classes=("quiv-dash-message",), **html_kw)
        header = [
            w.HTML(
                f'<b style="white-space:nowrap">{_esc(title)}</b>', layout=shared.columns[part], style=shared.html_style
            )
            for part, title, _ in _COLUMNS
        ]
        self._header = w.HBox(header, layout=shared.plain, _dom_classes=("quiv-dash-header",))
        self._table = w.VBox([self._header], layout=shared.plain, _dom_classes=("quiv-dash-table",))
        self._recent_w = w.HTML(_dom_classes=("quiv-dash-recent",), **html_kw)
        parts = [self._title, self._msg, self._table, self._recent_w]
        self._root = w.VBox(parts, layout=shared.plain, _dom_classes=("quiv-dash",))
        self._applied: dict[str, Any] = {}

        for job in sorted((j for j in scheduler.get_all_jobs() if j.status.is_final), key=_end_key):
            self._remember(job)  # one history scan; afterwards finished jobs come from events and rows
        for event in Event:
            scheduler.add_listener(event, self._on_event)
        with self._draw_lock:
            self._draw()

    # -------------------------------------------------------------- public

    @property
    def widget(self) -> Any:
        """The root ipywidgets `VBox`."""
        return self._root

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def scheduler(self) -> Any:
        """The scheduler shown, or None once it was garbage-collected."""
        return self._ref()

    def refresh(self) -> None:
        """Ask for a redraw soon (thread-safe)."""
        self._mark_dirty()

    def close(self) -> None:
        """Remove the listeners and close every widget (idempotent; any thread)."""
        with self._draw_lock:
            if self._closed:
                return
            self._closed = True
            sched = self._ref()
            if sched is not None:
                for event in Event:
                    sched.remove_listener(event, self._on_event)
                with _open_lock:
                    if _open.get(sched) is self:
                        del _open[sched]
            for row in self._rows.values():
                row.close()
            self._rows.clear()
            for widget in (self._title, self._msg, *self._header.children, self._header, self._table):
                widget.close()
            self._recent_w.close()
            self._root.close()
            self._shared.close()
        self._pump.forget(self)

    # -------------------------------------------------------------- display

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"text/plain": self._text()}
        if not self._closed:
            view = self._root._repr_mimebundle_() or {}
            widget_view = view.get("application/vnd.jupyter.widget-view+json")
            if widget_view is not None:
                data["application/vnd.jupyter.widget-view+json"] = widget_view
        return data

    def _ipython_display_(self) -> None:
        self._show()

    def _show(self) -> None:
        """Display in the current cell, unless this cell already shows it.

        `dashboard()` displays at once (so `d = quiv_nb.dashboard()` shows) and also returns the
        dashboard, which IPython then displays again as the cell's result: that second display in
        the same execution is skipped. Displaying it in a later cell adds another view.
        """
        shell = _shell()
        key = (id(shell), getattr(shell, "execution_count", None))
        if shell is not None and self._shown == key:
            return
        self._shown = key
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)

    def __repr__(self) -> str:
        return self._text()

    def _text(self) -> str:
        try:
            snap = self._collect()
        except Exception:  # a repr must not raise
            _log.exception("quiv_nb: building the dashboard text failed")
            return "<quiv_nb dashboard>"
        return format_table(self._title_text(snap), snap.rows, snap.recent, snap.now)

    # -------------------------------------------------------------- events (any thread)

    def _on_event(self, event: Event, task: Task | None = None, job: Job | None = None) -> None:
        if job is not None and job.status.is_final:
            self._remember(job)
        self._mark_dirty()

    def _mark_dirty(self) -> None:
        if self._closed:
            return
        self._dirty = True
        self._pump.request(self)

    def _remember(self, job: Job) -> None:
        """Record a finished job (recent list and its task's last job); keeps the newest only."""
        with self._state_lock:
            prev = self._last_done.get(job.task_id)
            if prev is None or _end_key(job) >= _end_key(prev):
                self._last_done[job.task_id] = job
            if self._recent_limit and job.job_id not in self._recent:
                self._recent[job.job_id] = job
                if len(self._recent) > self._recent_limit:
                    oldest = min(self._recent.values(), key=_end_key)
                    del self._recent[oldest.job_id]

    # -------------------------------------------------------------- clicks (kernel shell thread)

    def _on_click(self, action: str, task_id: str) -> None:
        try:
            text = self._act(action, task_id)
            self._message = ("ok", text)
        except QuivError as exc:
            self._message = ("error", f"{action}: {exc}")
        except Exception as exc:  # never raise into the kernel from a button
            _log.exception("quiv_nb: dashboard %s failed", action)
            self._message = ("error", f"{action}: {type(exc).__name__}: {exc}")
        self._mark_dirty()

    def _act(self, action: str, task_id: str) -> str:
        sched = self._ref()
        if sched is None:
            return "scheduler stopped"
        task = sched.get_task(task_id)
        name = task.task_name
        if action == "cancel":
            if task.status is not TaskStatus.RUNNING or task.last_job_id is None:
                return f"{name!r} has no running job to cancel"
            if sched.cancel_job(task.last_job_id):
                return f"cancel requested for {name!r} (job {task.last_job_id[:8]})"
            return f"the job of {name!r} had already finished"
        if action == "pause":
            sched.pause_task(task_id)
            return f"paused {name!r}"
        if action == "resume":
            sched.resume_task(task_id)
            return f"resumed {name!r}"
        if action == "run":
            job_id = sched.run_task_immediately(task_id)
            return f"started {name!r} (job {job_id[:8]})"
        raise ValueError(f"unknown action {action!r}")

    # -------------------------------------------------------------- drawing (pump thread)

    # The pump visits a live dashboard every `min_interval` seconds; a visit redraws only when
    # an event or click marked it dirty or the tick period is over, else it costs one clock read.
    # (A constant interval rather than a per-state one: the pump sleeps until the queued
    # drawables are due and is not woken by a request for one already queued, so an interval
    # that shrinks on an event would only be noticed at the end of the longer one.)
    min_interval = _EVENT_INTERVAL

    def pump_draw(self) -> int:
        """Redraw from fresh scheduler snapshots; returns the widget messages sent (pump thread)."""
        with self._draw_lock:
            if self._closed:
                self._pump.forget(self)
                return 0
            if not self._dirty and time.monotonic() < self._next_tick - 0.1:  # slack: visits are 0.25 s apart
                self._pump.request(self)
                return 0
            return self._draw()

    def _draw(self) -> int:
        self._dirty = False  # before reading: an event arriving meanwhile asks again
        snap = self._collect()
        sent = 0
        ids = [r.task_id for r in snap.rows]
        if ids != list(self._rows):
            rows: dict[str, _Row] = {}
            for view in snap.rows:
                row = self._rows.pop(view.task_id, None)
                if row is None:
                    row = _Row(view, self._shared, self._on_click)
                    sent += row.opened
                else:
                    sent += row.apply(view)
                rows[view.task_id] = row
            gone, self._rows = self._rows, rows
            self._table.children = (self._header, *(row.box for row in rows.values()))
            sent += 1
            for row in gone.values():  # after the table stopped referencing them
                sent += row.close()
        else:
            for view in snap.rows:
                sent += self._rows[view.task_id].apply(view)

        kind, text = self._message
        msg_classes = ("quiv-dash-message", f"quiv-dash-message-{kind}") if text else ("quiv-dash-message",)
        color = "#c62828" if kind == "error" else "#555"
        wanted = {
            "title": {"value": f"{_CSS}<b>quiv_nb</b> · {_esc(self._title_text(snap))}"},
            "msg": {
                "value": f'<span style="color:{color}">{_esc(text)}</span>' if text else "",
                "_dom_classes": msg_classes,
            },
            "recent": {"value": _recent_html(snap.recent)},
            "root": {"_dom_classes": ("quiv-dash",) if snap.live else ("quiv-dash", "quiv-dash-stopped")},
        }
        widgets = {"title": self._title, "msg": self._msg, "recent": self._recent_w, "root": self._root}
        for part, values in wanted.items():
            old = self._applied.get(part, {})
            changed = {k: v for k, v in values.items() if old.get(k) != v}
            if changed:
                sent += _update(widgets[part], changed)
            self._applied[part] = values

        self._views = snap.rows
        period = _PROGRESS_TICK if snap.progress else _BUSY_TICK if snap.busy else _IDLE_TICK
        self._next_tick = time.monotonic() + period
        if snap.state != "stopped":
            self._pump.request(self)  # keep visiting: the next tick, or an event, redraws
        return sent

    def _collect(self) -> _Snapshot:
        """Fresh snapshots from the scheduler, turned into row views (any thread)."""
        now = datetime.now(timezone.utc)
        sched = self._ref()
        if sched is None:
            off = {"can_cancel": False, "can_pause": False, "can_resume": False, "can_run": False}
            rows = [r._replace(running=False, progress=None, progress_text="", **off) for r in self._views]
            return _Snapshot(False, "stopped", rows, self._recent_jobs(), False, False, now)
        if sched.is_running:
            state = "running"
        else:
            state = "stopped" if sched.stopped else "not started"
        live = state != "stopped"
        tasks = sched.get_all_tasks()
        present = {t.task_id for t in tasks}
        with self._state_lock:
            gone = [(t, j) for t, j in self._last_seen.items() if t not in present]
            for task_id, _ in gone:
                del self._last_seen[task_id]
        for _, job_id in gone:  # removed, or a run-once task that finished: keep its last job
            job = _get_job(sched, job_id)
            if job is not None and job.status.is_final:
                self._remember(job)
        rows, busy, progress = [], False, False
        for task in tasks:
            current = None
            if task.last_job_id is not None:
                with self._state_lock:
                    self._last_seen[task.task_id] = task.last_job_id
                job = _get_job(sched, task.last_job_id)
                if job is not None and job.status.is_final:
                    self._remember(job)
                elif job is not None:
                    current = job
            with self._state_lock:
                last = self._last_done.get(task.task_id)
            renderer = _renderer_of(sched, task.task_id) if current is not None else None
            view = row_view(task, current, last, renderer, now, live)
            rows.append(view)
            busy = busy or view.running or task.next_run_at is not None
            progress = progress or view.progress is not None
        with self._state_lock:
            for task_id in [t for t in self._last_done if t not in present]:
                del self._last_done[task_id]
        return _Snapshot(live, state, rows, self._recent_jobs(), busy and live, progress and live, now)

    def _recent_jobs(self) -> list[Job]:
        with self._state_lock:
            return sorted(self._recent.values(), key=_end_key, reverse=True)

    @staticmethod
    def _title_text(snap: _Snapshot) -> str:
        running = sum(1 for r in snap.rows if r.running)
        paused = sum(1 for r in snap.rows if r.status == "paused")
        parts = [f"{len(snap.rows)} task{'s' if len(snap.rows) != 1 else ''}", f"{running} running"]
        if paused:
            parts.append(f"{paused} paused")
        parts.append(f"scheduler {snap.state}")
        return " · ".join(parts)


def _end_key(job: Job) -> float:
    return job.ended_at.timestamp() if job.ended_at is not None else 0.0


def _get_job(sched: Any, job_id: str) -> Job | None:
    try:
        return sched.get_job(job_id)
    except JobNotFoundError:  # pruned from history
        return None


def _renderer_of(sched: Any, task_id: str) -> Any:
    """The task's progress callback, or None (`Quiv.progress_callback`: lock-free, any thread)."""
    return sched.progress_callback(task_id)


def _shell() -> Any:
    """The running IPython shell, or None; never imports IPython if nothing else has."""
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    return get_ipython()


_open: weakref.WeakKeyDictionary[Any, Dashboard] = weakref.WeakKeyDictionary()
_open_lock = threading.Lock()


def dashboard(scheduler: Any = None, *, show: bool = True) -> Dashboard:
    """Display a live dashboard of `scheduler` (default: the kernel's) and return it.

    One dashboard per scheduler: while one is open, calling this again displays that same one
    (another view of the same widgets), so re-running a cell does not pile up live dashboards.
    In a kernel it is displayed at once (`show=False` to skip) and, returned as the cell's
    result, is not displayed a second time. Runs on the caller's thread; raises
    `ModuleNotFoundError` with a hint if ipywidgets is missing.
    """
    if scheduler is None:
        from quiv_nb.kernel import get_scheduler

        scheduler = get_scheduler()
    try:
        import ipywidgets  # noqa: F401
    except ModuleNotFoundError as exc:  # pragma: no cover - ipywidgets is a dependency
        raise ModuleNotFoundError("quiv_nb.dashboard() needs ipywidgets: pip install 'ipywidgets>=8.1'") from exc
    with _open_lock:
        dash = _open.get(scheduler)
        if dash is None or dash.closed:
            dash = Dashboard(scheduler)
            _open[scheduler] = dash
    if show and getattr(_shell(), "kernel", None) is not None:
        dash._show()
    return dash
