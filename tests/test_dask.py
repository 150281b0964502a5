"""`quiv_nb.dask.DaskExecutor`: jobs on a real Dask cluster, progress, cancel, outcomes, cleanup.

Most tests share one module-scoped `LocalCluster(processes=False)` talking TCP on 127.0.0.1 (so every
message is really serialized); one test starts worker processes. Handlers are defined inside the
tests so cloudpickle ships them by value, as it does for functions defined in a notebook.
"""

from __future__ import annotations

import asyncio
import decimal
import enum
import fractions
import numbers
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

from conftest import WAIT, Gate, next_job, wait_until  # noqa: E402

from quiv_nb import Event, Quiv  # noqa: E402
from quiv_nb.dask import DaskExecutor, connect, replay, start_local_cluster, wire, worker  # noqa: E402
from quiv_nb.dask.wire import to_plain as _to_plain  # noqa: E402
from quiv_nb.errors import ConfigurationError  # noqa: E402

pytestmark = [pytest.mark.dask, pytest.mark.timeout(90)]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=2,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # its HTTP server: any free port, not 8787
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture
def quiv(client: Any) -> Iterator[Quiv]:
    q = Quiv(executor=DaskExecutor(client))
    q.start()
    yield q
    q.shutdown(timeout=5)


def run(q: Quiv, func: Any, **kwargs: Any) -> Any:
    """Add a run-once task and wait for its job."""
    task_id = q.add_task(kwargs.pop("name", func.__name__), func, run_once=True, **kwargs)
    return q.wait_for_task(task_id, timeout=WAIT)


def started_job(q: Quiv, task_id: str, gate: Gate) -> str:
    gate.wait()
    return q.get_task(task_id).last_job_id


def scheduler_state(client: Any) -> dict[str, list[str]]:
    """Keys and events of ours the Dask scheduler still holds."""

    def probe(dask_scheduler: Any = None) -> dict[str, list[str]]:
        events = dask_scheduler.extensions["events"]._events
        return {
            "tasks": [str(k) for k in dask_scheduler.tasks if str(k).startswith("quiv-")],
            "events": [str(k) for k in events if str(k).startswith("quiv_nb-stop-")],
        }

    return client.run_on_scheduler(probe)


def stored_topics(client: Any) -> dict[str, int]:
    """Our progress topics on the scheduler and how many messages each still stores."""

    def probe(dask_scheduler: Any = None) -> dict[str, int]:
        topics = dask_scheduler._broker._topics
        return {name: len(t.events) for name, t in topics.items() if name.startswith("quiv_nb-progress-")}

    return client.run_on_scheduler(probe)


def assert_released(client: Any) -> None:
    """No future of ours on the client, no task or stop event of ours on the scheduler."""
    deadline = time.monotonic() + WAIT
    while True:
        futures = [k for k in client.futures if str(k).startswith("quiv-")]
        state = scheduler_state(client)
        if not futures and state == {"tasks": [], "events": []}:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"not released: client futures {futures}, scheduler {state}")
        time.sleep(0.02)


# ------------------------------------------------------------------------------------------ progress


def test_progress_arrives_complete_and_in_order(quiv: Quiv, client: Any) -> None:
    seen: list[int] = []

    def count(n: int, _progress_hook: Any) -> str:
        for i in range(n):
            _progress_hook(step=i + 1, total=n)
        return "done"

    job = run(quiv, count, args=(1000,), progress_callback=lambda step, total: seen.append(step))
    assert job.status == "completed" and job.result == "done"
    assert seen == list(range(1, 1001))  # every payload, in order, before the job counts as finished
    assert_released(client)


def test_a_flood_of_payloads_arrives_in_order_and_is_not_hoarded(quiv: Quiv, client: Any) -> None:
    seen: list[int] = []

    def flood(n: int, _progress_hook: Any) -> None:
        for i in range(n):
            _progress_hook(i)

    t0 = time.monotonic()
    job = run(quiv, flood, args=(50_000,), progress_callback=seen.append)
    took = time.monotonic() - t0
    print(f"\n50,000 payloads worker -> callback in {took:.2f}s")
    assert job.status == "completed"
    assert seen == list(range(50_000))
    # Batches are capped and the scheduler's copy of the topic is trimmed once the job ended, so it
    # holds little. The trim is a message to the Dask scheduler sent after the job's end is
    # delivered: wait for it (with a timeout) rather than read the topic before it arrived.
    wait_until(lambda: all(n <= 100 for n in stored_topics(client).values()))
    wait_until(lambda: not worker.active_outboxes())  # the worker side forgets an idle executor


def test_payloads_become_plain_values(quiv: Quiv) -> None:
    got: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    class Color(str, enum.Enum):
        RED = "red"

    class Float64(float):  # like numpy.float64: a float subclass with .item()
        def item(self) -> float:
            return float(self)

    class Int64:  # like numpy.int64: a registered Integral with .item(), not an int
        shape = ()

        def item(self) -> int:
            return 7

    numbers.Integral.register(Int64)

    class Bool:  # like numpy.bool_: not a Number, but a 0-d scalar with .item()
        shape = ()

        def item(self) -> bool:
            return True

    def send(_progress_hook: Any) -> None:
        _progress_hook(
            3,
            stage=Color.RED,
            pct=Float64(12.5),
            n=Int64(),
            ok=Bool(),
            frac=fractions.Fraction(1, 4),
            dec=decimal.Decimal("2.5"),
            nested={"a": (1, 2), "b": [{"c": None}]},
        )

    job = run(quiv, send, progress_callback=lambda *a, **kw: got.append((a, kw)))
    assert job.status == "completed", job.error_message
    ((args, kwargs),) = got
    assert args == (3,)
    assert kwargs == {
        "stage": "red",
        "pct": 12.5,
        "n": 7,
        "ok": True,
        "frac": 0.25,
        "dec": 2.5,
        "nested": {"a": [1, 2], "b": [{"c": None}]},
    }
    assert type(kwargs["stage"]) is str and type(kwargs["pct"]) is float and type(kwargs["n"]) is int


def test_non_convertible_payload_fails_the_job_with_a_clear_message(quiv: Quiv) -> None:
    def send(_progress_hook: Any) -> None:
        _progress_hook(step=1, when=datetime(2026, 1, 1))

    job = run(quiv, send, progress_callback=lambda **kw: None)
    assert job.status == "failed"
    assert job.error_message.startswith("TypeError: progress payload key 'when'")
    assert "datetime" in job.error_message


def test_to_plain_names_the_bad_value() -> None:
    assert _to_plain([1, (2.5, "x")], "key 'v'") == [1, [2.5, "x"]]
    with pytest.raises(TypeError, match=r"key 'v'\[1\]\['t'\] = .*has type object"):
        _to_plain([1, {"t": object()}], "key 'v'")
    with pytest.raises(TypeError, match="non-string key 1"):
        _to_plain({1: 2}, "key 'v'")
    with pytest.raises(TypeError, match="has type complex"):
        _to_plain(1j, "key 'v'")
    with pytest.raises(TypeError, match="too large"):
        _to_plain(2**70, "key 'v'")


def test_progress_callbacks_run_on_the_main_loop(client: Any, app: Any) -> None:
    threads: list[str] = []
    q = Quiv(main_loop=app.loop, executor=DaskExecutor(client))
    q.start()
    try:

        def send(_progress_hook: Any) -> None:
            _progress_hook(step=1)

        job = run(q, send, progress_callback=lambda **kw: threads.append(threading.current_thread().name))
        assert job.status == "completed"
        wait_until(lambda: threads)
        assert threads == [app.thread.name]
    finally:
        q.shutdown(timeout=5)


# ------------------------------------------------------------------------------------------ outcomes


def test_result_key_and_failure_traceback(quiv: Quiv, client: Any) -> None:
    def whoami(_job_id: str) -> tuple[str, str]:
        return _job_id, distributed.get_worker().get_current_task()

    job = run(quiv, whoami, name="who am i")
    assert job.status == "completed"
    job_id, key = job.result
    assert job_id == job.job_id
    assert key == f"quiv-who_am_i-{job.job_id}"  # named after the task (sanitised); a unique key per job

    def explode_on_the_worker() -> None:
        raise ValueError("boom")

    def handler() -> None:
        explode_on_the_worker()

    job = run(quiv, handler)
    assert job.status == "failed"
    assert job.error_message == "ValueError: boom"
    # Formatted on the worker. Functions shipped by value (test- or notebook-local) show as
    # "<dynamic-code>" there, with names and line numbers but no source lines.
    assert "in explode_on_the_worker" in job.traceback and "in handler" in job.traceback
    assert_released(client)


def test_big_and_unpicklable_results(quiv: Quiv, client: Any) -> None:
    def big() -> bytes:
        return b"x" * 200_000  # too big for the end record: gathered

    job = run(quiv, big)
    assert job.status == "completed" and job.result == b"x" * 200_000

    def unpicklable() -> Any:
        return threading.Lock()

    job = run(quiv, unpicklable)
    assert job.status == "failed"
    assert "could not fetch the job's result" in job.error_message
    assert_released(client)


def test_a_lost_end_record_falls_back_to_gathering(
    quiv: Quiv, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_put = worker.Outbox.put

    def put(self: Any, channel: Any, record: Any, *, urgent: bool, last: bool = False) -> None:
        if isinstance(record, wire.Ended):  # lose it (workers are threads of this process here)
            with self._lock:
                channel.closed = True
                self._open -= 1
            return
        real_put(self, channel, record, urgent=urgent, last=last)

    monkeypatch.setattr(worker.Outbox, "put", put)
    monkeypatch.setattr(replay, "END_GRACE", 0.2)
    job = run(quiv, pow, args=(2, 5))
    assert job.status == "completed" and job.result == 32
    assert "ended without its last updates" in caplog.text


def test_retries_rerun_failed_jobs(quiv: Quiv, tmp_path: Any) -> None:
    marks = tmp_path / "attempts"

    def flaky(path: str) -> int:
        with open(path, "a") as f:
            f.write("x")
        with open(path) as f:
            attempts = len(f.read())
        if attempts < 3:
            raise RuntimeError(f"attempt {attempts} fails")
        return attempts

    retrying: list[str] = []
    quiv.add_listener(Event.JOB_RETRYING, lambda event, task, job: retrying.append(job.job_id))
    task_id = quiv.add_task("flaky", flaky, run_once=True, args=(str(marks),), max_retries=2, retry_backoff=0.01)
    wait_until(lambda: any(j.status == "completed" for j in quiv.get_all_jobs(task_id=task_id)))
    jobs = quiv.get_all_jobs(task_id=task_id)
    assert [j.status for j in jobs] == ["failed", "failed", "completed"]
    assert jobs[-1].result == 3 and len(retrying) == 2
    assert "attempt 1 fails" in jobs[0].error_message


def test_async_handler_runs_on_the_worker(quiv: Quiv) -> None:
    seen: list[int] = []

    async def fetch(n: int, _progress_hook: Any) -> str:
        for i in range(n):
            await asyncio.sleep(0.001)
            _progress_hook(step=i + 1)
        return f"{asyncio.get_running_loop().__class__.__name__} on {threading.current_thread().name}"

    job = run(quiv, fetch, args=(5,), progress_callback=lambda step: seen.append(step))
    assert job.status == "completed", job.error_message
    assert seen == [1, 2, 3, 4, 5]
    assert "Dask" in job.result  # ran in a fresh loop on a Dask worker thread


# ------------------------------------------------------------------------------------------ cancel


def test_cancel_running_job_reaches_the_handler_quickly(quiv: Quiv, client: Any) -> None:
    running, seen_at = Gate(), []

    def wait_for_stop(_stop_event: threading.Event, _progress_hook: Any) -> str:
        _progress_hook(running=True)
        if not _stop_event.wait(30):
            return "never stopped"
        _progress_hook(seen=time.time())
        return "stopped"

    def on_progress(**kw: Any) -> None:
        if "seen" in kw:
            seen_at.append(kw["seen"])
        else:
            running.set()

    task_id = quiv.add_task("waiter", wait_for_stop, run_once=True, progress_callback=on_progress)
    job_id = started_job(quiv, task_id, running)
    time.sleep(0.3)  # a job well into its run: its watcher is waiting on the scheduler
    t0 = time.time()
    assert quiv.cancel_job(job_id)
    job = quiv.wait_for_job(job_id, timeout=WAIT)
    latency = seen_at[0] - t0
    print(f"\ncancel_job -> handler saw _stop_event: {latency * 1e3:.1f} ms (target < 100 ms)")
    assert job.status == "cancelled" and job.error_message.startswith("cancelled")
    assert latency < 2.0
    assert_released(client)  # the job's distributed.Event is cleared again


def test_cancel_right_after_start_and_async_task_cancel(quiv: Quiv, client: Any) -> None:
    running = Gate()

    async def sleeper(_progress_hook: Any) -> None:  # no _stop_event: a cancel cancels its task
        _progress_hook(running=True)
        await asyncio.sleep(30)

    task_id = quiv.add_task("sleeper", sleeper, run_once=True, progress_callback=lambda **kw: running.set())
    job_id = started_job(quiv, task_id, running)
    t0 = time.monotonic()
    quiv.cancel_job(job_id)  # before its watcher's first wait
    job = quiv.wait_for_job(job_id, timeout=WAIT)
    assert job.status == "cancelled"
    assert time.monotonic() - t0 < 5
    assert_released(client)


def test_timeout_cancels_the_job(quiv: Quiv) -> None:
    def slow(_stop_event: threading.Event) -> str:
        _stop_event.wait(30)
        return "stopped"

    job = run(quiv, slow, timeout=0.3)
    assert job.status == "cancelled"
    assert job.error_message == "timed out after 0.3s"
    assert job.duration_seconds < 5


def test_queued_job_is_cancelled_on_the_cluster(quiv: Quiv, client: Any) -> None:
    started = threading.Semaphore(0)

    def block(_stop_event: threading.Event, _progress_hook: Any) -> None:
        _progress_hook(running=True)
        _stop_event.wait(30)

    blockers = [
        quiv.add_task(f"block{i}", block, run_once=True, progress_callback=lambda **kw: started.release())
        for i in range(4)  # 2 workers x 2 threads: the cluster is full
    ]
    for _ in blockers:
        assert started.acquire(timeout=WAIT)
    ran = []
    queued = quiv.add_task("queued", lambda: ran.append(1), run_once=True)
    job_id = quiv.get_task(queued).last_job_id
    time.sleep(0.2)
    assert quiv.get_job(job_id).status == "scheduled"
    assert quiv.cancel_job(job_id)
    job = quiv.wait_for_job(job_id, timeout=WAIT)
    assert job.status == "cancelled" and job.started_at is None
    wait_until(lambda: f"quiv-lambda-{job_id}" not in scheduler_state(client)["tasks"])
    for task_id in blockers:
        quiv.cancel_job(quiv.get_task(task_id).last_job_id)
    for task_id in blockers:
        assert quiv.wait_for_task(task_id, timeout=WAIT).status == "cancelled"
    assert not ran
    assert_released(client)


# ------------------------------------------------------------------------------------------ lifecycle


def test_shutdown_keeps_a_users_client_and_closes_its_own(client: Any) -> None:
    own = DaskExecutor(client.scheduler.address)  # connects: this executor owns that client
    mine = DaskExecutor(client)
    own_client = own.client
    for executor in (own, mine):
        q = Quiv(executor=executor)
        q.start()
        assert run(q, pow, args=(2, 10)).result == 1024
        q.shutdown(timeout=5)
    assert own_client.status == "closed"
    assert stored_topics(client) == {}  # each executor's topic is dropped from the scheduler
    assert client.status == "running"
    assert client.submit(pow, 3, 2).result(timeout=WAIT) == 9
    with pytest.raises(RuntimeError, match="shut down"):
        mine.submit(None)  # type: ignore[arg-type]


def test_shutdown_abandons_a_job_that_ignores_its_stop_event(client: Any) -> None:
    executor = DaskExecutor(client)
    q = Quiv(executor=executor)
    q.start()
    running = Gate()

    def stubborn(_progress_hook: Any) -> None:
        _progress_hook(running=True)
        time.sleep(1.0)

    task_id = q.add_task("stubborn", stubborn, run_once=True, progress_callback=lambda **kw: running.set())
    job_id = started_job(q, task_id, running)
    t0 = time.monotonic()
    q.shutdown(timeout=0.1)
    assert time.monotonic() - t0 < 4
    job = q.get_job(job_id)
    assert job.status == "cancelled"
    assert_released(client)


def test_configuration_errors(client: Any) -> None:
    with pytest.raises(ConfigurationError, match="flush_interval"):
        DaskExecutor(client, flush_interval=-1)
    with pytest.raises(ConfigurationError, match="watch_period"):
        DaskExecutor(client, watch_period=0)
    with pytest.raises(ConfigurationError, match="key, retries"):
        DaskExecutor(client, submit_options={"retries": 3, "key": "x"})
    with pytest.raises(ConfigurationError, match=r"distributed\.Client"):
        DaskExecutor(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="address"):
        connect("")
    with pytest.raises(ConnectionError, match="no Dask scheduler answered"):
        connect("tcp://127.0.0.1:9", timeout=0.5)


def test_start_local_cluster_owns_its_cluster() -> None:
    client = start_local_cluster(1, processes=False, dashboard_address="127.0.0.1:0")
    try:
        cluster = client.cluster
        assert client.submit(pow, 2, 5).result(timeout=WAIT) == 32
        q = Quiv(executor=DaskExecutor(client, close_client=True))
        q.start()
        assert run(q, pow, args=(2, 3)).result == 8
        q.shutdown(timeout=5)
        assert client.status == "closed"
        wait_until(lambda: cluster.status.name == "closed")
    finally:
        client.close()


def test_worker_processes(tmp_path: Any) -> None:
    """The real thing: handlers pickled by value into worker processes, progress over TCP, cancel."""
    client = start_local_cluster(1, processes=True, threads_per_worker=2, dashboard_address="127.0.0.1:0")
    q = Quiv(executor=DaskExecutor(client, close_client=True))
    q.start()
    try:
        seen: list[int] = []

        def count(n: int, _progress_hook: Any) -> int:
            import os

            for i in range(n):
                _progress_hook(step=i + 1, total=n)
            return os.getpid()

        job = run(q, count, args=(300,), progress_callback=lambda step, total: seen.append(step))
        assert job.status == "completed", job.error_message
        assert seen == list(range(1, 301))
        import os

        assert job.result != os.getpid()

        running = Gate()

        def wait_for_stop(_stop_event: threading.Event, _progress_hook: Any) -> str:
            _progress_hook(running=True)
            return "stopped" if _stop_event.wait(30) else "never stopped"

        task_id = q.add_task("waiter", wait_for_stop, run_once=True, progress_callback=lambda **kw: running.set())
        job_id = started_job(q, task_id, running)
        t0 = time.monotonic()
        q.cancel_job(job_id)
        job = q.wait_for_job(job_id, timeout=WAIT)
        assert job.status == "cancelled"
        print(f"\nprocesses=True: cancel_job -> job finished in {(time.monotonic() - t0) * 1e3:.1f} ms")
    finally:
        q.shutdown(timeout=5)
    assert client.status == "closed"


def _dask_step(x: int) -> dict[str, int]:
    return {"x": x, "pid": __import__("os").getpid()}


def test_cached_steps_work_the_same_on_dask(client: Any, tmp_path: Any) -> None:
    """The scheduler decides a hit before submitting: a cached step never reaches the cluster again."""
    path = tmp_path / "s.db"
    results = []
    for _ in range(2):
        q = Quiv(executor=DaskExecutor(client), store=path)
        q.start()
        try:
            results.append(run(q, _dask_step, args=(5,), cache=True))
        finally:
            q.shutdown(timeout=5)
    first, second = results
    assert (first.cached, second.cached) == (False, True)
    assert second.result == first.result and second.status == "completed"


def _dask_five() -> int:
    return 5


def _dask_times_ten(_upstream: dict[str, Any]) -> int:
    return _upstream["src"] * 10


def test_a_cached_step_below_an_uncached_one_on_dask(client: Any, tmp_path: Any) -> None:
    """Its key is finished off the scheduler lock (the upstream result pickled); a miss is submitted from there."""
    path = tmp_path / "s.db"
    jobs = []
    for _ in range(2):
        q = Quiv(executor=DaskExecutor(client), store=path)
        try:
            ended = next_job(q, "sink")
            q.add_task("src", _dask_five, run_once=True)
            q.add_task("sink", _dask_times_ten, after="src", cache=True)
            q.start()  # after both are added: the upstream cannot end before its dependent exists
            jobs.append(ended.result(WAIT))
        finally:
            q.shutdown(timeout=5)
    assert [(j.result, j.cached, j.status) for j in jobs] == [(50, False, "completed"), (50, True, "completed")]
