"""A dashboard's static snapshot: one HTML table with inline styles, no widget model (pure).

What a dashboard's display becomes once its scheduler stopped (`%quiv stop`, kernel restart or
shutdown), and the text/html every dashboard bundle carries: a saved, reopened, exported or
GitHub-rendered notebook shows the dashboard's last state, with a hint that `%quiv` shows a
live one. The root is `div.quiv-dash.quiv-dash-static`; the title, rows and cells carry the live
dashboard's classes (`quiv-dash-title`, `quiv-dash-row quiv-dash-status-<status>`, `quiv-dash-name`,
`quiv-dash-next`, `quiv-dash-progress-text`), so one selector finds both renderings.
"""

from __future__ import annotations

import html

from .dash_rows import Snapshot
from .dash_view import SHORT, recent_html
from .format import TOOLTIP, clip

__all__ = ["snapshot_html"]

_CELL = "padding:2px 12px 2px 0;text-align:left;white-space:nowrap"
_HINT = "a snapshot; run <code>%quiv</code> for a live dashboard"
_LAST_SEEN = "the last state seen, at {:%H:%M}, before its kernel ended; run <code>%quiv</code> for a live dashboard"


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def snapshot_html(snap: Snapshot, *, last_seen: bool = False) -> str:
    """The dashboard of `snap` as self-contained HTML (any thread).

    `last_seen`: the rendering a dashboard records for after its kernel (`hooks.view_recorder`) while
    its scheduler still runs: titled as stopped, with the time it was taken.
    """
    hint = _LAST_SEEN.format(snap.now.astimezone()) if last_seen else _HINT
    if last_seen:
        snap = snap._replace(state="stopped", stopped_at=None)
    titles = ("task", "status", "schedule", "last run", "next run", "progress")
    head = "".join(f'<th style="{_CELL}">{t}</th>' for t in titles)
    rows = []
    for r in snap.rows:
        status = f"{r.status} · {r.last_status}" if r.last_status else r.status
        last = f"{r.last_when} {r.last_outcome}".strip()
        rows.append(
            f'<tr class="quiv-dash-row quiv-dash-status-{_esc(r.status)}">'
            f'<td class="quiv-dash-name" style="{_CELL}">{_esc(clip(r.name, 40))}</td>'
            f'<td style="{_CELL}" title="{_esc(clip(r.last_error, TOOLTIP))}">{_esc(status)}</td>'
            f'<td style="{_CELL}" title="{_esc(clip(r.interval, TOOLTIP))}">{_esc(clip(r.interval, 28))}</td>'
            f'<td style="{_CELL}" title="{_esc(clip(last, TOOLTIP))}">{_esc(clip(last, SHORT))}</td>'
            f'<td class="quiv-dash-next" style="{_CELL}">{_esc(r.next_run)}</td>'
            f'<td class="quiv-dash-progress-text" style="{_CELL}">{_esc(r.progress_text)}</td></tr>'
        )
    table = (
        f'<table style="border-collapse:collapse;font-size:90%"><tr>{head}</tr>{"".join(rows)}</table>'
        if rows
        else '<div style="padding:4px 0">no tasks</div>'
    )
    return (
        '<div class="quiv-dash quiv-dash-static" style="max-width:100%;overflow:hidden">'
        f'<div class="quiv-dash-title"><b>quiv_nb</b> · {_esc(snap.title)}</div>'
        f'<div style="color:#757575;font-size:90%;padding-bottom:4px">{hint}</div>'
        f"{table}{recent_html(snap.recent, snap.now, snap.earlier)}</div>"
    )
