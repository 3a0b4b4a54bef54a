"""bytes_limiting: a token bucket of trace bytes."""

from __future__ import annotations

from sampler.policies.base import Decision
from tests.support import make_span
from tests.unit.helpers import FakeClock, config_errors, decide, make_policy, trace_of

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def test_bytes_limiting_is_a_token_bucket_over_trace_bytes_with_a_double_burst_by_default():
    clock = FakeClock()
    spans = [make_span(TRACE_ID, attributes={"blob": "x" * 400})]
    size = trace_of(spans).nbytes
    policy = make_policy("bytes_limiting", {"bytes_per_second": size}, clock=clock)
    assert decide(policy, spans) is Decision.SAMPLED
    assert decide(policy, spans) is Decision.SAMPLED  # burst = 2 x bytes_per_second
    assert decide(policy, spans) is Decision.NOT_SAMPLED
    clock.advance(1.0)
    assert decide(policy, spans) is Decision.SAMPLED
    assert decide(policy, spans) is Decision.NOT_SAMPLED


def test_bytes_limiting_burst_capacity_bounds_the_largest_trace():
    spans = [make_span(TRACE_ID, attributes={"blob": "x" * 400})]
    policy = make_policy("bytes_limiting", {"bytes_per_second": 10_000, "burst_capacity": 100})
    assert decide(policy, spans) is Decision.NOT_SAMPLED


def test_bytes_limiting_needs_a_positive_rate():
    assert config_errors({"name": "b", "type": "bytes_limiting", "bytes_limiting": {"bytes_per_second": 0}})
