"""Cached steps (`add_task(cache=...)`) on a real SQLite store: keys, reuse, invalidation, safety, bounds."""

from __future__ import annotations

import importlib.util
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import WAIT, next_job, wait_until
from test_store import double, run_once

from quiv_nb import JobStatus, Quiv
from quiv_nb.store import Store


def load(path: Path, name: str = "steps") -> Any:
    """Import the module at `path` afresh (a new module object each time, as after an edit)."""
    spec = importlib.util.spec_from_file_location(f"{name}_{abs(hash(path.read_text()))}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


_STEPS = """
calls = []


def load():
    # {comment}
    calls.append("load")
    return [1, 2, 3]


def total(_upstream):
    calls.append("total")
    return sum(_upstream["load"]) * {factor}
"""


def _pipeline(path: Path, module: Any, *, load_args: tuple[Any, ...] = ()) -> tuple[Any, Any]:
    """Run load -> total (both cached) on a new scheduler and return their jobs."""
    q = Quiv(store=path)
    ended = next_job(q, "total")
    q.add_task("load", lambda *a: module.load(), run_once=True, args=load_args, cache=True)
    q.add_task("total", module.total, after="load", cache=True)
    q.start()
    try:
        total = ended.result(WAIT)
        return q.history("load", limit=1)[0], total
    finally:
        q.shutdown()


def test_cached_steps_are_not_rerun_by_a_new_scheduler(tmp_path: Path) -> None:
    src = tmp_path / "steps.py"
    src.write_text(_STEPS.format(comment="first", factor=10))
    path = tmp_path / "s.db"
    load_job, total = _pipeline(path, load(src))
    assert (load_job.cached, total.cached, total.result) == (False, False, 60)
    src.write_text(_STEPS.format(comment="an edited comment only", factor=10))
    module = load(src)
    load_job, total = _pipeline(path, module)
    assert (load_job.cached, total.cached, total.result) == (True, True, 60)
    assert total.computed_at is not None and total.status is JobStatus.COMPLETED
    assert module.calls == []


def test_a_changed_step_reruns_itself_and_below(tmp_path: Path) -> None:
    src = tmp_path / "steps.py"
    src.write_text(_STEPS.format(comment="c", factor=10))
    path = tmp_path / "s.db"
    _pipeline(path, load(src))
    src.write_text(_STEPS.format(comment="c", factor=100))  # total's code changed: only total reruns
    module = load(src)
    load_job, total = _pipeline(path, module)
    assert (load_job.cached, total.cached, total.result, module.calls) == (True, False, 600, ["total"])


def test_changed_arguments_rerun_the_step_and_below(tmp_path: Path) -> None:
    src = tmp_path / "steps.py"
    src.write_text(_STEPS.format(comment="c", factor=10))
    path = tmp_path / "s.db"
    _pipeline(path, load(src), load_args=(1,))
    module = load(src)
    load_job, total = _pipeline(path, module, load_args=(2,))  # load's args changed
    assert (load_job.cached, total.cached) == (False, False)
    assert module.calls == ["load", "total"]


def test_changed_upstream_results_rerun_below(tmp_path: Path) -> None:
    path = tmp_path / "s.db"

    def sink(_upstream: dict[str, int]) -> int:
        return _upstream["src"] * 2

    def round_with(value: int) -> Any:
        q = Quiv(store=path)
        ended = next_job(q, "sink")
        q.add_task("src", lambda: value, run_once=True)  # uncached upstream: its result's digest is the key
        q.add_task("sink", sink, after="src", cache=True)
        q.start()
        try:
            return ended.result(WAIT)
        finally:
            q.shutdown()

    assert [(j.cached, j.result) for j in map(round_with, [5, 6, 6])] == [(False, 10), (False, 12), (True, 12)]


def test_a_pin_survives_code_edits(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Quiv(store=path) as q:
        run_once(q, "p", lambda: "old", cache="v1")
    with Quiv(store=path) as q:
        same = run_once(q, "p", lambda: "new code", cache="v1")
        bumped = run_once(q, "p", lambda: "new code", cache="v2")
    assert (same.cached, same.result, bumped.cached, bumped.result) == (True, "old", False, "new code")


def test_clear_cache(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Quiv(store=path) as q:
        run_once(q, "a", double, args=(1,), cache=True)
        run_once(q, "b", double, args=(2,), cache=True)
        assert q.clear_cache("a") == 1
        assert run_once(q, "a", double, args=(1,), cache=True).cached is False
        assert run_once(q, "b", double, args=(2,), cache=True).cached is True
        assert q.clear_cache() == 2
    assert list((tmp_path / "s.db.cache").iterdir()) == []
    with Quiv(store=path) as q:
        assert run_once(q, "b", double, args=(2,), cache=True).cached is False


def test_unpicklable_results_and_arguments_run_uncached_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "quiv_nb")
    with Quiv(store=tmp_path / "s.db") as q:
        for _ in range(2):
            assert run_once(q, "lock", lambda: __import__("threading").Lock(), cache=True).status == "completed"
        for _ in range(2):
            job = run_once(q, "gen", lambda g: 1, args=((i for i in ()),), cache=True)
            assert (job.status, job.cached) == ("completed", False)
    warnings = [r.getMessage() for r in caplog.records if "uncached" in r.getMessage()]
    assert len([w for w in warnings if "'lock'" in w]) == 1 and "pickled" in warnings[0]
    assert len([w for w in warnings if "'gen'" in w]) == 1


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_world_writable_store_is_not_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "shared"
    path = folder / "s.db"
    calls = []

    def step() -> int:
        calls.append(1)
        return 1

    with Quiv(store=path) as q:
        run_once(q, "s", step, cache=True)
    folder.chmod(0o777)
    caplog.set_level(logging.WARNING, "quiv_nb")
    with Quiv(store=path) as q:
        assert run_once(q, "s", step, cache=True).cached is False
        assert run_once(q, "s", step, cache=True).cached is False
    assert len(calls) == 3
    warnings = [r.getMessage() for r in caplog.records if "uncached" in r.getMessage()]
    assert len(warnings) == 1 and str(folder) in warnings[0]


def test_cache_size_is_bounded_least_recently_used_first(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store(path, cache_bytes=3100)  # three pickles of 1,000 bytes fit, four do not
    with Quiv(store=store) as q:
        for n in (0, 1, 2, 0, 3):  # big0 is used again before big3 comes: big1 is the least recently used
            run_once(q, f"big{n}", lambda: b"x" * 1000, cache=True)
    con = sqlite3.connect(path)
    kept = [name for (name,) in con.execute("SELECT task_name FROM cache ORDER BY task_name")]
    con.close()
    assert kept == ["big0", "big2", "big3"]
    assert len(list((tmp_path / "s.db.cache").iterdir())) == 3


def test_a_damaged_cached_result_is_computed_again(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Quiv(store=path) as q:
        run_once(q, "t", double, args=(21,), cache=True)
    (blob,) = (tmp_path / "s.db.cache").iterdir()
    blob.write_bytes(b"garbage")
    with Quiv(store=path) as q:
        job = run_once(q, "t", double, args=(21,), cache=True)
        assert (job.status, job.result, job.cached) == ("completed", 42, False)
        assert run_once(q, "t", double, args=(21,), cache=True).cached is True  # stored again, whole


def test_a_cached_step_that_succeeds_on_retry_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    attempts = []

    def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) == 1:
            raise ValueError("first attempt fails")
        return x + 1

    with Quiv(store=path) as q:
        q.add_task("flaky", flaky, run_once=True, args=(1,), cache=True, max_retries=1, retry_backoff=0)
        done = wait_until(lambda: [j for j in q.get_all_jobs() if j.status == "completed"])
        assert done[0].result == 2 and not done[0].cached
    with Quiv(store=path) as q:
        again = run_once(q, "flaky", flaky, args=(1,), cache=True)
    assert (again.cached, again.result, len(attempts)) == (True, 2, 2)


def test_an_upstream_that_stops_being_cached_keys_by_its_result(tmp_path: Path) -> None:
    """A cached upstream replaced by an uncached one of the same name: below it, the new result counts."""
    q = Quiv(store=tmp_path / "s.db")
    try:
        ended = next_job(q, "sink")
        q.add_task("src", lambda: 1, run_once=True, cache=True)
        q.add_task("sink", lambda _upstream: _upstream["src"] * 10, after="src", cache=True)
        q.start()
        first = ended.result(WAIT)
        ended = next_job(q, "sink")
        q.add_task("src", lambda: 2, run_once=True, replace=True)  # same name, uncached now
        second = ended.result(WAIT)
    finally:
        q.shutdown()
    assert [(j.result, j.cached) for j in (first, second)] == [(10, False), (20, False)]


def test_a_result_is_reused_before_the_writer_has_written_it(tmp_path: Path) -> None:
    """No wait in between (nothing forces a commit): the second round still reuses both results."""
    q = Quiv(store=tmp_path / "s.db")
    try:
        rounds = []
        for _ in range(2):
            ended = next_job(q, "sink")
            q.add_task("src", lambda: 1, run_once=True, cache="v1", replace=True)
            if not rounds:
                q.add_task("sink", lambda _upstream: _upstream["src"] * 10, after="src", cache=True)
                q.start()
            rounds.append(ended.result(WAIT))
        srcs = [j for j in q.get_all_jobs() if j.task_name == "src"]
    finally:
        q.shutdown()
    assert [(j.result, j.cached) for j in rounds] == [(10, False), (10, True)]
    assert [j.cached for j in srcs] == [False, True]


class _Probe:
    """An upstream result whose pickling asks, from another thread, whether the scheduler is free.

    Pickling runs user code (`__reduce__`), so it must never run under the scheduler lock: if it
    did, `stats()` (which takes the lock) could not return until the pickling ended.
    """

    scheduler: Quiv | None = None
    locked: list[bool] = []

    def __init__(self, value: int) -> None:
        self.value = value

    def __reduce__(self) -> tuple[Any, ...]:
        free = threading.Event()
        threading.Thread(target=lambda: (_Probe.scheduler.stats(), free.set()), daemon=True).start()  # type: ignore[union-attr]
        _Probe.locked.append(not free.wait(5.0))
        return (_Probe, (self.value,))


def test_an_uncached_upstream_result_is_keyed_off_the_lock(tmp_path: Path) -> None:
    """The key of a cached step below an uncached one pickles that result without the lock; hits as before."""
    q = Quiv(store=tmp_path / "s.db")
    _Probe.scheduler, _Probe.locked = q, []
    try:
        ended = next_job(q, "sink")
        q.add_task("src", lambda: _Probe(3), run_once=True)
        q.add_task("sink", lambda _upstream: _upstream["src"].value * 10, after="src", cache=True)
        q.start()
        first = ended.result(WAIT)
        ended = next_job(q, "sink")
        q.add_task("src", lambda: _Probe(3), run_once=True, replace=True)
        second = ended.result(WAIT)
        ended = next_job(q, "sink")
        q.add_task("src", lambda: _Probe(4), run_once=True, replace=True)
        third = ended.result(WAIT)
    finally:
        q.shutdown()
    assert [(j.result, j.cached) for j in (first, second, third)] == [(30, False), (30, True), (40, False)]
    assert _Probe.locked and not any(_Probe.locked)


_ITEM = """
calls = []


def square(item, offset):
    calls.append(item)
    return item * item + offset * {factor}
"""


def _mapped(path: Path, module: Any, offset: int) -> Any:
    """items -> square (map=True, cached) on a new scheduler; the map job."""
    q = Quiv(store=path)
    try:
        ended = next_job(q, "sq")
        q.add_task("items", lambda: [1, 2, 3], run_once=True, cache=True)
        q.add_task("sq", module.square, after="items", map=True, cache=True, args=(offset,))
        q.start()
        return ended.result(WAIT)
    finally:
        q.shutdown()


def test_a_cached_map_task_keys_by_its_item_function_and_arguments(tmp_path: Path) -> None:
    """`map=True, cache=True`: editing the item function or its arguments reruns the map; else it is reused."""
    src, db = tmp_path / "item.py", tmp_path / "s.db"
    src.write_text(_ITEM.format(factor=1))
    first = _mapped(db, load(src, "item"), 0)
    again = _mapped(db, load(src, "item"), 0)
    args_changed = _mapped(db, load(src, "item"), 1)
    src.write_text(_ITEM.format(factor=2))
    code_changed = _mapped(db, load(src, "item"), 1)
    runs = [(j.result, j.cached) for j in (first, again, args_changed, code_changed)]
    assert runs == [([1, 4, 9], False), ([1, 4, 9], True), ([2, 5, 10], False), ([3, 6, 11], False)]


def test_quiv_map_with_cache_reuses_the_same_call(tmp_path: Path) -> None:
    """`Quiv.map(..., cache=True)`: the same function over the same items is reused by a new scheduler."""
    src, db = tmp_path / "item.py", tmp_path / "s.db"
    src.write_text(_ITEM.format(factor=1))
    jobs = []
    for items in ([1, 2], [1, 2], [1, 3]):
        module = load(src, "item")
        q = Quiv(store=db)
        q.start()
        try:
            job_id = q.map(module.square, items, [0] * len(items), name="sq", cache=True)
            jobs.append((q.wait_for_job(job_id, timeout=WAIT), list(module.calls)))
        finally:
            q.shutdown()
    assert [(j.result, j.cached, calls) for j, calls in jobs] == [
        ([1, 4], False, [1, 2]), ([1, 4], True, []), ([1, 9], False, [1, 3]),
    ]  # fmt: skip


def test_an_item_first_map_keys_by_the_function_and_its_arguments(tmp_path: Path) -> None:
    """`%quiv map f(1) items --cache` hands `Quiv.map` an item-first wrapper: `f`'s code and its arguments count."""
    from quiv_nb.mapfanout import item_first

    src, db = tmp_path / "item.py", tmp_path / "s.db"
    runs = []
    for factor, offset in ((1, 0), (1, 0), (1, 1), (2, 1)):
        src.write_text(_ITEM.format(factor=factor))
        module = load(src, "item")
        q = Quiv(store=db)
        q.start()
        try:
            job = q.wait_for_job(q.map(item_first(module.square, (offset,), {}), [1, 2], cache=True), timeout=WAIT)
        finally:
            q.shutdown()
        runs.append((job.result, job.cached))
    assert runs == [([1, 4], False), ([1, 4], True), ([2, 5], False), ([3, 6], False)]
