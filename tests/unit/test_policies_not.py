"""not: inverts its one sub-policy."""

from __future__ import annotations

from sampler.policies.base import Decision
from tests.support import make_span
from tests.unit.helpers import config_errors, decide, make_policy

TRACE_ID = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")


def leaf(name: str, key: str, value: str) -> dict:
    return {"name": name, "type": "string_attribute", "string_attribute": {"key": key, "values": [value]}}


def test_not_inverts_its_sub_policy():
    policy = make_policy(
        "not", {"not_sub_policy": {"name": "slow", "type": "latency", "latency": {"threshold_ms": 100}}}
    )
    fast = [make_span(TRACE_ID, duration_ms=50)]
    slow = [make_span(TRACE_ID, duration_ms=500)]
    assert decide(policy, fast) is Decision.SAMPLED
    assert decide(policy, slow) is Decision.NOT_SAMPLED


def test_not_takes_exactly_one_policy_not_a_list():
    errors = config_errors({"name": "n", "type": "not", "not": {"not_sub_policy": [leaf("a", "a", "1")]}})
    assert errors and errors[0][0][:2] == ("not", "not_sub_policy")
