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
a `QuivError` (or anything else) is shown in the dashboard's status line. A cancel that cannot
take effect (the handler takes no stop event) says so at once.

DOM hooks for browser tests (CSS classes set with `add_class`/`_dom_classes`):

=================================  ===========================================================
``quiv-dash``                      the root box; plus ``quiv-dash-stopped`` once the scheduler
                                   is shut down (or garbage-collected)
``quiv-dash-title``                title line: task/running counts and scheduler state
``quiv-dash-message``              status line for button feedback (it expires after a few
                                   seconds); plus ``quiv-dash-message-<ok|warn|error>``
``quiv-dash-table``                the box holding the header row and the task rows (empty
                                   without tasks: ``quiv-dash-recent`` then says how to add one)
``quiv-dash-header``               the column-title row
``quiv-dash-row``                  one task row; also ``quiv-dash-task-<task_id>``,
                                   ``quiv-dash-status-<active|running|paused|stopped>`` and, once
                                   a job finished, ``quiv-dash-last-<completed|failed|cancelled|
                                   skipped>``
``quiv-dash-name``                 cell: task name (find a row with
                                   ``.quiv-dash-row:has(.quiv-dash-name :text-is("NAME"))``)
``quiv-dash-status``               cell: task status and last job status (error as tooltip)
``quiv-dash-interval``             cell: the schedule: "every 5s", "once", "after extract",
                                   "cron 0 9 * * 1-5", "daily 09:30"
``quiv-dash-last``                 cell: last run (relative) and its result or error
``quiv-dash-next``                 cell: next run (relative)
``quiv-dash-progress``             the FloatProgress of the running job; plus
                                   ``quiv-dash-indeterminate`` while its progress is unknown
``quiv-dash-progress-text``        cell: value/total, label, elapsed ("running 3s" if unknown)
``quiv-dash-cancel``               button: cancel the running job
``quiv-dash-pause``                button: pause the task (hidden, with ``quiv-dash-hidden``,
``quiv-dash-resume``               button: resume the task  while the other one applies)
``quiv-dash-run``                  button: run the task now
``quiv-dash-recent``               the recent-jobs HTML; inside it one ``<tr>`` per job with
                                   classes ``quiv-dash-job quiv-dash-job-<status>``
=================================  ===========================================================

Disabled buttons carry the ``disabled`` attribute (ipywidgets renders ``<button disabled>``).

Layout: `dash_model.py` (snapshots → row views, button actions; no ipywidgets), `dash_view.py`
(row views → HTML and widgets), `format.py` (text), and this module, which glues them to the
render pump and to IPython's display. Progress is read from a task's renderer `state` by duck
typing (see `dash_model.read_progress`).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any

from ..errors import ConfigurationError
from ..hooks import host, view_recorder
from ..units import format_duration
from .dash_model import RECENT, DashboardModel
from .dash_rows import Progress, RowView, Snapshot, read_progress, row_view
from .dash_static import snapshot_html
from .dash_view import DashboardView
from .format import format_ago, format_outcome, format_table, format_until
from .ipyw import model_id_of, view_bundle
from .pump import get_pump

__all__ = [
    "Dashboard",
    "dashboard",
    # this module's names before the split into dash_model / dash_view / format, still importable from here
    "Progress",
    "RowView",
    "format_ago",
    "format_duration",
    "format_outcome",
    "format_table",
    "format_until",
    "read_progress",
    "row_view",
]

_log = logging.getLogger("quiv_nb")

_EVENT_INTERVAL = 0.25  # seconds between two redraws while events keep arriving
_RECORD_EVERY = 30.0  # seconds between two recordings of a live dashboard's afterlife


def _shell() -> Any:
    """The running IPython shell, from the registered `seams.Host` (None outside a kernel)."""
    kernel = host()
    return kernel.ipython() if kernel is not None else None


class Dashboard:
    """A live table of one scheduler's tasks; displays as its widget, reprs as a text table.

    Create it with `dashboard()`. `widget` is the root `VBox` (to embed it in other layouts);
    `close()` removes the listeners and closes every widget. It holds the scheduler weakly.
    """

    def __init__(self, scheduler: Any, *, recent: int = RECENT, pump: Any = None) -> None:
        self._pump = pump if pump is not None else get_pump()
        self._draw_lock = threading.Lock()  # one draw at a time; close() waits for it
        self._closed = False
        self._dirty = True
        self._next_tick = 0.0  # monotonic time of the next redraw without an event
        self._shown: tuple[int, Any] | None = None  # (shell id, execution count) of the last display
        self._handles: list[Any] = []  # display handles of the cells showing it (the latest _MAX_HANDLES)
        self._stopped_at: Any = None  # when a draw first saw the scheduler stopped (a datetime)
        self._frozen_bundle: dict[str, Any] | None = None  # the static snapshot the displays show, once stopped
        self._next_record = 0.0  # monotonic time the afterlife may be recorded again (`_record_afterlife`)
        self._model = DashboardModel(scheduler, recent=recent)
        self._view = DashboardView(self._on_click)
        self._model.listen(self._mark_dirty)
        with self._draw_lock:
            self._draw()

    # -------------------------------------------------------------- public

    @property
    def widget(self) -> Any:
        """The root ipywidgets `VBox`."""
        return self._view.root

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def retired_models(self) -> int:
        """Open widget models of rows whose task went, kept so a click queued behind a busy cell is answered.

        Bounded (the newest `dash_view.RETIRED_KEPT` rows); any thread. A soak counts them apart.
        """
        return self._view.retired_models

    @property
    def scheduler(self) -> Any:
        """The scheduler shown, or None once it was garbage-collected."""
        return self._model.scheduler

    def refresh(self) -> None:
        """Ask for a redraw soon (thread-safe)."""
        self._mark_dirty()

    def close(self) -> None:
        """Remove the listeners and close every widget (idempotent; any thread)."""
        with self._draw_lock:
            if self._closed:
                return
            self._closed = True
            self._model.unlisten()
            sched = self._model.scheduler
            if sched is not None:
                with _open_lock:
                    if _open.get(sched) is self:
                        del _open[sched]
            self._view.close()
        self._pump.forget(self)

    # -------------------------------------------------------------- display

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, Any]:
        data = self._static_bundle()
        if not self._closed and not self._frozen:
            data.update(view_bundle(self._view.root))  # both ipywidgets generations (render/ipyw.py)
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

        # A display id, so the end of the scheduler replaces this live view by the static snapshot.
        handle = display(self._repr_mimebundle_(), raw=True, display_id=True)
        with self._draw_lock:
            self._handles = [*self._handles[-(_MAX_HANDLES - 1) :], handle]
        self._mark_dirty()  # the next draw records its afterlife (`_record_afterlife`)

    def __repr__(self) -> str:
        return self._text()

    def _snapshot(self) -> Snapshot | None:
        try:
            return self._model.collect()._replace(stopped_at=self._stopped_at)
        except Exception:  # a repr must not raise
            _log.exception("quiv_nb: building the dashboard text failed")
            return None

    def _text(self, snap: Snapshot | None = None) -> str:
        snap = snap or self._snapshot()
        if snap is None:
            return "<quiv_nb dashboard>"
        return format_table(snap.title, snap.rows, snap.recent, snap.now, snap.earlier)

    def _static_bundle(self, snap: Snapshot | None = None) -> dict[str, Any]:
        """text/plain and the text/html snapshot: what renderers without widgets show (and a stopped dashboard)."""
        snap = snap or self._snapshot()
        if snap is None:
            return {"text/plain": "<quiv_nb dashboard>"}
        return {"text/html": snapshot_html(snap), "text/plain": self._text(snap)}

    # -------------------------------------------------------------- events and clicks

    def _mark_dirty(self) -> None:
        """Ask the pump for a redraw (any thread: listeners, clicks)."""
        if self._closed:
            return
        self._dirty = True
        self._pump.request(self)

    def _on_click(self, action: str, task_id: str) -> None:
        """A button was pressed (the kernel thread that handled the click: the main shell, or a subshell while a cell
        is busy — see quiv_nb.kernel.controls): act, then redraw; never raises."""
        self._model.click(action, task_id)
        self._mark_dirty()

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
            idle = not self._dirty and time.monotonic() < self._next_tick - 0.1  # slack: visits are 0.25 s apart
            if idle and not self._stop_unseen():
                self._pump.request(self)
                return 0
            return self._draw()

    def _stop_unseen(self) -> bool:
        """The scheduler stopped (or is gone) and the displays do not show it yet (at kernel exit: the pump's
        last flush, right after the scheduler's shutdown, must draw the snapshot without waiting for a tick)."""
        if self._frozen:
            return False
        sched = self._model.scheduler
        return sched is None or bool(getattr(sched, "stopped", False))

    def _draw(self) -> int:
        self._dirty = False  # before reading: an event arriving meanwhile asks again
        snap: Snapshot = self._model.collect()
        if not snap.live and self._stopped_at is None:
            self._stopped_at = snap.now
        snap = snap._replace(stopped_at=self._stopped_at)
        sent = self._view.draw(snap, self._model.message(), self._model.clicks)
        if not snap.live:
            sent += self._freeze(snap)
        self._record_afterlife(snap)
        period = snap.period
        left = self._model.message_left()
        if left is not None:  # redraw when the message expires, to take it down
            period = min(period, left + 0.05)
        self._next_tick = time.monotonic() + period
        if snap.state != "stopped" or left is not None:
            self._pump.request(self)  # keep visiting: the next tick, or an event, redraws
        return sent

    def _record_afterlife(self, snap: Snapshot) -> None:
        """Record what the displayed model should read once the kernel is gone (pump thread, draw lock held).

        The frozen snapshot once the scheduler stopped; while it runs, at most every `_RECORD_EVERY`
        seconds, the state seen then (`snapshot_html(last_seen=True)`). The next kernel of the
        notebook reopens the model with it (`hooks.view_recorder`). Never raises.
        """
        recorder = view_recorder()
        now = time.monotonic()
        if recorder is None or not self._handles or (now < self._next_record and not self._frozen):
            return
        model_id = model_id_of(self._view.root)
        if model_id is None:  # its widgets were closed
            return
        self._next_record = now + _RECORD_EVERY
        try:
            recorder(model_id, snapshot_html(snap, last_seen=not self._frozen), self._text(snap))
        except Exception:
            _log.exception("quiv_nb: recording the dashboard for after its kernel failed")

    @property
    def _frozen(self) -> bool:
        """The scheduler stopped and the displays show its static snapshot."""
        return self._frozen_bundle is not None

    def _freeze(self, snap: Snapshot) -> int:
        """The scheduler stopped: replace every display by the static snapshot (pump thread, draw lock held).

        Again at each later draw that changes it: the scheduler counts as stopped from the start of
        `shutdown`, so the first snapshot can catch a job still ending on its stop event (and an abandoned
        job may run on and end later); its end must not be left out of the display for good. The widgets
        were drawn first and stay open, so a view this update cannot reach (a page reloaded since the
        display) shows the same end through them. Returns the display updates sent.
        """
        bundle = self._static_bundle(snap)
        if bundle == self._frozen_bundle:
            return 0
        self._frozen_bundle = bundle
        for handle in self._handles:
            handle.update(bundle, raw=True)
        return len(self._handles)


_MAX_HANDLES = 20  # cells a dashboard remembers to freeze; older displays keep the live widgets
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
        kernel = host()
        if kernel is None:
            raise ConfigurationError("outside a Jupyter kernel there is no kernel scheduler: pass one, dashboard(q)")
        scheduler = kernel.get_scheduler()
    try:
        import ipywidgets  # noqa: F401
    except ModuleNotFoundError as exc:  # pragma: no cover - ipywidgets is a dependency
        raise ModuleNotFoundError("quiv_nb.dashboard() needs ipywidgets: pip install 'ipywidgets>=7.7'") from exc
    with _open_lock:
        dash = _open.get(scheduler)
        if dash is None or dash.closed:
            dash = Dashboard(scheduler)
            _open[scheduler] = dash
    if show and getattr(_shell(), "kernel", None) is not None:
        dash._show()
    return dash
