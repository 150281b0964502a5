"""Regenerate docs/images/*.png from the screenshots the browser tests save under tests/artifacts/.

Usage::

    python scripts/make_screenshots.py            # run the browser tests, then copy the images
    python scripts/make_screenshots.py --no-run   # copy what the last test run left in tests/artifacts/
    python scripts/make_screenshots.py --dest images-out

The browser tests (tests/browser/, see its conftest.py) are the only producer of screenshots, so the images in the
docs always show what a passing test saw. ``IMAGES`` names the artifacts that go into the docs; the script deletes
them before running the tests, so a skipped or failed test can never leave a stale image to be copied.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
DEST = REPO / "docs" / "images"

#: docs/images name -> tests/artifacts name (both .png), saved by tests/browser/test_quickstart.py and test_journey.py.
IMAGES = {
    # JupyterLab: from the train cell (its bar green at 100 %) down to the live dashboard.
    "quickstart-lab.png": "lab-quickstart.png",
    # The dashboard alone, in JupyterLab, just after its Cancel button stopped slow_export.
    "dashboard.png": "lab-quickstart-dashboard.png",
    # Notebook 7: the cancelled (grey) and failed (red) bars and the failure's report.
    "quickstart-notebook7.png": "notebook7-quickstart.png",
    # JupyterLab, from tests/browser/test_journey.py: a `%%quiv every` cell, `%quiv run train(epochs=5)` (its bar
    # re-attached by a re-run) and `r = %quiv wait`.
    "cell-magics-lab.png": "lab-journey-cells.png",
}


def _run_browser_tests() -> int:
    """Run the browser tests in a subprocess; return pytest's exit code."""
    cmd = [sys.executable, "-m", "pytest", "-m", "browser", "tests/browser", "-p", "no:cacheprovider", "-q"]
    print("+", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=REPO)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="do not run the browser tests; copy existing artifacts")
    parser.add_argument("--dest", type=Path, default=DEST, help=f"output folder (default: {DEST.relative_to(REPO)})")
    args = parser.parse_args(argv)

    if not args.no_run:
        for artifact in IMAGES.values():
            (ARTIFACTS / artifact).unlink(missing_ok=True)
        code = _run_browser_tests()
        if code != 0:
            print(f"browser tests failed (exit {code}); docs images left unchanged", file=sys.stderr)
            return code

    missing = [name for name in IMAGES.values() if not (ARTIFACTS / name).is_file()]
    if missing:
        print(
            f"missing in {ARTIFACTS}: {', '.join(missing)} (were the browser tests skipped or deselected?)",
            file=sys.stderr,
        )
        return 1
    args.dest.mkdir(parents=True, exist_ok=True)
    for image, artifact in IMAGES.items():
        shutil.copyfile(ARTIFACTS / artifact, args.dest / image)
        print(f"{args.dest / image}  <-  tests/artifacts/{artifact}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
