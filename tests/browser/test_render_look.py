"""How bars and the dashboard look at the default width (JupyterLab and Notebook 7), and that finished bars survive a
save and reload.

``fixtures/render_look.ipynb`` runs a bar with progress (``train``), one without (``quiet``), one failing with a long
error (``broken``), a skipped bar, and a dashboard with two tasks. Asserted from the DOM:

1. Every bar (live widget or static final rendering) is the same width; a running bar neither moves nor resizes
   while its text changes; no label is cut.
2. Finished bars are static renderings (``.quiv-static``) whose widget models are gone; the job without progress
   says ``done in … → 'ok'``; the long error is shortened with the full text in its ``title``.
3. Every dashboard row is one line at the default width (1280 px window), its buttons visible on that line; the
   progress text of a running job is not cut; after ``%quiv stop`` every row says "stopped" with no next run.
4. After saving and reloading the page, every finished bar still shows, and no output says
   "Error displaying widget".

Screenshots (``tests/artifacts/``; ``<app>`` is ``lab`` or ``notebook7``): ``<app>-render-running.png`` (bars
running), ``<app>-render-look.png`` (finished), ``<app>-render-dashboard.png`` (a job running),
``<app>-render-dashboard-stopped.png`` (after ``%quiv stop``) and ``<app>-render-reloaded.png``.
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.browser

NOTEBOOK = "render_look.ipynb"
BAR_WIDTH = 320  # quiv_nb.render.bar_look.BAR_WIDTH (not imported: the test reads the page, not the package)

_JS_BARS = """(scope) => [...scope.querySelectorAll('.quiv-bar')].map(b => {
    const track = b.querySelector('.widget-hprogress') || b.querySelector('.progress-bar').parentElement;
    const label = b.querySelector('.widget-html-content') || b.firstElementChild;
    const r = track.getBoundingClientRect();
    return {classes: b.className, width: Math.round(r.width), x: Math.round(r.left), text: b.textContent,
            labelCut: label ? label.scrollWidth > label.clientWidth + 1 : false,
            titles: [...b.querySelectorAll('[title]')].map(e => e.getAttribute('title'))};
})"""


def _bars(nb, cell: int) -> list[dict]:
    return nb.cell(cell).evaluate(_JS_BARS)


@pytest.mark.parametrize("app", ["lab", "notebook7"])
def test_bars_and_dashboard_read_well_and_survive_a_reload(request, app):
    nb = request.getfixturevalue("lab_page" if app == "lab" else "notebook_page")(NOTEBOOK)
    page = nb.page
    train, quiet, broken = (nb.cell_index(f"%quiv run {n}", exact=True) for n in ("train", "quiet", "broken"))
    skipped = nb.cell_index("skipped = quiv_nb.bar")
    dashboard = nb.cell_index("%quiv", exact=True)
    nb.run_all()

    # 1. The running train bar: fixed place and width while its text changes.
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        bars = _bars(nb, train)
        if bars and "quiv-static" in bars[0]["classes"]:
            break
        if bars and "quiv-running" in bars[0]["classes"]:
            seen.append((bars[0]["x"], bars[0]["width"], bars[0]["text"]))
            if len(seen) == 5:
                nb.screenshot(f"{app}-render-running")  # train part-way, quiet striped, broken running
        page.wait_for_timeout(50)
    assert len({text for _, _, text in seen}) >= 3, f"too few live redraws seen: {len(seen)}"
    assert {(x, width) for x, width, _ in seen} == {(seen[0][0], BAR_WIDTH)}, "the running bar moved or resized"

    nb.wait_until_executed(timeout=90)
    finals = {}
    for name, cell in (("train", train), ("quiet", quiet), ("broken", broken), ("skipped", skipped)):
        finals[name] = nb.poll(
            f"{name}'s static bar", lambda c=cell: [b for b in _bars(nb, c) if "quiv-static" in b["classes"]]
        )[0]
    assert {b["width"] for b in finals.values()} == {BAR_WIDTH}
    assert len({b["x"] for b in finals.values()}) == 1, finals  # the bars line up whatever their labels
    assert not any(b["labelCut"] for b in finals.values())
    assert "quiv-completed" in finals["train"]["classes"] and "80/80" in finals["train"]["text"]
    assert "done in " in finals["quiet"]["text"] and "→ 'ok'" in finals["quiet"]["text"]
    assert "it/s" not in finals["quiet"]["text"]
    long_error = finals["broken"]
    assert "…" in long_error["text"] and any(t.count("retry later") == 20 for t in long_error["titles"])
    assert "quiv-skipped" in finals["skipped"]["classes"] and "upstream 'transform' failed" in finals["skipped"]["text"]
    nb.screenshot(f"{app}-render-look")

    # 3. Dashboard rows on one line.
    dash = nb.cell(dashboard).locator(".quiv-dash")
    dash.locator(".quiv-dash-row").nth(2).wait_for(state="attached", timeout=30_000)
    export = dash.locator(".quiv-dash-row", has=page.locator(".quiv-dash-name", has_text="export"))
    export.locator(".quiv-dash-progress-text", has_text="exporting").wait_for(state="attached", timeout=30_000)
    rows_js = """rows => rows.filter(r => r.parentElement).map(r => {  // a redraw may detach a row meanwhile
            const kids = [...r.children].filter(k => getComputedStyle(k).display !== 'none');
            const boxes = kids.map(k => k.getBoundingClientRect()).filter(b => b.height > 0);  // empty text: 0 high
            const top = Math.max(...boxes.map(b => b.top)), bottom = Math.min(...boxes.map(b => b.bottom));
            const right = Math.max(...boxes.map(b => b.right));
            return {height: r.getBoundingClientRect().height, oneLine: top < bottom,
                    overflow: right > r.parentElement.getBoundingClientRect().right + 1};
        })"""

    def three_rows():  # the table is rebuilt when one-off tasks leave it: measure once it has settled on three
        found = dash.locator(".quiv-dash-row").evaluate_all(rows_js)
        return found if len(found) == 3 else None

    rows = nb.poll("three dashboard rows on the page", three_rows)
    assert len(rows) == 3 and all(r["oneLine"] and r["height"] < 48 and not r["overflow"] for r in rows), rows
    text = export.locator(".quiv-dash-progress-text").evaluate("e => [e.scrollWidth, e.clientWidth, e.textContent]")
    assert text[0] <= text[1] + 1 and "/600" in text[2], f"progress text cut: {text}"
    nb.screenshot(f"{app}-render-dashboard", element=dash)

    # States after `%quiv stop`: every row says stopped, none says running or shows a next run.
    page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.requestExecute({code: '%quiv stop'})"
    )
    dash.locator(".quiv-dash-title", has_text="scheduler stopped").wait_for(state="attached", timeout=30_000)
    nb.poll("every row stopped", lambda: dash.locator(".quiv-dash-row.quiv-dash-status-stopped").count() == 3)
    # Each row's cells are separate widgets, updated by separate messages: wait for the last to land.
    stopped_cells = ".quiv-dash-row .quiv-dash-next, .quiv-dash-row .quiv-dash-progress-text"
    nb.poll(
        "no next run or progress on a stopped row",
        lambda: all(c.strip() in ("—", "") for c in dash.locator(stopped_cells).all_text_contents()),
    )
    nb.screenshot(f"{app}-render-dashboard-stopped", element=dash)

    # 4. Save, reload: the finished bars are still there, and nothing failed to render.
    page.keyboard.press("Control+s")
    nb.poll("the save", lambda: page.evaluate(
        "() => { const w = window.jupyterapp.shell.currentWidget; return w && !w.context.model.dirty; }"
    ))  # fmt: skip
    page.reload()
    nb.wait_until_ready()
    for name, cell in (("train", train), ("quiet", quiet), ("broken", broken), ("skipped", skipped)):
        nb.poll(
            f"{name}'s bar after the reload",
            lambda c=cell: any("quiv-static" in b["classes"] for b in _bars(nb, c)),
        )
    broken_widgets = [e for e in nb.error_outputs(stderr=False) if "widget" in e.lower()]
    bar_cells = {train, quiet, broken, skipped}
    assert [e for e in broken_widgets if int(e.split(":")[0].split()[1]) in bar_cells] == []
    nb.screenshot(f"{app}-render-reloaded")
