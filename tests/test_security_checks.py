"""Security checks CI enforces on the repository: static analysis of the package (bandit) and an
audit of the pinned dependencies, as installed, against the known vulnerabilities PyPI publishes
(pip-audit)."""

from __future__ import annotations

import json
import re
import subprocess
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from tests.peers import unavailable
from tests.test_repo_checks import REPO, _tool, installed_pins

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
#
# What is audited is what constraints.txt pins and the test command installed (the daemon, its
# `demo` extra, which the image ships too, and the test tools): exact versions, so the verdict
# depends on the advisories for those versions only, never on what was released since.
#
# Where the vulnerability data comes from, and what it can answer:
# - pip-audit's `pypi` service asks for each version's own JSON (/pypi/NAME/VERSION/json), whose
#   `vulnerabilities` are those of that release. PyPI serves it; the registry mirror CI installs from
#   answers 404 for every version (checked: requests 2.19.0, urllib3 2.8.0 -- the latest --, and
#   pycrypto 2.6.1 all "not found"), so there pip-audit audits nothing and says so per dependency.
# - The project's JSON (/pypi/NAME/json) is served everywhere, but lists the vulnerabilities of
#   the project's latest release only: it answers for a pin that is the latest release, and says
#   nothing about an older one.
# So a pin is audited by the first source that answers for its exact version. A pin neither can
# answer for (an older release, behind that mirror) is reported as not audited, in a warning in the
# test summary, and does not fail the test: failing would make the verdict depend on a registry
# having published a newer release this morning. Refreshing constraints.txt makes them auditable.


class UnauditedDependencies(UserWarning):
    """Pinned versions for which no reachable source lists vulnerabilities."""


@dataclass
class AuditResult:
    findings: list[str] = field(default_factory=list)
    audited: list[str] = field(default_factory=list)
    unaudited: list[str] = field(default_factory=list)


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
    """Findings for `name==version` from the project's JSON, which lists the vulnerabilities of its
    latest release only. Returns (findings, why this source cannot answer for that version)."""
    from pip._internal.models.index import PyPI  # the index pip installs from; pip-audit asks the same service

    try:
        response = session.get(f"{PyPI.pypi_url}/{name}/json", timeout=120)
        response.raise_for_status()
        project = response.json()
        latest = project["info"]["version"]
    except (requests.RequestException, ValueError, KeyError) as exc:
        unavailable("the vulnerability data", f"{name}: {type(exc).__name__}: {exc}")
    try:
        is_latest = Version(latest) == Version(version)
    except InvalidVersion:
        is_latest = False
    if not is_latest:
        return [], f"{name} {version}: the registry lists vulnerabilities for its latest release ({latest}) only"
    findings = [
        f"{name} {version}: {vulnerability['id']} (fixed in {', '.join(vulnerability.get('fixed_in') or ['-'])})"
        for vulnerability in project.get("vulnerabilities") or []
        if not vulnerability.get("withdrawn") and not _accepted(vulnerability)
    ]
    return findings, None


def audit(pins: dict[str, str], cache: Path) -> AuditResult:
    """Known vulnerabilities of exactly these versions (name -> version), from the first source that
    answers for each version."""
    requirements = cache / "requirements.txt"
    cache.mkdir(parents=True, exist_ok=True)
    requirements.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
    report = _pip_audit(requirements, cache / "pip-audit")
    assert len(report["dependencies"]) == len(pins), (len(report["dependencies"]), sorted(pins))

    result = AuditResult()
    skipped = []
    for dependency in report["dependencies"]:
        if "skip_reason" in dependency:
            skipped.append(dependency["name"])
            continue
        result.audited.append(dependency["name"])
        result.findings += [
            f"{dependency['name']} {dependency['version']}: {vulnerability['id']} "
            f"(fixed in {', '.join(vulnerability.get('fix_versions') or ['-'])})"
            for vulnerability in dependency.get("vulns", ())
        ]
    versions = {canonicalize_name(name): version for name, version in pins.items()}
    with requests.Session() as session, ThreadPoolExecutor(max_workers=8) as pool:
        answers = pool.map(
            lambda name: (name, *_latest_release_audit(name, versions[canonicalize_name(name)], session)), skipped
        )
        for name, findings, reason in answers:
            result.findings += findings
            if reason:
                result.unaudited.append(reason)
            else:
                result.audited.append(name)
    return result


def test_pinned_dependencies_have_no_known_vulnerabilities(tmp_path):
    pins = installed_pins()
    assert len(pins) > 50, pins
    result = audit(pins, tmp_path)
    assert not result.findings, (
        "known vulnerabilities in pinned dependencies (raise the pin in constraints.txt, or accept one in "
        "ACCEPTED_VULNERABILITIES with the reason it does not apply):\n" + "\n".join(result.findings)
    )
    assert len(result.audited) + len(result.unaudited) == len(pins)
    if result.unaudited:
        warnings.warn(
            UnauditedDependencies(
                f"{len(result.unaudited)} of {len(pins)} pinned dependencies could not be audited here "
                "(refresh constraints.txt to audit them):\n" + "\n".join(sorted(result.unaudited))
            ),
            stacklevel=1,
        )


# pycrypto's last release (2013; the project is abandoned), with advisories that will stay listed
# for it: PYSEC-2017-94 and PYSEC-2018-97. requests 2.19.0, an older release, with CVE-2018-18074.
KNOWN_VULNERABLE_LATEST = ("pycrypto", "2.6.1", {"PYSEC-2017-94", "PYSEC-2018-97"})
KNOWN_VULNERABLE_OLDER = ("requests", "2.19.0")


def test_the_audit_fails_on_a_known_vulnerable_version_and_never_calls_an_unanswered_one_clean(tmp_path):
    """The same code path, fed versions with known vulnerabilities: the latest-release one is found
    by any of the sources, and the older one is either found (where per-version data is served) or
    reported as not audited -- never passed as clean."""
    latest_name, latest_version, latest_ids = KNOWN_VULNERABLE_LATEST
    older_name, older_version = KNOWN_VULNERABLE_OLDER
    result = audit({latest_name: latest_version, older_name: older_version}, tmp_path)

    found = " ".join(result.findings)
    assert any(identifier in found for identifier in latest_ids), result
    older_found = any(finding.startswith(f"{older_name} {older_version}:") for finding in result.findings)
    older_unaudited = any(reason.startswith(f"{older_name} {older_version}:") for reason in result.unaudited)
    assert older_found != older_unaudited, result
