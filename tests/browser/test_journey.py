"""Issue 12's user journey in JupyterLab 4 and Notebook 7: a person types cells into a fresh notebook, presses
Shift+Enter, reads what the page shows, saves, and reopens the notebook.

The notebook (``fixtures/journey.ipynb``) starts with one empty cell; every cell is typed on the keyboard into the
last cell and run with Shift+Enter (a cell is edited the same way: click, select all, type, Shift+Enter). Every
assertion reads the page: output text, classes, bounding boxes and ``title`` attributes. The steps:

1. ``%%quiv every 1s`` with ``latest = time.time()`` and ``count += 1``: a later cell sees ``count`` grow and
   ``latest`` set, with no UnboundLocalError anywhere.
2. The same cell edited (no ``--name``) and re-run replaces its task: ``%quiv tasks`` lists one "every" task.
5, 6, 7. ``%quiv run train(epochs=5)`` (unassigned): no ``Out[]``; the running bar keeps its place and width while
   its text changes.
3. Re-running that cell while train runs says it shows the running job's bar again, and starts no second job.
4, 5. ``r = %quiv wait`` gives ``'trained 5 epochs'`` (the argument got through).
6. ``%quiv run chatty``: the magic's message and the job's first print are on separate lines; no ``Out[]``.
4. ``%quiv run boom`` then ``%quiv wait boom``: the cell fails with ``ValueError`` (an error output, so Run All
   would stop), no quiv_nb frames in the traceback.
8. ``%quiv run quiet``: an indeterminate (striped) bar, ending "done in … → 'ok'".
9. ``%quiv run stubborn`` then ``%quiv cancel stubborn``: says at once (while the job still runs) that it cannot be
   stopped; the job is recorded completed with its result (its final bar, step 13).
11. ``%quiv ad x f`` suggests 'add'; ``%quiv help`` lists the subcommands.
12. ``%quiv run slow`` then ``%quiv wait slow`` interrupted with I,I: one line naming the job and how to cancel it.
10. ``%quiv``: one-line rows, progress text not cut; after ``%quiv stop`` every row says stopped; a new ``%quiv``
   on the fresh scheduler shows the helpful empty state.
7. Every bar in the notebook is the same width; no label is cut; the long error is shortened, full text in ``title``.
13. Save, shut the kernel down, reopen the notebook: every finished bar is still drawn (static), with the same
   text, and nothing says "Error displaying widget" / "model not found".

Screenshots: ``tests/artifacts/<app>-journey-<step>.png``.
"""

from __future__ import annotations

import re
import time

import pytest

pytestmark = pytest.mark.browser

NOTEBOOK = "journey.ipynb"
BAR_WIDTH = 320  # quiv_nb.render.bar_look.BAR_WIDTH (not imported: the test reads the page, not the package)

SETUP = """%load_ext quiv_nb
import time
count = 0
latest = None


def train(_progress_hook, _stop_event, epochs=2):
    for i in range(epochs * 10):
        if _stop_event.wait(0.1):
            return "stopped"
        _progress_hook(step=i + 1, total=epochs * 10, loss=1 / (i + 1))
    return f"trained {epochs} epochs"


def chatty():
    print("first line from the job")
    return 1


def boom():
    time.sleep(0.2)
    raise ValueError("the upstream service answered 503 Service Unavailable: " + "retry later; " * 20)


def quiet():
    time.sleep(2)
    return "ok"


def stubborn():
    time.sleep(6)
    return "finished anyway"


def slow(_progress_hook, _stop_event):
    for i in range(600):
        if _stop_event.wait(0.1):
            return "stopped"
        _progress_hook(step=i + 1, total=600)"""

_JS_CELL = """([i]) => {
    const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
    return {count: c.model.executionCount, state: c.model.executionState,
            outputs: c.model.outputs.toJSON().map(o => ({type: o.output_type, name: o.name || null,
                text: o.output_type === 'error' ? o.ename + ': ' + o.evalue + '\\n' + o.traceback.join('\\n')
                    : o.output_type === 'stream' ? (Array.isArray(o.text) ? o.text.join('') : o.text) : null,
                mimes: o.data ? Object.keys(o.data) : []}))};
}"""

_JS_LAST = """() => { const ws = window.jupyterapp.shell.currentWidget.content.widgets;
    return [ws.length, ws[ws.length - 1].model.sharedModel.getSource()]; }"""

_JS_BARS = """(scope) => [...scope.querySelectorAll('.quiv-bar')].map(b => {
    const track = b.querySelector('.widget-hprogress') || b.querySelector('.progress-bar').parentElement;
    const label = b.querySelector('.widget-html-content') || b.firstElementChild;
    const r = track.getBoundingClientRect();
    return {classes: b.className, width: Math.round(r.width), x: Math.round(r.left), text: b.textContent,
            labelCut: label ? label.scrollWidth > label.clientWidth + 1 : false,
            indeterminate: !!b.querySelector('.quiv-indeterminate'),
            titles: [...b.querySelectorAll('[title]')].map(e => e.getAttribute('title'))};
})"""

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Journey:
    """The person at the keyboard: types cells, runs them, reads them back."""

    def __init__(self, nb, app: str) -> None:
        self.nb, self.page, self.app = nb, nb.page, app
        self.shots: list[str] = []

    def cell_state(self, i: int) -> dict:
        return self.page.evaluate(_JS_CELL, [i])

    def type_cell(self, code: str, *, wait: bool = True, timeout: float = 60.0) -> int:
        """Type ``code`` into a new last cell and press Shift+Enter; wait until it ran (``wait``); its index."""
        count, source = self.page.evaluate(_JS_LAST)
        if source.strip():
            self.page.evaluate(
                """async () => { const app = window.jupyterapp, w = app.shell.currentWidget;
                w.content.activeCellIndex = w.content.widgets.length - 1;
                await app.commands.execute('notebook:insert-cell-below'); }"""
            )
            count += 1
        index = count - 1
        return self._type_into(index, code, wait=wait, timeout=timeout, replace=False)

    def edit_cell(self, index: int, code: str, *, timeout: float = 60.0) -> int:
        """Click into cell ``index``, select all, type ``code``, Shift+Enter; wait until it ran again."""
        return self._type_into(index, code, wait=True, timeout=timeout, replace=True)

    def rerun(self, index: int, *, timeout: float = 60.0) -> None:
        """Click into cell ``index`` and press Shift+Enter; wait until it ran again."""
        before = self.cell_state(index)["count"] or 0
        self.nb.cell(index).locator(".cm-content").click()
        self.page.keyboard.press("Shift+Enter")
        self.wait_ran(index, after=before, timeout=timeout)

    def wait_ran(self, index: int, *, after: int = 0, timeout: float = 60.0) -> dict:
        return self.nb.poll(
            f"cell {index} to run",
            lambda: (
                (s := self.cell_state(index))["count"] is not None
                and s["count"] > after
                and s["state"] != "running"
                and s
            ),
            timeout,
        )

    def output_text(self, index: int) -> str:
        """What the cell's output area shows, as the page renders it."""
        area = self.nb.cell(index).locator(".jp-Cell-outputArea, .jp-OutputArea").first
        return area.inner_text()

    def wait_text(self, index: int, text: str, timeout: float = 60.0) -> str:
        return self.nb.poll(
            f"{text!r} under cell {index}", lambda: text in (t := self.output_text(index)) and t, timeout
        )

    def bars(self, index: int) -> list[dict]:
        return self.nb.cell(index).evaluate(_JS_BARS)

    def shot(self, step: str, **kw) -> None:
        path = self.nb.screenshot(f"{self.app}-journey-{step}", **kw)
        self.shots.append(str(path))

    def _type_into(self, index: int, code: str, *, wait: bool, timeout: float, replace: bool) -> int:
        before = self.cell_state(index)["count"] or 0
        editor = self.nb.cell(index).locator(".cm-content")
        editor.scroll_into_view_if_needed()
        editor.click()
        if replace:
            self.page.keyboard.press("Control+a")
        # insert_text types the text as one input event: no auto-closed brackets or auto-indent doubling it up
        self.page.keyboard.insert_text(code)
        self.nb.poll(
            f"cell {index} to hold the typed code",
            lambda: (
                self.page.evaluate(
                    "([i]) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.sharedModel.getSource()",
                    [index],
                )
                == code
            ),
            10,
        )
        self.page.keyboard.press("Shift+Enter")
        if wait:
            self.wait_ran(index, after=before, timeout=timeout)
        return index


def _no_out_prompt(j: Journey, index: int) -> None:
    state = j.cell_state(index)
    assert not [o for o in state["outputs"] if o["type"] == "execute_result"], state["outputs"]
    prompts = j.nb.cell(index).locator(".jp-OutputPrompt").all_inner_texts()
    assert not any("Out[" in p for p in prompts), prompts


def _journey(nb, app: str, server) -> None:
    j = Journey(nb, app)
    page = nb.page
    t0 = time.monotonic()
    setup = j.type_cell(SETUP)
    assert j.cell_state(setup)["outputs"] == [], j.cell_state(setup)

    # 1. A background cell with cell semantics.
    every_src = "%%quiv every 1s\nlatest = time.time()\ncount += 1"
    every = j.type_cell(every_src)
    check = j.type_cell("while count < 2:  # two runs\n    time.sleep(0.1)\ncount, latest is not None")
    text = j.wait_text(check, "True)")
    assert int(re.search(r"\((\d+), True\)", text).group(1)) >= 2, text
    assert "UnboundLocalError" not in j.output_text(every)
    j.shot("1-every", cell=every)

    # 2. Edit the cell (still no --name) and re-run it: its task is replaced, not doubled.
    j.edit_cell(every, "%%quiv every 1s\nlatest = time.time()\ncount += 1\nticks = count")
    tasks = j.type_cell("%quiv tasks")
    listing = j.wait_text(tasks, "every 1s")
    assert listing.count("every 1s") == 1, listing

    # 5, 6, 7. Run with an argument, unassigned; the running bar holds still while its text changes.
    train = j.type_cell("%quiv run train(epochs=5)")
    _no_out_prompt(j, train)
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len({s[2] for s in seen}) < 4:
        live = [b for b in j.bars(train) if "quiv-running" in b["classes"]]
        if live:
            seen.append((live[0]["x"], live[0]["width"], live[0]["text"]))
        page.wait_for_timeout(50)
    assert len({text for _, _, text in seen}) >= 3, f"too few live redraws of train's bar: {seen}"
    assert {(x, w) for x, w, _ in seen} == {(seen[0][0], BAR_WIDTH)}, f"the running bar moved or resized: {seen}"
    j.shot("5-train-running", cell=train)

    # 3. Re-running the cell while train runs re-attaches its bar and says so.
    j.rerun(train)
    again = j.wait_text(train, "still running")
    assert "its live bar is below again" in again, again
    _no_out_prompt(j, train)
    nb.poll("train's bar back", lambda: j.bars(train))
    j.shot("3-train-reattached", cell=train)

    # 4, 5. The result, with the argument passed.
    waited = j.type_cell("r = %quiv wait\nr", timeout=90)
    result = j.wait_text(waited, "trained 5 epochs")
    assert "Error" not in result, result
    jobs = j.type_cell("%quiv jobs")
    listing = j.wait_text(jobs, "train")
    assert len([ln for ln in listing.splitlines() if re.search(r"\btrain\b", ln)]) == 1, listing

    # 6. The magic's message and the job's first print on separate lines; no Out[].
    chatty = j.type_cell("%quiv run chatty")
    text = j.wait_text(chatty, "first line from the job")
    assert "first line from the job" in [ln.strip() for ln in text.splitlines()], text
    _no_out_prompt(j, chatty)

    # 4. Waiting on a failed job fails the cell, with the job's error and no quiv_nb frames.
    boom = j.type_cell("%quiv run boom")
    failed = j.type_cell("%quiv wait boom", timeout=60)
    errors = [o for o in j.cell_state(failed)["outputs"] if o["type"] == "error"]
    assert len(errors) == 1 and errors[0]["text"].startswith("ValueError: the upstream service"), errors
    assert "quiv_nb/" not in _ANSI.sub("", errors[0]["text"]), errors[0]["text"]
    assert "ValueError" in j.output_text(failed)
    j.shot("4-wait-failed", cell=failed)

    # 8. No progress: an indeterminate bar, then "done in … → 'ok'".
    quiet = j.type_cell("%quiv run quiet")
    assert nb.poll("quiet's striped bar", lambda: any(b["indeterminate"] for b in j.bars(quiet)), 30)
    j.shot("8-quiet-running", cell=quiet)
    done = nb.poll("quiet's final bar", lambda: [b for b in j.bars(quiet) if "quiv-static" in b["classes"]], 60)
    assert re.search(r"done in .+ → 'ok'", done[0]["text"]) and "it/s" not in done[0]["text"], done

    # 9. Honest cancel: said at once.
    stubborn = j.type_cell("%quiv run stubborn")
    cancel = j.type_cell("%quiv cancel stubborn")
    said = j.wait_text(cancel, "cannot be stopped", 10)  # from the cancel cell itself, not when the job ends
    assert "cannot be stopped" in said and "_stop_event" in said, said
    assert [b for b in j.bars(stubborn) if "quiv-running" in b["classes"]], "stubborn ended before the cancel cell did"

    # 11. Suggestions and help.
    typo = j.type_cell("%quiv ad x f")
    j.wait_text(typo, "did you mean 'add'", 10)
    helped = j.type_cell("%quiv help")
    text = j.wait_text(helped, "wait")
    assert all(s in text for s in ("add", "run", "cancel", "wait")) and "unknown" not in text, text

    # 12. Interrupt a wait: one line naming the running job and how to cancel it.
    slow = j.type_cell("%quiv run slow")
    # (the print tells the test the kernel reached the cell: an interrupt before that would hit something else)
    interrupted = j.type_cell('print("waiting for slow")\n%quiv wait slow', wait=False)
    j.wait_text(interrupted, "waiting for slow", 30)
    nb.poll("slow to make progress", lambda: [b for b in j.bars(slow) if "quiv-running" in b["classes"]], 30)
    page.keyboard.press("Escape")
    page.keyboard.press("i")
    page.keyboard.press("i")
    j.wait_ran(interrupted, timeout=30)
    errors = [o for o in j.cell_state(interrupted)["outputs"] if o["type"] == "error"]
    shown = j.output_text(interrupted).strip().removeprefix("waiting for slow").strip()
    assert "keeps running" in shown and "%quiv cancel" in shown, shown
    assert len(shown.splitlines()) <= 2 and "Traceback" not in shown, shown
    assert len(errors) == 1 and "slow" in errors[0]["text"], errors
    j.shot("12-interrupted", cell=interrupted)

    # 10. The dashboard: one-line rows, progress text readable; consistent after stop; a helpful empty state.
    dash_cell = j.type_cell("%quiv")
    dash = nb.cell(dash_cell).locator(".quiv-dash")
    slow_row = dash.locator(".quiv-dash-row", has=page.locator(".quiv-dash-name", has_text="slow"))
    slow_row.locator(".quiv-dash-progress-text", has_text="/600").wait_for(state="attached", timeout=30_000)
    rows = dash.locator(".quiv-dash-row").evaluate_all(
        """rows => rows.filter(r => r.parentElement).map(r => {  // a redraw may detach a row meanwhile
            const kids = [...r.children].filter(k => getComputedStyle(k).display !== 'none');
            const boxes = kids.map(k => k.getBoundingClientRect()).filter(b => b.height > 0);
            const top = Math.max(...boxes.map(b => b.top)), bottom = Math.min(...boxes.map(b => b.bottom));
            const right = Math.max(...boxes.map(b => b.right));
            return {height: r.getBoundingClientRect().height, oneLine: top < bottom,
                    overflow: right > r.parentElement.getBoundingClientRect().right + 1};
        })"""
    )
    assert rows and all(r["oneLine"] and r["height"] < 48 and not r["overflow"] for r in rows), rows
    assert dash.locator(".quiv-dash-row", has_text="every 1s").count() == 1, "the edited cell's task is doubled"
    progress = slow_row.locator(".quiv-dash-progress-text").evaluate(
        "e => [e.scrollWidth, e.clientWidth, e.textContent]"
    )
    assert progress[0] <= progress[1] + 1, f"progress text cut: {progress}"
    j.shot("10-dashboard", element=dash)
    # 9 (end). `%quiv stop` would abandon stubborn if it still ran: let it run to its end first.
    nb.poll("stubborn's end", lambda: [b for b in j.bars(stubborn) if "quiv-static" in b["classes"]], 30)
    stop = j.type_cell("%quiv stop", timeout=60)
    dash.locator(".quiv-dash-title", has_text="scheduler stopped").wait_for(state="attached", timeout=30_000)
    # (the one-off tasks leave the table when their jobs end; the recurring cell task stays, stopped)
    all_rows = dash.locator(".quiv-dash-row")
    nb.poll("every row stopped", lambda: all_rows.count() == dash.locator(".quiv-dash-status-stopped").count() > 0)
    # A job ending on its stop event may end just after the first stopped snapshot: the next one shows its end.
    stale = dash.locator(".quiv-dash-row .quiv-dash-next, .quiv-dash-row .quiv-dash-progress-text")
    nb.poll("no next run or progress left", lambda: all(c.strip() in ("—", "") for c in stale.all_text_contents()), 10)
    texts = all_rows.all_inner_texts()
    assert not [t for t in texts if "running" in t], f"a row still says running: {texts}"
    assert dash.locator(".quiv-dash-row button:not([disabled])").count() == 0, "a button still acts on a stopped row"
    title = dash.locator(".quiv-dash-title").inner_text()  # a stopped scheduler runs nothing: no "N running"
    assert re.search(r"· scheduler stopped at \d\d:\d\d$", title) and "running" not in title, title
    j.shot("10-dashboard-stopped", element=dash)
    assert j.cell_state(stop)["count"] is not None
    empty = j.type_cell("%quiv")
    j.wait_text(empty, "No tasks yet")
    j.shot("10-dashboard-empty", cell=empty)

    # 7. Every bar the same width, labels whole, the long error shortened with its full text on hover.
    all_bars = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").first.evaluate(_JS_BARS)
    assert len(all_bars) >= 6, all_bars
    assert {b["width"] for b in all_bars} == {BAR_WIDTH}, [(b["width"], b["text"]) for b in all_bars]
    assert not [b for b in all_bars if b["labelCut"]], [b["text"] for b in all_bars if b["labelCut"]]
    broken = nb.poll("boom's final bar", lambda: [b for b in j.bars(boom) if "quiv-static" in b["classes"]])
    assert "…" in broken[0]["text"] and any(t.count("retry later") == 20 for t in broken[0]["titles"]), broken
    nb.cell(train).scroll_into_view_if_needed()
    j.shot("7-bars")
    nb.cell(every).scroll_into_view_if_needed()
    j.shot("cells")  # docs/images/cell-magics-lab.png (scripts/make_screenshots.py)

    # 13. Save, close (kernel shut down), reopen: finished bars still drawn, no widget errors.
    finished = {i: [b["text"] for b in j.bars(i) if "quiv-static" in b["classes"]] for i in (train, boom, quiet, slow)}
    assert all(finished.values()), (finished, j.bars(train), j.output_text(train), j.cell_state(train))
    # 9. ... and the job that could not be cancelled is recorded as what it was: completed, with its result
    honest = nb.poll("stubborn's final bar", lambda: [b for b in j.bars(stubborn) if "quiv-static" in b["classes"]])
    assert "quiv-completed" in honest[0]["classes"] and "finished anyway" in honest[0]["text"], honest
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    nb.poll("the save", lambda: page.evaluate("() => !window.jupyterapp.shell.currentWidget.context.model.dirty"))
    server.shutdown_sessions()
    page.reload()
    nb.wait_until_ready()
    for i, texts in finished.items():
        after = nb.poll(f"cell {i}'s bar after reopening", lambda i=i: j.bars(i))
        assert [b["text"] for b in after if "quiv-static" in b["classes"]] == texts, (i, after, texts)
    # (bar cells only: a dashboard is a live widget; without its kernel it shows "Loading widget..." or an error)
    bar_cells = {train, boom, quiet, slow, every, chatty, stubborn}
    shown = {i: j.output_text(i) for i in bar_cells}
    assert not [
        i for i, t in shown.items() if re.search("Loading widget|Error displaying widget|model not found", t)
    ], shown
    for name, i in (("train", train), ("boom", boom), ("quiet", quiet), ("slow", slow), ("dashboard", dash_cell)):
        j.shot(f"13-reopened-{name}", cell=i)
    nb.cell(train).scroll_into_view_if_needed()
    j.shot("13-reopened")
    print(f"\n[{app}] journey {time.monotonic() - t0:.0f}s; screenshots: {' '.join(j.shots)}")


@pytest.mark.parametrize("app", ["lab", "notebook7"])
def test_user_journey(request, app):
    server = request.getfixturevalue("lab_server" if app == "lab" else "notebook_server")
    nb = request.getfixturevalue("lab_page" if app == "lab" else "notebook_page")(NOTEBOOK)
    _journey(nb, app, server)
