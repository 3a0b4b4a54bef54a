"""and: samples when no sub-policy refuses; which policies may nest in and/drop."""

from __future__ import annotations

import pytest

from sampler.policies.base import Decision
from tests.support import make_span
from tests.unit.helpers import FakeClock, config_errors, decide, make_policy

TRACE_ID = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")


def spans(count: int = 1, **attributes: object) -> list:
    return [make_span(TRACE_ID, attributes=attributes or None) for _ in range(count)]


def leaf(name: str, key: str, value: str) -> dict:
    return {"name": name, "type": "string_attribute", "string_attribute": {"key": key, "values": [value]}}


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
