"""Voilà 0.5 renders notebooks/quickstart.ipynb as an app: every bar shows how its job ended, no "model not found",
and the dashboard's buttons act.

A Voilà page connects to the kernel after the notebook ran and hears only the comm from then on: a display
replaced after its cell ran never reaches it, and a closed widget model shows "Error displaying widget: model not
found". A finished bar's end is drawn into its widgets first and their models stay open (docs/design.md, "How a bar
ends"), so the page shows them drawn final.

Screenshot: ``tests/artifacts/voila-quickstart.png`` (the whole page once every bar is drawn).
"""

from __future__ import annotations

import shutil
import time

import pytest

from ._server import JupyterServer
from .conftest import ARTIFACTS, REPO, VIEWPORT

pytestmark = pytest.mark.browser

# A bar's label is its first `span[title]`, in the widgets and in the static rendering alike (a bar that ended while
# its cell ran was replaced by the static one before the page saw it).
_JS_BARS = """() => Object.fromEntries([...document.querySelectorAll('.quiv-bar')].map(b => {
    const label = (b.querySelector('span[title]') || b).textContent.split(':')[0].trim();
    const status = [...b.classList].find(c => c.startsWith('quiv-') && c !== 'quiv-bar' && c !== 'quiv-static');
    return [label, {status, text: b.textContent}];
}))"""


@pytest.fixture(scope="module")
def voila_server(tmp_path_factory):
    pytest.importorskip("voila", reason="Voilà is not installed (pip install -e .[browser])")
    server = JupyterServer("voila", tmp_path_factory.mktemp("voila"))
    server.start()
    yield server
    server.stop()


def test_voila_renders_the_quickstart_with_every_finished_bar_final(voila_server, browser):
    shutil.copy(REPO / "notebooks" / "quickstart.ipynb", voila_server.root_dir / "quickstart.ipynb")
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        page.goto(voila_server.page_url("voila/render/quickstart.ipynb"), timeout=120_000)
        page.get_by_text("JOB ID").wait_for(timeout=120_000)  # the last cell's table: the notebook ran
        deadline, bars = time.monotonic() + 60, {}
        expected = {"train", "poller", "summing", "slow_export", "backfill", "flaky_source"}
        while time.monotonic() < deadline and set(bars) != expected:
            bars = page.evaluate(_JS_BARS)
            page.wait_for_timeout(200)
        assert set(bars) == expected, bars
        page.screenshot(path=str(ARTIFACTS / "voila-quickstart.png"), full_page=True)
        assert page.get_by_text("model not found").count() == 0
        assert bars["train"]["status"] == "quiv-completed", bars["train"]
        assert bars["backfill"]["status"] == "quiv-cancelled", bars["backfill"]
        assert bars["flaky_source"]["status"] == "quiv-failed", bars["flaky_source"]
        assert "source returned no rows" in bars["flaky_source"]["text"]
        for recurring in ("poller", "summing"):  # between runs or in one
            assert bars[recurring]["status"] in ("quiv-completed", "quiv-running"), bars[recurring]
        assert bars["slow_export"]["status"] == "quiv-running"  # a minute long: the reader may cancel it
        # the failure's text once per place: no two bare identical error lines under the failing job's cells
        lines = [line.strip() for line in page.evaluate("() => document.body.innerText").splitlines()]
        bare = [line for line in lines if line == "ValueError: source returned no rows"]
        assert len(bare) <= 1, bare  # the traceback's last line only
        # The dashboard's buttons act (the kernel is idle once the notebook ran): Pause the poller.
        row = page.locator(".quiv-dash-row", has=page.locator(".quiv-dash-name", has_text="poller"))
        row.locator(".quiv-dash-pause").click()
        page.locator(".quiv-dash-message-ok", has_text="paused 'poller'").wait_for(timeout=15_000)
        page.locator(
            ".quiv-dash-row.quiv-dash-status-paused", has=page.locator(".quiv-dash-name", has_text="poller")
        ).wait_for(timeout=15_000)
    finally:
        context.close()
