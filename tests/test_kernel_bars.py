"""Live bars in a real kernel, read from the widget comm messages a frontend receives."""

from __future__ import annotations

from typing import Callable

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

def quiet():
    time.sleep(0.3)
    return 'ok'

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


def _final(kernel: KernelSession, msg_id: str, status: str, timeout: float = 20) -> dict[str, str]:
    """The static final rendering that replaced the bar displayed under cell `msg_id` (its mime bundle).

    A finished bar's display is updated (same display id) to HTML plus text/plain that need no
    widget model: a saved notebook shows the outcome.
    """
    shown = [
        m["content"]["transient"]["display_id"]
        for m in kernel.messages(parent=msg_id, msg_type="display_data")
        if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
    ]
    assert shown, "no widget displayed under the cell"

    def final() -> dict[str, str] | None:
        for m in kernel.messages(msg_type="update_display_data"):
            data = m["content"]["data"]
            if m["content"]["transient"]["display_id"] == shown[0] and f"quiv-{status}" in data.get("text/html", ""):
                return data
        return None

    data = kernel.wait_for(final, timeout, f"the static final rendering ({status})")
    assert "application/vnd.jupyter.widget-view+json" not in data
    return data


def _ended_in_widgets(kernel: KernelSession, bar: dict[str, str], status: str) -> None:
    """The final state was drawn into the widgets before the static replacement, and the models stay open.

    A page reloaded while the job ran hears only comm messages (it has no future for the cell's
    execute request, so no display update reaches it): the widgets are what it shows.
    """
    log = kernel.messages()
    classes_set = [
        i
        for i, m in enumerate(log)
        if m["msg_type"] == "comm_msg"
        and m["content"]["comm_id"] == bar["box"]
        and f"quiv-{status}" in m["content"]["data"].get("state", {}).get("_dom_classes", ())
    ]
    static = [i for i, m in enumerate(log) if m["msg_type"] == "update_display_data"]
    assert classes_set and static and classes_set[0] < static[-1], "final state not drawn into the widgets first"
    states = kernel.widget_states()
    assert set(bar.values()) <= set(states), "a finished bar's widget models were closed"


def test_run_bar_reaches_its_total_and_ends_green_under_its_cell(kernel):
    cell = kernel.run("%quiv run steps --bar widget")
    bar = _bar_widgets(kernel, cell.msg_id)
    data = _final(kernel, cell.msg_id, "completed")
    assert "20/20" in data["text/html"] and "width:100.0%" in data["text/html"]
    assert "20/20" in data["text/plain"] and data["text/plain"].endswith("done")
    _ended_in_widgets(kernel, bar, "completed")


def test_a_bar_without_progress_is_indeterminate_and_ends_with_its_duration_and_result(kernel):
    cell = kernel.run("%quiv run quiet --bar widget")
    bar = _bar_widgets(kernel, cell.msg_id)
    kernel.wait_for(
        lambda: (
            any(
                "quiv-indeterminate" in m["content"]["data"]["state"].get("_dom_classes", ())
                for _, m in kernel.widget_updates(bar["progress"])
            )
            or "quiv-indeterminate" in kernel.widget_states().get(bar["progress"], {}).get("_dom_classes", ())
        ),
        10,
        "the striped indeterminate bar",
    )
    data = _final(kernel, cell.msg_id, "completed")
    assert "done in " in data["text/plain"] and data["text/plain"].endswith("→ 'ok'")
    assert "it/s" not in data["text/plain"] and "0it" not in data["text/html"]
    _ended_in_widgets(kernel, bar, "completed")


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
    data = _final(kernel, cell.msg_id, "completed")
    calls = kernel.run("print(quiv_nb.get_scheduler().get_job(_quiv_last_job).result)")
    total_calls = int(calls.stdout.strip())
    assert total_calls > 10_000
    messages = [m for _, m in kernel.widget_updates() if m["content"]["comm_id"] in bar.values()]
    print(f"{len(messages)} widget messages for {total_calls} hook calls")
    assert len(messages) <= 60, f"{len(messages)} widget messages for {total_calls} hook calls"
    assert f"{total_calls}/{total_calls}" in data["text/plain"]


def test_payload_and_error_text_is_escaped(kernel):
    cell = kernel.run("%quiv run nasty --bar widget")
    bar = _bar_widgets(kernel, cell.msg_id)
    live = " ".join(m["content"]["data"]["state"].get("value", "") for _, m in kernel.widget_updates(bar["label"]))
    joined = _final(kernel, cell.msg_id, "failed")["text/html"] + live
    assert "failed" in joined
    assert "<script" not in joined and "<img" not in joined and "<b>" not in joined
    assert "&lt;img" in joined and "&lt;script" in joined


def test_many_bars_ending_at_once_all_become_static_and_only_the_newest_keep_their_models(kernel):
    cell = kernel.run(
        "import quiv_nb.render.widget as _w\n"
        "_w.KEEP_FINISHED = 5\n"
        "_q = quiv_nb.get_scheduler()\n"
        "_many = [_q.add_task(f'many{i}', quiet, run_once=True, progress_callback=quiv_nb.bar('widget'))"
        " for i in range(40)]"
    )
    shown = {
        m["content"]["transient"]["display_id"]: m["content"]["data"]["application/vnd.jupyter.widget-view+json"]
        for m in kernel.messages(parent=cell.msg_id, msg_type="display_data")
        if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
    }
    assert len(shown) == 40

    def finals() -> set[str]:
        return {
            m["content"]["transient"]["display_id"]
            for m in kernel.messages(msg_type="update_display_data")
            if "quiv-completed" in m["content"]["data"].get("text/html", "")
        } & set(shown)

    kernel.wait_for(lambda: len(finals()) == 40, 60, "40 static final bars")
    boxes = {view["model_id"] for view in shown.values()}
    # Finished bars keep their models for reloaded pages, bounded: the 5 that finished last.
    finished_order = [
        m["content"]["transient"]["display_id"]
        for m in kernel.messages(msg_type="update_display_data")
        if "quiv-completed" in m["content"]["data"].get("text/html", "")
    ]
    newest = {shown[d]["model_id"] for d in finished_order[-5:]}
    kernel.wait_for(lambda: boxes & set(kernel.widget_states()) == newest, 10, "only the 5 newest bars' models open")
    kernel.run("_w.KEEP_FINISHED = 100")


def _display_kinds(kernel: KernelSession, msg_id: str) -> Callable[[], list[str]]:
    """A reader of the updates of the bar the cell `msg_id` displayed: "widget" (live) or "static", in order."""
    shown = [
        m["content"]["transient"]["display_id"]
        for m in kernel.messages(parent=msg_id, msg_type="display_data")
        if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
    ]
    assert shown

    def kinds() -> list[str]:
        return [
            "widget" if "application/vnd.jupyter.widget-view+json" in m["content"]["data"] else "static"
            for m in kernel.messages(msg_type="update_display_data")
            if m["content"]["transient"]["display_id"] == shown[0]
        ]

    return kinds


def test_the_next_run_of_a_recurring_bar_is_live_again_in_the_same_display(kernel):
    cell = kernel.run("%quiv add ticking quiet --every 1 --bar widget")
    try:
        kinds = _display_kinds(kernel, cell.msg_id)
        kernel.wait_for(lambda: "static,widget,static" in ",".join(kinds()), 20, "static, live again, static")
    finally:
        kernel.run("%quiv remove ticking")


def test_a_run_that_starts_and_ends_between_two_draws_still_leaves_the_display_static(kernel):
    # A recurring task whose job takes no time, every 50 ms: the pump draws a bar at most every 0.1 s, so a run's
    # start and end reach it in one draw. The display must end static every time (a saved notebook would otherwise
    # keep a widget view: "Loading widget..."). Before the fix such a draw put the live widgets back, so the
    # display alternated live/static run by run and ended live about every other time.
    kernel.run("def blink():\n    return 'ok'")
    cell = kernel.run("%quiv add blink blink --every 50ms --bar widget")
    kinds = _display_kinds(kernel, cell.msg_id)
    try:
        kernel.wait_for(lambda: kinds().count("static") >= 8, 30, "eight runs drawn")
    finally:
        kernel.run("%quiv remove blink")
    kernel.run("quiv_nb.get_scheduler()")  # a round trip: the pump has had time to draw what the removal left
    kernel.wait_for(lambda: kinds()[-1] == "static", 10, "the display to end static")
    seen = kinds()
    # Every time the display went live again, a static end followed it.
    assert all(seen[i + 1] == "static" for i, kind in enumerate(seen[:-1]) if kind == "widget"), seen


def test_waiting_bars_say_what_they_wait_for(kernel):
    upper = kernel.run("%quiv add up0 quiet --every 1h --delay 3600 --bar widget")
    down = kernel.run("%quiv add down0 quiet --after up0 --bar widget")
    try:
        bar = _bar_widgets(kernel, down.msg_id)
        text = kernel.wait_for(
            lambda: "waiting for up0" in (v := kernel.widget_states()[bar["text"]]["value"]) and v, 10, "the note"
        )
        assert "it/s" not in text and "0it" not in text
        up = _bar_widgets(kernel, upper.msg_id)
        kernel.wait_for(lambda: "next run " in kernel.widget_states()[up["text"]]["value"], 10, "the next run")
    finally:
        kernel.run("%quiv remove down0\n%quiv remove up0")
