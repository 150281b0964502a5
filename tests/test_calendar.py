"""Calendar schedules in the scheduler: cron and daily `at` tasks, next_run_at, DST, with a controllable wall clock.

The scheduler sleeps on the monotonic clock; calendar triggers read the wall clock
(`quiv_nb.cron.wall_now`) only to plan runs, so moving it (`wall_clock` below) to just before
09:00 makes a "09:00" task fire a fraction of a second later in real time. No test waits for a
real minute boundary.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

import pytest
from conftest import WAIT, ended_event, next_job

import quiv_nb.cron as cron_module
from quiv_nb import JobStatus, Quiv
from quiv_nb.cron import CronTrigger

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def wall_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[datetime], None]]:
    """`wall_clock(t)`: from now on calendar triggers read the wall clock as `t` plus the real time elapsed since."""
    real = cron_module.wall_now

    def set_to(target: datetime) -> None:
        offset = target.astimezone(UTC) - real()
        monkeypatch.setattr(cron_module, "wall_now", lambda: real() + offset)

    yield set_to


def test_a_daily_task_fires_at_its_time_and_plans_the_next_day(
    quiv: Quiv, wall_clock: Callable[[datetime], None]
) -> None:
    wall_clock(datetime(2026, 6, 1, 8, 59, 59, 700_000, tzinfo=PARIS))
    ran = next_job(quiv, "report")
    tid = quiv.add_task("report", lambda _scheduled_at: _scheduled_at, at="09:00", timezone="Europe/Paris")
    task = quiv.get_task(tid)
    assert task.at == "09:00" and task.timezone == "Europe/Paris" and task.cron is None
    assert task.next_run_at == datetime(2026, 6, 1, 9, 0, tzinfo=PARIS)
    assert task.next_run_at.tzinfo is PARIS
    job = ran.result(WAIT)
    assert job.status == JobStatus.COMPLETED
    assert job.result == datetime(2026, 6, 1, 9, 0, tzinfo=PARIS)  # _scheduled_at: when it was due, in its zone
    assert quiv.get_task(tid).next_run_at == datetime(2026, 6, 2, 9, 0, tzinfo=PARIS)


def test_a_cron_task_fires_on_its_minute(quiv: Quiv, wall_clock: Callable[[datetime], None]) -> None:
    wall_clock(datetime(2026, 6, 5, 17, 44, 59, 800_000, tzinfo=UTC))  # a Friday
    ran = next_job(quiv, "tick")
    tid = quiv.add_task("tick", lambda scheduled_at: scheduled_at, cron="*/15 * * * 1-5", timezone="UTC")
    assert quiv.get_task(tid).cron == "*/15 * * * 1-5"
    job = ran.result(WAIT)
    assert job.result == datetime(2026, 6, 5, 17, 45, tzinfo=UTC)
    assert quiv.get_task(tid).next_run_at == datetime(2026, 6, 5, 18, 0, tzinfo=UTC)


def test_0230_on_the_spring_forward_night_runs_at_0300(quiv: Quiv, wall_clock: Callable[[datetime], None]) -> None:
    wall_clock(datetime(2026, 3, 29, 1, 59, 59, 700_000, tzinfo=PARIS))  # 0.3 s before clocks jump to 03:00
    ran = next_job(quiv, "nightly")
    tid = quiv.add_task("nightly", lambda _scheduled_at: _scheduled_at.isoformat(), at="02:30", timezone="Europe/Paris")
    assert quiv.get_task(tid).next_run_at.isoformat() == "2026-03-29T03:00:00+02:00"
    assert ran.result(WAIT).result == "2026-03-29T03:00:00+02:00"
    assert quiv.get_task(tid).next_run_at.isoformat() == "2026-03-30T02:30:00+02:00"


def test_0230_on_the_fall_back_night_runs_once(quiv: Quiv, wall_clock: Callable[[datetime], None]) -> None:
    wall_clock(datetime(2026, 10, 25, 2, 29, 59, 700_000, tzinfo=PARIS, fold=0))  # summer time, first pass
    ran = next_job(quiv, "nightly")
    tid = quiv.add_task("nightly", lambda _scheduled_at: _scheduled_at, at="02:30", timezone="Europe/Paris")
    due = ran.result(WAIT).result
    assert due.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    # Not again an hour later at 02:30 winter time: the next run is tomorrow's.
    assert quiv.get_task(tid).next_run_at.astimezone(UTC) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


def test_next_run_at_matches_the_trigger_and_the_default_zone_is_the_machines(
    quiv: Quiv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    before = datetime.now(UTC)
    tid = quiv.add_task("weekday", lambda: None, cron="0 9 * * 1-5")
    after = datetime.now(UTC)
    task = quiv.get_task(tid)
    assert task.timezone == "America/New_York"
    trigger = CronTrigger("0 9 * * 1-5", ZoneInfo("America/New_York"))
    assert task.next_run_at in (trigger.next_after(before), trigger.next_after(after))
    assert task.next_run_at.tzinfo is ZoneInfo("America/New_York")


def test_pause_and_resume_keep_calendar_times(quiv: Quiv, wall_clock: Callable[[datetime], None]) -> None:
    wall_clock(datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    tid = quiv.add_task("noon", lambda: None, at="12:30", timezone="UTC")
    quiv.pause_task(tid)
    assert quiv.get_task(tid).next_run_at is None
    quiv.resume_task(tid)
    assert quiv.get_task(tid).next_run_at == datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
    quiv.resume_task(tid)  # already running: unchanged
    quiv.pause_task(tid)
    quiv.resume_task(tid, delay=3600)  # the first 12:30 at least an hour from now: tomorrow
    assert quiv.get_task(tid).next_run_at == datetime(2026, 6, 2, 12, 30, tzinfo=UTC)


def test_a_calendar_task_added_before_start_is_planned_at_start(
    quiv_factory: Callable[..., Quiv], wall_clock: Callable[[datetime], None]
) -> None:
    q = quiv_factory(start=False)
    wall_clock(datetime(2026, 6, 1, 6, 59, 59, 800_000, tzinfo=UTC))
    tid = q.add_task("seven", lambda _scheduled_at: _scheduled_at, at="7:00", timezone="UTC")
    assert q.get_task(tid).next_run_at is None  # not started: nothing planned yet
    done = ended_event(q, tid)
    q.start()
    assert done.wait(WAIT)
    assert q.get_all_jobs(task_id=tid)[0].result == datetime(2026, 6, 1, 7, 0, tzinfo=UTC)


def test_a_calendar_task_can_start_a_pipeline(quiv: Quiv, wall_clock: Callable[[datetime], None]) -> None:
    wall_clock(datetime(2026, 6, 1, 8, 59, 59, 800_000, tzinfo=UTC))
    ran = next_job(quiv, "load")
    quiv.add_task("extract", lambda: [1, 2], cron="0 9 * * *", timezone="UTC")
    quiv.add_task("load", lambda _upstream, _scheduled_at: (_upstream, _scheduled_at.tzinfo), after="extract")
    job = ran.result(WAIT)
    assert job.result[0] == {"extract": [1, 2]}
    assert job.result[1] is not None  # an aware datetime: when the trigger arrived


def test_interval_runs_get_increasing_aware_due_times(quiv: Quiv) -> None:
    seen: list[datetime] = []
    enough = threading.Event()

    def tick(_scheduled_at: datetime) -> None:
        seen.append(_scheduled_at)
        if len(seen) == 3:
            enough.set()

    tid = quiv.add_task("tick", tick, interval=0.05)
    assert enough.wait(WAIT)
    quiv.remove_task(tid)
    assert all(d.tzinfo is not None for d in seen)
    assert seen[0] < seen[1] < seen[2]


def test_task_snapshot_of_an_interval_task_has_no_calendar_fields(quiv: Quiv) -> None:
    task = quiv.get_task(quiv.add_task("t", lambda: None, interval=60, delay=30))
    assert (task.cron, task.at, task.timezone, task.after) == (None, None, None, ())
    assert task.next_run_at is not None and task.next_run_at.tzinfo is UTC
    assert timedelta(seconds=25) < task.next_run_at - datetime.now(UTC) <= timedelta(seconds=30)


def test_import_quiv_nb_loads_no_calendar_machinery() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = "import sys, quiv_nb; print(sorted(m for m in ('cronsim', 'zoneinfo', 'quiv_nb.cron') if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, check=True)
    assert out.stdout.strip() == "[]"  # loaded on the first cron=/at= task instead
