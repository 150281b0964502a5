"""The magics in a real kernel, read from the iopub messages a frontend would get.

Background cells with cell semantics, identity keyed to the notebook cell (`cellId` in the
execute request's metadata, as JupyterLab and Notebook 7 send it), re-attaching to a running
job, `x = %quiv wait` results and failures, FUNC(args), job handles, suggestions, help, and the
one-line message when a wait is interrupted.
"""

from __future__ import annotations

import uuid

import pytest
from kernel_harness import Cell, KernelSession, started_with

pytestmark = pytest.mark.kernel

SETUP = """
%load_ext quiv_nb
import asyncio, inspect, threading, time
import quiv_nb

def ticker(_stop_event, n=5, pause=0.2):
    for i in range(n):
        print('tick', i, flush=True)
        if _stop_event.wait(pause):
            return 'stopped'
    return 'ok'

def add_up(a, b=0):
    return a + b

def flaky():
    raise ValueError('source returned no rows')

def quick():
    return 42

def supports(name):
    return name in inspect.signature(quiv_nb.get_scheduler().add_task).parameters
"""


@pytest.fixture(scope="module")
def kernel():
    yield from started_with(SETUP)


@pytest.fixture(autouse=True)
def _clean_tasks(kernel):
    yield
    kernel.run(
        "for _t in quiv_nb.get_scheduler().get_all_tasks():\n"
        "    try: quiv_nb.get_scheduler().remove_task(_t.task_id, cascade=True)\n"
        "    except quiv_nb.TaskNotFoundError: pass  # removed with its upstream",
        timeout=30,
    )


def run_in_cell(kernel: KernelSession, code: str, cell_id: str | None, allow_error: bool = False) -> Cell:
    """Run `code` as the notebook cell `cell_id` (sent as `cellId` in the request's metadata)."""
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False}
    msg = kernel.kc.session.msg("execute_request", content, metadata={"cellId": cell_id} if cell_id else {})
    kernel.kc.shell_channel.send(msg)
    cell = kernel.result(msg["header"]["msg_id"])
    if not allow_error:
        assert cell.ok, cell.error
    return cell


def names(kernel: KernelSession) -> list[str]:
    return kernel.value("[t.task_name for t in quiv_nb.get_scheduler().get_all_tasks()]")


def results_of(cell: Cell) -> list[dict]:
    return [m["content"]["data"] for m in cell.messages if m["msg_type"] == "execute_result"]


def widget_views(cell: Cell) -> list[str]:
    """Model ids of the widget views a cell displayed."""
    views = []
    for m in cell.messages:
        if m["msg_type"] in ("display_data", "update_display_data", "execute_result"):
            view = m["content"]["data"].get("application/vnd.jupyter.widget-view+json")
            if view:
                views.append(view["model_id"])
    return views


# ---------------------------------------------------------------------- cell semantics


def test_cell_run_acts_on_the_notebook_namespace_like_a_rerun(kernel):
    kernel.run("count = 0\ndoomed = 'x'\ndata = [1, 2, 3]")
    kernel.run(
        "%%quiv run --name sem --bar none\n"
        "count += 1\n"
        "del doomed\n"
        "latest = job_id\n"
        "squares = [progress(step=i, total=3) or i * i for i in data]\n"
        "def helper():\n"
        "    return job_id\n"
        "owner = helper()\n"
        "count * 10\n"
    )
    kernel.run("r = %quiv wait sem")
    jid = kernel.value("quiv_nb.get_scheduler().get_all_jobs()[-1].job_id")
    assert kernel.value("(r, count, 'doomed' in dir(), squares)") == (10, 1, False, [1, 4, 9])
    assert kernel.value("(latest, owner)") == (jid, jid)
    assert kernel.value("[n for n in ('progress', 'stop_event', 'job_id') if n in dir()]") == []


def test_every_updates_the_namespace_on_each_run(kernel):
    kernel.run("ticks = 0\nlast_ids = []")
    kernel.run("%%quiv every 0.2s --name counter --bar none\nticks += 1\nlast_ids = last_ids + [job_id]")
    # `%quiv wait counter` returns the latest job at once; the API waits for each next one.
    kernel.run(
        "_tid = quiv_nb.magics.QuivMagics._task_id('counter')\n"
        "for _ in range(3):\n    quiv_nb.get_scheduler().wait_for_task(_tid, timeout=20)"
    )
    ticks, ids = kernel.value("(ticks, last_ids)")
    assert ticks >= 3 and len(set(ids)) == len(ids) == ticks
    assert "failed" not in kernel.value("[j.status.value for j in quiv_nb.get_scheduler().get_all_jobs()]")


def test_top_level_await_in_a_cell_body(kernel):
    kernel.run("%%quiv run --name aw --bar none\nawait asyncio.sleep(0.01)\nawaited = 'yes'\nawaited + '!'")
    kernel.run("x = %quiv wait aw")
    assert kernel.value("(x, awaited)") == ("yes!", "yes")


# ---------------------------------------------------------------------- identity


def test_a_cell_without_name_is_keyed_to_its_notebook_cell_and_named_from_its_first_line(kernel):
    cid, other = str(uuid.uuid4()), str(uuid.uuid4())
    run_in_cell(kernel, "%%quiv every 30 --bar none\nversion = 1", cid)
    run_in_cell(kernel, "%%quiv every 30 --bar none\nversion = 2  # edited", cid)
    assert names(kernel).count("cell-version_1") == 1 and "cell-version_2" not in names(kernel)  # kept while edited
    kernel.run("%quiv wait cell-version_1 --timeout 10")
    assert kernel.value("version") == 2
    run_in_cell(kernel, "%%quiv every 30 --bar none\nversion = 1", other)  # same first line, another cell
    assert sorted(n for n in names(kernel) if n.startswith("cell-")) == ["cell-version_1", "cell-version_1-2"]
    # Naming the task later replaces what the same cell started under its readable name.
    run_in_cell(kernel, "%%quiv every 30 --name named --bar none\nversion = 4", cid)
    assert "cell-version_1" not in names(kernel) and "named" in names(kernel)
    kernel.run("%quiv remove named\n%quiv remove cell-version_1-2")


def test_without_a_cell_id_the_body_is_the_key(kernel):
    kernel.run("%%quiv every 30 --bar none\nbody = 1")
    kernel.run("%%quiv every 30 --bar none\nbody = 1")
    kernel.run("%%quiv every 30 --bar none\nbody = 2")
    assert sorted(n for n in names(kernel) if n.startswith("cell-body")) == ["cell-body_1", "cell-body_2"]


def test_log_all_lists_every_run_of_a_task_newest_first(kernel):
    kernel.run("_runs = iter(range(1, 100))\ndef counted():\n    print('run', next(_runs))")
    kernel.run("%quiv add counted counted --every 0.2 --bar none")
    done = "len([j for j in quiv_nb.get_scheduler().get_all_jobs(status='completed') if j.task_name == 'counted'])"
    kernel.wait_for(lambda: kernel.value(done) >= 3, 20, "three runs of counted")
    kernel.run("%quiv remove counted")
    latest = kernel.run("%quiv log counted").stdout
    every = kernel.run("%quiv log counted --all").stdout
    assert latest.count("run ") == 1
    runs = [int(line.split()[1]) for line in every.splitlines() if line.startswith("run ")]
    assert len(runs) >= 2 and runs == sorted(runs, reverse=True), every


def test_rerunning_a_run_cell_reattaches_to_its_running_job(kernel):
    cid = str(uuid.uuid4())
    first = run_in_cell(kernel, "jid = %quiv run ticker(n=200, pause=0.05) --bar widget", cid)
    jid = kernel.value("str(jid)")
    again = run_in_cell(kernel, "jid = %quiv run ticker(n=200, pause=0.05) --bar widget", cid)
    assert "still running" in again.stdout and jid[:8] in again.stdout and "--new" in again.stdout
    assert kernel.value("str(jid)") == jid
    assert widget_views(first) and widget_views(again) == widget_views(first)[:1]  # the same live bar
    assert kernel.value("len([j for j in quiv_nb.get_scheduler().get_all_jobs() if j.status == 'running'])") == 1
    run_in_cell(kernel, "jid2 = %quiv run ticker(n=200, pause=0.05) --bar none --new", cid)
    assert kernel.value("str(jid2) != str(jid)")
    assert kernel.value("len([j for j in quiv_nb.get_scheduler().get_all_jobs() if j.status == 'running'])") == 2


def test_rerunning_an_edited_run_cell_replaces_its_job(kernel):
    cid = str(uuid.uuid4())
    run_in_cell(kernel, "%%quiv run --bar none\nwhile not stop_event.wait(0.05):\n    pass\n'first'", cid)
    same = run_in_cell(kernel, "%%quiv run --bar none\nwhile not stop_event.wait(0.05):\n    pass\n'first'", cid)
    assert "still running" in same.stdout
    edited = run_in_cell(kernel, "%%quiv run --bar none\n'second'", cid)
    assert "the cell changed" in edited.stdout
    kernel.run("second = %quiv wait")
    assert kernel.value("second") == "second"
    name = "cell-while_not_stop_event_wait_0"  # from the body's first line
    jobs = "quiv_nb.get_scheduler().get_all_jobs()"
    statuses = kernel.value(f"[j.status.value for j in {jobs} if j.task_name == {name!r}]")
    assert statuses == ["cancelled", "completed"]


# ---------------------------------------------------------------------- results, failures, handles


def test_wait_returns_the_result(kernel):
    kernel.run("jid = %quiv run add_up(2, b=40) --bar none")
    kernel.run("x = %quiv wait")
    assert kernel.value("x") == 42
    assert results_of(kernel.run("%quiv wait jid")) == [{"text/plain": "42"}]


def test_waiting_on_a_failed_job_fails_the_cell_with_the_jobs_error(kernel):
    kernel.run("%quiv run flaky --bar none")
    cell = kernel.run("%quiv wait flaky", allow_error=True)
    assert cell.error["ename"] == "ValueError" and cell.error["evalue"] == "source returned no rows"
    errors = [m for m in cell.messages if m["msg_type"] == "error"]
    text = "\n".join(errors[0]["content"]["traceback"])
    assert "in flaky" in text and "raise ValueError" in text
    assert "quiv_nb" not in text.replace("quiv_nb and standard-library frames left out", "")
    caught = kernel.run("try:\n    %quiv wait flaky\nexcept ValueError as exc:\n    print('caught', exc)")
    assert "caught source returned no rows" in caught.stdout


def test_a_failing_cell_body_raises_at_its_own_line(kernel):
    kernel.run("%%quiv run --name boom --bar none\nx = 1\nraise KeyError('gone')")
    cell = kernel.run("%quiv wait boom", allow_error=True)
    assert cell.error["ename"] == "KeyError"
    (error,) = [m for m in cell.messages if m["msg_type"] == "error"]
    text = "\n".join(error["content"]["traceback"])
    assert "line 3" in text and "raise KeyError('gone')" in text and "cellbody" not in text


def test_waiting_on_a_cancelled_job_raises_a_clear_error(kernel):
    kernel.run("%quiv run ticker(n=200, pause=0.05) --bar none")
    kernel.run("%quiv cancel ticker")
    cell = kernel.run("%quiv wait ticker --timeout 20", allow_error=True)
    assert cell.error["ename"] == "JobCancelledError"
    errors = [m for m in cell.messages if m["msg_type"] == "error"]
    assert errors[0]["content"]["traceback"] == [f"JobCancelledError: {cell.error['evalue']}"]
    assert "was cancelled" in cell.error["evalue"]


def test_a_job_handle_shows_the_live_bar_in_a_later_cell_and_nothing_in_its_own(kernel):
    start = kernel.run("jid = %quiv run ticker(n=200, pause=0.05) --bar widget")
    assert not results_of(start)
    own_views = widget_views(start)
    later = kernel.run("jid")
    assert widget_views(later) == own_views[:1]
    assert kernel.value("isinstance(jid, str) and quiv_nb.get_scheduler().get_job(jid).job_id == jid")
    unassigned = kernel.run("%quiv run quick --bar none")
    assert not results_of(unassigned) and not [m for m in unassigned.messages if m["msg_type"] == "display_data"]
    kernel.run("answer = %quiv wait")
    assert kernel.value("answer") == 42


# ---------------------------------------------------------------------- arguments


def test_func_arguments_are_evaluated_in_the_notebook_when_the_line_runs(kernel):
    kernel.run("n = 5\ndays = []\ndef report(day, times=1):\n    days.extend([day] * times)")
    kernel.run("%quiv run add_up(n, b=n * 2) --bar none\nn = 100")
    kernel.run("got = %quiv wait")
    assert kernel.value("got") == 15
    kernel.run('%quiv add nightly report(day="mon", times=2) --every 1d --bar none')
    kernel.run("%quiv wait nightly --timeout 20")
    assert kernel.value("days") == ["mon", "mon"]


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("%quiv run add_up(1, b=)", "cannot read FUNC `add_up(1, b=)`"),
        ("%quiv run add_up(nope)", "cannot evaluate the arguments of `add_up(nope)`: NameError"),
        ("%quiv run add_up(1, 2, 3)", "cannot be called with"),
        ("%quiv run add_up(1", "unbalanced parentheses"),
    ],
)
def test_a_bad_func_expression_is_a_usage_error_showing_it(kernel, line, fragment):
    cell = kernel.run(line, allow_error=True)
    assert cell.error["ename"] == "UsageError" and fragment in cell.error["evalue"]


def test_the_magics_message_never_glues_onto_the_jobs_output(kernel):
    cell = kernel.run("%%quiv every 0.1s --name glue --bar none\nprint('polled', job_id)")

    def polls() -> set[str]:  # a recurring task's output is one area showing its latest run: count distinct runs
        updates = [
            m["content"]["data"].get("text/plain", "")
            for m in kernel.messages(parent=cell.msg_id)
            if m["msg_type"] in ("display_data", "update_display_data")
        ]
        return {line for text in updates for line in text.splitlines() if line.startswith("polled ")}

    kernel.wait_for(lambda: len(polls()) >= 3, timeout=20, what="three polls")
    kernel.run("%quiv remove glue")
    text = "".join(m["content"]["text"] for m in kernel.messages(parent=cell.msg_id, msg_type="stream"))
    lines = text.splitlines()
    assert lines[0].startswith("quiv: task 'glue' runs this cell every 100ms")
    assert all(line.startswith("quiv:") for line in lines), lines  # the job's lines are in their own area
    assert not any("quiv:" in line[1:] for line in lines)


# ---------------------------------------------------------------------- help, suggestions, interrupts, cancel, log


def test_typos_get_a_suggestion_and_help_is_generated(kernel):
    cell = kernel.run("%quiv ad x quick", allow_error=True)
    assert "unknown subcommand 'ad' for %quiv — did you mean 'add'?" in cell.error["evalue"]
    overview = kernel.run("%quiv help").stdout
    assert kernel.run("print(quiv_nb.magics.QuivMagics.quiv.__doc__)").stdout == overview
    for usage in ("%quiv add ", "%quiv run ", "%quiv log ", "%%quiv every ", "%%quiv run "):
        assert usage in overview
    assert "--cron EXPR" in kernel.run("%quiv help add").stdout
    assert "--after TASK" in kernel.run("%quiv add --help").stdout
    page = kernel.run("%quiv?").reply["content"]["payload"][0]["data"]["text/plain"]
    assert "%%quiv every" in page and "FUNC is a function" in page


def test_interrupting_a_wait_prints_one_line_and_the_job_keeps_running(kernel):
    adder = kernel.run("%quiv add sleeper ticker(n=100, pause=0.1) --once --bar none")
    msg_id = kernel.submit("print('waiting', flush=True)\n%quiv wait sleeper")
    kernel.wait_for(lambda: "waiting" in kernel.stream_text(), timeout=20, what="the wait to start")
    # A new tick printed after "waiting" shows time passing while the cell sits in the wait.
    ticks = kernel.stream_text().count("tick")
    kernel.wait_for(lambda: kernel.stream_text().count("tick") > ticks + 1, timeout=20, what="more ticks")
    kernel.interrupt()
    cell = kernel.result(msg_id, timeout=20)
    assert cell.error["ename"] == "KeyboardInterrupt"
    (error,) = [m for m in cell.messages if m["msg_type"] == "error"]
    (line,) = error["content"]["traceback"]
    job_id = kernel.value("[j.job_id for j in quiv_nb.get_scheduler().get_all_jobs() if j.task_name == 'sleeper'][-1]")
    assert f"job {job_id[:8]} of 'sleeper' keeps running" in line and f"%quiv cancel {job_id[:8]}" in line
    assert kernel.value(f"quiv_nb.get_scheduler().get_job('{job_id}').status.value") == "running"
    assert adder.ok


def test_cancel_says_at_once_when_the_handler_cannot_see_it(kernel):
    kernel.run("def stubborn():\n    time.sleep(1.5)\n    return 'done'")
    kernel.run("%quiv run stubborn --bar none")
    out = kernel.run("%quiv cancel stubborn").stdout
    if "cancel requested" in out and not kernel.value("hasattr(quiv_nb.get_scheduler(), 'can_cancel')"):
        pytest.skip("this scheduler cannot tell yet whether a handler observes its stop event")
    assert "cannot be stopped" in out and "_stop_event" in out


def test_log_prints_the_jobs_output_and_traceback(kernel):
    kernel.run("%quiv run ticker(n=2, pause=0.01) --bar none")
    kernel.run("%quiv wait ticker")
    output = kernel.value("quiv_nb.get_scheduler().get_all_jobs()[-1].output")
    log = kernel.run("%quiv log ticker").stdout
    assert "completed" in log and (output.strip() in log if output else "(no output captured)" in log)
    kernel.run("%quiv run flaky --bar none")
    kernel.run("try:\n    %quiv wait flaky\nexcept ValueError:\n    pass")
    failed = kernel.run("%quiv log flaky").stdout
    assert "Traceback (most recent call last)" in failed and "ValueError: source returned no rows" in failed


# ---------------------------------------------------------------------- flags the scheduler grows (issues 12, 13)


def test_the_scheduler_takes_every_flag_the_magics_pass(kernel):
    """The magics pass --after/--cron/--at/--tz/--notify as add_task keywords (a missing one would be a UsageError)."""
    assert kernel.value("[k for k in ('after', 'cron', 'at', 'timezone', 'notify') if not supports(k)]") == []


def test_tz_needs_cron_or_at(kernel):
    cell = kernel.run("%quiv add t quick --every 5 --tz Europe/Paris", allow_error=True)
    assert cell.error["ename"] == "UsageError" and "--tz ZONE applies to --cron or --at" in cell.error["evalue"]


def test_calendar_and_pipeline_flags_reach_add_task(kernel):
    kernel.run("%quiv add extract quick --every 1h --bar none")
    kernel.run("%quiv add clean quick --every 1h --bar none")
    kernel.run("%quiv add transform add_up(1) --after extract,clean --bar none")
    kernel.run("%quiv add morning quick --cron '0 9 * * 1-5' --tz Europe/Paris --bar none")
    kernel.run("%quiv add daily quick --at 09:30 --bar none")
    kernel.run("%%quiv run --name load --after transform --bar none\nloaded = True")
    tasks = kernel.value(
        "{t.task_name: (tuple(t.after), t.cron, t.at, t.timezone) for t in quiv_nb.get_scheduler().get_all_tasks()}"
    )
    assert tasks["transform"][0] == ("extract", "clean")
    assert tasks["morning"][1:] == ("0 9 * * 1-5", None, "Europe/Paris")
    assert tasks["daily"][2] == "09:30"
    assert tasks["load"][0] == ("transform",)


def test_notify_reaches_add_task(kernel):
    kernel.run("%quiv add pinged quick --every 1h --notify --bar none")
    assert kernel.value("[t.notify for t in quiv_nb.get_scheduler().get_all_tasks() if t.task_name == 'pinged']") == [
        True
    ]


def _final_jobs(kernel, name: str) -> list[tuple]:
    """(status, result) of the task's ended jobs, once there is one (a downstream job may end before a wait starts)."""
    code = f"[(j.status.value, j.result) for j in _q.get_all_jobs(task_id=_ids[{name!r}]) if j.status.is_final]"
    kernel.wait_for(lambda: kernel.value(code), timeout=30, what=f"a job of {name!r} to end")
    return kernel.value(code)


def test_after_repeated_and_comma_separated_runs_when_all_upstreams_completed(kernel):
    """`--after a --after b,c`: the task runs once all three completed a job, and gets their results."""
    kernel.run("def gather(_upstream):\n    return sorted(_upstream.items())")
    for name, value in (("a", 1), ("b", 2), ("c", 3)):
        kernel.run(f"%quiv add {name} add_up({value}) --every 1h --delay 1h --bar none")
    cell = kernel.run("%quiv add joined gather --after a --after b,c --bar none")
    assert "quiv: task 'joined' runs after a, b, c" in cell.stdout
    assert kernel.value(
        "[tuple(t.after) for t in quiv_nb.get_scheduler().get_all_tasks() if t.task_name == 'joined']"
    ) == [("a", "b", "c")]
    kernel.run("_q = quiv_nb.get_scheduler()\n_ids = {t.task_name: t.task_id for t in _q.get_all_tasks()}")
    kernel.run("for _n in 'ab':\n    _q.wait_for_job(_q.run_task_immediately(_ids[_n]), timeout=30)")
    assert kernel.value("[j.status.value for j in _q.get_all_jobs(task_id=_ids['joined'])]") == []  # c is missing
    kernel.run("_q.wait_for_job(_q.run_task_immediately(_ids['c']), timeout=30)")
    done = _final_jobs(kernel, "joined")
    assert done == [("completed", [("a", 1), ("b", 2), ("c", 3)])]


def test_cell_run_after_runs_the_cell_body_each_time_upstream_completes(kernel):
    """`%%quiv run --name t --after u`: the body runs after u, sees `_upstream`, and assigns in the notebook."""
    kernel.run("%quiv add u add_up(20, b=1) --every 1h --delay 1h --bar none")
    cell = kernel.run("%%quiv run --name t --after u --bar none\nseen = _upstream['u']\nseen * 2")
    assert "quiv: task 't' runs this cell after u" in cell.stdout
    assert kernel.value("'seen' in globals()") is False  # nothing ran yet: u has not completed
    kernel.run("_q = quiv_nb.get_scheduler()\n_ids = {t.task_name: t.task_id for t in _q.get_all_tasks()}")
    kernel.run("_q.wait_for_job(_q.run_task_immediately(_ids['u']), timeout=30)")
    assert _final_jobs(kernel, "t") == [("completed", 42)]
    assert kernel.value("seen") == 21


def test_cron_at_and_tz_give_the_true_next_wall_clock_run(kernel):
    """`--cron` and `--at` with `--tz`: next_run_at is the next such wall-clock time in that zone."""
    kernel.run("%quiv add weekday quick --cron '30 9 * * 1-5' --tz America/New_York --bar none")
    kernel.run("%quiv add teatime quick --at 16:05 --tz Asia/Tokyo --bar none")
    kernel.run(
        "from datetime import datetime\nfrom zoneinfo import ZoneInfo\n"
        "_tasks = {t.task_name: t for t in quiv_nb.get_scheduler().get_all_tasks()}\n"
        "_w, _a = _tasks['weekday'].next_run_at, _tasks['teatime'].next_run_at"
    )
    weekday = kernel.value(
        "(_w.astimezone(ZoneInfo('America/New_York')).strftime('%H:%M %a'), _w > datetime.now(_w.tzinfo))"
    )
    assert weekday[0].split()[0] == "09:30" and weekday[0].split()[1] in ("Mon", "Tue", "Wed", "Thu", "Fri")
    assert weekday[1] is True
    teatime = kernel.value("_a.astimezone(ZoneInfo('Asia/Tokyo')).strftime('%H:%M')")
    assert teatime == "16:05"
    assert kernel.value("(_a - datetime.now(_a.tzinfo)).total_seconds() <= 86400 and _a > datetime.now(_a.tzinfo)")
    listing = kernel.run("%quiv tasks").stdout
    assert "30 9 * * 1-5" in listing and "16:05" in listing


def test_bad_cron_and_at_are_usage_errors(kernel):
    cell = kernel.run("%quiv add t quick --cron 'every tuesday'", allow_error=True)
    assert cell.error["ename"] == "UsageError" and "got 'every tuesday'" in cell.error["evalue"]
    # Nothing before the one-line error: no "task runs on cron" line, no bar, and the task is not added.
    cell = kernel.run('%quiv add t quick --cron "61 * * * *"', allow_error=True)
    assert cell.error["ename"] == "UsageError" and "\n" not in cell.error["evalue"]
    assert cell.stdout == "" and not [m for m in cell.messages if m["msg_type"] == "display_data"]
    assert "'t'" not in kernel.run("%quiv tasks").stdout
    cell = kernel.run("%quiv add t quick --at 25:99", allow_error=True)
    assert cell.error["ename"] == "UsageError"
    cell = kernel.run("%quiv add t quick --at 09:30 --tz Mars/Olympus", allow_error=True)
    assert cell.error["ename"] == "UsageError"


def test_a_unique_job_id_prefix_names_the_job(kernel):
    """Messages show 8-character ids; `%quiv cancel/wait/log` take any unique prefix of 6+ characters."""
    kernel.run("import threading\nprefix_gate = threading.Event()\ndef gated(_stop_event):\n    _stop_event.wait(30)")
    kernel.run("jid = %quiv run gated --bar none")
    job_id = kernel.run("print(jid)").stdout.strip()
    out = kernel.run(f"%quiv cancel {job_id[:8]}").stdout
    assert f"cancel requested for job {job_id}" in out
    result = kernel.run(f"%quiv wait {job_id[:6]}", allow_error=True)
    assert result.error is not None and result.error["ename"] == "JobCancelledError"
    too_short = kernel.run(f"%quiv cancel {job_id[:3]}", allow_error=True)
    assert too_short.error is not None and too_short.error["ename"] == "UsageError"
