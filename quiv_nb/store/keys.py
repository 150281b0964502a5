"""Cache keys of cached steps: what a step's result depends on, as a hex digest (pure; any thread).

A key is the digest of: the task's name, its code (the handler's source with comments and
docstrings stripped, so reformatting a comment does not rerun a step) or the version pin given
instead, its arguments (pickled), and the keys of the upstream results it gets. The first three
are fixed when the task is added (`base_key`, on the adding thread); the upstream part is added
per run (`step_key`, after the scheduler lock is released: it may pickle an upstream result).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import pickle
import textwrap
from typing import Any, Callable

__all__ = ["Uncacheable", "base_key", "code_text", "result_key", "step_key"]

_PROTOCOL = 4  # fixed, so a key does not change with the interpreter's default pickle protocol


class Uncacheable(Exception):
    """A step's key cannot be computed (its code or arguments); the message says which."""


def _strip(tree: ast.AST) -> ast.AST:
    """Drop docstrings from every function, class and module body in `tree`."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def code_text(func: Callable[..., Any]) -> str:
    """`func`'s source without comments, docstrings or layout; its bytecode when there is no source.

    Raises `Uncacheable` when neither can be read (e.g. a builtin).
    """
    target = inspect.unwrap(func)
    target = getattr(target, "__func__", target)  # a bound method: its function
    try:
        source = textwrap.dedent(inspect.getsource(target))
        # `ast.unparse` drops comments and normalises layout; decorators stay (they change behaviour).
        return ast.unparse(_strip(ast.parse(source)))
    except (OSError, TypeError, SyntaxError):
        pass
    code = getattr(target, "__code__", None) or getattr(type(target).__call__, "__code__", None)
    if code is None:
        raise Uncacheable(f"the code of {func!r} cannot be read; give cache='v1' (a version pin) instead")
    return _code_bytes(code)


def _code_bytes(code: Any) -> str:
    """A stable text of a code object: its bytecode, names and constants (nested code included)."""
    consts = [_code_bytes(c) if hasattr(c, "co_code") else repr(c) for c in code.co_consts]
    return f"{code.co_code.hex()}|{code.co_names}|{consts}"


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def base_key(task_name: str, func: Callable[..., Any], pin: str | None, args: tuple[Any, ...], kwargs: dict) -> str:
    """The key of a task's runs before upstream results (adding thread); raises `Uncacheable`.

    A wrapper of quiv_nb's own with `quiv_cache_identity()` (a map body, `quiv_nb.mapping.MapBody`;
    an item-first call, `quiv_nb.mapfanout.item_first`) is keyed by the function it calls and what
    it binds, not by its own code; a `functools.partial` by the function it wraps, its bound
    arguments joining the arguments.
    """
    while True:
        identity = getattr(func, "quiv_cache_identity", None)
        if callable(identity):
            kind = type(func).__name__
            func, bound, extra = identity()
            args, kwargs = (kind, *args, bound), {**extra, **kwargs}
        elif isinstance(func, functools.partial):  # what the call passes: f(*bound, *args, **{**kw, **kwargs})
            args, kwargs = (*func.args, *args), {**func.keywords, **kwargs}
            func = func.func
        else:
            break
    code = pin if pin is not None else code_text(func)
    try:
        arguments = pickle.dumps((args, sorted(kwargs.items())), _PROTOCOL)
    except Exception as exc:
        raise Uncacheable(f"its arguments cannot be pickled to compute a cache key ({exc})") from None
    return _digest(task_name.encode(), ("pin:" if pin is not None else "code:").encode() + code.encode(), arguments)


def result_key(result: Any) -> str | None:
    """The key of an upstream result that is no cached step's: the digest of its pickle, None if unpicklable."""
    try:
        return _digest(pickle.dumps(result, _PROTOCOL))
    except Exception:
        return None


def step_key(base: str, upstream: dict[str, str]) -> str:
    """The key of one run: `base` plus `{upstream task name: that result's key}` (order-independent)."""
    if not upstream:
        return base
    return _digest(base.encode(), *(f"{name}\0{key}".encode() for name, key in sorted(upstream.items())))
