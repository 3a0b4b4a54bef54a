"""Security checks CI enforces on the repository: static analysis of the package (bandit) and an
audit of the daemon's run-time dependencies, as installed, against the known vulnerabilities PyPI
publishes (pip-audit)."""

from __future__ import annotations

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

import requests
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from tests.peers import unavailable
from tests.test_repo_checks import REPO, _tool

# Findings accepted on purpose, by vulnerability ID (or alias): ID -> why it does not apply here.
# Anything not listed fails the audit, so a new advisory against a dependency turns CI red.
ACCEPTED_VULNERABILITIES: dict[str, str] = {}

_NOSEC = re.compile(r"#\s*nosec\b(?P<rest>.*)")
_JUSTIFIED_NOSEC = re.compile(r"^ (B\d{3})(, ?B\d{3})* # \S.{9,}$")


def test_bandit_finds_nothing_in_the_package():
    result = subprocess.run(
        [
            _tool("bandit"),
            "-c",
            "pyproject.toml",
            "-r",
            "sampler",
            "-q",
            "-f",
            "custom",
            "--msg-template",
            "{relpath}:{line}: {test_id} [{severity}] {msg}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bandit_reports_a_new_finding(tmp_path):
    """The check above can fail: with the project's settings, bandit flags a shell command built from input."""
    risky = tmp_path / "risky.py"
    risky.write_text("import subprocess\n\nsubprocess.call(input(), shell=True)\n")
    result = subprocess.run(
        [_tool("bandit"), "-c", str(REPO / "pyproject.toml"), "-q", str(risky)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "B602" in result.stdout, result.stdout + result.stderr


def test_every_nosec_names_its_check_and_says_why():
    unjustified = []
    for path in sorted((REPO / "sampler").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = _NOSEC.search(line)
            if match and not _JUSTIFIED_NOSEC.match(match.group("rest")):
                unjustified.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not unjustified, "write `# nosec BXXX # why it is safe`:\n" + "\n".join(unjustified)


# --- dependency audit --------------------------------------------------------


def _runtime_requirements() -> list[str]:
    """`name==version` of every distribution the daemon needs at run time: tail-sampler's own
    requirements, without its extras, and theirs in turn, as installed here. What ships in the image
    is audited; the test tools are not (a fuzzer pinned below its latest release by the wheels there
    are for this Python must not make the audit unanswerable)."""
    pending = ["tail-sampler"]
    seen: dict[str, str] = {}
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        distribution = metadata.distribution(name)
        seen[name] = distribution.version
        for line in distribution.requires or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    del seen[canonicalize_name("tail-sampler")]  # the project itself, installed editable
    return sorted(f"{name}=={version}" for name, version in seen.items())


def _accepted(vulnerability: dict[str, Any]) -> bool:
    ids = {vulnerability.get("id"), *vulnerability.get("aliases", ())}
    return any(identifier in ACCEPTED_VULNERABILITIES for identifier in ids)


def _pip_audit(requirements: Path, cache: Path) -> dict[str, Any]:
    ignored = [argument for identifier in ACCEPTED_VULNERABILITIES for argument in ("--ignore-vuln", identifier)]
    result = subprocess.run(
        [
            _tool("pip-audit"),
            "--requirement",
            str(requirements),
            "--no-deps",
            "--disable-pip",
            "--vulnerability-service",
            "pypi",
            "--format",
            "json",
            "--progress-spinner",
            "off",
            "--cache-dir",
            str(cache),
            *ignored,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode not in (0, 1) or not result.stdout.strip():
        unavailable("pip-audit", f"exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout)


def _latest_release_audit(name: str, version: str, session: requests.Session) -> tuple[list[str], str | None]:
    """Findings for `name==version` from PyPI's project JSON, which lists the vulnerabilities of the
    latest release only: it answers for an installed version that is the latest, and for no other.
    Returns (findings, why it could not be audited)."""
    from pip._internal.models.index import PyPI  # the index pip installs from; pip-audit asks the same service

    try:
        response = session.get(f"{PyPI.pypi_url}/{name}/json", timeout=120)
        response.raise_for_status()
        project = response.json()
        latest = project["info"]["version"]
        if Version(latest) != Version(version):
            return [], f"{name} {version}: not the latest release ({latest}), whose vulnerabilities alone are listed"
    except (requests.RequestException, ValueError, KeyError, InvalidVersion) as exc:
        return [], f"{name} {version}: {type(exc).__name__}: {exc}"
    findings = [
        f"{name} {version}: {vulnerability['id']} (fixed in {', '.join(vulnerability.get('fixed_in') or ['-'])})"
        for vulnerability in project.get("vulnerabilities") or []
        if not vulnerability.get("withdrawn") and not _accepted(vulnerability)
    ]
    return findings, None


def test_installed_dependencies_have_no_known_vulnerabilities(tmp_path):
    pinned = _runtime_requirements()
    assert len(pinned) > 10, pinned
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(pinned) + "\n")
    report = _pip_audit(requirements, tmp_path / "cache")

    findings = [
        f"{dependency['name']} {dependency['version']}: {vulnerability['id']} "
        f"(fixed in {', '.join(vulnerability.get('fix_versions') or ['-'])})"
        for dependency in report["dependencies"]
        for vulnerability in dependency.get("vulns", ())
    ]
    skipped = [dependency for dependency in report["dependencies"] if "skip_reason" in dependency]
    # Where the per-release JSON pip-audit asks for is not served (as behind some registry mirrors), the
    # project JSON still is: it answers for every dependency installed at its latest release.
    unaudited = []
    with requests.Session() as session, ThreadPoolExecutor(max_workers=8) as pool:
        versions = {canonicalize_name(line.split("==")[0]): line.split("==")[1] for line in pinned}
        audits = pool.map(
            lambda dependency: _latest_release_audit(
                dependency["name"], versions.get(canonicalize_name(dependency["name"]), ""), session
            ),
            skipped,
        )
        for more, reason in audits:
            findings += more
            if reason:
                unaudited.append(reason)
    assert not findings, (
        "known vulnerabilities in installed dependencies (upgrade, or accept one in ACCEPTED_VULNERABILITIES "
        "with the reason it does not apply):\n" + "\n".join(findings)
    )
    if unaudited:
        unavailable("the vulnerability data", f"{len(unaudited)} dependencies not audited:\n" + "\n".join(unaudited))
    assert len(report["dependencies"]) == len(pinned), (len(report["dependencies"]), len(pinned))
