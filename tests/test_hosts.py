"""Host pieces without a kernel: the widget bundle both ipywidgets generations share, capabilities, the pin check."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from pathlib import Path

import pytest

from quiv_nb import hooks
from quiv_nb.kernel import capabilities
from quiv_nb.render.ipyw import VIEW_MIME, style_class, view_bundle

ROOT = Path(__file__).resolve().parent.parent


def test_view_bundle_names_an_open_widget_and_nothing_once_it_is_closed():
    w = pytest.importorskip("ipywidgets")
    box = w.HBox([w.HTML("x")])
    assert view_bundle(box) == {VIEW_MIME: {"version_major": 2, "version_minor": 0, "model_id": box.model_id}}
    box.close()
    assert view_bundle(box) == {}


def test_style_class_is_the_one_the_widget_builds_itself():
    w = pytest.importorskip("ipywidgets")
    for cls in (w.HTML, w.FloatProgress, w.Button):
        widget = cls()
        assert type(widget.style) is style_class(cls)
        widget.close()


def test_capabilities_default_to_no_host_and_the_kernel_probe_answers_once(monkeypatch):
    monkeypatch.setattr(hooks, "_capability_probe", [])
    assert hooks.capabilities() == hooks.Capabilities()
    hooks.register_capability_probe(capabilities.detect)
    first = hooks.capabilities()
    assert first is hooks.capabilities()  # detected once, then the same answer
    assert first.widgets == (int(importlib.metadata.version("ipywidgets").split(".")[0]))


def test_check_pins_names_each_changed_pin(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    check_pins = importlib.import_module("check_pins")
    installed = importlib.metadata.version("pytest")
    pins = tmp_path / "pins.txt"
    pins.write_text(f"# comment\npytest=={installed}\npytest-timeout==0.0.1\nno-such-dist-quiv==1.0\n")
    assert check_pins.changed(pins) == [
        f"pytest-timeout: pinned 0.0.1, installed {importlib.metadata.version('pytest-timeout')}",
        "no-such-dist-quiv: pinned 1.0, installed not installed",
    ]
    assert check_pins.main([str(pins)]) == 1
    sys.modules.pop("check_pins", None)
