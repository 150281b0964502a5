"""Drive a real IPython kernel and read what a frontend would read.

`KernelSession` starts a kernel with jupyter_client, runs cells, and records every iopub
message (with its arrival time) on a collector thread, so tests can assert on stream output,
display data, widget comm state and their parent headers exactly as JupyterLab would see them.

The collector reads iopub through a plain blocking zmq SUB socket of its own, not through the
client's iopub channel: jupyter_client 7's channels are asyncio sockets driven by `run_sync`, and
one read from a second thread while the main thread read shell replies once left a reply
unread forever (Colab's pinned jupyter_client 7.4.9). The client keeps the shell, stdin, control
and heartbeat channels, each used from the main thread only.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import zmq
from jupyter_client.manager import start_new_kernel

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Cell:
    """What one execute request produced."""

    msg_id: str
    reply: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reply["content"]["status"] == "ok"

    @property
    def stdout(self) -> str:
        return _stream(self.messages, "stdout")

    @property
    def stderr(self) -> str:
        return _stream(self.messages, "stderr")

    @property
    def error(self) -> dict[str, Any] | None:
        content = self.reply["content"]
        return content if content["status"] == "error" else None


def _stream(messages: list[dict[str, Any]], name: str) -> str:
    return "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream" and m["content"]["name"] == name)


def started_with(setup: str) -> Iterator[KernelSession]:
    """A fixture body: a kernel that has run `setup`, shut down afterwards."""
    session = KernelSession()
    try:
        session.run(setup)
        yield session
    finally:
        session.shutdown()


class KernelSession:
    """One live kernel; every iopub message is kept in `self.log` as (arrival time, message)."""

    def __init__(self, startup_timeout: float = 60, store: str | None = None) -> None:
        env = dict(os.environ)
        # The kernel's scheduler records to `store` (a path); otherwise to none, never to the
        # user's real per-user store (`QUIV_NB_STORE`, see quiv_nb.kernel.storepath).
        env["QUIV_NB_STORE"] = store if store is not None else env.get("QUIV_NB_STORE", "off")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.km, self.kc = start_new_kernel(
            kernel_name="python3", startup_timeout=startup_timeout, env=env, cwd=str(REPO)
        )
        self.kc.iopub_channel.stop()  # read by the collector's own socket instead (module docstring)
        self.log: list[tuple[float, dict[str, Any]]] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        info = self.kc.get_connection_info()
        if info["transport"] == "tcp":
            self._iopub_url = f"tcp://{info['ip']}:{info['iopub_port']}"
        else:
            self._iopub_url = f"{info['transport']}://{info['ip']}-{info['iopub_port']}"
        self._reader = threading.Thread(target=self._collect, name="test-iopub-reader", daemon=True)
        self._reader.start()
        self._nudge(startup_timeout)  # a SUB socket hears only what is published after it connected

    # ------------------------------------------------------------------ iopub

    def _collect(self) -> None:
        """Record every iopub message until `shutdown` (the collector thread; its socket never leaves it)."""
        context = zmq.Context()
        sock = context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(self._iopub_url)
        session = self.kc.session
        try:
            while not self._stop.is_set():
                if not sock.poll(100):
                    continue
                frames = sock.recv_multipart(copy=True)
                try:
                    _idents, parts = session.feed_identities(frames, copy=True)
                    msg = session.deserialize(parts, content=True, copy=True)
                except Exception:  # not a message of this session (a restarted kernel's first bytes)
                    continue
                with self._cond:
                    self.log.append((time.monotonic(), msg))
                    self._cond.notify_all()
        finally:
            sock.close(0)
            context.term()

    def _nudge(self, timeout: float) -> None:
        """Send kernel_info requests until one's iopub status arrives: from then on nothing is missed."""
        deadline = time.monotonic() + timeout
        while True:
            msg_id = self.kc.kernel_info()
            try:
                self.wait_for(
                    lambda m=msg_id: self.messages(parent=m, msg_type="status"), timeout=0.5, what="iopub connected"
                )
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    def messages(self, parent: str | None = None, msg_type: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            return [
                m
                for _, m in self.log
                if (parent is None or m["parent_header"].get("msg_id") == parent)
                and (msg_type is None or m["msg_type"] == msg_type)
            ]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
        """Wait until `predicate()` is truthy (re-checked on every new message); return its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
                self._cond.wait(min(remaining, 0.2))

    # ------------------------------------------------------------------ widgets

    def widget_states(self) -> dict[str, dict[str, Any]]:
        """comm_id -> latest widget state, merged from comm_open and comm_msg updates."""
        states: dict[str, dict[str, Any]] = {}
        with self._cond:
            log = list(self.log)
        for _, m in log:
            content = m["content"]
            if m["msg_type"] == "comm_open":
                states[content["comm_id"]] = dict(content.get("data", {}).get("state", {}))
            elif m["msg_type"] == "comm_msg" and content.get("data", {}).get("method") in ("update", "echo_update"):
                states.setdefault(content["comm_id"], {}).update(content["data"].get("state", {}))
            elif m["msg_type"] == "comm_close":
                states.pop(content["comm_id"], None)
        return states

    def widget_updates(self, comm_id: str | None = None) -> list[tuple[float, dict[str, Any]]]:
        """(arrival time, message) of every comm_msg update, optionally for one widget."""
        with self._cond:
            return [
                (t, m)
                for t, m in self.log
                if m["msg_type"] == "comm_msg"
                and (comm_id is None or m["content"]["comm_id"] == comm_id)
                and m["content"].get("data", {}).get("method") == "update"
            ]

    def widgets_of(self, model_name: str) -> dict[str, dict[str, Any]]:
        return {cid: s for cid, s in self.widget_states().items() if s.get("_model_name") == model_name}

    def comms_opened_by(self, msg_id: str) -> list[str]:
        """Ids of the comms (widgets) a cell opened, in opening order."""
        return [m["content"]["comm_id"] for m in self.messages(parent=msg_id, msg_type="comm_open")]

    def widgets_opened_by(self, msg_id: str, model_name: str | None = None) -> dict[str, dict[str, Any]]:
        """comm_id -> latest state of the widgets a cell opened (still open), optionally of one model."""
        opened, states = set(self.comms_opened_by(msg_id)), self.widget_states()
        return {
            cid: s
            for cid, s in states.items()
            if cid in opened and (model_name is None or s.get("_model_name") == model_name)
        }

    def static_bars(self, msg_id: str) -> dict[str, str]:
        """display id -> the text/html a finished quiv_nb bar shown under cell `msg_id` was replaced with.

        A finished bar's display is updated to a static rendering (`quiv-bar quiv-static quiv-<status>`) and its
        widget models are closed; bars still live are not included.
        """
        shown = {
            m["content"].get("transient", {}).get("display_id")
            for m in self.messages(parent=msg_id, msg_type="display_data")
            if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
        }
        finals: dict[str, str] = {}
        for m in self.messages(msg_type="update_display_data"):
            display_id = m["content"].get("transient", {}).get("display_id")
            if display_id in shown:
                html = m["content"]["data"].get("text/html", "")
                if "quiv-static" in html:
                    finals[display_id] = html
                else:
                    finals.pop(display_id, None)  # live again: a new run of the same bar
        return finals

    def close_comm(self, comm_id: str) -> None:
        """Close a comm from the client side, as a frontend does when it drops a widget.

        Sent on the shell channel, so the kernel handles it before any cell submitted afterwards.
        """
        self.kc.shell_channel.send(self.kc.session.msg("comm_close", {"comm_id": comm_id, "data": {}}))

    def mark(self) -> int:
        """A position in `self.log`, for reading only what arrives after it (`since=`)."""
        with self._cond:
            return len(self.log)

    def output_areas(self, msg_id: str) -> dict[str, str]:
        """display_id -> latest text/plain of each updatable display under a cell (recurring tasks' areas)."""
        areas: dict[str, str] = {}
        for m in self.messages(parent=msg_id):
            if m["msg_type"] in ("display_data", "update_display_data"):
                display_id = (m["content"].get("transient") or {}).get("display_id")
                if display_id and "text/plain" in m["content"]["data"]:
                    areas[display_id] = m["content"]["data"]["text/plain"]
        return areas

    def cell_streams(self, msg_id: str, name: str | None = None) -> list[tuple[str, str]]:
        """(name, text) of each stream message under a cell, in arrival order (a one-off job's lines)."""
        return [
            (m["content"]["name"], m["content"]["text"])
            for m in self.messages(parent=msg_id, msg_type="stream")
            if name is None or m["content"]["name"] == name
        ]

    def cell_text(self, msg_id: str) -> str:
        """All text a person sees under a cell: its streams (with one-off jobs' lines), then its output
        areas' current text (recurring tasks)."""
        streams = _stream(self.messages(parent=msg_id), "stdout") + _stream(self.messages(parent=msg_id), "stderr")
        return streams + "".join(self.output_areas(msg_id).values())

    def stream_text(self, name: str = "stdout", since: int = 0) -> str:
        """Everything written to one stream (from any cell or thread), optionally after a `mark()`."""
        with self._cond:
            return _stream([m for _, m in self.log[since:]], name)

    def output_text(self, since: int = 0) -> str:
        """Streams plus job output areas (their current text), from any cell, optionally after a `mark()`."""
        with self._cond:
            log = [m for _, m in self.log[since:]]
        areas: dict[str, str] = {}
        for m in log:
            if m["msg_type"] in ("display_data", "update_display_data"):
                display_id = (m["content"].get("transient") or {}).get("display_id")
                if display_id and "text/plain" in m["content"]["data"]:
                    areas[display_id] = m["content"]["data"]["text/plain"]
        return _stream(log, "stdout") + _stream(log, "stderr") + "".join(areas.values())

    def errors_since(self, since: int = 0) -> list[dict[str, Any]]:
        """The iopub `error` messages (uncaught exceptions shown in cells) after a `mark()`."""
        with self._cond:
            return [m for _, m in self.log[since:] if m["msg_type"] == "error"]

    # ------------------------------------------------------------------ execution

    def submit(self, code: str) -> str:
        """Send a cell without waiting; returns its msg_id."""
        return self.kc.execute(code, allow_stdin=False)

    def result(self, msg_id: str, timeout: float = 60) -> Cell:
        """Wait for a submitted cell's reply and its idle status; return what it produced.

        After a cell that failed, also wait until the kernel accepts cells again (`_wait_out_abort`),
        as a person does who reads the error before running the next cell.
        """
        deadline = time.monotonic() + timeout
        reply = self._reply(msg_id, deadline, timeout)
        if reply["content"]["status"] == "error":
            self._wait_out_abort(deadline, timeout)
        self.wait_for(
            lambda: any(
                m["content"].get("execution_state") == "idle" for m in self.messages(parent=msg_id, msg_type="status")
            ),
            timeout=max(1.0, deadline - time.monotonic()),
            what=f"idle after {msg_id}",
        )
        return Cell(msg_id, reply, self.messages(parent=msg_id))

    def _reply(self, msg_id: str, deadline: float, timeout: float) -> dict[str, Any]:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no execute_reply for {msg_id} after {timeout}s ({self._diagnosis(msg_id)})")
            try:
                msg = self.kc.get_shell_msg(timeout=remaining)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    def _wait_out_abort(self, deadline: float, timeout: float) -> None:
        """Return once the kernel runs cells again after an error reply.

        A kernel that replies `error` to a cell sent with `stop_on_error` (every frontend's default)
        then aborts the execute requests already queued, and stops aborting only when a marker it
        puts on its own queue comes round (ipykernel 6: `_abort_queues`). A cell sent the moment the
        error reply arrives can land before that marker and come back `aborted`, never run. So probe
        with silent empty cells until one is run.
        """
        while True:
            probe = self.kc.execute("", silent=True, store_history=False, allow_stdin=False, stop_on_error=False)
            if self._reply(probe, deadline, timeout)["content"]["status"] != "aborted":
                return

    def _diagnosis(self, msg_id: str) -> str:
        """What a missing reply leaves to go on: is the kernel alive, and what iopub said last (for this cell too)."""
        with self._cond:
            last = [(m["msg_type"], m["content"].get("execution_state", "")) for _, m in self.log[-5:]]
        mine = [m["msg_type"] for m in self.messages(parent=msg_id)]
        return f"kernel alive: {self.km.is_alive()}; this cell's iopub: {mine}; last iopub: {last}"

    def run(self, code: str, timeout: float = 60, allow_error: bool = False) -> Cell:
        cell = self.result(self.submit(code), timeout)
        if not allow_error and not cell.ok:
            content = cell.reply["content"]
            if content["status"] == "aborted":
                raise AssertionError("cell aborted: the kernel was still aborting the queue after an earlier error")
            raise AssertionError(
                f"cell failed: {content.get('ename')}: {content.get('evalue')}\n"
                + "\n".join(content.get("traceback", []))
            )
        return cell

    def value(self, expression: str, timeout: float = 30) -> Any:
        """Evaluate an expression in the kernel and return its repr evaluated back (literals only)."""
        import ast

        cell = self.run(f"print(repr({expression}))", timeout)
        return ast.literal_eval(cell.stdout.strip())

    def interrupt(self) -> None:
        self.km.interrupt_kernel()

    def restart(self, now: bool = False, timeout: float = 30) -> None:
        """Restart the kernel and wait until its iopub messages reach us again.

        A SUB socket drops what the new kernel publishes before it has reconnected, so, like
        jupyter_server's "nudge", send kernel_info requests until one's status message arrives.
        """
        self.km.restart_kernel(now=now)
        self._nudge(timeout)

    def shutdown(self) -> None:
        self._stop.set()
        try:
            self.kc.stop_channels()
        finally:
            if self.km.is_alive():
                self.km.shutdown_kernel(now=True)
        self._reader.join(2)

    # ------------------------------------------------------------------ benchmarks and soak

    @property
    def pid(self) -> int | None:
        """The kernel's process id (for psutil: threads, RSS), or None once it is gone."""
        provisioner = getattr(self.km, "provisioner", None)
        return getattr(provisioner, "pid", None)

    def ping(self, code: str = "1+1", timeout: float = 60) -> float:
        """Seconds from sending `code` until its execute_reply arrives on the shell channel.

        The cell is not stored in the kernel's history. Other shell replies read meanwhile are
        dropped, so ping only while no other submitted cell is waiting for its reply.
        """
        return self.execute_reply(code, timeout=timeout)[1]

    def execute_reply(
        self, code: str, user_expressions: dict[str, str] | None = None, timeout: float = 60
    ) -> tuple[dict[str, Any], float]:
        """Run `code` unrecorded and return (its execute_reply, seconds until that reply arrived).

        Reads only the shell channel, so its cost does not grow with the iopub log (unlike `run`).
        `user_expressions` are evaluated after the code; their `repr`s come back in the reply's
        `content["user_expressions"][name]["data"]["text/plain"]`. Drops other shell replies, as `ping`.
        """
        t0 = time.monotonic()
        msg_id = self.kc.execute(
            code, silent=False, store_history=False, user_expressions=user_expressions or {}, allow_stdin=False
        )
        reply = self._reply(msg_id, t0 + timeout, timeout)
        return reply, time.monotonic() - t0

    def log_between(self, start: float, end: float = float("inf")) -> list[tuple[float, dict[str, Any]]]:
        """(arrival time, message) of the iopub messages that arrived in [start, end] (time.monotonic)."""
        with self._cond:
            return [(t, m) for t, m in self.log if start <= t <= end]
