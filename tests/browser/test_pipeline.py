"""``notebooks/pipeline.ipynb`` run as a person would (Run All) in JupyterLab 4 and Notebook 7, asserted from the page.

1. While Run All runs, an in-page recorder notes when each step's bar (found by its label) is first drawn running
   and first drawn completed: no step is drawn running or completed before the step it runs after completed, and
   the dashboard's recent jobs list them ending strictly in order (extract, transform, the two summaries, load);
   every chain bar ends green.
2. The quality gate's bar ends red; ``publish``'s ends grey and striped (``quiv-skipped``) with a text naming the
   upstream that failed.
3. The dashboard rows say what each task runs after (``after extract``, ``after regions, outliers``) and show the
   cron schedule of ``extract``; the ``publish`` row's last run is the skip.
4. No traceback or broken widget anywhere.

Screenshots: ``<app>-pipeline.png`` (the fan-out cell's bars), ``<app>-pipeline-extract.png``,
``<app>-pipeline-transform.png`` and ``<app>-pipeline-dashboard.png``.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

NOTEBOOK = "pipeline.ipynb"
CHAIN = ("extract", "transform", "regions", "outliers", "load")
PAIRS = (  # (upstream, downstream) along the chain
    ("extract", "transform"),
    ("transform", "regions"),
    ("transform", "outliers"),
    ("regions", "load"),
    ("outliers", "load"),
)
GREEN = "rgb(56, 142, 60)"
RED = "rgb(211, 47, 47)"
GREY = "rgb(158, 158, 158)"

# A bar's label: the text of its first part (the label widget of a live bar, the first span of a static one).
_LABEL = "const _label = (box) => ((box.firstElementChild || {}).textContent || '').trim();"

# Every 10 ms: for each quiv bar (live widget or static final rendering), the first time (ms since install) it is
# seen in each state, keyed by its label (the task's name).
_RECORDER = (
    """() => {
    """
    + _LABEL
    + """
    const seen = {};
    window.__quivSeen = seen;
    const t0 = performance.now();
    window.__quivRecorder = setInterval(() => {
        for (const box of document.querySelectorAll('.quiv-bar')) {
            const name = _label(box);
            if (!name) continue;
            for (const state of ['running', 'completed', 'failed', 'skipped']) {
                if (!box.classList.contains('quiv-' + state)) continue;
                const rec = seen[name] = seen[name] || {};
                if (rec[state] === undefined) rec[state] = performance.now() - t0;
            }
        }
    }, 10);
}"""
)

# The final look of the bar labelled `name`: its classes, text, and the colour and background image of its fill.
_FINAL_BAR = (
    """(name) => {
    """
    + _LABEL
    + """
    for (const box of document.querySelectorAll('.quiv-bar')) {
        if (_label(box) !== name) continue;
        const text = (box.textContent || '').trim();
        const fill = box.querySelector('.progress-bar') || box.querySelector('.quiv-static-fill')
            || [...box.querySelectorAll('div')].find(d => getComputedStyle(d).backgroundColor !== 'rgba(0, 0, 0, 0)');
        const style = fill ? getComputedStyle(fill) : null;
        return {classes: [...box.classList], text, title: box.querySelector('[title]')?.title || '',
                color: style ? style.backgroundColor : null, image: style ? style.backgroundImage : null};
    }
    return null;
}"""
)


def _row(page, name: str, last: str = ""):
    """The dashboard row of task ``name`` (whose last job ended ``last``, if given)."""
    selector = ".quiv-dash-row" + (f".quiv-dash-last-{last}" if last else "")
    return page.locator(selector, has=page.locator(".quiv-dash-name", has_text=re.compile(f"^{name}$")))


def _final(nb, name: str, status: str, timeout: float = 30.0) -> dict:
    """Wait until the bar labelled ``name`` is drawn in its final ``status``; return how it looks."""
    deadline = time.monotonic() + timeout
    while True:
        bar = nb.page.evaluate(_FINAL_BAR, name)
        if bar is not None and f"quiv-{status}" in bar["classes"]:
            return bar
        assert time.monotonic() < deadline, f"bar {name!r} not {status} after {timeout:.0f}s: {bar}"
        nb.page.wait_for_timeout(100)


def _check_pipeline(nb, shot: str) -> None:
    nb.page.evaluate(_RECORDER)
    nb.run_all()
    nb.wait_until_executed()
    bars = {name: _final(nb, name, "completed") for name in CHAIN}
    gate = _final(nb, "quality-gate", "failed")
    publish = _final(nb, "publish", "skipped")
    seen = nb.page.evaluate("() => { clearInterval(window.__quivRecorder); return window.__quivSeen; }")

    # The chain, one after another, as the bars showed it: no step is drawn completed before the one it runs
    # after, nor drawn running before that one completed. (Two steps may turn green in one frame when the
    # machine is busy: the page draws what the kernel sent, coalesced, so the strict order is read below.)
    done = {name: seen[name]["completed"] for name in CHAIN}
    for earlier, later in PAIRS:
        assert done[earlier] <= done[later], (earlier, later, seen)
        if "running" in seen[later]:  # a short step may finish between two frames: then it is never seen running
            assert seen[later]["running"] >= done[earlier], (earlier, later, seen)
    for name, bar in bars.items():
        assert bar["color"] == GREEN, (name, bar)

    assert gate["color"] == RED and re.search(r"\d\.\d% of sales are outliers", gate["text"] + gate["title"]), gate
    assert publish["color"] == GREY and "linear-gradient" in (publish["image"] or ""), publish  # grey and striped
    reason = publish["text"] + " " + publish["title"]
    assert "skipped" in reason and "upstream 'quality-gate' failed" in reason, publish

    for source, suffix in (("extract_id = scheduler.add_task(", "extract"), ("%quiv add transform", "transform")):
        path = nb.screenshot(f"{shot}-pipeline-{suffix}", cell=nb.cell_index(source))
        shutil.copy(path, Path("/tmp") / path.name)
    cell = nb.cell_index('for name, func in (("regions", by_region)')
    path = nb.screenshot(f"{shot}-pipeline", cell=cell)
    shutil.copy(path, Path("/tmp") / path.name)

    # The dashboard: each task's schedule, and the skip as publish's last run.
    page = nb.page
    schedules = {
        "extract": "cron 0 6 * * 1-5 (Europe/Paris)",
        "transform": "after extract",
        "regions": "after transform",
        "outliers": "after transform",
        "quality-gate": "after outliers",
        "publish": "after quality-gate",
        "load": "after regions, outliers",
    }
    for name, schedule in schedules.items():
        _row(page, name).filter(has_text=schedule).wait_for(timeout=15_000)
    _row(page, "publish", last="skipped").filter(has_text="upstream 'quality-gate' failed").wait_for(timeout=15_000)
    _row(page, "quality-gate", last="failed").wait_for(timeout=15_000)
    _row(page, "load", last="completed").wait_for(timeout=15_000)
    # The strict order: the dashboard's recent jobs, newest first, by when each job ended.
    recent = page.locator(".quiv-dash-recent-table tr td:first-child").all_text_contents()
    ended = {name: recent.index(name) for name in CHAIN}
    for earlier, later in PAIRS:
        assert ended[earlier] > ended[later], (earlier, later, recent)
    dash = page.locator(".quiv-dash").first
    path = nb.screenshot(f"{shot}-pipeline-dashboard", element=dash)
    shutil.copy(path, Path("/tmp") / path.name)
    # The gate's failure is the notebook's point, not an error of the notebook: no traceback, no broken widget.
    assert nb.error_outputs() == []


def test_pipeline_in_lab(lab_page):
    _check_pipeline(lab_page(NOTEBOOK), "lab")


def test_pipeline_in_notebook7(notebook_page):
    _check_pipeline(notebook_page(NOTEBOOK), "notebook7")
