"""A `%%quiv` cell body as a job handler that behaves like re-running the cell.

What "like re-running the cell" means, and how it is done:

- Top-level assignments, augmented assignments (`count += 1`), `del`, imports, `def` and
  `class` act on the notebook namespace. The body is compiled as the body of a function whose
  globals are the notebook namespace, and every name the body binds at its top level is
  declared `global` in that function (the set comes from `symtable`, Python's own scope
  analysis, so `for` targets, `with ... as`, `except ... as`, walrus targets and match captures
  all count).
- `progress`, `stop_event` and `job_id` are that function's parameters: local to each run,
  never written to the notebook, and visible to nested functions, lambdas, comprehensions and
  generator expressions in the body as ordinary closure variables. So is `upstream` (or
  `_upstream`), the `{task name: result}` of the jobs that triggered a `--after` cell, where
  the body names it.

  Why not `exec(code, user_ns, per_run_locals)`: at module level a name defined in a nested
  scope is looked up in the *globals* (LOAD_GLOBAL), so `[progress(step=i) for i in ...]` or a
  helper `def` in the body would not see `progress`; and plain stores would land in the
  per-run locals, not the notebook.
- The value of a final expression statement is the job's result.
- Top-level `await` / `async for` / `async with` make the handler async (it then runs on a
  fresh event loop on its worker, like any async handler).
- The handler asks the scheduler for the stop event only if the body mentions `stop_event`, so
  a cancel is reported honestly: a sync body that never looks at it cannot be stopped, and an
  async one is cancelled at its next `await`.

`locals()` inside the body returns the three per-run names, not the notebook namespace; that is
the one visible difference from a plain cell.
"""

from __future__ import annotations

import ast
import inspect
import linecache
import symtable
from typing import Any, Callable

from IPython.core.error import UsageError

__all__ = ["PER_RUN", "compile_cell", "register_source"]

PER_RUN = ("progress", "stop_event", "job_id")
UPSTREAM = ("upstream", "_upstream")  # per run too, where the body names one: {upstream task name: result}
_FUNC = "__quiv_cell__"
_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def compile_cell(source: str, user_ns: dict[str, Any], filename: str, first_line: int = 1) -> Callable[..., Any]:
    """Compile `source` (a cell body, already through IPython's input transforms) into a handler
    whose globals are `user_ns`.

    `filename` is what tracebacks show (see `register_source`); `first_line` is the body's first
    line number in the cell. Runs on the kernel's main thread; raises `UsageError` for a body
    that would not compile as a cell.
    """
    try:
        # Compiled as the cell itself first: its syntax errors are a plain cell's errors
        # (e.g. `return` outside a function), and the code flags say whether it awaits.
        code = compile(source, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        tree = ast.parse(source, filename)
    except SyntaxError as exc:
        raise UsageError(f"the cell body does not compile: {exc}") from None
    is_async = bool(code.co_flags & inspect.CO_COROUTINE)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    wants_stop = "stop_event" in used
    # `upstream` / `_upstream` (the results of the tasks an `--after` cell runs after) are per-run
    # only where the body names them, so a notebook variable so named stays visible elsewhere.
    upstream = tuple(n for n in UPSTREAM if n in used)
    per_run = PER_RUN + upstream
    body = _function_body(tree.body)
    ast.increment_lineno(ast.Module(body=body, type_ignores=[]), first_line - 1)

    func_def = _function(body, is_async, per_run)
    names = sorted(_bound_names(func_def) - set(per_run))
    if names:
        func_def.body.insert(0, ast.Global(names=names))
    module = ast.Module(body=[func_def], type_ignores=[])
    ast.fix_missing_locations(module)
    try:
        compiled = compile(module, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise UsageError(f"the cell body does not compile: {exc}") from None
    scope: dict[str, Any] = {}
    exec(compiled, user_ns, scope)  # only defines the function; its globals are the notebook namespace
    return _wrap(scope[_FUNC], is_async, wants_stop, len(upstream))


def register_source(filename: str, source: str) -> None:
    """Make `source` what tracebacks show for `filename` (kept for the kernel's life, as cells are)."""
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)


def _function_body(statements: list[ast.stmt]) -> list[ast.stmt]:
    """The cell's statements as a function body: a final expression is returned, and
    annotated assignments become plain ones (a `global` name cannot be annotated in a function).
    """
    if any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in _top_level_nodes(statements)):
        raise UsageError("the cell body does not compile: 'yield' outside function")
    body = [_AnnotationsDropped().visit(s) for s in statements] or [ast.Pass()]
    body = [s for s in body if s is not None] or [ast.Pass()]
    if isinstance(body[-1], ast.Expr):
        body[-1] = ast.copy_location(ast.Return(value=body[-1].value), body[-1])
    return body


class _AnnotationsDropped(ast.NodeTransformer):
    """`x: int = 1` -> `x = 1` and `x: int` -> nothing, outside nested scopes."""

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.stmt | None:
        if not isinstance(node.target, ast.Name):
            return node
        if node.value is None:
            return ast.copy_location(ast.Pass(), node)
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)

    def _keep(self, node: ast.AST) -> ast.AST:
        return node  # a nested scope's annotations are its own business

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = _keep


def _top_level_nodes(statements: list[ast.stmt]) -> list[ast.AST]:
    """Every node of the statements outside nested functions and classes."""
    stack: list[ast.AST] = list(statements)
    seen: list[ast.AST] = []
    while stack:
        node = stack.pop()
        seen.append(node)
        if isinstance(node, _NESTED):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return seen


def _function(
    body: list[ast.stmt], is_async: bool, per_run: tuple[str, ...] = PER_RUN
) -> ast.FunctionDef | ast.AsyncFunctionDef:
    """`def __quiv_cell__(progress, stop_event, job_id[, upstream]): <body>` (async if the body awaits)."""
    params = ast.arguments(
        posonlyargs=[], args=[ast.arg(n) for n in per_run], kwonlyargs=[], kw_defaults=[], defaults=[]
    )
    kind = ast.AsyncFunctionDef if is_async else ast.FunctionDef
    func = kind(name=_FUNC, args=params, body=body, decorator_list=[], returns=None)
    if "type_params" in kind._fields:  # Python >= 3.12 requires the field
        setattr(func, "type_params", [])
    return func


def _bound_names(func_def: ast.stmt) -> set[str]:
    """The names the function body binds locally (what a module-level run would store)."""
    module = ast.Module(body=[func_def], type_ignores=[])
    ast.fix_missing_locations(module)
    table = symtable.symtable(ast.unparse(module), "<%%quiv cell>", "exec")
    (function,) = [t for t in table.get_children() if t.get_name() == _FUNC]
    return set(function.get_locals())  # type: ignore[attr-defined]


def _wrap(body: Callable[..., Any], is_async: bool, wants_stop: bool, upstream_names: int) -> Callable[..., Any]:
    """The handler the scheduler calls; the names in its signature are what it asks to be injected
    (by keyword): always the progress hook and job id, the stop event and upstream results only
    when the body names them (a cancel is then reported honestly, see the module docstring)."""
    wanted = ["_progress_hook", "_job_id"] + ["_stop_event"] * wants_stop + ["_upstream"] * bool(upstream_names)

    def args(progress: Any, job_id: str, stop: Any, upstream: Any) -> tuple[Any, ...]:
        return (progress, stop, job_id) + (upstream,) * upstream_names  # one per spelling the body uses

    if is_async:

        async def cell_job(_progress_hook: Any, _job_id: str, _stop_event: Any = None, _upstream: Any = None) -> Any:
            return await body(*args(_progress_hook, _job_id, _stop_event, _upstream))

    else:

        def cell_job(_progress_hook: Any, _job_id: str, _stop_event: Any = None, _upstream: Any = None) -> Any:  # type: ignore[misc]
            return body(*args(_progress_hook, _job_id, _stop_event, _upstream))

    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    cell_job.__signature__ = inspect.Signature([inspect.Parameter(n, positional) for n in wanted])  # type: ignore[attr-defined]
    return cell_job
