"""Drive one open notebook in JupyterLab 4 or Notebook 7 through Playwright's sync API.

Both apps are started with ``expose_app_in_browser``, so ``window.jupyterapp`` is the running application in either
of them; state (kernel status, execution counts, outputs) is read from its models rather than scraped from the DOM,
which also works when cells are virtualised off-screen. What a user sees (menus, widgets, screenshots) goes
through the DOM. Every wait polls a condition with a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

#: The bar of an ipywidgets 8 ``FloatProgress`` / ``IntProgress`` (horizontal: ``.widget-hprogress``, vertical:
#: ``.widget-vprogress``; there is no ``.widget-progress`` class). Its inline width (height) is the percentage.
BAR = ".widget-hprogress .progress-bar, .widget-vprogress .progress-bar"

#: ``bar_style`` values as ipywidgets 8 maps them onto the bar's classes.
_BAR_STYLES = ("success", "info", "warning", "danger")

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _panel_function(body: str, params: str = "") -> str:
    """An async JS function of ``params`` whose ``body`` sees ``w``, the panel with focus (Lab or Notebook 7)."""
    return f"async ({params}) => {{ const w = window.jupyterapp && window.jupyterapp.shell.currentWidget; {body} }}"


_JS_STATE = _panel_function(
    """
    if (!w || !w.content || !w.sessionContext || !w.context || !w.context.isReady) return null;
    const k = w.sessionContext.session && w.sessionContext.session.kernel;
    const code = w.content.widgets.filter(c => c.model.type === 'code' && c.model.sharedModel.getSource().trim());
    return {
        kernel: k ? k.status : null,
        connection: k ? k.connectionStatus : null,
        counts: code.map(c => c.model.executionCount),
    };"""
)

_JS_SOURCES = _panel_function("return w.content.widgets.map(c => c.model.sharedModel.getSource());")

_JS_DIALOG = """() => {
    const d = document.querySelector('.jp-Dialog');
    if (!d) return null;
    const h = d.querySelector('.jp-Dialog-header');
    return {title: h ? h.textContent.trim() : '', text: d.textContent.trim().slice(0, 500)};
}"""

_JS_OUTPUTS = _panel_function(
    """
    return w.content.widgets.map((c, i) => c.model.type !== 'code' ? [] : c.model.outputs.toJSON().map(o => ({
        cell: i, type: o.output_type, name: o.name || null,
        text: o.output_type === 'error' ? (o.ename + ': ' + o.evalue + '\\n' + o.traceback.join('\\n'))
            : o.output_type === 'stream' ? (Array.isArray(o.text) ? o.text.join('') : String(o.text)) : null,
    }))).flat();"""
)

# Widget views that failed to render say so in the output area instead of raising anywhere we could see.
_JS_WIDGET_ERRORS = _panel_function(
    """
    return [...w.node.querySelectorAll('.jp-OutputArea-output')]
        .map(e => e.textContent.trim())
        .filter(t => t.startsWith('Error displaying widget') || t.includes('Failed to load model class'));"""
)

# Cells whose outputs (any mime type, as the kernel sent them) contain `text`: the only ones that could show it.
_JS_CELLS_WITH_TEXT = _panel_function(
    """
    return w.content.widgets.map((c, i) => c.model.type === 'code'
        && JSON.stringify(c.model.outputs.toJSON()).includes(JSON.stringify(text).slice(1, -1)) ? i : -1)
        .filter(i => i >= 0);""",
    "text",
)

# Whether cell `cell`'s output area draws `text` where a person sees it: a text node holding it whose element is
# visible (`checkVisibility`: not display:none, not in a closed <details>, whose content Chromium hides). null
# when the output area is not in the DOM.
_JS_SHOWS_TEXT = _panel_function(
    """
    const c = w.content.widgets[cell];
    const area = c && c.node.querySelector('.jp-OutputArea');
    if (!area) return null;
    const walker = document.createTreeWalker(area, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode())
        if (n.data.includes(text) && n.parentElement.checkVisibility()) return true;
    return false;""",
    "[cell, text]",
)

_JS_SAMPLE = _panel_function(
    """
    const styles = ['success', 'info', 'warning', 'danger'];
    const samples = [];
    const t0 = performance.now();
    for (;;) {
        const t = (performance.now() - t0) / 1000;
        const scope = cell == null ? w.node : (w.content.widgets[cell] || {}).node;
        const bars = scope ? [...scope.querySelectorAll(selector)].map(el => ({
            percent: parseFloat(el.closest('.widget-vprogress') ? el.style.height : el.style.width),
            style: styles.find(s => el.classList.contains('progress-bar-' + s)) || null,
            color: getComputedStyle(el).backgroundColor,
        })) : [];
        samples.push({t, bars});
        if (until != null && bars.length && bars.every(b => b.style === until)) break;
        if (t >= duration) break;
        await new Promise(r => setTimeout(r, interval * 1000));
    }
    return samples;""",
    params="{selector, cell, duration, interval, until}",
)


@dataclass(frozen=True)
class Bar:
    """One progress bar as drawn: ``percent`` filled (NaN before the view sets it), ``style`` its bar_style, and
    ``color`` its computed background (``"rgb(r, g, b)"``), which also shows a ``style.bar_color`` override."""

    percent: float
    style: str | None
    color: str


@dataclass(frozen=True)
class BarSample:
    """Every bar matched at one instant, ``t`` seconds after sampling began, in document order."""

    t: float
    bars: tuple[Bar, ...]


class NotebookUI:
    """A notebook open in a Playwright page; ``app`` is ``"lab"`` or ``"notebook"``.

    All methods run on the test's thread and block; the ``timeout`` arguments are seconds.
    """

    def __init__(self, page: Page, app: str, artifacts: Path) -> None:
        self.page = page
        self.app = app
        self._artifacts = artifacts
        self._accepted: list[str] = []

    @property
    def accepted_dialogs(self) -> tuple[str, ...]:
        """Titles of the dialogs the driver accepted (only ever "Select Kernel": the notebook names no kernel)."""
        return tuple(self._accepted)

    # -- waiting -----------------------------------------------------------------------------------------------

    def poll(self, what: str, read, timeout: float = 60.0):
        """Call ``read()`` every 0.1 s until it returns something truthy; return that, or fail naming ``what``."""
        deadline = time.monotonic() + timeout
        while not (value := read()):
            assert time.monotonic() < deadline, f"{self.app}: timed out after {timeout:.0f}s waiting for {what}"
            self.page.wait_for_timeout(100)
        return value

    def wait_until_ready(self, timeout: float = 90.0) -> None:
        """Wait until the notebook is loaded and its kernel is connected and idle.

        Accepts JupyterLab's "Select Kernel" dialog (shown when the notebook names no kernel we have); any other
        dialog is an error, raised with its text.
        """
        self._poll(lambda s: s["kernel"] == "idle" and s["connection"] == "connected", timeout, "kernel idle")

    def run_all(self, via: str = "menu") -> None:
        """Start Run > Run All Cells, through the menu bar (``via="menu"``) or the command registry.

        Returns as soon as the command is issued; follow with ``wait_until_executed`` or a sampling call.
        """
        if via == "command":
            self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            return
        self.page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        # The menu entry is the generic 'runmenu:run-all', which dispatches to the notebook's run-all-cells.
        self.page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()

    def wait_until_executed(self, timeout: float = 90.0) -> list[int]:
        """Wait until every non-empty code cell has an execution count and the kernel is idle; return the counts.

        Raises ``AssertionError`` (with the error outputs) when the kernel stays idle while cells are still
        unexecuted: a cell raised and Run All stopped there.
        """
        idle_since: float | None = None

        def done(state: dict) -> bool:
            nonlocal idle_since
            complete = all(c is not None for c in state["counts"])
            if state["kernel"] != "idle":
                idle_since = None
                return False
            if complete:
                return True
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 3.0:
                raise AssertionError(
                    f"run stopped with unexecuted cells (counts {state['counts']}); errors: {self.error_outputs()}"
                )
            return False

        return self._poll(done, timeout, "all cells executed")["counts"]

    # -- the document ------------------------------------------------------------------------------------------

    def save(self, timeout: float = 60.0) -> None:
        """File > Save (through the command registry); wait until the document is no longer dirty."""
        self.page.evaluate(_panel_function("await window.jupyterapp.commands.execute('docmanager:save');"))
        clean = _panel_function("return !!w && !w.context.model.dirty;")
        self.poll("the save", lambda: self.page.evaluate(clean), timeout)

    def reload(self, timeout: float = 90.0) -> None:
        """Reload the page (the notebook as last saved, same kernel); wait until the kernel is connected and idle."""
        self.page.reload()
        self._wait_for_panel(timeout)

    def reopen(self, timeout: float = 90.0) -> None:
        """Close the notebook and open it again, its kernel running on; wait until it is connected and idle.

        JupyterLab: close its tab (the kernel stays: closing does not shut it down) and open the file again.
        Notebook 7: the notebook is the browser tab, so close that page and open its address in a new one.
        """
        if self.app == "lab":
            path = self.page.evaluate(_panel_function("return w.context.path;"))
            self.page.evaluate("() => window.jupyterapp.commands.execute('application:close')")
            self.page.locator(".jp-NotebookPanel").wait_for(state="detached", timeout=timeout * 1000)
            self.page.evaluate("(path) => window.jupyterapp.commands.execute('docmanager:open', {path})", path)
        else:
            url, old = self.page.url, self.page
            self.page = old.context.new_page()
            old.close()
            self.page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
        self._wait_for_panel(timeout)

    def _wait_for_panel(self, timeout: float) -> None:
        self.page.wait_for_function(
            "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            " return !!(w && w.context && w.context.isReady); }",
            timeout=timeout * 1000,
        )
        self.wait_until_ready(timeout)

    # -- reading -----------------------------------------------------------------------------------------------

    def error_outputs(self, *, stderr: bool = True) -> list[str]:
        """Every error traceback, stderr stream and failed widget view in the notebook, as ``cell N: text``.

        ``stderr=False`` leaves stderr streams out, for a notebook that logs there on purpose (the root logger's
        default handler writes to stderr); tracebacks and broken widgets are always reported.
        """
        found = [
            f"cell {o['cell']}: {_ANSI.sub('', o['text']).strip()}"
            for o in self.page.evaluate(_JS_OUTPUTS)
            if o["type"] == "error" or (stderr and o["type"] == "stream" and o["name"] == "stderr")
        ]
        return found + [f"widget: {text}" for text in self.page.evaluate(_JS_WIDGET_ERRORS)]

    def cells_showing(self, text: str) -> list[int]:
        """The cells whose outputs show ``text`` to a person (e.g. a traceback's first line).

        A cell counts when ``text`` is in its outputs' data and, with the cell scrolled into view, drawn visibly in
        its output area: text inside a closed ``<details>``, a hidden element or a mime type the frontend did not
        pick (the text/plain of an HTML output) does not count. Raises AssertionError if such a cell's output area
        is not in the page.
        """
        shown = []
        for index in self.page.evaluate(_JS_CELLS_WITH_TEXT, text):
            self.cell(index).scroll_into_view_if_needed()
            visible = self.page.evaluate(_JS_SHOWS_TEXT, [index, text])
            assert visible is not None, f"cell {index} has {text!r} in its outputs but no output area in the page"
            if visible:
                shown.append(index)
        return shown

    def cell(self, index: int) -> Locator:
        """The DOM node of cell ``index`` (counting every cell, as in the .ipynb file) of the open notebook."""
        panel = self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        return panel.locator(".jp-Notebook .jp-Cell").nth(index)

    def cell_index(self, text: str, *, exact: bool = False) -> int:
        """The index of the one cell whose source contains ``text`` (``exact``: is ``text``, blanks stripped);
        raises ``LookupError`` unless exactly one cell matches."""
        sources = self.page.evaluate(_JS_SOURCES)
        found = [i for i, src in enumerate(sources) if (src.strip() == text.strip() if exact else text in src)]
        if len(found) != 1:
            raise LookupError(f"{len(found)} cells match {text!r} (cells {found}); expected exactly one")
        return found[0]

    def sample_bars(
        self,
        selector: str = BAR,
        *,
        cell: int | None = None,
        duration: float = 15.0,
        interval: float = 0.05,
        until_style: str | None = None,
    ) -> list[BarSample]:
        """Sample every bar matching ``selector`` (in cell ``cell``, or the whole notebook) every ``interval`` s.

        Sampling runs inside the page, so it is not slowed by round trips; it stops after ``duration`` seconds
        or, with ``until_style`` (e.g. ``"success"``), as soon as every matched bar has that style.
        """
        if until_style is not None and until_style not in _BAR_STYLES:
            raise ValueError(f"until_style must be one of {_BAR_STYLES}, not {until_style!r}")
        raw = self.page.evaluate(
            _JS_SAMPLE,
            {"selector": selector, "cell": cell, "duration": duration, "interval": interval, "until": until_style},
        )
        return [BarSample(s["t"], tuple(Bar(b["percent"], b["style"], b["color"]) for b in s["bars"])) for s in raw]

    # -- artifacts ---------------------------------------------------------------------------------------------

    def screenshot(self, name: str, *, cell: int | None = None, element: Locator | None = None) -> Path:
        """Save the page (or just cell ``cell``, or just ``element``) as ``tests/artifacts/<name>.png``."""
        path = self._artifacts / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        target = self.cell(cell) if cell is not None else element
        if target is None:
            self.page.screenshot(path=str(path))
        else:
            target.scroll_into_view_if_needed()
            target.screenshot(path=str(path))
        return path

    # -- private -----------------------------------------------------------------------------------------------

    def _poll(self, predicate, timeout: float, what: str, interval: float = 0.2) -> dict:
        """Evaluate the app state until ``predicate(state)`` is true; return that state or raise ``TimeoutError``."""
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            dialog = self.page.evaluate(_JS_DIALOG)
            if dialog is not None:
                self._answer_dialog(dialog)
            state = self.page.evaluate(_JS_STATE)
            if state is not None and predicate(state):
                return state
            self.page.wait_for_timeout(interval * 1000)
        raise TimeoutError(f"{self.app}: no '{what}' within {timeout:.0f}s; last state {state}")

    def _answer_dialog(self, dialog: dict) -> None:
        """Accept the kernel chooser; raise on any other dialog so the test shows what popped up."""
        if "Select Kernel" in dialog["title"]:
            self.page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
            self.page.locator(".jp-Dialog").wait_for(state="detached", timeout=15_000)
            self._accepted.append(dialog["title"])
            return
        raise AssertionError(f"{self.app} showed an unexpected dialog: {dialog['text']}")
