"""Live bars in a real kernel, read from the widget comm messages a frontend receives."""

from __future__ import annotations

import pytest
from kernel_harness import KernelSession, started_with

pytestmark = pytest.mark.kernel

SETUP = """
%load_ext quiv_nb
import time, quiv_nb

def steps(_progress_hook, n=20, pause=0.1):
    for i in range(1, n + 1):
        time.sleep(pause)
        _progress_hook(step=i, total=n, stage='working')
    return 'done'

def flood(_progress_hook, seconds=2.0):
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        i += 1
        _progress_hook(step=i)
    _progress_hook(step=i, total=i)
    return i

def nasty(_progress_hook):
    _progress_hook(step=1, total=2, stage='<script>alert(1)</script>', note='<b>bold</b>')
    time.sleep(0.3)
    raise RuntimeError('<img src=x onerror=alert(2)>')
"""


@pytest.fixture(scope="module")
def kernel():
    yield from started_with(SETUP)


def _bar_widgets(kernel: KernelSession, msg_id: str) -> dict[str, str]:
    """The comm ids of the bar displayed under cell `msg_id`: {'box', 'progress', 'label', 'text'}."""
    views = [
        m["content"]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        for m in kernel.messages(parent=msg_id, msg_type="display_data")
        if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
    ]
    assert views, "no widget displayed under the cell"
    states = kernel.widget_states()
    box = states[views[0]]
    children = [c.removeprefix("IPY_MODEL_") for c in box["children"]]
    found = {"box": views[0]}
    html = [c for c in children if states[c]["_model_name"] == "HTMLModel"]
    found["label"], found["text"] = html[0], html[-1]
    found["progress"] = next(c for c in children if states[c]["_model_name"] == "FloatProgressModel")
    return found


def _final(kernel: KernelSession, comm_id: str, key: str, expected: object, timeout: float = 20) -> None:
    kernel.wait_for(lambda: kernel.widget_states().get(comm_id, {}).get(key) == expected, timeout, f"{key}={expected}")


def test_run_bar_reaches_its_total_and_ends_green_under_its_cell(kernel):
    cell = kernel.run("%quiv run steps --bar widget")
    bar = _bar_widgets(kernel, cell.msg_id)
    _final(kernel, bar["progress"], "bar_style", "success")
    state = kernel.widget_states()[bar["progress"]]
    assert state["value"] == state["max"] == 20
    # The text widget's update follows the bar's in the same redraw.
    kernel.wait_for(lambda: "20/20" in kernel.widget_states()[bar["text"]]["value"], 10, "20/20 in the text")


def test_bar_updates_keep_arriving_while_another_cell_sleeps(kernel):
    cell = kernel.run("%quiv run steps --bar widget")
    bar = _bar_widgets(kernel, cell.msg_id)
    sleeper = kernel.submit("time.sleep(2)")
    kernel.wait_for(
        lambda: any(m["content"].get("execution_state") == "busy" for m in kernel.messages(sleeper, "status")),
        timeout=10,
        what="sleeping cell started",
    )
    sleeping_from = max(t for t, m in kernel.log if m["parent_header"].get("msg_id") == sleeper)
    kernel.result(sleeper, timeout=20)
    sleeping_until = max(t for t, m in kernel.log if m["parent_header"].get("msg_id") == sleeper)
    during = [
        t
        for t, m in kernel.widget_updates(bar["progress"])
        if sleeping_from <= t <= sleeping_until and "value" in m["content"]["data"]["state"]
    ]
    assert len(during) >= 5, f"only {len(during)} bar updates while the other cell slept"


def test_a_hook_flood_sends_a_few_dozen_messages_and_shows_the_final_value(kernel):
    cell = kernel.run("%quiv run flood --bar widget")
    bar = _bar_widgets(kernel, cell.msg_id)
    _final(kernel, bar["progress"], "bar_style", "success")
    calls = kernel.run("print(quiv_nb.get_scheduler().get_job(_quiv_last_job).result)")
    total_calls = int(calls.stdout.strip())
    assert total_calls > 10_000
    messages = [m for _, m in kernel.widget_updates() if m["content"]["comm_id"] in bar.values()]
    print(f"{len(messages)} widget messages for {total_calls} hook calls")
    assert len(messages) <= 60, f"{len(messages)} widget messages for {total_calls} hook calls"
    state = kernel.widget_states()[bar["progress"]]
    assert state["value"] == state["max"] == total_calls


def test_payload_and_error_text_is_escaped(kernel):
    cell = kernel.run("%quiv run nasty --bar widget")
    bar = _bar_widgets(kernel, cell.msg_id)
    _final(kernel, bar["progress"], "bar_style", "danger")
    kernel.wait_for(lambda: "failed" in kernel.widget_states()[bar["text"]]["value"], 10, "failure text")
    texts = [kernel.widget_states()[bar[k]]["value"] for k in ("label", "text")]
    joined = " ".join(texts)
    assert "<script" not in joined and "<img" not in joined and "<b>" not in joined
    assert "&lt;img" in joined or "&lt;script" in joined
