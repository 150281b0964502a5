"""A JupyterLab or Notebook 7 server in a subprocess, isolated from the user's Jupyter setup.

The server gets its own config, data, runtime and IPython dirs, so nothing in ``~/.jupyter`` (settings, workspaces,
startup files) leaks in. Lab extensions and kernelspecs still come from ``sys.prefix/share/jupyter``: jupyter_core
always keeps the environment's data dir on the path after ``JUPYTER_DATA_DIR``, which is how the
``@jupyter-widgets/jupyterlab-manager`` extension installed by jupyterlab_widgets is found.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

#: The module run with ``python -m`` for each app; neither depends on ``jupyter-*`` scripts being on PATH.
_APP_MODULES = {"lab": "jupyterlab", "notebook": "notebook", "classic": "notebook", "voila": "voila"}

#: Settings written into the server's private user-settings dir. The news toast would otherwise sit on top of the
#: notebook in every screenshot and steal clicks.
_USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}

#: The user setting "Kernel Comms over subshells" (plugin ``@jupyterlab/apputils-extension:kernels-settings``) set to
#: "disabled": comm messages go to the main shell, as VS Code's Jupyter extension and pre-subshell frontends send them.
NO_COMM_SUBSHELLS = {"@jupyterlab/apputils-extension/kernels-settings": {"commsOverSubshells": "disabled"}}


class ServerError(RuntimeError):
    """The server did not come up; the message ends with the tail of its log."""


class JupyterServer:
    """One ``jupyter lab`` or ``jupyter notebook`` process bound to 127.0.0.1 on a free port.

    ``start()`` blocks until ``/api/status`` answers; ``stop()`` shuts it down by PID. Both run on the test's thread.
    """

    def __init__(
        self,
        app: str,
        workdir: Path,
        *,
        extra_env: dict[str, str] | None = None,
        user_settings: dict[str, dict] | None = None,
    ) -> None:
        if app not in _APP_MODULES:
            raise ValueError(f"app must be one of {sorted(_APP_MODULES)}, not {app!r}")
        self.app = app
        self.workdir = workdir
        self.root_dir = workdir / "root"
        self.log_path = workdir / "server.log"
        self.token = secrets.token_hex(16)
        self.url = ""  # "http://127.0.0.1:PORT/" once started
        self._extra_env = dict(extra_env or {})
        # classic Notebook 6.5 (the ipywidgets 7 frontend) runs from another venv: QUIV_CLASSIC_PYTHON's
        self.python = os.environ.get("QUIV_CLASSIC_PYTHON", "") if app == "classic" else sys.executable
        self._user_settings = {**_USER_SETTINGS, **(user_settings or {})}  # plugin path -> settings (lab only)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self, timeout: float = 120.0, attempts: int = 3) -> None:
        """Launch the server and wait until its REST API answers; raises ``ServerError`` on failure.

        The port is picked free just before launch; if another process takes it in between, the server exits
        with "already in use" and we try again with a new one.
        """
        env = self._prepare_dirs()
        for attempt in range(1, attempts + 1):
            port = _free_port()
            self.url = f"http://127.0.0.1:{port}/"
            self._log = open(self.log_path, "wb")  # closed in stop()
            self._proc = subprocess.Popen(
                self._command(port),
                cwd=self.root_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            try:
                self._wait_until_ready(timeout)
                return
            except ServerError:
                self.stop()
                if attempt == attempts or "already in use" not in self.log_tail():
                    raise
            except BaseException:
                self.stop()
                raise

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server by PID: SIGTERM (the server then shuts its kernels down), wait, SIGKILL if needed.

        Kernels the server started and that outlive it are then ended by PID as well, so a hung server never
        leaves busy kernels behind on a shared machine.
        """
        proc, self._proc = self._proc, None
        if proc is not None:
            children = _descendants(proc.pid)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            _end_survivors(children)
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def extra_env(self) -> dict[str, str]:
        """The variables this server (and so each of its kernels) gets on top of the test's environment (a copy)."""
        return dict(self._extra_env)

    def kernel_pids(self) -> set[int]:
        """The PIDs of the processes this server started and that still run (its kernels); empty without psutil.

        A test that kills a kernel checks its PID is in here first: it never signals a process it did not start.
        """
        proc = self._proc
        return {p.pid for p in _descendants(proc.pid)} if proc is not None and proc.poll() is None else set()

    # -- REST helpers ------------------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: object | None = None, timeout: float = 10.0) -> object:
        """Call the server's REST API (``path`` relative to the base URL); returns the decoded JSON or None."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path.lstrip("/"), data=data, method=method)
        req.add_header("Authorization", f"token {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def page_url(self, path: str) -> str:
        """The browser URL for ``path`` (e.g. ``lab/tree/x.ipynb``), with the token as a query parameter."""
        return f"{self.url}{path.lstrip('/')}?token={self.token}"

    def page_config(self, path: str) -> dict:
        """The ``jupyter-config-data`` JSON that the HTML page at ``path`` hands to the frontend."""
        with urllib.request.urlopen(self.page_url(path), timeout=30) as resp:
            html = resp.read().decode()
        match = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S)
        if match is None:
            raise ServerError(f"no page config in {path}")
        return json.loads(match.group(1))

    def shutdown_sessions(self, prefix: str = "") -> None:
        """Delete every kernel session whose notebook path starts with ``prefix`` (frees CPU between tests)."""
        for session in self.api("GET", "api/sessions") or []:
            if session.get("path", "").startswith(prefix):
                try:
                    self.api("DELETE", f"api/sessions/{session['id']}", timeout=30)
                except urllib.error.HTTPError as exc:  # already gone: fine
                    if exc.code != 404:
                        raise

    def log_tail(self, chars: int = 4000) -> str:
        """The last ``chars`` characters of the server log, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    # -- private -----------------------------------------------------------------------------------------------

    def _command(self, port: int) -> list[str]:
        """The server's command line: loopback only, known token, no browser, nothing fetched from outside."""
        if self.app == "classic":  # Notebook 6.5: its own NotebookApp options, no jupyterapp in the page
            return [
                self.python,
                "-m",
                "notebook",
                "--no-browser",
                "--NotebookApp.ip=127.0.0.1",
                f"--NotebookApp.port={port}",
                "--NotebookApp.port_retries=0",
                f"--NotebookApp.token={self.token}",
                f"--NotebookApp.notebook_dir={self.root_dir}",
                "--NotebookApp.allow_root=True",
                "--NotebookApp.terminals_enabled=False",
            ]
        if self.app == "voila":  # Voilà 0.5 standalone, serving the root dir's notebooks as apps (voila/render/...)
            return [
                sys.executable,
                "-m",
                "voila",
                "--no-browser",
                "--Voila.ip=127.0.0.1",
                f"--Voila.port={port}",
                "--Voila.port_retries=0",
                f"--Voila.token={self.token}",
                f"--Voila.root_dir={self.root_dir}",
                "--show_tracebacks=True",
            ]
        cmd = [
            sys.executable,
            "-m",
            _APP_MODULES[self.app],
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            # Not port 0: jupyter_server releases before jupyter-server/jupyter_server#1651 (2026) advertise
            # port 0 rather than the port bound, so we pick a free port ourselves.
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--ServerApp.allow_root=True",  # CI runs as root
            "--ServerApp.terminals_enabled=False",
        ]
        if self.app == "lab":
            return [
                *cmd,
                # window.jupyterapp: lets the driver read kernel and cell state from the app model.
                "--LabApp.expose_app_in_browser=True",
                "--LabApp.extension_manager=readonly",  # no PyPI look-ups from the extension manager
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            ]
        return [*cmd, "--JupyterNotebookApp.expose_app_in_browser=True"]

    def _prepare_dirs(self) -> dict[str, str]:
        """Create the private Jupyter dirs and user settings; return the environment for the server."""
        dirs = {name: self.workdir / name for name in ("config", "data", "runtime", "ipython", "settings", "spaces")}
        for path in [*dirs.values(), self.root_dir]:
            path.mkdir(parents=True, exist_ok=True)
        for plugin, settings in self._user_settings.items():
            target = dirs["settings"] / f"{plugin}.jupyterlab-settings"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(settings))
        env = dict(os.environ)
        env.update(
            JUPYTER_CONFIG_DIR=str(dirs["config"]),
            JUPYTER_DATA_DIR=str(dirs["data"]),
            JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
            JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
            JUPYTERLAB_WORKSPACES_DIR=str(dirs["spaces"]),
            IPYTHONDIR=str(dirs["ipython"]),
            PYTHONUNBUFFERED="1",
        )
        env.update(self._extra_env)
        return env

    def _wait_until_ready(self, timeout: float) -> None:
        """Poll ``/api/status`` until it answers; raise ``ServerError`` if the process exits or time runs out."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServerError(f"jupyter {self.app} exited with {self._proc.returncode}:\n{self.log_tail()}")
            try:
                if self.app == "voila":  # no REST API: its tree page answers once it serves
                    with urllib.request.urlopen(self.page_url(""), timeout=5):
                        return
                self.api("GET", "api/status", timeout=5)
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        raise ServerError(f"jupyter {self.app} did not answer within {timeout:.0f}s:\n{self.log_tail()}")


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _descendants(pid: int) -> list:
    """psutil handles for every process below ``pid`` (kernels), or [] without psutil."""
    try:
        import psutil
    except ImportError:
        return []
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _end_survivors(children: list, timeout: float = 5.0) -> None:
    """Terminate, then kill, the processes in ``children`` (our server's kernels) that are still running."""
    if not children:
        return
    import psutil

    alive = [p for p in children if p.is_running()]
    for p in alive:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(alive, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
