"""The three places that list runtime dependencies (pyproject, binder, conda) agree."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def _names(requirements: list[str]) -> set[str]:
    names = set()
    for line in requirements:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith(("-", "python", "pip")):
            continue
        names.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def _pyproject_runtime() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return _names(data["project"]["dependencies"])


FRONTENDS = {"jupyterlab", "notebook"}
EXTRAS = {"distributed"}  # binder also installs the `dask` extra, for the scale-out notebook


def test_binder_requirements_match_pyproject():
    binder = _names((ROOT / "binder" / "requirements.txt").read_text().splitlines())
    assert binder - FRONTENDS - EXTRAS == _pyproject_runtime()


def test_environment_yml_matches_pyproject():
    deps = []
    text = (ROOT / "environment.yml").read_text().split("dependencies:", 1)[1]
    for line in text.splitlines():
        match = re.match(r"^\s{2}- ([A-Za-z0-9_.\-]+.*)$", line)  # top-level conda deps
        pip_only = re.match(r"^\s{6}- ([A-Za-z0-9_.\-]+.*)$", line)  # the pip list: runtime deps conda lacks
        if match or pip_only:
            deps.append((match or pip_only).group(1))
    assert _names(deps) - FRONTENDS == _pyproject_runtime()


def test_postbuild_installs_the_repo():
    post = (ROOT / "binder" / "postBuild").read_text()
    assert "pip install" in post and " -e ." in post


def test_readme_quickstart_has_two_commands_and_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in quick.strip().splitlines() if line.strip()]
    assert len(commands) == 2
    test_command = readme.split("test command:", 1)[1].split("```bash", 1)[1].split("```", 1)[0].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_runtime_lower_bounds_admit_colabs_pins():
    """`pip install quiv_nb` into Colab's runtime must change none of its pins (.ci/colab-pins.txt)."""
    requirements = pytest.importorskip("packaging.requirements")
    pins = {}
    for line in (ROOT / ".ci" / "colab-pins.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    checked = set()
    for dep in deps:
        req = requirements.Requirement(dep)
        name = req.name.lower().replace("_", "-")
        if name in pins:
            assert req.specifier.contains(pins[name]), f"{dep} excludes Colab's {name}=={pins[name]}"
            checked.add(name)
    assert checked == {"ipykernel", "ipywidgets", "ipython"}


def test_the_package_is_typed_and_ci_checks_its_types():
    """`py.typed` ships in the wheel (hatch packs every file under quiv_nb/) and CI runs mypy after ruff."""
    assert (ROOT / "quiv_nb" / "py.typed").is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["quiv_nb"]
    assert data["tool"]["mypy"]["packages"] == ["quiv_nb"]
    assert any(r.startswith("mypy") for r in data["project"]["optional-dependencies"]["test"])
    run = (ROOT / ".ci" / "run").read_text()
    ruff = run.index("ruff check .")
    assert ruff < run.index("python -m mypy") < run.index("deactivate", ruff)
