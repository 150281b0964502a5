"""Re-running a `%quiv run` cell while its job runs re-attaches the job's widget bar (issue 12, items 3 and 13), in a
real kernel, read from the iopub messages a frontend gets.

The bar shown again in the new cell must carry the bar's own display id: the final static rendering is sent as an
update of that display id, and only so does it replace the live widget in the new cell (the old cell's output was
cleared by the re-run). Without it the new cell keeps a widget view whose model is closed when the job ends: empty
while the notebook is open, "Error displaying widget: model not found" once it is saved and reopened.
"""

from __future__ import annotations

import pytest
from kernel_harness import started_with

pytestmark = pytest.mark.kernel

SETUP = """
%load_ext quiv_nb
import threading

gate = threading.Event()

def held(_progress_hook):
    _progress_hook(step=1, total=2)
    gate.wait(30)
    _progress_hook(step=2, total=2)
    return "ok"
"""

WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def kernel():
    yield from started_with(SETUP)


def _bar_displays(kernel, msg_id: str) -> list[str]:
    """The display ids of the widget views displayed under the cell `msg_id`."""
    return [
        m["content"].get("transient", {}).get("display_id")
        for m in kernel.messages(parent=msg_id, msg_type="display_data")
        if WIDGET in m["content"]["data"]
    ]


def test_a_reattached_widget_bar_ends_as_the_static_final_in_the_new_cell(kernel):
    code = "%quiv run held --bar widget"
    first = kernel.run(code)
    (display_id,) = _bar_displays(kernel, first.msg_id)
    assert display_id
    again = kernel.run(code)  # the same cell again while held runs: re-attaches
    assert "still running" in kernel.cell_text(again.msg_id)
    assert _bar_displays(kernel, again.msg_id) == [display_id]
    kernel.run("gate.set()")

    def static_final():
        return [
            m
            for m in kernel.messages(msg_type="update_display_data")
            if m["content"].get("transient", {}).get("display_id") == display_id
            and "quiv-static" in m["content"]["data"].get("text/html", "")
        ]

    (final,) = kernel.wait_for(static_final, timeout=30, what="the bar's static final rendering")
    assert WIDGET not in final["content"]["data"] and "2/2" in final["content"]["data"]["text/plain"]
