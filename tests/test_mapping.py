"""`Quiv.map` and `add_task(map=True)`: order, several iterables, failures, fail-fast, cancel,
max_workers, progress, a map over an upstream result, bad input; and the pure rules of `mapping`.

Real threads and a real pool; every wait is on a job, an event or a gate with a timeout.
"""

from __future__ import annotations

import logging
import pickle
import sys
import threading
from typing import Any, Callable

import pytest
from conftest import WAIT, Gate, next_job

from quiv_nb import ConfigurationError, JobStatus, MapError, Quiv, QuivError
from quiv_nb.mapfanout import item_first
from quiv_nb.mapping import chunk_size, failure_message
from quiv_nb.output import install


def square(x: int) -> int:
    return x * x


# ---------------------------------------------------------------- results


def test_the_result_is_the_list_in_input_order_even_when_late_items_finish_first(quiv: Quiv) -> None:
    last_done = threading.Event()

    def item(i: int) -> int:
        if i == 0:  # the first item ends last: it waits for the last one
            assert last_done.wait(WAIT)
        if i == 9:
            last_done.set()
        return i * 10

    job = quiv.wait_for_job(quiv.map(item, range(10)), timeout=WAIT)
    assert job.status is JobStatus.COMPLETED
    assert job.result == [i * 10 for i in range(10)]
    assert job.task_name == "item"


def test_several_iterables_are_zipped_like_map_and_the_shortest_ends_it(quiv: Quiv) -> None:
    job = quiv.wait_for_job(quiv.map(pow, [2, 3, 4], [5, 2, 1, 9], name="powers"), timeout=WAIT)
    assert job.result == list(map(pow, [2, 3, 4], [5, 2, 1, 9])) == [32, 9, 4]
    assert job.task_name == "powers"


def test_ten_thousand_items_and_an_empty_map(quiv: Quiv) -> None:
    assert quiv.wait_for_job(quiv.map(square, range(10_000)), timeout=WAIT).result == [x * x for x in range(10_000)]
    empty = quiv.wait_for_job(quiv.map(square, []), timeout=WAIT)
    assert (empty.status, empty.result) == (JobStatus.COMPLETED, [])


def test_a_map_finishes_on_a_pool_of_one_whose_only_worker_it_holds(quiv_factory: Callable[..., Quiv]) -> None:
    q = quiv_factory(pool_size=1)
    job = q.wait_for_job(q.map(square, range(500), max_workers=8), timeout=WAIT)
    assert job.result == [x * x for x in range(500)]


# ---------------------------------------------------------------- failures


def test_failed_items_fail_the_job_and_keep_their_exceptions_in_place(quiv: Quiv) -> None:
    def parse(text: str) -> int:
        return int(text)

    job = quiv.wait_for_job(quiv.map(parse, ["1", "x", "3", "y", "5"]), timeout=WAIT)
    assert job.status is JobStatus.FAILED
    assert job.error_message == "2 of 5 items failed; the first, item 1: ValueError: invalid literal for int() " + (
        "with base 10: 'x'"
    )
    assert job.result[0::2] == [1, 3, 5]
    assert [type(job.result[i]) for i in (1, 3)] == [ValueError, ValueError]
    assert "'y'" in str(job.result[3])
    assert "in parse" in job.traceback and job.traceback.startswith("item 1 of 5 failed")


def test_fail_fast_stops_scheduling_items_at_the_first_failure(quiv: Quiv) -> None:
    called: list[int] = []

    def item(i: int) -> int:
        called.append(i)
        if i == 3:
            raise KeyError(i)
        return i

    job = quiv.wait_for_job(quiv.map(item, range(100), max_workers=1, fail_fast=True), timeout=WAIT)
    assert job.status is JobStatus.FAILED
    assert called == [0, 1, 2, 3]
    assert job.result[:3] == [0, 1, 2] and isinstance(job.result[3], KeyError)
    assert job.result[4:] == [None] * 96
    assert job.error_message.startswith("1 of 100 items failed; the first, item 3: KeyError")


def test_without_fail_fast_every_item_runs(quiv: Quiv) -> None:
    def item(i: int) -> int:
        if i % 2:
            raise RuntimeError("odd")
        return i

    job = quiv.wait_for_job(quiv.map(item, range(20), max_workers=1), timeout=WAIT)
    assert job.error_message.startswith("10 of 20 items failed; the first, item 1: RuntimeError: odd")
    assert job.result[0::2] == list(range(0, 20, 2))


# ---------------------------------------------------------------- cancel


def test_cancel_sets_the_stop_event_of_running_items_and_stops_scheduling(quiv: Quiv) -> None:
    started = threading.Semaphore(0)
    called: list[int] = []

    def item(i: int, _stop_event: threading.Event) -> str:
        called.append(i)
        started.release()
        return "stopped" if _stop_event.wait(WAIT) else "timed out"

    job_id = quiv.map(item, range(1000), max_workers=2)
    for _ in range(2):
        assert started.acquire(timeout=WAIT)
    assert quiv.cancel_job(job_id) is True
    job = quiv.wait_for_job(job_id, timeout=WAIT)
    assert job.status is JobStatus.CANCELLED
    assert len(called) == 2  # two runners, one item each (from their own chunks); nothing after the cancel
    assert sorted(r for r in job.result if r is not None) == ["stopped", "stopped"]


def test_cancel_stops_between_items_that_cannot_see_the_stop_event(quiv: Quiv) -> None:
    first, release = Gate(), Gate()
    called: list[int] = []

    def item(i: int) -> int:
        called.append(i)
        if i == 0:
            first.set()
            release.wait()
        return i

    job_id = quiv.map(item, range(100), max_workers=1)
    first.wait()
    assert quiv.cancel_job(job_id) is True
    release.set()
    job = quiv.wait_for_job(job_id, timeout=WAIT)
    assert job.status is JobStatus.CANCELLED
    assert called == [0]
    assert job.result == [0] + [None] * 99


def test_shutdown_stops_a_running_map_and_leaves_no_thread(quiv_factory: Callable[..., Quiv]) -> None:
    q = quiv_factory()
    started = Gate()

    def item(i: int, _stop_event: threading.Event) -> int:
        started.set()
        _stop_event.wait(WAIT)
        return i

    job_id = q.map(item, range(100), progress_callback=lambda **p: None)
    started.wait()
    q.shutdown(timeout=WAIT)
    job = q.get_job(job_id)
    assert job.status is JobStatus.CANCELLED and job.error_message == "cancelled: the scheduler shut down"


# ---------------------------------------------------------------- max_workers, progress, injection


def test_max_workers_caps_how_many_items_run_at_once(quiv_factory: Callable[..., Quiv]) -> None:
    q = quiv_factory(pool_size=6)
    cond = threading.Condition()
    active, peak = 0, 0

    def item(i: int) -> int:
        nonlocal active, peak
        with cond:
            active += 1
            peak = max(peak, active)
            cond.notify_all()
            cond.wait_for(lambda: peak >= 3, WAIT)  # hold until the cap is reached once
            active -= 1
        return i

    job = q.wait_for_job(q.map(item, range(30), max_workers=3), timeout=WAIT)
    assert job.status is JobStatus.COMPLETED
    assert peak == 3


def test_every_line_items_print_on_every_runner_thread_lands_whole_in_the_jobs_output(
    quiv_factory: Callable[..., Quiv],
) -> None:
    q = quiv_factory(pool_size=4)
    install()  # the stream proxies exist before the handler below takes sys.stderr
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    logger = logging.getLogger("quiv_nb.test.map_output")
    logger.addHandler(handler)
    logger.propagate = False
    runners: set[int] = set()
    lock = threading.Lock()
    all_runners = threading.Event()

    def item(i: int) -> None:
        with lock:
            runners.add(threading.get_ident())
            if len(runners) == 3:
                all_runners.set()
        assert all_runners.wait(WAIT)  # every runner thread holds a chunk before any prints
        print("item", i, "of", 2000, end="")  # several writes make one line
        print(" done")
        print(f"item {i} on stderr", file=sys.stderr)
        if i % 100 == 0:
            logger.warning("item %d", i)

    try:
        job = q.wait_for_job(q.map(item, range(2000), max_workers=3), timeout=WAIT * 3)
    finally:
        logger.removeHandler(handler)
    assert job.status is JobStatus.COMPLETED
    assert len(runners) == 3
    lines = job.output.splitlines()
    expected = [f"item {i} of 2000 done" for i in range(2000)] + [f"item {i} on stderr" for i in range(2000)]
    expected += [f"LOG item {i}" for i in range(0, 2000, 100)]
    assert sorted(lines) == sorted(expected)  # each line once, whole: none lost to the console


def test_progress_counts_items_and_failures_and_never_goes_backwards(quiv: Quiv) -> None:
    payloads: list[dict[str, Any]] = []
    lock = threading.Lock()

    def record(**payload: Any) -> None:  # no main loop: called on the worker
        with lock:
            payloads.append(payload)

    def item(i: int) -> int:
        if i % 100 == 0:
            raise ValueError(i)
        return i

    job = quiv.wait_for_job(quiv.map(item, range(2000), progress_callback=record), timeout=WAIT)
    assert job.status is JobStatus.FAILED
    steps = [p["step"] for p in payloads]
    assert steps == sorted(steps)
    assert payloads[0] == {"step": 0, "total": 2000, "failed": 0}
    assert payloads[-1] == {"step": 2000, "total": 2000, "failed": 20}
    assert all(p["total"] == 2000 for p in payloads)


def test_progress_is_reported_while_a_long_item_runs_inside_a_big_chunk(quiv: Quiv) -> None:
    reported_ten = threading.Event()

    def record(step: int, total: int, failed: int) -> None:
        if step >= 10:
            reported_ten.set()

    def item(i: int) -> int:
        if i == 10:  # in the runner's first chunk (50 items): the ten before it must show meanwhile
            assert reported_ten.wait(WAIT)
        return i

    job = quiv.wait_for_job(quiv.map(item, range(200), max_workers=1, progress_callback=record), timeout=WAIT)
    assert job.status is JobStatus.COMPLETED and reported_ten.is_set()


def test_items_get_the_injected_names_they_ask_for(quiv: Quiv) -> None:
    labels: list[dict[str, Any]] = []

    def item(x: int, _job_id: str, _progress_hook: Callable[..., None]) -> str:
        _progress_hook(stage=f"item {x}")
        return _job_id

    job_id = quiv.map(item, [1, 2], progress_callback=lambda **p: labels.append(p))
    job = quiv.wait_for_job(job_id, timeout=WAIT)
    assert job.result == [job_id, job_id]
    assert {p["stage"] for p in labels if "stage" in p} == {"item 1", "item 2"}


def test_async_item_functions_are_awaited(quiv: Quiv) -> None:
    async def item(x: int) -> int:
        return x + 1

    assert quiv.wait_for_job(quiv.map(item, range(5)), timeout=WAIT).result == [1, 2, 3, 4, 5]


def test_timeout_cancels_the_map(quiv: Quiv) -> None:
    def item(i: int, _stop_event: threading.Event) -> None:
        _stop_event.wait(WAIT)

    job = quiv.wait_for_job(quiv.map(item, range(4), timeout=0.2), timeout=WAIT)
    assert (job.status, job.error_message) == (JobStatus.CANCELLED, "timed out after 0.2s")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "kwargs", "says"),
    [
        ((42, [1]), {}, "func must be callable"),
        ((square, 5), {}, "iterable 1 must be iterable"),
        ((pow, [1], None), {}, "iterable 2 must be iterable"),
        ((square,), {}, "at least one iterable"),
        ((square, [1]), {"max_workers": 0}, "max_workers must be an integer >= 1"),
        ((square, [1]), {"fail_fast": "yes"}, "fail_fast must be True or False"),
        ((lambda: 0, [1]), {}, "cannot be called"),
        ((square, [1]), {"timeout": -1}, "timeout"),
    ],
)
def test_bad_input_is_a_configuration_error_at_the_call(quiv: Quiv, args: tuple, kwargs: dict, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        quiv.map(*args, **kwargs)
    assert quiv.get_all_tasks() == []


def test_map_before_start_is_queued_as_scheduled_and_runs_at_start(quiv_factory: Callable[..., Quiv]) -> None:
    q = quiv_factory(start=False)
    called: list[int] = []

    def item(x: int) -> int:
        called.append(x)
        return x * x

    job_id = q.map(item, [1, 2, 3], name="early")
    job = q.get_job(job_id)
    assert job.status is JobStatus.SCHEDULED and job.task_name == "early" and job.started_at is None
    assert called == []
    q.start()
    done = q.wait_for_job(job_id, WAIT)
    assert done.status is JobStatus.COMPLETED and done.result == [1, 4, 9]
    assert [j.job_id for j in q.get_all_jobs()] == [job_id]  # start() planned its task too: still one job


def test_a_map_cancelled_before_start_never_runs_and_one_left_at_shutdown_ends_cancelled(
    quiv_factory: Callable[..., Quiv],
) -> None:
    q = quiv_factory(start=False)
    called: list[int] = []
    cancelled = q.map(called.append, [1, 2])
    assert q.cancel_job(cancelled) is True
    q.start()
    assert q.wait_for_job(cancelled, WAIT).status is JobStatus.CANCELLED
    assert called == []
    idle = quiv_factory(start=False)
    left = idle.map(called.append, [3])
    idle.shutdown(timeout=WAIT)
    assert idle.get_job(left).status is JobStatus.CANCELLED and called == []
    with pytest.raises(QuivError, match="shut down"):
        idle.map(called.append, [4])


# ---------------------------------------------------------------- pipelines: map=True


def test_map_true_calls_the_handler_per_upstream_item_and_passes_the_list_on(quiv_factory: Callable[..., Quiv]) -> None:
    q = quiv_factory(start=False)
    q.add_task("urls", lambda: ["a", "bb", "ccc"], run_once=True)
    q.add_task("fetch", lambda url, times: url * times, after="urls", map=True, args=(2,))
    q.add_task("total", lambda _upstream: sum(map(len, _upstream["fetch"])), after="fetch")
    fetched, total = next_job(q, "fetch"), next_job(q, "total")
    q.start()
    assert fetched.result(WAIT).result == ["aa", "bbbb", "cccccc"]
    assert total.result(WAIT).result == 12


def test_map_true_with_a_failing_item_fails_the_task_and_skips_downstream(quiv_factory: Callable[..., Quiv]) -> None:
    q = quiv_factory(start=False)
    q.add_task("nums", lambda: [1, 0, 2], run_once=True)
    q.add_task("invert", lambda x: 1 / x, after="nums", map=True)
    q.add_task("after", lambda _upstream: None, after="invert")
    inverted, skipped = next_job(q, "invert"), next_job(q, "after")
    q.start()
    job = inverted.result(WAIT)
    assert job.status is JobStatus.FAILED
    assert job.error_message.startswith("1 of 3 items failed; the first, item 1: ZeroDivisionError")
    assert job.result[0] == 1.0 and isinstance(job.result[1], ZeroDivisionError)
    assert skipped.result(WAIT).status is JobStatus.SKIPPED


def test_map_true_over_a_result_that_is_not_iterable_fails_the_job(quiv_factory: Callable[..., Quiv]) -> None:
    q = quiv_factory(start=False)
    q.add_task("one", lambda: 7, run_once=True)
    q.add_task("each", lambda x: x, after="one", map=True)
    each = next_job(q, "each")
    q.start()
    job = each.result(WAIT)
    assert job.status is JobStatus.FAILED and "upstream result must be iterable" in job.error_message


def test_map_true_run_now_says_there_is_no_upstream_result_and_what_to_run(quiv: Quiv) -> None:
    quiv.add_task("urls", lambda: ["a"], interval=60, delay=60)
    task_id = quiv.add_task("fetch", lambda url: url, after="urls", map=True)
    job = quiv.wait_for_job(quiv.run_task_immediately(task_id), WAIT)
    assert job.status is JobStatus.FAILED
    assert job.error_message == (
        "QuivError: task 'fetch' maps over its upstream's result; run-now has no upstream result "
        "— run the upstream task instead"
    )


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({}, "exactly one upstream"),
        ({"after": ["a", "b"]}, "exactly one upstream"),
        ({"after": "a", "map": "yes"}, "map must be True or False"),
        ({"after": "a", "args": (1, 2)}, "cannot be called"),
    ],
)
def test_map_true_needs_one_upstream_and_a_handler_that_takes_an_item(quiv: Quiv, kwargs: dict, says: str) -> None:
    quiv.add_task("a", lambda: [1], interval=60)
    quiv.add_task("b", lambda: [2], interval=60)
    kwargs = {"map": True, **kwargs}
    with pytest.raises(ConfigurationError, match=says):
        quiv.add_task("m", lambda x: x, **kwargs)


def test_item_first_puts_the_item_before_the_given_arguments_and_keeps_injection(quiv: Quiv) -> None:
    def scaled(x: int, factor: int, *, offset: int = 0, _job_id: str = "") -> tuple[int, bool]:
        return x * factor + offset, bool(_job_id)

    async def added(x: int, y: int) -> int:
        return x + y

    job_id = quiv.map(item_first(scaled, (10,), {"offset": 1}), [1, 2])
    assert quiv.wait_for_job(job_id, WAIT).result == [(11, True), (21, True)]
    assert quiv.wait_for_job(quiv.map(item_first(added, (5,), {}), [1, 2]), WAIT).result == [6, 7]
    assert pickle.loads(pickle.dumps(item_first(pow, (2,), {})))(3) == 9  # crosses to Dask workers
    assert item_first(square, (), {}) is square
    with pytest.raises(
        ConfigurationError,
        match=r"scaled\(x: .*cannot take an item followed by args=\(1, 2\): each item is its first argument",
    ):
        item_first(scaled, (1, 2), {})


# ---------------------------------------------------------------- the pure rules


def test_chunks_shrink_as_the_queue_empties_and_never_reach_zero() -> None:
    assert chunk_size(10_000, 4) == 625
    assert chunk_size(100, 4) == 6
    assert chunk_size(3, 4) == 1
    assert chunk_size(1, 1) == 1


def test_the_failure_message_counts_and_shows_the_first() -> None:
    assert failure_message(1, 1, 0, KeyError("k")) == "1 of 1 item failed; the first, item 0: KeyError: 'k'"
    assert failure_message(2, 9, 4, RuntimeError()) == "2 of 9 items failed; the first, item 4: RuntimeError"


def test_map_error_carries_the_list() -> None:
    err = MapError("1 of 2 items failed", [1, ValueError()], "tb")
    assert err.results[0] == 1 and err.traceback == "tb" and str(err) == "1 of 2 items failed"
