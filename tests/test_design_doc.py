"""docs/design.md says what the code does, where a test can tell: the threads table ("Threads and
loops") against every thread quiv_nb starts, and names the doc cites that must exist."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "design.md").read_text()


def _thread_rows() -> list[tuple[str, str]]:
    """(thread name, "started by" cell) for each `quiv_nb-*` row of the threads table."""
    section = DOC.split("## Threads and loops", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`quiv_nb-"):
            rows.append((cells[0].strip("`"), cells[1]))
    return rows


def test_every_thread_quiv_nb_starts_is_in_the_threads_table() -> None:
    listed = {path for _, started_by in _thread_rows() for path in re.findall(r"`([\w/]+\.py)`", started_by)}
    starting = {
        str(path.relative_to(ROOT / "quiv_nb"))
        for path in (ROOT / "quiv_nb").rglob("*.py")
        if "threading.Thread(" in path.read_text()
    }
    assert starting, "found no thread-starting module: the check reads the wrong place"
    assert starting <= listed, f"modules that start threads but are not in the threads table: {starting - listed}"


def test_each_thread_name_is_made_where_the_table_says() -> None:
    rows = _thread_rows()
    assert {name.split("-")[1].split("<")[0] for name, _ in rows} >= {"scheduler", "worker", "render", "dask"}
    for name, started_by in rows:
        prefix = re.split(r"[<N]", name, maxsplit=1)[0].rstrip("-")  # "quiv_nb-worker-N" -> "quiv_nb-worker"
        sources = "".join((ROOT / "quiv_nb" / path).read_text() for path in re.findall(r"`([\w/]+\.py)`", started_by))
        assert prefix in sources, f"{name} is not named in {started_by}"


def test_names_the_doc_cites_exist() -> None:
    cited = (
        "quiv_nb.dispatch.noop_hook", "quiv_nb.hooks.install_host", "quiv_nb.kernel.install", "quiv_nb.seams.Host",
        "quiv_nb.render.pump.close_pump", "quiv_nb.stopevent.StopEvent.set_later", "quiv_nb.reuse.keyed_submit",
    )  # fmt: skip
    for dotted in cited:
        module, _, attr = dotted.rpartition(".")
        try:
            owner = importlib.import_module(module)
        except ModuleNotFoundError:  # a class attribute: import its module, then the class
            module, _, cls = module.rpartition(".")
            owner = getattr(importlib.import_module(module), cls)
        assert hasattr(owner, attr), f"docs/design.md cites {dotted}, which does not exist"
    assert "quiv_nb.scheduler.noop_hook" not in DOC
