"""The store: history and cached steps on a real SQLite file, across schedulers and processes."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import WAIT, wait_until

from quiv_nb import JobStatus, Quiv
from quiv_nb.errors import QuivError
from quiv_nb.store import Store
from quiv_nb.store.db import connect

ROOT = Path(__file__).resolve().parents[1]


def run_once(q: Quiv, name: str, func: Callable[..., Any], **kwargs: Any) -> Any:
    """Add a run-once task and return its finished job."""
    return q.wait_for_task(q.add_task(name, func, run_once=True, **kwargs), timeout=WAIT)


def child(script: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def double(x: int) -> int:
    return 2 * x


# ------------------------------------------------------------------ the file


def test_store_creates_private_folders_and_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "quiv.db"
    with Quiv(store=path) as q:
        assert run_once(q, "t", double, args=(1,), cache=True).result == 2
        sides = [p for p in path.parent.iterdir() if p != path]  # SQLite's -wal / -shm, the cache folder
        assert {p.name for p in sides} >= {"quiv.db-wal", "quiv.db-shm", "quiv.db.cache"}
        assert {p.name: p.stat().st_mode & 0o777 for p in sides} == {
            "quiv.db-wal": 0o600, "quiv.db-shm": 0o600, "quiv.db.cache": 0o700,
        }  # fmt: skip
        assert [f.stat().st_mode & 0o777 for f in (path.parent / "quiv.db.cache").iterdir()] == [0o600]
    assert (path.parent.stat().st_mode & 0o777, (tmp_path / "a").stat().st_mode & 0o777) == (0o700, 0o700)
    assert path.stat().st_mode & 0o777 == 0o600


def test_without_a_store_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    with Quiv() as q:
        assert run_once(q, "t", double, args=(1,)).result == 2
        assert q.store is None
        assert [j.task_name for j in q.history()] == ["t"]  # this process's history, from memory
    assert list(tmp_path.iterdir()) == []


def test_corrupt_store_is_a_quiv_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"this is not a database, just some text " * 200)
    with pytest.raises(QuivError, match=r"broken\.db"):
        Quiv(store=path)
    unopenable = tmp_path / "folder.db"
    unopenable.mkdir()  # a folder where the file should be: SQLite cannot open it
    with pytest.raises(QuivError, match=r"folder\.db"):
        Quiv(store=unopenable)


def test_history_written_by_one_scheduler_is_read_by_the_next(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Quiv(store=path) as q:
        ok = run_once(q, "good", double, args=(4,))
        bad = run_once(q, "bad", lambda: 1 / 0)
    with Quiv(store=path) as q:
        jobs = q.history()
        assert [j.job_id for j in jobs] == [bad.job_id, ok.job_id]  # newest first
        assert jobs[0].status is JobStatus.FAILED and "ZeroDivisionError" in (jobs[0].traceback or "")
        assert jobs[1].status is JobStatus.COMPLETED and jobs[1].ended_at == ok.ended_at
        # A plain job's row is written by its own statement (NULL literals): its fields still round-trip.
        assert jobs[1].started_at == ok.started_at and jobs[1].error_message is None and jobs[1].traceback is None
        assert jobs[0].error_message == bad.error_message and jobs[1].task_name == "good" and not jobs[1].cached
        assert [j.job_id for j in q.history("good")] == [ok.job_id]
        assert len(q.history(limit=1)) == 1


def test_output_end_is_kept(tmp_path: Path) -> None:
    def chatty() -> None:
        for i in range(5000):
            print(f"line {i}")

    with Quiv(store=tmp_path / "s.db") as q:
        run_once(q, "chatty", chatty)
    (job,) = Store(tmp_path / "s.db").history()
    assert job.output.endswith("line 4999\n") and "line 0\n" not in job.output


def test_a_running_jobs_start_is_on_disk_while_it_runs(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Quiv(store=path) as q:
        q.add_task("slow", lambda stop_event: stop_event.wait(WAIT), run_once=True)
        con = sqlite3.connect(path)
        wait_until(lambda: con.execute("SELECT status FROM jobs WHERE task_name='slow'").fetchone() == ("running",))
        con.close()


# ------------------------------------------------------------------ processes

_RUN_FOREVER = """
import sys, threading
from quiv_nb import Quiv
q = Quiv(1, store=sys.argv[1])  # one worker: "forever" runs, "queued" waits for it
q.add_task("forever", lambda: threading.Event().wait(), run_once=True)
q.add_task("queued", lambda: None, run_once=True)
q.start()
print("opened", flush=True)
threading.Event().wait()
"""


@contextlib.contextmanager
def killed_after(path: Path) -> Iterator[str]:
    """A child process runs a job forever (and queues one); yields that job's id once it runs on disk.

    On exit the child is killed with SIGKILL, by pid.
    """
    proc = child(_RUN_FOREVER, str(path))
    try:
        # Read only once the child opened the store (in WAL mode from then on, readers never block it).
        assert proc.stdout is not None and proc.stdout.readline().strip() == "opened"
        query = "SELECT job_id FROM jobs WHERE task_name='forever' AND status='running'"

        def running() -> Any:
            con = sqlite3.connect(path, timeout=WAIT)
            try:
                return con.execute(query).fetchone()
            finally:
                con.close()

        try:
            job_id = wait_until(running)[0]
        except BaseException:
            os.kill(proc.pid, signal.SIGKILL)
            print(proc.communicate(timeout=WAIT)[1])  # why the child did not get there
            raise
        yield job_id
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=WAIT)


def test_jobs_of_a_killed_process_are_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with killed_after(path) as job_id:
        store = Store(path)
        assert store.history() == []  # its process lives: nothing is interrupted
        store.close()
    with Quiv(store=path) as q:
        jobs = {j.task_name: j for j in q.history()}
    assert {name: j.status for name, j in jobs.items()} == {
        "forever": JobStatus.INTERRUPTED,
        "queued": JobStatus.INTERRUPTED,
    }
    assert jobs["forever"].job_id == job_id and jobs["forever"].started_at is not None


def test_connections_opening_a_new_store_at_once_all_open(tmp_path: Path) -> None:
    """Two kernels that start together open the default store together; neither may fail.

    SQLite answers the switch to WAL mode "database is locked" at once (no busy wait) while another
    connection switches the same new file: before `db._enter_wal`, 35 of 900 such opens failed.
    """
    failures: list[BaseException] = []
    for round_ in range(100):
        path = tmp_path / f"s{round_}.db"
        start = threading.Barrier(3)

        def open_it(path: Path = path, start: threading.Barrier = start) -> None:
            start.wait(timeout=WAIT)
            try:
                connect(path).close()
            except QuivError as exc:
                failures.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=WAIT)
        assert not any(thread.is_alive() for thread in threads)
    assert failures == []


_WRITER = """
import sys
from quiv_nb import Quiv
with Quiv(4, store=sys.argv[1]) as q:
    ids = [q.add_task(f"job{i}", lambda: None, run_once=True) for i in range(300)]
    for task_id in ids:
        q.wait_for_task(task_id, timeout=60)
"""


def test_two_processes_writing_one_store_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    procs = [child(_WRITER, str(path)) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*), count(DISTINCT pid) FROM jobs WHERE status='completed'").fetchone() == (
        600,
        2,
    )
    con.close()


_RECORD_VIEWS = """
import sys, threading
from quiv_nb.store import Store
from quiv_nb.store.db import connect
store = Store(sys.argv[1])
store.record_view("model-a", "work.ipynb", "<b>a</b>", "a: interrupted (kernel died)")
store.record_view("model-b", None, "<b>b</b>", "b")
store.record_view("model-a", "work.ipynb", "<b>a done</b>", "a: done")  # the latest rendering wins
assert store.sync(30)
print("recorded", flush=True)
threading.Event().wait()
"""


def test_the_views_of_a_dead_process_are_its_orphans(tmp_path: Path) -> None:
    from quiv_nb.store.views import View, orphans

    path = tmp_path / "s.db"
    assert orphans(path, "work.ipynb") == []  # no store file: none, and none is created
    assert not path.exists()
    proc = child(_RECORD_VIEWS, str(path))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "recorded"
        mine = Store(path)
        mine.record_view("model-mine", "work.ipynb", "<i>mine</i>", "mine")
        assert mine.sync(WAIT)
        assert orphans(path, "work.ipynb") == []  # the child runs; this process's own views are never orphans
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=WAIT)
    assert orphans(path, "work.ipynb") == [View("model-a", "work.ipynb", "<b>a done</b>", "a: done")]
    assert orphans(path, None) == [View("model-b", None, "<b>b</b>", "b")]
    assert orphans(path, "other.ipynb") == []
    mine.close()


def test_the_dashboard_lists_earlier_schedulers_jobs(tmp_path: Path) -> None:
    from quiv_nb.render.dash_model import DashboardModel

    path = tmp_path / "s.db"
    with Quiv(store=path) as q:
        earlier = run_once(q, "earlier", double, args=(1,))
    with Quiv(store=path) as q:
        now = run_once(q, "now", double, args=(2,))
        assert [j.job_id for j in DashboardModel(q).recent_jobs()] == [now.job_id, earlier.job_id]


def test_the_dashboard_tags_earlier_kernels_jobs_and_interrupted_ones(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    from quiv_nb.render.dash_model import DashboardModel
    from quiv_nb.render.dash_view import recent_html
    from quiv_nb.render.format import format_table

    path = tmp_path / "s.db"
    with killed_after(path) as killed:
        pass
    with Quiv(store=path) as q:
        earlier = run_once(q, "earlier", double, args=(1,))
    with Quiv(store=path) as q:
        now = run_once(q, "now", double, args=(2,))
        snap = DashboardModel(q).collect()
    assert {killed, earlier.job_id} <= snap.earlier and now.job_id not in snap.earlier  # (the child queued one more)
    page = recent_html(snap.recent, snap.now, snap.earlier)
    rows = {r.split('data-job-id="')[1].split('"')[0]: r for r in page.split("<tr ")[1:]}
    assert "earlier kernel" not in rows[now.job_id] and "quiv-dash-job-earlier" not in rows[now.job_id]
    for job_id in (killed, earlier.job_id):
        assert "quiv-dash-job-earlier" in rows[job_id] and "· earlier kernel" in rows[job_id]
    assert "quiv-dash-job-interrupted" in rows[killed] and "⚠ interrupted" in rows[killed]
    assert "#ef6c00" in rows[killed] and "#ef6c00" not in rows[earlier.job_id]
    text = format_table(snap.title, snap.rows, snap.recent, snap.now, snap.earlier)
    assert "interrupted (earlier kernel)" in text and "completed (earlier kernel)" in text
    # Not today: the date is shown too.
    days_ago = snap.now - timedelta(days=3)
    old = recent_html([dataclasses.replace(earlier, ended_at=days_ago)], snap.now, snap.earlier)
    assert days_ago.astimezone().strftime("%b %d %H:%M") in old
    assert datetime.now(timezone.utc).astimezone().strftime("%b %d") not in old


def test_row_cap_while_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from quiv_nb.store import store as store_module

    monkeypatch.setattr(store_module, "MAX_ROWS", 5)
    monkeypatch.setattr(store_module, "PRUNE_EVERY", 10)
    with Quiv(store=tmp_path / "s.db") as q:
        for i in range(10):
            run_once(q, f"t{i}", double, args=(i,))
        assert [j.task_name for j in q.history()] == [f"t{i}" for i in range(9, 4, -1)]


def test_retention_forgets_old_finished_jobs(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Quiv(store=path) as q:
        run_once(q, "old", double, args=(1,))
    assert [j.task_name for j in Store(path).history()] == ["old"]
    store = Store(path, retention=0.0)  # opening prunes: everything finished is older than 0 s
    assert store.history() == []
    store.close()


def test_history_after_shutdown_still_reads_the_store(tmp_path: Path) -> None:
    with Quiv(store=tmp_path / "s.db") as q:
        job = run_once(q, "t", double, args=(1,))
    assert [j.job_id for j in q.history()] == [job.job_id]


def test_the_kernels_store_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from quiv_nb.kernel import storepath

    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("QUIV_NB_STORE")
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    stores = tmp_path / "data" / "quiv_nb" / "stores"
    assert storepath.store_path() == str(stores / "default.db")  # the notebook is unknown
    monkeypatch.setenv("JPY_SESSION_NAME", "/srv/alice/project/My analysis.ipynb")
    one = storepath.store_path()
    monkeypatch.setenv("JPY_SESSION_NAME", "/srv/alice/other/My analysis.ipynb")
    other = storepath.store_path()
    assert Path(one).parent == stores and Path(one).name.startswith("My_analysis-") and one != other
    monkeypatch.setenv("QUIV_NB_STORE", str(tmp_path / "mine.db"))
    assert storepath.store_path() == str(tmp_path / "mine.db")
    monkeypatch.setenv("QUIV_NB_STORE", "off")
    assert storepath.store_path() is None


def test_bad_store_and_cache_arguments(tmp_path: Path) -> None:
    from quiv_nb.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="store must be"):
        Quiv(store=42)  # type: ignore[arg-type]
    with Quiv() as q:
        for bad in ("", 3, None):
            with pytest.raises(ConfigurationError, match="cache must be"):
                q.add_task("t", double, run_once=True, args=(1,), cache=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="limit"):
            q.history(limit=0)
        first, second = run_once(q, "a", double, args=(1,)), run_once(q, "b", double, args=(2,))
        assert [j.job_id for j in q.history()] == [second.job_id, first.job_id]  # no store: this process's
        assert [j.job_id for j in q.history("a")] == [first.job_id]
        assert q.clear_cache() == 0


_WRITE_FOREVER = """
import sys
from quiv_nb import Quiv
with Quiv(4, store=sys.argv[1]) as q:
    print("opened", flush=True)
    while True:
        q.wait_for_task(q.add_task("spin", lambda: "x" * 1000, run_once=True, cache=True), timeout=60)
        q.clear_cache()
"""


def test_a_process_killed_mid_write_leaves_a_readable_store(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    proc = child(_WRITE_FOREVER, str(path))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "opened"
        con = sqlite3.connect(path, timeout=WAIT)
        wait_until(lambda: con.execute("SELECT count(*) FROM jobs").fetchone()[0] >= 200)
        con.close()
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # while it writes rows, cache entries and files
        proc.communicate(timeout=WAIT)
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()
    with Quiv(store=path) as q:
        done = q.history(limit=10_000)
        assert len(done) >= 200 and {j.status for j in done} <= {JobStatus.COMPLETED, JobStatus.INTERRUPTED}
        assert run_once(q, "after", double, args=(1,), cache=True).result == 2


def test_a_script_that_never_shuts_down_still_commits_at_exit(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    script = """
import sys
from quiv_nb import Quiv
q = Quiv(store=sys.argv[1])
q.start()
for i in range(50):
    q.add_task(f"t{i}", lambda: None, run_once=True)
while len(q.get_all_jobs(status="completed")) < 50:
    pass
"""  # ends without shutdown(): the atexit hook commits the last records
    proc = child(script, str(path))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    store = Store(path)
    assert len([j for j in store.history(limit=100) if j.status is JobStatus.COMPLETED]) == 50
    store.close()


def test_what_a_wait_returned_is_on_disk_when_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Quiv(store=path) as q:
        con = sqlite3.connect(path)
        for i in range(5):  # no polling: the row must already be there, committed
            job = run_once(q, f"t{i}", double, args=(i,))
            row = con.execute("SELECT status, ended_at FROM jobs WHERE job_id=?", (job.job_id,)).fetchone()
            assert row == ("completed", job.ended_at.timestamp())
        con.close()
