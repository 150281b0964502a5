"""Browser end-to-end fixtures: JupyterLab 4 and Notebook 7 in headless Chromium, driven by Playwright (sync API).

Requirements: ``pip install -e .[browser]`` (jupyterlab, notebook, playwright; ipywidgets comes with the package)
and a Chromium at ``/usr/bin/chromium`` (Debian: ``apt-get install -y chromium``), or at ``$QUIV_NB_CHROMIUM``.
Playwright never downloads a browser here. Without the browser or playwright the tests are skipped, except when
``CI=true``, where a missing prerequisite fails them.

Fixture API (what a test uses)
------------------------------
``lab_page(name) -> NotebookUI`` / ``notebook_page(name) -> NotebookUI``
    Copy the folder holding notebook ``name`` (looked up in ``tests/browser/fixtures/`` then ``notebooks/``) into a
    fresh folder under the server's root, open it in JupyterLab (own workspace, left sidebar collapsed) or in
    Notebook 7 (``/notebooks/<name>``), clear stale outputs and wait until the kernel is connected and idle.
    At teardown the page closes and the notebook's kernel is shut down. On a failed test a screenshot is saved as
    ``tests/artifacts/FAILED-<test>.png``.

``NotebookUI`` (tests/browser/_notebook_ui.py), all blocking, timeouts in seconds:
    ``.page``                                   the Playwright ``Page``, for anything else (locators, clicks)
    ``.run_all(via="menu")``                    Run > Run All Cells (``via="command"``: through the command registry)
    ``.wait_until_executed(timeout=90)``        every non-empty code cell has a count and the kernel is idle;
                                                raises AssertionError early if Run All stopped on an error
    ``.error_outputs(stderr=True) -> list[str]`` tracebacks, stderr streams (unless ``stderr=False``), widget views
                                                that failed to render, each as ``"cell N: text"``
    ``.cells_showing(text) -> list[int]``       cells whose outputs show ``text`` to a person (visible, not inside a
                                                closed ``<details>``), each scrolled into view to check
    ``.sample_bars(selector=BAR, cell=None, duration=15, interval=0.05, until_style=None) -> list[BarSample]``
                                                in-page sampling of ipywidgets progress bars: each ``BarSample``
                                                has ``t`` and ``bars``, a tuple of ``Bar(percent, style, color)``:
                                                style is the bar_style ("success", "danger", ...) or None, color
                                                the computed background, e.g. "rgb(56, 142, 60)"
    ``.accepted_dialogs -> tuple[str, ...]``    dialogs the driver clicked through (only "Select Kernel", shown when
                                                the notebook's metadata names no installed kernel)
    ``.cell(index) -> Locator``                 a cell by its index in the .ipynb (markdown cells count)
    ``.cell_index(text, exact=False) -> int``   the index of the one cell whose source contains ``text`` (``exact``:
                                                is ``text``); LookupError if none or several match
    ``.screenshot(name, cell=None, element=None) -> Path``
                                                ``tests/artifacts/<name>.png`` (whole page, one cell, or a Locator)

Test modules here import the rest relatively: ``from ._notebook_ui import BAR, Bar, BarSample`` (``BAR`` is the
CSS selector of an ipywidgets 8 progress bar: ``.widget-hprogress .progress-bar``).

``lab_page_with_store(name)`` / ``notebook_page_with_store(name)``: the same, on a server (module scope) whose
    kernels keep a quiv_nb store (``QUIV_NB_STORE``, else "off" in tests) and whose autosave is off.

``lab_server`` / ``notebook_server`` (session): the ``JupyterServer`` (tests/browser/_server.py) behind the pages,
with ``.url``, ``.token``, ``.api(method, path)`` and ``.log_path``. ``browser`` (session): the Playwright Browser.

Example::

    @pytest.mark.browser
    def test_quickstart_in_lab(lab_page):
        nb = lab_page("quickstart.ipynb")
        nb.run_all()
        samples = nb.sample_bars(cell=3, duration=30, until_style="success")
        nb.wait_until_executed()
        assert nb.error_outputs() == []
        nb.screenshot("lab-quickstart")

The servers run with their own config/data/runtime/IPython dirs, bound to 127.0.0.1 on an OS-chosen port, with a
random token, and the repository root on the kernel's PYTHONPATH (so the kernel imports this checkout's
quiv_nb). Widgets render through the ``@jupyter-widgets/jupyterlab-manager`` lab extension installed in
``sys.prefix``; the server fixtures check it is served before any test runs.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from ._notebook_ui import NotebookUI
from ._server import NO_COMM_SUBSHELLS, JupyterServer

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
NOTEBOOK_DIRS = (Path(__file__).resolve().parent / "fixtures", REPO / "notebooks")
CHROMIUM = os.environ.get("QUIV_NB_CHROMIUM", "/usr/bin/chromium")

# --headless is also added by Playwright; listed so the command line is what the brief for CI says.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
WIDGETS_EXTENSION = "@jupyter-widgets/jupyterlab-manager"


def _missing(reason: str) -> None:
    """Skip for want of a prerequisite locally; in CI (``CI=true``) the same want is a failure, never a skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser prerequisite missing in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures can tell at teardown whether the test failed."""
    report = yield
    setattr(item, f"_report_{report.when}", report)
    return report


# -- processes (session) -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium under Playwright; never a downloaded browser."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e .[browser])")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _missing(f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set QUIV_NB_CHROMIUM)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()


def _start(
    app: str, tmp_path_factory, user_settings: dict | None = None, env: dict[str, str] | None = None
) -> JupyterServer:
    """Start one server after checking its Python package is importable; ``env`` goes to it and its kernels."""
    module = {"lab": "jupyterlab", "notebook": "notebook"}[app]
    try:
        __import__(module)
    except ImportError:
        _missing(f"{module} is not installed (pip install -e .[browser])")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])), **(env or {})}
    server = JupyterServer(app, tmp_path_factory.mktemp(f"jupyter-{app}"), extra_env=env, user_settings=user_settings)
    server.start()
    try:
        _check_widgets_extension(server)
    except BaseException:
        server.stop()
        raise
    return server


def _check_widgets_extension(server: JupyterServer) -> None:
    """Fail fast when the widget manager is not served: widgets would silently render as their text repr."""
    config = server.page_config("lab" if server.app == "lab" else "tree")
    served = {ext["name"] for ext in config.get("federated_extensions", [])}
    disabled = set(config.get("disabledExtensions", []))
    if WIDGETS_EXTENSION not in served or WIDGETS_EXTENSION in disabled:
        pytest.fail(
            f"{WIDGETS_EXTENSION} is not an enabled lab extension of jupyter {server.app} (served: {sorted(served)}, "
            f"disabled: {sorted(disabled)}); is jupyterlab_widgets installed in the server's environment?",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory):
    """A JupyterLab server for the whole session."""
    server = _start("lab", tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lab_server_no_subshells(tmp_path_factory):
    """A JupyterLab server whose user setting "Kernel Comms over subshells" is "disabled" (as VS Code sends)."""
    server = _start("lab", tmp_path_factory, user_settings=NO_COMM_SUBSHELLS)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def notebook_server(tmp_path_factory):
    """A Notebook 7 server for the whole session."""
    server = _start("notebook", tmp_path_factory)
    yield server
    server.stop()


#: No autosave: a test that kills a kernel decides what the saved file holds (JupyterLab and Notebook 7 read it).
NO_AUTOSAVE = {"@jupyterlab/docmanager-extension/plugin": {"autosave": False}}


def _start_with_store(app: str, tmp_path_factory) -> JupyterServer:
    """A server whose kernels keep a quiv_nb store (``QUIV_NB_STORE``: a fresh file; the tests' default is "off")."""
    store = tmp_path_factory.mktemp(f"quiv-store-{app}") / "quiv.db"
    return _start(app, tmp_path_factory, user_settings=NO_AUTOSAVE, env={"QUIV_NB_STORE": str(store)})


@pytest.fixture(scope="module")
def lab_server_with_store(tmp_path_factory):
    """A JupyterLab server whose kernels keep a store (``.extra_env["QUIV_NB_STORE"]``), autosave off."""
    server = _start_with_store("lab", tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def notebook_server_with_store(tmp_path_factory):
    """A Notebook 7 server whose kernels keep a store (``.extra_env["QUIV_NB_STORE"]``), autosave off."""
    server = _start_with_store("notebook", tmp_path_factory)
    yield server
    server.stop()


# -- pages (per test) --------------------------------------------------------------------------------------------


def _find_notebook(name: str) -> Path:
    """The source of notebook ``name``: the first of ``NOTEBOOK_DIRS`` that holds it."""
    for folder in NOTEBOOK_DIRS:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{name} not found in {', '.join(map(str, NOTEBOOK_DIRS))}")


def _page_factory(request, browser, server: JupyterServer):
    """Yield ``open(name) -> NotebookUI`` for one test; close pages and shut kernels down afterwards."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    opened: list[tuple[str, NotebookUI]] = []
    test_slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")

    def open_notebook(name: str) -> NotebookUI:
        source = _find_notebook(name)
        folder = f"{test_slug}-{len(opened)}"
        shutil.copytree(source.parent, server.root_dir / folder)
        page = context.new_page()
        if server.app == "lab":
            # A workspace per page: the default one would reopen the previous test's notebook (and its kernel).
            url = server.page_url(f"lab/workspaces/{folder}/tree/{folder}/{name}")
        else:
            url = server.page_url(f"notebooks/{folder}/{name}")
        page.goto(url, wait_until="domcontentloaded", timeout=60_000)
        page.wait_for_function(
            "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            " return !!(w && w.context && w.context.isReady); }",
            timeout=90_000,
        )
        # Stale outputs and counts in a committed notebook would make 'executed' look true before running.
        page.evaluate(
            "async () => { const app = window.jupyterapp;"
            " await app.commands.execute('notebook:clear-all-cell-outputs');"
            " if (app.shell.collapseLeft) app.shell.collapseLeft(); }"
        )
        nb = NotebookUI(page, server.app, ARTIFACTS)
        opened.append((folder, nb))
        nb.wait_until_ready()
        return nb

    yield open_notebook

    report = getattr(request.node, "_report_call", None)
    for folder, nb in opened:
        if report is not None and report.failed:
            try:
                nb.screenshot(f"FAILED-{folder}")
            except Exception as exc:  # a dead page must not hide the test's own failure
                print(f"could not save failure screenshot for {folder}: {exc!r}")
        nb.page.close()
        server.shutdown_sessions(prefix=folder + "/")
    context.close()
    if report is not None and report.failed:
        print(f"server log: {server.log_path}\n{server.log_tail(2000)}")


@pytest.fixture
def lab_page(request, browser, lab_server):
    """``lab_page(name) -> NotebookUI``: open a copy of notebook ``name`` in JupyterLab, kernel idle."""
    yield from _page_factory(request, browser, lab_server)


@pytest.fixture
def lab_page_no_subshells(request, browser, lab_server_no_subshells):
    """Like ``lab_page``, in the JupyterLab whose comm messages never go to a subshell."""
    yield from _page_factory(request, browser, lab_server_no_subshells)


@pytest.fixture
def notebook_page(request, browser, notebook_server):
    """``notebook_page(name) -> NotebookUI``: open a copy of notebook ``name`` in Notebook 7, kernel idle."""
    yield from _page_factory(request, browser, notebook_server)


@pytest.fixture
def lab_page_with_store(request, browser, lab_server_with_store):
    """Like ``lab_page``, in the JupyterLab whose kernels keep a quiv_nb store."""
    yield from _page_factory(request, browser, lab_server_with_store)


@pytest.fixture
def notebook_page_with_store(request, browser, notebook_server_with_store):
    """Like ``notebook_page``, in the Notebook 7 whose kernels keep a quiv_nb store."""
    yield from _page_factory(request, browser, notebook_server_with_store)
