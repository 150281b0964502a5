"""`python -m quiv_nb demo`: a small pipeline with terminal progress bars, no notebook needed.

`python -m quiv_nb demo --notebook` runs notebooks/quickstart.ipynb headless instead and
prints where the executed copy was written (open it with `jupyter lab`).
"""

from __future__ import annotations

import argparse
import random
import sys
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
        data.append({"id": i, "value": random.random()})
        _progress_hook(step=i + 1, total=rows, stage="reading")
        time.sleep(0.004)
    return data


def transform(_progress_hook: Callable[..., None], rows: int = 400) -> float:
    total = 0.0
    for i in range(rows):
        total += (i % 7) * 0.5
        _progress_hook(step=i + 1, total=rows, stage="aggregating", mean=round(total / (i + 1), 3))
        time.sleep(0.003)
    return total


async def load(_progress_hook: Callable[..., None], batches: int = 20) -> str:
    import asyncio

    for i in range(batches):
        await asyncio.sleep(0.03)
        _progress_hook(pct=100 * (i + 1) / batches, stage="writing")
    return f"loaded {batches} batches"


def heartbeat(_job_id: str) -> str:
    return f"alive ({_job_id[:8]})"


def run_demo() -> int:
    """Run three one-off stages side by side and a recurring heartbeat, with terminal bars."""
    print("quiv_nb demo: three jobs in parallel, one recurring task; bars update ~10x a second\n")
    with Quiv(pool_size=4) as scheduler:
        ids = [
            scheduler.add_task("extract", extract, run_once=True, progress_callback=bar("tqdm", desc="extract")),
            scheduler.add_task("transform", transform, run_once=True, progress_callback=bar("tqdm", desc="transform")),
            scheduler.add_task("load", load, run_once=True, progress_callback=bar("tqdm", desc="load")),
        ]
        beat = scheduler.add_task("heartbeat", heartbeat, interval=0.5)
        jobs = [scheduler.wait_for_task(task_id, timeout=60) for task_id in ids]
        time.sleep(0.3)  # let the bars draw their final state before the summary
        print()
        for job in jobs:
            print(f"  {job.task_name:<10} {job.status:<10} {job.duration_seconds:6.2f}s  -> {job.result!r}"[:100])
        beats = scheduler.get_all_jobs(task_id=beat, status="completed")
        print(f"  heartbeat  ran {len(beats)} times every 0.5s")
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
