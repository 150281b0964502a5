"""The dashboard's view: row views → HTML and ipywidgets, one batched update per changed widget.

`DashboardView.draw(snapshot, message)` turns what `dash_model` collected into widget traits.
Rows are rebuilt (`box.children` reassigned) only when the set of tasks changes; otherwise each
changed widget gets one `hold_sync` update and an unchanged widget gets nothing. All text is
HTML-escaped here. The DOM classes browser tests use are listed in `dashboard.py`.

Width: the seven columns take 754 px and the buttons ~200 px (Pause and Resume share one place), so
at JupyterLab's default width a row is one line; in a narrower output (the file browser open: ~850 px)
the buttons wrap under their row instead of being cut, and no row scrolls on its own. A long name,
schedule or outcome is shortened with an ellipsis, the full text on hover.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Callable

from ..hooks import host
from ..models import Job, JobStatus
from ..units import format_duration
from .dash_rows import RowView, Snapshot
from .format import EARLIER, TOOLTIP, clip, format_clock, format_outcome
from .ipyw import style_class

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["DashboardView"]

# Rows of removed tasks (a run-once job that ended) whose widgets stay open, newest kept: a click sent while a
# cell was busy reaches the kernel after the row went, and must still find its button's comm to be answered.
RETIRED_KEPT = 8
SHORT = 60  # characters of a result or error shown in a cell (the full text is the tooltip)
_ELLIPSIS = "display:block;white-space:nowrap;overflow:hidden;text-overflow:ellipsis"
_NUMS = "font-variant-numeric:tabular-nums"  # digits of equal width: changing numbers do not shift text
_MUTED = ' style="opacity:0.75"'  # a recent job of an earlier kernel: readable, set back from this kernel's
_COLORS = {
    "active": "#2e7d32",
    "running": "#1565c0",
    "paused": "#757575",
    "stopped": "#757575",
    "completed": "#2e7d32",
    "failed": "#c62828",
    "cancelled": "#757575",
    "skipped": "#757575",
    "interrupted": "#ef6c00",
    "scheduled": "#1565c0",
}
COLUMNS = (  # (part, title, css width)
    ("name", "task", "130px"),
    ("status", "status", "130px"),
    ("interval", "schedule", "110px"),
    ("last", "last run", "120px"),
    ("next", "next run", "70px"),
    ("progress", "progress", "64px"),
    ("progress_text", "", "130px"),
)
# Scoped to the dashboard; an HTML widget's <style> applies where the frontend renders it
# (JupyterLab, Notebook 7, VS Code). Without it the bar of a job of unknown progress is plain full.
_CSS = (
    "<style>.quiv-dash .quiv-dash-indeterminate .progress-bar{width:100%!important;"
    "background-image:linear-gradient(45deg,rgba(255,255,255,.35) 25%,transparent 25%,transparent 50%,"
    "rgba(255,255,255,.35) 50%,rgba(255,255,255,.35) 75%,transparent 75%,transparent);"
    "background-size:16px 16px;animation:quiv-dash-stripes 1s linear infinite}"
    "@keyframes quiv-dash-stripes{from{background-position:16px 0}to{background-position:0 0}}"
    ".quiv-dash .quiv-dash-hidden{display:none!important}"
    ".quiv-dash .quiv-dash-row .widget-html-content{min-width:0;max-width:100%}"
    ".quiv-dash .quiv-dash-row button{padding:0 8px;min-width:0}"
    # The kernel went away (restart, shutdown, death; see bar_look.py): no message of it reaches the page any
    # more, so the page shows the dashboard stopped: a banner instead of the live title, no buttons.
    ".quiv-dash .jupyter-widgets-disconnected::before,.quiv-dash.jupyter-widgets-disconnected::before{display:none}"
    ".quiv-dash.jupyter-widgets-disconnected:not(.quiv-dash-stopped)>.quiv-dash-title{display:none}"
    ".quiv-dash.jupyter-widgets-disconnected:not(.quiv-dash-stopped)::before{display:block!important;"
    "content:'quiv_nb \\b7  scheduler stopped (kernel restarted or stopped); run %quiv for a live dashboard';"
    "font-family:inherit;color:var(--jp-ui-font-color2,#757575);padding:2px 0 6px}"
    ".quiv-dash.jupyter-widgets-disconnected button,.quiv-dash.jupyter-widgets-disconnected .quiv-dash-progress,"
    ".quiv-dash.jupyter-widgets-disconnected .quiv-dash-progress-text{visibility:hidden}"
    # a row that was running says it was interrupted instead
    ".quiv-dash.jupyter-widgets-disconnected:not(.quiv-dash-stopped) .quiv-dash-status-running .quiv-dash-status"
    "{position:relative}"
    ".quiv-dash.jupyter-widgets-disconnected:not(.quiv-dash-stopped) .quiv-dash-status-running .quiv-dash-status"
    " .widget-html-content{visibility:hidden}"
    ".quiv-dash.jupyter-widgets-disconnected:not(.quiv-dash-stopped) .quiv-dash-status-running .quiv-dash-status"
    "::after{content:'interrupted';position:absolute;left:0;top:50%;transform:translateY(-50%);"
    "color:var(--jp-ui-font-color2,#757575)}</style>"
)
# What a click shows before the kernel answers it (docs/design.md, "Honest controls"). A widget message is
# handled only when the kernel's shell is free, or on a comm subshell (ipykernel >= 7 with JupyterLab >= 4.4 /
# Notebook >= 7.4); elsewhere (ipykernel 6, VS Code, Colab, classic Notebook, commsOverSubshells off) a click
# waits for the running cell. The kernel cannot draw while it waits, so the page draws it: one document-level
# listener, installed once per page by the title's HTML (an HTML widget's value is set as innerHTML in both
# ipywidgets generations, so an inline handler runs where its <style> applies). On a click it notes the
# status line's click counter (`data-quiv-clicks`, bumped by every click the kernel handles); if the
# counter has not moved `_ACK_DELAY_MS` later, it shows a pending note (`.quiv-dash-pending`) under the
# status line, which it removes once the counter moves: the kernel's own answer is then in the status line.
_ACK_DELAY_MS = 600  # subshell answers take 37-240 ms plus one dashboard redraw (0.25 s)
_VERBS = {"cancel": "will cancel", "pause": "will pause it", "resume": "will resume it", "run": "will start it"}
_ACK_JS = (
    "(function(){if(window.__quivDashAck)return;window.__quivDashAck=1;"
    "var V=" + "{" + ",".join(f"'quiv-dash-{k}':'{v}'" for k, v in _VERBS.items()) + "};"
    "document.addEventListener('click',function(e){"
    "var b=e.target&&e.target.closest?e.target.closest('.quiv-dash-row button'):null;if(!b||b.disabled)return;"
    "var m=b.closest('.quiv-dash');m=m&&m.querySelector('.quiv-dash-message');if(!m)return;"
    "var n=function(){var a=m.querySelector('[data-quiv-clicks]');return a?a.getAttribute('data-quiv-clicks'):''};"
    "var before=n(),r=b.closest('.quiv-dash-row'),k=r&&r.querySelector('.quiv-dash-name'),verb='will act';"
    "for(var c in V){if(b.classList.contains(c))verb=V[c];}"
    "var what=b.textContent.trim()+(k?\" '\"+k.textContent.trim()+\"'\":'');"
    "setTimeout(function(){if(n()!==before)return;"
    "var s=document.createElement('div'),t=what+': waiting for the running cell; '+verb+' when it ends';"
    "s.className='quiv-dash-pending';s.style.color='#e65100';s.textContent=t;"
    "var p=m.parentNode.querySelectorAll('.quiv-dash-pending');"
    "for(var i=0;i<p.length;i++){if(p[i].textContent===t)p[i].remove();}"
    "m.parentNode.insertBefore(s,m.nextSibling);"
    "var w=setInterval(function(){if(n()!==before||!document.contains(m)){clearInterval(w);s.remove();}},200);"
    "}," + str(_ACK_DELAY_MS) + ");},false);})()"
)
_ACK = f'<img src="data:," alt="" style="display:none" onerror="{html.escape(_ACK_JS, quote=True)}">'
BUTTONS = (  # (part, label, tooltip, action)
    ("cancel", "Cancel", "Cancel the running job (sets its stop event)", "cancel"),
    ("pause", "Pause", "Stop scheduling this task", "pause"),
    ("resume", "Resume", "Resume scheduling this task", "resume"),
    ("run", "Run now", "Run this task now, outside its schedule", "run"),
)
_HOW_TO_ADD = (
    "Add one with <code>%quiv add NAME FUNC --every 10s</code>, <code>%%quiv every 10s</code> on a cell, or "
    "<code>quiv_nb.get_scheduler().add_task(...)</code>; it shows up here at once.</div>"
)
_EMPTY_STYLE = '<div class="quiv-dash-empty" style="padding:6px 0;color:var(--jp-ui-font-color2,#616161)">'
_EMPTY_HTML = f"{_EMPTY_STYLE}No tasks yet. {_HOW_TO_ADD}"
# Tasks ran (a one-off task leaves the table when its job ends): say that nothing runs now, not "no tasks".
_IDLE_HTML = f"{_EMPTY_STYLE}No task is scheduled or running now; the jobs that ran are below. {_HOW_TO_ADD}"


def _esc(text: Any) -> str:
    """HTML-escape any value's text (quotes too, so it is safe inside attributes)."""
    return html.escape(str(text), quote=True)


def _span(text: str, *, title: str = "", style: str = _ELLIPSIS) -> str:
    attr = f' title="{_esc(clip(title, TOOLTIP))}"' if title else ""
    return f'<span style="{style}"{attr}>{_esc(text)}</span>'


def status_html(view: RowView) -> str:
    color = _COLORS.get(view.status, "inherit")
    out = f'<span style="font-weight:600;color:{color}">{_esc(view.status)}</span>'
    if view.last_status:
        color = _COLORS.get(view.last_status, "inherit")
        title = view.last_error or f"last job {view.last_status}"
        tip = _esc(clip(title, TOOLTIP))
        out += f' <span style="color:{color}" title="{tip}">· last {_esc(view.last_status)}</span>'
    return f'<span style="{_ELLIPSIS}">{out}</span>'


def last_html(view: RowView) -> str:
    if not view.last_status:
        return _span("—")
    color = _COLORS.get(view.last_status, "inherit") if view.last_status != "completed" else "inherit"
    outcome = clip(view.last_outcome, SHORT)
    body = _esc(view.last_when)
    if outcome:
        body += f' · <span style="color:{color}">{_esc(outcome)}</span>'
    return f'<span style="{_ELLIPSIS}" title="{_esc(clip(view.last_outcome, TOOLTIP))}">{body}</span>'


def row_traits(view: RowView) -> dict[str, dict[str, Any]]:
    """Per widget of a row, the trait values it should have for `view`."""
    classes = ["quiv-dash-row", f"quiv-dash-task-{view.task_id}", f"quiv-dash-status-{view.status}"]
    if view.last_status:
        classes.append(f"quiv-dash-last-{view.last_status}")
    running = view.running
    # Pause and Resume share one place: the one that does not apply is hidden (and disabled).
    hide_pause = view.can_resume and not view.can_pause
    pause_classes = ("quiv-dash-pause", "quiv-dash-hidden") if hide_pause else ("quiv-dash-pause",)
    resume_classes = ("quiv-dash-resume",) if view.can_resume else ("quiv-dash-resume", "quiv-dash-hidden")
    return {
        "box": {"_dom_classes": tuple(classes)},
        "name": {"value": _span(view.name, title=f"{view.name} · task {view.task_id}")},
        "status": {"value": status_html(view)},
        "interval": {"value": _span(view.interval, title=view.interval)},
        "last": {"value": last_html(view)},
        "next": {"value": _span(view.next_run, style=f"{_ELLIPSIS};{_NUMS}")},
        "progress": {  # unknown progress: a full bar, striped and moving where our CSS applies
            "value": view.progress if view.progress is not None else 1.0 if running else 0.0,
            "bar_style": "info" if running else "",
            "_dom_classes": ("quiv-dash-progress", "quiv-dash-indeterminate")
            if running and view.progress is None
            else ("quiv-dash-progress",),
        },
        "progress_text": {"value": _span(view.progress_text, title=view.progress_text, style=f"{_ELLIPSIS};{_NUMS}")},
        "cancel": {"disabled": not view.can_cancel},
        "pause": {"disabled": not view.can_pause, "_dom_classes": pause_classes},
        "resume": {"disabled": not view.can_resume, "_dom_classes": resume_classes},
        "run": {"disabled": not view.can_run},
    }


def recent_html(recent: list[Job], now: datetime, earlier: frozenset[str] = frozenset()) -> str:
    """The recent-jobs table: an earlier kernel's job (id in `earlier`) is tagged and muted, with its date
    when not today; an interrupted one (its kernel died while it ran) is marked in its own colour."""
    if not recent:
        return ""
    rows = []
    for job in recent:
        # An interrupted job never ended: when it started, then.
        ended = format_clock(job.ended_at or job.started_at, now)
        duration = format_duration(job.duration_seconds) if job.duration_seconds is not None else "—"
        outcome = format_outcome(job)
        color = _COLORS.get(str(job.status), "inherit")
        old = job.job_id in earlier
        classes = f"quiv-dash-job quiv-dash-job-{_esc(job.status)}" + (" quiv-dash-job-earlier" if old else "")
        tag = f' <span class="quiv-dash-earlier" style="color:#757575">· {EARLIER}</span>' if old else ""
        status = _esc(job.status)
        if job.status is JobStatus.INTERRUPTED:
            status = f'<span title="its kernel ended while it ran" style="font-style:italic">⚠ {status}</span>'
        rows.append(
            f'<tr class="{classes}" data-job-id="{_esc(job.job_id)}"{_MUTED if old else ""}>'
            f'<td style="padding:0 8px 0 0">{_esc(clip(job.task_name, 40))}{tag}</td>'
            f'<td style="padding:0 8px 0 0;color:{color}">{status}</td>'
            f'<td style="padding:0 8px 0 0;{_NUMS}">{ended}</td>'
            f'<td style="padding:0 8px 0 0;{_NUMS}">{duration}</td>'
            f'<td title="{_esc(clip(outcome, TOOLTIP))}">{_esc(clip(outcome, SHORT))}</td></tr>'
        )
    return (
        '<details open><summary style="cursor:pointer">recent jobs</summary>'
        '<table class="quiv-dash-recent-table" style="font-size:90%;border-collapse:collapse">'
        + "".join(rows)
        + "</table></details>"
    )


def message_html(kind: str, text: str, clicks: int = 0) -> str:
    """The status line: the answer to the last click (or nothing), and the handled-click counter the page reads."""
    counter = f'<span data-quiv-clicks="{clicks}" hidden></span>'
    if not text:
        return counter
    color = {"error": "#c62828", "warn": "#e65100"}.get(kind, "#555")
    return f'<span style="color:{color}">{_esc(text)}</span>{counter}'


# ---------------------------------------------------------------------- widgets


class _Shared:
    """Layouts and styles shared by every row: one widget model each instead of one per cell."""

    def __init__(self) -> None:
        import ipywidgets as w

        self.columns = {
            part: w.Layout(width=width, min_width=width, flex="0 0 auto", overflow="hidden")
            for part, _, width in COLUMNS
        }
        self.button_layout = w.Layout(width="auto", flex="0 0 auto")  # as wide as its label
        # one line per row where it fits; in a narrow output the buttons wrap under the row (never cut or scrolled)
        self.row_layout = w.Layout(
            align_items="center", flex_flow="row wrap", overflow="hidden", border_bottom="1px solid #e0e0e0"
        )
        self.plain = w.Layout()  # the boxes and the title, message and recent-jobs lines
        # HTMLStyle on ipywidgets 8, DescriptionStyle on 7 (not exported at the top level in either)
        self.html_style = style_class(w.HTML)()
        self.progress_style = style_class(w.FloatProgress)()
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

        traits = row_traits(view)
        kernel = host()
        self.task_id = view.task_id
        self.parts: dict[str, Any] = {}
        for part, _, _ in COLUMNS:
            layout = shared.columns[part]
            if part == "progress":
                self.parts[part] = w.FloatProgress(
                    min=0.0, max=1.0, layout=layout, style=shared.progress_style, **traits[part]
                )
            else:
                classes = (f"quiv-dash-{part.replace('_', '-')}",)
                self.parts[part] = w.HTML(layout=layout, style=shared.html_style, _dom_classes=classes, **traits[part])
        for part, label, tooltip, action in BUTTONS:
            values = {"_dom_classes": (f"quiv-dash-{part}",), **traits[part]}
            button = w.Button(
                description=label, tooltip=tooltip, layout=shared.button_layout, style=shared.button_style, **values
            )
            button.on_click(lambda _b, action=action, task_id=view.task_id: on_click(action, task_id))
            if kernel is not None:
                kernel.answer_on_sender_shell(button)  # clicks act while a cell is busy (quiv_nb.kernel.controls)
            self.parts[part] = button
        children = [self.parts[p] for p, _, _ in COLUMNS] + [self.parts[p] for p, _, _, _ in BUTTONS]
        self.parts["box"] = self.box = w.HBox(children=children, layout=shared.row_layout, **traits["box"])
        self._applied = traits

    @property
    def opened(self) -> int:
        """Comm-open messages its creation sent (one per widget)."""
        return len(self.parts)

    def apply(self, view: RowView) -> int:
        traits = row_traits(view)
        sent = 0
        for part, values in traits.items():
            old = self._applied[part]
            changed = {k: v for k, v in values.items() if old.get(k) != v}
            if changed:
                sent += update(self.parts[part], changed)
        self._applied = traits
        return sent

    def close(self) -> int:
        for widget in self.parts.values():
            widget.close()
        return len(self.parts)


def update(widget: Any, values: dict[str, Any]) -> int:
    """Set traits in one batched message; returns the number of messages (0 or 1)."""
    with widget.hold_sync():
        for key, value in values.items():
            setattr(widget, key, value)
    return 1


class DashboardView:
    """The dashboard's widgets: a title, a status line, the table of rows and the recent jobs."""

    def __init__(self, on_click: Callable[[str, str], None]) -> None:
        import ipywidgets as w

        self._on_click = on_click
        self._shared = shared = _Shared()
        self._rows: dict[str, _Row] = {}
        self._retired: list[_Row] = []  # removed rows not yet closed (`RETIRED_KEPT`), oldest first
        self._applied: dict[str, Any] = {}
        self._table_set = False  # the table's children were assigned at least once
        html_kw = {"layout": shared.plain, "style": shared.html_style}
        self._title = w.HTML(_dom_classes=("quiv-dash-title",), **html_kw)
        self._msg = w.HTML(_dom_classes=("quiv-dash-message",), **html_kw)
        header = [
            w.HTML(f"<b>{_esc(title)}</b>", layout=shared.columns[part], style=shared.html_style)
            for part, title, _ in COLUMNS
        ]
        self._header = w.HBox(header, layout=shared.plain, _dom_classes=("quiv-dash-header",))
        self._table = w.VBox([], layout=shared.plain, _dom_classes=("quiv-dash-table",))
        self._recent = w.HTML(_dom_classes=("quiv-dash-recent",), **html_kw)
        parts = [self._title, self._msg, self._table, self._recent]
        self.root = w.VBox(parts, layout=shared.plain, _dom_classes=("quiv-dash",))

    @property
    def retired_models(self) -> int:
        """Widget models of removed tasks' rows kept open for late clicks (at most `RETIRED_KEPT` rows). Any thread."""
        return sum(row.opened for row in list(self._retired))

    def draw(self, snap: Snapshot, message: tuple[str, str], clicks: int = 0) -> int:
        """Bring the widgets to `snap` and the status line to `message` after `clicks` handled clicks.

        Returns the messages sent. Pump thread (or the creating thread, for the first draw).
        """
        sent = 0
        ids = [r.task_id for r in snap.rows]
        if ids != list(self._rows) or not self._table_set:
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
            # no header over an empty table: the empty state below says what to do instead
            self._table.children = (self._header, *(row.box for row in rows.values())) if rows else ()
            self._table_set = True
            sent += 1
            self._retired.extend(gone.values())  # after the table stopped referencing them
            while len(self._retired) > RETIRED_KEPT:
                sent += self._retired.pop(0).close()
        else:
            for view in snap.rows:
                sent += self._rows[view.task_id].apply(view)

        kind, text = message
        msg_classes = ("quiv-dash-message", f"quiv-dash-message-{kind}") if text else ("quiv-dash-message",)
        recent = recent_html(snap.recent, snap.now, snap.earlier)
        wanted: dict[str, dict[str, Any]] = {
            "title": {"value": f"{_CSS}{_ACK}<b>quiv_nb</b> · {_esc(snap.title)}"},
            "msg": {"value": message_html(kind, text, clicks), "_dom_classes": msg_classes},
            "recent": {"value": recent if snap.rows else (_IDLE_HTML if snap.recent else _EMPTY_HTML) + recent},
            "root": {"_dom_classes": ("quiv-dash",) if snap.live else ("quiv-dash", "quiv-dash-stopped")},
        }
        widgets = {"title": self._title, "msg": self._msg, "recent": self._recent, "root": self.root}
        for part, values in wanted.items():
            old = self._applied.get(part, {})
            changed = {k: v for k, v in values.items() if old.get(k) != v}
            if changed:
                sent += update(widgets[part], changed)
            self._applied[part] = values
        return sent

    def close(self) -> None:
        """Close every widget, layouts and styles too."""
        for row in (*self._rows.values(), *self._retired):
            row.close()
        self._rows.clear()
        self._retired.clear()
        for widget in (self._title, self._msg, *self._header.children, self._header, self._table):
            widget.close()
        self._recent.close()
        self.root.close()
        self._shared.close()
