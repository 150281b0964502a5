"""quiv_nb.render.pump: coalescing, pacing, the shared message budget, round-robin, final draws.

Most tests use a private `RenderPump` so they neither disturb nor depend on the process-wide one;
its thread is a daemon named "quiv_nb-render" like the real pump's.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from quiv_nb.render.pump import BURST, RATE, RenderPump, get_pump

WAIT = 10.0


@pytest.fixture(autouse=True)
def no_thread_survives() -> Iterator[None]:
    """No thread but the process-wide pump's may outlive a test."""
    before = set(threading.enumerate())
    yield
    allowed = get_pump()._thread
    deadline = time.monotonic() + 2.0
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t is not allowed and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not extra, f"threads left behind: {[t.name for t in extra]}"


@pytest.fixture
def make_pump() -> Iterator[Callable[..., RenderPump]]:
    """Private pumps, shut down after the test."""
    made: list[RenderPump] = []

    def make(**kwargs: float) -> RenderPump:
        made.append(RenderPump(**kwargs))
        return made[-1]

    yield make
    for pump in made:
        assert pump.shutdown(WAIT)


class Counter:
    """A drawable that counts its draws; `messages` per draw, optional callback on each draw."""

    def __init__(self, name: str = "", messages: int = 1, min_interval: float = 0.1, on_draw=None) -> None:
        self.name, self.messages, self.min_interval, self.on_draw = name, messages, min_interval, on_draw
        self.draws: list[float] = []
        self.drawn = threading.Event()

    def pump_draw(self) -> int:
        self.draws.append(time.monotonic())
        if self.on_draw is not None:
            self.on_draw(self)
        self.drawn.set()
        return self.messages

    def __repr__(self) -> str:
        return f"Counter({self.name})"


def test_requests_coalesce_into_one_draw(make_pump):
    pump = make_pump()
    held, release = threading.Event(), threading.Event()

    def hold(_: Counter) -> None:
        held.set()
        release.wait(WAIT)

    blocker = Counter("blocker", on_draw=hold)
    pump.request(blocker)
    assert held.wait(WAIT)  # the pump thread is inside another draw: it cannot draw `d` before all requests are in
    d = Counter()
    for _ in range(10_000):
        pump.request(d)
    release.set()
    assert pump.flush(WAIT)
    assert len(d.draws) == 1
    assert pump.messages_sent == 2  # the blocker's and `d`'s


def test_a_busy_drawable_is_drawn_at_most_once_per_min_interval(make_pump):
    pump = make_pump()
    d = Counter(min_interval=0.05)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.3:
        pump.request(d)
    duration = time.monotonic() - t0
    assert pump.flush(WAIT)
    assert 3 <= len(d.draws) <= duration / 0.05 + 3
    gaps = [b - a for a, b in zip(d.draws, d.draws[1:], strict=False)]
    assert min(gaps) >= 0.05 * 0.9


def test_a_final_request_skips_the_min_interval(make_pump):
    pump = make_pump()
    d = Counter(min_interval=30.0)
    pump.request(d)
    assert d.drawn.wait(WAIT)
    d.drawn.clear()
    pump.request(d)  # not due for 30 s ...
    pump.request(d, final=True)  # ... but a final state is drawn now
    assert d.drawn.wait(WAIT)
    assert len(d.draws) == 2


def test_the_budget_caps_messages_per_second_across_many_drawables(make_pump):
    pump = make_pump()
    stop = threading.Event()

    def again(d: Counter) -> None:
        if not stop.is_set():
            pump.request(d)  # always dirty: the budget is the only brake

    bars = [Counter(str(i), messages=3, min_interval=0.0, on_draw=again) for i in range(60)]
    t0 = time.monotonic()
    for d in bars:
        pump.request(d)
    time.sleep(0.6)  # the measurement window, not synchronisation
    stop.set()
    elapsed = time.monotonic() - t0
    sent = pump.messages_sent
    assert pump.flush(WAIT)
    assert sent <= RATE * elapsed + BURST + 3
    assert sent >= RATE * 0.5  # and it is not starved either
    counts = [len(d.draws) for d in bars]
    assert max(counts) - min(counts) <= 2, counts  # round-robin: nobody is starved


def test_round_robin_order(make_pump):
    pump = make_pump(rate=1000.0, burst=1.0)  # one draw per refill: the order is observable
    order: list[str] = []
    rounds = 3
    stop = threading.Event()

    def again(d: Counter) -> None:
        order.append(d.name)
        if len(order) >= rounds * 4:
            stop.set()
        else:
            pump.request(d)

    bars = [Counter(name, min_interval=0.0, on_draw=again) for name in "abcd"]
    for d in bars:
        pump.request(d)
    assert stop.wait(WAIT)
    assert pump.flush(WAIT)
    assert order[: rounds * 4] == list("abcd") * rounds


def test_flush_waits_for_a_draw_in_progress(make_pump):
    pump = make_pump()
    release = threading.Event()
    started = threading.Event()

    def block(d: Counter) -> None:
        started.set()
        release.wait(WAIT)

    d = Counter(on_draw=block)
    pump.request(d)
    assert started.wait(WAIT)
    assert not pump.flush(0.05)  # the queue is empty, but the draw has not finished
    release.set()
    assert pump.flush(WAIT)


def test_flush_does_not_wait_for_requests_made_after_it(make_pump):
    pump = make_pump()
    stop = threading.Event()

    def again(d: Counter) -> None:  # like a live dashboard: always queued again
        if not stop.is_set():
            pump.request(d)

    d = Counter(min_interval=0.02, on_draw=again)
    pump.request(d)
    assert d.drawn.wait(WAIT)
    assert pump.pending == 1
    draws = len(d.draws)
    assert pump.flush(WAIT)
    assert len(d.draws) > draws  # it waited for the queued redraw, and no longer
    stop.set()


def test_flush_of_finals_only_waits_for_final_states_not_for_running_redraws(make_pump):
    """What a notebook cell's end waits for (`kernel.cellend`): bars whose jobs ended, not live ones."""
    pump = make_pump(rate=1.0, burst=1.0)  # one message a second: a final state waits for the budget
    live, ended = Counter("live", min_interval=30.0), Counter("ended")
    pump.request(live)
    assert live.drawn.wait(WAIT)  # its next redraw is due in 30 s
    pump.request(live)
    pump.request(ended, final=True)
    assert pump.flush(WAIT, finals_only=True)
    assert len(ended.draws) == 1 and len(live.draws) == 1 and pump.pending == 1
    assert not pump.flush(0.05)  # a full flush would wait for the live one too
    pump.forget(live)


def test_flush_stops_waiting_for_a_forgotten_drawable(make_pump):
    pump = make_pump()
    d = Counter(min_interval=30.0)
    pump.request(d)
    assert d.drawn.wait(WAIT)
    pump.request(d)  # not due for 30 s
    done = []
    waiter = threading.Thread(target=lambda: done.append(pump.flush(WAIT)))
    waiter.start()
    pump.forget(d)
    waiter.join(WAIT)
    assert done == [True]


def test_a_drawable_without_min_interval_or_a_count(make_pump):
    pump = make_pump()

    class Bare:
        def __init__(self) -> None:
            self.drawn = threading.Event()

        def pump_draw(self):  # returns None: counted as no message
            self.drawn.set()

    d = Bare()
    pump.request(d)
    assert d.drawn.wait(WAIT)
    assert pump.flush(WAIT)
    assert pump.messages_sent == 0


def test_forget_drops_a_queued_redraw(make_pump):
    pump = make_pump()
    d = Counter(min_interval=30.0)
    pump.request(d)
    assert d.drawn.wait(WAIT)
    pump.request(d)  # queued, not due for 30 s
    assert pump.pending == 1
    pump.forget(d)
    assert pump.pending == 0
    assert pump.flush(WAIT)
    assert len(d.draws) == 1


def test_a_failing_draw_is_logged_and_the_pump_goes_on(caplog, make_pump):
    pump = make_pump()

    def boom(d: Counter) -> None:
        raise RuntimeError("draw failed")

    bad, good = Counter("bad", on_draw=boom), Counter("good")
    with caplog.at_level(logging.ERROR, logger="quiv_nb"):
        pump.request(bad)
        pump.request(good)
        assert good.drawn.wait(WAIT)
        assert pump.flush(WAIT)
    assert "redrawing Counter(bad) failed" in caplog.text
    assert "RuntimeError: draw failed" in caplog.text


def test_a_drawable_that_dies_on_the_pump_thread_does_not_deadlock(make_pump):
    # Regression: the slot finalizer ran on the pump thread while it held its lock.
    pump = make_pump()
    for _ in range(50):
        d = Counter()
        pump.request(d)
        del d
    assert pump.flush(WAIT)
    gc.collect()
    survivor = Counter()
    pump.request(survivor)
    assert survivor.drawn.wait(WAIT)
    pump.forget(survivor)  # takes the lock: would hang if the pump were stuck
    assert pump.flush(WAIT)
    assert len(pump._slots) == 0  # dead drawables' slots were dropped


def test_unhashable_and_slotted_drawables(make_pump):
    pump = make_pump()

    class Slotted:
        __slots__ = ("drawn", "min_interval")

        def __init__(self) -> None:
            self.min_interval = 0.1
            self.drawn = threading.Event()

        def pump_draw(self) -> int:
            self.drawn.set()
            return 1

        __hash__ = None  # type: ignore[assignment]

    d = Slotted()
    pump.request(d)
    assert d.drawn.wait(WAIT)
    assert pump.flush(WAIT)


def test_an_idle_pump_sleeps(make_pump):
    pump = make_pump()
    d = Counter()
    pump.request(d)
    assert pump.flush(WAIT)
    thread = pump._thread
    assert thread is not None and thread.daemon and thread.name == "quiv_nb-render"
    assert pump._next_wait() is None  # nothing queued: the thread waits without a timeout


def test_shutdown_stops_the_thread_and_a_request_restarts_it(make_pump):
    pump = make_pump()
    first = Counter()
    pump.request(first)
    assert first.drawn.wait(WAIT)
    thread = pump._thread
    assert pump.shutdown(WAIT)
    assert thread is not None and not thread.is_alive()
    second = Counter()
    pump.request(second)
    assert second.drawn.wait(WAIT)


def test_get_pump_is_one_per_process():
    assert get_pump() is get_pump()


def test_close_draws_what_is_queued_then_stops_for_good(make_pump):
    """What kernel.py runs at kernel exit: final states drawn, the thread joined, later requests dropped."""
    pump = make_pump()
    busy = Counter("busy", min_interval=60.0)  # drawn once, then not due again for a minute
    pump.request(busy)
    assert busy.drawn.wait(WAIT)
    final, late = Counter("final"), Counter("late")
    pump.request(busy, final=True)  # a final state skips the interval: close must still draw it
    pump.request(final, final=True)
    thread = pump._thread
    assert pump.close(WAIT)
    assert pump.closed
    assert thread is not None and not thread.is_alive()
    assert (len(busy.draws), len(final.draws)) == (2, 1)
    pump.request(late, final=True)
    assert pump._thread is None and pump.pending == 0  # no thread restarted, nothing queued
    assert pump.flush(WAIT)  # nothing to wait for
    assert late.draws == []
    assert pump.close(WAIT)  # idempotent


def test_close_waits_for_a_send_now_in_progress_and_refuses_later_ones(make_pump):
    """A job's end-of-job lines are sent on its own thread through `send_now`; once `close` returned
    (kernel exit), no such send is running or can start (a late one raced ipykernel's socket close)."""
    pump = make_pump()
    entered, release, closed = threading.Event(), threading.Event(), threading.Event()
    results: list[int | None] = []

    def slow_send() -> int:
        entered.set()
        assert release.wait(WAIT)
        return 1

    sender = threading.Thread(target=lambda: results.append(pump.send_now(slow_send)), name="test-job-thread")
    sender.start()
    assert entered.wait(WAIT)
    closer = threading.Thread(target=lambda: pump.close(WAIT) and closed.set(), name="test-closer")
    closer.start()
    assert not closed.wait(0.2)  # close is held by the send in progress (the event proves the order)
    release.set()
    assert closed.wait(WAIT)
    sender.join(WAIT)
    closer.join(WAIT)
    assert results == [1]
    late = []
    assert pump.send_now(lambda: late.append(1) or 1) is None
    assert late == []


def test_the_process_pump_is_registered_for_kernel_exit():
    from quiv_nb import hooks, kernel
    from quiv_nb.render.pump import close_pump

    kernel.install()  # what get_scheduler(), %load_ext and a Quiv()/bar() in a kernel process do
    assert close_pump in hooks.before_exit_steps()
