"""Peers the deployment tests share."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.deploy.manifests import REPO
from tests.peers import peer_dir, run_provisioning, unavailable


@pytest.fixture(scope="session")
def servicemonitor_checker() -> Path:
    """tests/deploy/servicemonitor built with Go, from the Go module proxy's prometheus-operator
    types: decodes ServiceMonitors and PrometheusRules strictly."""
    go = shutil.which("go")
    if go is None:
        unavailable("servicemonitor-check", "`go` is not on PATH")
    binary = peer_dir("servicemonitor-check") / "servicemonitor-check"
    build = ["env", "GOFLAGS=-mod=readonly", "CGO_ENABLED=0", "GOTOOLCHAIN=local", go, "build", "-o", str(binary), "."]
    run_provisioning("servicemonitor-check", build, cwd=REPO / "tests" / "deploy" / "servicemonitor")
    return binary
