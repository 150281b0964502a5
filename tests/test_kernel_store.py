"""The store in a real kernel: `QUIV_NB_STORE`, cached steps across a kernel restart, the store magics.

One kernel records to a temporary store; it is killed (restart with `now=True`: SIGKILL) while a
job runs, and the next kernel finds that job interrupted and the cached step's result kept.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import WAIT, wait_until
from kernel_harness import KernelSession

from quiv_nb.render.bar_look import CACHED_COLOUR

pytestmark = [pytest.mark.kernel, pytest.mark.slow]  # two kernels, one restarted: several seconds

DEFINE = """
%load_ext quiv_nb
import quiv_nb, threading
calls = []

def load(n):
    calls.append(n)  # the step's work: counted, so a reused result shows
    return list(range(n))

def forever():
    threading.Event().wait()
"""


def _running_on_disk(path: Path, task: str) -> bool:
    con = sqlite3.connect(path, timeout=WAIT)
    try:
        return con.execute("SELECT 1 FROM jobs WHERE task_name=? AND status='running'", (task,)).fetchone() is not None
    except sqlite3.OperationalError:  # no schema yet
        return False
    finally:
        con.close()


def test_cached_steps_history_and_interrupted_jobs_across_a_kernel_restart(tmp_path: Path) -> None:
    path = tmp_path / "store" / "nb.db"
    kernel = KernelSession(store=str(path))
    try:
        kernel.run(DEFINE)
        assert kernel.run("%quiv store").stdout.strip() == f"quiv: the store is {str(path)!r}"
        kernel.run("%quiv run --cache --bar none load(3)\nfirst = %quiv wait")
        assert kernel.value("(first, calls)") == ([0, 1, 2], [3])
        kernel.run("%quiv map --cache --name lists --bar none load [1, 2]\nm = %quiv wait")
        assert kernel.value("(m, calls)") == ([[0], [0, 1]], [3, 1, 2])
        kernel.run("%quiv run --bar none forever")
        wait_until(lambda: _running_on_disk(path, "forever"))

        kernel.restart(now=True)  # SIGKILL: the running job dies with its kernel
        kernel.run(DEFINE)  # the same code again, in the new kernel
        cell = kernel.run("%quiv run --cache --bar widget load(3)\nagain = %quiv wait")
        assert kernel.value("(again, calls)") == ([0, 1, 2], [])  # not run: the stored result
        assert kernel.value("quiv_nb.get_scheduler().get_job(_quiv_last_job).cached") is True
        kernel.run("%quiv map --cache --name lists --bar none load [1, 2]\nm = %quiv wait")  # a cached map
        assert kernel.value("(m, calls)") == ([[0], [0, 1]], [])
        # Its bar ends saying so, in the cached colour (the static rendering that replaces the widget).
        (bar,) = kernel.wait_for(lambda: list(kernel.static_bars(cell.msg_id).values()), what="the cached bar")
        assert "cached · computed " in bar and CACHED_COLOUR in bar

        table = kernel.run("%quiv history").stdout
        assert "interrupted" in table and "completed (cached)" in table
        lines = {line.split()[0]: line for line in table.splitlines()[1:]}
        assert "interrupted" in lines["forever"] and "load" in lines
        assert kernel.run("%quiv history nothing-like-it").stdout.strip().endswith("on record")

        kernel.run("%quiv run --cache --bar none load(4)\n_ = %quiv wait")  # other arguments: runs
        assert kernel.value("calls") == [4]
        kernel.run("def load(n):\n    calls.append(-n)\n    return n\n")  # other code: runs
        kernel.run("%quiv run --cache --bar none load(3)\n_ = %quiv wait")
        assert kernel.value("calls") == [4, -3]

        out = kernel.run("%quiv cache clear load").stdout
        assert out.strip() == "quiv: forgot 3 cached results of 'load'"
        kernel.run("%quiv run --cache --bar none load(3)\n_ = %quiv wait")
        assert kernel.value("calls") == [4, -3, -3]

        for _ in range(2):  # `%quiv add --cache`: the second job of the same step reuses the first one's result
            kernel.run("%quiv add twice load(2) --once --cache --bar none\n_ = %quiv wait twice")
        assert kernel.value("calls.count(-2)") == 1  # computed once
        assert kernel.value("[j.cached for j in quiv_nb.get_scheduler().history('twice')]") == [True, False]

        cell = "%%quiv run --cache --name summed --bar none\nsummed = sum(range(10))\nsummed\n"
        for _ in range(2):
            kernel.run(cell + "")
            kernel.run("_ = %quiv wait summed")
        assert kernel.value("[j.cached for j in quiv_nb.get_scheduler().history('summed')]") == [True, False]
    finally:
        kernel.shutdown()


def test_store_off_and_usage_errors(tmp_path: Path) -> None:
    kernel = KernelSession()  # the test suite's default: QUIV_NB_STORE=off
    try:
        kernel.run("%load_ext quiv_nb")
        assert "no store (off)" in kernel.run("%quiv store").stdout
        bad = tmp_path / "bad.db"
        bad.write_bytes(b"not a database " * 100)
        cell = kernel.run(f"%quiv store {bad}", allow_error=True)
        assert cell.reply["content"]["ename"] == "UsageError" and "bad.db" in cell.reply["content"]["evalue"]
        assert "no store (off)" in kernel.run("%quiv store").stdout  # unchanged
        good = tmp_path / "good" / "s.db"
        assert kernel.run(f"%quiv store {good}").stdout.strip() == f"quiv: the store is now {str(good)!r}"
        assert good.exists()
        assert kernel.run("%quiv store off").stdout.strip() == "quiv: store off: history ends with the kernel"
        cell = kernel.run("%quiv cache purge", allow_error=True)
        assert cell.reply["content"]["ename"] == "UsageError"
    finally:
        kernel.shutdown()


def _widget_views(kernel: KernelSession, msg_id: str) -> list[str]:
    """The model ids of the widget views displayed under cell `msg_id`, in order."""
    return [
        m["content"]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        for m in kernel.messages(parent=msg_id, msg_type="display_data")
        if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
    ]


def _view_on_disk(path: Path, model_id: str) -> str | None:
    con = sqlite3.connect(path, timeout=WAIT)
    try:
        row = con.execute("SELECT plain FROM views WHERE model_id=?", (model_id,)).fetchone()
    except sqlite3.OperationalError:  # no schema yet
        return None
    finally:
        con.close()
    return row[0] if row else None


def test_the_next_kernel_reopens_the_bars_of_a_kernel_that_died(tmp_path: Path) -> None:
    """SIGKILL while a job runs: once the next kernel loads quiv_nb, the dead kernel's bar models exist
    again, the running job's saying "interrupted (kernel died)" and the finished one's its end, so a page
    that loads then renders both instead of "model not found"."""
    path = tmp_path / "store" / "nb.db"
    kernel = KernelSession(store=str(path))
    try:
        kernel.run(DEFINE)
        done = kernel.run("%quiv run --bar widget load(2)\n_ = %quiv wait")
        running = kernel.run("%quiv run --bar widget forever")
        dash = kernel.run("%quiv")
        (done_model,) = _widget_views(kernel, done.msg_id)
        (running_model,) = _widget_views(kernel, running.msg_id)
        (dash_model,) = _widget_views(kernel, dash.msg_id)
        wait_until(lambda: "done" in (_view_on_disk(path, done_model) or ""))
        wait_until(lambda: "kernel died" in (_view_on_disk(path, running_model) or ""))
        wait_until(lambda: "forever" in (_view_on_disk(path, dash_model) or ""))

        kernel.restart(now=True)  # SIGKILL: no exit handler runs
        since = kernel.mark()
        loaded = kernel.run("%load_ext quiv_nb")
        reopened = kernel.widgets_opened_by(loaded.msg_id, "HTMLModel")  # (each with its layout and style)
        assert set(reopened) == {done_model, running_model, dash_model}, reopened
        states = kernel.widget_states()
        assert "the last state seen, at " in states[dash_model]["value"] and "forever" in states[dash_model]["value"]
        assert "interrupted" in states[running_model]["value"] and "kernel died" in states[running_model]["value"]
        assert "load" in states[done_model]["value"] and "done" in states[done_model]["value"]
        assert kernel.errors_since(since) == []
        assert kernel.run("%load_ext quiv_nb").msg_id and kernel.comms_opened_by(kernel.run("1").msg_id) == []
    finally:
        kernel.shutdown()


def test_a_restart_records_each_bars_and_dashboards_last_rendering(tmp_path: Path) -> None:
    """A clean restart draws "interrupted (kernel restarted)" and the stopped dashboard after the scheduler
    closed its store: those last renderings still reach it, for a page that missed the display updates."""
    path = tmp_path / "store" / "nb.db"
    kernel = KernelSession(store=str(path))
    try:
        kernel.run(DEFINE + "def steady(_stop_event):\n    _stop_event.wait()\n")
        running = kernel.run("%quiv run --bar widget steady")
        dash = kernel.run("%quiv")
        (running_model,) = _widget_views(kernel, running.msg_id)
        (dash_model,) = _widget_views(kernel, dash.msg_id)
        wait_until(lambda: "kernel died" in (_view_on_disk(path, running_model) or ""))
        kernel.restart()  # a shutdown request: quiv_nb's exit handler runs
        assert "interrupted (kernel restarted)" in (_view_on_disk(path, running_model) or "")
        assert "scheduler stopped" in (_view_on_disk(path, dash_model) or "")
        loaded = kernel.run("%load_ext quiv_nb")
        states = kernel.widget_states()
        assert set(kernel.widgets_opened_by(loaded.msg_id, "HTMLModel")) == {running_model, dash_model}
        assert "a snapshot; run <code>%quiv</code>" in states[dash_model]["value"]
    finally:
        kernel.shutdown()
