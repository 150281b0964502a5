"""A job's output in a real kernel: under the cell that added its task, whole lines, in order, budgeted.

Read from the iopub messages a frontend gets, with the adding cell's execute request as parent
header: a one-off job's lines are `stream` messages (stdout / stderr), its failure a display after them
(one headline, the traceback collapsed); a recurring task's output is one area (display_data, then
update_display_data with the same transient display_id) showing its latest run, its failure a second
display under it. Runs on ipykernel 6.29 and 7.x alike (CI runs this file in both
venvs).
"""

from __future__ import annotations

import os
import re

import pytest
from kernel_harness import KernelSession, started_with

pytestmark = pytest.mark.kernel

SETUP = """
%load_ext quiv_nb
import threading, time, logging, sys
import quiv_nb
"""

LINES = 500
JOBS = 20
ELIDED = re.compile(r"^… (\d+) lines elided \(see %quiv log (\S+)\)$")


@pytest.fixture(scope="module")
def kernel():
    yield from started_with(SETUP)


def _areas(kernel: KernelSession, msg_id: str) -> dict[str, str]:
    return {k: v for k, v in kernel.output_areas(msg_id).items() if k.startswith("quiv-out-") and "-d" not in k[9:]}


def test_twenty_concurrent_jobs_lines_arrive_whole_under_their_own_cells_in_order(kernel):
    kernel.run(
        f"q = quiv_nb.Quiv(pool_size={JOBS + 2}); q.start()\n"
        f"gate = threading.Barrier({JOBS}, timeout=60)\n"
        "tids = []\n"
        "def chatty(k):\n"
        "    gate.wait()  # all jobs print at the same time\n"
        f"    for i in range({LINES}):\n"
        "        print(f'J{k:02d} L{i:03d}', 'x' * (k % 7), f'end{k:02d}')\n"
    )
    cells = [
        kernel.run(f"tids.append(q.add_task('chatty{k}', chatty, run_once=True, args=({k},)))").msg_id
        for k in range(JOBS)
    ]
    try:
        # Waiting for the jobs in a cell: once it is idle, every line has arrived (a job's lines are sent
        # before its outcome reaches the scheduler, so before wait_for_task returns). No polling here.
        kernel.run("for t in tids:\n    q.wait_for_task(t, timeout=120)")
        line = re.compile(r"^J(\d\d) L(\d\d\d) x* end(\d\d)$")
        for k, cell in enumerate(cells):
            numbers = []
            messages = kernel.cell_streams(cell)
            assert messages, f"cell {k}: no stream messages"
            for name, text in messages:
                assert name == "stdout"
                assert text.endswith("\n"), f"cell {k}: a message ends mid-line: {text[-30:]!r}"
                for row in text.splitlines():
                    match = line.match(row)
                    assert match, f"cell {k}: not a whole line of a job: {row!r}"
                    assert int(match.group(1)) == int(match.group(3)) == k, f"cell {k} shows {row!r}"
                    numbers.append(int(match.group(2)))
            assert numbers == list(range(LINES)), f"cell {k}: lines missing, repeated or out of order"
            assert len(messages) < LINES / 10  # coalesced: a few messages, not one per line
            assert _areas(kernel, cell) == {}  # a one-off job streams; it has no area
        outputs = kernel.value("sorted(len(j.output.splitlines()) for j in q.get_all_jobs())")
        assert outputs == [LINES] * JOBS
    finally:
        kernel.run("q.shutdown(5)")


def test_job_added_from_cell_b_prints_under_b_after_cell_a_created_the_pool_thread(kernel):
    # One worker thread, created while cell A runs: ipykernel 6 would route its writes to cell A forever.
    a = kernel.run(
        "q1 = quiv_nb.Quiv(pool_size=1); q1.start()\n"
        "def say(word):\n    print('said', word)\n"
        "q1.wait_for_task(q1.add_task('a', say, run_once=True, args=('from-a',)), timeout=30)\n"
    )
    b = kernel.run("q1.add_task('b', say, run_once=True, args=('from-b',))")
    try:
        kernel.wait_for(lambda: "said from-b" in kernel.cell_text(b.msg_id), timeout=30, what="b's line under b")
        assert "said from-a" in kernel.cell_text(a.msg_id)
        assert "from-b" not in kernel.cell_text(a.msg_id)
        assert kernel.value("q1._executor._pool.threads[0].name").startswith("quiv_nb-worker")
    finally:
        kernel.run("q1.shutdown(5)")


def test_failure_lands_under_its_cell_trimmed_while_another_cell_sleeps(kernel):
    adder = kernel.run(
        "go = threading.Event()\n"
        "def explode():\n    go.wait(30)\n    print('about to fail')\n    raise ValueError('boom in job')\n"
        "fid = quiv_nb.get_scheduler().add_task('explode', explode, run_once=True)\n"
    )
    sleeper = kernel.submit("go.set(); time.sleep(2); print('slept')")
    kernel.wait_for(
        lambda: "boom in job" in kernel.cell_text(adder.msg_id), timeout=30, what="the failure in the adding cell"
    )
    slept = kernel.result(sleeper, timeout=30)
    assert kernel.cell_streams(adder.msg_id) == [("stdout", "about to fail\n")]  # no stderr: no pink box
    (shown,) = kernel.messages(parent=adder.msg_id, msg_type="display_data")  # the failure, nothing else
    assert shown["content"]["transient"]["display_id"].endswith("-failure-0")
    failure, page = shown["content"]["data"]["text/plain"], shown["content"]["data"]["text/html"]
    assert failure.startswith("✗ explode failed: ValueError: boom in job\nTraceback (most recent call last)")
    assert 'in explode\n    raise ValueError("boom in job")' in failure.replace("'", '"')
    assert "quiv_nb/execution.py" not in failure and "frame hidden" in failure
    # What a person sees: the headline; the traceback sits in a closed <details> under it.
    headline, details = page.split("<details", 1)
    assert "explode failed: ValueError: boom in job" in headline and "Traceback" not in headline
    assert "<summary" in details and "Traceback (most recent call last)" in details and " open" not in details
    assert "boom" not in kernel.cell_text(slept.msg_id) and "slept" in slept.stdout
    full = "[j for j in quiv_nb.get_scheduler().get_all_jobs() if j.task_name == 'explode'][-1].traceback"
    assert kernel.value(f"'quiv_nb/execution.py' in {full}") is True


def _shown_and_elided(texts: list[str], job_id: str) -> tuple[list[str], int]:
    """The lines a cell shows from stream texts, and the lines its elision markers count."""
    shown, elided = [], 0
    for text in texts:
        assert text.endswith("\n")
        for row in text.splitlines():
            match = ELIDED.match(row)
            if match:
                assert match.group(2) == job_id
                elided += int(match.group(1))
            else:
                shown.append(row)
    return shown, elided


def test_a_flood_is_elided_in_the_cell_but_kept_whole_in_the_job_log(kernel):
    # One write of 5,000 lines: more than a cell gets at once, whatever the machine's speed.
    adder = kernel.run(
        "def flood(n):\n    sys.stdout.write(''.join(f'flood line {i}\\n' for i in range(n)))\n"
        "jid = quiv_nb.get_scheduler().wait_for_task(\n"
        "    quiv_nb.get_scheduler().add_task('flood', flood, run_once=True, args=(5000,)), timeout=60).job_id\n"
    )
    job_id = kernel.value("jid")
    texts = [text for _, text in kernel.cell_streams(adder.msg_id, "stdout")]
    lines = "".join(f"flood line {i}\n" for i in range(4000, 5000))
    assert texts == [f"… 4000 lines elided (see %quiv log {job_id})\n" + lines]
    assert kernel.value("quiv_nb.get_scheduler().get_job(jid).output.splitlines()") == [
        f"flood line {i}" for i in range(5000)
    ]


def test_a_print_loop_flood_shows_each_line_at_most_once_and_counts_the_rest(kernel):
    total = 30_000
    adder = kernel.run(
        "def pflood(n):\n    for i in range(n):\n        print('pflood line', i)\n"
        "pjid = quiv_nb.get_scheduler().wait_for_task(\n"
        f"    quiv_nb.get_scheduler().add_task('pflood', pflood, run_once=True, args=({total},)), timeout=120).job_id\n"
    )
    job_id = kernel.value("pjid")
    texts = [text for _, text in kernel.cell_streams(adder.msg_id, "stdout")]
    shown, elided = _shown_and_elided(texts, job_id)
    numbers = [int(row.split()[-1]) for row in shown]
    assert numbers == sorted(set(numbers)) and numbers[-1] == total - 1  # in order, none twice, the last there
    assert len(shown) + elided == total  # every line shown or counted
    assert len(texts) < 200  # coalesced
    assert kernel.value("len(quiv_nb.get_scheduler().get_job(pjid).output.splitlines())") == total


def test_recurring_task_shows_its_latest_run_in_one_area_and_counts_repeated_failures(kernel):
    adder = kernel.run(
        "runs = []\n"
        "def flaky():\n    runs.append(1)\n    print('run', len(runs))\n    raise KeyError('same')\n"
        "rid = quiv_nb.get_scheduler().add_task('flaky', flaky, interval=0.3)\n"
    )
    try:
        kernel.wait_for(
            lambda: "the same failure 3 runs in a row" in kernel.cell_text(adder.msg_id), timeout=30, what="count 3"
        )
        areas = _areas(kernel, adder.msg_id)
        (lines_id,) = [k for k in areas if not k.endswith("-failure")]
        failure = areas[f"{lines_id}-failure"]  # the failure's own display, under the lines
        assert failure.startswith("✗ flaky failed: KeyError: 'same'  [the same failure ")
        text = areas[lines_id] + failure
        assert text.count("Traceback (most recent call last)") == 1
        assert text.count("KeyError: 'same'") == 2  # the headline and the traceback's last line
        assert text.startswith("run 3\n")  # the latest run's output only, not every run's
        assert kernel.cell_streams(adder.msg_id) == []  # a recurring task does not stream
    finally:
        kernel.run("quiv_nb.get_scheduler().remove_task(rid)")


def test_a_jobs_lines_arrive_before_its_bar_turns_final(kernel):
    kernel.run("def counted():\n    for i in range(300):\n        print('counted', i)\n")
    adder = kernel.run("%quiv run counted")  # a widget bar
    # The bar's display (its widget view), found in the adding cell; the job may have ended (and the
    # widget models closed) by now, so the display is looked up, not the still-open widgets.
    (display_id,) = {
        m["content"]["transient"]["display_id"]
        for m in kernel.messages(parent=adder.msg_id, msg_type="display_data")
        if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
    }

    def final_at() -> int | None:
        # The bar turns final when its display is replaced by the static rendering of the completed bar.
        for i, m in enumerate(kernel.messages()):
            content = m["content"]
            if (
                m["msg_type"] == "update_display_data"
                and content.get("transient", {}).get("display_id") == display_id
                and "quiv-static quiv-completed" in content["data"].get("text/html", "")
            ):
                return i
        return None

    final = kernel.wait_for(final_at, timeout=30, what="the bar's final state")
    log = kernel.messages()
    streams = [i for i, m in enumerate(log) if m["msg_type"] == "stream" and "counted" in m["content"]["text"]]
    assert max(streams) < final  # every line was in the cell before the bar said the job completed
    text = "".join(log[i]["content"]["text"] for i in streams)
    assert text == "".join(f"counted {i}\n" for i in range(300))


def test_rerunning_a_quiv_run_cell_sends_the_running_jobs_further_output_to_the_new_cell(kernel):
    kernel.run("step = threading.Event()\ndef talker():\n    print('first')\n    step.wait(30)\n    print('second')\n")
    first = kernel.run("%quiv run talker --bar none")
    kernel.wait_for(lambda: "first\n" in kernel.cell_text(first.msg_id), timeout=30, what="the first line")
    again = kernel.run("%quiv run talker --bar none")  # the same cell again: re-attaches
    assert "still running" in kernel.cell_text(again.msg_id)
    kernel.run("step.set()")
    kernel.wait_for(
        lambda: ("stdout", "second\n") in kernel.cell_streams(again.msg_id), timeout=30, what="the line in the new cell"
    )
    assert "second" not in kernel.cell_text(first.msg_id)


def test_display_from_a_job_goes_to_its_cell_and_a_rerun_replaces_it(kernel):
    adder = kernel.run(
        "from IPython.display import display, HTML\n"
        "n = [0]\n"
        "def show():\n    n[0] += 1\n    display(HTML(f'<b>run {n[0]}</b>'))\n"
        "sid = quiv_nb.get_scheduler().add_task('show', show, interval=0.3)\n"
    )
    try:
        kernel.wait_for(
            lambda: any("run 3" in str(m["content"].get("data")) for m in kernel.messages(parent=adder.msg_id)),
            timeout=30,
            what="third run's display",
        )
    finally:
        kernel.run("quiv_nb.get_scheduler().remove_task(sid)")
    shown = [m for m in kernel.messages(parent=adder.msg_id) if "text/html" in m["content"].get("data", {})]
    assert [m["msg_type"] for m in shown[:3]] == ["display_data", "update_display_data", "update_display_data"]
    assert len({m["content"]["transient"]["display_id"] for m in shown}) == 1


def test_the_kernel_runs_the_ipykernel_line_ci_asked_for(kernel):
    """CI runs this file in a second venv with ipykernel 6.29 and sets QUIV_EXPECT_IPYKERNEL=6 there."""
    expected = os.environ.get("QUIV_EXPECT_IPYKERNEL")
    version = kernel.value("__import__('ipykernel').__version__")
    if expected:
        assert version.split(".")[0] == expected, version
    assert int(version.split(".")[0]) >= 6


def test_live_plot_idiom_in_a_job_updates_one_display_and_never_clears_the_cell(kernel):
    adder = kernel.run(
        "from IPython.display import display, clear_output, HTML\n"
        "def live():\n"
        "    for i in range(5):\n"
        "        clear_output(wait=True)\n"
        "        display(HTML(f'<i>frame {i}</i>'))\n"
        "lid = quiv_nb.get_scheduler().add_task('live', live, run_once=True)\n"
    )
    kernel.wait_for(
        lambda: any("frame 4" in str(m["content"].get("data")) for m in kernel.messages(parent=adder.msg_id)),
        timeout=30,
        what="the last frame",
    )
    shown = [m for m in kernel.messages(parent=adder.msg_id) if "text/html" in m["content"].get("data", {})]
    assert shown[0]["msg_type"] == "display_data"
    assert {m["msg_type"] for m in shown[1:]} <= {"update_display_data"}
    assert len({m["content"]["transient"]["display_id"] for m in shown}) == 1
    assert kernel.messages(parent=adder.msg_id, msg_type="clear_output") == []


def test_a_task_added_by_a_job_prints_under_the_jobs_cell(kernel):
    adder = kernel.run(
        "def child():\n    print('child speaking')\n"
        "def parent():\n"
        "    quiv_nb.get_scheduler().add_task('child', child, run_once=True)\n"
        "    print('parent speaking')\n"
        "quiv_nb.get_scheduler().add_task('parent', parent, run_once=True)\n"
    )
    other = kernel.run("time.sleep(0.5)")
    kernel.wait_for(lambda: "child speaking" in kernel.cell_text(adder.msg_id), timeout=30, what="the child's line")
    assert "parent speaking" in kernel.cell_text(adder.msg_id)
    assert "speaking" not in kernel.cell_text(other.msg_id)


def test_a_matplotlib_figure_shown_from_a_job_lands_under_its_cell(kernel):
    adder = kernel.run(
        "import matplotlib.pyplot as plt\n"
        "def plot():\n"
        "    fig, ax = plt.subplots(figsize=(2, 1))\n"
        "    ax.plot([0, 1, 0])\n"
        "    plt.show()  # the inline backend displays the figure from the job's thread\n"
        "quiv_nb.get_scheduler().add_task('plot', plot, run_once=True)\n"
    )
    other = kernel.submit("time.sleep(1); print('other')")
    kernel.wait_for(
        lambda: any("image/png" in m["content"].get("data", {}) for m in kernel.messages(parent=adder.msg_id)),
        timeout=30,
        what="the figure under the adding cell",
    )
    other_cell = kernel.result(other, timeout=30)
    assert not any("image/png" in m["content"].get("data", {}) for m in other_cell.messages)


def test_a_plain_quiv_in_a_kernel_installs_the_kernel_hooks_without_the_extension():
    """No `%load_ext`, no `get_scheduler()`: importing quiv_nb registers nothing, and the first `Quiv()`
    installs the kernel package's hooks, so its job's print lands under the adding cell."""
    session = KernelSession()
    try:
        session.run("import sys, quiv_nb")
        assert session.value("[m for m in sys.modules if m.startswith('quiv_nb.kernel')]") == []
        session.run("q = quiv_nb.Quiv(); q.start()")
        assert session.value("'quiv_nb.kernel' in sys.modules and quiv_nb.hooks.host() is not None") is True
        cell = session.run("tid = q.add_task('hello', lambda: print('hello from a plain Quiv'), run_once=True)").msg_id
        session.run("q.wait_for_task(tid, timeout=30)")
        assert "hello from a plain Quiv" in "".join(text for _, text in session.cell_streams(cell))
        session.run("q.shutdown(5)")
    finally:
        session.shutdown()
