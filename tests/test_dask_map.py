"""`Quiv.map` on `DaskExecutor`: items go to the cluster in batches, with the same result, failures,
progress and cancel as on the thread pool; the map's own body stays in this process.

Uses `test_dask`'s module-scoped `LocalCluster(processes=False)` over TCP (every message serialized).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

from conftest import WAIT, Gate  # noqa: E402
from test_dask import assert_released, client, scheduler_state  # noqa: E402, F401  (the module's cluster and its checks)

from quiv_nb import JobStatus, Quiv  # noqa: E402
from quiv_nb.dask import DaskExecutor  # noqa: E402

pytestmark = [pytest.mark.dask, pytest.mark.timeout(90)]


# Items of the max_workers test: module level, so the in-process workers run this very module's
# state (cloudpickle ships importable functions by reference), a counter on the cluster's side.
_HELD = threading.Condition()
_RUNNING = {"now": 0, "peak": 0}
_RELEASE = threading.Event()


def _held_item(x: int) -> int:
    with _HELD:
        _RUNNING["now"] += 1
        _RUNNING["peak"] = max(_RUNNING["peak"], _RUNNING["now"])
        _HELD.notify_all()
    try:
        if not _RELEASE.wait(WAIT):
            raise TimeoutError("never released")
        return x
    finally:
        with _HELD:
            _RUNNING["now"] -= 1


@pytest.fixture
def quiv(client: Any) -> Iterator[Quiv]:  # noqa: F811
    q = Quiv(executor=DaskExecutor(client), pool_size=3)
    q.start()
    yield q
    q.shutdown(timeout=5)


def test_items_run_on_the_cluster_in_batches_and_come_back_in_order(quiv: Quiv, client: Any) -> None:  # noqa: F811
    def where(x: int) -> tuple[int, str]:
        return x * x, distributed.get_worker().get_current_task()

    payloads: list[dict[str, Any]] = []
    job = quiv.wait_for_job(quiv.map(where, range(40), progress_callback=lambda **p: payloads.append(p)), WAIT)
    assert job.status is JobStatus.COMPLETED
    assert [square for square, _ in job.result] == [x * x for x in range(40)]
    batches = {key for _, key in job.result}
    assert len(batches) == 10  # ceil(40 / (3 workers * 4)) = 4 items a batch, one Dask task each
    assert all(str(key).startswith("quiv-map_where-") for key in batches)
    assert payloads[-1] == {"step": 40, "total": 40, "failed": 0}
    assert [p["step"] for p in payloads] == sorted(p["step"] for p in payloads)
    assert_released(client)


def test_failed_items_keep_their_exceptions_and_the_first_traceback(quiv: Quiv) -> None:
    def parse(text: str) -> int:
        return int(text)

    job = quiv.wait_for_job(quiv.map(parse, ["1", "x", "3"] * 5), WAIT)
    assert job.status is JobStatus.FAILED
    assert job.error_message.startswith("5 of 15 items failed; the first, item 1: ValueError: invalid literal")
    assert job.result[0::3] == [1] * 5 and all(isinstance(r, ValueError) for r in job.result[1::3])
    assert job.traceback.startswith("item 1 of 15 failed") and "in parse" in job.traceback


def test_cancel_takes_queued_batches_back_and_stops_running_items(quiv: Quiv, client: Any) -> None:  # noqa: F811
    running = Gate()
    seen: list[Any] = []
    lock = threading.Lock()

    def wait(x: int, _stop_event: Any, _progress_hook: Any) -> str:
        _progress_hook(running=x)
        return "stopped" if _stop_event.wait(30) else "never stopped"

    def on_progress(**payload: Any) -> None:
        with lock:
            seen.append(payload)
        if "running" in payload:
            running.set()

    job_id = quiv.map(wait, range(60), max_workers=2, progress_callback=on_progress)
    running.wait()
    assert quiv.cancel_job(job_id)
    job = quiv.wait_for_job(job_id, timeout=WAIT)
    assert job.status is JobStatus.CANCELLED
    ran = [r for r in job.result if r is not None]
    assert ran and set(ran) == {"stopped"}
    assert len(ran) <= 2  # at most one item of each of the two running batches; queued ones never ran
    assert_released(client)


def test_fail_fast_sends_no_batch_after_the_first_failure(quiv: Quiv) -> None:
    def parse(text: str) -> int:
        return int(text)

    items = ["1", "x"] + ["2"] * 40  # one batch of 11 at a time (max_workers=1); the first fails at its 2nd item
    job = quiv.wait_for_job(quiv.map(parse, items, max_workers=1, fail_fast=True), WAIT)
    assert job.status is JobStatus.FAILED
    assert job.result[0] == 1 and isinstance(job.result[1], ValueError)
    assert job.result[2:] == [None] * 40  # the rest of its batch and every later batch never ran


def test_max_workers_caps_the_batches_in_flight_on_the_cluster(quiv: Quiv, client: Any) -> None:  # noqa: F811
    _RUNNING.update(now=0, peak=0)
    _RELEASE.clear()
    job_id = quiv.map(_held_item, range(40), max_workers=2)  # 8 batches of 5; the cluster has 4 threads
    try:
        with _HELD:
            assert _HELD.wait_for(lambda: _RUNNING["now"] >= 2, WAIT), "two batches never ran at once"
        # Both held: the map waits for one to end; the scheduler has been given those two and no more.
        batches = [key for key in scheduler_state(client)["tasks"] if "held_item" in key]
        assert len(batches) == 2, batches
    finally:
        _RELEASE.set()
    job = quiv.wait_for_job(job_id, WAIT)
    assert job.status is JobStatus.COMPLETED and job.result == list(range(40))
    assert _RUNNING["peak"] == 2  # items of one batch run one after another: at most two at once, throughout
    assert_released(client)
