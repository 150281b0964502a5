"""What every bar renderer shares: the worker-side inbox and the pump-side redraw.

A renderer is called from two sides. The worker side (the scheduler's `_progress_hook`, or any
scheduler calling `callback(**payload)`) only records the payload in O(1): it merges the
keywords into the current run's dict, keeps the latest positionals, and asks the render pump for
a redraw when none is pending. The pump side (`pump_draw`, on the "quiv_nb-render" thread) turns
that record into a `BarState` with the pure functions of `state.py` and hands it to the
subclass's `_render`, which is the only code that touches a display library.

Runs: `quiv_job_started` opens a fresh run (value 0, clock restarted); `quiv_job_finished` closes
it with the job's outcome, which is always drawn. A renderer shows one run at a time, the most
recently started job's: while it runs, payloads and outcomes of other jobs sharing the renderer
are ignored. Plain calls (`renderer(**payload)`) feed the current run, opening one when none is
active; a job-less bar that reached its total and then goes back starts a fresh run by itself.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import weakref
from dataclasses import replace
from typing import Any, ClassVar

from . import state as st
from .format import cached_note, short_repr
from .pump import get_pump

__all__ = ["BarRenderer", "interrupt_running"]

_log = logging.getLogger("quiv_nb")

_NOBODY = object()  # the job id of the idle run: matches no caller, not even a plain call (None)
# Keywords kept per run: far more than a bar shows (st.MAX_KEYS_SCANNED), so trimming only ever
# hits a handler that invents a new key per call, whose merged dict would otherwise grow without end.
_MAX_KW = 4 * st.MAX_KEYS_SCANNED
_CORE_KEYS = (*st.VALUE_KEYS, st.TOTAL_KEY, st.PCT_KEY, *st.LABEL_KEYS)
# Every renderer that ever opened a run, so a kernel exit can end the runs still open (`interrupt_running`).
_opened: weakref.WeakSet[BarRenderer] = weakref.WeakSet()
_opened_lock = threading.Lock()


class _Run:
    """The inbox of one run: written by the worker side, read by the pump."""

    __slots__ = ("args", "final", "job_id", "kw", "prev", "seq", "t0")

    def __init__(self, seq: int, job_id: Any, t0: float, prev: _Run | None = None) -> None:
        self.seq, self.job_id, self.t0 = seq, job_id, t0
        self.prev = prev  # the run before, while its final state may still be undrawn
        self.args: tuple[Any, ...] = ()
        self.kw: dict[Any, Any] = {}
        # (status, message, duration, result repr, cached note)
        self.final: tuple[str, str, float | None, str, str] | None = None

    @property
    def active(self) -> bool:
        return self.seq > 0 and self.final is None


class BarRenderer:
    """Base class of the bars returned by `quiv_nb.bar()`. Subclasses implement `_render`."""

    kind: ClassVar[str] = "?"

    def __init__(self, *, desc: str = "", total: float | None = None, unit: str = "it", leave: bool = True,
                 min_interval: float = 0.1) -> None:  # fmt: skip
        self.min_interval = float(min_interval)  # read by the pump (Drawable protocol)
        self._leave = leave
        self._blank = st.new_state(desc, unit, total)
        self._state = self._blank  # the last drawn state (pump thread writes, anyone reads)
        self._run = _Run(0, _NOBODY, 0.0)
        self._seq = 0
        self._lock = threading.Lock()  # run switches only; the per-payload path takes no lock
        self._dirty = False  # a redraw is requested and not yet started
        self._drawn_seq = 0  # the run `_state` belongs to
        self._final_seq = 0  # the last run whose final state was drawn
        self._final_drawn = threading.Event()
        self._pump = get_pump()
        self._logged = False

    # ------------------------------------------------------------------ worker side: O(1), never raises

    def quiv_progress(self, job_id: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Record one hook call of job `job_id` (called inline on the worker thread; O(1), never raises)."""
        try:
            run = self._run
            if job_id is not run.job_id and job_id != run.job_id:
                other = self._other_run(job_id)
                if other is None:
                    return
                run = other
            if args:
                run.args = args
            if kwargs:
                run.kw.update(kwargs)
            if not self._dirty:
                self._dirty = True
                self._pump.request(self)
        except Exception:
            self._log_once()

    def __call__(self, /, *args: Any, **kwargs: Any) -> None:  # `/`: a payload may have a "self" key
        """Record a payload from any scheduler that calls `callback(*args, **payload)` (thread-safe, O(1))."""
        self.quiv_progress(None, args, kwargs)

    def quiv_job_started(self, job: Any) -> None:
        """A fresh run for `job` (called on the worker thread just before the handler runs)."""
        try:
            with self._lock:
                self._open(job.job_id)
            self._dirty = True
            self._pump.request(self)
        except Exception:
            self._log_once()

    def quiv_job_finished(self, job: Any) -> None:
        """Close the run of `job` with its outcome; the final state is always drawn."""
        try:
            result = getattr(job, "result", None)
            final = (str(job.status), job.error_message or "", job.duration_seconds,
                     short_repr(result) if result is not None else "", _cached(job))  # fmt: skip
            with self._lock:
                run = self._run
                if run.job_id != job.job_id:
                    if run.active and run.job_id is not None:
                        return  # another job's bar is live; this outcome is stale
                    run = self._open(job.job_id)
                if run.final is None:
                    run.final = final
            self._dirty = True
            self._pump.request(self, final=True)
        except Exception:
            self._log_once()

    def _other_run(self, job_id: Any) -> _Run | None:
        """The slow path of a payload whose job is not the current run's: use, open or ignore a run."""
        with self._lock:
            run = self._run
            if job_id is None:
                return run if run.active else self._open(None)
            if job_id == run.job_id:
                return run
            if run.active and run.job_id is not None:
                return None  # another job owns the bar
            return self._open(job_id)

    def _open(self, job_id: Any) -> _Run:
        """Start a new run (called with the lock held)."""
        self._seq += 1
        old = self._run
        old.prev = None  # one level only: a starved pump must not make a chain of runs
        self._run = run = _Run(self._seq, job_id, time.monotonic(), old if old.final is not None else None)
        self._final_drawn.clear()
        if self._seq == 1:
            with _opened_lock:
                _opened.add(self)
        return run

    def interrupt(self, reason: str) -> bool:
        """End the open run as interrupted (`reason`, e.g. "kernel restarted") at the step it reached (any thread).

        The first final state of a run wins, so the job's own outcome, arriving later (a handler that
        returns once the scheduler's shutdown sets its stop event), no longer changes the bar. Returns
        False when no run was open; never raises.
        """
        try:
            with self._lock:
                run = self._run
                if not run.active:
                    return False
                run.final = (st.INTERRUPTED, reason, None, "", "")
            self._dirty = True
            self._pump.request(self, final=True)
            return True
        except Exception:
            self._log_once()
            return False

    def _log_once(self) -> None:
        if not self._logged:
            self._logged = True
            _log.exception("quiv_nb: %s bar failed to record progress (further errors are not logged)", self.kind)

    def note_waiting(self, text: str) -> None:
        """Say what the bar waits for before its first run ("waiting for extract", "next run 09:00").

        Any thread; shown while no run has started (and by later idle states), never raises.
        """
        try:
            self._blank = replace(self._blank, message=st.clean_text(text, st.MAX_MESSAGE))
            if self._state.status == st.IDLE:
                self._state = self._blank
                self._dirty = True
                self._pump.request(self)
        except Exception:
            self._log_once()

    # ------------------------------------------------------------------ pump side

    def pump_draw(self) -> int:
        """Redraw from the latest recorded payload (pump thread only); the number of messages sent."""
        self._dirty = False  # before reading the inbox: a payload recorded from now on asks again
        run = self._run
        if run.seq == 0:  # no run yet: the idle state (what it waits for, `note_waiting`)
            return self._render(self._state, False)
        sent = 0
        prev = run.prev
        if prev is not None:  # a run that ended and was replaced before its final state was drawn
            run.prev = None
            if self._final_seq < prev.seq:
                sent += self._draw(prev)
        return sent + self._draw(run)

    def _draw(self, run: _Run) -> int:
        now = time.monotonic()
        state = self._state
        if self._drawn_seq != run.seq:
            state = st.start(self._blank, run.t0)
            self._drawn_seq = run.seq
        elif self._final_seq == run.seq:
            return 0  # this run's final state is already on screen
        kw = run.kw.copy()  # atomic under the GIL while the worker keeps merging into it
        if len(kw) > _MAX_KW:
            kw = _trim(kw)
            run.kw = kw  # a payload merged into the old dict meanwhile is lost: only in this pathological case
        new = st.apply(state, run.args, kw)
        if run.job_id is None and st.rewound(state, new):
            new = st.apply(st.start(self._blank, now), run.args, kw)
        final = run.final
        if final is not None:
            status, message, duration, result, cached = final
            new = st.finish(new, status, message, now, duration, result, cached)
        else:
            new = st.tick(new, now)
        self._state = new
        sent = self._render(new, final is not None)
        if final is not None:
            self._final_seq = run.seq
            with self._lock:
                if run is self._run:
                    self._final_drawn.set()
        return sent

    def _render(self, state: st.BarState, final: bool) -> int:
        """Show `state` (pump thread only); return the number of frontend messages sent."""
        raise NotImplementedError

    # ------------------------------------------------------------------ any thread

    def wait_drawn(self, timeout: float | None = None) -> bool:
        """Block until the final state of the current run is drawn; False on timeout.

        For scripts and tests: after `wait_for_job`, the bar's last redraw may still be pending.
        """
        return self._final_drawn.wait(timeout)

    def close(self) -> None:
        """Stop drawing this bar and release what it displays."""
        self._pump.forget(self)

    @property
    def state(self) -> st.BarState:
        """The last drawn state (read by the dashboard to show a task's progress)."""
        return self._state

    @property
    def line(self) -> str:
        """The last drawn state as one line of text."""
        return st.format_meter(self._state)

    def __repr__(self) -> str:
        return self.line

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return {"text/plain": self.line}


def interrupt_running(reason: str) -> int:
    """End every bar's open run as interrupted (`reason`); the number of bars ended (any thread, never raises).

    The kernel's exit handler calls it before the scheduler shuts down; the render pump draws the
    final states in its exit step, while the kernel's sockets are still open.
    """
    with _opened_lock:
        bars = list(_opened)
    return sum(bar.interrupt(reason) for bar in bars)


def _trim(kw: dict[Any, Any]) -> dict[Any, Any]:
    """The first keywords a bar can show, plus the value, total and label keys wherever they are."""
    kept = dict(itertools.islice(kw.items(), st.MAX_KEYS_SCANNED))
    for key in _CORE_KEYS:
        if key in kw:
            kept[key] = kw[key]
    return kept


def _cached(job: Any) -> str:
    """A reused result's `st.cached_note` ("" for a job that ran)."""
    if not getattr(job, "cached", False):
        return ""
    from datetime import datetime, timezone

    return cached_note(getattr(job, "computed_at", None), datetime.now(timezone.utc))
