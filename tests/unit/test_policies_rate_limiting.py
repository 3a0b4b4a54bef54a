"""rate_limiting: a token bucket of spans, refilled at spans_per_second up to burst_capacity."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sampler.policies.base import Decision, Policy
from tests.support import make_span
from tests.unit.helpers import FakeClock, config_errors, decide, make_policy

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def _spans(count: int) -> list[Span]:
    return [make_span(TRACE_ID) for _ in range(count)]


def _decide(policy: Policy, spans: int) -> Decision:
    return decide(policy, _spans(spans))


def test_burst_then_refill() -> None:
    # Rates and steps are powers of two, so the fake clock's arithmetic is exact.
    clock = FakeClock()
    policy = make_policy("rate_limiting", {"spans_per_second": 8, "burst_capacity": 16}, clock)
    assert _decide(policy, 12) is Decision.SAMPLED  # the bucket starts full: 16 -> 4
    assert _decide(policy, 5) is Decision.NOT_SAMPLED  # a refusal takes no tokens
    assert _decide(policy, 4) is Decision.SAMPLED  # 4 -> 0
    assert _decide(policy, 1) is Decision.NOT_SAMPLED
    clock.advance(0.5)  # +4 tokens
    assert _decide(policy, 5) is Decision.NOT_SAMPLED
    assert _decide(policy, 4) is Decision.SAMPLED
    clock.advance(0.1875)  # +1.5 tokens
    assert _decide(policy, 2) is Decision.NOT_SAMPLED
    assert _decide(policy, 1) is Decision.SAMPLED  # 0.5 left
    assert _decide(policy, 1) is Decision.NOT_SAMPLED
    clock.advance(0.0625)  # +0.5: exactly one token
    assert _decide(policy, 1) is Decision.SAMPLED
    assert _decide(policy, 1) is Decision.NOT_SAMPLED


def test_refill_is_capped_at_burst_capacity() -> None:
    clock = FakeClock()
    policy = make_policy("rate_limiting", {"spans_per_second": 10, "burst_capacity": 20}, clock)
    assert _decide(policy, 20) is Decision.SAMPLED
    clock.advance(3600)
    assert _decide(policy, 20) is Decision.SAMPLED
    assert _decide(policy, 1) is Decision.NOT_SAMPLED


def test_a_trace_larger_than_the_bucket_is_never_sampled() -> None:
    clock = FakeClock()
    policy = make_policy("rate_limiting", {"spans_per_second": 10, "burst_capacity": 20}, clock)
    for _ in range(3):
        assert _decide(policy, 21) is Decision.NOT_SAMPLED
        clock.advance(100)
    assert _decide(policy, 20) is Decision.SAMPLED


def test_burst_defaults_to_spans_per_second() -> None:
    clock = FakeClock()
    policy = make_policy("rate_limiting", {"spans_per_second": 10}, clock)
    assert _decide(policy, 11) is Decision.NOT_SAMPLED
    assert _decide(policy, 10) is Decision.SAMPLED
    assert _decide(policy, 1) is Decision.NOT_SAMPLED
    clock.advance(1.0)
    assert _decide(policy, 10) is Decision.SAMPLED


def test_no_time_passing_means_no_refill() -> None:
    clock = FakeClock()
    policy = make_policy("rate_limiting", {"spans_per_second": 1000}, clock)
    kept = sum(_decide(policy, 3) is Decision.SAMPLED for _ in range(400))
    assert kept == 333  # 1000 // 3


def test_steady_rate_over_time() -> None:
    clock = FakeClock()
    policy = make_policy("rate_limiting", {"spans_per_second": 64, "burst_capacity": 64}, clock)
    assert _decide(policy, 64) is Decision.SAMPLED  # empty the bucket
    kept = 0
    for _ in range(1000):  # 2-span traces, one every 1/64 s: twice the allowed rate
        clock.advance(1 / 64)
        kept += _decide(policy, 2) is Decision.SAMPLED
    assert kept == 500


def test_instances_have_their_own_buckets() -> None:
    clock = FakeClock()
    first = make_policy("rate_limiting", {"spans_per_second": 5}, clock)
    second = make_policy("rate_limiting", {"spans_per_second": 5}, clock)
    assert _decide(first, 5) is Decision.SAMPLED
    assert _decide(second, 5) is Decision.SAMPLED


@pytest.mark.parametrize(
    ("settings", "loc", "kind"),
    [
        (None, ("rate_limiting",), "missing"),
        ({}, ("rate_limiting", "spans_per_second"), "missing"),
        ({"spans_per_second": 0}, ("rate_limiting", "spans_per_second"), "greater_than"),
        ({"spans_per_second": -5}, ("rate_limiting", "spans_per_second"), "greater_than"),
        ({"spans_per_second": "fast"}, ("rate_limiting", "spans_per_second"), "int_parsing"),
        ({"spans_per_second": 5, "burst_capacity": 0}, ("rate_limiting", "burst_capacity"), "greater_than"),
        ({"spans_per_second": 5, "burst": 10}, ("rate_limiting", "burst"), "extra_forbidden"),
    ],
)
def test_config_errors(settings: dict[str, Any] | None, loc: tuple[Any, ...], kind: str) -> None:
    body: dict[str, Any] = {"name": "budget", "type": "rate_limiting"}
    if settings is not None:
        body["rate_limiting"] = settings
    assert [(error_loc, error_kind) for error_loc, error_kind, _ in config_errors(body)] == [(loc, kind)]
