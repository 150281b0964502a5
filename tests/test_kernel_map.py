"""`%quiv map` and `%quiv add ... --map` in a real kernel: one bar in the cell, `x = %quiv wait` gives the list,
a failed map raises with the partial list on the exception, usage errors are one line."""

from __future__ import annotations

import pytest
from kernel_harness import KernelSession, started_with

pytestmark = pytest.mark.kernel

SETUP = """
%load_ext quiv_nb
import logging, threading, quiv_nb
from IPython.display import HTML, display

def square(x, _stop_event):
    _stop_event.wait(0.01)  # a little work per item, so the bar is seen running
    return x * x

def invert(x):
    return 1 / x

def scaled(x, factor=1):
    return x * factor

def source():
    return ['a', 'bb', 'ccc']
"""


@pytest.fixture(scope="module")
def kernel():
    yield from started_with(SETUP)


def widget_views(kernel: KernelSession, msg_id: str) -> list[str]:
    return [
        m["content"]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        for m in kernel.messages(parent=msg_id, msg_type="display_data")
        if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
    ]


def test_map_shows_one_bar_and_wait_returns_the_list(kernel):
    cell = kernel.run("%quiv map square range(60) --workers 3 --bar widget")
    assert len(widget_views(kernel, cell.msg_id)) == 1  # one job, one bar, however many items
    assert not [m for m in cell.messages if m["msg_type"] == "execute_result"]
    shown = [
        m["content"]["transient"]["display_id"]
        for m in kernel.messages(parent=cell.msg_id, msg_type="display_data")
        if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
    ]

    def final() -> str | None:
        for m in kernel.messages(msg_type="update_display_data"):
            data = m["content"]["data"]
            if m["content"]["transient"]["display_id"] == shown[0] and "quiv-completed" in data.get("text/html", ""):
                return data["text/plain"]
        return None

    kernel.run("x = %quiv wait --timeout 60")
    assert kernel.value("x") == [i * i for i in range(60)]
    text = kernel.wait_for(final, 20, "the bar's final rendering")
    assert "60/60" in text and "failed=0" in text
    assert kernel.value("quiv_nb.get_scheduler().get_job(_quiv_last_job).task_name") == "square"


def test_a_failed_map_raises_at_wait_with_the_partial_list_on_the_exception(kernel):
    kernel.run("%quiv map invert [1, 0, 4] --name inverses --bar none")
    cell = kernel.run("y = %quiv wait", allow_error=True)
    assert cell.error["ename"] == "JobFailedError"
    assert cell.error["evalue"].startswith("1 of 3 items failed; the first, item 1: ZeroDivisionError")
    caught = kernel.run(
        "try:\n    %quiv wait inverses\nexcept quiv_nb.JobFailedError as exc:\n"
        "    print([type(r).__name__ if isinstance(r, Exception) else r for r in exc.results])"
    )
    assert caught.stdout.strip() == "[1.0, 'ZeroDivisionError', 0.25]"


def test_keyword_arguments_and_fail_fast(kernel):
    kernel.run("%quiv map scaled(factor=10) [1, 2, 3] --bar none")
    kernel.run("z = %quiv wait")
    assert kernel.value("z") == [10, 20, 30]
    kernel.run("%quiv map invert [0, 1, 2] --workers 1 --fail-fast --bar none")
    kernel.run("try:\n    %quiv wait\nexcept quiv_nb.JobFailedError as exc:\n    partial = exc.results")
    assert kernel.value("partial[1:]") == [None, None]


def test_every_line_items_print_on_every_runner_lands_under_the_map_cell_not_one_running_meanwhile(kernel):
    kernel.run(
        "go, seen, seen_lock = threading.Event(), set(), threading.Lock()\n"
        "def shout(i):\n"
        "    with seen_lock:\n"
        "        seen.add(threading.get_ident())\n"
        "    go.wait(60)\n"
        "    print('item', i, 'done')\n"
        "    if i in (0, 299):  # a few: stdout and stderr alternating line by line would be elided in the cell\n"
        "        logging.getLogger('maptest').warning('logged %d', i)\n"
    )
    mapped = kernel.run("%quiv map shout range(300) --workers 3 --bar none")
    kernel.wait_for(lambda: kernel.value("len(seen)") == 3, 30, "three runner threads holding items")
    meanwhile = kernel.run("go.set()\nout = %quiv wait --timeout 60")  # the items print while this cell runs
    stdout = "".join(text for _, text in kernel.cell_streams(mapped.msg_id, "stdout"))
    stderr = "".join(text for _, text in kernel.cell_streams(mapped.msg_id, "stderr"))
    assert sorted(stdout.splitlines()) == sorted(f"item {i} done" for i in range(300))
    assert sorted(stderr.splitlines()) == ["logged 0", "logged 299"]
    assert "item" not in kernel.cell_text(meanwhile.msg_id) and "logged" not in kernel.cell_text(meanwhile.msg_id)
    assert kernel.value("len(quiv_nb.get_scheduler().get_job(_quiv_last_job).output.splitlines())") == 302


def test_display_from_items_on_every_runner_lands_under_the_map_cell_not_one_running_meanwhile(kernel):
    kernel.run(
        "ready, go_show = threading.Barrier(3, timeout=30), threading.Event()\n"
        "def show(i):\n"
        "    ready.wait()  # one item on each of three runner threads\n"
        "    go_show.wait(60)\n"
        "    display(HTML(f'<i>item {i}</i>'))\n"
    )
    mapped = kernel.run("%quiv map show range(3) --workers 3 --bar none")
    meanwhile = kernel.run("go_show.set()\nshown = %quiv wait --timeout 60")  # the items display while this runs
    html = [m["content"]["data"]["text/html"] for m in kernel.messages(parent=mapped.msg_id, msg_type="display_data")]
    assert sorted(html) == [f"<i>item {i}</i>" for i in range(3)]
    assert not [m for m in kernel.messages(parent=meanwhile.msg_id) if m["msg_type"] == "display_data"]


def test_positional_arguments_follow_the_item(kernel):
    kernel.run("%quiv map scaled(10) [1, 2, 3] --bar none")
    kernel.run("w = %quiv wait")
    assert kernel.value("w") == [10, 20, 30]


def test_rerunning_a_map_cell_while_its_map_runs_shows_that_map_again_and_new_starts_another(kernel):
    kernel.run("hold = threading.Event()\ndef held(x, _stop_event):\n    hold.wait(30)\n    return x\n")
    line = "%quiv map held range(4) --workers 2 --bar none"
    first = kernel.run(line)
    first_job = kernel.value("_quiv_last_job")
    again = kernel.run(line)  # the same cell again: re-attaches
    assert "'held' from this cell is still running" in again.stdout and first_job[:8] in again.stdout
    assert kernel.value("_quiv_last_job") == first_job
    other = kernel.run(line.replace("--bar none", "--bar none --new"))
    second_job = kernel.value("_quiv_last_job")
    assert second_job != first_job and "still running" not in other.stdout
    kernel.run("hold.set()")
    assert kernel.value(f"quiv_nb.get_scheduler().wait_for_job({first_job!r}, 30).result") == [0, 1, 2, 3]
    assert kernel.value(f"quiv_nb.get_scheduler().wait_for_job({second_job!r}, 30).result") == [0, 1, 2, 3]
    assert "still running" not in first.stdout


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("%quiv map square 42", "iterable 1 must be iterable"),
        ("%quiv map square nope", "cannot evaluate ITEMS `nope`: NameError"),
        ("%quiv map scaled(1, 2) [1]", "FUNC `scaled(1, 2)`: scaled(x, factor=1) cannot take an item followed by"),
        ("%quiv map square [1] --workers 0", "--workers"),
    ],
)
def test_bad_map_lines_are_one_line_usage_errors(kernel, line, says):
    cell = kernel.run(line, allow_error=True)
    assert cell.error["ename"] == "UsageError" and says in cell.error["evalue"]


def test_add_with_map_calls_the_handler_per_upstream_item(kernel):
    kernel.run("%quiv add src source --every 1h --delay 1h --bar none")
    cell = kernel.run("%quiv add doubled scaled(factor=2) --after src --map --bar none")
    assert "runs after src on each item of its result" in cell.stdout
    kernel.run(
        "_q = quiv_nb.get_scheduler()\n_ids = {t.task_name: t.task_id for t in _q.get_all_tasks()}\n"
        "_q.run_task_immediately(_ids['src'])"
    )
    code = "[j.result for j in _q.get_all_jobs(task_id=_ids['doubled']) if j.status.is_final]"
    assert kernel.wait_for(lambda: kernel.value(code), 30, "the mapped job") == [["aa", "bbbb", "cccccc"]]
    kernel.run("_q.remove_task(_ids['src'], cascade=True)")
