"""drop: vetoes a trace when every sub-policy matches."""

from __future__ import annotations

from sampler.policies.base import Decision
from tests.support import make_span
from tests.unit.helpers import decide, make_policy

TRACE_ID = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")


def spans(count: int = 1, **attributes: object) -> list:
    return [make_span(TRACE_ID, attributes=attributes or None) for _ in range(count)]


def leaf(name: str, key: str, value: str) -> dict:
    return {"name": name, "type": "string_attribute", "string_attribute": {"key": key, "values": [value]}}


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
