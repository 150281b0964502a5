"""Pipelines in the scheduler: `after=`, results passed downstream, skips, removal, replace, injection.

Real threads and a real pool; every wait is on a job, an event or a gate with a timeout.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest
from conftest import WAIT, Gate, ended_event, next_job

from quiv_nb import ConfigurationError, DependentTasksError, Event, JobStatus, Quiv


def collect(q: Quiv, *events: Event) -> list[tuple[Event, str, str, str | None]]:
    """Record (event, task name, job status, error) for each of `events` (listeners run on the worker here)."""
    seen: list[tuple[Event, str, str, str | None]] = []
    lock = threading.Lock()

    def listener(event: Event, task: Any, job: Any) -> None:
        with lock:
            seen.append((event, job.task_name, str(job.status), job.error_message))

    for event in events:
        q.add_listener(event, listener)
    return seen


# ---------------------------------------------------------------- results flow downstream


def test_a_chain_passes_each_result_to_the_next_step(quiv_factory: Callable[..., Quiv]) -> None:
    q = quiv_factory(start=False)

    def extract() -> list[int]:
        return [3, 1, 2]

    def transform(_upstream: dict[str, Any]) -> list[int]:
        return sorted(_upstream["extract"])

    def load(upstream: dict[str, Any]) -> str:  # the quiv 1.x-style spelling works too
        return f"loaded {upstream}"

    q.add_task("extract", extract, run_once=True)
    t = q.add_task("transform", transform, after="extract", run_once=True)
    last = q.add_task("load", load, after=t, run_once=True)  # by id
    q.start()
    job = q.wait_for_task(last, timeout=WAIT)
    assert job.status == JobStatus.COMPLETED
    assert job.result == "loaded {'transform': [1, 2, 3]}"
    assert q.wait_for_task(t, timeout=WAIT).result == [1, 2, 3]


def test_a_join_runs_once_all_upstreams_completed(quiv: Quiv) -> None:
    never = 1e9

    def value(n: int) -> int:
        return n

    a = quiv.add_task("a", value, args=(1,), interval=never, delay=never)
    b = quiv.add_task("b", value, args=(2,), interval=never, delay=never)
    quiv.add_task("a_only", lambda _upstream: dict(_upstream), after="a")
    join = quiv.add_task("join", lambda _upstream: dict(_upstream), after=["a", "b"])

    sibling_job = next_job(quiv, "a_only")
    quiv.run_task_immediately(a)
    assert sibling_job.result(WAIT).result == {"a": 1}
    # a's completion was handled under one lock with its sibling's start: join has not run (b is missing).
    assert quiv.get_all_jobs(task_id=join) == []
    ended = ended_event(quiv, join)
    quiv.run_task_immediately(b)
    assert ended.wait(WAIT)
    assert [j.result for j in quiv.get_all_jobs(task_id=join)] == [{"a": 1, "b": 2}]


def test_a_fan_out_and_fan_in(quiv_factory: Callable[..., Quiv]) -> None:
    q = quiv_factory(start=False, pool_size=8)
    q.add_task("root", lambda: 10, run_once=True)
    middles = [q.add_task(f"m{i}", lambda _upstream, i=i: _upstream["root"] + i, after="root") for i in range(30)]
    join = q.add_task("join", lambda _upstream: sum(_upstream.values()), after=middles, run_once=True)
    q.start()
    assert q.wait_for_task(join, timeout=WAIT).result == sum(10 + i for i in range(30))


def test_a_trigger_that_arrives_while_the_task_runs_is_held_not_lost(quiv: Quiv) -> None:
    gate, started = Gate(), Gate()
    runs: list[Any] = []

    def slow(_upstream: dict[str, Any]) -> None:
        runs.append(_upstream["up"])
        if len(runs) == 1:
            started.set()
            gate.wait()

    counter = iter(range(1, 100))
    up = quiv.add_task("up", lambda: next(counter), interval=1e9, delay=1e9)
    down = quiv.add_task("down", slow, after="up")
    quiv.run_task_immediately(up)
    started.wait()
    for _ in range(2):  # two more rounds while "down" is busy: the latest one is held
        job = quiv.wait_for_job(quiv.run_task_immediately(up), timeout=WAIT)
        assert job.status == JobStatus.COMPLETED
    second = threading.Event()
    quiv.add_listener(Event.JOB_COMPLETED, lambda e, t, j: j.task_id == down and len(runs) == 2 and second.set())
    gate.set()
    assert second.wait(WAIT)
    assert runs == [1, 3]


def test_run_now_of_an_after_task_gets_an_empty_upstream(quiv: Quiv) -> None:
    up = quiv.add_task("up", lambda: 1, interval=1e9, delay=1e9)
    down = quiv.add_task("down", lambda _upstream: _upstream, after="up")
    triggered = next_job(quiv, "down")
    quiv.run_task_immediately(up)
    assert triggered.result(WAIT).result == {"up": 1}
    # A run-now is a fresh run, not a repeat of the last triggered one.
    assert quiv.wait_for_job(quiv.run_task_immediately(down), timeout=WAIT).result == {}


def test_a_paused_downstream_does_not_run(quiv: Quiv) -> None:
    up = quiv.add_task("up", lambda: 1, interval=1e9, delay=1e9)
    paused = quiv.add_task("paused", lambda _upstream: 1, after="up")
    other = quiv.add_task("other", lambda _upstream: 2, after="up")
    quiv.pause_task(paused)
    other_job = next_job(quiv, "other")
    quiv.run_task_immediately(up)
    assert other_job.result(WAIT).task_id == other
    assert quiv.get_all_jobs(task_id=paused) == []
    # Resumed, it waits for its upstream again (no clock of its own) and runs on the next round.
    quiv.resume_task(paused)
    assert quiv.get_task(paused).next_run_at is None
    resumed = next_job(quiv, "paused")
    quiv.run_task_immediately(up)
    assert resumed.result(WAIT).result == 1


# ---------------------------------------------------------------- failure propagation


def test_a_failure_after_retries_skips_everything_below_it(quiv_factory: Callable[..., Quiv]) -> None:
    q = quiv_factory(start=False)
    attempts: list[int] = []

    def extract() -> None:
        attempts.append(1)
        raise ValueError("bad row")

    q.add_task("extract", extract, run_once=True, max_retries=1, retry_backoff=0)
    b = q.add_task("transform", lambda _upstream: 1, after="extract", run_once=True)
    c = q.add_task("load", lambda _upstream: 1, after="transform", run_once=True)
    events = collect(q, Event.JOB_SKIPPED, Event.JOB_FAILED, Event.JOB_RETRYING)
    q.start()
    job_c = q.wait_for_task(c, timeout=WAIT)
    job_b = q.wait_for_task(b, timeout=WAIT)
    assert len(attempts) == 2  # skipped only once its retries were spent
    assert job_b.status == JobStatus.SKIPPED and job_c.status == JobStatus.SKIPPED
    assert job_b.error_message == "upstream 'extract' failed: ValueError: bad row"
    assert job_c.error_message == "upstream 'transform' was skipped (upstream 'extract' failed: ValueError: bad row)"
    assert job_b.started_at is None and job_b.ended_at is not None and job_b.result is None
    skipped = [e for e in events if e[0] == Event.JOB_SKIPPED]
    assert [(name, status) for _, name, status, _ in skipped] == [("transform", "skipped"), ("load", "skipped")]


def test_a_timeout_upstream_skips_its_dependent(quiv: Quiv) -> None:
    def hang(_stop_event: threading.Event) -> None:
        _stop_event.wait(WAIT)

    up = quiv.add_task("slow", hang, interval=1e9, delay=1e9, timeout=0.05)
    quiv.add_task("down", lambda _upstream: 1, after="slow")
    down_job = next_job(quiv, "down")
    quiv.run_task_immediately(up)
    job = down_job.result(WAIT)
    assert job.status == JobStatus.SKIPPED
    assert job.error_message == "upstream 'slow' was cancelled: timed out after 0.05s"


def test_a_cancelled_upstream_skips_its_dependent(quiv: Quiv) -> None:
    started = Gate()

    def hang(_stop_event: threading.Event) -> None:
        started.set()
        _stop_event.wait(WAIT)

    up = quiv.add_task("slow", hang, interval=1e9, delay=1e9)
    quiv.add_task("down", lambda _upstream: 1, after="slow")
    down_job = next_job(quiv, "down")
    job_id = quiv.run_task_immediately(up)
    started.wait()
    quiv.cancel_job(job_id)
    job = down_job.result(WAIT)
    assert job.status == JobStatus.SKIPPED and "upstream 'slow' was cancelled" in (job.error_message or "")
    assert quiv.get_all_jobs(status="skipped") == [job]


# ---------------------------------------------------------------- validation


def noop() -> None:
    return None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"after": "nope"}, "after names 'nope', which is no task; add the upstream task first"),
        ({"after": "me"}, "task 'me' cannot run after itself"),
        ({"after": []}, "after must be a task name or id, or a non-empty list of them"),
        ({"after": "up", "interval": 5}, "interval and after are mutually exclusive"),
        ({"cron": "* * * * *", "at": "09:00"}, "cron and at are mutually exclusive"),
        ({"interval": 1, "cron": "* * * * *"}, "interval and cron are mutually exclusive"),
        ({"after": "up", "delay": 1}, "delay does not apply to an after= task"),
        ({"interval": 5, "timezone": "UTC"}, "timezone applies to cron= and at= schedules only"),
        ({}, "interval is required for a recurring task (seconds > 0), or cron=, at= or after=; or pass run_once"),
        ({"cron": "61 * * * *"}, "cron must be a 5-field cron expression"),
        ({"at": "25:00"}, 'at must be a daily time "HH:MM"'),
        ({"at": "09:00", "timezone": "Mars/Base"}, "timezone must be an IANA time-zone name"),
    ],
)
def test_bad_schedules_are_refused_and_register_nothing(quiv: Quiv, kwargs: dict[str, Any], message: str) -> None:
    quiv.add_task("up", noop, interval=1e9, delay=1e9)
    with pytest.raises(ConfigurationError) as info:
        quiv.add_task("me", noop, **kwargs)
    assert message in str(info.value)
    assert [t.task_name for t in quiv.get_all_tasks()] == ["up"]


def test_a_name_two_tasks_share_must_be_given_as_an_id(quiv: Quiv) -> None:
    first = quiv.add_task("twin", noop, interval=1e9, delay=1e9)
    quiv.add_task("twin", noop, interval=1e9, delay=1e9)
    with pytest.raises(ConfigurationError, match="after names 'twin', which 2 tasks share"):
        quiv.add_task("down", noop, after="twin")
    assert quiv.get_task(quiv.add_task("down", noop, after=first)).after == ("twin",)


# ---------------------------------------------------------------- removal and replace


def test_removing_an_upstream_is_refused_unless_cascade(quiv: Quiv) -> None:
    a = quiv.add_task("a", noop, interval=1e9, delay=1e9)
    b = quiv.add_task("b", noop, after="a")
    c = quiv.add_task("c", noop, after="b")
    removed = []
    quiv.add_listener(Event.TASK_REMOVED, lambda e, task: removed.append(task.task_name))
    with pytest.raises(DependentTasksError) as info:
        quiv.remove_task(a)
    assert "task 'a' cannot be removed: 'b', 'c' run after it" in str(info.value)
    assert info.value.dependents == ["b", "c"]
    assert len(quiv.get_all_tasks()) == 3
    quiv.remove_task(c)  # a leaf goes without fuss
    quiv.remove_task(a, cascade=True)
    assert quiv.get_all_tasks() == []
    assert sorted(removed) == ["a", "b", "c"]
    with pytest.raises(ConfigurationError, match="cascade must be True or False"):
        quiv.remove_task(b, cascade="yes")  # type: ignore[arg-type]


def test_replacing_an_upstream_keeps_the_pipeline(quiv: Quiv) -> None:
    quiv.add_task("extract", lambda: "old", interval=1e9, delay=1e9)
    down = quiv.add_task("transform", lambda _upstream: _upstream["extract"], after="extract")
    new = quiv.add_task("extract", lambda: "new", interval=1e9, delay=1e9, replace=True)
    assert [t.task_name for t in quiv.get_all_tasks()] == ["transform", "extract"]
    down_job = next_job(quiv, "transform")
    quiv.run_task_immediately(new)
    assert down_job.result(WAIT).task_id == down
    assert down_job.result().result == "new"
    with pytest.raises(ConfigurationError, match="after would make a cycle: extract -> transform -> extract"):
        quiv.add_task("extract", noop, after="transform", replace=True)
    assert quiv.get_task(new).task_name == "extract"  # the refused replace changed nothing


def test_task_snapshot_shows_what_it_runs_after(quiv: Quiv) -> None:
    quiv.add_task("a", noop, interval=1e9, delay=1e9)
    quiv.add_task("b", noop, interval=1e9, delay=1e9)
    task = quiv.get_task(quiv.add_task("join", noop, after=["b", "a"]))
    assert task.after == ("b", "a")
    assert task.next_run_at is None and task.interval is None and task.cron is None and task.timezone is None


# ---------------------------------------------------------------- _scheduled_at


def test_scheduled_at_is_the_aware_time_the_run_was_due(quiv: Quiv) -> None:
    before = datetime.now(timezone.utc)
    first = next_job(quiv, "t")
    quiv.add_task("t", lambda _scheduled_at: _scheduled_at, interval=60, delay=0.2)
    job = first.result(WAIT)
    due = job.result
    assert due.tzinfo is not None
    assert before + timedelta(seconds=0.15) <= due <= before + timedelta(seconds=5)
    assert job.started_at is not None and job.started_at >= due - timedelta(milliseconds=50)
    # A run-now is due when asked; a retry keeps the due time of the run it repeats.
    attempts: list[datetime] = []

    def flaky(scheduled_at: datetime) -> None:
        attempts.append(scheduled_at)
        if len(attempts) == 1:
            raise RuntimeError("once")

    f = quiv.add_task("flaky", flaky, interval=1e9, delay=1e9, max_retries=1, retry_backoff=0)
    done = ended_event(quiv, f)
    asked = datetime.now(timezone.utc)
    quiv.run_task_immediately(f)
    assert done.wait(WAIT)
    assert len(attempts) == 2 and attempts[0] == attempts[1] and attempts[0] >= asked


def test_upstream_and_scheduled_at_cannot_be_passed_in_kwargs(quiv: Quiv) -> None:
    with pytest.raises(ConfigurationError, match="kwargs must not contain '_upstream'"):
        quiv.add_task("t", lambda _upstream: None, run_once=True, kwargs={"_upstream": {}})


# ---------------------------------------------------------------- on Dask


@pytest.mark.dask
@pytest.mark.timeout(90)
def test_a_pipeline_runs_unchanged_on_the_dask_executor() -> None:
    distributed = pytest.importorskip("distributed")
    from quiv_nb.dask import DaskExecutor

    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol="tcp://", host="127.0.0.1",
        dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )  # fmt: skip
    client = distributed.Client(cluster)
    q = Quiv(executor=DaskExecutor(client))
    try:

        def extract() -> list[int]:
            return [3, 1, 2]

        def transform(_upstream: dict[str, Any], _scheduled_at: datetime) -> tuple[list[int], bool]:
            return sorted(_upstream["extract"]), _scheduled_at.tzinfo is not None

        def explode(_upstream: dict[str, Any]) -> None:
            raise RuntimeError("on the worker")

        q.add_task("extract", extract, run_once=True)
        t = q.add_task("transform", transform, after="extract", run_once=True)
        boom = q.add_task("explode", explode, after="transform", run_once=True)
        skipped = q.add_task("publish", lambda _upstream: 1, after="explode", run_once=True)
        q.start()
        assert q.wait_for_task(t, timeout=WAIT * 3).result == ([1, 2, 3], True)
        assert q.wait_for_task(boom, timeout=WAIT * 3).status == JobStatus.FAILED
        job = q.wait_for_task(skipped, timeout=WAIT * 3)
        assert job.status == JobStatus.SKIPPED
        assert job.error_message == "upstream 'explode' failed: RuntimeError: on the worker"
    finally:
        q.shutdown(timeout=5)
        client.close()
        cluster.close()


def test_adding_a_run_once_upstream_again_feeds_the_tasks_after_it(quiv_factory: Callable[..., Quiv]) -> None:
    q = quiv_factory(start=False)
    q.add_task("extract", lambda: "first", run_once=True)
    transform = q.add_task("transform", lambda _upstream: _upstream["extract"], after="extract")  # recurring
    first = next_job(q, "transform")
    q.start()
    assert first.result(WAIT).result == "first"
    assert q.get_task(transform).after == ("extract",)  # the finished upstream is still named
    second = next_job(q, "transform")
    q.add_task("extract", lambda: "second", run_once=True)  # re-running the notebook cell that adds it
    assert second.result(WAIT).result == "second"


def test_shutdown_while_an_upstream_runs_starts_and_skips_nothing(quiv_factory: Callable[..., Quiv]) -> None:
    q = quiv_factory()
    started = Gate()

    def hang(_stop_event: threading.Event) -> None:
        started.set()
        _stop_event.wait(WAIT)

    up = q.add_task("up", hang, interval=1e9, delay=1e9)
    down = q.add_task("down", lambda _upstream: 1, after="up")
    skipped = collect(q, Event.JOB_SKIPPED, Event.JOB_STARTED)
    q.run_task_immediately(up)
    started.wait()
    q.shutdown(timeout=WAIT)
    assert [j.status for j in q.get_all_jobs(task_id=up)] == [JobStatus.CANCELLED]
    assert q.get_all_jobs(task_id=down) == []
    assert all(name != "down" for _, name, _, _ in skipped)
