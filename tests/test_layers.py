"""The package's import graph: no cycles, imports point down the layers of docs/design.md, and one
module (kernel.py) detects and touches IPython / ipykernel.

Static (ast) over every import in quiv_nb, lazy ones inside functions included: a lazy import is
still an edge (it was how the old execution -> kernel -> scheduler -> execution cycle hid). The
package facade (`quiv_nb/__init__.py`, `__main__.py`) sits on top and is left out: every
submodule's import runs it first, which is Python's doing, not an edge of ours. A fresh
interpreter then imports each module alone, leaves first, which catches a cycle at import time.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "quiv_nb"
FACADE = {"quiv_nb", "quiv_nb.__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(name: str, path: Path) -> set[str]:
    """quiv_nb modules that `name` imports anywhere in its body (resolved, package-relative)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    # `if TYPE_CHECKING:` imports never run: they name types for annotations (seams.py declares
    # Protocols over the job types of execution.py this way). Every other import is an edge.
    for block in ast.walk(tree):
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test):
            block.body = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from . import kernel` names a module; `from .kernel import x` names the module itself.
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]
        for target in targets:
            while target and target not in MODULES:  # `import quiv_nb.render.pump` -> that module
                target = target.rpartition(".")[0]
            if target.startswith("quiv_nb") and target != name:
                found.add(target)
    return found


GRAPH = {name: imported_modules(name, path) for name, path in MODULES.items() if name not in FACADE}


def read_layers() -> dict[str, int]:
    """module -> layer number, from the numbered list under "## Layers" in docs/design.md.

    Each item is `N. `mod`, `mod` — what they are`; only the names before the dash count.
    """
    text = (ROOT / "docs" / "design.md").read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers: dict[str, int] = {}
    for number, names in re.findall(r"^(\d+)\. (.+)$", section, re.MULTILINE):
        for short in re.findall(r"`([\w.]+)`", names.split(" — ")[0]):  # the names before the dash
            layers[f"quiv_nb.{short}"] = int(number)
    return layers


def test_the_import_graph_has_no_cycle() -> None:
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == "open":
                cycle = [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state and nxt not in FACADE:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(GRAPH):
        if node not in state:
            visit(node, [node])


def test_imports_point_down_the_layers_of_the_design_doc() -> None:
    layers = read_layers()
    assert "quiv_nb.hooks" in layers and "quiv_nb.kernel" in layers, "docs/design.md lists no layers"
    for name in layers:
        assert name in MODULES, f"docs/design.md lists {name}, which does not exist"
    upward = [
        f"{src} (layer {layers[src]}) imports {dst} (layer {layers[dst]})"
        for src, targets in GRAPH.items()
        for dst in targets
        if src in layers and dst in layers and layers[dst] >= layers[src]
    ]
    assert upward == []


def test_hooks_is_a_leaf() -> None:
    assert GRAPH["quiv_nb.hooks"] == set()


def test_only_the_kernel_package_detects_ipython() -> None:
    """`get_ipython` and checks for IPython / ipykernel in sys.modules live in the kernel package alone."""
    detector = re.compile(r"get_ipython|sys\.modules(\.get)?\W+[\"'](IPython|ipykernel)")

    # The facade imports the kernel package once ipykernel is loaded; inside the package, shell.py detects.
    def allowed(name: str) -> bool:
        return name in ("quiv_nb", "quiv_nb.kernel") or name.startswith("quiv_nb.kernel.")

    offenders = [name for name, path in MODULES.items() if not allowed(name) and detector.search(path.read_text())]
    assert offenders == []


def _leaves_first() -> list[str]:
    order: list[str] = []

    def visit(node: str) -> None:
        if node in order or node in FACADE:
            return
        for nxt in sorted(GRAPH.get(node, ())):
            visit(nxt)
        order.append(node)

    for node in sorted(GRAPH):
        visit(node)
    return order


def test_each_module_imports_alone_in_a_fresh_interpreter() -> None:
    """One interpreter per module, leaves first: a module-level cycle would fail with ImportError."""
    script = (
        "import subprocess, sys\n"
        "for name in sys.argv[1:]:\n"
        "    r = subprocess.run([sys.executable, '-c', 'import ' + name], capture_output=True, text=True)\n"
        "    if r.returncode:\n"
        "        sys.exit(name + ': ' + r.stderr[-2000:])\n"
    )
    # quiv_nb.dask is left to the static checks: importing distributed alone takes seconds.
    names = [n for n in _leaves_first() if n != "quiv_nb.dask"]
    result = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
