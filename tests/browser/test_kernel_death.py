"""What a notebook shows after its kernel died (SIGKILL), in JupyterLab and Notebook 7 (issue 17).

``fixtures/kernel-death.ipynb`` runs ``quick`` (ends at once: its saved output is already the final bar),
``later`` (ends after the save: the file still names its live widget model), ``forever`` (runs until the kernel
dies) and a ``%quiv`` dashboard, and prints the kernel's PID. The servers here keep a quiv_nb store (the tests'
default is none) and do not autosave, so the file holds exactly what the test saved.

A person saves, the kernel process is killed, the server restarts it and says so; they run the first cell again
(``%load_ext quiv_nb``: the new kernel reopens the dead kernel's bar models from the store), then reload the page,
then save, close and reopen the notebook. After the reload and after the reopen: ``forever`` reads
"interrupted (kernel died)", ``later`` and ``quick`` how they ended, and no bar reads "model not found".

Screenshots (``tests/artifacts/``): ``<app>-death-restarted.png`` (the server's dialog over the page right after
the automatic restart), ``<app>-death-reloaded-ext.png`` (after ``%load_ext`` in the new kernel),
``<app>-death-reloaded.png``, ``<app>-death-reopened.png``.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

NOTEBOOK = "kernel-death.ipynb"

_JS_TEXT = "(cell) => { const o = cell.querySelector('.jp-Cell-outputWrapper'); return o ? o.innerText : ''; }"

# What a bar or dashboard whose kernel went away shows: the page's own styles for a disconnected widget.
_JS_GONE = """(cell) => {
    const e = cell.querySelector('.quiv-bar.jupyter-widgets-disconnected, .quiv-dash.jupyter-widgets-disconnected');
    return e ? getComputedStyle(e, e.classList.contains('quiv-bar') ? '::after' : '::before').content : null;
}"""

# Where a bar's track starts: a bar reopened by the next kernel sits where a static end does (no jump).
_JS_TRACK = "(cell) => Math.round(cell.querySelector('.quiv-bar').children[1].getBoundingClientRect().left)"

_JS_KERNEL = "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"


def _text(nb, cell: int) -> str:
    """The innerText of cell ``cell``'s outputs: what a person reads there."""
    return nb.cell(cell).evaluate(_JS_TEXT)


def _views(store: Path) -> list[str]:
    """The plain text of each bar view the store recorded ([] before the kernel wrote one)."""
    if not store.exists():
        return []
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10)
    try:
        return [row[0] for row in con.execute("SELECT plain FROM views")]
    except sqlite3.OperationalError:  # no schema yet
        return []
    finally:
        con.close()


def _execute(nb, code: str) -> None:
    """Run ``code`` in the notebook's kernel without touching a cell."""
    nb.page.evaluate(
        "(code) => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.requestExecute({code}).done",
        code,
    )


def _bars_read_their_end(nb, cells: dict[str, int]) -> dict[str, str]:
    """Wait until every widget output rendered (or failed to) and ``forever``'s bar says how it ended; return each
    cell's text (after a reload or a reopen)."""

    def settled() -> dict[str, str] | None:
        texts = {name: _text(nb, cell) for name, cell in cells.items()}
        loading = any("Loading widget" in t for t in texts.values())
        return None if loading or "kernel died" not in texts["forever"] else texts

    texts = nb.poll("every output rendered, forever's 'interrupted (kernel died)'", settled)
    assert "forever" in texts["forever"] and "interrupted (kernel died)" in texts["forever"], texts
    assert "later" in texts["later"] and "done" in texts["later"] and "'late'" in texts["later"], texts
    assert "quick" in texts["quick"] and "done" in texts["quick"] and "[0, 1, 2]" in texts["quick"], texts
    assert [n for n in ("quick", "later", "forever") if "model not found" in texts[n]] == [], texts
    tracks = {name: nb.cell(cells[name]).evaluate(_JS_TRACK) for name in ("quick", "later", "forever")}
    assert max(tracks.values()) - min(tracks.values()) <= 1, tracks
    return texts


@pytest.mark.parametrize("app", ["lab", "notebook7"])
def test_after_a_kernel_death_the_bars_read_how_their_jobs_ended(request, app):
    server = request.getfixturevalue("lab_server_with_store" if app == "lab" else "notebook_server_with_store")
    nb = request.getfixturevalue("lab_page_with_store" if app == "lab" else "notebook_page_with_store")(NOTEBOOK)
    store = Path(server.extra_env["QUIV_NB_STORE"])
    cells = {name: nb.cell_index(f"%quiv run --bar widget {name}") for name in ("quick", "later", "forever")}
    cells["dashboard"] = nb.cell_index("%quiv", exact=True)
    nb.run_all()
    nb.wait_until_executed()
    nb.poll("later and forever running", lambda: all("running" in _text(nb, cells[n]) for n in ("later", "forever")))
    nb.save()  # the file names later's and forever's live widget models

    # later ends after the save (its end shows, unsaved). The bars record their afterlife on the kernel's store
    # writer thread: wait for both records, or the kill would race them.
    _execute(nb, "gate.set()")
    nb.poll("later's end on the page", lambda: "done" in _text(nb, cells["later"]))
    nb.poll("both afterlives in the store", lambda: (v := _views(store)) and any("kernel died" in t for t in v)
            and any(t.startswith("later") and "done" in t for t in v))  # fmt: skip

    # The kernel dies: SIGKILL to its PID, which this server started. The server restarts it and says so.
    pid = int(re.search(r"kernel pid (\d+)", _text(nb, nb.cell_index("os.getpid()"))).group(1))
    assert pid in server.kernel_pids(), (pid, server.kernel_pids())
    os.kill(pid, signal.SIGKILL)
    dialog = nb.page.locator(".jp-Dialog", has_text="appears to have died")
    dialog.wait_for(timeout=60_000)
    assert "restart automatically" in dialog.inner_text()
    nb.poll("the new kernel idle", lambda: nb.page.evaluate(_JS_KERNEL) == "idle")
    gone = nb.poll("forever's bar no longer running", lambda: nb.cell(cells["forever"]).evaluate(_JS_GONE))
    assert "interrupted" in gone, gone
    said = nb.poll("the dashboard says stopped", lambda: nb.cell(cells["dashboard"]).evaluate(_JS_GONE))
    assert "scheduler stopped" in said, said
    nb.screenshot(f"{app}-death-restarted")
    dialog.locator(".jp-mod-accept").click()
    dialog.wait_for(state="detached")
    nb.wait_until_ready()

    # The person runs the first cell again: the new kernel loads quiv_nb and reopens the dead kernel's bars.
    nb.page.evaluate(
        "async () => { const app = window.jupyterapp; app.shell.currentWidget.content.activeCellIndex = 0;"
        " await app.commands.execute('notebook:run-cell'); }"
    )
    nb.wait_until_ready()
    assert nb.error_outputs() == []
    nb.screenshot(f"{app}-death-reloaded-ext")

    # Reload: the page asks the new kernel for the models the saved outputs name.
    nb.reload()
    _bars_read_their_end(nb, cells)
    nb.screenshot(f"{app}-death-reloaded")

    # Save, close and reopen the notebook (the same kernel): the same.
    nb.save()
    nb.reopen()
    texts = _bars_read_their_end(nb, cells)
    nb.screenshot(f"{app}-death-reopened")
    assert "model not found" not in texts["dashboard"], texts
    assert "run %quiv for a live dashboard" in texts["dashboard"], texts  # its last state seen, as a static snapshot
