"""Classic Notebook 6.5 with widgetsnbextension 3.6 (the ipywidgets 7 frontend, as in Colab's runtime pins).

The server runs from the venv named by ``QUIV_CLASSIC_PYTHON`` (CI: the Colab-like venv with ipykernel 6.17,
ipywidgets 7.7, IPython 7.34, notebook 6.5.7); its kernel is that venv's too. The notebook
(``fixtures/classic-bars.ipynb``) starts a six-second job with a bar and shows the dashboard. The page must show the
bar moving (its width sampled while the job runs grows), then its final state, and the dashboard listing the
finished job; no cell may show an error.

Screenshots: ``tests/artifacts/classic-bars-running.png`` and ``classic-bars-final.png``.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

from ._server import JupyterServer
from .conftest import ARTIFACTS, VIEWPORT, _find_notebook

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def classic_server(tmp_path_factory):
    if not os.environ.get("QUIV_CLASSIC_PYTHON"):
        pytest.skip("QUIV_CLASSIC_PYTHON (a venv with notebook 6.5 and ipywidgets 7) is not set")
    server = JupyterServer("classic", tmp_path_factory.mktemp("jupyter-classic"))
    server.start()
    yield server
    server.stop()


def _bar_widths(page) -> list[float]:
    return page.evaluate(
        "() => [...document.querySelectorAll('.quiv-bar .progress-bar')].map(b => parseFloat(b.style.width) || 0)"
    )


def test_bars_move_and_end_and_the_dashboard_shows_in_classic_notebook(classic_server, browser):
    source = _find_notebook("classic-bars.ipynb")
    shutil.copy(source, classic_server.root_dir / source.name)
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        page.goto(classic_server.page_url(f"notebooks/{source.name}"), wait_until="domcontentloaded", timeout=60_000)
        page.wait_for_function(
            "() => window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel"
            " && Jupyter.notebook.kernel.is_connected()",
            timeout=90_000,
        )
        page.evaluate("() => Jupyter.notebook.execute_all_cells()")
        widths: list[float] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not page.locator(".quiv-bar.quiv-static").count():
            shown = [w for w in _bar_widths(page) if 0 < w < 100]
            if shown and (not widths or shown[0] != widths[-1]):
                widths.append(shown[0])
                if len(widths) == 3:
                    page.screenshot(path=str(ARTIFACTS / "classic-bars-running.png"))
            page.wait_for_timeout(100)
        assert len(widths) >= 3 and widths == sorted(widths), f"the bar did not move: widths seen {widths}"
        page.locator(".quiv-bar.quiv-static.quiv-completed").wait_for(timeout=30_000)
        # the run-once task is gone once its job ended: the dashboard lists that job under "recent jobs"
        page.locator(".quiv-dash .quiv-dash-job-completed", has_text="work").wait_for(timeout=30_000)
        page.locator(".quiv-dash-title", has_text="0 tasks").wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "classic-bars-final.png"), full_page=True)
        errors = page.evaluate(
            "() => [...document.querySelectorAll('.output_error, .output_stderr')].map(e => e.textContent)"
        )
        assert errors == [], errors
    finally:
        context.close()
        classic_server.shutdown_sessions()
