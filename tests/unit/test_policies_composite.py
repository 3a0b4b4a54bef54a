"""composite: shares of a spans-per-second budget between sub-policies."""

from __future__ import annotations

from sampler.policies.base import Decision
from tests.support import make_span
from tests.unit.helpers import FakeClock, config_errors, decide, make_policy

TRACE_ID = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")


def spans(count: int = 1, **attributes: object) -> list:
    return [make_span(TRACE_ID, attributes=attributes or None) for _ in range(count)]


def leaf(name: str, key: str, value: str) -> dict:
    return {"name": name, "type": "string_attribute", "string_attribute": {"key": key, "values": [value]}}


def composite(clock: FakeClock, allocation: list[dict], total: int = 10) -> object:
    return make_policy(
        "composite",
        {
            "max_total_spans_per_second": total,
            "policy_order": ["vip", "everyone"],
            "composite_sub_policy": [leaf("vip", "tier", "vip"), {"name": "everyone", "type": "always_sample"}],
            "rate_allocation": allocation,
        },
        clock=clock,
    )


def test_composite_gives_each_sub_policy_its_share_of_each_second():
    clock = FakeClock(100.0)
    policy = composite(clock, [{"policy": "vip", "percent": 60}, {"policy": "everyone", "percent": 40}])
    # vip: 6 spans/s; everyone: 4 spans/s
    assert decide(policy, spans(3, tier="vip")) is Decision.SAMPLED
    assert policy.last_sampled_by == "vip"
    assert decide(policy, spans(3, tier="vip")) is Decision.SAMPLED
    # vip's share is spent: the first matching sub-policy decides, even though "everyone" has room.
    assert decide(policy, spans(1, tier="vip")) is Decision.NOT_SAMPLED
    assert decide(policy, spans(4, tier="free")) is Decision.SAMPLED
    assert policy.last_sampled_by == "everyone"
    assert decide(policy, spans(1, tier="free")) is Decision.NOT_SAMPLED
    clock.advance(1.0)  # a new second: shares are available again
    assert decide(policy, spans(1, tier="vip")) is Decision.SAMPLED
    assert decide(policy, spans(4, tier="free")) is Decision.SAMPLED


def test_composite_percent_zero_means_an_equal_share_and_unlisted_means_none():
    clock = FakeClock(100.0)
    policy = composite(clock, [{"policy": "vip", "percent": 0}])
    assert decide(policy, spans(5, tier="vip")) is Decision.SAMPLED  # 10 / 2 sub-policies
    assert decide(policy, spans(1, tier="vip")) is Decision.NOT_SAMPLED
    assert decide(policy, spans(1, tier="free")) is Decision.NOT_SAMPLED  # "everyone" has no allocation


def test_composite_never_exceeds_the_total():
    clock = FakeClock(100.0)
    policy = composite(clock, [{"policy": "vip", "percent": 100}, {"policy": "everyone", "percent": 100}], total=4)
    assert decide(policy, spans(5, tier="vip")) is Decision.NOT_SAMPLED
    assert decide(policy, spans(4, tier="vip")) is Decision.SAMPLED


def test_composite_rejects_unknown_names_in_allocation_and_order():
    body = {
        "name": "c",
        "type": "composite",
        "composite": {
            "max_total_spans_per_second": 10,
            "policy_order": ["ghost"],
            "composite_sub_policy": [leaf("vip", "tier", "vip")],
        },
    }
    errors = config_errors(body)
    assert "policy_order names 'ghost'" in errors[0][2]
    assert "sub-policies: vip" in errors[0][2]
