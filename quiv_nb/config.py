"""`QuivConfig`: a scheduler's settings as one immutable value, as quiv's `QuivConfig` groups them.

`Quiv(config=QuivConfig(...))` (or `Quiv(QuivConfig(...))`) takes them from it; passing one of
its fields explicitly as well is a `ConfigurationError`, as in quiv. `resolve` validates either
form and returns the settings the scheduler uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from .errors import ConfigurationError
from .tasks import number

__all__ = ["QuivConfig", "resolve"]

_DEFAULTS = {"pool_size": 10, "history_retention_seconds": 3600, "timezone": None}


@dataclass(slots=True, frozen=True)
class QuivConfig:
    """A scheduler's settings (immutable).

    `pool_size`: worker threads of the default executor. `history_retention_seconds`: how long
    finished jobs stay in `get_all_jobs()`. `timezone`: the zone `cron=` / `at=` tasks are read in
    when they name none (an IANA name, "UTC", or a `datetime.tzinfo`; None: this machine's zone).
    """

    pool_size: int = 10
    history_retention_seconds: float = 3600
    timezone: str | tzinfo | None = None


def resolve(config: Any, pool_size: Any, history_retention_seconds: Any, timezone: Any) -> QuivConfig:
    """The validated settings from `Quiv`'s arguments (calling thread).

    `config` is a `QuivConfig` or None; with one, the other three must be left at their
    defaults. Raises `ConfigurationError` naming the bad argument.
    """
    if config is not None:
        if not isinstance(config, QuivConfig):
            raise ConfigurationError(f"config must be a quiv_nb.QuivConfig or None, got {type(config).__name__}")
        given = {"pool_size": pool_size, "history_retention_seconds": history_retention_seconds, "timezone": timezone}
        explicit = sorted(name for name, value in given.items() if value != _DEFAULTS[name])
        if explicit:
            raise ConfigurationError(
                f"pass {', '.join(explicit)} inside config=QuivConfig(...), not beside it (as in quiv)"
            )
        pool_size, history_retention_seconds, timezone = (
            config.pool_size, config.history_retention_seconds, config.timezone
        )  # fmt: skip
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
        raise ConfigurationError(f"pool_size must be an integer >= 1, got {pool_size!r}")
    retention = number(
        "history_retention_seconds", history_retention_seconds, allow_none=False, minimum=0, strict=False
    )
    if timezone is not None and not isinstance(timezone, (str, tzinfo)):
        raise ConfigurationError(f"timezone must be an IANA name, 'UTC' or a datetime.tzinfo; got {timezone!r}")
    if isinstance(timezone, str):
        from .cron import resolve_zone  # zoneinfo: loaded only for a scheduler that names a zone

        resolve_zone(timezone)  # raises ConfigurationError naming it
    return QuivConfig(pool_size, retention or 0.0, timezone)
