"""The magics' pure parts, without a kernel: splitting a line, FUNC(args), the declared parsers and
their generated help, a `%%quiv` body's cell semantics, and how a finished job becomes a result
or a raised failure. What needs a kernel (cell ids, display, interrupts) is in test_magics.py.
"""

from __future__ import annotations

import asyncio
import inspect
import threading

import pytest
from IPython.core.error import UsageError

from quiv_nb.errors import JobCancelledError, JobFailedError
from quiv_nb.magics import QuivMagics
from quiv_nb.magics.args import split_line
from quiv_nb.magics.callexpr import parse_call
from quiv_nb.magics.cellbody import compile_cell
from quiv_nb.magics.registry import CELL, LINE, lookup, overview
from quiv_nb.magics.results import failure_of, result_of, user_frames
from quiv_nb.models import Job, JobStatus

# ---------------------------------------------------------------------- splitting a line


@pytest.mark.parametrize(
    "line, words",
    [
        ("run train", ["run", "train"]),
        ("run train(epochs=5, lr=0.1)", ["run", "train(epochs=5, lr=0.1)"]),
        ('add nightly report(day="mon") --every 1d', ["add", "nightly", 'report(day="mon")', "--every", "1d"]),
        ("run f(')', x=[1, (2, 3)])", ["run", "f(')', x=[1, (2, 3)])"]),
        (
            'add x f --cron "0 9 * * 1-5" --tz Europe/Paris',
            ["add", "x", "f", "--cron", "0 9 * * 1-5", "--tz", "Europe/Paris"],
        ),
        ("wait train  # a comment (with a paren", ["wait", "train"]),
        ("run models.train(n=1)", ["run", "models.train(n=1)"]),
        (
            "add x f --after extract,clean --after load",
            ["add", "x", "f", "--after", "extract,clean", "--after", "load"],
        ),
    ],
)
def test_split_line_keeps_call_expressions_whole(line, words):
    assert split_line(line) == words


@pytest.mark.parametrize("line, fragment", [("run 'unbalanced", "cannot parse"), ("run f(1, 2", "unbalanced")])
def test_split_line_errors_are_usage_errors(line, fragment):
    with pytest.raises(UsageError, match=fragment):
        split_line(line)


# ---------------------------------------------------------------------- FUNC(args)


def _ns():
    def train(epochs=1, *, lr=0.1):
        return epochs, lr

    class Models:
        fit = staticmethod(train)

    return {"train": train, "models": Models, "n": 7, "cfg": {"lr": 0.5}, "xs": [1, 2]}


def test_parse_call_evaluates_arguments_in_the_namespace_when_the_line_runs():
    ns = _ns()
    call = parse_call("train(n * 2, **cfg)", ns)
    assert (call.func, call.name, call.args, call.kwargs) == (ns["train"], "train", (14,), {"lr": 0.5})
    ns["n"] = 1
    assert parse_call("train(n * 2, **cfg)", ns).args == (2,)
    assert parse_call("models.fit(*xs)", ns).args == (1, 2)
    assert parse_call("train", ns).args == ()
    assert parse_call("train([x for x in xs])", ns).args == ([1, 2],)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("train(epochs=)", "cannot read FUNC `train(epochs=)`"),
        ("train(epochs=nope)", "cannot evaluate the arguments of `train(epochs=nope)`: NameError"),
        ("train()()", "must be a function name or a call of one"),
        ("(lambda: 1)()", "must be a function name or a call of one"),
        ("missing(1)", "no function named 'missing'"),
        ("models.nothing", "has no attribute 'nothing'"),
        ("n", "is a int, not a function"),
        ("train(1, 1/0)", "ZeroDivisionError"),
    ],
)
def test_parse_call_rejects_bad_expressions_showing_them(text, fragment):
    with pytest.raises(UsageError) as info:
        parse_call(text, _ns())
    assert fragment in str(info.value)


# ---------------------------------------------------------------------- declared parsers and help


def test_every_usage_text_is_generated_from_the_declarations():
    text = overview()
    for command in [*LINE.values(), *CELL.values()]:
        assert command.usage in text  # the parser's own usage, not a copy
        assert command.summary and command.summary in text
        for action in command.parser._actions:
            for flag in action.option_strings:
                assert flag in command.help()
    assert QuivMagics.quiv.__doc__ == text == QuivMagics.quiv_cell.__doc__
    assert {"add", "run", "wait", "cancel", "log", "help"} <= set(LINE) and set(CELL) == {"every", "run"}


def test_add_parses_the_calendar_and_pipeline_flags():
    add = LINE["add"]
    opts = add.parse(["t", "f", "--after", "extract,clean", "--after", "load"])
    assert opts.after == [["extract", "clean"], ["load"]]
    opts = add.parse(["t", "f", "--cron", "0 9 * * 1-5", "--tz", "Europe/Paris", "--notify"])
    assert (opts.cron, opts.tz, opts.notify) == ("0 9 * * 1-5", "Europe/Paris", True)
    assert add.parse(["t", "f", "--at", "09:30"]).at == "09:30"
    assert CELL["run"].parse(["--name", "transform", "--after", "extract"]).after == [["extract"]]


@pytest.mark.parametrize(
    "words, fragment",
    [
        (["t", "f", "--at", "9h30"], "expected a time of day HH:MM"),
        (["t", "f", "--at", "24:00"], "expected a time of day HH:MM"),
        (["t", "f", "--tz", "Europe/Pari"], "unknown time zone 'Europe/Pari'"),
        (["t", "f", "--cron", "* * * * *", "--every", "5"], "not allowed with argument"),
        (["t", "f", "--at", "09:30", "--after", "x"], "not allowed with argument"),
        (["t", "f", "--after", "a,,b"], "expected task names separated by commas"),
        (["t", "f", "--every", "5q"], "bad duration '5q'"),
        (["t", "f", "--every", "banana"], "bad duration 'banana'"),
        (["t", "f", "--tz", "Mars/Base"], "unknown time zone 'Mars/Base'"),
        (["t", "f", "--cron", "61 * * * *"], "got '61 * * * *'"),
        (["t"], "the following arguments are required: FUNC"),
    ],
)
def test_add_usage_errors_are_one_line_naming_the_problem_and_the_help(words, fragment):
    with pytest.raises(UsageError) as info:
        LINE["add"].parse(words)
    message = str(info.value)
    assert fragment in message and "\n" not in message
    assert message.endswith("(usage: `%quiv help add`)")


def test_unknown_subcommands_suggest_the_closest():
    with pytest.raises(UsageError, match="unknown subcommand 'ad' for %quiv — did you mean 'add'\\?"):
        lookup("ad")
    with pytest.raises(UsageError, match="did you mean 'every'\\?"):
        lookup("evry", cell=True)
    with pytest.raises(UsageError) as info:
        lookup("zzzz")
    assert "did you mean" not in str(info.value)


# ---------------------------------------------------------------------- cell semantics


def _run(handler, job_id="J1", progress=None):
    """Call a compiled cell handler as the scheduler would, by its parameter names."""
    names = inspect.signature(handler).parameters
    values = {"_progress_hook": progress or (lambda *a, **k: None), "_stop_event": threading.Event(), "_job_id": job_id}
    result = handler(**{n: values[n] for n in names})
    return asyncio.run(result) if inspect.iscoroutine(result) else result


def test_cell_body_assignments_act_on_the_namespace_as_a_rerun_would():
    ns = {"count": 0, "doomed": 1, "data": [1, 2, 3]}
    body = """
count += 1
latest = job_id
del doomed
total: int = sum(data)
for k in range(2):
    pass
import math as m
(w := 5)
def helper():
    return job_id, progress is not None
class Box:
    owner = job_id
count
"""
    handler = compile_cell(body, ns, "<t>")
    assert _run(handler, "J1") == 1
    assert "doomed" not in ns
    ns["doomed"] = 2  # a second run of `del doomed` needs it back, exactly as re-running the cell would
    assert _run(handler, "J2") == 2
    assert ns["count"] == 2 and ns["latest"] == "J2" and "doomed" not in ns
    assert ns["total"] == 6 and ns["k"] == 1 and ns["m"].pi > 3 and ns["w"] == 5
    assert ns["helper"]() == ("J2", True)  # the closure keeps its run's values
    assert ns["Box"].owner == "J2"
    assert not {"progress", "stop_event", "job_id"} & set(ns)


def test_per_run_names_reach_comprehensions_closures_and_generators():
    ns = {"data": [1, 2, 3]}
    seen: list[dict] = []
    body = """
squares = [progress(step=i) or i * i for i in data]
lazy = sum(1 for _ in data if stop_event is not None)
tag = (lambda: job_id)()
def nested():
    return [job_id for _ in data]
ids = nested()
"""
    _run(compile_cell(body, ns, "<t>"), "J9", progress=lambda **kw: seen.append(kw))
    assert ns["squares"] == [1, 4, 9] and ns["lazy"] == 3 and ns["tag"] == "J9" and ns["ids"] == ["J9"] * 3
    assert seen == [{"step": 1}, {"step": 2}, {"step": 3}]
    assert "i" not in ns  # a comprehension's variable stays in it, as in a plain cell


def test_a_users_own_names_like_progress_are_not_touched():
    ns = {"progress": "mine"}
    _run(compile_cell("progress(step=1)\nx = 1", ns, "<t>"))
    assert ns["progress"] == "mine" and ns["x"] == 1


def test_top_level_await_makes_an_async_handler():
    ns: dict = {}
    handler = compile_cell("import asyncio\nawait asyncio.sleep(0)\ndone = True\n'ok'", ns, "<t>")
    assert inspect.iscoroutinefunction(handler)
    assert _run(handler) == "ok" and ns["done"] is True


def test_the_stop_event_is_requested_only_when_the_body_reads_it():
    assert "_stop_event" in inspect.signature(compile_cell("stop_event.is_set()", {}, "<t>")).parameters
    assert "_stop_event" not in inspect.signature(compile_cell("x = 1", {}, "<t>")).parameters


@pytest.mark.parametrize(
    "body, fragment",
    [("return 1", "'return' outside function"), ("yield 2", "'yield' outside function"), ("def f(:", "")],
)
def test_bodies_that_would_not_run_as_a_cell_are_usage_errors(body, fragment):
    with pytest.raises(UsageError, match="does not compile") as info:
        compile_cell(body, {}, "<t>")
    assert fragment in str(info.value)


def test_tracebacks_point_at_the_cells_own_lines():
    ns: dict = {}
    handler = compile_cell("x = 1\nraise ValueError('boom')", ns, "<quiv test cell>", first_line=2)
    with pytest.raises(ValueError) as info:
        _run(handler)
    frames = [f for f in info.traceback if str(f.path) == "<quiv test cell>"]
    assert frames and frames[-1].lineno + 1 == 3  # pytest's lineno is 0-based


# ---------------------------------------------------------------------- results and failures


def _job(status, **kw):
    base = dict(job_id="j1", task_id="t1", status=status, started_at=None, ended_at=None, duration_seconds=0.1)
    return Job(**{**base, "task_name": "flaky", **kw})


TB = (
    "Traceback (most recent call last):\n"
    '  File "/site/quiv_nb/execution.py", line 250, in run_call\n'
    "    result = call.func(*call.args, **kwargs)\n"
    '  File "/tmp/ipykernel_1/123.py", line 2, in flaky\n'
    "    raise KeyError('rows')\n"
    "KeyError: 'rows'\n"
)


def test_a_completed_job_gives_its_result():
    assert result_of(_job(JobStatus.COMPLETED, result={"a": 1}), {}) == {"a": 1}


def test_a_failed_job_raises_its_own_type_with_user_frames_only(monkeypatch):
    import quiv_nb.magics.results as results

    monkeypatch.setattr(results, "_QUIV_DIR", "/site/quiv_nb")
    job = _job(JobStatus.FAILED, error_message="KeyError: 'rows'", traceback=TB)
    with pytest.raises(KeyError) as info:
        result_of(job, {})
    exc = info.value
    assert isinstance(exc, JobFailedError) and type(exc).__name__ == "KeyError" and str(exc) == "'rows'"
    drawn = exc._render_traceback_()
    assert drawn[-1] == "KeyError: 'rows'" and "/tmp/ipykernel_1/123.py" in "\n".join(drawn)
    assert "run_call" not in "\n".join(drawn)


def test_a_failed_job_of_a_notebook_defined_type_raises_that_type():
    class RowsMissing(Exception):
        pass

    job = _job(JobStatus.FAILED, error_message="RowsMissing: none", traceback="RowsMissing: none\n")
    exc = failure_of(job, {"RowsMissing": RowsMissing})
    assert isinstance(exc, RowsMissing) and isinstance(exc, JobFailedError)
    unknown = failure_of(_job(JobStatus.FAILED, error_message="Gone: x", traceback=""), {})
    assert type(unknown).__name__ == "JobFailedError" and "Gone: x" in str(unknown)


@pytest.mark.parametrize(
    "status, message, fragment",
    [
        (JobStatus.CANCELLED, "cancelled", "job j1 of 'flaky' was cancelled; it has no result"),
        (JobStatus.CANCELLED, "timed out after 5s", "job j1 of 'flaky' timed out after 5s"),
        (JobStatus.SKIPPED, "upstream 'extract' failed", "was skipped: upstream 'extract' failed"),
    ],
)
def test_cancelled_timed_out_and_skipped_jobs_raise_a_clear_error(status, message, fragment):
    exc = failure_of(_job(status, error_message=message), {})
    assert isinstance(exc, JobCancelledError) and fragment in str(exc)
    assert exc._render_traceback_() == [f"JobCancelledError: {exc}"]


def test_user_frames_drops_quiv_and_stdlib_frames():
    import threading as stdlib_module

    stdlib_file = stdlib_module.__file__
    text = (
        "Traceback (most recent call last):\n"
        f'  File "{stdlib_file}", line 1, in run\n'
        "    x()\n"
        '  File "/home/me/analysis.py", line 3, in load\n'
        "    raise OSError('disk')\n"
        "OSError: disk\n"
    )
    assert user_frames(text) == [
        "Traceback (most recent call last):",
        '  File "/home/me/analysis.py", line 3, in load',
        "    raise OSError('disk')",
    ]
