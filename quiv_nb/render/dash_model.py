"""The dashboard's model: a scheduler seen as row views (`dash_rows`), and the buttons' actions. No ipywidgets.

`DashboardModel` holds the scheduler weakly, remembers finished jobs (from listener events and
from the rows it collects), turns fresh `Task`/`Job` snapshots into `RowView`s (`collect`), runs
a button's action through the scheduler's public API (`click`) and keeps the status-line message
until it expires. The widget view (`dash_view`) draws what `collect` returns; `dashboard.py`
glues the two to the render pump. Everything here is plain Python, tested without a frontend.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from datetime import datetime, timezone
from typing import Any, Callable

from ..errors import JobNotFoundError, QuivError
from ..models import Event, Job, Task, TaskStatus
from .dash_rows import RowView, Snapshot, last_fields, row_view

__all__ = ["DashboardModel"]

_log = logging.getLogger("quiv_nb")

RECENT = 12  # finished jobs listed under the table
MESSAGE_TTL = 8.0  # seconds a button's answer stays in the status line
_SHOWN_KEPT = 64  # tasks whose last-shown running job is remembered, for a click handled after that job ended


class DashboardModel:
    """One scheduler's tasks and recent jobs as row views, plus the buttons' actions and the status line.

    Holds the scheduler weakly. `listen(on_change)` registers scheduler listeners that record
    finished jobs and call `on_change()` (on the scheduler's listener thread); `collect()` and
    `click()` may run on any thread (the pump and the kernel's shell thread), guarded by one lock.
    """

    def __init__(self, scheduler: Any, *, recent: int = RECENT, clock: Callable[[], float] = time.monotonic) -> None:
        self._ref = weakref.ref(scheduler)
        self._recent_limit = max(0, int(recent))
        self._clock = clock
        self._lock = threading.Lock()  # guards the dicts below, written by listeners and readers
        self._recent: dict[str, Job] = {}  # job id -> finished job, newest kept
        self._last_done: dict[str, Job] = {}  # task id -> its newest finished job we know of
        self._last_seen: dict[str, str] = {}  # task id -> last job id seen (catches run-once ends)
        self._views: list[RowView] = []  # rows of the last collect, kept once the scheduler is gone
        self._message: tuple[str, str, float] = ("", "", 0.0)  # (kind, text, expiry on `clock`)
        self._clicks = 0  # clicks handled: drawn into the status line, so the page sees each answer arrive
        self._shown_running: dict[str, str] = {}  # task id -> the job its row last showed running
        self._on_change: Callable[[], None] | None = None
        # With a store, `history` holds earlier kernels' runs (interrupted ones too) as well as this one's.
        earlier = scheduler.history(limit=self._recent_limit) if self._recent_limit else []
        mine = [j for j in scheduler.get_all_jobs() if j.status.is_final]
        mine_ids = {j.job_id for j in mine}
        # Jobs on record that this scheduler does not know: an earlier kernel's (the dashboard tags them).
        self._earlier = frozenset(j.job_id for j in earlier if j.job_id not in mine_ids)
        for job in sorted([*earlier, *mine], key=_end_key):
            self.remember(job)  # one history scan; afterwards finished jobs come from events and rows

    @property
    def scheduler(self) -> Any:
        """The scheduler shown, or None once it was garbage-collected."""
        return self._ref()

    # -------------------------------------------------------------- events

    def listen(self, on_change: Callable[[], None]) -> None:
        """Register listeners for every event; each records a finished job and calls `on_change()`."""
        self._on_change = on_change
        sched = self._ref()
        if sched is not None:
            for event in Event:
                sched.add_listener(event, self._on_event)

    def unlisten(self) -> None:
        """Remove the listeners (idempotent)."""
        sched = self._ref()
        if sched is not None and self._on_change is not None:
            for event in Event:
                sched.remove_listener(event, self._on_event)
        self._on_change = None

    def _on_event(self, event: Event, task: Task | None = None, job: Job | None = None) -> None:
        if job is not None and job.status.is_final:
            self.remember(job)
        on_change = self._on_change
        if on_change is not None:
            on_change()

    def remember(self, job: Job) -> None:
        """Record a finished job (recent list and its task's last job); keeps the newest only."""
        with self._lock:
            prev = self._last_done.get(job.task_id)
            if prev is None or _end_key(job) >= _end_key(prev):
                self._last_done[job.task_id] = job
            if self._recent_limit and job.job_id not in self._recent:
                self._recent[job.job_id] = job
                if len(self._recent) > self._recent_limit:
                    oldest = min(self._recent.values(), key=_end_key)
                    del self._recent[oldest.job_id]

    # -------------------------------------------------------------- status line

    def say(self, kind: str, text: str, ttl: float = MESSAGE_TTL) -> None:
        """Show `text` in the status line for `ttl` seconds; `kind` is "ok", "warn" or "error"."""
        self._message = (kind, text, self._clock() + ttl)

    def message(self) -> tuple[str, str]:
        """(kind, text) of the status line, or ("", "") once it expired."""
        kind, text, expiry = self._message
        return (kind, text) if text and self._clock() < expiry else ("", "")

    @property
    def clicks(self) -> int:
        """How many button clicks were handled so far (the view draws it; `dash_view` explains why)."""
        return self._clicks

    def message_left(self) -> float | None:
        """Seconds until the current message expires (None without one): the view redraws then."""
        _, text, expiry = self._message
        left = expiry - self._clock()
        return left if text and left > 0 else None

    # -------------------------------------------------------------- buttons

    def click(self, action: str, task_id: str) -> None:
        """Run a button's action and put the answer in the status line; never raises (shell thread)."""
        self._clicks += 1  # only the thread handling clicks writes it (one click at a time per kernel)
        try:
            self.say(*self._act(action, task_id))
        except QuivError as exc:
            self.say("error", f"{action}: {exc}")
        except Exception as exc:  # never raise into the kernel from a button
            _log.exception("quiv_nb: dashboard %s failed", action)
            self.say("error", f"{action}: {type(exc).__name__}: {exc}")

    def _act(self, action: str, task_id: str) -> tuple[str, str]:
        """Do what the button says. A cancel whose job the row showed running has ended since (the click waited
        for a busy cell: no comm subshell took it) says how that job ended, even if its run-once task is gone."""
        sched = self._ref()
        if sched is None:
            return "error", "scheduler stopped"
        if action == "cancel":
            with self._lock:
                shown = self._shown_running.get(task_id)
            ended = _get_job(sched, shown) if shown is not None else None
            if ended is not None and ended.status.is_final:  # ended before the click was handled (a busy cell)
                what = f"the job of {ended.task_name!r} (job {ended.job_id[:8]})"
                return ("warn", f"nothing cancelled: {what} had already {ended.status}")
            return self._cancel(sched, sched.get_task(task_id))
        task = sched.get_task(task_id)
        name = task.task_name
        if action == "pause":
            sched.pause_task(task_id)
            return "ok", f"paused {name!r}"
        if action == "resume":
            sched.resume_task(task_id)
            return "ok", f"resumed {name!r}"
        if action == "run":
            job_id = sched.run_task_immediately(task_id)
            return "ok", f"started {name!r} (job {job_id[:8]})"
        raise ValueError(f"unknown action {action!r}")

    @staticmethod
    def _cancel(sched: Any, task: Task) -> tuple[str, str]:
        """Cancel the task's running job, and say so honestly when the cancel cannot take effect."""
        name, job_id = task.task_name, task.last_job_id
        if task.status is not TaskStatus.RUNNING or job_id is None:
            return "ok", f"{name!r} has no running job to cancel"
        cannot = (
            f"can't cancel {name!r} (job {job_id[:8]}): its handler takes no stop event (_stop_event), "
            "so it runs to its end"
        )
        if not sched.can_cancel(job_id):
            sched.cancel_job(job_id)  # recorded on the job (`cancel_requested`); it runs to its end
            return "warn", cannot
        if sched.cancel_job(job_id):
            return "ok", f"cancel requested for {name!r} (job {job_id[:8]})"
        return "ok", f"the job of {name!r} had already finished"

    # -------------------------------------------------------------- snapshots

    def collect(self) -> Snapshot:
        """Fresh snapshots from the scheduler, turned into row views (any thread)."""
        now = datetime.now(timezone.utc)
        sched = self._ref()
        if sched is None:
            # Gone (`%quiv stop` drops the kernel's scheduler): the last rows stay, with the jobs that ended since.
            off: dict[str, Any] = {"can_cancel": False, "can_pause": False, "can_resume": False, "can_run": False}
            with self._lock:
                lasts = {r.task_id: self._last_done.get(r.task_id) for r in self._views}
            stopped: dict[str, Any] = {
                "status": "stopped", "next_run": "—", "running": False, "progress": None, "progress_text": ""
            }  # fmt: skip
            rows = [r._replace(**stopped, **off, **last_fields(lasts[r.task_id], now)) for r in self._views]
            return Snapshot(False, "stopped", rows, self.recent_jobs(), False, False, now, self._earlier)
        state = "running" if sched.is_running else "stopped" if sched.stopped else "not started"
        live = state != "stopped"
        tasks = sched.get_all_tasks(include_run_once=True)
        present = {t.task_id for t in tasks}
        with self._lock:
            gone = [(t, j) for t, j in self._last_seen.items() if t not in present]
            for task_id, _ in gone:
                del self._last_seen[task_id]
        for _, job_id in gone:  # removed, or a run-once task that finished: keep its last job
            job = _get_job(sched, job_id)
            if job is not None and job.status.is_final:
                self.remember(job)
        rows, busy, progress = [], False, False
        for task in tasks:
            current = None
            if task.last_job_id is not None:
                with self._lock:
                    self._last_seen[task.task_id] = task.last_job_id
                job = _get_job(sched, task.last_job_id)
                if job is not None and job.status.is_final:
                    self.remember(job)
                elif job is not None:
                    current = job
                    with self._lock:  # newest last; the oldest go beyond `_SHOWN_KEPT` (run-once tasks pile up)
                        self._shown_running.pop(task.task_id, None)
                        self._shown_running[task.task_id] = job.job_id
                        while len(self._shown_running) > _SHOWN_KEPT:
                            del self._shown_running[next(iter(self._shown_running))]
            with self._lock:
                last = self._last_done.get(task.task_id)
            renderer = _renderer_of(sched, task.task_id) if current is not None else None
            view = row_view(task, current, last, renderer, now, live)
            rows.append(view)
            busy = busy or view.running or task.next_run_at is not None
            progress = progress or view.progress is not None
        with self._lock:
            for task_id in [t for t in self._last_done if t not in present]:
                del self._last_done[task_id]
        self._views = rows
        return Snapshot(live, state, rows, self.recent_jobs(), busy and live, progress and live, now, self._earlier)

    def recent_jobs(self) -> list[Job]:
        """Finished jobs we know of, newest first."""
        with self._lock:
            return sorted(self._recent.values(), key=_end_key, reverse=True)


def _end_key(job: Job) -> float:
    at = job.ended_at or job.started_at  # an interrupted job has no end: when it started, then
    return at.timestamp() if at is not None else 0.0


def _get_job(sched: Any, job_id: str) -> Job | None:
    try:
        return sched.get_job(job_id)
    except JobNotFoundError:  # pruned from history
        return None


def _renderer_of(sched: Any, task_id: str) -> Any:
    """The task's progress callback, or None (`Quiv.progress_callback`: lock-free, any thread)."""
    try:
        return sched.progress_callback(task_id)
    except QuivError:  # removed meanwhile
        return None
