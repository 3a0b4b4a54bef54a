"""Real third-party peers (Prometheus, a Zipkin server, the OpenTelemetry JS SDK, Chromium...)
that some integration tests start.

Each peer is provisioned on demand into `.peers/` at the repository root (ignored by
git) from the package registries this project may use, or found on PATH. When a
peer cannot be provisioned, the test is skipped with the reason printed in the
summary (pytest -ra); with TAIL_SAMPLER_REQUIRE_PEERS=1, as `.ci/run` sets it, the
test fails instead, so CI can never go green on a quiet skip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PEER_DIR = REPO_ROOT / ".peers"


def peers_required() -> bool:
    return os.environ.get("TAIL_SAMPLER_REQUIRE_PEERS", "") not in ("", "0", "false")


def unavailable(peer: str, why: str) -> NoReturn:
    """The peer cannot be used here: skip with the reason, or fail when peers are required."""
    message = f"{peer} unavailable: {why}"
    if peers_required():
        pytest.fail(message + " (TAIL_SAMPLER_REQUIRE_PEERS is set)", pytrace=False)
    pytest.skip(message)


def peer_dir(peer: str) -> Path:
    path = PEER_DIR / peer
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_provisioning(peer: str, command: list[str], cwd: Path | None = None, timeout: float = 900) -> str:
    """Run an install step for a peer; on failure, the peer is unavailable with the step's output."""
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        unavailable(peer, f"`{' '.join(command)}` failed: {exc}")
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        unavailable(peer, f"`{' '.join(command)}` exited {done.returncode}:\n" + "\n".join(tail))
    return done.stdout


# The Collector built from tests/collector (main.go, go.mod, go.sum) with the Go toolchain and
# the Go module proxy: used by tests/integration/test_scale_out.py and tests/bench/cpu_bench.py.
COLLECTOR_SOURCES = REPO_ROOT / "tests" / "collector"
COLLECTOR_SOURCE_FILES = ("main.go", "go.mod", "go.sum")


def collector_binary_path() -> Path:
    """Where the Collector of the current sources lives: the directory name carries their digest,
    so a change to the sources means a new build."""
    digest = hashlib.sha256()
    for name in COLLECTOR_SOURCE_FILES:
        digest.update((COLLECTOR_SOURCES / name).read_bytes())
    return PEER_DIR / f"otelcol-{digest.hexdigest()[:16]}" / "otelcol"


def collector_build_command(go: str, binary: Path) -> list[str]:
    """go build writes the binary only once it is complete, so a failed build leaves none."""
    build = ["env", "GOFLAGS=-mod=readonly", "CGO_ENABLED=0", "GOTOOLCHAIN=local", go, "build"]
    return build + ["-trimpath", "-buildvcs=false", "-o", str(binary), "."]


def debian_package(peer: str, package: str, binaries: list[str]) -> list[str]:
    """Paths of `binaries`, from PATH or else from Debian's `package`, installed with apt when
    running as root (`.ci/run` installs the package up front)."""

    def found() -> list[str] | None:
        paths = [shutil.which(binary) for binary in binaries]
        return [path for path in paths if path] if all(paths) else None

    paths = found()
    if paths is not None:
        return paths
    names = ", ".join(binaries)
    if os.geteuid() != 0:
        unavailable(peer, f"{names} not on PATH, and installing Debian's {package} package needs root")
    if shutil.which("apt-get") is None:
        unavailable(peer, f"{names} not on PATH, and there is no apt-get to install Debian's {package} package")
    noninteractive = ["env", "DEBIAN_FRONTEND=noninteractive"]
    run_provisioning(peer, [*noninteractive, "apt-get", "update", "-qq"])
    run_provisioning(peer, [*noninteractive, "apt-get", "install", "-y", "-qq", "--no-install-recommends", package])
    paths = found()
    if paths is None:
        unavailable(peer, f"Debian's {package} package installed, but {names} not on PATH")
    return paths


def chromium_binary() -> str:
    """Headless Chromium for tests/integration/test_console.py (Debian's chromium package)."""
    (path,) = debian_package("Chromium", "chromium", ["chromium"])
    return path
