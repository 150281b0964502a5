"""`python -m quiv_nb demo`: a small pipeline with terminal progress bars, no notebook needed.

extract -> transform -> load, each step getting the one before's result; a fan-out/fan-in (two
summaries of the extract, joined in a report); a validation step that fails on purpose, so the
step after it is skipped; and two calendar schedules, shown with their next run time.

`python -m quiv_nb demo --notebook` runs notebooks/quickstart.ipynb headless instead and
prints where the executed copy was written (open it with `jupyter lab`).
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import textwrap
import time
from pathlib import Path
from threading import Event
from typing import Any, Callable

from . import Quiv, bar


def extract(_progress_hook: Callable[..., None], _stop_event: Event, rows: int = 400) -> list[dict[str, Any]]:
    data = []
    for i in range(rows):
        if _stop_event.is_set():
            break
        data.append({"id": i, "region": "north" if i % 3 else "south", "value": round(random.random(), 3)})
        _progress_hook(step=i + 1, total=rows, stage="reading")
        time.sleep(0.003)
    return data


def transform(_upstream: dict[str, Any], _progress_hook: Callable[..., None]) -> dict[str, float]:
    rows = _upstream["extract"]
    totals: dict[str, float] = {}
    for i, row in enumerate(rows):
        totals[row["region"]] = round(totals.get(row["region"], 0.0) + row["value"], 3)
        _progress_hook(step=i + 1, total=len(rows), stage="aggregating")
        time.sleep(0.002)
    return totals


async def load(_upstream: dict[str, Any], _progress_hook: Callable[..., None], batches: int = 10) -> str:
    import asyncio

    totals = _upstream["transform"]
    for i in range(batches):
        await asyncio.sleep(0.02)
        _progress_hook(pct=100 * (i + 1) / batches, stage="writing")
    return f"loaded {len(totals)} regions"


def count_rows(_upstream: dict[str, Any]) -> int:
    return len(_upstream["extract"])


def max_value(_upstream: dict[str, Any]) -> float:
    return max(row["value"] for row in _upstream["extract"])


def report(_upstream: dict[str, Any]) -> str:
    return f"{_upstream['count_rows']} rows, max value {_upstream['max_value']}"


def validate(_upstream: dict[str, Any]) -> None:
    bad = sum(1 for row in _upstream["extract"] if row["value"] > 0.99)
    raise ValueError(f"{bad + 1} rows failed validation (on purpose, to show skipping)")


def publish(_upstream: dict[str, Any]) -> str:  # never runs: validate fails
    return "published"


def refresh(_scheduled_at: Any) -> str:
    return f"refreshed at {_scheduled_at:%H:%M}"


def run_demo() -> int:
    """Run the pipeline once with terminal bars, print each step's outcome and the calendar tasks."""
    print("quiv_nb demo: extract -> transform -> load, a fan-out/fan-in, a failing step; bars update ~10x a second\n")
    # The failing step fails on purpose; its traceback would land between the bars. The summary
    # below shows every step's outcome, so the scheduler's own failure log is kept quiet here.
    quiet = logging.getLogger("quiv_nb.demo")
    quiet.setLevel(logging.CRITICAL)
    scheduler = Quiv(pool_size=4, logger=quiet)
    add = scheduler.add_task
    # The whole pipeline is declared before start(), so no step can finish before the steps after
    # it exist. An `after` task runs once its upstreams completed, with their results in `_upstream`.
    steps = [
        add("extract", extract, run_once=True, progress_callback=bar("tqdm", desc="extract")),
        add("transform", transform, after="extract", run_once=True, progress_callback=bar("tqdm", desc="transform")),
        # load reports percentages: total=100 from the start, so its bar starts as "0/100", not "0it"
        add("load", load, after="transform", run_once=True, progress_callback=bar("tqdm", desc="load", total=100)),
        add("count_rows", count_rows, after="extract", run_once=True),  # fan-out ...
        add("max_value", max_value, after="extract", run_once=True),
        add("report", report, after=["count_rows", "max_value"], run_once=True),  # ... and fan-in
        add("validate", validate, after="extract", run_once=True),  # fails: publish is skipped
        add("publish", publish, after="validate", run_once=True),
    ]
    calendar = [
        add("refresh_weekdays", refresh, cron="0 9 * * 1-5", timezone="Europe/Paris"),
        add("refresh_nightly", refresh, at="02:30"),  # this machine's zone
    ]
    with scheduler:  # start() ... shutdown()
        jobs = [scheduler.wait_for_task(task_id, timeout=60) for task_id in steps]
        time.sleep(0.3)  # let the bars draw their final state before the summary
        print()
        for job in jobs:
            if job.status != "completed":
                outcome = job.error_message or ""
            elif isinstance(job.result, list):
                outcome = f"{len(job.result)} rows"
            else:
                outcome = repr(job.result)
            # shortened at a word boundary, never mid-word
            print(f"  {job.task_name:<11} {job.status:<10} -> {textwrap.shorten(outcome, 84, placeholder=' …')}")
        print()
        for task in map(scheduler.get_task, calendar):
            when = f"{task.next_run_at:%a %Y-%m-%d %H:%M %Z}" if task.next_run_at else "never"
            schedule = f"cron {task.cron!r}" if task.cron else f"daily at {task.at}"
            print(f"  {task.task_name:<17} {schedule} ({task.timezone}): next run {when}")
    return 0


def run_notebook(path: Path, output: Path | None = None) -> int:
    """Execute a notebook headless (nbclient) and save the executed copy (beside it, or in `output`)."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
    out = (output or path.parent) / (path.stem + ".executed.ipynb")
    nbformat.write(nb, out)
    print(f"ran {path} without errors; executed copy: {out}\nopen it with: jupyter lab {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quiv_nb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the demo")
    demo.add_argument("--notebook", nargs="?", const="notebooks/quickstart.ipynb", help="run a notebook headless")
    demo.add_argument("--output", type=Path, help="folder for the executed notebook (default: beside it)")
    args = parser.parse_args(argv)
    if args.notebook:
        return run_notebook(Path(args.notebook), args.output)
    return run_demo()


if __name__ == "__main__":
    sys.exit(main())
