"""trace_state: a W3C tracestate member with one of the values."""

from __future__ import annotations

import pytest

from sampler.policies.base import Decision
from sampler.policies.trace_state import trace_state_value
from tests.support import make_span
from tests.unit.helpers import decide, make_policy

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


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
