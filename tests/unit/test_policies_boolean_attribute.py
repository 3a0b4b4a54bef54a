"""boolean_attribute: a boolean attribute equal to `value` on a span or its resource."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sampler.policies.base import Decision
from tests.support import make_span
from tests.unit.helpers import config_errors, decide, make_policy

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
KEY = "app.force_sample"


def _trace(*values: Any) -> list[Span]:
    return [make_span(TRACE_ID, attributes={KEY: value}) for value in values] or [make_span(TRACE_ID)]


@pytest.mark.parametrize(
    ("wanted", "values", "expected"),
    [
        (True, (True,), Decision.SAMPLED),
        (True, (False,), Decision.NOT_SAMPLED),
        (True, (False, True), Decision.SAMPLED),
        (True, (), Decision.NOT_SAMPLED),
        (False, (False,), Decision.SAMPLED),
        (False, (True,), Decision.NOT_SAMPLED),
        (False, (), Decision.NOT_SAMPLED),  # a missing attribute is not false
        (True, ("true",), Decision.NOT_SAMPLED),  # only booleans count
        (True, (1,), Decision.NOT_SAMPLED),
        (False, (0,), Decision.NOT_SAMPLED),
        (False, ("",), Decision.NOT_SAMPLED),
    ],
)
def test_decisions(wanted: bool, values: tuple[Any, ...], expected: Decision) -> None:
    policy = make_policy("boolean_attribute", {"key": KEY, "value": wanted})
    assert decide(policy, _trace(*values)) is expected


def test_resource_attribute_counts() -> None:
    policy = make_policy("boolean_attribute", {"key": KEY, "value": True})
    assert decide(policy, _trace(), resource_attributes={KEY: True}) is Decision.SAMPLED
    assert decide(policy, _trace(), resource_attributes={KEY: False}) is Decision.NOT_SAMPLED
    assert decide(policy, _trace(), resource_attributes={"other": True}) is Decision.NOT_SAMPLED


def test_invert_match_gives_plain_decisions() -> None:
    policy = make_policy("boolean_attribute", {"key": KEY, "value": True, "invert_match": True})
    assert decide(policy, _trace(True)) is Decision.NOT_SAMPLED
    assert decide(policy, _trace(False, True)) is Decision.NOT_SAMPLED
    assert decide(policy, _trace(), resource_attributes={KEY: True}) is Decision.NOT_SAMPLED
    assert decide(policy, _trace(False)) is Decision.SAMPLED
    assert decide(policy, _trace()) is Decision.SAMPLED


@pytest.mark.parametrize(
    ("settings", "loc", "kind"),
    [
        (None, ("boolean_attribute",), "missing"),
        ({"value": True}, ("boolean_attribute", "key"), "missing"),
        ({"key": "", "value": True}, ("boolean_attribute", "key"), "string_too_short"),
        ({"key": "k"}, ("boolean_attribute", "value"), "missing"),
        ({"key": "k", "value": "maybe"}, ("boolean_attribute", "value"), "bool_parsing"),
        ({"key": "k", "value": True, "values": [True]}, ("boolean_attribute", "values"), "extra_forbidden"),
    ],
)
def test_config_errors(settings: dict[str, Any] | None, loc: tuple[Any, ...], kind: str) -> None:
    body: dict[str, Any] = {"name": "flag", "type": "boolean_attribute"}
    if settings is not None:
        body["boolean_attribute"] = settings
    assert [(error_loc, error_kind) for error_loc, error_kind, _ in config_errors(body)] == [(loc, kind)]
