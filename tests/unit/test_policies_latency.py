"""latency: trace duration in whole ms, exclusive lower bound, inclusive upper bound."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sampler.policies.base import Decision, TraceView
from sampler.spans.trace import TraceSpans
from tests.support import MS, T0
from tests.unit.helpers import config_errors, decide, make_policy, trace_of

TRACE_ID = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
US = 1_000


def _span(start_ns: int, end_ns: int, span_id: int = 1) -> Span:
    return Span(
        trace_id=TRACE_ID,
        span_id=span_id.to_bytes(8, "big"),
        start_time_unix_nano=T0 + start_ns,
        end_time_unix_nano=T0 + end_ns,
    )


def _lasting(duration_ns: int) -> list[Span]:
    return [_span(0, duration_ns)]


@pytest.mark.parametrize(
    ("duration_ns", "expected"),
    [
        (0, Decision.NOT_SAMPLED),
        (99 * MS, Decision.NOT_SAMPLED),
        (100 * MS, Decision.NOT_SAMPLED),  # the lower bound is exclusive
        (100 * MS + 999 * US, Decision.NOT_SAMPLED),  # 100.999 ms is 100 whole ms
        (101 * MS, Decision.SAMPLED),
        (3_600_000 * MS, Decision.SAMPLED),
    ],
)
def test_lower_bound_is_exclusive_in_whole_milliseconds(duration_ns: int, expected: Decision) -> None:
    assert decide(make_policy("latency", {"threshold_ms": 100}), _lasting(duration_ns)) is expected


@pytest.mark.parametrize(
    ("duration_ns", "expected"),
    [
        (100 * MS, Decision.NOT_SAMPLED),
        (101 * MS, Decision.SAMPLED),
        (200 * MS, Decision.SAMPLED),  # the upper bound is inclusive
        (200 * MS + 999_999, Decision.SAMPLED),  # still 200 whole ms
        (201 * MS, Decision.NOT_SAMPLED),
    ],
)
def test_upper_bound_is_inclusive(duration_ns: int, expected: Decision) -> None:
    policy = make_policy("latency", {"threshold_ms": 100, "upper_threshold_ms": 200})
    assert decide(policy, _lasting(duration_ns)) is expected


def test_zero_threshold_samples_anything_of_a_millisecond_or_more() -> None:
    policy = make_policy("latency", {"threshold_ms": 0})
    assert decide(policy, _lasting(999 * US)) is Decision.NOT_SAMPLED
    assert decide(policy, _lasting(MS)) is Decision.SAMPLED


def test_duration_spans_the_whole_trace_not_one_span() -> None:
    # No span lasts more than 10 ms, but the trace runs from 0 to 160 ms.
    spans = [_span(20 * MS, 30 * MS, 1), _span(0, 10 * MS, 2), _span(150 * MS, 160 * MS, 3)]
    assert decide(make_policy("latency", {"threshold_ms": 159}), spans) is Decision.SAMPLED
    assert decide(make_policy("latency", {"threshold_ms": 160}), spans) is Decision.NOT_SAMPLED


def test_duration_covers_fragments_that_arrived_separately() -> None:
    trace = trace_of([_span(0, 10 * MS, 1)])
    trace.absorb(trace_of([_span(300 * MS, 400 * MS, 2)]))
    assert trace.duration_ns == 400 * MS
    assert make_policy("latency", {"threshold_ms": 399}).evaluate(TraceView(trace)) is Decision.SAMPLED
    assert make_policy("latency", {"threshold_ms": 400}).evaluate(TraceView(trace)) is Decision.NOT_SAMPLED


def test_trace_without_start_times_has_no_duration() -> None:
    trace = TraceSpans(TRACE_ID)
    trace.end_max = T0
    assert make_policy("latency", {"threshold_ms": 0}).evaluate(TraceView(trace)) is Decision.NOT_SAMPLED


@pytest.mark.parametrize(
    ("settings", "loc", "kind"),
    [
        (None, ("latency",), "missing"),
        ({}, ("latency", "threshold_ms"), "missing"),
        ({"threshold_ms": -1}, ("latency", "threshold_ms"), "greater_than_equal"),
        ({"threshold_ms": "slow"}, ("latency", "threshold_ms"), "int_parsing"),
        ({"threshold_ms": 1.5}, ("latency", "threshold_ms"), "int_from_float"),
        ({"threshold_ms": 10, "upper_threshold_ms": -1}, ("latency", "upper_threshold_ms"), "greater_than_equal"),
        ({"threshold_ms": 10, "upper_threshold_ms": 5}, ("latency",), "value_error"),
        ({"threshold_ms": 10, "treshold": 5}, ("latency", "treshold"), "extra_forbidden"),
    ],
)
def test_config_errors(settings: dict[str, Any] | None, loc: tuple[Any, ...], kind: str) -> None:
    body: dict[str, Any] = {"name": "slow", "type": "latency"}
    if settings is not None:
        body["latency"] = settings
    assert [(error_loc, error_kind) for error_loc, error_kind, _ in config_errors(body)] == [(loc, kind)]


def test_upper_below_lower_message() -> None:
    ((_, _, message),) = config_errors(
        {"name": "slow", "type": "latency", "latency": {"threshold_ms": 10, "upper_threshold_ms": 5}}
    )
    assert "upper_threshold_ms must be 0 (no upper bound) or at least threshold_ms" in message


def test_upper_equal_to_lower_is_valid_and_samples_nothing() -> None:
    policy = make_policy("latency", {"threshold_ms": 10, "upper_threshold_ms": 10})
    assert all(decide(policy, _lasting(ms * MS)) is Decision.NOT_SAMPLED for ms in (9, 10, 11))
