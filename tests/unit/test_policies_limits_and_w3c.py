"""bytes_limiting, trace_state and trace_flags."""

from __future__ import annotations

import pytest

from sampler.policies import Decision
from sampler.policies.trace_state import trace_state_value
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


@pytest.mark.parametrize(
    ("header", "key", "value"),
    [
        ("key1=value1,key3=value2", "key3", "value2"),
        ("key1=value1, key3=value2", "key3", "value2"),
        ("key1=value1", "key3", None),
        ("", "key3", None),
        ("garbage", "garbage", None),
    ],
)
def test_trace_state_parsing(header, key, value):
    assert trace_state_value(header, key) == value


def test_trace_state_samples_a_trace_with_a_matching_member():
    policy = make_policy("trace_state", {"key": "key3", "values": ["value1", "value2"]})
    matching = make_span(TRACE_ID)
    matching.trace_state = "key1=a,key3=value2"
    other = make_span(TRACE_ID)
    other.trace_state = "key3=value9"
    assert decide(policy, [other, matching]) is Decision.SAMPLED
    assert decide(policy, [other]) is Decision.NOT_SAMPLED
    assert decide(policy, [make_span(TRACE_ID)]) is Decision.NOT_SAMPLED


def test_trace_flags_samples_when_any_span_has_the_sampled_bit():
    policy = make_policy("trace_flags")
    flagged = make_span(TRACE_ID)
    flagged.flags = 0x101  # sampled bit plus the OTLP "has remote parent" bits
    plain = make_span(TRACE_ID)
    plain.flags = 0x100
    assert decide(policy, [plain, flagged]) is Decision.SAMPLED
    assert decide(policy, [plain]) is Decision.NOT_SAMPLED
