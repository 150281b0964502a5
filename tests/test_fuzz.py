"""Fuzzing the two surfaces that take arbitrary user input: `%quiv` lines and progress payloads.

- Random `%quiv` lines, run in-process by a real IPython shell, either succeed or raise `UsageError`;
  never another exception, and never a dead scheduler. The vocabulary (subcommands, options,
  durations, names, junk) is small so lines reach real code paths; every function the lines can
  name returns at once, waits are capped, and the kernel scheduler is reset after every example.
- Random payloads (None, nested containers, 1 MB strings, non-strings, NaN/inf/negatives,
  step > total, positional junk) render in every renderer kind without raising: long text is
  truncated and no raw `<` from a payload reaches an HTML widget value.
"""

from __future__ import annotations

import html
import io
import logging
import math
import re
import sys
import types
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from conftest import WAIT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import quiv_nb
from quiv_nb.kernel import current_scheduler, reset_scheduler
from quiv_nb.render import state as st
from quiv_nb.render.pump import get_pump

FUZZ = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,  # the same examples on every run: a CI failure reproduces locally
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class ErrorLog(logging.Handler):
    """Collects ERROR records of the quiv_nb logger from every thread (the pump's included)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def unexpected(self) -> list[str]:
        """Errors other than a job failing (fuzzed lines may run a function that raises: that is fine)."""
        return [
            r.getMessage()[:300]
            for r in self.records
            if not re.match(r"quiv_nb: job \S+ of task .* failed", r.getMessage())
        ]


@pytest.fixture(scope="module")
def errors() -> Any:
    log, handler = logging.getLogger("quiv_nb"), ErrorLog()
    log.addHandler(handler)
    yield handler
    log.removeHandler(handler)


# ====================================================================== %quiv lines


class _ReachedDask(Exception):
    """Raised by the stand-in for quiv_nb.dask: the line parsed and reached the cluster API."""


def _no_cluster(*args: Any, **kwargs: Any) -> Any:
    raise _ReachedDask


class _Obj:
    attr = 5

    def method(self) -> int:
        return 1


def _namespace() -> dict[str, Any]:
    """What the fuzzed lines can name. Every function returns at once."""

    def quick() -> int:
        return 42

    def fails() -> None:
        raise ValueError("<b>nope</b>")

    def prog(_progress_hook: Any) -> str:
        for i in range(3):
            _progress_hook(step=i, total=2, stage="<i>stage</i>")
        return "p"

    async def aquick() -> str:
        return "a"

    def needs_arg(x: Any) -> Any:
        return x

    def stopper(_stop_event: Any) -> bool:
        return _stop_event.is_set()

    return {
        "quick": quick, "fails": fails, "prog": prog, "aquick": aquick, "needs_arg": needs_arg,
        "stopper": stopper, "obj": _Obj(), "notfunc": 5,
    }  # fmt: skip


@pytest.fixture(scope="module")
def shell(errors: ErrorLog) -> Any:
    """A real IPython shell (not a kernel) with quiv_nb loaded; undone afterwards."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    if InteractiveShell.initialized():
        pytest.skip("another IPython shell is active in this process")
    import builtins

    saved_builtins = dict(builtins.__dict__)
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    user_module = types.ModuleType("quiv_fuzz_main")  # IPython puts it in sys.modules: keep __main__ intact
    sh = InteractiveShell.instance(config=config, user_module=user_module)
    fake_dask = types.ModuleType("quiv_nb.dask")
    fake_dask.start_local_cluster = fake_dask.connect = _no_cluster
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "quiv_nb.dask", fake_dask)
        mp.setattr(quiv_nb, "dask", fake_dask, raising=False)
        sh.run_line_magic("load_ext", "quiv_nb")
        sh.user_ns.update(_namespace())
        yield sh
        reset_scheduler()
        sh.run_line_magic("unload_ext", "quiv_nb")
    sh.history_manager.end_session()
    InteractiveShell.clear_instance()
    sys.modules.pop("quiv_fuzz_main", None)
    for name in set(builtins.__dict__) - set(saved_builtins):
        del builtins.__dict__[name]
    builtins.__dict__.update(saved_builtins)


SUBCOMMANDS = ["add", "run", "wait", "cancel", "pause", "resume", "remove", "tasks", "jobs", "stop", "status",
               "cluster", "ADD", "help", "-h", "--help", ""]  # fmt: skip
OPTIONS = ["--every", "--once", "--delay", "--timeout", "--retries", "--bar", "--status", "--name", "--workers",
           "--help", "-h", "--", "-"]  # fmt: skip
DURATIONS = [
    "500ms", "1s", "10", "2.5s", "5m", "1min", "1h", ".5", "'10 s'",  # valid
    "99999999999h", "9" * 400,  # absurdly long (past any clock), and one that parses to infinity
    "0", "0ms", "-1", "5q", "1e3", "nan", "inf", "ms", "''",  # invalid
]  # fmt: skip
BARS = ["auto", "widget", "tqdm", "none", "text", "sparkly"]
STATUSES = ["scheduled", "running", "completed", "cancelled", "failed", "weird"]
COUNTS = ["0", "1", "3", "-2", "1e3", "99999999999999999999"]
ADDRESSES = ["local", "tcp://127.0.0.1:1", "nowhere"]
FUNCS = ["quick", "fails", "prog", "aquick", "needs_arg", "stopper", "obj.method", "obj.attr", "obj.missing",
         "notfunc", "nope", "{quick}"]  # fmt: skip
TASK_NAMES = ["alpha", "beta", "quick", "prog", "$_quiv_last_job", "'two words'", "ñ"]
JUNK = ["'", '"', "\\", "%", "$", ";", "&&", "💥", "<b>", "x" * 300, "--every=", "--bar=none", "\t"]
VOCABULARY = [*OPTIONS, *DURATIONS, *BARS, *STATUSES, *COUNTS, *ADDRESSES, *FUNCS, *TASK_NAMES, *JUNK]


def _opt(name: str, values: list[str]) -> Any:
    return hs.sampled_from(values).map(lambda v: [name, v])


def _flat(*parts: Any) -> list[str]:
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        else:
            for item in part:
                out.extend([item] if isinstance(item, str) else item)
    return out


_ADD_OPTIONS = hs.lists(
    _opt("--every", DURATIONS) | hs.just(["--once"]) | _opt("--delay", DURATIONS) | _opt("--timeout", DURATIONS)
    | _opt("--retries", COUNTS) | _opt("--bar", BARS),
    max_size=3,
)  # fmt: skip
_names, _funcs = hs.sampled_from(TASK_NAMES), hs.sampled_from(FUNCS)


def _optional(strategy: Any) -> Any:
    """Zero or one of `strategy`, as a list."""
    return hs.lists(strategy, max_size=1)


# Lines that follow the grammar (so they get past argparse and reach the scheduler) ...
GRAMMAR = hs.one_of(
    hs.builds(lambda n, f, o: _flat("add", [n, f], o), _names, _funcs, _ADD_OPTIONS),
    hs.builds(lambda f, o: _flat("run", [f], o), _funcs, _optional(_opt("--bar", BARS))),
    hs.builds(lambda t, o: _flat("wait", t, o), _optional(_names), _optional(_opt("--timeout", DURATIONS))),
    hs.builds(lambda c, t: [c, t], hs.sampled_from(["cancel", "pause", "resume", "remove"]), _names),
    hs.builds(lambda o: _flat("jobs", o), _optional(_opt("--status", STATUSES))),
    hs.builds(lambda a, o: _flat("cluster", [a], o), hs.sampled_from(ADDRESSES), _optional(_opt("--workers", COUNTS))),
    hs.sampled_from([["tasks"], ["stop"], ["status"], []]),
)
# ... the same with a token dropped or a junk token put in ...
MUTATED = hs.builds(
    lambda words, i, junk, drop: [*words[:i], *words[i + 1 :]] if drop else [*words[:i], junk, *words[i:]],
    GRAMMAR,
    hs.integers(0, 6),
    hs.sampled_from(VOCABULARY),
    hs.booleans(),
)
# ... and word salad.
SALAD = hs.builds(
    lambda sub, rest: [sub, *rest], hs.sampled_from(SUBCOMMANDS), hs.lists(hs.sampled_from(VOCABULARY), max_size=6)
)
# ... and plain operations on the tasks the examples add.
TASK_OPS = hs.builds(
    lambda c, t: [c, t],
    hs.sampled_from(["pause", "resume", "remove", "cancel", "wait"]),
    hs.sampled_from(["alpha", "beta", "quick"]),
)
line = hs.one_of(GRAMMAR, MUTATED, SALAD, TASK_OPS).map(lambda words: " ".join(words).strip())
# Valid adds open most examples, so later lines (wait, pause, cancel, remove, tasks) find real tasks.
VALID_ADD = hs.builds(
    lambda n, f, when, o: " ".join(_flat("add", [n, f], [when], o)),
    hs.sampled_from(["alpha", "beta", "quick"]),
    hs.sampled_from(["quick", "prog", "aquick", "fails", "stopper", "obj.method"]),
    hs.sampled_from([["--every", "500ms"], ["--every", "1h"], ["--once", "--delay", "1h"]]),
    hs.lists(
        _opt("--delay", ["1h", "99999999999h"])
        | _opt("--timeout", ["1s", "99999999999h"])
        | _opt("--retries", ["1"])
        | _opt("--bar", ["none", "tqdm", "widget"]),
        max_size=2,
        unique_by=lambda o: o[0],
    ),
)
LINES = hs.builds(
    lambda setup, rest: [*setup, *rest], hs.lists(VALID_ADD, max_size=2), hs.lists(line, min_size=1, max_size=5)
)


def _capped(text: str) -> str:
    """A wait line gets a short timeout last (argparse keeps the last one): no fuzzed wait can hang."""
    return f"{text} --timeout 20ms" if text.split(" ", 1)[0] == "wait" else text


def _assert_scheduler_alive(grace: float = 0.0) -> None:
    """The kernel scheduler, if any, still fires jobs: its thread did not die on what the lines set up.

    A thread that dies does so as it goes back to sleep, just after firing the probe; `grace` > 0
    also waits that long for such a death (a join that times out when all is well).
    """
    scheduler = current_scheduler()
    if scheduler is None:
        return
    assert scheduler.is_running
    probe = scheduler.add_task("probe", lambda: "alive", run_once=True, delay=0.001)  # fired by the thread
    assert scheduler.wait_for_task(probe, timeout=WAIT).result == "alive"
    if grace:
        scheduler._thread.join(grace)
    assert scheduler.is_running, "the scheduler thread died"


@settings(FUZZ, max_examples=250)
@given(LINES)
def test_any_quiv_line_succeeds_or_raises_usage_error(shell: Any, errors: ErrorLog, lines: list[str]) -> None:
    from IPython.core.error import UsageError

    from quiv_nb.errors import JobCancelledError, JobFailedError

    errors.records.clear()
    try:
        for text in lines:
            text = _capped(text)
            try:
                shell.run_line_magic("quiv", text)
            except (UsageError, _ReachedDask):
                pass
            except (JobFailedError, JobCancelledError):  # `wait` on a job that failed or was cancelled
                assert text.startswith("wait"), f"%quiv {text!r} raised a job's failure"
            except BaseException as exc:
                raise AssertionError(f"%quiv {text!r} raised {type(exc).__name__}: {exc}") from exc
            scheduler = current_scheduler()
            assert scheduler is None or scheduler.is_running, f"%quiv {text!r} left a dead scheduler"
        _assert_scheduler_alive()
    finally:
        reset_scheduler()
    assert errors.unexpected() == []


@pytest.mark.parametrize(
    "text",
    [
        "add far quick --delay 99999999999h",  # a first run past the platform's lock timeout
        "add far quick --every 99999999999h",  # a next run past datetime's range (tasks shows it)
        "add far quick --once --timeout 99999999999h",
        "add far quick --once --delay 1s --retries 2",
    ],
)
def test_absurd_durations_keep_the_scheduler_alive(shell: Any, errors: ErrorLog, text: str) -> None:
    """Found by the fuzz above; kept as plain examples so they run on every change."""
    from IPython.core.error import UsageError

    errors.records.clear()
    try:
        for one in (text, "tasks", "jobs", "wait far --timeout 20ms", "pause far", "resume far", "tasks"):
            try:
                shell.run_line_magic("quiv", one)
            except UsageError:
                pass
        _assert_scheduler_alive(grace=0.2)
    finally:
        reset_scheduler()
    assert errors.unexpected() == []


# ====================================================================== payloads


class Big(str):
    """A long string that reprs short (hypothesis prints examples)."""

    def __repr__(self) -> str:
        return f"Big({self[:20]!r}... {len(self)} chars)"


MEGABYTE = Big("<script>alert(1)</script>" + "x" * 1_000_000)
BIG_KEY = Big("<k>" + "k" * 100_000)


class Hostile:
    """Every conversion a renderer might try raises (but not repr: hypothesis prints examples)."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        return "Hostile()"

    def __format__(self, spec: str) -> str:
        raise RuntimeError("no format")

    def __float__(self) -> float:
        raise RuntimeError("no float")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")

    __hash__ = object.__hash__


NUMBERS = hs.integers(-(10**30), 10**30) | hs.sampled_from([10**400, -(10**400)])
NUMBERS = (
    NUMBERS
    | hs.floats(allow_nan=True, allow_infinity=True)
    | hs.sampled_from([Decimal("NaN"), Decimal("-Infinity"), Decimal("1e999"), Fraction(1, 3), 1 + 2j, True, False])
)
TEXTS = hs.text(max_size=40) | hs.sampled_from(
    ["<b>bold</b>", "a & b < c", "\"quoted\" 'single'", "\x1b[31mred\x1b[0m", "line\nbreak\r\x00", "\ud800", MEGABYTE]
)
SCALARS = hs.none() | NUMBERS | TEXTS | hs.binary(max_size=20) | hs.sampled_from([b"<b>bytes</b>", Hostile(), object()])
VALUES_ = hs.recursive(
    SCALARS,
    lambda inner: (
        hs.lists(inner, max_size=3)
        | hs.lists(inner, max_size=3).map(tuple)
        | hs.dictionaries(hs.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
KEYS = hs.sampled_from(
    ["step", "progress", "n", "total", "pct", "stage", "desc", "message", "loss", "self", "<k>", BIG_KEY]
)
KEYS = KEYS | hs.text(max_size=12)
KWARGS = hs.dictionaries(KEYS, VALUES_, max_size=8)
ARGS = hs.lists(VALUES_, max_size=4).map(tuple) | hs.tuples(NUMBERS, NUMBERS)  # (step, total), step > total too
PAYLOADS = hs.lists(hs.tuples(ARGS, KWARGS), min_size=1, max_size=4)
FINALS = hs.tuples(
    hs.sampled_from(["completed", "failed", "cancelled", "weird", ""]),
    hs.none() | TEXTS,
    hs.none() | hs.floats(allow_nan=True, allow_infinity=True),
)

# The bar's own markup: status spans, and the constant <style> block of striped (indeterminate / skipped) bars.
_LABEL_MARKUP = re.compile(r'(?:<span title="(?P<title>[^"<>]*)">(?P<inner>.*)</span>)?', re.S)  # empty: no label
_OWN_MARKUP = re.compile(r'<span style="[^"<>]*"(?: title="[^"<>]*")?>|</span>|<style>[^<]*</style>')


def _make(kind: str) -> Any:
    if kind == "widget":
        return quiv_nb.bar("widget", display=False, min_interval=0, desc="<i>desc</i>")
    return quiv_nb.bar(kind, file=io.StringIO(), min_interval=0, desc="<i>desc</i>")


def _check(renderer: Any) -> None:
    """Whatever was fed: a bounded, escaped, finite display."""
    line = renderer.line
    assert isinstance(line, str) and len(line) < 1_000
    if renderer.kind == "widget":
        label, progress, text = renderer.widget.children
        # the label inside its own hover-title span; desc and payload label are escaped in both places
        own = _LABEL_MARKUP.fullmatch(label.value)
        assert own is not None, label.value[:300]
        inner, title = own["inner"] or "", own["title"] or ""
        assert "<" not in inner and html.unescape(title) == html.unescape(inner)
        assert len(html.unescape(inner)) <= 2 * st.MAX_LABEL + 2
        assert "<" not in _OWN_MARKUP.sub("", text.value), text.value[:300]
        assert len(text.value) < 4_000
        assert math.isfinite(progress.max) and progress.max > 0
        assert math.isfinite(progress.value) and 0 <= progress.value <= progress.max
    else:
        out = renderer._file.getvalue()
        rows = re.split(r"[\r\n]", out)
        assert all(len(row) < 1_000 for row in rows), max(rows, key=len)[:300]
        assert not any(ord(c) < 32 and c not in "\r\n" for c in out)
        assert len(out) < 200_000  # a megabyte payload never reaches the stream


def _draw(renderer: Any) -> None:
    assert get_pump().flush(WAIT), "the pump did not finish drawing"
    _check(renderer)


@FUZZ
@given(PAYLOADS, PAYLOADS, FINALS)
@pytest.mark.parametrize("kind", ["widget", "tqdm", "text"])
def test_any_payload_renders_in_every_kind(
    errors: ErrorLog, kind: str, payloads: list[Any], later: list[Any], final: tuple[Any, Any, Any]
) -> None:
    errors.records.clear()
    renderer = _make(kind)
    try:
        job = types.SimpleNamespace(job_id="job-1", status="running", error_message=None, duration_seconds=None)
        renderer.quiv_job_started(job)
        for args, kwargs in payloads:
            renderer.quiv_progress("job-1", args, kwargs)  # the scheduler's hook path (any keys)
            renderer(*args, **{k: v for k, v in kwargs.items() if isinstance(k, str)})  # callback(*a, **kw)
        _draw(renderer)
        status, message, duration = final
        renderer.quiv_job_finished(
            types.SimpleNamespace(job_id="job-1", status=status, error_message=message, duration_seconds=duration)
        )
        assert renderer.wait_drawn(WAIT)
        _draw(renderer)
        for args, kwargs in later:  # a job-less run after the job's
            renderer(*args, **{k: v for k, v in kwargs.items() if isinstance(k, str)})
        _draw(renderer)
    finally:
        renderer.close()
    assert errors.records == [], [r.getMessage() for r in errors.records]
