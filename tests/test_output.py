"""Per-job output capture outside a notebook: whole lines to the real streams, Job.output, failures.

Real schedulers and threads; the "real stream" is a StringIO put in `sys.stdout` for the test (the
proxy wraps whatever it finds there, as it wraps ipykernel's OutStream in a kernel).
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from conftest import WAIT

import quiv_nb
from quiv_nb import Quiv
from quiv_nb import output as out
from quiv_nb.joblog import JobLog
from quiv_nb.render.cell_stream import MAX_MESSAGES, CellStream
from quiv_nb.render.failure import FailureRepeats
from quiv_nb.render.output_area import MAX_LINES, OutputArea
from quiv_nb.render.pump import RenderPump, TokenBucket


@pytest.fixture
def console(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], tuple[io.StringIO, io.StringIO]]]:
    """Call it first in a test: fresh stdout/stderr StringIOs with the proxies installed over them.

    Called in the test body, not at fixture setup: pytest puts its own capture back in
    `sys.stdout` between the two. The proxies are removed afterwards.
    """

    def swap() -> tuple[io.StringIO, io.StringIO]:
        stdout, stderr = io.StringIO(), io.StringIO()
        out.uninstall()
        monkeypatch.setattr(sys, "stdout", stdout)
        monkeypatch.setattr(sys, "stderr", stderr)
        out.install()
        return stdout, stderr

    yield swap
    out.uninstall()


def test_concurrent_jobs_write_whole_lines_and_keep_their_own_output(console: Any) -> None:
    stdout, _ = console()
    jobs, lines = 8, 300
    gate = threading.Barrier(jobs, timeout=WAIT)

    def chatty(k: int) -> None:
        gate.wait()
        for i in range(lines):
            print(f"J{k}", "L", i, "end", k)  # print() makes several writes per line

    q = Quiv(pool_size=jobs)
    q.start()
    try:
        ids = [q.add_task(f"c{k}", chatty, run_once=True, args=(k,)) for k in range(jobs)]
        done = [q.wait_for_task(t, timeout=WAIT) for t in ids]
    finally:
        q.shutdown(WAIT)
    seen: dict[int, list[int]] = {k: [] for k in range(jobs)}
    for row in stdout.getvalue().splitlines():
        match = re.fullmatch(r"J(\d+) L (\d+) end (\d+)", row)
        assert match and match.group(1) == match.group(3), f"mixed line {row!r}"
        seen[int(match.group(1))].append(int(match.group(2)))
    assert all(v == list(range(lines)) for v in seen.values())
    for k, job in enumerate(done):
        assert job.output == "".join(f"J{k} L {i} end {k}\n" for i in range(lines))


def test_writes_from_other_threads_pass_through_and_partial_lines_wait(console: Any) -> None:
    stdout, _ = console()
    log = JobLog()
    with out.capture("job-1", log):
        sys.stdout.write("part")
        outsider = threading.Thread(target=lambda: sys.stdout.write("outside\n"))
        outsider.start()
        outsider.join(WAIT)
        assert stdout.getvalue() == "outside\n"  # the job's half line is not out yet
        sys.stdout.write("ial\nnext")
    assert stdout.getvalue() == "outside\npartial\nnext"  # the rest at the end of the job
    assert log.text() == "partial\nnext"


def test_flush_passes_a_partial_line_on(console: Any) -> None:
    stdout, _ = console()
    with out.capture("job-2", None):
        print("progress...", end="", flush=True)
        assert stdout.getvalue() == "progress..."


def test_root_logger_records_of_a_job_are_captured(console: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, stderr = console()
    handler = logging.StreamHandler(sys.stderr)  # made after install: holds the proxy
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])
    log = JobLog()
    with out.capture("job-3", log):
        logging.getLogger("somewhere").warning("careful")
    assert log.text() == "careful\n"
    assert stderr.getvalue() == "careful\n"


def test_install_redirects_console_handlers_made_before_it_and_uninstall_restores(monkeypatch: Any) -> None:
    out.uninstall()
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    handler = logging.StreamHandler(stream)
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    out.install()
    out.install()  # idempotent
    try:
        assert isinstance(sys.stderr, out._StreamProxy) and handler.stream is sys.stderr
        assert sys.stderr.stream is stream
        log = JobLog()
        with out.capture("job-4", log):
            logging.getLogger("x").error("from the job")
        assert log.text() == "from the job\n"
    finally:
        out.uninstall()
    assert sys.stderr is stream and handler.stream is stream
    assert "handle" not in vars(logging.getLogger("quiv_nb"))


def test_an_unrouted_failure_takes_the_ordinary_logging_path(console: Any, caplog: Any) -> None:
    console()

    def boom() -> None:
        raise ValueError("plain script failure")

    q = Quiv()
    q.start()
    try:
        with caplog.at_level(logging.ERROR, logger="quiv_nb"):
            job = q.wait_for_task(q.add_task("boom", boom, run_once=True), timeout=WAIT)
    finally:
        q.shutdown(WAIT)
    (record,) = [r for r in caplog.records if getattr(r, "quiv_job_id", None) == job.job_id]
    assert record.quiv_task_id == job.task_id and "plain script failure" in record.getMessage()


class _Recorder:
    """A `CellSink` that keeps what it would send (the kernel's sink is tested in test_kernel_output)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, msg_type: str, content: dict[str, Any]) -> None:
        self.sent.append((msg_type, content))

    def forward(self, msg: dict[str, Any]) -> None:
        self.sent.append((msg["msg_type"], msg["content"]))

    def reparent(self, parent: dict[str, Any]) -> None:
        self.sent.append(("reparent", parent))

    def streams(self) -> list[tuple[str, str]]:
        return [(c["name"], c["text"]) for kind, c in self.sent if kind == "stream"]


def test_a_routed_failure_goes_to_its_route_and_not_the_console(console: Any, monkeypatch: Any) -> None:
    _, stderr = console()
    kept = io.StringIO()  # a file handler: it still gets the record
    monkeypatch.setattr(
        logging.getLogger(), "handlers", [logging.StreamHandler(sys.stderr), logging.StreamHandler(kept)]
    )
    pump, sink = RenderPump(), _Recorder()
    area = OutputArea(sink, pump=pump, budget=TokenBucket(1e9, 1e9))
    try:
        with out.capture("job-9", JobLog()):
            out.route_current_job(area)
            print("before the failure")
        tb = (
            'Traceback (most recent call last):\n  File "/u.py", line 3, in f\n    1 / 0\n'
            "ZeroDivisionError: division by zero\n"
        )
        logging.getLogger("quiv_nb").error(
            "quiv_nb: job %s of task %r failed:\n%s",
            "job-9",
            "t",
            tb,
            extra={"quiv_job_id": "job-9", "quiv_task_id": "T", "quiv_task_name": "t"},
        )
        assert pump.flush(WAIT)
    finally:
        pump.shutdown()
    assert stderr.getvalue() == ""  # neither the job's line nor its failure reached the console
    assert "job job-9 of task 't' failed" in kept.getvalue()
    failure = "✗ t failed: ZeroDivisionError: division by zero\n" + tb
    assert area.text() == "before the failure\n" + failure
    # Two displays: the job's lines as they are, then the failure (headline, traceback collapsed in text/html).
    (lines, first), (note, second) = [(c["data"], c["transient"]["display_id"]) for _, c in sink.sent]
    assert lines == {"text/plain": "before the failure\n"} and second == first + "-failure"
    assert note["text/plain"] == failure
    assert "<details" in note["text/html"] and "Traceback (most recent call last)" in note["text/html"]
    # A record for a job nobody routed goes to the console as usual.
    logging.getLogger("quiv_nb").error("other failure", extra={"quiv_job_id": "job-10", "quiv_task_id": "T"})
    assert stderr.getvalue() == "other failure\n"


def test_failure_note_is_one_headline_with_the_traceback_collapsed_and_escaped() -> None:
    tb = (
        'Traceback (most recent call last):\n  File "/u.py", line 3, in f\n    raise ValueError("<b>&")\n'
        "ValueError: <script>alert(1)</script>\n"
    )
    note = FailureRepeats().describe("f failed: ValueError: <script>alert(1)</script>", tb)
    page = note.html()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'raise ValueError("&lt;b&gt;&amp;")' in page  # quotes readable, markup escaped
    headline, rest = page.split("<details", 1)
    assert "Traceback" not in headline and "✗</span> f failed: ValueError: &lt;script&gt;" in headline
    assert rest.startswith(' class="quiv-failure-traceback"><summary') and " open" not in rest  # closed
    plain = "✗ f failed: ValueError: <script>alert(1)</script>\n" + tb  # text/plain is not markup: as it is
    assert note.bundle() == {"text/html": page, "text/plain": plain}


def test_trim_traceback_hides_machinery_frames_and_says_so() -> None:
    package = os.path.dirname(os.path.abspath(quiv_nb.__file__)) + os.sep  # a frame of quiv_nb itself
    text = (
        "Traceback (most recent call last):\n"
        f'  File "{package}execution.py", line 254, in run_call\n'
        "    result = call.func(*call.args, **kwargs)\n"
        "             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        '  File "/home/me/work.py", line 7, in job\n'
        '    raise ValueError("boom")\n'
        "ValueError: boom\n"
    )
    trimmed = out.trim_traceback(text)
    assert trimmed == (
        "Traceback (most recent call last):\n"
        '  File "/home/me/work.py", line 7, in job\n'
        '    raise ValueError("boom")\n'
        "ValueError: boom\n"
        "[1 quiv_nb/asyncio frame hidden; the full traceback is in Job.traceback]\n"
    )
    assert out.failure_headline("quiv_nb: job 1 of task 'x' failed:", text) == (
        "quiv_nb: job 1 of task 'x' failed: ValueError: boom"
    )


def test_area_shows_the_latest_run_elides_a_flood_and_counts_repeated_failures() -> None:
    pump, sink = RenderPump(), _Recorder()
    area = OutputArea(sink, pump=pump, budget=TokenBucket(1e9, 1e9))
    try:
        area.job_started("j1")
        area.job_text("j1", "stdout", "".join(f"l{i}\n" for i in range(MAX_LINES + 5)))
        assert area.text().splitlines()[:2] == ["… 5 lines elided (see %quiv log j1)", "l5"]
        area.job_ended("j1")
        tb = 'Traceback (most recent call last):\n  File "/u.py", line 1, in f\n    g()\nKeyError: 1\n'
        for n, job in enumerate(["j2", "j3", "j4"], start=1):
            area.job_started(job)
            area.job_text(job, "stderr", f"run {job}\n")
            area.job_ended(job)
            area.job_failed(job, f"{job} failed: KeyError: 1", tb)
            text = area.text()
            assert text.startswith(f"run {job}\n") and text.count("Traceback") == 1
            assert ("runs in a row" in text) is (n > 1)
            assert pump.flush(WAIT)
        assert "[the same failure 3 runs in a row]" in area.text()
        repeated = _latest(sink)[1]
        assert "[the same failure 3 runs in a row]</div><details" in repeated["text/html"]  # the traceback stays
        area.job_started("j5")  # a success in between starts the count anew, and empties the failure display
        area.job_ended("j5")
        assert pump.flush(WAIT)
        assert _latest(sink) == [{"text/plain": ""}, {"text/plain": ""}]
        area.job_started("j6")
        area.job_failed("j6", "j6 failed: KeyError: 1", tb)
        assert "in a row" not in area.text()
        assert pump.flush(WAIT)
    finally:
        pump.shutdown()
    ids = list(dict.fromkeys(c["transient"]["display_id"] for _, c in sink.sent))
    assert len(ids) == 2 and ids[1] == ids[0] + "-failure"
    for display_id in ids:  # each display made once (the lines' first), then updated in place
        kinds = [kind for kind, c in sink.sent if c["transient"]["display_id"] == display_id]
        assert kinds[0] == "display_data" and set(kinds[1:]) == {"update_display_data"}
    assert sink.sent[0][1]["transient"]["display_id"] == ids[0]
    lines, failure = _latest(sink)
    assert lines["text/plain"] + failure["text/plain"] == area.text()
    assert failure["text/plain"].startswith("✗ j6 failed: KeyError: 1\nTraceback")


def _latest(sink: Any) -> list[dict[str, str]]:
    """The latest data of each display a recorder got, in the order they were made."""
    latest: dict[str, dict[str, str]] = {}
    for _, content in sink.sent:
        latest[content["transient"]["display_id"]] = content["data"]
    return list(latest.values())


def test_a_callback_the_job_schedules_on_another_loop_is_not_the_jobs_output(console: Any) -> None:
    import asyncio

    stdout, _ = console()
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    try:
        log = JobLog()
        printed = threading.Event()
        with out.capture("job-5", log):  # asyncio copies this context (the job's) into the callback
            loop.call_soon_threadsafe(lambda: (print("from the loop"), printed.set()))
            assert printed.wait(WAIT)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(WAIT)
        loop.close()
    assert stdout.getvalue() == "from the loop\n" and log.text() == ""


def test_one_off_stream_sends_new_whole_lines_in_order_and_everything_by_the_jobs_end() -> None:
    pump, sink = RenderPump(), _Recorder()
    stream = CellStream(sink, pump=pump, budget=TokenBucket(1e9, 1e9))
    log = JobLog()
    try:
        with out.capture("job-1", log):
            out.route_current_job(stream)
            for i in range(300):
                print("line", i)
                if i == 150:
                    print("warning", i, file=sys.stderr)
            print("partial ", end="")
            print("end")  # one line, though print wrote it in pieces
            # Ended by the capture's exit: what is pending is sent on this thread, before it returns.
        sent_at_end = list(sink.streams())
        assert pump.flush(WAIT)
    finally:
        pump.shutdown()
    assert sink.streams() == sent_at_end  # nothing was left for the pump
    text = {"stdout": "", "stderr": ""}
    for name, chunk in sent_at_end:
        assert chunk.endswith("\n"), chunk[-40:]  # whole lines only
        text[name] += chunk
    assert text["stdout"] == "".join(f"line {i}\n" for i in range(300)) + "partial end\n"
    assert text["stderr"] == "warning 150\n"
    # stderr arrived between the lines it was written between.
    names = [name for name, _ in sent_at_end]
    cut = names.index("stderr")
    assert sent_at_end[cut - 1][1].endswith("line 150\n") and sent_at_end[cut + 1][1].startswith("line 151\n")
    assert log.text().count("\n") == 302


class _Holder:
    """A drawable whose draw holds the pump thread until `release` is set (so what is requested meanwhile waits)."""

    min_interval = 0.0

    def __init__(self) -> None:
        self.held, self.release = threading.Event(), threading.Event()

    def pump_draw(self) -> int:
        self.held.set()
        self.release.wait(WAIT)
        return 0


def test_one_off_stream_elides_a_flood_keeps_the_log_and_sends_its_failure_as_a_collapsed_display() -> None:
    pump, sink = RenderPump(), _Recorder()
    stream = CellStream(sink, pump=pump, budget=TokenBucket(1e9, 1e9))
    log = JobLog()
    holder = _Holder()
    try:
        pump.request(holder)
        assert holder.held.wait(WAIT)  # no draw while the flood is printed: more lines wait than a cell keeps
        with out.capture("job-2", log):
            out.route_current_job(stream)
            for i in range(MAX_LINES + 500):
                print("flood", i)
        tb = 'Traceback (most recent call last):\n  File "/u.py", line 3, in f\n    1 / 0\nZeroDivisionError: x\n'
        logging.getLogger("quiv_nb").error(
            "quiv_nb: job %s of task %r failed:\n%s", "job-2", "t", tb, extra={"quiv_job_id": "job-2"}
        )
        holder.release.set()
        assert pump.flush(WAIT)
    finally:
        pump.shutdown()
    shown = "".join(chunk for name, chunk in sink.streams() if name == "stdout").splitlines()
    elided = [row for row in shown if row.startswith("…")]
    assert len(elided) >= 1 and all(row.endswith("(see %quiv log job-2)") for row in elided)
    kept = [row for row in shown if not row.startswith("…")]
    count = sum(int(row.split()[1]) for row in elided)
    assert len(kept) + count == MAX_LINES + 500  # every line is shown or counted, none twice
    assert kept[-MAX_LINES:] == [f"flood {i}" for i in range(500, MAX_LINES + 500)]
    assert log.text().splitlines() == [f"flood {i}" for i in range(MAX_LINES + 500)]
    assert [name for name, _ in sink.streams()] == ["stdout"] * len(sink.streams())  # no stderr: no pink box
    kind, failure = sink.sent[-1]
    assert kind == "display_data" and failure["transient"]["display_id"].endswith("-failure-0")
    # A record without the task's name (not the scheduler's) keeps its own first line as the headline.
    assert failure["data"]["text/plain"] == "✗ quiv_nb: job job-2 of task 't' failed: ZeroDivisionError: x\n" + tb
    assert "<summary" in failure["data"]["text/html"] and "1 / 0" in failure["data"]["text/html"]


def test_one_off_failure_follows_the_jobs_lines_and_a_retry_failing_alike_is_counted_without_its_traceback() -> None:
    pump, sink = RenderPump(), _Recorder()
    stream = CellStream(sink, pump=pump, budget=TokenBucket(1e9, 1e9))
    tb = 'Traceback (most recent call last):\n  File "/u.py", line 3, in f\n    1 / 0\nZeroDivisionError: x\n'
    try:
        for job in ("a-1", "a-2"):  # a one-off task and its retry, into one cell
            stream.job_started(job)
            stream.job_text(job, "stdout", f"out {job}\n")
            stream.job_text(job, "stderr", f"err {job}\n")
            stream.job_ended(job)
            stream.job_failed(job, "a failed: ZeroDivisionError: x", tb)
    finally:
        pump.shutdown()
    shown = [(kind, c.get("name") or c["transient"]["display_id"].rsplit("-", 2)[1:]) for kind, c in sink.sent]
    assert shown == [
        ("stream", "stdout"), ("stream", "stderr"), ("display_data", ["failure", "0"]),
        ("stream", "stdout"), ("stream", "stderr"), ("display_data", ["failure", "1"]),
    ]  # fmt: skip
    first, again = (c["data"] for kind, c in sink.sent if kind == "display_data")
    assert first["text/plain"] == "✗ a failed: ZeroDivisionError: x\n" + tb
    assert again["text/plain"] == "✗ a failed: ZeroDivisionError: x  [the same failure 2 runs in a row]\n"
    assert "<details" not in again["text/html"]  # the cell shows that traceback just above


def test_one_off_stream_alternating_streams_keeps_the_latest_lines_in_a_few_messages() -> None:
    pump, sink = RenderPump(), _Recorder()
    stream = CellStream(sink, pump=pump, budget=TokenBucket(1e9, 1e9))
    try:
        stream.job_started("job-3")
        for i in range(40):
            stream.job_text("job-3", "stdout" if i % 2 else "stderr", f"l{i}\n")
        stream.flush_now()
    finally:
        pump.shutdown()
    sent = sink.streams()
    assert len(sent) == MAX_MESSAGES
    assert sent[0][1].startswith(f"… {40 - MAX_MESSAGES} lines elided (see %quiv log job-3)\n")
    assert [chunk.splitlines()[-1] for _, chunk in sent] == [f"l{i}" for i in range(40 - MAX_MESSAGES, 40)]


def test_one_off_stream_follows_a_reparent_and_shows_displays_in_call_order() -> None:
    pump, sink = RenderPump(), _Recorder()
    stream = CellStream(sink, pump=pump, budget=TokenBucket(1e9, 1e9))
    try:
        stream.job_started("job-4")
        stream.job_text("job-4", "stdout", "before\n")
        msg = {"header": {"msg_type": "display_data"}, "msg_type": "display_data", "content": {"data": {"x": "1"}}}
        stream.display_message(msg)
        stream.job_text("job-4", "stdout", "after\n")
        stream.flush_now()
        stream.reparent({"header": {"msg_id": "cell-2"}})
        again = {"header": {"msg_type": "display_data"}, "msg_type": "display_data", "content": {"data": {"x": "2"}}}
        stream.job_started("job-4")
        stream.display_message(again)
        stream.job_ended("job-4")
    finally:
        pump.shutdown()
    kinds = [(kind, c.get("text") or c.get("data") or c.get("header")) for kind, c in sink.sent]
    assert kinds == [
        ("stream", "before\n"),
        ("display_data", {"x": "1"}),
        ("stream", "after\n"),
        ("reparent", {"msg_id": "cell-2"}),
        ("display_data", {"x": "2"}),  # created in the new cell, not an update of the old one's
    ]
