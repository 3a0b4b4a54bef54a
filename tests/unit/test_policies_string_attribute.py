"""string_attribute: exact or (unanchored) regex match on a span or resource attribute."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sampler.policies.base import Decision
from tests.support import make_span
from tests.unit.helpers import config_errors, decide, make_policy

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def _trace(*attributes: dict[str, Any]) -> list[Span]:
    return [make_span(TRACE_ID, attributes=attrs) for attrs in attributes]


def test_exact_match_on_a_span_attribute() -> None:
    policy = make_policy("string_attribute", {"key": "http.route", "values": ["/checkout", "/pay"]})
    assert decide(policy, _trace({}, {"http.route": "/pay"})) is Decision.SAMPLED
    assert decide(policy, _trace({"http.route": "/checkout"})) is Decision.SAMPLED
    assert decide(policy, _trace({"http.route": "/checkout/"})) is Decision.NOT_SAMPLED
    assert decide(policy, _trace({"http.route": "/CHECKOUT"})) is Decision.NOT_SAMPLED
    assert decide(policy, _trace({"other": "/pay"})) is Decision.NOT_SAMPLED
    assert decide(policy, _trace({})) is Decision.NOT_SAMPLED


def test_exact_match_is_not_a_substring_match() -> None:
    policy = make_policy("string_attribute", {"key": "http.route", "values": ["check"]})
    assert decide(policy, _trace({"http.route": "/checkout"})) is Decision.NOT_SAMPLED


def test_match_on_a_resource_attribute() -> None:
    policy = make_policy("string_attribute", {"key": "deployment.environment", "values": ["prod"]})
    assert decide(policy, _trace({}), resource_attributes={"deployment.environment": "prod"}) is Decision.SAMPLED
    assert decide(policy, _trace({}), resource_attributes={"deployment.environment": "dev"}) is Decision.NOT_SAMPLED
    service = make_policy("string_attribute", {"key": "service.name", "values": ["checkout"]})
    assert decide(service, _trace({}), service="checkout") is Decision.SAMPLED
    assert decide(service, _trace({}), service="cart") is Decision.NOT_SAMPLED


def test_values_of_other_types_do_not_match() -> None:
    policy = make_policy("string_attribute", {"key": "code", "values": ["200", "True"]})
    assert decide(policy, _trace({"code": 200})) is Decision.NOT_SAMPLED
    assert decide(policy, _trace({"code": True})) is Decision.NOT_SAMPLED
    assert decide(policy, _trace({"code": "200"})) is Decision.SAMPLED


def test_empty_configured_values_never_match() -> None:
    # As in the Collector, an empty string among the values is ignored.
    policy = make_policy("string_attribute", {"key": "k", "values": ["", "x"]})
    assert decide(policy, _trace({"k": ""})) is Decision.NOT_SAMPLED
    assert decide(policy, _trace({"k": "x"})) is Decision.SAMPLED


def test_regex_is_an_unanchored_search() -> None:
    policy = make_policy("string_attribute", {"key": "http.route", "values": ["check"], "enabled_regex_matching": True})
    assert decide(policy, _trace({"http.route": "/api/checkout/v2"})) is Decision.SAMPLED
    assert decide(policy, _trace({"http.route": "/api/cart"})) is Decision.NOT_SAMPLED


def test_anchored_regex_matches_only_where_anchored() -> None:
    policy = make_policy(
        "string_attribute",
        {"key": "http.route", "values": ["^/checkout", r"/pay$"], "enabled_regex_matching": True},
    )
    assert decide(policy, _trace({"http.route": "/checkout/cart"})) is Decision.SAMPLED
    assert decide(policy, _trace({"http.route": "/api/checkout"})) is Decision.NOT_SAMPLED
    assert decide(policy, _trace({"http.route": "/api/pay"})) is Decision.SAMPLED
    assert decide(policy, _trace({"http.route": "/pay/now"})) is Decision.NOT_SAMPLED


def test_regex_on_resource_attribute() -> None:
    settings = {"key": "service.name", "values": ["pay.*"], "enabled_regex_matching": True}
    policy = make_policy("string_attribute", settings)
    assert decide(policy, _trace({}), service="frontend-payments") is Decision.SAMPLED
    assert decide(policy, _trace({}), service="frontend") is Decision.NOT_SAMPLED


def test_regex_cache_does_not_change_decisions() -> None:
    settings = {"key": "k", "values": ["^a", "z$"], "enabled_regex_matching": True, "cache_max_size": 2}
    cached = make_policy("string_attribute", settings)
    values = ["abc", "xyz", "bcd", "abz", "q", "abc", "xyz", "bcd", "q", "zzz", "azz", "bcd"] * 3
    for value in values:
        expected = decide(make_policy("string_attribute", settings), _trace({"k": value}))
        assert decide(cached, _trace({"k": value})) is expected
        assert expected is (Decision.SAMPLED if value.startswith("a") or value.endswith("z") else Decision.NOT_SAMPLED)


def test_without_regex_matching_patterns_are_literal() -> None:
    policy = make_policy("string_attribute", {"key": "k", "values": ["a.c"]})
    assert decide(policy, _trace({"k": "abc"})) is Decision.NOT_SAMPLED
    assert decide(policy, _trace({"k": "a.c"})) is Decision.SAMPLED


@pytest.mark.parametrize("regex", [False, True])
def test_invert_match_gives_plain_decisions(regex: bool) -> None:
    policy = make_policy(
        "string_attribute",
        {"key": "http.route", "values": ["/healthz"], "invert_match": True, "enabled_regex_matching": regex},
    )
    assert decide(policy, _trace({"http.route": "/healthz"})) is Decision.NOT_SAMPLED
    assert decide(policy, _trace({"http.route": "/api"}, {"http.route": "/healthz"})) is Decision.NOT_SAMPLED
    assert decide(policy, _trace({}), resource_attributes={"http.route": "/healthz"}) is Decision.NOT_SAMPLED
    assert decide(policy, _trace({"http.route": "/api"})) is Decision.SAMPLED
    assert decide(policy, _trace({})) is Decision.SAMPLED


@pytest.mark.parametrize(
    ("settings", "loc", "kind"),
    [
        (None, ("string_attribute",), "missing"),
        ({"values": ["a"]}, ("string_attribute", "key"), "missing"),
        ({"key": "", "values": ["a"]}, ("string_attribute", "key"), "string_too_short"),
        ({"key": "k"}, ("string_attribute", "values"), "missing"),
        ({"key": "k", "values": []}, ("string_attribute", "values"), "too_short"),
        ({"key": "k", "values": [1]}, ("string_attribute", "values", 0), "string_type"),
        ({"key": "k", "values": ["("], "enabled_regex_matching": True}, ("string_attribute",), "value_error"),
        (
            {"key": "k", "values": ["a"], "cache_max_size": -1},
            ("string_attribute", "cache_max_size"),
            "greater_than_equal",
        ),
        ({"key": "k", "values": ["a"], "invert": True}, ("string_attribute", "invert"), "extra_forbidden"),
    ],
)
def test_config_errors(settings: dict[str, Any] | None, loc: tuple[Any, ...], kind: str) -> None:
    body: dict[str, Any] = {"name": "route", "type": "string_attribute"}
    if settings is not None:
        body["string_attribute"] = settings
    assert [(error_loc, error_kind) for error_loc, error_kind, _ in config_errors(body)] == [(loc, kind)]


def test_invalid_regex_message_names_the_pattern() -> None:
    settings = {"key": "k", "values": ["ok", "[a-"], "enabled_regex_matching": True}
    body = {"name": "r", "type": "string_attribute", "string_attribute": settings}
    ((_, _, message),) = config_errors(body)
    assert "invalid regular expression '[a-'" in message


def test_invalid_regex_is_fine_as_a_literal_value() -> None:
    policy = make_policy("string_attribute", {"key": "k", "values": ["[a-"]})
    assert decide(policy, _trace({"k": "[a-"})) is Decision.SAMPLED
