"""Soak in a real kernel: the mixed workload of `benchmarks/soak.py` keeps threads, RSS and comms flat.

One minute by default (the CI run); `QUIV_SOAK_MINUTES=10 pytest -m slow tests/test_soak.py` for the
full soak. Each invariant is its own assertion so a failure names what drifted and prints the table.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.kernel]

MINUTES = float(os.environ.get("QUIV_SOAK_MINUTES", "1"))
SOAK = Path(__file__).resolve().parent.parent / "benchmarks" / "soak.py"


def _load_soak():
    spec = importlib.util.spec_from_file_location("quiv_nb_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def soak():
    module = _load_soak()
    result = module.run_soak(MINUTES, sample_every=5.0 if MINUTES > 2 else 3.0)
    print(module.report(result))  # shown with -s, or on failure
    return module, result


@pytest.mark.timeout(int(MINUTES * 60 + 180))
def test_soak_invariants_hold(soak):
    module, result = soak
    post = result.after_warmup
    table = module.report(result)
    assert len(post) >= 2, f"too few samples after warm-up\n{table}"

    threads = {s.threads for s in post}
    assert len(threads) == 1, f"OS thread count changed after warm-up: {sorted(threads)}\n{table}"

    growth = max(s.rss_mib for s in post) - post[0].rss_mib
    assert growth < module.RSS_BOUND_MIB, f"RSS grew {growth:.1f} MiB after warm-up\n{table}"

    # A finished bar keeps its widget models (bounded by KEEP_FINISHED) and its next run reuses them; the
    # bars' comms are counted apart, and so are the dashboard's rows of the replaced `tick` tasks (kept open, up
    # to RETIRED_KEPT rows, for late clicks); the others stay flat; the slack is one bar built or closed mid-sample.
    comms = sorted({s.comms - s.bar_comms - s.dash_kept for s in post})
    slack = max(s.bar_parts for s in post)
    assert comms[-1] - comms[0] <= slack, f"open comms outside live bars changed after warm-up: {comms}\n{table}"

    widget_bin = max(s.widget_bin_max for s in post)
    assert widget_bin <= module.WIDGET_BIN_BOUND, f"{widget_bin} widget messages in one second\n{table}"

    non_stream = max(s.iopub_rate - s.stream_rate for s in post)
    assert non_stream <= module.NON_STREAM_RATE_BOUND, f"{non_stream:.0f} non-stream iopub msg/s\n{table}"

    failed = [c for c in result.checks if not c.ok]
    assert not failed, "\n".join(f"{c.name}: {c.detail}" for c in failed) + f"\n{table}"
