"""`%quiv` and `%%quiv`: a thin parser over the public API.

Each subcommand is one small function. A bad line raises IPython's `UsageError` (a message and
the usage, no traceback); everything else goes through `quiv_nb.get_scheduler()`.
"""

from __future__ import annotations

import argparse
import ast
import math
import re
import shlex
from typing import Any, Callable

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from .errors import QuivError
from .kernel import get_scheduler, reset_scheduler, use_executor
from .models import Job, JobStatus

__all__ = ["QuivMagics", "parse_duration", "load_ipython_extension", "unload_ipython_extension"]

USAGE = """\
%quiv                                   live dashboard (same as %quiv status)
%quiv add NAME FUNC [--every DUR | --once] [--delay DUR] [--timeout DUR] [--retries N] [--bar auto|widget|tqdm|none]
%quiv run FUNC [--bar auto|widget|tqdm|none]   run once now; bar in this cell
%quiv wait [JOB_ID | TASK_NAME] [--timeout DUR]
%quiv cancel JOB_ID | TASK_NAME
%quiv pause | resume | remove TASK_NAME
%quiv tasks
%quiv jobs [--status scheduled|running|completed|cancelled|failed]
%quiv stop                              shut the kernel's scheduler down
%quiv cluster local [--workers N] | %quiv cluster ADDRESS    run jobs on Dask
%%quiv every DUR [--name NAME] [--bar ...]
    the cell body becomes a recurring handler; inside it `progress(...)` and `stop_event`
    are available, and the value of its last line is the job's result

Durations: 500ms, 10, 10s, 5m, 1h."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|min|h)?\s*$")
_UNITS = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}
_BARS = ("auto", "widget", "tqdm", "none")


def parse_duration(text: str) -> float:
    """'500ms' → 0.5, '10' / '10s' → 10, '5m' → 300, '1h' → 3600; UsageError otherwise."""
    match = _DURATION.match(str(text))
    seconds = float(match.group(1)) * _UNITS[match.group(2)] if match else 0.0
    if not 0 < seconds < math.inf:  # a few hundred digits parse to inf
        raise UsageError(
            f"bad duration {text!r}: use a positive number with an optional unit, e.g. 500ms, 10, 10s, 5m, 1h"
        )
    return seconds


class _Parser(argparse.ArgumentParser):
    """argparse that raises `UsageError` instead of printing and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}\n\nUsage:\n{USAGE}")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise UsageError(message or USAGE)


def _parser(prog: str, *args: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, add_help=False)
    for add in args:
        add(parser)
    return parser


def _bar_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bar", default="auto", choices=_BARS)


def _timeout_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=_duration_arg)


def _duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _make_bar(kind: str, name: str) -> Any:
    """The bar a magic shows in its cell, labelled with the task's name."""
    if kind == "none":
        return None
    from .render import bar

    return bar(kind, desc=name)


@magics_class
class QuivMagics(Magics):
    """%quiv line magic and %%quiv cell magic."""

    @line_magic
    def quiv(self, line: str) -> Any:
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"cannot parse {line!r}: {exc}") from None
        command, rest = (words[0], words[1:]) if words else ("status", [])
        handler = getattr(self, f"_cmd_{command}", None)
        if handler is None:
            raise UsageError(f"unknown subcommand {command!r}\n\nUsage:\n{USAGE}")
        try:
            return handler(rest)
        except QuivError as exc:
            raise UsageError(str(exc)) from None

    quiv.__doc__ = f"Schedule and watch background jobs.\n\n{USAGE}"

    @cell_magic("quiv")
    def quiv_cell(self, line: str, cell: str) -> None:
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"cannot parse {line!r}: {exc}") from None
        if not words or words[0] != "every":
            raise UsageError(f"%%quiv expects `every DUR [--name NAME] [--bar ...]`\n\nUsage:\n{USAGE}")
        parser = _parser(
            "%%quiv every",
            lambda p: p.add_argument("every", type=_duration_arg),
            lambda p: p.add_argument("--name"),
            _bar_option,
        )
        opts = parser.parse_args(words[1:])
        handler = _cell_handler(cell, self.shell.user_ns)
        name = opts.name or f"cell-{abs(hash(cell)) % 10**6:06d}"
        scheduler = get_scheduler()
        scheduler.add_task(
            name, handler, interval=opts.every, progress_callback=_make_bar(opts.bar, name), replace=True
        )
        print(f"quiv: task {name!r} runs every {_fmt_seconds(opts.every)} (re-running this cell replaces it)")

    quiv_cell.__doc__ = f"Run the cell body as a recurring background job.\n\n{USAGE}"

    # ------------------------------------------------------------------ subcommands

    def _cmd_status(self, args: list[str]) -> Any:
        _parser("%quiv status").parse_args(args)
        from .render.dashboard import dashboard

        return dashboard(get_scheduler())

    def _cmd_add(self, args: list[str]) -> None:
        def options(p: argparse.ArgumentParser) -> None:
            p.add_argument("name")
            p.add_argument("func")
            when = p.add_mutually_exclusive_group()
            when.add_argument("--every", type=_duration_arg)
            when.add_argument("--once", action="store_true")
            p.add_argument("--delay", type=_duration_arg)
            p.add_argument("--retries", type=_non_negative_int, default=0)

        opts = _parser("%quiv add", options, _timeout_option, _bar_option).parse_args(args)
        func = self._lookup(opts.func)
        scheduler = get_scheduler()
        scheduler.add_task(
            opts.name, func, interval=opts.every, delay=opts.delay, run_once=opts.every is None,
            progress_callback=_make_bar(opts.bar, opts.name), timeout=opts.timeout, max_retries=opts.retries,
            replace=True,
        )  # fmt: skip
        when = f"every {_fmt_seconds(opts.every)}" if opts.every else "once"
        print(f"quiv: task {opts.name!r} added ({when})")

    def _cmd_run(self, args: list[str]) -> str:
        opts = _parser("%quiv run", lambda p: p.add_argument("func"), _bar_option).parse_args(args)
        func = self._lookup(opts.func)
        scheduler = get_scheduler()
        task_id = scheduler.add_task(opts.func, func, run_once=True, progress_callback=_make_bar(opts.bar, opts.func))
        jobs = scheduler.get_all_jobs(task_id=task_id)
        job_id = jobs[-1].job_id if jobs else ""
        self.shell.user_ns["_quiv_last_job"] = job_id
        return _Quiet(job_id)

    def _cmd_wait(self, args: list[str]) -> None:
        opts = _parser("%quiv wait", lambda p: p.add_argument("target", nargs="?"), _timeout_option).parse_args(args)
        scheduler = get_scheduler()
        target = opts.target or self.shell.user_ns.get("_quiv_last_job")
        if not target:
            raise UsageError("nothing to wait for: name a JOB_ID or TASK_NAME (no `%quiv run` yet in this kernel)")
        try:
            # A job id; else the task's running or last job (a cell that adds a task and then
            # waits should see the run it just started, however fast); else its next job.
            job_id = self._job_of(target)
            if job_id is not None:
                job = scheduler.wait_for_job(job_id, timeout=opts.timeout)
            else:
                job = scheduler.wait_for_task(self._task_id(target), timeout=opts.timeout)
        except TimeoutError:
            raise UsageError(f"{target!r} did not finish within {_fmt_seconds(opts.timeout)}") from None
        print(_describe(job))

    def _cmd_cancel(self, args: list[str]) -> None:
        opts = _parser("%quiv cancel", lambda p: p.add_argument("target")).parse_args(args)
        scheduler = get_scheduler()
        job_id = self._job_of(opts.target)
        if job_id is None:
            self._task_id(opts.target)  # unknown name: UsageError
            print(f"quiv: task {opts.target!r} has no running job")
            return
        ok = scheduler.cancel_job(job_id)
        print(f"quiv: {'cancel requested for' if ok else 'already finished:'} job {job_id}")

    def _cmd_pause(self, args: list[str]) -> None:
        self._task_command("pause", args, lambda s, tid: s.pause_task(tid))

    def _cmd_resume(self, args: list[str]) -> None:
        self._task_command("resume", args, lambda s, tid: s.resume_task(tid))

    def _cmd_remove(self, args: list[str]) -> None:
        self._task_command("remove", args, lambda s, tid: s.remove_task(tid))

    def _cmd_tasks(self, args: list[str]) -> None:
        _parser("%quiv tasks").parse_args(args)
        tasks = get_scheduler().get_all_tasks()
        if not tasks:
            print("quiv: no tasks")
            return
        rows = [("NAME", "STATUS", "EVERY", "NEXT RUN", "TASK ID")]
        for t in tasks:
            every = _fmt_seconds(t.interval) if t.interval and not t.run_once else "once"
            nxt = t.next_run_at.strftime("%H:%M:%S") if t.next_run_at else "-"
            rows.append((t.task_name, str(t.status), every, nxt, t.task_id))
        print(_table(rows))

    def _cmd_jobs(self, args: list[str]) -> None:
        opts = _parser(
            "%quiv jobs", lambda p: p.add_argument("--status", choices=[s.value for s in JobStatus])
        ).parse_args(args)
        jobs = get_scheduler().get_all_jobs(status=opts.status)
        if not jobs:
            print("quiv: no jobs")
            return
        rows = [("TASK", "STATUS", "STARTED", "DURATION", "JOB ID", "ERROR")]
        for j in jobs[-50:]:
            started = j.started_at.strftime("%H:%M:%S") if j.started_at else "-"
            took = f"{j.duration_seconds:.2f}s" if j.duration_seconds is not None else "-"
            rows.append((j.task_name, str(j.status), started, took, j.job_id, (j.error_message or "")[:60]))
        print(_table(rows))

    def _cmd_stop(self, args: list[str]) -> None:
        _parser("%quiv stop").parse_args(args)
        reset_scheduler()
        print("quiv: scheduler stopped (the next %quiv command starts a fresh one)")

    def _cmd_cluster(self, args: list[str]) -> None:
        def options(p: argparse.ArgumentParser) -> None:
            p.add_argument("address")
            p.add_argument("--workers", type=_positive_int, default=2)

        opts = _parser("%quiv cluster", options).parse_args(args)
        try:
            from . import dask as quiv_dask
        except ImportError as exc:
            raise UsageError(f"%quiv cluster needs Dask: pip install 'quiv_nb[dask]' ({exc})") from None
        client = (
            quiv_dask.start_local_cluster(n_workers=opts.workers)
            if opts.address == "local"
            else quiv_dask.connect(opts.address)
        )
        use_executor(quiv_dask.DaskExecutor(client, close_client=True))
        print(f"quiv: jobs now run on Dask at {client.scheduler.address}")

    # ------------------------------------------------------------------ helpers

    def _lookup(self, dotted: str) -> Callable[..., Any]:
        """Find FUNC in the user namespace (dotted paths allowed)."""
        head, *rest = dotted.split(".")
        ns = self.shell.user_ns
        if head not in ns:
            raise UsageError(f"no function named {head!r} in the notebook namespace: define it in a cell first")
        obj = ns[head]
        for part in rest:
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise UsageError(f"{dotted!r}: {head!r} has no attribute {part!r}") from None
        if not callable(obj):
            raise UsageError(f"{dotted!r} is a {type(obj).__name__}, not a function")
        return obj

    @staticmethod
    def _job_of(target: str) -> str | None:
        """A job id, or the newest job (running or finished) of the task named `target`."""
        scheduler = get_scheduler()
        if _is_job(scheduler, target):
            return target
        jobs = [j for j in scheduler.get_all_jobs() if j.task_name == target]
        return jobs[-1].job_id if jobs else None

    @staticmethod
    def _task_id(name: str) -> str:
        scheduler = get_scheduler()
        matches = [t.task_id for t in scheduler.get_all_tasks() if t.task_name == name or t.task_id == name]
        if not matches:
            names = ", ".join(sorted({t.task_name for t in scheduler.get_all_tasks()})) or "none"
            raise UsageError(f"no task or job named {name!r} (tasks: {names})")
        return matches[-1]

    def _task_command(self, verb: str, args: list[str], act: Callable[[Any, str], None]) -> None:
        opts = _parser(f"%quiv {verb}", lambda p: p.add_argument("task")).parse_args(args)
        act(get_scheduler(), self._task_id(opts.task))
        print(f"quiv: {opts.task!r} {verb.rstrip('e')}ed")


class _Quiet(str):
    """A job id that a cell can capture (`jid = %quiv run f`) without echoing a long Out[]."""

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(f"quiv job {self}")


def _is_job(scheduler: Any, target: str) -> bool:
    try:
        scheduler.get_job(target)
    except QuivError:
        return False
    return True


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _describe(job: Job) -> str:
    took = f" in {job.duration_seconds:.2f}s" if job.duration_seconds is not None else ""
    text = f"quiv: job {job.job_id} of {job.task_name!r} {job.status}{took}"
    if job.error_message and job.error_message != str(job.status):
        text += f": {job.error_message}"
    if job.result is not None:
        text += f" -> {job.result!r}"[:200]
    return text


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _cell_handler(cell: str, user_ns: dict[str, Any]) -> Callable[..., Any]:
    """Compile a cell body into a handler that runs in the user namespace.

    The body becomes the body of a function with parameters `progress` and `stop_event`, so
    loops, comprehensions and nested functions see them; the value of a final expression is
    the job's result; `global x` publishes a name to the notebook. Top-level `await` makes it
    an async handler.
    """
    try:
        tree = ast.parse(cell or "pass", "<%%quiv cell>")
    except SyntaxError as exc:
        raise UsageError(f"the cell body does not compile: {exc}") from None
    body = tree.body or [ast.Pass()]
    if isinstance(body[-1], ast.Expr):
        body[-1] = ast.Return(value=body[-1].value)
    is_async = _has_top_level_await(body)
    args = ast.arguments(
        posonlyargs=[], args=[ast.arg("progress"), ast.arg("stop_event")], kwonlyargs=[], kw_defaults=[], defaults=[]
    )
    kind = ast.AsyncFunctionDef if is_async else ast.FunctionDef
    func = kind(name="__quiv_cell__", args=args, body=body, decorator_list=[], returns=None, type_params=[])
    module = ast.Module(body=[func], type_ignores=[])
    ast.fix_missing_locations(module)
    try:
        code = compile(module, "<%%quiv cell>", "exec")
    except SyntaxError as exc:
        raise UsageError(f"the cell body does not compile: {exc}") from None
    scope: dict[str, Any] = {}
    exec(code, user_ns, scope)
    body_func = scope["__quiv_cell__"]

    if is_async:

        async def cell_job(_progress_hook: Callable[..., None], _stop_event: Any) -> Any:
            return await body_func(_progress_hook, _stop_event)

    else:

        def cell_job(_progress_hook: Callable[..., None], _stop_event: Any) -> Any:
            return body_func(_progress_hook, _stop_event)

    return cell_job


def _has_top_level_await(body: list[ast.stmt]) -> bool:
    """True if `body` awaits outside any nested function (so it must become `async def`)."""
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Await, ast.AsyncFor, ast.AsyncWith)):
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return False


_loaded: dict[int, QuivMagics] = {}


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (idempotent: a second `%load_ext` changes nothing)."""
    if id(ipython) in _loaded:
        return
    magics = QuivMagics(ipython)
    ipython.register_magics(magics)
    _loaded[id(ipython)] = magics


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics and shut the kernel's scheduler down (mirror of loading)."""
    magics = _loaded.pop(id(ipython), None)
    if magics is not None:
        for kind in ("line", "cell"):
            ipython.magics_manager.magics[kind].pop("quiv", None)
    reset_scheduler()
