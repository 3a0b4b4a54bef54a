from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings

from tests.support import DaemonThread, GrpcSink, HttpSink, make_config

# CI's verdict must not depend on the examples hypothesis happens to draw that day: .ci/run sets
# HYPOTHESIS_PROFILE=ci, the same examples every run. Runs elsewhere draw new ones each time, so
# the properties keep searching (and a case they find becomes a test of its own).
settings.register_profile("ci", derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def grpc_sink() -> Iterator[GrpcSink]:
    sink = GrpcSink()
    yield sink
    sink.close()


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    sink = HttpSink()
    yield sink
    sink.close()


@pytest.fixture
def start_daemon() -> Iterator[Callable[[dict[str, Any]], DaemonThread]]:
    """Start real daemons from config dicts; every one is stopped at the end of the test."""
    running: list[DaemonThread] = []

    def start(data: dict[str, Any]) -> DaemonThread:
        daemon = DaemonThread(make_config(data))
        running.append(daemon)
        return daemon

    yield start
    for daemon in running:
        daemon.stop()
