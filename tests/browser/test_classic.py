"""Classic Notebook 6.5 with widgetsnbextension 3.6 (the ipywidgets 7 frontend, as in Colab's runtime pins).

The server runs from the venv named by ``QUIV_CLASSIC_PYTHON`` (CI: the Colab-like venv with ipykernel 6.17,
ipywidgets 7.7, IPython 7.34, notebook 6.5.7); its kernel is that venv's too. The notebook
(``fixtures/classic-bars.ipynb``) starts a six-second job with a bar and shows the dashboard. The page must show the
bar moving (its width sampled while the job runs grows), then its final state, and the dashboard listing the
finished job; no cell may show an error.

A second notebook (``fixtures/classic-busy.ipynb``) clicks Cancel on the dashboard while ``time.sleep(20)`` runs: an
ipykernel 6 kernel has no subshells, so the page must say so within a second and the click act when the cell ends.

Screenshots: ``tests/artifacts/classic-bars-running.png``, ``classic-bars-final.png``, ``classic-busy-pending.png``
and ``classic-busy-after.png``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ._server import JupyterServer
from .conftest import ARTIFACTS, VIEWPORT

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def classic_server(tmp_path_factory):
    if not os.environ.get("QUIV_CLASSIC_PYTHON"):
        pytest.skip("QUIV_CLASSIC_PYTHON (a venv with notebook 6.5 and ipywidgets 7) is not set")
    server = JupyterServer("classic", tmp_path_factory.mktemp("jupyter-classic"))
    server.start()
    yield server
    server.stop()


def _open(server: JupyterServer, browser, name: str):
    """A page with a copy of fixture `name` open and its kernel connected."""
    source = Path(__file__).resolve().parent / "fixtures" / name
    shutil.copy(source, server.root_dir / source.name)
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(server.page_url(f"notebooks/{source.name}"), wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_function(
        "() => window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel && Jupyter.notebook.kernel.is_connected()",
        timeout=90_000,
    )
    # widgetsnbextension 3.6 asks the kernel for its widgets when it connects (comm_info), and on the answer clears
    # its models and rebuilds them: widgets displayed before that answer vanish. A busy first Run All would delay
    # it until the busy cell ends, so the first cell runs alone; its reply comes after the comm_info one (FIFO).
    page.evaluate("() => Jupyter.notebook.execute_cells([0])")
    page.wait_for_function("() => Jupyter.notebook.get_cell(0).input_prompt_number > 0", timeout=60_000)
    return context, page


def _errors(page) -> list[str]:
    return page.evaluate(
        "() => [...document.querySelectorAll('.output_error, .output_stderr')].map(e => e.textContent)"
    )


# Installed before the cells run: records, as the page renders them, the widths of the first quiv bar that
# appears (every redraw, however loaded the machine; a poll from the test would miss redraws in between).
_JS_RECORD_WIDTHS = """() => { window.quivWidths = [];
    new MutationObserver(() => {
        const bar = document.querySelector('.quiv-bar .progress-bar');
        const w = bar ? parseFloat(bar.style.width) || 0 : 0;
        const seen = window.quivWidths;
        if (w > 0 && w < 100 && (!seen.length || seen[seen.length - 1] !== w)) seen.push(w);
    }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['style']});
}"""


def test_bars_move_and_end_and_the_dashboard_shows_in_classic_notebook(classic_server, browser):
    context, page = _open(classic_server, browser, "classic-bars.ipynb")
    try:
        page.evaluate(_JS_RECORD_WIDTHS)
        page.evaluate("() => Jupyter.notebook.execute_cell_range(1, Jupyter.notebook.ncells())")
        page.locator(".quiv-bar.quiv-static.quiv-completed").wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "classic-bars-final-bar.png"))
        widths = page.evaluate("() => window.quivWidths")
        assert len(widths) >= 3 and widths == sorted(widths), f"the bar did not move forward: widths drawn {widths}"
        # the run-once task is gone once its job ended: the dashboard lists that job under "recent jobs"
        page.locator(".quiv-dash .quiv-dash-job-completed", has_text="work").wait_for(timeout=30_000)
        page.locator(".quiv-dash-title", has_text="0 tasks").wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "classic-bars-final.png"), full_page=True)
        assert _errors(page) == []
    finally:
        context.close()
        classic_server.shutdown_sessions()


_JS_CLICK_AND_TIME_NOTE = """
async ({timeout}) => {
    const row = [...document.querySelectorAll('.quiv-dash-row')]
        .find(r => (r.querySelector('.quiv-dash-name') || {}).textContent.trim() === 'patient');
    const t0 = performance.now();
    row.querySelector('.quiv-dash-cancel').click();
    for (;;) {
        const note = document.querySelector('.quiv-dash .quiv-dash-pending');
        const t = (performance.now() - t0) / 1000;
        if (note && note.offsetParent !== null) return {t, text: note.textContent, busy: Jupyter.notebook.kernel_busy};
        if (t > timeout) return {error: 'no pending note', t};
        await new Promise(r => requestAnimationFrame(r));
    }
}
"""


def test_a_cancel_during_a_busy_cell_is_acknowledged_and_acts_when_it_ends_in_classic_notebook(classic_server, browser):
    context, page = _open(classic_server, browser, "classic-busy.ipynb")
    try:
        page.evaluate("() => Jupyter.notebook.execute_cell_range(1, Jupyter.notebook.ncells())")
        # patient running under the dashboard, its bar moving, the sleep cell started
        page.wait_for_function(
            """() => { const row = [...document.querySelectorAll('.quiv-dash-row')]
                .find(r => (r.querySelector('.quiv-dash-name') || {}).textContent.trim() === 'patient');
                const bar = document.querySelector('.quiv-bar .progress-bar');
                const cells = Jupyter.notebook.get_cells();
                return !!row && row.classList.contains('quiv-dash-status-running')
                    && !!bar && parseFloat(bar.style.width) >= 3
                    && cells[2].input_prompt_number !== '*' && cells[3].input_prompt_number === '*'; }""",
            timeout=90_000,
        )
        result = page.evaluate(_JS_CLICK_AND_TIME_NOTE, {"timeout": 10})
        assert "error" not in result, result
        print(f"\n[classic, ipykernel 6] click -> pending note {result['t'] * 1000:.0f} ms: {result['text']}")
        assert result["busy"], result
        assert result["t"] < 1.0, f"the note showed {result['t']:.2f}s after the click"
        assert result["text"] == "Cancel 'patient': waiting for the running cell; will cancel when it ends"
        page.screenshot(path=str(ARTIFACTS / "classic-busy-pending.png"))
        page.locator(".quiv-dash-message-ok", has_text="cancel requested for 'patient'").wait_for(timeout=60_000)
        page.locator(".quiv-bar.quiv-cancelled").wait_for(timeout=30_000)
        page.locator(".quiv-dash-pending").wait_for(state="detached", timeout=5_000)
        page.screenshot(path=str(ARTIFACTS / "classic-busy-after.png"))
        assert _errors(page) == []
    finally:
        context.close()
        classic_server.shutdown_sessions()
