"""quiv_nb.bar(): the widget, tqdm and text renderers, alone and driven by a real `quiv_nb.Quiv`.

Widgets are created without a kernel (their comm is a dummy) and checked through their trait
values; messages are counted by wrapping each widget's `comm.send`. Unit tests that call
`pump_draw` themselves give the renderer a private no-op pump so the real one cannot race them.
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import WAIT, Gate

import quiv_nb
from quiv_nb import ConfigurationError, Quiv
from quiv_nb.render import bar
from quiv_nb.render.bar_look import CANCELLED_COLOUR
from quiv_nb.render.pump import get_pump
from quiv_nb.render.text import TextBar, TqdmBar
from quiv_nb.render.widget import WidgetBar


@pytest.fixture(autouse=True)
def no_thread_survives() -> Iterator[None]:
    """No thread but the process-wide render pump may outlive a test (no tqdm monitor, no worker)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.name != "quiv_nb-render" and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not extra, f"threads left behind: {[t.name for t in extra]}"
    assert len([t for t in threading.enumerate() if t.name == "quiv_nb-render"]) <= 1


@pytest.fixture
def q() -> Iterator[Quiv]:
    scheduler = Quiv(pool_size=2)
    scheduler.start()
    yield scheduler
    scheduler.shutdown(timeout=5)


class NullPump:
    """Stands in for the render pump in unit tests that call `pump_draw` themselves."""

    def __init__(self) -> None:
        self.requests: list[bool] = []

    def request(self, drawable: Any, final: bool = False) -> None:
        self.requests.append(final)

    def forget(self, drawable: Any) -> None:
        pass


def detached(kind: str = "widget", **options: Any) -> Any:
    renderer = bar(kind, **options)
    renderer._pump = NullPump()
    return renderer


def job(job_id: str = "job-1", status: str = "running", error: str | None = None, duration: float | None = 1.0):
    return SimpleNamespace(job_id=job_id, status=status, error_message=error, duration_seconds=duration)


def count_messages(b: WidgetBar) -> Callable[[], int]:
    """Wrap every widget's comm.send; returns a function reading the count."""
    sent = [0]
    parts = (b._label, b._progress, b._text)
    for widget in (b._box, *parts, b._progress.style, b._box.layout, *(p.layout for p in parts)):
        original = widget.comm.send

        def send(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            sent[0] += 1
            return _original(*args, **kwargs)

        widget.comm.send = send
    return lambda: sent[0]


def html_values(b: WidgetBar) -> list[str]:
    return [b._label.value, b._text.value]


def run_job(q: Quiv, handler: Callable[..., Any], renderer: Any, timeout: float = WAIT) -> Any:
    """Run `handler` once with `renderer` attached; return its Job once the bar's final state is drawn."""
    task_id = q.add_task("job", handler, run_once=True, progress_callback=renderer)
    done = q.wait_for_task(task_id, timeout=timeout)
    # wait_for_job returns before the scheduler's quiv_job_finished effect has run
    assert renderer.wait_drawn(timeout)
    assert get_pump().flush(timeout)
    return done


# ---------------------------------------------------------------------------------------- bar()


def test_importing_quiv_nb_loads_no_display_library():
    code = (
        "import sys, quiv_nb, quiv_nb.render, quiv_nb.render.state, quiv_nb.render.pump\n"
        "print(sorted(m for m in ('ipywidgets', 'IPython', 'tqdm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_bar_is_reexported():
    assert isinstance(quiv_nb.bar("text", file=io.StringIO()), TextBar)


@pytest.mark.parametrize("kind", ["bogus", "", None, 3, "Widget"])
def test_unknown_kind(kind):
    with pytest.raises(ConfigurationError, match="'auto', 'widget', 'tqdm', 'text'"):
        bar(kind)


@pytest.mark.parametrize(
    ("kind", "options", "match"),
    [
        ("text", {"colour": "red"}, "unknown option.*colour.*allowed: desc, file, label, leave, min_interval"),
        ("widget", {"file": io.StringIO()}, "unknown option.*file"),
        ("tqdm", {"display": True}, "unknown option.*display"),
        ("auto", {"nope": 1}, "unknown option.*nope"),
        ("text", {"desc": "a", "label": "b"}, "aliases"),
        ("text", {"desc": 5}, "desc must be a string"),
        ("text", {"total": 0}, "total must be a finite number > 0"),
        ("text", {"total": float("nan")}, "total"),
        ("text", {"total": True}, "total"),
        ("text", {"unit": ""}, "unit must be a non-empty string"),
        ("text", {"leave": "yes"}, "leave must be True or False"),
        ("text", {"min_interval": -1}, "min_interval must be finite seconds >= 0"),
        ("text", {"min_interval": float("inf")}, "min_interval"),
        ("text", {"file": object()}, "file must be a writable text stream"),
        ("widget", {"display": "yes"}, "display must be True, False or None"),
    ],
)
def test_bad_options(kind, options, match):
    with pytest.raises(ConfigurationError, match=match):
        bar(kind, **options)


def test_configuration_error_is_a_value_error():
    with pytest.raises(ValueError):
        bar("text", speed=3)


def test_auto_outside_a_kernel_is_tqdm():
    b = bar(file=io.StringIO())
    assert isinstance(b, TqdmBar)


def test_auto_inside_a_kernel_is_a_widget_displayed_at_creation(monkeypatch, capsys):
    import IPython

    from quiv_nb import kernel

    class ZMQInteractiveShell:  # what get_ipython() returns in a Jupyter kernel (checked by name)
        kernel = None

    monkeypatch.setattr(IPython, "get_ipython", lambda: ZMQInteractiveShell())
    kernel.install()  # what a kernel process does on its first Quiv()/bar() (hooks.install_host)
    b = bar(desc="in a kernel")
    assert isinstance(b, WidgetBar)
    # No real shell here, so IPython's display() falls back to printing the text/plain repr.
    assert "in a kernel" in capsys.readouterr().out


def test_options_reach_the_state():
    b = detached("text", desc="d", total=5, unit="B", min_interval=0.5, file=io.StringIO())
    assert (b._blank.desc, b._blank.total, b._blank.unit, b.min_interval) == ("d", 5.0, "B", 0.5)
    assert bar("text", label="l", file=io.StringIO())._blank.desc == "l"


# ---------------------------------------------------------------------------------------- widget, driven directly


def test_widget_layout_and_initial_state():
    b = detached(desc="train", total=10)
    assert b.widget is b._box
    assert b._box.children == (b._label, b._progress, b._text)
    assert b._box._dom_classes == ("quiv-bar", "quiv-idle")
    assert (b._progress.value, b._progress.max, b._progress.bar_style) == (0.0, 10.0, "")
    assert b._label.value == '<span title="train">train</span>'  # whole on hover if the column shortens it
    assert "waiting" in b._text.value


def test_widget_redraw_sends_only_changed_widgets():
    b = detached(desc="train")
    sent = count_messages(b)
    b.quiv_job_started(job())
    assert b.pump_draw() == sent()  # run start: bar (max), text, box classes
    before = sent()
    b.quiv_progress("job-1", (), {"step": 1, "total": 10})
    assert b.pump_draw() == 2 == sent() - before  # bar value and text only
    before = sent()
    b.quiv_progress("job-1", (), {"stage": "eval"})
    n = b.pump_draw()
    assert n == sent() - before and 1 <= n <= 2  # the label (and the text if its clock moved); not the bar
    assert b._label.value == '<span title="train: eval">train: eval</span>'
    before = sent()
    n = b.pump_draw()
    assert n == sent() - before <= 1  # nothing new: at most the text (its clock)


def test_widget_completed():
    b = detached(desc="train")
    b.quiv_job_started(job())
    b.quiv_progress("job-1", (3,), {"total": 10})
    b.pump_draw()
    b.quiv_job_finished(job(status="completed", duration=2.0))
    assert b._pump.requests[-1] is True  # the final state asks for a final redraw
    b.pump_draw()
    assert (b._progress.value, b._progress.max, b._progress.bar_style) == (10.0, 10.0, "success")
    assert b._box._dom_classes == ("quiv-bar", "quiv-completed")
    assert b._progress.style.bar_color is None
    assert b._text.value.startswith("100% 10/10 [00:02")
    assert b.wait_drawn(0)
    assert b.pump_draw() == 0  # a final state is drawn once


def test_widget_failed_shows_the_escaped_error():
    b = detached()
    b.quiv_job_started(job())
    b.quiv_progress("job-1", (), {"step": 1, "total": 4})
    b.quiv_job_finished(job(status="failed", error="ValueError: <script>alert(1)</script> & more"))
    b.pump_draw()
    assert b._progress.bar_style == "danger"
    assert b._progress.value == 1.0
    assert b._box._dom_classes == ("quiv-bar", "quiv-failed")
    assert "failed: ValueError: &lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in b._text.value
    assert "<script>" not in b._text.value


def test_widget_cancelled_is_grey_warning():
    b = detached(total=10)
    b.quiv_job_started(job())
    b.quiv_job_finished(job(status="cancelled", error="timed out after 5s"))
    b.pump_draw()
    assert b._progress.bar_style == "warning"
    assert b._progress.style.bar_color == CANCELLED_COLOUR
    assert b._box._dom_classes == ("quiv-bar", "quiv-cancelled")
    assert "cancelled: timed out after 5s" in b._text.value
    # the next run is neutral again
    b.quiv_job_started(job("job-2"))
    b.pump_draw()
    assert (b._progress.bar_style, b._progress.style.bar_color) == ("", None)
    assert b._box._dom_classes == ("quiv-bar", "quiv-running")


def test_widget_unknown_total_is_a_full_info_bar():
    b = detached()
    b.quiv_job_started(job())
    b.quiv_progress("job-1", (7,), {})
    b.pump_draw()
    assert (b._progress.value, b._progress.max, b._progress.bar_style) == (1.0, 1.0, "info")
    assert b._text.value.startswith("7it [")
    b.quiv_job_finished(job(status="completed"))
    b.pump_draw()
    assert b._progress.bar_style == "success"


def test_widget_leave_false_hides_the_final_state_until_the_next_run():
    b = detached(leave=False)
    b.quiv_job_started(job())
    b.quiv_job_finished(job(status="completed"))
    b.pump_draw()
    assert b._box.layout.display == "none"
    b.quiv_job_started(job("job-2"))
    b.pump_draw()
    assert b._box.layout.display is None


def test_html_never_reaches_a_widget_raw():
    evil = "<script>alert('x')</script>"
    b = detached(desc=evil)
    b.quiv_job_started(job())
    b.quiv_progress("job-1", (), {"stage": evil, evil: evil, "message": evil, "unit": evil})
    b.pump_draw()
    b.quiv_job_finished(job(status="failed", error=evil))
    b.pump_draw()
    for value in html_values(b):
        assert "<script>" not in value
        assert "&lt;script&gt;" in value


def test_widget_repr_and_mimebundle():
    b = detached(desc="r", total=4)
    b.quiv_job_started(job())
    b.quiv_progress("job-1", (2,), {})
    b.pump_draw()
    assert repr(b).startswith("r:  50%|")
    bundle = b._repr_mimebundle_()
    assert bundle["text/plain"] == repr(b)
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == b._box.model_id


def test_creating_a_widget_bar_sends_no_updates(monkeypatch):
    import ipywidgets

    updates: list[Any] = []
    monkeypatch.setattr(ipywidgets.Widget, "_send", lambda self, msg, buffers=None: updates.append(msg))
    b = detached(desc="d", total=3)
    assert updates == []  # every initial value travels with the widgets' comm_open
    assert b.pump_draw() == 0  # and an idle bar has nothing to redraw


def test_a_handler_inventing_keys_cannot_grow_the_run_without_bound():
    b = detached("text", file=io.StringIO())
    b.quiv_job_started(job())
    for i in range(10_000):
        b.quiv_progress("job-1", (), {f"k{i}": i, "step": i})
    b.pump_draw()
    assert len(b._run.kw) <= 4 * 64 + 10
    assert b._state.value == 9999.0 and dict(b._state.postfix)["k0"] == "0"


def test_widget_close_closes_every_widget():
    b = detached()
    b.close()
    assert b._box.comm is None and b._progress.comm is None and b._progress.style.comm is None


# ---------------------------------------------------------------------------------------- runs


def test_each_job_is_a_fresh_run_and_other_jobs_are_ignored():
    b = detached("text", file=io.StringIO())
    b.quiv_job_started(job("a"))
    b.quiv_progress("a", (5,), {"total": 10, "loss": 1})
    b.pump_draw()
    b.quiv_job_started(job("b"))  # a second job takes the bar over
    b.quiv_progress("a", (9,), {})  # the first job's payloads are now ignored ...
    b.quiv_job_finished(job("a", status="failed", error="x"))  # ... and so is its outcome
    b.pump_draw()
    assert (b._state.value, b._state.total, b._state.postfix, b._state.status) == (0.0, None, (), "running")
    b.quiv_progress("b", (2,), {})
    b.pump_draw()
    assert b._state.value == 2.0


def test_a_job_id_equal_but_not_identical_is_the_same_run():
    b = detached("text", file=io.StringIO())
    b.quiv_job_started(job("".join(["jo", "b-1"])))
    b.quiv_progress("job-1", (3,), {})
    b.pump_draw()
    assert b._state.value == 3.0


def test_a_run_replaced_before_its_final_draw_still_gets_its_final_line():
    out = io.StringIO()
    b = detached("text", file=out)
    b.quiv_job_started(job("a"))
    b.quiv_progress("a", (1,), {"total": 2})
    b.quiv_job_finished(job("a", status="completed"))
    b.quiv_job_started(job("b"))  # before the pump got to draw a's final state
    b.pump_draw()
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("2/2 [00:01, 2.00it/s] done")
    assert lines[1].startswith("0it [00:00")
    assert not b.wait_drawn(0)  # b's final is still to come


def test_finished_without_started_draws_the_outcome():
    b = detached()
    b.quiv_job_finished(job(status="cancelled", error="cancelled before it started", duration=None))
    b.pump_draw()
    assert b._progress.bar_style == "warning"
    assert "cancelled before it started" in b._text.value


def test_plain_calls_open_a_run_and_a_rewound_bar_starts_a_fresh_one():
    b = detached("text", file=io.StringIO())
    b(step=10, total=10)
    b.pump_draw()
    first = b._state.started
    assert b._state.status == "running" and b._state.value == 10.0
    b(step=1)
    b.pump_draw()
    assert b._state.value == 1.0 and b._state.started > first
    assert b._pump.requests == [False, False]


def test_plain_calls_feed_a_running_job():
    b = detached("text", file=io.StringIO())
    b.quiv_job_started(job())
    b(step=4)
    b.pump_draw()
    assert b._state.value == 4.0


def test_payload_keys_persist_for_the_run():
    b = detached("text", file=io.StringIO())
    b.quiv_job_started(job())
    b.quiv_progress("job-1", (), {"stage": "load", "total": 5})
    b.quiv_progress("job-1", (), {"step": 2})
    b.pump_draw()
    assert (b._state.label, b._state.value, b._state.total) == ("load", 2.0, 5.0)


def test_the_worker_side_never_raises(caplog):
    b = detached("text", file=io.StringIO())
    b.quiv_job_started(object())  # no job_id
    b.quiv_job_finished(object())
    b.quiv_progress("x", (), 5)  # type: ignore[arg-type]
    b.quiv_progress("x", (), {"step": float("nan"), "junk": [1] * 10, "big": "x" * 1_000_000, "none": None})
    b.pump_draw()
    assert "failed to record progress" in caplog.text
    assert caplog.text.count("failed to record progress") == 1  # logged once, not per call


def test_concurrent_plain_calls():
    b = bar("text", file=io.StringIO(), min_interval=0.0)

    def feed(offset: int) -> None:
        for i in range(20_000):
            b(step=i, worker=offset)

    threads = [threading.Thread(target=feed, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert get_pump().flush(WAIT)
    assert b._state.status == "running"
    assert 0 <= b._state.value < 20_000


# ---------------------------------------------------------------------------------------- through a real Quiv


def test_widget_success_through_quiv(q):
    b = bar("widget", desc="count")

    def handler(_progress_hook):
        for i in range(50):
            _progress_hook(step=i + 1, total=50, loss=1 / (i + 1))
        return "ok"

    done = run_job(q, handler, b)
    assert done.status == "completed"
    assert (b._progress.value, b._progress.max, b._progress.bar_style) == (50.0, 50.0, "success")
    assert b._box._dom_classes == ("quiv-bar", "quiv-completed")
    assert "50/50" in b._text.value and "loss=0.02" in b._text.value


def test_widget_failure_through_quiv(q):
    b = bar("widget")

    def handler(progress_hook):  # the quiv 1.x spelling
        progress_hook(step=1, total=3)
        raise RuntimeError("<b>disk</b> full")

    done = run_job(q, handler, b)
    assert done.status == "failed"
    assert b._progress.bar_style == "danger"
    assert "failed: RuntimeError: &lt;b&gt;disk&lt;/b&gt; full" in b._text.value


def test_widget_cancel_through_quiv(q):
    b = bar("widget")
    started, ids = Gate(), []

    def handler(_progress_hook, _stop_event, _job_id):
        ids.append(_job_id)
        _progress_hook(step=1, total=10)
        started.set()
        _stop_event.wait(WAIT)

    task_id = q.add_task("cancel-me", handler, run_once=True, progress_callback=b)
    started.wait()
    assert q.cancel_job(ids[0])
    done = q.wait_for_task(task_id, timeout=WAIT)
    assert b.wait_drawn(WAIT)
    assert done.status == "cancelled"
    assert (b._progress.bar_style, b._progress.style.bar_color) == ("warning", CANCELLED_COLOUR)
    assert b._box._dom_classes == ("quiv-bar", "quiv-cancelled")
    assert "cancelled" in b._text.value


def test_widget_timeout_through_quiv(q):
    b = bar("widget")

    def handler(_stop_event):
        _stop_event.wait(WAIT)

    task_id = q.add_task("slow", handler, run_once=True, progress_callback=b, timeout=0.05)
    done = q.wait_for_task(task_id, timeout=WAIT)
    assert b.wait_drawn(WAIT)
    assert done.status == "cancelled"
    assert "cancelled: timed out after 0.05s" in b._text.value


def test_a_million_hook_calls_make_at_most_ten_redraws_a_second(q):
    b = bar("widget")
    draws = [0]
    original = b.pump_draw

    def counting() -> int:
        draws[0] += 1
        return original()

    b.pump_draw = counting  # the pump looks the method up on the instance

    def handler(_progress_hook):
        for i in range(1_000_000):
            _progress_hook(step=i + 1, total=1_000_000)

    done = run_job(q, handler, b, timeout=60)
    assert done.status == "completed"
    assert draws[0] <= done.duration_seconds * 10 + 3, (draws[0], done.duration_seconds)
    assert b._progress.value == 1_000_000


def test_garbage_payloads_through_quiv(q):
    b = bar("widget")

    def handler(_progress_hook):
        _progress_hook(None)
        _progress_hook([1, [2, {3: 4}]], {"a": {"b": []}})
        _progress_hook(step=float("nan"), total=float("inf"))
        _progress_hook(step=-5, total=-1, pct=float("nan"))
        _progress_hook(step=10, total=5, note="x" * 1_000_000, nested={"a": [1, 2]}, none=None)
        _progress_hook(**{"weird key\n\x1b[31m": "<i>v</i>"})

    done = run_job(q, handler, b)
    assert done.status == "completed"
    assert b._progress.bar_style == "success"
    assert len(b._text.value) < 1000
    assert "\x1b" not in b._text.value and "<i>" not in b._text.value


def test_recurring_task_gets_a_fresh_run_per_job(q):
    out = io.StringIO()
    b = bar("text", file=out)
    runs = []
    two = Gate()

    def handler(_progress_hook, _job_id):
        runs.append(_job_id)
        _progress_hook(step=len(runs), total=2)
        if len(runs) == 2:
            two.set()

    task_id = q.add_task("tick", handler, interval=0.05, progress_callback=b)
    two.wait()
    q.pause_task(task_id)
    assert b.wait_drawn(WAIT)
    q.remove_task(task_id)
    assert get_pump().flush(WAIT)
    finals = [line for line in out.getvalue().splitlines() if line.endswith(" done")]
    assert len(finals) >= 2
    assert all("2/2" in line for line in finals)


def test_a_jobs_end_reaches_its_bar_before_the_next_job_starts():
    """The worker that ended job 1 is held up after the lock (here: in logging its failure) while job 2 starts.

    The bar must still show job 1 failed and then job 2 done: it once saw job 2 start first and
    dropped job 1's late end as stale, so job 1's final line never appeared.
    """
    second_running = threading.Event()

    class SlowHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            second_running.wait(WAIT)  # job 1's worker, between the scheduler lock and its effects

    log = logging.getLogger("quiv_nb.test.inorder")
    log.propagate = False
    log.addHandler(SlowHandler())
    out = io.StringIO()
    b = bar("text", file=out)
    runs: list[str] = []

    def handler(_progress_hook, _job_id):
        runs.append(_job_id)
        _progress_hook(step=len(runs), total=2)
        if len(runs) == 1:
            raise ValueError("first run fails")
        second_running.set()

    scheduler = Quiv(pool_size=2, logger=log)
    scheduler.start()
    try:
        task_id = scheduler.add_task("tick", handler, interval=0.05, progress_callback=b)
        second_running.wait(WAIT)
        scheduler.pause_task(task_id)
        assert b.wait_drawn(WAIT)
        assert len(runs) >= 2
        assert scheduler.get_job(runs[1]).status == "completed"
        assert get_pump().flush(WAIT)
        lines = out.getvalue().splitlines()
        failed = [i for i, line in enumerate(lines) if "failed: ValueError: first run fails" in line]
        done = [i for i, line in enumerate(lines) if line.endswith(" done")]
        assert failed and done and failed[0] < done[0], lines
    finally:
        scheduler.shutdown(timeout=5)
        log.handlers.clear()


def test_tqdm_through_quiv(q):
    out = io.StringIO()
    b = bar("tqdm", desc="tq", file=out)

    def handler(_progress_hook):
        for i in range(10):
            _progress_hook(step=i + 1, total=10, loss=0.5)

    done = run_job(q, handler, b)
    assert done.status == "completed"
    text = out.getvalue()
    last = text.split("\r")[-1]
    assert last.startswith("tq: 100%|") and "10/10" in last and "loss=0.5, done]" in last
    assert last.endswith("\n")
    assert b._tqdm_class.monitor is None  # no TMonitor thread (the leak check would catch one too)


def test_tqdm_failure_through_quiv(q):
    out = io.StringIO()
    b = bar("tqdm", file=out)

    def handler(_progress_hook):
        _progress_hook(3, 10)
        raise KeyError("gone")

    run_job(q, handler, b)
    last = out.getvalue().split("\r")[-1]
    assert "3/10" in last and "failed: KeyError: 'gone'" in last


def test_tqdm_leave_false_clears_its_line(q):
    out = io.StringIO()
    b = bar("tqdm", file=out, leave=False)
    run_job(q, lambda _progress_hook: _progress_hook(step=1, total=1), b)
    assert out.getvalue().split("\r")[-1].strip() == ""


def test_a_waiting_tqdm_bar_opens_no_tqdm_until_its_run_starts(q):
    """An idle tqdm bar draws nothing: tqdm would show "0it [00:00, ?it/s]", and an open tqdm instance would
    push every later bar's row down (cursor-up escapes in their output) until it runs."""
    waiting = bar("tqdm", desc="later", file=io.StringIO())
    waiting.note_waiting("next run 09:00")
    assert get_pump().flush(WAIT)
    assert waiting._file.getvalue() == "" and waiting._bar is None
    out = io.StringIO()
    b = bar("tqdm", desc="now", file=out)
    run_job(q, lambda _progress_hook: _progress_hook(step=1, total=2), b)
    assert "\x1b" not in out.getvalue() and out.getvalue().split("\r")[-1].startswith("now: ")
    waiting.close()


# ---------------------------------------------------------------------------------------- text renderer


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_text_on_a_log_writes_one_line_per_redraw_without_repeats():
    out = io.StringIO()
    b = detached("text", desc="log", file=out)
    b.quiv_job_started(job())
    b.quiv_progress("job-1", (0,), {"total": 4})
    assert b.pump_draw() == 1
    assert b.pump_draw() == 0  # no progress, same second: the identical line is not written again
    b.quiv_progress("job-1", (1,), {})
    assert b.pump_draw() == 1
    b.quiv_job_finished(job(status="completed", duration=0.5))
    b.pump_draw()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("log:   0%|") and lines[1].startswith("log:  25%|")
    assert lines[-1].startswith("log: 100%|") and lines[-1].endswith(" done")
    assert "\r" not in out.getvalue()


def test_text_on_a_tty_rewrites_its_line():
    out = FakeTTY()
    b = detached("text", file=out)
    b.quiv_job_started(job())
    b.quiv_progress("job-1", (1,), {"total": 2, "stage": "a much longer label"})
    b.pump_draw()
    b.quiv_progress("job-1", (2,), {"stage": "short"})
    b.pump_draw()
    b.quiv_job_finished(job(status="failed", error="boom"))
    b.pump_draw()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("failed: boom\n")
    frames = text.split("\r")
    assert len(frames[2]) == len(frames[1])  # a shorter line is padded over the longer one


def test_text_on_a_tty_leave_false_clears_the_line():
    out = FakeTTY()
    b = detached("text", file=out, leave=False)
    b.quiv_job_started(job())
    b.pump_draw()
    b.quiv_job_finished(job(status="completed"))
    b.pump_draw()
    assert out.getvalue().split("\r")[-1] == "" and "\n" not in out.getvalue()


def test_text_to_a_closed_file_goes_quiet():
    out = io.StringIO()
    b = detached("text", file=out)
    out.close()
    b.quiv_job_started(job())
    b.pump_draw()  # does not raise
    b.quiv_job_finished(job(status="completed"))
    b.pump_draw()
    assert b._broken


def test_text_ascii_fallback_for_non_utf8_streams():
    out = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")
    b = detached("text", file=out, total=2)
    b.quiv_job_started(job())
    b.quiv_progress("job-1", (1,), {})
    b.pump_draw()
    out.flush()
    assert b"|##########          |" in out.buffer.getvalue()


def test_text_repr():
    b = detached("text", file=io.StringIO(), desc="x")
    assert repr(b) == "x: waiting"
    b.note_waiting("next run 09:00")
    assert repr(b) == "x: next run 09:00"
    assert b._repr_mimebundle_() == {"text/plain": repr(b)}


def test_static_final_rendering_needs_no_widget_and_escapes_everything():
    from quiv_nb.render import state as st
    from quiv_nb.render.bar_look import BAR_WIDTH, static_html

    running = st.apply(st.start(st.new_state("<train>"), 0.0), (), {"step": 3, "total": 4})
    failed = st.finish(running, "failed", "ValueError: " + "<x>" * 100, now=2.0)
    html = static_html(failed)
    assert html.startswith('<div class="quiv-bar quiv-static quiv-failed"') and f"width:{BAR_WIDTH}px" in html
    assert "width:75.0%" in html and "&lt;train&gt;" in html and "<x>" not in html
    assert html.count("&lt;x&gt;") > 100  # the shown error is shortened; the title holds all of it
    assert "<script" not in html and "application/vnd.jupyter" not in html
    skipped = st.finish(st.start(st.new_state("load"), 0.0), "skipped", "upstream 'extract' failed", now=0.0)
    html = static_html(skipped)
    assert "quiv-skipped" in html and "linear-gradient" in html and "skipped: upstream" in html
    done = st.finish(st.start(st.new_state("quiet"), 0.0), "completed", now=1.5, result="'ok'")
    assert st.format_meter(done) == "quiet: done in 1.5s → 'ok'"
    assert "done in 1.5s → 'ok'" in static_html(done) and "it/s" not in static_html(done)


def test_a_skipped_widget_bar_is_grey_and_striped_with_its_reason():
    b = detached()
    b.quiv_job_finished(job(status="skipped", error="upstream 'extract' failed", duration=None))
    b.pump_draw()
    assert b._box._dom_classes == ("quiv-bar", "quiv-skipped")
    assert (b._progress.value, b._progress.max, b._progress.style.bar_color) == (1.0, 1.0, CANCELLED_COLOUR)
    assert "skipped: upstream 'extract' failed" in b._text.value and "linear-gradient" in b._text.value


def test_a_bar_without_progress_is_indeterminate_then_says_done_with_the_result():
    b = detached(desc="quiet")
    b.quiv_job_started(job())
    b.pump_draw()
    assert b._progress._dom_classes == ("quiv-indeterminate",) and "quiv-bar-stripes" in b._text.value
    assert b._text.value.startswith("running…") and "it/s" not in b._text.value
    finished = job(status="completed", duration=1.5)
    finished.result = "ok"
    b.quiv_job_finished(finished)
    b.pump_draw()
    assert b._progress._dom_classes == () and b._progress.bar_style == "success"
    assert b._text.value.startswith("done in 1.5s → 'ok'<style>") and repr(b) == "quiet: done in 1.5s → 'ok'"
    assert "quiv-bar-stripes" not in b._text.value


def test_a_long_error_is_shortened_with_the_full_text_on_hover():
    b = detached(total=4)
    b.quiv_job_started(job())
    b.quiv_progress("job-1", (1,), {})
    b.quiv_job_finished(job(status="failed", error="RuntimeError: " + "x" * 280))
    b.pump_draw()
    shown = b._text.value.split(">", 1)[1]
    assert "x" * 280 not in shown and "…" in shown and 'title="failed: RuntimeError: ' + "x" * 280 in b._text.value
    assert b._label.layout.flex == "0 0 auto" and b._progress.layout.width == b._progress.layout.min_width
