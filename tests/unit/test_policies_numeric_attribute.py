"""numeric_attribute: an integer attribute within [min_value, max_value]; 0 means an open bound."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sampler.policies.base import Decision
from tests.support import make_span
from tests.unit.helpers import config_errors, decide, make_policy

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
KEY = "http.status_code"


def _trace(*values: Any) -> list[Span]:
    return [make_span(TRACE_ID, attributes={KEY: value}) for value in values] or [make_span(TRACE_ID)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (399, Decision.NOT_SAMPLED),
        (400, Decision.SAMPLED),  # both bounds are inclusive
        (450, Decision.SAMPLED),
        (499, Decision.SAMPLED),
        (500, Decision.NOT_SAMPLED),
        (-450, Decision.NOT_SAMPLED),
    ],
)
def test_both_bounds_inclusive(value: int, expected: Decision) -> None:
    policy = make_policy("numeric_attribute", {"key": KEY, "min_value": 400, "max_value": 499})
    assert decide(policy, _trace(value)) is expected


def test_zero_max_is_an_open_upper_bound() -> None:
    policy = make_policy("numeric_attribute", {"key": KEY, "min_value": 500, "max_value": 0})
    assert decide(policy, _trace(499)) is Decision.NOT_SAMPLED
    assert decide(policy, _trace(500)) is Decision.SAMPLED
    assert decide(policy, _trace(2**63 - 1)) is Decision.SAMPLED


def test_unset_or_zero_min_is_an_open_lower_bound() -> None:
    for settings in ({"key": KEY, "max_value": 10}, {"key": KEY, "min_value": 0, "max_value": 10}):
        policy = make_policy("numeric_attribute", settings)
        assert decide(policy, _trace(-(2**63))) is Decision.SAMPLED
        assert decide(policy, _trace(0)) is Decision.SAMPLED
        assert decide(policy, _trace(10)) is Decision.SAMPLED
        assert decide(policy, _trace(11)) is Decision.NOT_SAMPLED


def test_negative_bounds() -> None:
    policy = make_policy("numeric_attribute", {"key": KEY, "min_value": -10, "max_value": -5})
    assert decide(policy, _trace(-10)) is Decision.SAMPLED
    assert decide(policy, _trace(-5)) is Decision.SAMPLED
    assert decide(policy, _trace(-4)) is Decision.NOT_SAMPLED
    assert decide(policy, _trace(-11)) is Decision.NOT_SAMPLED


def test_any_span_or_the_resource_may_match() -> None:
    policy = make_policy("numeric_attribute", {"key": KEY, "min_value": 500, "max_value": 599})
    assert decide(policy, _trace(200, 503, 200)) is Decision.SAMPLED
    assert decide(policy, _trace(200, 404)) is Decision.NOT_SAMPLED
    assert decide(policy, _trace(), resource_attributes={KEY: 503}) is Decision.SAMPLED
    assert decide(policy, _trace(), resource_attributes={KEY: 200}) is Decision.NOT_SAMPLED
    assert decide(policy, _trace()) is Decision.NOT_SAMPLED


def test_only_integer_values_count() -> None:
    policy = make_policy("numeric_attribute", {"key": KEY, "min_value": 1, "max_value": 600})
    assert decide(policy, _trace(503.0)) is Decision.NOT_SAMPLED
    assert decide(policy, _trace("503")) is Decision.NOT_SAMPLED
    assert decide(policy, _trace(True)) is Decision.NOT_SAMPLED  # a bool is not the integer 1
    assert decide(policy, _trace(503)) is Decision.SAMPLED


def test_invert_match_gives_plain_decisions() -> None:
    policy = make_policy("numeric_attribute", {"key": KEY, "min_value": 200, "max_value": 299, "invert_match": True})
    assert decide(policy, _trace(200)) is Decision.NOT_SAMPLED
    assert decide(policy, _trace(500, 204)) is Decision.NOT_SAMPLED
    assert decide(policy, _trace(), resource_attributes={KEY: 250}) is Decision.NOT_SAMPLED
    assert decide(policy, _trace(500)) is Decision.SAMPLED
    assert decide(policy, _trace()) is Decision.SAMPLED


@pytest.mark.parametrize(
    ("settings", "loc", "kind"),
    [
        (None, ("numeric_attribute",), "missing"),
        ({"min_value": 1}, ("numeric_attribute", "key"), "missing"),
        ({"key": "", "min_value": 1}, ("numeric_attribute", "key"), "string_too_short"),
        ({"key": "k"}, ("numeric_attribute",), "value_error"),
        ({"key": "k", "min_value": 0, "max_value": 0}, ("numeric_attribute",), "value_error"),
        ({"key": "k", "min_value": 10, "max_value": 5}, ("numeric_attribute",), "value_error"),
        ({"key": "k", "min_value": "low"}, ("numeric_attribute", "min_value"), "int_parsing"),
        ({"key": "k", "min_value": 1, "maximum": 5}, ("numeric_attribute", "maximum"), "extra_forbidden"),
    ],
)
def test_config_errors(settings: dict[str, Any] | None, loc: tuple[Any, ...], kind: str) -> None:
    body: dict[str, Any] = {"name": "codes", "type": "numeric_attribute"}
    if settings is not None:
        body["numeric_attribute"] = settings
    assert [(error_loc, error_kind) for error_loc, error_kind, _ in config_errors(body)] == [(loc, kind)]


def test_config_error_messages() -> None:
    ((_, _, no_bounds),) = config_errors({"name": "n", "type": "numeric_attribute", "numeric_attribute": {"key": "k"}})
    assert "set min_value, max_value or both" in no_bounds
    ((_, _, reversed_bounds),) = config_errors(
        {"name": "n", "type": "numeric_attribute", "numeric_attribute": {"key": "k", "min_value": 9, "max_value": 1}}
    )
    assert "max_value must be at least min_value" in reversed_bounds
