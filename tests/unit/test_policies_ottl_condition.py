"""ottl_condition: conditions parsed once by a grammar, evaluated per span and span event."""

from __future__ import annotations

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sampler.ottl.compile import OttlError, compile_condition
from sampler.policies.base import Decision
from tests.support import kv, make_span
from tests.unit.helpers import config_errors, decide, make_policy

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def span(**attributes: object) -> Span:
    result = make_span(TRACE_ID, name="GET /orders", duration_ms=250, attributes=attributes or None)
    result.kind = Span.SPAN_KIND_SERVER
    return result


def policy(span_conditions=(), event_conditions=(), error_mode=None):
    settings = {"span": list(span_conditions), "spanevent": list(event_conditions)}
    if error_mode:
        settings["error_mode"] = error_mode
    return make_policy("ottl_condition", settings)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ('name == "GET /orders"', True),
        ('span.name == "GET /orders"', True),
        ('name != "GET /orders"', False),
        ("kind == SPAN_KIND_SERVER", True),
        ("kind == SPAN_KIND_CLIENT", False),
        ("status.code == STATUS_CODE_ERROR", False),
        ("status.code != STATUS_CODE_ERROR", True),
        ('attributes["http.status"] >= 500', True),
        ('attributes["http.status"] >= 500 and attributes["http.status"] < 600', True),
        ('attributes["http.status"] == "503"', False),  # different types are never equal
        ('attributes["missing"] == nil', True),
        ('attributes["missing"] != nil', False),
        ('span.attributes["tier"] == "gold"', True),
        ('resource.attributes["service.name"] == "svc"', True),
        ('instrumentation_scope.name == "test"', True),
        ("end_time_unix_nano - start_time_unix_nano > 200000000", True),
        ("(end_time_unix_nano - start_time_unix_nano) / 1000000 >= 300", False),
        ('IsMatch(name, "^GET ")', True),
        ('IsMatch(resource.attributes["service.name"], "^pay")', False),
        ('not IsMatch(name, "health")', True),
        ('name == "x" or attributes["tier"] == "gold"', True),
        ('not (name == "x" or attributes["tier"] == "gold")', False),
        ('attributes["debug"] == true', True),
        ("1 + 2 * 3 == 7", True),
        ("-1 < 0", True),
        ('attributes["ratio"] > 0.5', True),
        ('"b" > "a"', True),
    ],
)
def test_span_conditions(condition, expected):
    spans = [span(**{"http.status": 503, "tier": "gold", "debug": True, "ratio": 0.75})]
    result = decide(policy([condition]), spans)
    assert result is (Decision.SAMPLED if expected else Decision.NOT_SAMPLED), condition


def test_any_condition_on_any_span_samples():
    spans = [span(tier="free"), span(tier="gold")]
    assert decide(policy(['attributes["tier"] == "gold"']), spans) is Decision.SAMPLED
    assert decide(policy(['attributes["tier"] == "platinum"', 'name == "nope"']), spans) is Decision.NOT_SAMPLED


def test_span_event_conditions():
    with_exception = span()
    event = with_exception.events.add(name="exception")
    event.attributes.append(kv("exception.type", "TimeoutError"))
    plain = span()
    plain.events.add(name="cache miss")
    conditions = ['name == "exception" and attributes["exception.type"] == "TimeoutError"']
    assert decide(policy(event_conditions=conditions), [plain, with_exception]) is Decision.SAMPLED
    assert decide(policy(event_conditions=conditions), [plain]) is Decision.NOT_SAMPLED
    # The span event context reaches its span through span.*
    assert decide(policy(event_conditions=['span.name == "GET /orders"']), [plain]) is Decision.SAMPLED
    assert decide(policy(event_conditions=['spanevent.name == "cache miss"']), [plain]) is Decision.SAMPLED


@pytest.mark.parametrize(("mode", "raises"), [("propagate", True), ("ignore", False), ("silent", False)])
def test_error_mode(mode, raises):
    spans = [span(code=7)]
    p = policy(['IsMatch(attributes["code"], "7")', 'name == "GET /orders"'], error_mode=mode)
    if raises:
        with pytest.raises(OttlError):
            decide(p, spans)
    else:
        # The failing condition counts as false; the next one still samples.
        assert decide(p, spans) is Decision.SAMPLED


def test_a_non_boolean_condition_is_an_evaluation_error():
    with pytest.raises(OttlError):
        decide(policy(["name"]), [span()])


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        ("name == ", "syntax error at column"),
        ('attributes["a" == 1', "syntax error at column 16"),
        ("foo.bar == 1", "unknown path 'foo.bar'"),
        ("Len(name) > 1", "unsupported function Len"),
        ("kind == SPAN_KIND_SIDEWAYS", "unknown enum SPAN_KIND_SIDEWAYS"),
        ('IsMatch(name, "(")', "invalid regular expression"),
        ("notable == 1", "unknown path 'notable'"),
    ],
)
def test_bad_conditions_are_config_errors_with_a_position(condition, fragment):
    errors = config_errors(
        {"name": "o", "type": "ottl_condition", "ottl_condition": {"span": ["name != nil", condition]}}
    )
    (loc, _, message) = errors[0]
    assert loc == ("ottl_condition", "span")
    assert "condition [1]" in message
    assert fragment in message, message


def test_at_least_one_condition_is_needed():
    errors = config_errors({"name": "o", "type": "ottl_condition", "ottl_condition": {"error_mode": "ignore"}})
    assert "at least one condition" in errors[0][2]


def test_conditions_compile_once_to_callables():
    evaluator = compile_condition('attributes["a"] == 1', "span")
    assert callable(evaluator)
