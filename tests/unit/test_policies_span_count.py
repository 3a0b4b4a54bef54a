"""span_count: min_spans <= span count <= max_spans, both inclusive, max_spans 0 = unbounded."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sampler.policies.base import Decision, TraceView
from tests.support import make_span
from tests.unit.helpers import config_errors, decide, make_policy, trace_of

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def _spans(count: int) -> list[Span]:
    return [make_span(TRACE_ID) for _ in range(count)]


@pytest.mark.parametrize(
    ("settings", "count", "expected"),
    [
        ({"min_spans": 2}, 1, Decision.NOT_SAMPLED),
        ({"min_spans": 2}, 2, Decision.SAMPLED),  # min is inclusive
        ({"min_spans": 2}, 500, Decision.SAMPLED),  # no max: unbounded
        ({"min_spans": 2, "max_spans": 0}, 500, Decision.SAMPLED),
        ({"min_spans": 2, "max_spans": 3}, 1, Decision.NOT_SAMPLED),
        ({"min_spans": 2, "max_spans": 3}, 3, Decision.SAMPLED),  # max is inclusive
        ({"min_spans": 2, "max_spans": 3}, 4, Decision.NOT_SAMPLED),
        ({"min_spans": 3, "max_spans": 3}, 3, Decision.SAMPLED),
        ({"min_spans": 0}, 1, Decision.SAMPLED),
        ({"min_spans": 0, "max_spans": 1}, 1, Decision.SAMPLED),
        ({"min_spans": 0, "max_spans": 1}, 2, Decision.NOT_SAMPLED),
    ],
)
def test_bounds(settings: dict[str, Any], count: int, expected: Decision) -> None:
    assert decide(make_policy("span_count", settings), _spans(count)) is expected


def test_counts_spans_across_fragments_resources_and_scopes() -> None:
    trace = trace_of(_spans(2), service="a")
    trace.absorb(trace_of(_spans(2), service="b", scope="other"))
    assert trace.span_count == 4
    assert make_policy("span_count", {"min_spans": 4}).evaluate(TraceView(trace)) is Decision.SAMPLED
    assert make_policy("span_count", {"min_spans": 5}).evaluate(TraceView(trace)) is Decision.NOT_SAMPLED
    bounded = make_policy("span_count", {"min_spans": 1, "max_spans": 3})
    assert bounded.evaluate(TraceView(trace)) is Decision.NOT_SAMPLED


@pytest.mark.parametrize(
    ("settings", "loc", "kind"),
    [
        (None, ("span_count",), "missing"),
        ({}, ("span_count", "min_spans"), "missing"),
        ({"min_spans": -1}, ("span_count", "min_spans"), "greater_than_equal"),
        ({"min_spans": 1, "max_spans": -1}, ("span_count", "max_spans"), "greater_than_equal"),
        ({"min_spans": 5, "max_spans": 4}, ("span_count",), "value_error"),
        ({"min_spans": "many"}, ("span_count", "min_spans"), "int_parsing"),
        ({"min_spans": 1, "max": 4}, ("span_count", "max"), "extra_forbidden"),
    ],
)
def test_config_errors(settings: dict[str, Any] | None, loc: tuple[Any, ...], kind: str) -> None:
    body: dict[str, Any] = {"name": "big", "type": "span_count"}
    if settings is not None:
        body["span_count"] = settings
    assert [(error_loc, error_kind) for error_loc, error_kind, _ in config_errors(body)] == [(loc, kind)]


def test_max_below_min_message() -> None:
    ((_, _, message),) = config_errors(
        {"name": "big", "type": "span_count", "span_count": {"min_spans": 5, "max_spans": 4}}
    )
    assert "max_spans must be 0 (no upper bound) or at least min_spans" in message
