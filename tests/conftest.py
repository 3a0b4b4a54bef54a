from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support import DaemonThread, GrpcSink, HttpSink, make_config


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
