"""FUNC on a magic line: `train`, `pkg.train` or a call such as `train(epochs=5, data=df)`.

The callee is looked up, and the arguments evaluated, in the notebook namespace when the line
runs, so `%quiv run train(epochs=n)` uses today's `n`. Only a name or dotted name may be called:
anything else would run arbitrary code where the reader expects a function reference.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Callable

from IPython.core.error import UsageError

__all__ = ["Call", "parse_call"]


@dataclass(slots=True, frozen=True)
class Call:
    """A resolved FUNC: the function, the name its task gets, and the arguments to call it with."""

    func: Callable[..., Any]
    name: str  # the dotted callee as typed ("train", "models.train")
    text: str  # the whole expression as typed, for messages
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def parse_call(text: str, user_ns: dict[str, Any]) -> Call:
    """Resolve `text` in `user_ns`; raises `UsageError` quoting the expression when it cannot.

    Runs on the kernel's main thread; evaluating the arguments runs the user's code there.
    """
    try:
        node = ast.parse(text.strip(), "<FUNC>", mode="eval").body
    except SyntaxError as exc:
        raise UsageError(
            f"cannot read FUNC `{text}`: {exc.msg}; write a function name or a call like f(1, x=2)"
        ) from None
    call = node if isinstance(node, ast.Call) else None
    callee = call.func if call is not None else node
    dotted = _dotted(callee)
    if dotted is None:
        raise UsageError(
            f"FUNC `{text}` must be a function name or a call of one, like train or train(epochs=5); "
            "define anything more complex as a function in a cell first"
        )
    func = _lookup(dotted, user_ns)
    if call is None:
        return Call(func, dotted, text)
    args, kwargs = _arguments(call, text, user_ns)
    return Call(func, dotted, text, args, kwargs)


def _dotted(node: ast.expr) -> str | None:
    """'a.b.c' for a Name/Attribute chain, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _lookup(dotted: str, user_ns: dict[str, Any]) -> Callable[..., Any]:
    head, *rest = dotted.split(".")
    if head not in user_ns:
        raise UsageError(f"no function named {head!r} in the notebook namespace: define it in a cell first")
    obj = user_ns[head]
    for part in rest:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{dotted!r}: {head!r} has no attribute {part!r}") from None
    if not callable(obj):
        raise UsageError(f"{dotted!r} is a {type(obj).__name__}, not a function")
    return obj


def _arguments(call: ast.Call, text: str, user_ns: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Evaluate the call's arguments as Python would (`*xs` and `**kw` included)."""

    def capture(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return args, kwargs

    # The same argument list, applied to `capture` instead of the function: evaluation order,
    # starred arguments and duplicate keywords behave exactly as in a real call.
    probe = ast.Expression(ast.Call(ast.Name("__quiv_capture__", ast.Load()), call.args, call.keywords))
    ast.fix_missing_locations(probe)
    try:
        code = compile(probe, "<FUNC arguments>", "eval")
        return eval(code, user_ns, {"__quiv_capture__": capture})  # the namespace the line runs in
    except Exception as exc:
        raise UsageError(f"cannot evaluate the arguments of `{text}`: {type(exc).__name__}: {exc}") from None
