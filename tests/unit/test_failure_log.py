"""Exporter failures are loud and early: the first failed attempt of a run is an ERROR with its
cause, then one line per interval with a count, and the recovery once."""

from __future__ import annotations

import logging

from sampler.forward.exporter import FAILURE_LOG_INTERVAL, FailureLog, RetryableError
from tests.unit.helpers import FakeClock


def lines(caplog, level: int) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == level]


def test_the_first_failure_is_logged_at_once_then_summed_up_per_interval_and_the_recovery_once(caplog):
    caplog.set_level(logging.INFO, logger="sampler")
    clock = FakeClock(0.0)
    failures = FailureLog("otlp/backend", "backend:4317 (TLS)", clock)
    refused = RetryableError("unavailable", "TLS handshake failed (Ssl handshake failed: WRONG_VERSION_NUMBER)")
    failures.failed(refused)
    (first,) = lines(caplog, logging.ERROR)
    assert first.startswith("exporter otlp/backend: sending to backend:4317 (TLS) failed: TLS handshake failed")
    for _ in range(20):  # retries within the interval: no more lines
        clock.advance(FAILURE_LOG_INTERVAL / 40)
        failures.failed(refused)
    assert len(lines(caplog, logging.ERROR)) == 1
    clock.advance(FAILURE_LOG_INTERVAL)
    failures.failed(refused)
    summary = lines(caplog, logging.ERROR)[1]
    assert summary.startswith("exporter otlp/backend: still failing: 21 failed attempt(s) in the last 45s, 22 since")
    failures.succeeded()
    failures.succeeded()
    (recovered,) = lines(caplog, logging.INFO)
    assert (
        recovered
        == "exporter otlp/backend: delivering again to backend:4317 (TLS), after 22 failed attempt(s) over 45s"
    )
    failures.failed(refused)  # a new run starts loud again
    assert len(lines(caplog, logging.ERROR)) == 3
