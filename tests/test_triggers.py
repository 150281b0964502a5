"""Triggers: intervals, cron lines and daily times, driven by made-up instants (no clock, no sleeps).

Daylight-saving dates used (2026): Europe/Paris springs 02:00 CET -> 03:00 CEST on 29 March and
falls back 03:00 CEST -> 02:00 CET on 25 October; America/New_York changes on 8 March and 1 November.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from quiv_nb import ConfigurationError
from quiv_nb.cron import (
    CronTrigger,
    DailyTrigger,
    Slot,
    local_zone,
    resolve_zone,
    zone_name,
)
from quiv_nb.triggers import AfterTrigger

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


class Clock:
    """A controllable pair of clocks: monotonic seconds and the wall clock, advanced together."""

    def __init__(self, wall: datetime, mono: float = 1000.0) -> None:
        self.wall = wall.astimezone(UTC)
        self.mono = mono

    def set_wall(self, wall: datetime) -> None:
        target = wall.astimezone(UTC)
        self.mono += (target - self.wall).total_seconds()
        self.wall = target

    def at(self, slot: Slot) -> None:
        """Move both clocks to the moment `slot` comes due."""
        self.wall += timedelta(seconds=slot.due - self.mono)
        self.mono = slot.due


def runs(trigger: CronTrigger, start: datetime, count: int) -> list[Slot]:
    """The first `count` slots from `start`, each asked for at the moment the previous one came due."""
    clock = Clock(start)
    slot = trigger.first(clock.mono, clock.wall)
    out = []
    while slot is not None and len(out) < count:
        out.append(slot)
        clock.at(slot)
        slot = trigger.following(slot, clock.mono, clock.wall)
    return out


def local(zone: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=zone, fold=fold)  # type: ignore[misc]


def utc_hours(slots: list[Slot]) -> list[float]:
    """Elapsed hours between consecutive slots, on the monotonic clock."""
    return [round((b.due - a.due) / 3600, 4) for a, b in itertools.pairwise(slots)]


# ---------------------------------------------------------------- daily at HH:MM across DST


def test_daily_runs_at_the_same_wall_time_each_day_and_the_monotonic_gap_follows_dst() -> None:
    trigger = DailyTrigger("09:30", PARIS)
    slots = runs(trigger, local(PARIS, 2026, 3, 27, 12, 0), 4)
    assert [s.at.strftime("%m-%d %H:%M %Z") for s in slots] == [
        "03-28 09:30 CET",
        "03-29 09:30 CEST",
        "03-30 09:30 CEST",
        "03-31 09:30 CEST",
    ]
    # The night of the spring change is one hour shorter on the monotonic clock.
    assert utc_hours(slots) == [23.0, 24.0, 24.0]


def test_daily_0230_in_the_spring_gap_runs_once_at_0300_summer_time() -> None:
    slots = runs(DailyTrigger("02:30", PARIS), local(PARIS, 2026, 3, 28, 12, 0), 3)
    assert [s.at.isoformat() for s in slots] == [
        "2026-03-29T03:00:00+02:00",  # 02:30 does not exist that night: first minute after the gap
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_daily_0230_in_the_autumn_fold_runs_once_at_the_first_0230() -> None:
    slots = runs(DailyTrigger("02:30", PARIS), local(PARIS, 2026, 10, 24, 12, 0), 3)
    assert [s.at.astimezone(UTC).isoformat() for s in slots] == [
        "2026-10-25T00:30:00+00:00",  # 02:30 CEST, the first pass; not again at 02:30 CET (01:30 UTC)
        "2026-10-26T01:30:00+00:00",
        "2026-10-27T01:30:00+00:00",
    ]
    assert utc_hours(slots) == [25.0, 24.0]


def test_started_inside_the_second_pass_of_the_fold_waits_for_tomorrow() -> None:
    # 02:10 CET (fold=1) is after 02:30 CEST in real time: that run is behind us.
    trigger = DailyTrigger("02:30", PARIS)
    clock = Clock(local(PARIS, 2026, 10, 25, 2, 10, fold=1))
    slot = trigger.first(clock.mono, clock.wall)
    assert slot is not None
    assert slot.at.isoformat() == "2026-10-26T02:30:00+01:00"
    assert slot.due == pytest.approx(clock.mono + (24 * 3600 + 20 * 60))


def test_started_inside_the_first_pass_of_the_fold_runs_at_the_first_0230() -> None:
    trigger = DailyTrigger("02:30", PARIS)
    clock = Clock(local(PARIS, 2026, 10, 25, 2, 10, fold=0))
    slot = trigger.first(clock.mono, clock.wall)
    assert slot is not None and slot.due == pytest.approx(clock.mono + 20 * 60)
    clock.at(slot)
    nxt = trigger.following(slot, clock.mono, clock.wall)
    assert nxt is not None and nxt.at.isoformat() == "2026-10-26T02:30:00+01:00"


def test_daily_in_new_york_across_both_changes() -> None:
    spring = runs(DailyTrigger("02:30", NEW_YORK), local(NEW_YORK, 2026, 3, 7, 12, 0), 2)
    assert [s.at.isoformat() for s in spring] == ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]
    autumn = runs(DailyTrigger("01:30", NEW_YORK), local(NEW_YORK, 2026, 10, 31, 12, 0), 2)
    assert [s.at.isoformat() for s in autumn] == ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]


def test_first_run_can_be_exactly_now_and_honours_delay() -> None:
    trigger = DailyTrigger("09:00", UTC)
    clock = Clock(datetime(2026, 6, 1, 9, 0, tzinfo=UTC))
    slot = trigger.first(clock.mono, clock.wall)
    assert slot is not None and slot.due == clock.mono
    later = trigger.first(clock.mono, clock.wall, delay=1.0)
    assert later is not None and later.at == datetime(2026, 6, 2, 9, 0, tzinfo=UTC)


def test_following_never_repeats_a_slot_when_the_monotonic_timer_wakes_early() -> None:
    trigger = DailyTrigger("09:00", UTC)
    clock = Clock(datetime(2026, 6, 1, 8, 0, tzinfo=UTC))
    slot = trigger.first(clock.mono, clock.wall)
    assert slot is not None
    # The timer fires at the slot's due time but the wall clock reads a little earlier (drift).
    early_wall = slot.at - timedelta(milliseconds=5)
    nxt = trigger.following(slot, slot.due, early_wall)
    assert nxt is not None and nxt.at == datetime(2026, 6, 2, 9, 0, tzinfo=UTC)


def test_following_skips_runs_missed_while_a_job_ran_long() -> None:
    trigger = DailyTrigger("09:00", UTC)
    clock = Clock(datetime(2026, 6, 1, 8, 0, tzinfo=UTC))
    slot = trigger.first(clock.mono, clock.wall)
    assert slot is not None
    clock.set_wall(datetime(2026, 6, 3, 10, 0, tzinfo=UTC))  # asked two days late
    nxt = trigger.following(slot, clock.mono, clock.wall)
    assert nxt is not None and nxt.at == datetime(2026, 6, 4, 9, 0, tzinfo=UTC)
    assert nxt.due == pytest.approx(clock.mono + 23 * 3600)


# ---------------------------------------------------------------- cron


def test_weekday_cron_skips_the_weekend() -> None:
    slots = runs(CronTrigger("0 9 * * 1-5", PARIS), local(PARIS, 2026, 6, 5, 10, 0), 3)  # a Friday
    assert [s.at.strftime("%a %d %H:%M") for s in slots] == ["Mon 08 09:00", "Tue 09 09:00", "Wed 10 09:00"]


def test_hourly_cron_keeps_real_hours_through_both_changes() -> None:
    spring = runs(CronTrigger("0 * * * *", PARIS), local(PARIS, 2026, 3, 29, 0, 30), 3)
    assert [s.at.strftime("%H:%M %Z") for s in spring] == ["01:00 CET", "03:00 CEST", "04:00 CEST"]
    assert utc_hours(spring) == [1.0, 1.0]
    autumn = runs(CronTrigger("@hourly", PARIS), local(PARIS, 2026, 10, 25, 1, 30), 4)
    assert [s.at.strftime("%H:%M %Z") for s in autumn] == ["02:00 CEST", "02:00 CET", "03:00 CET", "04:00 CET"]
    assert utc_hours(autumn) == [1.0, 1.0, 1.0]


def test_every_15_minutes_is_real_time_in_the_fold() -> None:
    slots = runs(CronTrigger("*/15 * * * *", PARIS), local(PARIS, 2026, 10, 25, 2, 40, fold=0), 4)
    assert [s.at.astimezone(UTC).strftime("%H:%M") for s in slots] == ["00:45", "01:00", "01:15", "01:30"]


def test_nicknames_and_whitespace() -> None:
    assert CronTrigger("@daily", UTC).expression == "0 0 * * *"
    assert CronTrigger("  0   9 * *  MON-FRI ", UTC).expression == "0 9 * * MON-FRI"
    slot = CronTrigger("@weekly", UTC).first(0.0, datetime(2026, 6, 3, tzinfo=UTC))  # a Wednesday
    assert slot is not None and slot.at == datetime(2026, 6, 7, tzinfo=UTC)  # Sunday midnight


def test_rare_dates_are_found_and_none_when_nothing_comes() -> None:
    leap = CronTrigger("0 0 29 2 *", UTC).next_after(datetime(2026, 3, 1, tzinfo=UTC))
    assert leap == datetime(2028, 2, 29, tzinfo=UTC)
    assert CronTrigger("0 0 1 1 *", UTC).next_after(datetime(9999, 6, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    "expression, why",
    [
        ("", "5-field"),
        ("* * * *", "4 fields"),
        ("0 0 0 * * *", "6 fields"),
        ("61 * * * *", "Bad minute"),
        ("0 25 * * *", "Bad hour"),
        ("0 0 31 2 *", "Bad day-of-month"),
        ("0 0 * 13 *", "Bad month"),
        ("0 0 * * FUNDAY", "Bad day-of-week"),
        ("@fortnightly", "1 fields"),
    ],
)
def test_bad_cron_is_a_configuration_error_naming_the_argument(expression: str, why: str) -> None:
    with pytest.raises(ConfigurationError, match="cron must be a 5-field cron expression") as info:
        CronTrigger(expression, UTC)
    assert why in str(info.value)
    assert isinstance(info.value, ValueError)


def test_non_string_cron_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="cron must be"):
        CronTrigger(5, UTC)  # type: ignore[arg-type]


@pytest.mark.parametrize("at", ["24:00", "9", "09:60", "9:5", "0930", "09:30:00", "", "noon", None, 930])
def test_bad_at_is_a_configuration_error(at: object) -> None:
    with pytest.raises(ConfigurationError, match=r'at must be a daily time "HH:MM" \(24-hour, 00:00 to 23:59\)'):
        DailyTrigger(at, UTC)  # type: ignore[arg-type]


def test_at_accepts_one_digit_hours() -> None:
    trigger = DailyTrigger(" 7:05", UTC)
    assert trigger.at == "07:05" and trigger.expression == "5 7 * * *"
    assert trigger.describe() == "daily at 07:05 (UTC)"


# ---------------------------------------------------------------- the scheduler's side of the seam


def test_first_due_next_due_and_wall_time_read_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    import quiv_nb.cron as cron_module

    wall = [datetime(2026, 3, 28, 12, 0, tzinfo=UTC)]
    monkeypatch.setattr(cron_module, "wall_now", lambda: wall[0])
    trigger = DailyTrigger("02:30", PARIS)
    due = trigger.first_due(500.0)
    assert due == 500.0 + 13 * 3600  # 12:00 UTC -> 03:00 CEST (01:00 UTC), the first minute after the gap
    assert trigger.wall_time(due) == local(PARIS, 2026, 3, 29, 3, 0)
    assert trigger.wall_time(due + 1) is None  # only the run it planned
    wall[0] = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # the moment it comes due
    nxt = trigger.next_due(due, due)
    assert nxt == due + 23.5 * 3600  # 03:00 CEST -> 02:30 CEST next day
    assert trigger.wall_time(nxt) == local(PARIS, 2026, 3, 30, 2, 30)
    # A resume with a delay: the first 02:30 at least that long from now.
    assert trigger.resume_due(due, 24 * 3600) == due + 47.5 * 3600


def test_delay_postpones_the_first_calendar_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import quiv_nb.cron as cron_module

    monkeypatch.setattr(cron_module, "wall_now", lambda: datetime(2026, 6, 1, 8, 0, 30, tzinfo=UTC))
    assert CronTrigger("0 * * * *", UTC).first_due(0.0) == 3570.0
    assert CronTrigger("0 * * * *", UTC, delay=3570).first_due(0.0) == 3570.0  # exactly at now + delay
    assert CronTrigger("0 * * * *", UTC, delay=3571).first_due(0.0) == 7170.0


def test_after_trigger_never_fires_on_its_own() -> None:
    trigger = AfterTrigger()
    assert trigger.first_due(1.0) is None
    assert trigger.next_due(1.0, 2.0) is None
    assert trigger.resume_due(1.0, 0.0) is None


def test_a_delay_past_year_9999_means_no_run() -> None:
    assert DailyTrigger("09:00", UTC).first(0.0, datetime(2026, 1, 1, tzinfo=UTC), delay=1e12) is None


# ---------------------------------------------------------------- zones


def test_resolve_zone_by_name_and_errors() -> None:
    assert resolve_zone("Europe/Paris") is PARIS
    assert zone_name(resolve_zone(" UTC ")) == "UTC"
    for bad in ("Mars/Olympus_Mons", "", "../etc/passwd", 3):
        with pytest.raises(ConfigurationError, match="timezone must be an IANA time-zone name") as info:
            resolve_zone(bad)  # type: ignore[arg-type]
        assert repr(bad) in str(info.value)


def test_local_zone_follows_tz_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert zone_name(local_zone()) == "Asia/Tokyo"
    assert zone_name(resolve_zone(None)) == "Asia/Tokyo"
    monkeypatch.setenv("TZ", ":America/New_York")
    assert local_zone() is NEW_YORK


def test_local_zone_without_tz_env_is_a_real_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TZ", raising=False)
    zone = local_zone()
    now = datetime.now(UTC)
    # Whatever the machine's zone is, it must agree with the C library's idea of local time now.
    assert now.astimezone(zone).utcoffset() == now.astimezone().utcoffset()


def test_describe_names_the_zone() -> None:
    assert CronTrigger("0 9 * * 1-5", PARIS).describe() == "cron 0 9 * * 1-5 (Europe/Paris)"
    assert zone_name(timezone(timedelta(hours=2))) == "UTC+02:00"
