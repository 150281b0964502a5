"""What travels between a worker and the client: the job header, the records, plain payloads.

Pure data and pure functions (no Dask import), so the wire format is tested without a cluster.

A worker sends each executor's topic batches of `JobRecords`: a job id and that job's records in
the order the job produced them — `Started`, then any number of `Progress`, then `Ended`. On the
wire a record is a list whose first item is its tag (msgpack carries lists, not our classes);
`encode` and `decode` are the only places that know that layout.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..execution import HandlerSpec

__all__ = [
    "INLINE_LIMIT",
    "MAX_BATCH",
    "Ended",
    "JobHeader",
    "JobRecords",
    "Progress",
    "Record",
    "Started",
    "decode_batch",
    "encode_batch",
    "plain_payload",
    "restore",
    "restore_kwargs",
    "to_plain",
]

# Outcomes up to this size (pickled) ride in the `Ended` record; bigger ones are gathered.
# Bounded because the Dask scheduler keeps the last 1000 batches of every topic.
INLINE_LIMIT = 16 * 1024
MAX_BATCH = 1000  # records per batch at most (the same bound, in messages)


@dataclass(slots=True, frozen=True)
class JobHeader:
    """What the worker needs besides the handler and its arguments (small; pickled with the task)."""

    topic: str
    job_id: str
    event_name: str  # the job's `distributed.Event`, set to ask the worker to stop it
    spec: HandlerSpec
    report: bool  # does the task have a progress callback at all?
    flush_interval: float
    watch_delay: float
    watch_period: float


# ------------------------------------------------------------------------------------------ records


class Started(NamedTuple):
    """The job body is about to run on a worker."""


class Progress(NamedTuple):
    """One `_progress_hook(*args, **kwargs)` call, as plain data."""

    args: list[Any]
    kwargs: dict[str, Any]


class Ended(NamedTuple):
    """The job body returned; `outcome` is the pickled `Outcome`, or None when the client must gather it."""

    outcome: bytes | None


Record = Started | Progress | Ended


class JobRecords(NamedTuple):
    """One job's share of a batch."""

    job_id: str
    records: list[Record]


_STARTED, _PROGRESS, _ENDED = 0, 1, 2
_TAGS: dict[type, int] = {Started: _STARTED, Progress: _PROGRESS, Ended: _ENDED}


def encode_batch(batch: Iterable[JobRecords]) -> list[Any]:
    """A batch as msgpack-ready lists (on the worker's loop thread)."""
    tags = _TAGS
    return [[job_id, [[tags[type(r)], *r] for r in records]] for job_id, records in batch]


def decode_batch(raw: Any) -> list[JobRecords]:
    """The inverse of `encode_batch` (on the client's dispatch thread); raises `ValueError` on an unknown tag."""
    return [JobRecords(job_id, [_decode(r) for r in records]) for job_id, records in raw]


def _decode(raw: Any) -> Record:
    tag = raw[0]
    if tag == _PROGRESS:
        return Progress(raw[1], raw[2])
    if tag == _STARTED:
        return Started()
    if tag == _ENDED:
        return Ended(raw[1])
    raise ValueError(f"unknown quiv_nb record tag {tag!r}")


# ------------------------------------------------------------------------------------------ payloads

_PLAIN = (str, float, bool, type(None), bytes)
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what msgpack can carry


def to_plain(value: Any, where: str = "value") -> Any:
    """`value` as msgpack-safe plain data; raises `TypeError` naming `where` if it cannot be.

    Numbers of other libraries (numpy scalars, `Decimal`, `Fraction`) become `int`/`float` via
    `.item()` or the `numbers` ABCs, without importing those libraries; lists and tuples become
    lists, dicts need string keys. Anything else (a `datetime`, an array, an object) is refused
    rather than silently stringified, so the author sees the mistake at once.
    """
    t = type(value)
    if t in _PLAIN:
        return value
    if t is int:
        if _INT_MIN <= value <= _INT_MAX:
            return value
        raise TypeError(f"progress payload {where} = {_short_repr(value)}: integer too large to send from Dask")
    if isinstance(value, (list, tuple)):
        return [to_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return _plain_dict(value, where)
    if isinstance(value, str):  # a str subclass (an enum member, say): send the plain text
        return str.__str__(value)
    number = _plain_number(value, where)
    if number is not None:
        return number
    raise TypeError(
        f"progress payload {where} = {_short_repr(value)} has type {type(value).__qualname__}, which cannot be "
        "sent from a Dask worker; send numbers, strings, booleans, None, or lists/dicts of them"
    )


def _plain_dict(value: dict[Any, Any], where: str) -> dict[str, Any]:
    out = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise TypeError(f"progress payload {where} has a non-string key {k!r}; dict keys must be strings")
        out[str.__str__(k)] = to_plain(v, f"{where}[{k!r}]")
    return out


def _plain_number(value: Any, where: str) -> int | float | bool | None:
    """A foreign number (numpy scalar, `Decimal`, `Fraction`) as a plain one, or None if `value` is none."""
    if not (isinstance(value, numbers.Number) or (getattr(value, "shape", None) == () and hasattr(value, "item"))):
        return None
    item = getattr(value, "item", None)
    if callable(item):
        try:
            plain = item()
        except Exception:  # not numpy's item(): try the ABCs below
            plain = None
        if type(plain) in (int, float, bool):
            return to_plain(plain, where)
    if isinstance(value, numbers.Integral):
        return to_plain(int(value), where)
    if isinstance(value, numbers.Real) or not isinstance(value, numbers.Complex):  # Decimal is no Real
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    return None


def _short_repr(value: Any, limit: int = 60) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__qualname__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plain_payload(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Progress:
    """One hook call as a `Progress` record; the fast path is a kwargs-only payload of plain scalars."""
    plain_args = [to_plain(v, f"positional argument {i}") for i, v in enumerate(args)]
    for v in kwargs.values():
        if type(v) not in _PLAIN and type(v) is not int:
            return Progress(plain_args, {k: to_plain(v, f"key {k!r}") for k, v in kwargs.items()})
    return Progress(plain_args, kwargs)


def restore(value: Any) -> Any:
    """Undo the wire's sequence handling (msgpack hands lists back as tuples): nested sequences are lists."""
    t = type(value)
    if t is tuple or t is list:
        return [restore(v) for v in value]
    if t is dict:
        return {k: restore(v) for k, v in value.items()}
    return value


def restore_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` with `restore` applied to its values (the same dict when none needs it)."""
    for v in kwargs.values():
        if type(v) in (tuple, list, dict):
            return {k: restore(v) for k, v in kwargs.items()}
    return kwargs
