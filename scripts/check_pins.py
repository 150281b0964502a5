"""Check that every `name==version` pin in a requirements file is what this environment has installed.

Usage: `python scripts/check_pins.py .ci/colab-pins.txt` (after `pip install -e .`): exits 1 and names
each package pip changed, so CI fails when installing quiv_nb would upgrade a host's pinned runtime.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path


def changed(pins_file: Path) -> list[str]:
    """`name: pinned X, installed Y` for every pin the environment does not match (empty when all kept)."""
    out = []
    for line in pins_file.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, pinned = line.partition("==")
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != pinned:
            out.append(f"{name}: pinned {pinned}, installed {installed}")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/check_pins.py PINS_FILE", file=sys.stderr)
        return 2
    problems = changed(Path(argv[0]))
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"every pin in {argv[0]} kept")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
