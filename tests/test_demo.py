"""`python -m quiv_nb demo` (the README's first command) runs its pipeline and prints each step's outcome."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_terminal_demo_runs_a_real_pipeline() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "quiv_nb", "demo"], capture_output=True, text=True, timeout=90, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("  ") and line.strip()}
    assert "completed  -> 400 rows" in lines["extract"]
    assert "completed  -> 'loaded 2 regions'" in lines["load"]  # transform's result reached load
    assert "completed  -> '400 rows, max value" in lines["report"]  # the fan-in got both results
    assert "failed     -> ValueError" in lines["validate"]
    assert "skipped    -> upstream 'validate' failed: ValueError" in lines["publish"]
    assert "cron '0 9 * * 1-5' (Europe/Paris): next run" in lines["refresh_weekdays"]
    assert "daily at 02:30" in lines["refresh_nightly"]
    assert "Traceback" not in done.stderr
    # The bars (stderr): no tqdm "0it" start for load (it reports percentages), no doubled ": ".
    assert "load: 0it" not in done.stderr and ": : " not in done.stderr
    # A long outcome is shortened at a word boundary, marked with " …", never cut mid-word.
    publish = lines["publish"]
    assert publish.endswith(" …") and "(on purpose, to …" in publish  # "to s" was the old cut
