"""The notebook layer in a real kernel: magics, the kernel's scheduler, output routing, waits.

Each assertion reads the iopub messages a frontend would get (stream text and its parent
header), so "output lands under the starting cell" means exactly what JupyterLab would show.
"""

from __future__ import annotations

import time

import pytest
from kernel_harness import KernelSession, started_with

pytestmark = pytest.mark.kernel

SETUP = """
%load_ext quiv_nb
import threading, time, asyncio, logging
import quiv_nb

def ticker(_stop_event, n=5, pause=0.2):
    for i in range(n):
        print('tick', i, flush=True)
        if _stop_event.wait(pause):
            return 'stopped'
    return 'ok'

def quick():
    return 42
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


def test_job_output_lands_under_the_cell_that_added_the_task(kernel):
    adder = kernel.run("%quiv add tick ticker --once --bar none")
    other = kernel.run("time.sleep(1.5); print('other cell', flush=True)")
    kernel.wait_for(lambda: "tick 4" in kernel.cell_text(adder.msg_id), timeout=20, what="all ticks")
    assert "tick" not in kernel.cell_text(other.msg_id)
    assert "other cell" in _stdout(kernel, other.msg_id)
    assert "tick 0" in kernel.cell_text(adder.msg_id)


def test_logging_from_a_job_lands_under_its_cell(kernel):
    kernel.run("def logs():\n    logging.getLogger('quiv_test').warning('logged from job')\n")
    adder = kernel.run("%quiv add logs logs --once --bar none")
    other = kernel.run("time.sleep(0.8)")
    kernel.wait_for(lambda: "logged from job" in kernel.cell_text(adder.msg_id), timeout=20, what="log record")
    assert "logged from job" not in kernel.cell_text(other.msg_id)


def test_get_scheduler_is_one_per_kernel(kernel):
    first = kernel.value("id(quiv_nb.get_scheduler())")
    kernel.run("%load_ext quiv_nb")
    assert kernel.value("id(quiv_nb.get_scheduler())") == first
    assert kernel.value("quiv_nb.get_scheduler()._main.get() is asyncio.get_running_loop()") is True


def test_add_twice_keeps_one_task(kernel):
    kernel.run("%quiv add dup ticker --every 10 --bar none")
    kernel.run("%quiv add dup ticker --every 10 --bar none")
    names = kernel.value("[t.task_name for t in quiv_nb.get_scheduler().get_all_tasks()]")
    assert names.count("dup") == 1


def test_cell_magic_reruns_replace_the_task_and_see_progress_and_stop_event(kernel):
    body = (
        "%%quiv every 30 --name body --bar none\nprogress(step=1, total=1)\n('stop' if stop_event.is_set() else 'ran')"
    )
    kernel.run(body)
    kernel.run(body)
    assert kernel.value("[t.task_name for t in quiv_nb.get_scheduler().get_all_tasks()]").count("body") == 1
    waited = kernel.run("ran = %quiv wait body --timeout 10")
    assert "completed" in waited.stdout and kernel.value("ran") == "ran"


def test_quiv_wait_blocks_until_done(kernel):
    kernel.run("jid = %quiv run ticker --bar none")
    cell = kernel.run("%quiv wait --timeout 20\nprint(quiv_nb.get_scheduler().get_job(jid).status)")
    assert "completed" in cell.stdout.splitlines()[-1]


def test_wait_for_task_in_a_cell_keeps_main_loop_callbacks_flowing(kernel):
    code = """
seen = []
def on_progress(step):
    seen.append((step, threading.current_thread() is threading.main_thread(), time.monotonic()))
def slow(_progress_hook):
    for i in range(5):
        _progress_hook(i)
        time.sleep(0.1)
s = quiv_nb.get_scheduler()
tid = s.add_task('slow', slow, run_once=True, progress_callback=on_progress)
job = s.wait_for_task(tid, timeout=20)
ended = time.monotonic()
print(job.status, len(seen), all(m for _, m, _ in seen), sum(t < ended for *_, t in seen))
"""
    out = kernel.run(code).stdout.split()
    assert out == ["completed", "5", "True", "5"], out


def test_async_callbacks_run_on_the_kernel_loop(kernel):
    code = """
got = []
async def on_progress(**payload):
    got.append((payload, asyncio.get_running_loop() is quiv_nb.kernel.kernel_loop()))
def step3(_progress_hook):
    for i in range(3):
        _progress_hook(step=i, total=3)
s = quiv_nb.get_scheduler()
job = await s.await_task(s.add_task('a', step3, run_once=True, progress_callback=on_progress), timeout=20)
await asyncio.sleep(0.2)
print(job.status, [p['step'] for p, _ in got], all(ok for _, ok in got))
"""
    assert kernel.run(code).stdout.split() == ["completed", "[0,", "1,", "2]", "True"]


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("%quiv frobnicate", "unknown subcommand"),
        ("%quiv add", "the following arguments are required"),
        ("%quiv add x no_such_function --every 5", "no function named"),
        ("%quiv add x ticker --every 5q", "bad duration"),
        ("%quiv add x ticker --every 0", "bad duration"),
        ("%quiv add x ticker --every 5 --once", "not allowed with"),
        ("%quiv add x ticker --retries -1", "whole number"),
        ("%quiv add x ticker --bar sparkly", "invalid choice"),
        ("%quiv wait no-such-task", "no task or job named"),
        ("%quiv cancel no-such-job", "no task or job named"),
        ("%quiv pause nothing", "no task or job named"),
        ("%quiv jobs --status weird", "invalid choice"),
        ("%quiv run 'unbalanced", "cannot parse"),
        ("%%quiv\npass", "needs a subcommand"),
        ("%%quiv evry 1s\npass", "did you mean 'every'?"),
        ("%%quiv every 1s\ndef broken(:\n", "does not compile"),
    ],
)
def test_bad_lines_are_usage_errors(kernel, line, fragment):
    cell = kernel.run(line, allow_error=True)
    assert cell.error is not None, f"{line!r} did not fail"
    assert cell.error["ename"] == "UsageError", cell.error
    assert fragment in cell.error["evalue"]


def test_cancel_by_task_name(kernel):
    kernel.run("%quiv add long ticker --once --bar none")
    kernel.wait_for(lambda: kernel.value("quiv_nb.get_scheduler().stats().active_jobs") == 1, timeout=10, what="start")
    assert "cancel requested" in kernel.run("%quiv cancel long").stdout
    waited = kernel.run("%quiv wait long --timeout 10", allow_error=True)
    assert waited.error["ename"] == "JobCancelledError" and "was cancelled" in waited.error["evalue"]


def test_interrupt_during_wait_raises_keyboardinterrupt_and_jobs_keep_running(kernel):
    kernel.run("%quiv add sleeper ticker --once --bar none")
    msg_id = kernel.submit(
        "import quiv_nb; print('wait begins', flush=True); "
        "quiv_nb.get_scheduler().wait_for_task(quiv_nb.magics.QuivMagics._task_id('sleeper'))"
    )
    # Interrupt only once the cell runs: a SIGINT that lands before it starts would not reach the wait.
    kernel.wait_for(lambda: "wait begins" in _stdout(kernel, msg_id), timeout=30, what="the wait to begin")
    kernel.interrupt()
    cell = kernel.result(msg_id, timeout=20)
    assert cell.error is not None and cell.error["ename"] == "KeyboardInterrupt"
    assert kernel.value("quiv_nb.get_scheduler().is_running") is True
    assert "completed" in kernel.run("%quiv wait sleeper --timeout 10").stdout


def test_graceful_kernel_shutdown_with_a_running_job_is_prompt():
    session = KernelSession()
    try:
        session.run(SETUP + "\n%quiv add forever ticker --once --bar widget\n")
        session.run("s = quiv_nb.get_scheduler(); s.add_task('f2', ticker, run_once=True, kwargs={'n': 10**6})")
        popen = session.km.provisioner.process
        # Give the kernel far longer than it should need, so a slow exit is not hidden by a kill.
        session.km.shutdown_wait_time = 30
        started = time.monotonic()
        session.km.shutdown_kernel(now=False)
        took = time.monotonic() - started
        assert popen.poll() is not None
        assert popen.returncode == 0, f"the kernel was killed (exit code {popen.returncode})"
        assert took < 10, f"kernel shutdown took {took:.1f}s"
    finally:
        session.shutdown()


def _stdout(kernel: KernelSession, msg_id: str) -> str:
    return _stream(kernel, msg_id, "stdout")


def _stream(kernel: KernelSession, msg_id: str, name: str) -> str:
    return "".join(
        m["content"]["text"] for m in kernel.messages(parent=msg_id, msg_type="stream") if m["content"]["name"] == name
    )


@pytest.mark.dask
def test_quiv_cluster_local_runs_jobs_on_dask_with_bars(kernel):
    pytest.importorskip("distributed")
    cell = kernel.run("%quiv cluster local --workers 1", timeout=120)
    assert "jobs now run on Dask" in cell.stdout
    try:
        kernel.run(
            "def on_cluster(_progress_hook):\n"
            "    from distributed import get_worker\n"
            "    _progress_hook(step=1, total=1)\n"
            "    return get_worker().address\n"
        )
        kernel.run("%quiv run on_cluster --bar widget")
        out = kernel.run("address = %quiv wait --timeout 60", timeout=90).stdout
        assert "completed" in out and kernel.value("address").startswith("tcp://127.0.0.1")
    finally:
        kernel.run("%quiv stop", timeout=60)
    assert kernel.value("quiv_nb.get_scheduler()._executor.__class__.__name__") == "PoolExecutor"
