"""Checks on the repository itself that CI must enforce: Dockerfile lint, Python lint, types and layering."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    # Next to the interpreter first: the venv's tools, even when the venv is not activated.
    beside = Path(sys.executable).with_name(name)
    path = str(beside) if beside.exists() else shutil.which(name)
    assert path, f"{name} is not installed; it comes with the test extras: pip install -e '.[test]'"
    return path


def test_dockerfile_passes_hadolint():
    result = subprocess.run([_tool("hadolint"), "Dockerfile"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_finds_nothing():
    result = subprocess.run(
        [_tool("ruff"), "check", "sampler", "tests"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing():
    # The settings (strictness, the pydantic plugin, files = sampler) are in pyproject.toml.
    result = subprocess.run([_tool("mypy")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_says_it_is_typed():
    # PEP 561: without the marker, type checkers of projects that import sampler ignore its hints.
    assert (REPO / "sampler" / "py.typed").is_file()


def test_imports_follow_the_layers_and_make_no_cycles():
    # The contracts (pyproject.toml, [tool.importlinter]): the stages import only downward, and the
    # modules of each package import each other without a cycle.
    result = subprocess.run([_tool("lint-imports")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
