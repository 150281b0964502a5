"""Calendar triggers: a cron line or a daily "HH:MM", read as wall-clock time in an IANA zone.

They implement the `seams.Trigger` interface of `quiv_nb.triggers` and are imported only when a
task uses `cron=` or `at=` (this module loads `datetime`, `zoneinfo` and cronsim).

Their pure core, `first(now, wall)` / `following(slot, now, wall)`, takes the current instant as
two readings of one moment (the scheduler's monotonic seconds and an aware `datetime`) and returns
a `Slot` holding both; the conversion to a monotonic due time happens only at that edge (`_slot`),
so the scheduler keeps one clock while "every weekday at 09:00" stays 09:00 across daylight-saving
changes. Tests drive that core with made-up instants. `first_due`/`next_due`/`resume_due` read the
wall clock (`wall_now`, which tests may replace) and remember the wall time of the run they
planned, which `wall_time(due)` gives back for `Task.next_run_at` and `_scheduled_at`.

Cron expressions are parsed and evaluated by `cronsim`, never by hand. Why cronsim rather than
croniter: it is one ~560-line module with no dependencies (croniter is ~1,700 lines and pulls in
python-dateutil), it is maintained by the author of Healthchecks, a cron-monitoring service that
runs it in production, and its stated first priority is matching Debian cron, including its
daylight-saving behaviour, which is what people who write cron lines expect. croniter was
declared unmaintained in December 2024 before pallets-eco adopted it; it is usable, but heavier.

Daylight saving, for a zone that moves 02:00 -> 03:00 in spring and 03:00 -> 02:00 in autumn
(Debian cron's rules, which cronsim follows; `at="02:30"` is the cron line "30 2 * * *"):
- a fixed time of day that falls in the spring gap (02:30 does not exist) runs once, at the
  first wall-clock minute after the gap (03:00 summer time);
- a fixed time that occurs twice in the autumn fold (02:30 summer time, then 02:30 winter time)
  runs once, at the first occurrence;
- expressions whose minute or hour field starts with "*" ("*/15 * * * *", "0 * * * *") are
  evaluated in real elapsed time: they keep their rhythm through both changes (an hourly job
  runs twice in the repeated hour and skips the hour that does not exist).

The monotonic clock does not advance while the machine sleeps (suspend): a calendar run due
during a suspend comes late by the time asleep, then the next one is planned from the wall clock.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo

from cronsim import CronSim, CronSimError

from .errors import ConfigurationError

__all__ = [
    "CronTrigger",
    "DailyTrigger",
    "Slot",
    "local_zone",
    "resolve_zone",
    "wall_now",
    "zone_name",
]

_UTC = timezone.utc

# The nicknames most crons accept, as the 5-field lines they stand for (cronsim has none).
_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_CRON_HELP = (
    'a 5-field cron expression "minute hour day-of-month month day-of-week" such as "0 9 * * 1-5" '
    "(09:00 on weekdays) or one of " + ", ".join(_NICKNAMES)
)
_HH_MM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_ZONE_HELP = (
    'an IANA time-zone name such as "Europe/Paris", "America/New_York" or "UTC", or None for this machine\'s zone'
)


@dataclass(slots=True, frozen=True)
class Slot:
    """One planned run: the same instant on the scheduler's monotonic clock and on the wall clock."""

    due: float  # a `time.monotonic()` value
    at: datetime  # aware, in the trigger's zone


class CronTrigger:
    """The instants a cron expression names, read as wall-clock time in `zone`.

    Raises `ConfigurationError` for an expression cronsim rejects (the message says why).
    """

    __slots__ = ("_planned", "delay", "expression", "zone")

    def __init__(self, expression: str, zone: tzinfo, delay: float | None = None) -> None:
        if not isinstance(expression, str) or not expression.strip():
            raise ConfigurationError(f"cron must be {_CRON_HELP}; got {expression!r}")
        line = " ".join(expression.split())
        line = _NICKNAMES.get(line.lower(), line)
        if len(line.split()) != 5:
            # cronsim also reads a 6-field form with seconds *first*, where other crons put
            # seconds last or a year there: refuse the ambiguity rather than guess.
            raise ConfigurationError(f"cron must be {_CRON_HELP}; got {expression!r} ({len(line.split())} fields)")
        try:
            CronSim(line, datetime(2000, 1, 1))
        except (CronSimError, ValueError, IndexError) as exc:
            raise ConfigurationError(f"cron must be {_CRON_HELP}; got {expression!r}: {exc}") from None
        self.expression = line
        self.zone = zone
        self.delay = delay or 0.0
        self._planned: Slot | None = None  # the run last handed to the scheduler

    def next_after(self, instant: datetime) -> datetime | None:
        """The first time the expression names strictly after the aware `instant`, in `zone`.

        None if it names no time in the next 50 years (say, "0 0 29 2 1": Feb 29 on a Monday is
        rare but exists; an impossible date is refused by the constructor).
        """
        after = instant.astimezone(_UTC)
        try:
            for fire in CronSim(self.expression, after.astimezone(self.zone)):
                # Compared in UTC: aware datetimes sharing one tzinfo compare by wall time and
                # ignore `fold`. cronsim walks wall time for fixed-time lines, so from inside an
                # autumn fold it can name a time of the first pass that is already behind us.
                if fire.astimezone(_UTC) > after:
                    return fire
        except OverflowError:  # walked past year 9999
            pass
        return None

    def first(self, now: float, wall: datetime, delay: float = 0.0) -> Slot | None:
        fire = self.next_after(_after(wall, delay) - _TICK)
        return None if fire is None else _slot(fire, now, wall)

    def following(self, slot: Slot, now: float, wall: datetime) -> Slot | None:
        # After whichever is later: the slot that came due, or the wall clock. The monotonic
        # timer may wake a hair before the wall clock agrees, and a slot must never repeat.
        fire = self.next_after(max(slot.at, wall))
        return None if fire is None else _slot(fire, now, wall)

    # The `seams.Trigger` side: monotonic due times, reading the wall clock here.

    def first_due(self, now: float) -> float | None:
        return self._plan(self.first(now, wall_now(), self.delay))

    def resume_due(self, now: float, delay: float) -> float | None:
        return self._plan(self.first(now, wall_now(), delay))

    def next_due(self, previous_due: float, now: float) -> float | None:
        wall = wall_now()
        slot = self._planned
        if slot is None or slot.due != previous_due:  # not ours (cannot happen today): place it by the clocks
            slot = Slot(previous_due, _after(wall, previous_due - now))
        return self._plan(self.following(slot, now, wall))

    def wall_time(self, due: float) -> datetime | None:
        """The wall-clock time (in `zone`) of the planned run due at monotonic `due`, or None."""
        slot = self._planned
        return slot.at if slot is not None and slot.due == due else None

    def _plan(self, slot: Slot | None) -> float | None:
        self._planned = slot
        return None if slot is None else slot.due

    def describe(self) -> str:
        return f"cron {self.expression} ({zone_name(self.zone)})"

    def __repr__(self) -> str:
        return f"CronTrigger({self.expression!r}, {zone_name(self.zone)!r})"


class DailyTrigger(CronTrigger):
    """Every day at `at` ("HH:MM", 24-hour) wall-clock time in `zone`: the cron line "M H * * *".

    Raises `ConfigurationError` for anything but "HH:MM" (or "H:MM") from 00:00 to 23:59.
    """

    __slots__ = ("at",)

    def __init__(self, at: str, zone: tzinfo, delay: float | None = None) -> None:
        match = _HH_MM.fullmatch(at.strip()) if isinstance(at, str) else None
        if match is None:
            raise ConfigurationError(f'at must be a daily time "HH:MM" (24-hour, 00:00 to 23:59), got {at!r}')
        hour, minute = int(match[1]), int(match[2])
        super().__init__(f"{minute} {hour} * * *", zone, delay)
        self.at = f"{hour:02d}:{minute:02d}"

    def describe(self) -> str:
        return f"daily at {self.at} ({zone_name(self.zone)})"

    def __repr__(self) -> str:
        return f"DailyTrigger({self.at!r}, {zone_name(self.zone)!r})"


def wall_now() -> datetime:
    """The wall clock calendar triggers plan from (aware, UTC). Tests replace this module attribute."""
    return datetime.now(_UTC)


_TICK = timedelta(microseconds=1)  # `first` may fire exactly at now + delay: search from just before it


def _after(wall: datetime, seconds: float) -> datetime:
    """`wall` plus `seconds`, clamped to the largest datetime (a delay of centuries)."""
    try:
        return wall + timedelta(seconds=seconds)
    except OverflowError:
        return datetime.max.replace(tzinfo=_UTC)


def _slot(fire: datetime, now: float, wall: datetime) -> Slot:
    """The edge between the clocks: a wall-clock `fire` time as a due time on the monotonic clock.

    Elapsed time is measured in UTC, so a daylight-saving change between now and `fire` counts
    for what it is (the night of the spring change is an hour shorter).
    """
    return Slot(now + (fire.astimezone(_UTC) - wall.astimezone(_UTC)).total_seconds(), fire)


# ---------------------------------------------------------------------------------------------
# Zones


def resolve_zone(name: str | None) -> tzinfo:
    """The zone named `name` (an IANA key), or this machine's zone for None.

    Raises `ConfigurationError` naming the argument, with what is allowed; when Python finds
    no time-zone database at all (Windows, some slim containers) it says to install tzdata.
    """
    if name is None:
        return local_zone()
    import zoneinfo

    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"timezone must be {_ZONE_HELP}; got {name!r}")
    try:
        return zoneinfo.ZoneInfo(name.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        hint = ""
        if not zoneinfo.available_timezones():
            hint = "; Python found no time-zone database on this machine: pip install tzdata"
        raise ConfigurationError(f"timezone must be {_ZONE_HELP}; got {name!r}{hint}") from None


def local_zone() -> tzinfo:
    """This machine's zone with its daylight-saving rules, best effort.

    Python has no portable way to name it, so, in order: $TZ if it is an IANA key, the zone
    /etc/localtime links to, /etc/timezone, the rules in /etc/localtime itself; last (Windows
    without tzlocal-style lookups) today's fixed UTC offset, which does not follow DST: pass
    `timezone=` explicitly there.
    """
    import zoneinfo

    candidates = []
    tz_env = os.environ.get("TZ", "").lstrip(":")
    if tz_env:
        candidates.append(tz_env)
    try:
        target = os.path.realpath("/etc/localtime")
        if "/zoneinfo/" in target:
            candidates.append(target.split("/zoneinfo/", 1)[1])
    except OSError:  # pragma: no cover - platform dependent
        pass
    try:
        with open("/etc/timezone", encoding="utf-8") as f:
            candidates.append(f.read().strip())
    except OSError:
        pass
    for key in candidates:
        try:
            return zoneinfo.ZoneInfo(key)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            continue
    try:
        with open("/etc/localtime", "rb") as f:
            return zoneinfo.ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        pass
    return datetime.now().astimezone().tzinfo or _UTC  # pragma: no cover - no tz database at all


def zone_name(zone: tzinfo) -> str:
    """The IANA key of a zone (`Task.timezone`), else its name for now ("UTC", "CET")."""
    return getattr(zone, "key", None) or zone.tzname(datetime.now(_UTC)) or str(zone)
