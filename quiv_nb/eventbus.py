"""The event bus: lifecycle listeners, and the side effects that deliver events to them.

State changes happen under the scheduler lock but user code never runs there: a change returns
`Effect`s (zero-argument callables) that the facade runs once the lock is released, so a listener
may call back into the scheduler from any thread without deadlocking it.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable

from .dispatch import Dispatcher, is_async_callable
from .errors import ConfigurationError
from .models import Event
from .seams import Effect

__all__ = ["Effect", "EventBus", "InOrder", "noop_effect", "run_effects"]


def noop_effect() -> None:
    return None


def run_effects(effects: list[Effect]) -> None:
    """Run side effects in order (calling thread, lock released)."""
    for effect in effects:
        effect()


class InOrder:
    """Effects that run in the order they were planned, whichever thread runs them.

    A job's renderer must record its end before the next job of the same task starts on it. Both
    are planned under the scheduler lock, so in lock order, but run after it on two worker threads,
    and the first can be descheduled between releasing the lock and running its effect: the bar
    then saw the next job start first and dropped the late end as stale. `plan` (lock held) queues
    an effect and returns the effect that runs the queue; that one (lock released) runs everything
    queued so far, in order, under a lock of its own, so when it returns the caller's effect has run.
    Only for effects that are quick and never raise (a renderer's O(1) bookkeeping).
    """

    __slots__ = ("_queue", "_running")

    def __init__(self) -> None:
        self._queue: collections.deque[Effect] = collections.deque()
        self._running = threading.RLock()  # re-entrant: an effect may end another job on this thread

    def plan(self, effect: Effect) -> Effect:
        """Queue `effect` (scheduler lock held); return the effect to run once the lock is released."""
        self._queue.append(effect)
        return self.run

    def run(self) -> None:
        """Run every queued effect in order (any thread, scheduler lock released)."""
        with self._running:
            queue = self._queue
            while queue:
                queue.popleft()()


def as_event(event: Any) -> Event:
    """`event` as an `Event`; `ConfigurationError` naming the allowed ones otherwise."""
    if isinstance(event, Event):
        return event
    try:
        return Event(event)
    except ValueError:
        allowed = ", ".join(e.name for e in Event)
        raise ConfigurationError(f"event must be a quiv_nb.Event ({allowed}), got {event!r}") from None


class EventBus:
    """Listeners per event (add/remove/emitter are called with the scheduler lock held)."""

    __slots__ = ("_dispatch", "_entries", "_listeners", "listened")

    def __init__(self, dispatch: Dispatcher) -> None:
        self._dispatch = dispatch
        self._listeners: dict[Event, list[Callable[..., Any]]] = {}
        # (listener, is_async) per event, rebuilt after add/remove: `is_async_callable` costs more
        # than the rest of an event's delivery, so it is not asked again for every event.
        self._entries: dict[Event, tuple[tuple[Callable[..., Any], bool], ...]] = {}
        # `listened(event)`: truthy if anyone listens to `event`, so callers build no snapshot nobody
        # would see. The dict's own `get` (it returns the listener list or None): asked up to three
        # times per job, a C call instead of a Python frame.
        self.listened: Callable[[Event], Any] = self._listeners.get

    def add(self, event: Event, callback: Callable[..., Any]) -> None:
        self._listeners.setdefault(event, []).append(callback)
        self._entries.pop(event, None)

    def remove(self, event: Event, callback: Callable[..., Any]) -> None:
        try:
            self._listeners.get(event, []).remove(callback)
        except ValueError:
            pass
        self._entries.pop(event, None)

    def emitter(self, event: Event, *payload: Any) -> Effect:
        """The effect that delivers `event` with `payload` to its current listeners."""
        entries = self._entries.get(event)
        if entries is None:
            entries = tuple((cb, is_async_callable(cb)) for cb in self._listeners.get(event, ()))
            self._entries[event] = entries
        if not entries:
            return noop_effect
        deliver = self._dispatch.deliver
        label = f"listener for {event.value}"

        def emit() -> None:
            for listener, is_async in entries:
                deliver(listener, is_async, (event, *payload), {}, label)

        return emit
