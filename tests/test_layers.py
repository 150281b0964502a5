"""The package's import graph: no cycles, imports point down the layers of docs/design.md (which
lists every module), one package (quiv_nb.kernel) detects and touches IPython / ipykernel, and
importing a module does nothing: outside a kernel, `quiv_nb` runs a job with a bar without
importing the kernel package or registering a hook.

Static (ast) over every import in quiv_nb, lazy ones inside functions included: a lazy import is
still an edge (it was how the old execution -> kernel -> scheduler -> execution cycle hid). The
package facade (`quiv_nb/__init__.py`, `__main__.py`) sits on top and is left out: every
submodule's import runs it first, which is Python's doing, not an edge of ours. A fresh
interpreter then imports each module alone, leaves first, which catches a cycle at import time.
"""

from __future__ import annotations

import ast
import importlib.util
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
    unlisted = sorted(name for name in MODULES if name not in layers and name not in FACADE)
    assert unlisted == [], f"docs/design.md's Layers list misses {unlisted}"
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
    """`get_ipython` and checks for IPython / ipykernel in sys.modules live in the kernel package alone.

    One exception: `hooks.install_host` asks whether ipykernel is loaded before it imports the
    kernel package by name (so nothing else has to import it).
    """
    detector = re.compile(
        r"get_ipython|sys\.modules(\.get)?\W+[\"'](IPython|ipykernel)|[\"'](IPython|ipykernel)[\"']\s+in\s+\w*sys\.modules"
    )

    def allowed(name: str) -> bool:
        return name in ("quiv_nb.hooks", "quiv_nb.kernel") or name.startswith("quiv_nb.kernel.")

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


# Run in a fresh interpreter after importing a module: nothing may be registered by the import.
_NO_HOOKS = (
    "from quiv_nb import hooks\n"
    "registered = {f: getattr(hooks, f)() for f in ('context_capturers', 'loop_resolvers', 'before_exit_steps',"
    " 'notify_attachers')}\n"
    "registered['wait_helper'] = hooks.wait_helper()\n"
    "registered['host'] = hooks.host()\n"
    "assert not any(registered.values()), f'registered on import: {registered}'\n"
)


def test_each_module_imports_alone_in_a_fresh_interpreter() -> None:
    """One interpreter per module, leaves first: a module-level cycle would fail with ImportError,
    and a module that registers a hook when imported fails the check that follows the import."""
    script = (
        "import subprocess, sys\n"
        "check = sys.argv[1]\n"
        "for name in sys.argv[2:]:\n"
        "    r = subprocess.run([sys.executable, '-c', 'import ' + name + '\\n' + check],"
        " capture_output=True, text=True)\n"
        "    if r.returncode:\n"
        "        sys.exit(name + ': ' + r.stderr[-2000:])\n"
    )
    # The Dask package needs the [dask] extra; without it only the static checks read it. With it,
    # its modules that import distributed at the top are still imported one by one (seconds each
    # would be too slow): quiv_nb.dask itself is left to the static checks.
    has_distributed = importlib.util.find_spec("distributed") is not None
    names = [
        n
        for n in _leaves_first()
        if n != "quiv_nb.dask" and (has_distributed or not n.startswith("quiv_nb.dask."))
    ]
    result = subprocess.run(
        [sys.executable, "-c", script, _NO_HOOKS, *names], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr


def test_outside_a_kernel_a_bar_and_a_job_load_nothing_of_the_kernel_package() -> None:
    """`import quiv_nb`, `quiv_nb.bar()` and a job run on it: no quiv_nb.kernel module, no hook."""
    script = (
        "import sys\n"
        "import quiv_nb\n"
        "b = quiv_nb.bar()\n"
        "q = quiv_nb.Quiv()\n"
        "q.start()\n"
        "def work(_progress_hook):\n"
        "    _progress_hook(step=1, total=1)\n"
        "    return 42\n"
        "job = q.wait_for_task(q.add_task('t', work, run_once=True, progress_callback=b, delay=0.05), timeout=30)\n"
        "assert job.result == 42, job\n"
        "q.shutdown()\n"
        "kernel = sorted(m for m in sys.modules if m == 'quiv_nb.kernel' or m.startswith('quiv_nb.kernel.'))\n"
        "assert kernel == [], f'imported outside a kernel: {kernel}'\n"
        "assert 'ipykernel' not in sys.modules and 'IPython' not in sys.modules\n"
    ) + _NO_HOOKS
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr


def test_no_module_reads_another_modules_private_names() -> None:
    """No `from quiv_nb.x import _name`, and no `x._name` on an imported quiv_nb module: add an accessor.

    A package-private helper module (`magics/cmd/_options.py`) may be imported by its own package.
    """
    offenders = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        ours: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("quiv_nb")):
                for alias in node.names:
                    sibling_module = node.level == 1 and node.module is None  # `from . import _options`
                    if alias.name.startswith("_") and not alias.name.startswith("__") and not sibling_module:
                        offenders.append(f"{name} imports {node.module}.{alias.name}")
                    ours.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                ours |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.startswith("quiv_nb")}
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in ours
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                offenders.append(f"{name} reads {node.value.id}.{node.attr}")
    assert offenders == []


def test_small_modules_and_classes() -> None:
    """No module over 450 lines and no class over 300 (docs/design.md; split by concern, not by size alone)."""
    too_long = []
    for name, path in MODULES.items():
        text = path.read_text()
        if text.count("\n") > 450:
            too_long.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > 300:
                    too_long.append(f"{name}.{node.name}: {size} lines")
    assert too_long == []
