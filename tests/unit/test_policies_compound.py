"""and, drop, not, composite: policies made of sub-policies, with the Collector's semantics."""

from __future__ import annotations

import pytest

from sampler.policies import Decision
from tests.support import make_span
from tests.unit.helpers import FakeClock, config_errors, decide, make_policy

TRACE_ID = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")


def spans(count: int = 1, **attributes: object) -> list:
    return [make_span(TRACE_ID, attributes=attributes or None) for _ in range(count)]


def leaf(name: str, key: str, value: str) -> dict:
    return {"name": name, "type": "string_attribute", "string_attribute": {"key": key, "values": [value]}}


# --- and ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"a": "1", "b": "2"}, Decision.SAMPLED),
        ({"a": "1"}, Decision.NOT_SAMPLED),
        ({"b": "2"}, Decision.NOT_SAMPLED),
        ({}, Decision.NOT_SAMPLED),
    ],
)
def test_and_samples_only_when_every_sub_policy_does(attributes, expected):
    policy = make_policy("and", {"and_sub_policy": [leaf("a", "a", "1"), leaf("b", "b", "2")]})
    assert decide(policy, spans(**attributes)) is expected


def test_and_with_no_sub_policies_samples_everything():
    assert decide(make_policy("and", {"and_sub_policy": []}), spans()) is Decision.SAMPLED


def test_and_stops_at_the_first_refusal_so_a_rate_limit_after_it_keeps_its_budget():
    clock = FakeClock()
    policy = make_policy(
        "and",
        {
            "and_sub_policy": [
                leaf("vip", "tier", "vip"),
                {"name": "budget", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 2}},
            ]
        },
        clock=clock,
    )
    for _ in range(5):
        assert decide(policy, spans(2, tier="free")) is Decision.NOT_SAMPLED
    assert decide(policy, spans(2, tier="vip")) is Decision.SAMPLED
    assert decide(policy, spans(2, tier="vip")) is Decision.NOT_SAMPLED  # bucket now empty


# --- drop --------------------------------------------------------------------------


def test_drop_yields_dropped_when_all_sub_policies_match():
    policy = make_policy("drop", {"drop_sub_policy": [leaf("health", "http.route", "/healthz")]})
    assert decide(policy, spans(**{"http.route": "/healthz"})) is Decision.DROPPED
    assert decide(policy, spans(**{"http.route": "/orders"})) is Decision.NOT_SAMPLED


def test_drop_needs_every_sub_policy():
    policy = make_policy("drop", {"drop_sub_policy": [leaf("a", "a", "1"), leaf("b", "b", "2")]})
    assert decide(policy, spans(a="1")) is Decision.NOT_SAMPLED
    assert decide(policy, spans(a="1", b="2")) is Decision.DROPPED


def test_drop_with_no_sub_policies_drops_everything():
    assert decide(make_policy("drop", {"drop_sub_policy": []}), spans()) is Decision.DROPPED


# --- not ---------------------------------------------------------------------------


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


# --- nesting rules -------------------------------------------------------------------


@pytest.mark.parametrize("outer, key", [("and", "and_sub_policy"), ("drop", "drop_sub_policy")])
@pytest.mark.parametrize("inner", ["and", "drop", "not", "composite"])
def test_compound_policies_do_not_nest_in_and_or_drop(outer, key, inner):
    errors = config_errors({"name": "o", "type": outer, outer: {key: [{"name": "i", "type": inner}]}})
    assert errors[0][0] == (outer, key, 0, "type")
    assert "cannot be used here" in errors[0][2]
    assert "latency" in errors[0][2]  # the valid choices are listed


def test_composite_accepts_and_but_not_other_compounds():
    and_member = {"name": "both", "type": "and", "and": {"and_sub_policy": [leaf("a", "a", "1")]}}
    make_policy("composite", {"max_total_spans_per_second": 10, "composite_sub_policy": [and_member]})
    errors = config_errors(
        {
            "name": "c",
            "type": "composite",
            "composite": {"max_total_spans_per_second": 10, "composite_sub_policy": [{"name": "d", "type": "drop"}]},
        }
    )
    assert "cannot be used here" in errors[0][2]


# --- composite ------------------------------------------------------------------------


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
